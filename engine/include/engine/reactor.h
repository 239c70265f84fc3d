/*
 * reactor.h: the event loop every anm service runs (one per thread): bus
 * sockets and plain file descriptors with callbacks, timers on the engine
 * clock, SIGINT/SIGTERM handling and a clean shutdown.
 *
 * Lifecycle:
 *     anm_reactor_new(clock) -> add sockets, fds, timers ->
 *     anm_reactor_handle_signals(drain) -> anm_reactor_run() -> destroy
 *
 * Callbacks return ANM_OK to keep the loop going; any negative anm_err stops
 * it and anm_reactor_run returns that error. A callback may add or remove
 * handlers and timers (its own included) and call anm_reactor_stop.
 *
 * Timers run on the engine clock (clock.h): a timer due at engine time T
 * fires in the first iteration where anm_clock_now_ms >= T. The poll timeout
 * is anm_clock_real_delay_ms of the earliest deadline, so with a real or a
 * running simulated clock the loop sleeps until then, never spinning. A
 * stepped clock never advances by itself: after anm_clock_step, call
 * anm_reactor_run_once(reactor, 0) from the loop's thread, or
 * anm_reactor_wake(reactor) from another one, and due timers fire. A
 * repeating timer that missed several periods (a big step) fires once and
 * is rescheduled to its next period after now (missed ticks coalesce).
 *
 * Signals: anm_reactor_handle_signals installs SIGINT and SIGTERM handlers
 * that set a flag and write to the reactor's self-pipe (the flag and the
 * pipe's descriptor are the only process-wide mutable state; one reactor
 * per process handles signals). The loop then calls the drain callback:
 * the service stops accepting (removes its input sockets), flushes and
 * returns ANM_OK, after which anm_reactor_run returns ANM_OK and main exits
 * 0; or it returns ANM_EAGAIN to keep the loop running (so pending work such
 * as acks can complete) and is called again after each iteration, until it
 * returns ANM_OK or the drain timeout (real time, default 5000 ms) passes
 * (anm_reactor_run then returns ANM_ETIMEOUT). A second signal during a
 * drain ends it at once with ANM_ETIMEOUT.
 */
#ifndef ANM_ENGINE_REACTOR_H
#define ANM_ENGINE_REACTOR_H

#include <stdint.h>

#include "engine/bus.h"
#include "engine/clock.h"

typedef struct anm_reactor anm_reactor;

/* socket (borrowed) has a message waiting; receive with ANM_BUS_DONTWAIT. */
typedef int (*anm_reactor_socket_fn)(anm_reactor *reactor, anm_socket *socket, void *arg);
/* fd is readable (or at end of file / in error: read to find out). */
typedef int (*anm_reactor_fd_fn)(anm_reactor *reactor, int fd, void *arg);
typedef int (*anm_reactor_timer_fn)(anm_reactor *reactor, int timer_id, void *arg);
/* Called on SIGINT/SIGTERM with the signal number; see the top of this file. */
typedef int (*anm_reactor_drain_fn)(anm_reactor *reactor, int signal_number, void *arg);

/* New reactor on clock (borrowed: it must outlive the reactor). ANM_OK, ANM_ENOMEM or ANM_EIO. */
int anm_reactor_new(anm_clock *clock, anm_reactor **out);

/* Destroys the reactor (sockets and fds stay open: they are the caller's) and
 * restores the previous signal handlers if it installed any. Idempotent. */
void anm_reactor_destroy(anm_reactor **reactor);

anm_clock *anm_reactor_clock(anm_reactor *reactor);

/* Calls fn when socket (borrowed) is readable. ANM_EDUP if already registered. */
int anm_reactor_add_socket(anm_reactor *reactor, anm_socket *socket, anm_reactor_socket_fn fn,
                           void *arg);
/* ANM_OK or ANM_ENOTFOUND. Safe from inside any callback. */
int anm_reactor_remove_socket(anm_reactor *reactor, anm_socket *socket);

