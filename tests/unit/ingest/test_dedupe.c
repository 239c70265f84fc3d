/* test_dedupe.c: sender sequence windows, the recent-sample set, the latency histogram. */
#include "ingest/dedupe.h"
#include "ingest/latency.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

Test(dedupe, sender_window_tells_new_seen_and_stale)
{
    ingest_senders *s = ingest_senders_new();
    cr_assert_eq(ingest_senders_check(s, 7, 100), INGEST_SEQ_NEW);
    cr_assert_eq(ingest_senders_mark(s, 7, 100), 0);
    cr_assert_eq(ingest_senders_check(s, 7, 100), INGEST_SEQ_SEEN);
    cr_assert_eq(ingest_senders_check(s, 8, 100), INGEST_SEQ_NEW, "another sender");
    /* out of order: 102 before 101 */
    ingest_senders_mark(s, 7, 102);
    cr_assert_eq(ingest_senders_check(s, 7, 101), INGEST_SEQ_NEW, "a gap stays open");
    ingest_senders_mark(s, 7, 101);
    cr_assert_eq(ingest_senders_check(s, 7, 101), INGEST_SEQ_SEEN);
    /* jump: 100 falls out of the window (1024 below the newest) */
    ingest_senders_mark(s, 7, 100 + INGEST_SEQ_WINDOW);
    cr_assert_eq(ingest_senders_check(s, 7, 100), INGEST_SEQ_STALE);
    cr_assert_eq(ingest_senders_check(s, 7, 101), INGEST_SEQ_SEEN);
    cr_assert_eq(ingest_senders_check(s, 7, 103), INGEST_SEQ_NEW, "cleared when the window moved");
    /* bytes round-trip */
    const ingest_sender_window *w = ingest_senders_find(s, 7);
    unsigned char bytes[INGEST_SEQ_WINDOW_BYTES];
    ingest_sender_window_to_bytes(w, bytes);
    ingest_sender_window copy = *w;
    memset(copy.bits, 0xff, sizeof copy.bits);
    ingest_sender_window_from_bytes(&copy, bytes);
    cr_assert_eq(memcmp(copy.bits, w->bits, sizeof copy.bits), 0);
    ingest_senders_destroy(&s);
    cr_assert_null(s);
}

Test(dedupe, recent_set_finds_repeats_and_forgets_removed)
{
    ingest_recent *r = ingest_recent_new(10);
    cr_assert_not_null(r);
    for (int64_t t = 0; t < 300; t++)
        cr_assert_eq(ingest_recent_insert(r, 5, t * 50), 1);
    for (int64_t t = 0; t < 300; t++)
        cr_assert_eq(ingest_recent_insert(r, 5, t * 50), 0, "repeat %lld", (long long)t);
    cr_assert_eq(ingest_recent_insert(r, 6, 0), 1, "another signal, same time");
    ingest_recent_remove(r, 5, 100);
    cr_assert_eq(ingest_recent_insert(r, 5, 100), 1, "removed: new again");
    /* 2^10 slots a generation: after 2048 more distinct keys the first ones are gone */
    for (int64_t t = 0; t < 2048; t++)
        ingest_recent_insert(r, 9, t);
    cr_assert_eq(ingest_recent_insert(r, 5, 0), 1, "evicted from the window");
    ingest_recent_destroy(&r);
}

Test(latency, quantiles_match_a_sorted_reference)
{
    static ingest_latency h;
    ingest_latency_reset(&h);
    cr_assert_eq(ingest_latency_quantile(&h, 0.5), -1.0);
    /* 1000 values 1..1000 ms: p50 = 500, p99 = 990 (the k-th smallest, k = ceil(q n)) */
    for (int v = 1; v <= 1000; v++)
        ingest_latency_add(&h, v, 1);
    cr_assert_float_eq(ingest_latency_quantile(&h, 0.5), 500.0, 1e-9);
    cr_assert_float_eq(ingest_latency_quantile(&h, 0.99), 990.0, 1e-9);
    /* above 1 s the buckets are 2^(1/64) wide: 5000 ms reported within 1.1 % */
    ingest_latency_reset(&h);
    ingest_latency_add(&h, 5000, 10);
    ingest_latency_add(&h, 20, 10);
    double p99 = ingest_latency_quantile(&h, 0.99);
    cr_assert(p99 >= 5000.0 && p99 <= 5000.0 * 1.011, "p99 %f", p99);
    cr_assert_float_eq(ingest_latency_quantile(&h, 0.5), 20.0, 1e-9);
}
