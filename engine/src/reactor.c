/* reactor.c: the event loop (zmq_poll over sockets, fds and a self-pipe), timers, signals. */
#include "engine/reactor.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "engine/log.h"

#define COMPONENT "reactor"

/*
 * The process-wide signal state (CONVENTIONS: the one kind of mutable global
 * allowed): the signal caught, and the write end of the self-pipe of the
 * reactor that handles signals (-1: none).
 */
static volatile sig_atomic_t caught_signal;
static volatile sig_atomic_t signal_pipe_fd = -1;

typedef struct handler {
    anm_socket *socket; /* NULL for a plain fd */
    int fd;
    anm_reactor_socket_fn socket_fn;
    anm_reactor_fd_fn fd_fn;
    void *arg;
    int removed;
} handler;

typedef struct timer {
    int id;
    int64_t deadline_ms;
    int64_t interval_ms;
    anm_reactor_timer_fn fn;
    void *arg;
    int active;
} timer;

struct anm_reactor {
    anm_clock *clock;
    int wake_read_fd, wake_write_fd;

    handler *handlers;
    size_t n_handlers, cap_handlers;
    zmq_pollitem_t *items;
    size_t cap_items;

    timer *timers;
    size_t n_timers, cap_timers;
    int next_timer_id;

    int stopped;
    int status; /* what run returns once stopped */

    int handles_signals;
    struct sigaction old_int, old_term;
    anm_reactor_drain_fn drain;
    void *drain_arg;
    int64_t drain_timeout_ms;
    int64_t drain_started_ns; /* 0: not draining */
    int signal_number;

    int64_t spin_ns;       /* anm_reactor_set_spin_us, in ns (0: never spin) */
    int64_t spin_until_ns; /* monotonic end of the current spin window (0: none) */
};

static void on_signal(int signal_number)
{
    int saved = errno;
    if (caught_signal != 0 && caught_signal != signal_number)
        caught_signal = -1; /* a second, different signal: see handle_signal */
    else
        caught_signal = signal_number;
    int fd = signal_pipe_fd;
    if (fd >= 0) {
        char byte = 's';
        ssize_t n = write(fd, &byte, 1); /* async-signal-safe; a full pipe is fine */
        (void)n;
    }
    errno = saved;
}

static int set_nonblocking_cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -1;
    flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

int anm_reactor_new(anm_clock *clock, anm_reactor **out)
{
    int rc = ANM_ENOMEM;
    int fds[2];
    *out = NULL;
    if (clock == NULL)
        return ANM_EINVAL;
    anm_reactor *reactor = calloc(1, sizeof *reactor);
    if (reactor == NULL)
        goto fail;
    if (pipe(fds) != 0) {
        anm_log_error(COMPONENT, "could not create wake pipe: %s", strerror(errno));
        rc = ANM_EIO;
        goto free_reactor;
    }
    if (set_nonblocking_cloexec(fds[0]) != 0 || set_nonblocking_cloexec(fds[1]) != 0) {
        anm_log_error(COMPONENT, "could not configure wake pipe: %s", strerror(errno));
        rc = ANM_EIO;
        goto close_pipe;
    }
    reactor->clock = clock;
    reactor->wake_read_fd = fds[0];
    reactor->wake_write_fd = fds[1];
    reactor->next_timer_id = 1;
    reactor->drain_timeout_ms = 5000;
    *out = reactor;
    return ANM_OK;
close_pipe:
    close(fds[0]);
    close(fds[1]);
free_reactor:
    free(reactor);
fail:
    return rc;
}

void anm_reactor_destroy(anm_reactor **reactor)
{
    if (reactor == NULL || *reactor == NULL)
        return;
    anm_reactor *r = *reactor;
    if (r->handles_signals) {
        sigaction(SIGINT, &r->old_int, NULL);
        sigaction(SIGTERM, &r->old_term, NULL);
        signal_pipe_fd = -1;
    }
    close(r->wake_read_fd);
    close(r->wake_write_fd);
    free(r->handlers);
    free(r->items);
    free(r->timers);
    free(r);
    *reactor = NULL;
}

