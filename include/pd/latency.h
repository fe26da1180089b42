/*
 * A latency histogram with bounded memory: 5% wide logarithmic buckets from
 * 1 µs to about 20 minutes, enough for p50/p99 of batch commits however many
 * batches a run has.  Not thread-safe: one owner adds and reads.
 */
#ifndef PD_LATENCY_H
#define PD_LATENCY_H

#include <stdint.h>

#define PD_LATENCY_BUCKETS 430

typedef struct pd_latency {
    uint64_t buckets[PD_LATENCY_BUCKETS];
    uint64_t count;
    double sum_ms;
    double max_ms;
} pd_latency_t;

void pd_latency_add(pd_latency_t *h, double ms);

/* The q-quantile (0 < q <= 1) in milliseconds, within 5%; 0 when empty. */
double pd_latency_quantile(const pd_latency_t *h, double q);

#endif
