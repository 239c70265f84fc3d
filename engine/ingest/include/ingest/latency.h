/*
 * latency.h: a histogram of latencies in milliseconds for p50/p99 reports:
 * 1 ms buckets up to 1 s, then 64 buckets per doubling (about 1.1 % wide) up
 * to about 12 days; a quantile is the upper edge of its bucket (the error
 * is at most one bucket). Not thread-safe: the owner locks.
 */
#ifndef INGEST_LATENCY_H
#define INGEST_LATENCY_H

#include <stdint.h>

#define INGEST_LATENCY_BUCKETS (1000 + 64 * 20)

typedef struct ingest_latency {
    uint64_t counts[INGEST_LATENCY_BUCKETS];
    uint64_t total;
    int64_t max_ms;
} ingest_latency;

void ingest_latency_reset(ingest_latency *h);
/* Adds n observations of ms (negative values count as 0). */
void ingest_latency_add(ingest_latency *h, int64_t ms, uint64_t n);
/* The q-quantile (0 < q <= 1) in ms, or -1 when empty. */
double ingest_latency_quantile(const ingest_latency *h, double q);
void ingest_latency_merge(ingest_latency *into, const ingest_latency *from);

#endif
