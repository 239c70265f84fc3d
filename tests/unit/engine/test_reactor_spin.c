/*
 * Tests of the reactor's bounded busy poll (anm_reactor_set_spin_us): it
 * spins only after handled I/O, for at most its window, then blocks; an idle
 * loop uses no CPU; events and timers are still delivered on time.
 *
 * CPU use is read from CLOCK_THREAD_CPUTIME_ID around one run_once. Bounds
 * are generous because the machine is shared: a blocked poll uses well under
 * a millisecond of CPU in 200 ms, a spin of W ms uses up to W ms (less if the
 * thread is preempted, never more).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "engine/clock.h"
#include "engine/error.h"
#include "engine/reactor.h"

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    cr_assert_eq(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts), 0);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct fd_count {
    int reads;
} fd_count;

static int on_fd(anm_reactor *reactor, int fd, void *arg)
{
    (void)reactor;
    fd_count *count = arg;
    char buffer[16];
    if (read(fd, buffer, sizeof buffer) > 0)
        count->reads++;
    return ANM_OK;
}

static int on_timer(anm_reactor *reactor, int timer_id, void *arg)
{
    (void)reactor;
    (void)timer_id;
    int64_t *fired_ns = arg;
    *fired_ns = anm_monotonic_ns();
    return ANM_OK;
}

typedef struct fixture {
    anm_clock *clock;
    anm_reactor *reactor;
    int fds[2];
    fd_count count;
} fixture;

static void make(fixture *f, int64_t spin_us)
{
    *f = (fixture){0};
    f->clock = anm_clock_new_real();
    cr_assert_not_null(f->clock);
    cr_assert_eq(anm_reactor_new(f->clock, &f->reactor), ANM_OK);
    anm_reactor_set_spin_us(f->reactor, spin_us);
    cr_assert_eq(pipe(f->fds), 0);
    cr_assert_eq(anm_reactor_add_fd(f->reactor, f->fds[0], on_fd, &f->count), ANM_OK);
}

static void unmake(fixture *f)
{
    anm_reactor_destroy(&f->reactor);
    anm_clock_destroy(&f->clock);
    close(f->fds[0]);
    close(f->fds[1]);
}

/* Writes a byte and has the reactor handle it: opens a spin window. */
static void handle_one_event(fixture *f)
{
    int before = f->count.reads;
    cr_assert_eq(write(f->fds[1], "x", 1), 1);
    cr_assert_eq(anm_reactor_run_once(f->reactor, 1000), 1);
    cr_assert_eq(f->count.reads, before + 1);
}

Test(reactor_spin, spin_setting_is_clamped_and_off_by_default)
{
    fixture f;
    make(&f, 0);
    cr_assert_eq(anm_reactor_spin_us(f.reactor), 0);
    anm_reactor_set_spin_us(f.reactor, 250);
    cr_assert_eq(anm_reactor_spin_us(f.reactor), 250);
    anm_reactor_set_spin_us(f.reactor, -5);
    cr_assert_eq(anm_reactor_spin_us(f.reactor), 0);
    anm_reactor_set_spin_us(f.reactor, 5000000000LL);
    cr_assert_eq(anm_reactor_spin_us(f.reactor), ANM_REACTOR_MAX_SPIN_US);
    unmake(&f);
}

Test(reactor_spin, an_idle_reactor_blocks_without_using_cpu, .timeout = 10)
{
    fixture f;
    make(&f, ANM_REACTOR_MAX_SPIN_US); /* a 1 s window, were one ever opened */
    int64_t cpu0 = thread_cpu_ns(), t0 = anm_monotonic_ns();
    cr_assert_eq(anm_reactor_run_once(f.reactor, 200), 0);
    int64_t cpu_ms = (thread_cpu_ns() - cpu0) / 1000000;
    int64_t wall_ms = (anm_monotonic_ns() - t0) / 1000000;
    cr_assert_geq(wall_ms, 190, "waited %lld ms", (long long)wall_ms);
    cr_assert_leq(cpu_ms, 10, "an idle loop used %lld ms of CPU in 200 ms", (long long)cpu_ms);
    unmake(&f);
}

Test(reactor_spin, after_io_it_spins_for_the_window_then_blocks, .timeout = 10)
{
    fixture f;
    make(&f, 100000); /* 100 ms */
    handle_one_event(&f);
    int64_t cpu0 = thread_cpu_ns(), t0 = anm_monotonic_ns();
    cr_assert_eq(anm_reactor_run_once(f.reactor, 400), 0, "nothing more arrived");
    int64_t cpu_ms = (thread_cpu_ns() - cpu0) / 1000000;
    int64_t wall_ms = (anm_monotonic_ns() - t0) / 1000000;
    /* the full wait, spin included (not 400 ms on top of the spin) */
    cr_assert_geq(wall_ms, 390, "waited %lld ms", (long long)wall_ms);
    cr_assert_leq(wall_ms, 700, "waited %lld ms", (long long)wall_ms);
    /* it spun (a blocked poll would use ~0 ms), but only for the 100 ms window */
    cr_assert_geq(cpu_ms, 20, "spun for only %lld ms of CPU", (long long)cpu_ms);
    cr_assert_leq(cpu_ms, 130, "used %lld ms of CPU: spun past its window", (long long)cpu_ms);

    /* the window was used up: the next wait blocks from the start */
    cpu0 = thread_cpu_ns();
    cr_assert_eq(anm_reactor_run_once(f.reactor, 150), 0);
    cpu_ms = (thread_cpu_ns() - cpu0) / 1000000;
    cr_assert_leq(cpu_ms, 10, "used %lld ms of CPU after the window", (long long)cpu_ms);
    unmake(&f);
}