anm_clock *anm_reactor_clock(anm_reactor *reactor)
{
    return reactor->clock;
}

/* ---- handlers ------------------------------------------------------------ */

static handler *find_handler(anm_reactor *r, const anm_socket *socket, int fd)
{
    for (size_t i = 0; i < r->n_handlers; i++) {
        handler *h = &r->handlers[i];
        if (h->removed)
            continue;
        if (socket != NULL ? h->socket == socket : (h->socket == NULL && h->fd == fd))
            return h;
    }
    return NULL;
}

static int push_handler(anm_reactor *r, const handler *h)
{
    if (r->n_handlers == r->cap_handlers) {
        size_t cap = r->cap_handlers ? r->cap_handlers * 2 : 8;
        handler *grown = realloc(r->handlers, cap * sizeof *grown);
        if (grown == NULL)
            return ANM_ENOMEM;
        r->handlers = grown;
        r->cap_handlers = cap;
    }
    r->handlers[r->n_handlers++] = *h;
    return ANM_OK;
}

int anm_reactor_add_socket(anm_reactor *reactor, anm_socket *socket, anm_reactor_socket_fn fn,
                           void *arg)
{
    if (socket == NULL || fn == NULL)
        return ANM_EINVAL;
    if (find_handler(reactor, socket, -1) != NULL)
        return ANM_EDUP;
    handler h = {.socket = socket, .fd = -1, .socket_fn = fn, .arg = arg};
    return push_handler(reactor, &h);
}

int anm_reactor_remove_socket(anm_reactor *reactor, anm_socket *socket)
{
    handler *h = socket != NULL ? find_handler(reactor, socket, -1) : NULL;
    if (h == NULL)
        return ANM_ENOTFOUND;
    h->removed = 1; /* compacted at the start of the next iteration */
    return ANM_OK;
}

int anm_reactor_add_fd(anm_reactor *reactor, int fd, anm_reactor_fd_fn fn, void *arg)
{
    if (fd < 0 || fn == NULL)
        return ANM_EINVAL;
    if (find_handler(reactor, NULL, fd) != NULL)
        return ANM_EDUP;
    handler h = {.socket = NULL, .fd = fd, .fd_fn = fn, .arg = arg};
    return push_handler(reactor, &h);
}

int anm_reactor_remove_fd(anm_reactor *reactor, int fd)
{
    handler *h = fd >= 0 ? find_handler(reactor, NULL, fd) : NULL;
    if (h == NULL)
        return ANM_ENOTFOUND;
    h->removed = 1;
    return ANM_OK;
}

static void compact_handlers(anm_reactor *r)
{
    size_t kept = 0;
    for (size_t i = 0; i < r->n_handlers; i++) {
        if (!r->handlers[i].removed)
            r->handlers[kept++] = r->handlers[i];
    }
    r->n_handlers = kept;
}

/* ---- timers -------------------------------------------------------------- */

int anm_reactor_add_timer(anm_reactor *reactor, int64_t delay_ms, int64_t interval_ms,
                          anm_reactor_timer_fn fn, void *arg, int *timer_id)
{
    if (delay_ms < 0 || interval_ms < 0 || fn == NULL || reactor->next_timer_id == INT32_MAX)
        return ANM_EINVAL;
    timer *slot = NULL;
    for (size_t i = 0; i < reactor->n_timers; i++) {
        if (!reactor->timers[i].active) {
            slot = &reactor->timers[i];
            break;
        }
    }
    if (slot == NULL) {
        if (reactor->n_timers == reactor->cap_timers) {
            size_t cap = reactor->cap_timers ? reactor->cap_timers * 2 : 8;
            timer *grown = realloc(reactor->timers, cap * sizeof *grown);
            if (grown == NULL)
                return ANM_ENOMEM;
            reactor->timers = grown;
            reactor->cap_timers = cap;
        }
        slot = &reactor->timers[reactor->n_timers++];
    }
    *slot = (timer){
        .id = reactor->next_timer_id++,
        .deadline_ms = anm_clock_now_ms(reactor->clock) + delay_ms,
        .interval_ms = interval_ms,
        .fn = fn,
        .arg = arg,
        .active = 1,
    };
    if (timer_id != NULL)
        *timer_id = slot->id;
    return ANM_OK;
}

