/* Tests of the event loop (engine/reactor.h): timers on a stepped clock, fds, wake, stop. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "engine/clock.h"
#include "engine/error.h"
#include "engine/reactor.h"

#define START_MS 1609459200000LL /* 2021-01-01T00:00:00Z */

typedef struct fired_log {
    int count;
    int64_t at_ms[16]; /* engine time of each call */
    int ids[16];
    int stop_after;    /* stop the loop after this many calls (0: never) */
    int fail_with;     /* return this from the callback (0: ANM_OK) */
} fired_log;

static int on_timer(anm_reactor *reactor, int timer_id, void *arg)
{
    fired_log *log = arg;
    if (log->count < 16) {
        log->at_ms[log->count] = anm_clock_now_ms(anm_reactor_clock(reactor));
        log->ids[log->count] = timer_id;
    }
    log->count++;
    if (log->stop_after > 0 && log->count >= log->stop_after)
        anm_reactor_stop(reactor);
    return log->fail_with;
}

typedef struct fixture {
    anm_clock *clock;
    anm_reactor *reactor;
} fixture;

static fixture make(void)
{
    fixture f = {0};
    f.clock = anm_clock_new_simulated(START_MS, 0.0);
    cr_assert_not_null(f.clock);
    cr_assert_eq(anm_reactor_new(f.clock, &f.reactor), ANM_OK);
    return f;
}

static void unmake(fixture *f)
{
    anm_reactor_destroy(&f->reactor);
    anm_reactor_destroy(&f->reactor); /* idempotent */
    cr_assert_null(f->reactor);
    anm_clock_destroy(&f->clock);
}

Test(reactor, one_shot_timer_fires_once_when_the_stepped_clock_reaches_it)
{
    fixture f = make();
    fired_log log = {0};
    int id = 0;
    cr_assert_eq(anm_reactor_add_timer(f.reactor, 1000, 0, on_timer, &log, &id), ANM_OK);
    cr_assert_gt(id, 0);
    cr_assert_eq(anm_reactor_next_deadline(f.reactor), START_MS + 1000);

    anm_clock_step(f.clock, 999);
    cr_assert_eq(anm_reactor_run_once(f.reactor, 0), 0, "not due 1 ms early");
    cr_assert_eq(log.count, 0);

    anm_clock_step(f.clock, 1);
    cr_assert_eq(anm_reactor_run_once(f.reactor, 0), 1);
    cr_assert_eq(log.count, 1);
    cr_assert_eq(log.at_ms[0], START_MS + 1000);
    cr_assert_eq(log.ids[0], id);

    anm_clock_step(f.clock, 5000);
    cr_assert_eq(anm_reactor_run_once(f.reactor, 0), 0, "a one-shot timer fires once");
    cr_assert_eq(anm_reactor_next_deadline(f.reactor), INT64_MAX);
    cr_assert_eq(anm_reactor_cancel_timer(f.reactor, id), ANM_ENOTFOUND);
    unmake(&f);
}

Test(reactor, repeating_timer_fires_each_period_and_coalesces_missed_ticks)
{
    fixture f = make();
    fired_log log = {0};
    int id = 0;
    cr_assert_eq(anm_reactor_add_timer(f.reactor, 100, 100, on_timer, &log, &id), ANM_OK);
    for (int i = 1; i <= 3; i++) {
        anm_clock_step(f.clock, 100);
        cr_assert_eq(anm_reactor_run_once(f.reactor, 0), 1, "period %d", i);
        cr_assert_eq(log.at_ms[i - 1], START_MS + 100 * i);
    }
    /* a step of 1050 ms from 300 to 1350 passes the ticks at 400..1300: one call,
     * and the next deadline is the first period boundary after now, 1400 */
    anm_clock_step(f.clock, 1050);
    cr_assert_eq(anm_reactor_run_once(f.reactor, 0), 1);
    cr_assert_eq(log.count, 4);
    cr_assert_eq(anm_reactor_next_deadline(f.reactor), START_MS + 1400);

    cr_assert_eq(anm_reactor_cancel_timer(f.reactor, id), ANM_OK);
    anm_clock_step(f.clock, 1000);
    cr_assert_eq(anm_reactor_run_once(f.reactor, 0), 0, "cancelled");
    cr_assert_eq(log.count, 4);
    unmake(&f);
}