/* Calls fn when fd is readable. ANM_EDUP if already registered, ANM_EINVAL if fd < 0. */
int anm_reactor_add_fd(anm_reactor *reactor, int fd, anm_reactor_fd_fn fn, void *arg);
int anm_reactor_remove_fd(anm_reactor *reactor, int fd);

/*
 * A timer due delay_ms of engine time from now (>= 0), then every
 * interval_ms (> 0) if interval_ms is not 0. *timer_id (may be NULL) gets a
 * positive id, unique for the reactor's life. ANM_OK, ANM_EINVAL, ANM_ENOMEM.
 */
int anm_reactor_add_timer(anm_reactor *reactor, int64_t delay_ms, int64_t interval_ms,
                          anm_reactor_timer_fn fn, void *arg, int *timer_id);
/* ANM_OK or ANM_ENOTFOUND (unknown or already fired one-shot). Safe from callbacks. */
int anm_reactor_cancel_timer(anm_reactor *reactor, int timer_id);

/* The engine time of the earliest pending timer, or INT64_MAX if none. */
int64_t anm_reactor_next_deadline(const anm_reactor *reactor);

/*
 * Runs until anm_reactor_stop, a callback error or a completed drain.
 * Returns ANM_OK, the callback's error, ANM_ETIMEOUT (drain timed out) or
 * ANM_ENET (polling failed).
 */
int anm_reactor_run(anm_reactor *reactor);

/*
 * One iteration: waits up to max_wait_ms real milliseconds (0: not at all,
 * -1: until an event, a wake or a timer) for I/O, then handles the pending
 * signal, fires due timers and calls the handlers of ready sockets and fds.
 * Returns the number of callbacks called (>= 0) or a negative error as run.
 */
int anm_reactor_run_once(anm_reactor *reactor, int64_t max_wait_ms);

/* Makes run return ANM_OK after the current iteration. */
void anm_reactor_stop(anm_reactor *reactor);

/* 1 after anm_reactor_stop or a completed drain, until the next run. */
int anm_reactor_stopped(const anm_reactor *reactor);

/*
 * Interrupts a poll in progress (e.g. after stepping the clock from another
 * thread). Thread-safe and async-signal-safe. ANM_OK or ANM_EIO.
 */
int anm_reactor_wake(anm_reactor *reactor);

/*
 * Installs SIGINT and SIGTERM handlers routed to this reactor, with drain
 * (may be NULL: then a signal just stops the loop) called as described at
 * the top. ANM_OK, ANM_ESTATE (another reactor already handles signals) or
 * ANM_EIO.
 */
int anm_reactor_handle_signals(anm_reactor *reactor, anm_reactor_drain_fn drain, void *arg);

/*
 * Bounded busy polling, for latency-bound services (off by default). After
 * an iteration that called a socket or fd handler, the next polls do not
 * sleep (zmq_poll with timeout 0) for up to spin_us real microseconds; if
 * nothing arrives by then, the loop blocks as usual. Only handled I/O opens
 * a spin window (timers and wakes do not), so an idle loop never spins, and
 * a spin ends early at the next timer's deadline or run_once's max_wait_ms.
 * Saves the wake-up of a blocked poll (tens of microseconds per message) at
 * the cost of up to spin_us of CPU after each burst. spin_us <= 0 disables
 * it; values above ANM_REACTOR_MAX_SPIN_US are clamped.
 */
#define ANM_REACTOR_MAX_SPIN_US 1000000
void anm_reactor_set_spin_us(anm_reactor *reactor, int64_t spin_us);
int64_t anm_reactor_spin_us(const anm_reactor *reactor);

/* Real milliseconds a drain may take (> 0). */
void anm_reactor_set_drain_timeout(anm_reactor *reactor, int64_t timeout_ms);

/* The signal being or last handled (SIGINT or SIGTERM), 0 if none yet. */
int anm_reactor_signal_received(const anm_reactor *reactor);

#endif