int anm_reactor_cancel_timer(anm_reactor *reactor, int timer_id)
{
    for (size_t i = 0; i < reactor->n_timers; i++) {
        if (reactor->timers[i].active && reactor->timers[i].id == timer_id) {
            reactor->timers[i].active = 0;
            return ANM_OK;
        }
    }
    return ANM_ENOTFOUND;
}

int64_t anm_reactor_next_deadline(const anm_reactor *reactor)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < reactor->n_timers; i++) {
        if (reactor->timers[i].active && reactor->timers[i].deadline_ms < next)
            next = reactor->timers[i].deadline_ms;
    }
    return next;
}

/* Fires due timers; returns the number fired or a callback's error. */
static int fire_timers(anm_reactor *r, int *fired)
{
    int64_t now = anm_clock_now_ms(r->clock);
    size_t n = r->n_timers; /* timers added by callbacks wait for the next iteration */
    for (size_t i = 0; i < n; i++) {
        timer *t = &r->timers[i];
        if (!t->active || t->deadline_ms > now)
            continue;
        int id = t->id;
        anm_reactor_timer_fn fn = t->fn;
        void *arg = t->arg;
        if (t->interval_ms > 0) {
            int64_t missed = (now - t->deadline_ms) / t->interval_ms + 1;
            t->deadline_ms += missed * t->interval_ms;
        } else {
            t->active = 0;
        }
        (*fired)++;
        int rc = fn(r, id, arg); /* may add timers: r->timers may move, t is stale now */
        if (rc != ANM_OK)
            return rc;
    }
    return ANM_OK;
}

/* ---- loop ---------------------------------------------------------------- */

static int build_items(anm_reactor *r)
{
    size_t needed = r->n_handlers + 1;
    if (needed > r->cap_items) {
        zmq_pollitem_t *grown = realloc(r->items, needed * sizeof *grown);
        if (grown == NULL)
            return ANM_ENOMEM;
        r->items = grown;
        r->cap_items = needed;
    }
    r->items[0] = (zmq_pollitem_t){.socket = NULL, .fd = r->wake_read_fd, .events = ZMQ_POLLIN};
    for (size_t i = 0; i < r->n_handlers; i++) {
        const handler *h = &r->handlers[i];
        r->items[i + 1] = (zmq_pollitem_t){
            .socket = h->socket != NULL ? anm_socket_handle(h->socket) : NULL,
            .fd = h->socket != NULL ? -1 : h->fd,
            .events = ZMQ_POLLIN,
        };
    }
    return ANM_OK;
}

static void drain_wake_pipe(anm_reactor *r)
{
    char buf[64];
    while (read(r->wake_read_fd, buf, sizeof buf) > 0) {
    }
}

static int64_t poll_timeout(anm_reactor *r, int64_t max_wait_ms)
{
    int64_t timeout = max_wait_ms;
    int64_t next = anm_reactor_next_deadline(r);
    if (next != INT64_MAX) {
        int64_t delay = anm_clock_real_delay_ms(r->clock, next);
        if (delay >= 0 && (timeout < 0 || delay < timeout))
            timeout = delay;
    }
    if (r->drain_started_ns != 0) {
        /* while draining, wake at least every 10 ms to re-check the drain */
        if (timeout < 0 || timeout > 10)
            timeout = 10;
    }
    if (timeout > 24LL * 3600 * 1000)
        timeout = 24LL * 3600 * 1000;
    return timeout;
}

/*
 * The bounded busy poll: within the spin window opened by the last iteration
 * that handled I/O, polls without sleeping until an item is ready, a timer
 * falls due, the window closes or *max_wait_ms (> 0) passes, whichever is
 * first. Returns what zmq_poll returned last (0: nothing ready; the caller
 * then blocks, with *max_wait_ms reduced by the time spent here).
 */