Test(reactor, timers_fire_in_the_same_iteration_when_several_are_due)
{
    fixture f = make();
    fired_log a = {0}, b = {0}, c = {0};
    anm_reactor_add_timer(f.reactor, 10, 0, on_timer, &a, NULL);
    anm_reactor_add_timer(f.reactor, 20, 0, on_timer, &b, NULL);
    anm_reactor_add_timer(f.reactor, 30, 0, on_timer, &c, NULL);
    anm_clock_step(f.clock, 25);
    cr_assert_eq(anm_reactor_run_once(f.reactor, 0), 2);
    cr_assert_eq(a.count + b.count + c.count, 2);
    cr_assert_eq(c.count, 0);
    cr_assert_eq(anm_reactor_next_deadline(f.reactor), START_MS + 30);
    cr_assert_eq(anm_reactor_add_timer(f.reactor, -1, 0, on_timer, &a, NULL), ANM_EINVAL);
    unmake(&f);
}

Test(reactor, timer_error_stops_run_with_that_error)
{
    fixture f = make();
    fired_log log = {.fail_with = ANM_EDB};
    anm_reactor_add_timer(f.reactor, 0, 0, on_timer, &log, NULL);
    cr_assert_eq(anm_reactor_run(f.reactor), ANM_EDB);
    cr_assert_eq(log.count, 1);
    unmake(&f);
}

typedef struct stepper {
    anm_clock *clock;
    anm_reactor *reactor;
} stepper;

static void *step_and_wake(void *arg)
{
    stepper *s = arg;
    anm_clock_step(s->clock, 60000);
    anm_reactor_wake(s->reactor);
    return NULL;
}

Test(reactor, run_wakes_when_another_thread_steps_the_clock, .timeout = 10)
{
    fixture f = make();
    fired_log log = {.stop_after = 1};
    /* with a stepped clock and no other events run() would block without
     * limit: only the step and wake from the thread can make the timer fire,
     * whether they happen before run() starts polling or during the poll */
    anm_reactor_add_timer(f.reactor, 60000, 0, on_timer, &log, NULL);
    stepper s = {f.clock, f.reactor};
    pthread_t thread;
    cr_assert_eq(pthread_create(&thread, NULL, step_and_wake, &s), 0);
    int rc = anm_reactor_run(f.reactor);
    pthread_join(thread, NULL);
    cr_assert_eq(rc, ANM_OK);
    cr_assert_eq(log.count, 1);
    cr_assert_eq(log.at_ms[0], START_MS + 60000);
    cr_assert_eq(anm_reactor_stopped(f.reactor), 1);
    unmake(&f);
}

Test(reactor, real_clock_timer_sleeps_instead_of_spinning, .timeout = 10)
{
    anm_clock *clock = anm_clock_new_real();
    anm_reactor *reactor = NULL;
    cr_assert_eq(anm_reactor_new(clock, &reactor), ANM_OK);
    fired_log log = {.stop_after = 1};
    anm_reactor_add_timer(reactor, 30, 0, on_timer, &log, NULL);
    int iterations = 0;
    int64_t t0 = anm_monotonic_ns();
    while (log.count == 0) {
        cr_assert_geq(anm_reactor_run_once(reactor, -1), 0);
        iterations++;
    }
    int64_t elapsed_ms = (anm_monotonic_ns() - t0) / 1000000;
    cr_assert_geq(elapsed_ms, 29, "fired after %lld ms", (long long)elapsed_ms);
    /* a busy loop would take thousands of iterations; a sleeping one a few
     * (poll may wake a millisecond early on rounding) */
    cr_assert_leq(iterations, 5, "%d iterations", iterations);
    anm_reactor_destroy(&reactor);
    anm_clock_destroy(&clock);
}

