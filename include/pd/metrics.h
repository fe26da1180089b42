/*
 * The service's counters, rendered in the Prometheus text format
 * (version 0.0.4) for GET /metrics.
 *
 * Threads: everything is called on the loop thread, except
 * pd_metrics_add_store(), which the writer threads call after each batch;
 * those counters are C11 atomics.  Per-tenant series are capped at
 * PD_METRICS_MAX_TENANTS tenants; later tenants are counted under
 * tenant="_other", so a flood of tenants cannot grow memory without bound.
 */
#ifndef PD_METRICS_H
#define PD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "pd/buf.h"

#define PD_METRICS_MAX_TENANTS 10000

typedef enum pd_metric_outcome {
    PD_M_PROCESSED,
    PD_M_DUPLICATE,
    PD_M_REJECTED,
    PD_M_ERROR,
    PD_M_OUTCOMES
} pd_metric_outcome_t;

typedef struct pd_metrics pd_metrics_t;

/* The gauges, sampled by the caller when rendering. */
typedef struct pd_metrics_gauges {
    size_t queue_depth;    /* batches waiting for a writer */
    size_t queue_capacity; /* the bound beyond which requests are refused */
    size_t batches_in_flight;
    size_t connections;
    int draining;
} pd_metrics_gauges_t;

/* A new set of counters; release with pd_metrics_destroy(). */
int pd_metrics_create(pd_metrics_t **out);
void pd_metrics_destroy(pd_metrics_t *m);

/* Adds one request's record outcomes for tenant. */
void pd_metrics_records(pd_metrics_t *m, const char *tenant, const long counts[PD_M_OUTCOMES]);

/* One committed batch transaction, BEGIN to COMMIT acknowledged. */
void pd_metrics_commit(pd_metrics_t *m, double ms);

/* One answered request; route is one of a fixed set of strings (static storage). */
void pd_metrics_request(pd_metrics_t *m, const char *route, int status);

/* Writer threads: what their store counted since the last call. */
void pd_metrics_add_store(pd_metrics_t *m, uint64_t db_errors, uint64_t reconnects,
                          uint64_t retries);

/*
 * Who the exposition is for.  The service address answers anyone who can
 * reach it, and per-tenant series would tell a stranger who the tenants are
 * and how much each sends: there records are counted by outcome
 * only, summed over every tenant.  The tenant series are for the operator's
 * address (--metrics-listen).
 */
typedef enum pd_metrics_view {
    PD_METRICS_PUBLIC, /* no tenant names: patternd_records_total{outcome} */
    PD_METRICS_FULL    /* patternd_records_total{tenant,outcome} as well */
} pd_metrics_view_t;

/* Appends the exposition for view to out. */
void pd_metrics_render_view(const pd_metrics_t *m, const pd_metrics_gauges_t *g,
                            pd_metrics_view_t view, pd_buf_t *out);

/* pd_metrics_render_view() with PD_METRICS_FULL. */
void pd_metrics_render(const pd_metrics_t *m, const pd_metrics_gauges_t *g, pd_buf_t *out);

#endif