static int spin_poll(anm_reactor *r, size_t n_items, int64_t *max_wait_ms)
{
    if (r->spin_until_ns == 0 || *max_wait_ms == 0)
        return 0;
    int64_t start = anm_monotonic_ns();
    int64_t end = r->spin_until_ns;
    r->spin_until_ns = 0; /* reopened only by handled I/O */
    if (end <= start)
        return 0;
    if (*max_wait_ms > 0 && start + *max_wait_ms * 1000000 < end)
        end = start + *max_wait_ms * 1000000;
    /* timers are not touched while spinning: stop at the earliest deadline */
    int64_t timer_delay_ms = poll_timeout(r, -1);
    if (timer_delay_ms >= 0 && start + timer_delay_ms * 1000000 < end)
        end = start + timer_delay_ms * 1000000;
    int ready = 0;
    int64_t now = start;
    while (ready == 0 && now < end) {
        ready = zmq_poll(r->items, (int)n_items, 0);
        /* give the core to any other runnable thread (ZeroMQ's I/O thread,
         * a peer on the same machine): the spin only uses otherwise idle CPU */
        if (ready == 0)
            sched_yield();
        now = anm_monotonic_ns();
    }
    if (ready == 0 && *max_wait_ms > 0) {
        int64_t spent_ms = (now - start + 999999) / 1000000;
        *max_wait_ms = spent_ms < *max_wait_ms ? *max_wait_ms - spent_ms : 0;
    }
    return ready;
}

static void finish(anm_reactor *r, int status)
{
    r->stopped = 1;
    r->status = status;
    r->drain_started_ns = 0;
}

/* Runs the drain callback for a pending signal, if any. */
static void handle_signal(anm_reactor *r)
{
    if (!r->handles_signals || r->stopped)
        return;
    int sig = caught_signal;
    if (sig == 0)
        return;
    if (r->drain_started_ns == 0) {
        r->signal_number = sig < 0 ? SIGTERM : sig;
        caught_signal = 0;
        anm_log_info(COMPONENT, "received signal %d, draining", r->signal_number);
        r->drain_started_ns = anm_monotonic_ns();
    } else {
        anm_log_warn(COMPONENT, "received signal %d during drain, stopping now", sig);
        caught_signal = 0;
        finish(r, ANM_ETIMEOUT);
    }
}

static void continue_drain(anm_reactor *r)
{
    if (r->drain_started_ns == 0 || r->stopped)
        return;
    int rc = r->drain != NULL ? r->drain(r, r->signal_number, r->drain_arg) : ANM_OK;
    if (rc == ANM_OK) {
        anm_log_info(COMPONENT, "drained, stopping");
        finish(r, ANM_OK);
    } else if (rc != ANM_EAGAIN) {
        anm_log_error(COMPONENT, "drain failed: %s", anm_strerror(rc));
        finish(r, rc);
    } else if ((anm_monotonic_ns() - r->drain_started_ns) / 1000000 >= r->drain_timeout_ms) {
        anm_log_error(COMPONENT, "drain did not finish within %lld ms",
                      (long long)r->drain_timeout_ms);
        finish(r, ANM_ETIMEOUT);
    }
}