Test(reactor_spin, spin_zero_never_spins, .timeout = 10)
{
    fixture f;
    make(&f, 100000);
    anm_reactor_set_spin_us(f.reactor, 0);
    handle_one_event(&f);
    int64_t cpu0 = thread_cpu_ns();
    cr_assert_eq(anm_reactor_run_once(f.reactor, 150), 0);
    int64_t cpu_ms = (thread_cpu_ns() - cpu0) / 1000000;
    cr_assert_leq(cpu_ms, 10, "used %lld ms of CPU with spinning off", (long long)cpu_ms);
    unmake(&f);
}

typedef struct delayed_write {
    int fd;
    int64_t delay_ns;
    int64_t written_ns;
} delayed_write;

static void *write_later(void *arg)
{
    delayed_write *w = arg;
    struct timespec pause = {0, (long)w->delay_ns};
    nanosleep(&pause, NULL);
    w->written_ns = anm_monotonic_ns();
    ssize_t n = write(w->fd, "y", 1);
    (void)n;
    return NULL;
}

Test(reactor_spin, an_event_during_the_spin_is_delivered_at_once, .timeout = 10)
{
    fixture f;
    make(&f, ANM_REACTOR_MAX_SPIN_US);
    handle_one_event(&f);
    delayed_write w = {.fd = f.fds[1], .delay_ns = 20000000};
    pthread_t thread;
    cr_assert_eq(pthread_create(&thread, NULL, write_later, &w), 0);
    int64_t t0 = anm_monotonic_ns();
    cr_assert_eq(anm_reactor_run_once(f.reactor, 5000), 1, "the write is handled");
    int64_t returned_ns = anm_monotonic_ns();
    pthread_join(thread, NULL);
    cr_assert_eq(f.count.reads, 2);
    int64_t wall_ms = (returned_ns - t0) / 1000000;
    /* it returned for the write (at ~20 ms), not at the end of the 1 s spin */
    cr_assert_geq(wall_ms, 19, "returned after %lld ms", (long long)wall_ms);
    cr_assert_leq(wall_ms, 500, "returned after %lld ms", (long long)wall_ms);
    cr_assert_geq(returned_ns, w.written_ns);
    unmake(&f);
}

Test(reactor_spin, a_timer_due_during_the_spin_fires_on_time, .timeout = 10)
{
    fixture f;
    make(&f, ANM_REACTOR_MAX_SPIN_US); /* a 1 s window: the timer must cut it short */
    handle_one_event(&f);
    int64_t fired_ns = 0;
    int64_t t0 = anm_monotonic_ns();
    cr_assert_eq(anm_reactor_add_timer(f.reactor, 30, 0, on_timer, &fired_ns, NULL), ANM_OK);
    while (fired_ns == 0)
        cr_assert_geq(anm_reactor_run_once(f.reactor, -1), 0);
    int64_t after_ms = (fired_ns - t0) / 1000000;
    cr_assert_geq(after_ms, 29, "fired after %lld ms", (long long)after_ms);
    cr_assert_leq(after_ms, 300, "fired after %lld ms, not at its 30 ms deadline",
                  (long long)after_ms);
    unmake(&f);
}

Test(reactor_spin, max_wait_bounds_the_spin, .timeout = 10)
{
    fixture f;
    make(&f, ANM_REACTOR_MAX_SPIN_US);
    handle_one_event(&f);
    int64_t t0 = anm_monotonic_ns();
    cr_assert_eq(anm_reactor_run_once(f.reactor, 30), 0);
    int64_t wall_ms = (anm_monotonic_ns() - t0) / 1000000;
    cr_assert_geq(wall_ms, 29, "returned after %lld ms", (long long)wall_ms);
    cr_assert_leq(wall_ms, 300, "returned after %lld ms, not after max_wait_ms 30",
                  (long long)wall_ms);
    /* run_once(0) never waits, spin window or not */
    handle_one_event(&f);
    t0 = anm_monotonic_ns();
    cr_assert_eq(anm_reactor_run_once(f.reactor, 0), 0);
    wall_ms = (anm_monotonic_ns() - t0) / 1000000;
    cr_assert_leq(wall_ms, 50, "run_once(0) took %lld ms", (long long)wall_ms);
    unmake(&f);
}