typedef struct fd_reader {
    int reads;
    char last;
    int remove_after;
} fd_reader;

static int on_fd(anm_reactor *reactor, int fd, void *arg)
{
    fd_reader *reader = arg;
    char c;
    if (read(fd, &c, 1) == 1) {
        reader->reads++;
        reader->last = c;
    }
    if (reader->remove_after > 0 && reader->reads >= reader->remove_after)
        anm_reactor_remove_fd(reactor, fd);
    return ANM_OK;
}

Test(reactor, fd_handler_runs_when_readable_and_not_after_removal)
{
    fixture f = make();
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fd_reader reader = {.remove_after = 2};
    cr_assert_eq(anm_reactor_add_fd(f.reactor, fds[0], on_fd, &reader), ANM_OK);
    cr_assert_eq(anm_reactor_add_fd(f.reactor, fds[0], on_fd, &reader), ANM_EDUP);
    cr_assert_eq(anm_reactor_run_once(f.reactor, 0), 0, "nothing to read yet");
    cr_assert_eq(write(fds[1], "ab", 2), 2);
    cr_assert_eq(anm_reactor_run_once(f.reactor, 1000), 1);
    cr_assert_eq(reader.last, 'a');
    cr_assert_eq(anm_reactor_run_once(f.reactor, 1000), 1);
    cr_assert_eq(reader.last, 'b');
    cr_assert_eq(write(fds[1], "c", 1), 1);
    cr_assert_eq(anm_reactor_run_once(f.reactor, 0), 0, "removed by its own callback");
    cr_assert_eq(reader.reads, 2);
    cr_assert_eq(anm_reactor_remove_fd(f.reactor, fds[0]), ANM_ENOTFOUND);
    close(fds[0]);
    close(fds[1]);
    unmake(&f);
}

typedef struct drain_log {
    int calls;
    int signal_number;
    int result;
} drain_log;

static int on_drain(anm_reactor *reactor, int signal_number, void *arg)
{
    (void)reactor;
    drain_log *log = arg;
    log->calls++;
    log->signal_number = signal_number;
    return log->result;
}

Test(reactor, sigint_runs_the_drain_and_run_returns_ok, .timeout = 10)
{
    fixture f = make();
    drain_log log = {.result = ANM_OK};
    cr_assert_eq(anm_reactor_handle_signals(f.reactor, on_drain, &log), ANM_OK);
    anm_reactor *second = NULL;
    cr_assert_eq(anm_reactor_new(f.clock, &second), ANM_OK);
    cr_assert_eq(anm_reactor_handle_signals(second, NULL, NULL), ANM_ESTATE, "one per process");
    anm_reactor_destroy(&second);
    /* the stepped clock and no handlers: only the signal can end run() */
    cr_assert_eq(raise(SIGINT), 0);
    cr_assert_eq(anm_reactor_run(f.reactor), ANM_OK);
    cr_assert_eq(log.calls, 1);
    cr_assert_eq(log.signal_number, SIGINT);
    cr_assert_eq(anm_reactor_signal_received(f.reactor), SIGINT);
    unmake(&f);
}

Test(reactor, a_drain_that_never_finishes_times_out, .timeout = 10)
{
    fixture f = make();
    drain_log log = {.result = ANM_EAGAIN};
    cr_assert_eq(anm_reactor_handle_signals(f.reactor, on_drain, &log), ANM_OK);
    anm_reactor_set_drain_timeout(f.reactor, 50);
    cr_assert_eq(raise(SIGTERM), 0);
    int64_t t0 = anm_monotonic_ns();
    cr_assert_eq(anm_reactor_run(f.reactor), ANM_ETIMEOUT);
    int64_t elapsed_ms = (anm_monotonic_ns() - t0) / 1000000;
    cr_assert_geq(elapsed_ms, 50);
    /* re-checked every 10 ms while draining: a handful of calls, not a spin */
    cr_assert(log.calls >= 2 && log.calls <= 10, "%d drain calls", log.calls);
    unmake(&f);
}