int anm_reactor_run_once(anm_reactor *reactor, int64_t max_wait_ms)
{
    anm_reactor *r = reactor;
    int called = 0, handled = 0;
    compact_handlers(r);
    int rc = build_items(r);
    if (rc != ANM_OK)
        return rc;
    size_t n_items = r->n_handlers + 1;
    int ready = 0;
    /* a signal caught before the handlers were installed, or between two
     * polls, has already written to the pipe; this check is only a shortcut */
    if (!(r->handles_signals && caught_signal != 0)) {
        ready = spin_poll(r, n_items, &max_wait_ms);
        if (ready == 0)
            ready = zmq_poll(r->items, (int)n_items, (long)poll_timeout(r, max_wait_ms));
        if (ready < 0) {
            int err = zmq_errno();
            if (err != EINTR) {
                anm_log_error(COMPONENT, "could not poll: %s", zmq_strerror(err));
                return err == ETERM ? ANM_ESTATE : ANM_ENET;
            }
            ready = 0;
            for (size_t i = 0; i < n_items; i++)
                r->items[i].revents = 0;
        }
    } else {
        for (size_t i = 0; i < n_items; i++)
            r->items[i].revents = 0;
    }
    if (r->items[0].revents & ZMQ_POLLIN)
        drain_wake_pipe(r);
    handle_signal(r);
    rc = fire_timers(r, &called);
    if (rc != ANM_OK)
        return rc;
    /* handlers added by callbacks (beyond n_items - 1) are polled next time */
    for (size_t i = 1; i < n_items && ready > 0; i++) {
        if (!(r->items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
            continue;
        handler h = r->handlers[i - 1];
        if (r->handlers[i - 1].removed)
            continue;
        called++;
        handled++;
        rc = h.socket != NULL ? h.socket_fn(r, h.socket, h.arg) : h.fd_fn(r, h.fd, h.arg);
        if (rc != ANM_OK)
            return rc;
    }
    /* I/O was handled: more is likely soon, so the next polls spin (timers alone do not) */
    if (handled > 0 && r->spin_ns > 0)
        r->spin_until_ns = anm_monotonic_ns() + r->spin_ns;
    continue_drain(r);
    return called;
}

int anm_reactor_run(anm_reactor *reactor)
{
    reactor->stopped = 0;
    reactor->status = ANM_OK;
    while (!reactor->stopped) {
        int rc = anm_reactor_run_once(reactor, -1);
        if (rc < 0)
            return rc;
    }
    return reactor->status;
}

void anm_reactor_stop(anm_reactor *reactor)
{
    finish(reactor, ANM_OK);
}

int anm_reactor_stopped(const anm_reactor *reactor)
{
    return reactor->stopped;
}

int anm_reactor_wake(anm_reactor *reactor)
{
    char byte = 'w';
    ssize_t n = write(reactor->wake_write_fd, &byte, 1);
    if (n == 1 || (n < 0 && errno == EAGAIN)) /* a full pipe already wakes the poll */
        return ANM_OK;
    return ANM_EIO;
}

int anm_reactor_handle_signals(anm_reactor *reactor, anm_reactor_drain_fn drain, void *arg)
{
    if (reactor->handles_signals) {
        reactor->drain = drain;
        reactor->drain_arg = arg;
        return ANM_OK;
    }
    if (signal_pipe_fd >= 0)
        return ANM_ESTATE;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    caught_signal = 0;
    signal_pipe_fd = reactor->wake_write_fd;
    if (sigaction(SIGINT, &action, &reactor->old_int) != 0)
        goto fail;
    if (sigaction(SIGTERM, &action, &reactor->old_term) != 0) {
        sigaction(SIGINT, &reactor->old_int, NULL);
        goto fail;
    }
    reactor->handles_signals = 1;
    reactor->drain = drain;
    reactor->drain_arg = arg;
    return ANM_OK;
fail:
    signal_pipe_fd = -1;
    anm_log_error(COMPONENT, "could not install signal handlers: %s", strerror(errno));
    return ANM_EIO;
}

void anm_reactor_set_spin_us(anm_reactor *reactor, int64_t spin_us)
{
    if (spin_us < 0)
        spin_us = 0;
    if (spin_us > ANM_REACTOR_MAX_SPIN_US)
        spin_us = ANM_REACTOR_MAX_SPIN_US;
    reactor->spin_ns = spin_us * 1000;
    if (spin_us == 0)
        reactor->spin_until_ns = 0;
}

int64_t anm_reactor_spin_us(const anm_reactor *reactor)
{
    return reactor->spin_ns / 1000;
}

void anm_reactor_set_drain_timeout(anm_reactor *reactor, int64_t timeout_ms)
{
    if (timeout_ms > 0)
        reactor->drain_timeout_ms = timeout_ms;
}

int anm_reactor_signal_received(const anm_reactor *reactor)
{
    return reactor->signal_number;
}
