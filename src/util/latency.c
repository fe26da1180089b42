/* Latency histogram; see include/pd/latency.h.  One owner thread per histogram. */
#include "pd/latency.h"

#include <math.h>

#define PD_LATENCY_MIN_MS 0.001
#define PD_LATENCY_GROWTH 1.05

void pd_latency_add(pd_latency_t *h, double ms)
{
    int i = 0;
    if (ms > PD_LATENCY_MIN_MS)
        i = (int)(log(ms / PD_LATENCY_MIN_MS) / log(PD_LATENCY_GROWTH)) + 1;
    if (i >= PD_LATENCY_BUCKETS)
        i = PD_LATENCY_BUCKETS - 1;
    h->buckets[i]++;
    h->count++;
    h->sum_ms += ms;
    if (ms > h->max_ms)
        h->max_ms = ms;
}

double pd_latency_quantile(const pd_latency_t *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count), seen = 0;
    for (int i = 0; i < PD_LATENCY_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank && seen > 0) {
            /* The upper bound of bucket i, but never above what was seen. */
            double upper = PD_LATENCY_MIN_MS * pow(PD_LATENCY_GROWTH, i);
            return upper < h->max_ms ? upper : h->max_ms;
        }
    }
    return h->max_ms;
}
