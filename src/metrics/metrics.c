/*
 * Service metrics; see include/pd/metrics.h.
 *
 * Threads: the loop thread owns everything but the three store counters,
 * which writer threads add to atomically.
 */
#include "pd/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/error.h"
#include "pd/record.h"

/* Upper bounds of the commit latency buckets, in seconds. */
static const double BUCKETS[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25,  0.5,    1,     2.5,  5,     10};
#define N_BUCKETS (sizeof(BUCKETS) / sizeof(BUCKETS[0]))
static const char *const OUTCOMES[PD_M_OUTCOMES] = {"processed", "duplicate", "rejected", "error"};

typedef struct tenant_counts {
    char tenant[PD_TENANT_MAX + 1];
    uint64_t n[PD_M_OUTCOMES];
} tenant_counts_t;

typedef struct request_count {
    const char *route;
    int status;
    uint64_t n;
} request_count_t;

struct pd_metrics {
    tenant_counts_t *tenants; /* sorted by name, so lookups are a binary search */
    size_t n_tenants, cap_tenants;
    tenant_counts_t other;
    uint64_t commit_buckets[N_BUCKETS + 1]; /* the last is +Inf */
    uint64_t commit_count;
    double commit_sum_s;
    request_count_t *requests; /* (route, status) pairs seen; few */
    size_t n_requests, cap_requests;
    _Atomic uint64_t db_errors, reconnects, retries;
};

int pd_metrics_create(pd_metrics_t **out)
{
    pd_metrics_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return PD_ENOMEM;
    strcpy(m->other.tenant, "_other");
    atomic_init(&m->db_errors, 0);
    atomic_init(&m->reconnects, 0);
    atomic_init(&m->retries, 0);
    *out = m;
    return PD_OK;
}

void pd_metrics_destroy(pd_metrics_t *m)
{
    if (m == NULL)
        return;
    free(m->tenants);
    free(m->requests);
    free(m);
}

