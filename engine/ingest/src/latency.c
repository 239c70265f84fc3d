/* latency.c: the latency histogram (see latency.h). */
#include "ingest/latency.h"

#include <math.h>
#include <string.h>

void ingest_latency_reset(ingest_latency *h) { memset(h, 0, sizeof *h); }

static int bucket_of(int64_t ms)
{
    if (ms < 1000)
        return ms < 0 ? 0 : (int)ms;
    int b = 1000 + (int)floor(64.0 * log2((double)ms / 1000.0));
    return b >= INGEST_LATENCY_BUCKETS ? INGEST_LATENCY_BUCKETS - 1 : b;
}

/* Upper edge of bucket b in ms. */
static double upper_edge(int b)
{
    if (b < 1000)
        return (double)b;
    return 1000.0 * exp2((double)(b - 1000 + 1) / 64.0);
}

void ingest_latency_add(ingest_latency *h, int64_t ms, uint64_t n)
{
    h->counts[bucket_of(ms)] += n;
    h->total += n;
    if (ms > h->max_ms)
        h->max_ms = ms;
}

double ingest_latency_quantile(const ingest_latency *h, double q)
{
    if (h->total == 0)
        return -1.0;
    double target = q * (double)h->total;
    uint64_t seen = 0;
    for (int b = 0; b < INGEST_LATENCY_BUCKETS; b++) {
        seen += h->counts[b];
        if ((double)seen >= target && h->counts[b] > 0) {
            double edge = upper_edge(b);
            return edge > (double)h->max_ms ? (double)h->max_ms : edge;
        }
    }
    return (double)h->max_ms;
}

void ingest_latency_merge(ingest_latency *into, const ingest_latency *from)
{
    for (int b = 0; b < INGEST_LATENCY_BUCKETS; b++)
        into->counts[b] += from->counts[b];
    into->total += from->total;
    if (from->max_ms > into->max_ms)
        into->max_ms = from->max_ms;
}