static tenant_counts_t *tenant_slot(pd_metrics_t *m, const char *tenant)
{
    size_t lo = 0, hi = m->n_tenants;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(m->tenants[mid].tenant, tenant);
        if (c == 0)
            return &m->tenants[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (m->n_tenants >= PD_METRICS_MAX_TENANTS)
        return &m->other;
    if (m->n_tenants == m->cap_tenants) {
        size_t cap = m->cap_tenants ? m->cap_tenants * 2 : 16;
        tenant_counts_t *grown = realloc(m->tenants, cap * sizeof(*grown));
        if (grown == NULL)
            return &m->other;
        m->tenants = grown;
        m->cap_tenants = cap;
    }
    memmove(&m->tenants[lo + 1], &m->tenants[lo], (m->n_tenants - lo) * sizeof(*m->tenants));
    m->n_tenants++;
    memset(&m->tenants[lo], 0, sizeof(*m->tenants));
    snprintf(m->tenants[lo].tenant, sizeof(m->tenants[lo].tenant), "%s", tenant);
    return &m->tenants[lo];
}

void pd_metrics_records(pd_metrics_t *m, const char *tenant, const long counts[PD_M_OUTCOMES])
{
    tenant_counts_t *t = tenant_slot(m, tenant);
    for (int i = 0; i < PD_M_OUTCOMES; i++)
        t->n[i] += (uint64_t)counts[i];
}

void pd_metrics_commit(pd_metrics_t *m, double ms)
{
    double s = ms / 1000.0;
    size_t b = 0;
    while (b < N_BUCKETS && s > BUCKETS[b])
        b++;
    m->commit_buckets[b]++;
    m->commit_count++;
    m->commit_sum_s += s;
}

void pd_metrics_request(pd_metrics_t *m, const char *route, int status)
{
    for (size_t i = 0; i < m->n_requests; i++) {
        if (m->requests[i].route == route && m->requests[i].status == status) {
            m->requests[i].n++;
            return;
        }
    }
    if (m->n_requests == m->cap_requests) {
        size_t cap = m->cap_requests ? m->cap_requests * 2 : 16;
        request_count_t *grown = realloc(m->requests, cap * sizeof(*grown));
        if (grown == NULL)
            return;
        m->requests = grown;
        m->cap_requests = cap;
    }
    m->requests[m->n_requests++] = (request_count_t){.route = route, .status = status, .n = 1};
}

void pd_metrics_add_store(pd_metrics_t *m, uint64_t db_errors, uint64_t reconnects,
                          uint64_t retries)
{
    atomic_fetch_add(&m->db_errors, db_errors);
    atomic_fetch_add(&m->reconnects, reconnects);
    atomic_fetch_add(&m->retries, retries);
}

static void put_fmt(pd_buf_t *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put_fmt(pd_buf_t *out, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        pd_buf_put(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void put_tenant(pd_buf_t *out, const tenant_counts_t *t)
{
    /* Tenant ids are [A-Za-z0-9._-]: nothing to escape in a label value. */
    for (int i = 0; i < PD_M_OUTCOMES; i++)
        put_fmt(out, "patternd_records_total{tenant=\"%s\",outcome=\"%s\"} %llu\n", t->tenant,
                OUTCOMES[i], (unsigned long long)t->n[i]);
}

/* The records counters with no tenant label: each outcome summed over every tenant. */
static void put_totals(pd_buf_t *out, const pd_metrics_t *m)
{
    for (int i = 0; i < PD_M_OUTCOMES; i++) {
        uint64_t sum = m->other.n[i];
        for (size_t t = 0; t < m->n_tenants; t++)
            sum += m->tenants[t].n[i];
        put_fmt(out, "patternd_records_total{outcome=\"%s\"} %llu\n", OUTCOMES[i],
                (unsigned long long)sum);
    }
}

void pd_metrics_render(const pd_metrics_t *m, const pd_metrics_gauges_t *g, pd_buf_t *out)
{
    pd_metrics_render_view(m, g, PD_METRICS_FULL, out);
}

void pd_metrics_render_view(const pd_metrics_t *m, const pd_metrics_gauges_t *g,
                            pd_metrics_view_t view, pd_buf_t *out)
{
    if (view == PD_METRICS_FULL) {
        PD_BUF_LIT(out, "# HELP patternd_records_total Records received over HTTP, by tenant "
                        "and outcome.\n# TYPE patternd_records_total counter\n");
        for (size_t i = 0; i < m->n_tenants; i++)
            put_tenant(out, &m->tenants[i]);
        if (m->n_tenants >= PD_METRICS_MAX_TENANTS)
            put_tenant(out, &m->other);
    } else {
        PD_BUF_LIT(out, "# HELP patternd_records_total Records received over HTTP, by outcome "
                        "(every tenant).\n# TYPE patternd_records_total counter\n");
        put_totals(out, m);
    }

    PD_BUF_LIT(out, "# HELP patternd_http_requests_total Requests answered by the handlers, by "
                    "route and status.\n# TYPE patternd_http_requests_total counter\n");
    for (size_t i = 0; i < m->n_requests; i++)
        put_fmt(out, "patternd_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
                m->requests[i].route, m->requests[i].status, (unsigned long long)m->requests[i].n);

    PD_BUF_LIT(out, "# HELP patternd_batch_commit_seconds Batch transactions, BEGIN to COMMIT "
                    "acknowledged.\n# TYPE patternd_batch_commit_seconds histogram\n");
    uint64_t cumulative = 0;
    for (size_t b = 0; b < N_BUCKETS; b++) {
        cumulative += m->commit_buckets[b];
        put_fmt(out, "patternd_batch_commit_seconds_bucket{le=\"%g\"} %llu\n", BUCKETS[b],
                (unsigned long long)cumulative);
    }
    put_fmt(out, "patternd_batch_commit_seconds_bucket{le=\"+Inf\"} %llu\n",
            (unsigned long long)m->commit_count);
    put_fmt(out, "patternd_batch_commit_seconds_sum %.6f\n", m->commit_sum_s);
    put_fmt(out, "patternd_batch_commit_seconds_count %llu\n", (unsigned long long)m->commit_count);

    put_fmt(out,
            "# HELP patternd_queue_depth Batches waiting for a writer.\n"
            "# TYPE patternd_queue_depth gauge\npatternd_queue_depth %zu\n"
            "# HELP patternd_queue_capacity Batches that may wait before requests are refused.\n"
            "# TYPE patternd_queue_capacity gauge\npatternd_queue_capacity %zu\n",
            g->queue_depth, g->queue_capacity);
    put_fmt(out,
            "# HELP patternd_batches_in_flight Batches submitted and not finished.\n"
            "# TYPE patternd_batches_in_flight gauge\npatternd_batches_in_flight %zu\n"
            "# HELP patternd_http_connections Open HTTP connections.\n"
            "# TYPE patternd_http_connections gauge\npatternd_http_connections %zu\n",
            g->batches_in_flight, g->connections);
    put_fmt(out,
            "# HELP patternd_draining 1 while shutting down.\n"
            "# TYPE patternd_draining gauge\npatternd_draining %d\n",
            g->draining);
    put_fmt(out,
            "# HELP patternd_db_errors_total Batches that could not be committed.\n"
            "# TYPE patternd_db_errors_total counter\npatternd_db_errors_total %llu\n",
            (unsigned long long)atomic_load(&m->db_errors));
    put_fmt(out,
            "# HELP patternd_db_reconnects_total Writer reconnections after a lost connection.\n"
            "# TYPE patternd_db_reconnects_total counter\npatternd_db_reconnects_total %llu\n",
            (unsigned long long)atomic_load(&m->reconnects));
    put_fmt(out,
            "# HELP patternd_db_retries_total Batch transactions retried (deadlock, "
            "serialization failure, lost connection).\n"
            "# TYPE patternd_db_retries_total counter\npatternd_db_retries_total %llu\n",
            (unsigned long long)atomic_load(&m->retries));
}
