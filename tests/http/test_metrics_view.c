/*
 * Stage: metrics (src/metrics/metrics.c).  The metrics page for anonymous callers names no
 * tenant: records are counted by outcome only, summed over every tenant; the full page, for
 * the operator's address, keeps the per-tenant series.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/metrics.h"

static char *render(const pd_metrics_t *m, pd_metrics_view_t view)
{
    pd_metrics_gauges_t g = {.queue_depth = 1, .queue_capacity = 8, .connections = 2};
    pd_buf_t b = {0};
    pd_metrics_render_view(m, &g, view, &b);
    cr_assert(!b.failed);
    char *text = strndup(b.data, b.len);
    pd_buf_close(&b);
    return text;
}

static pd_metrics_t *two_tenants(void)
{
    pd_metrics_t *m;
    cr_assert_eq(pd_metrics_create(&m), 0);
    const long acme[PD_M_OUTCOMES] = {3, 1, 2, 0};
    const long globex[PD_M_OUTCOMES] = {4, 0, 1, 1};
    pd_metrics_records(m, "acme-corp", acme);
    pd_metrics_records(m, "globex", globex);
    pd_metrics_records(m, "acme-corp", acme);
    pd_metrics_request(m, "ingest", 200);
    pd_metrics_commit(m, 3.0);
    return m;
}

Test(metrics, public_view_names_no_tenant_and_sums_outcomes)
{
    pd_metrics_t *m = two_tenants();
    char *text = render(m, PD_METRICS_PUBLIC);
    cr_assert_null(strstr(text, "acme"), "%s", text);
    cr_assert_null(strstr(text, "globex"), "%s", text);
    cr_assert_null(strstr(text, "tenant="), "%s", text);
    cr_assert_not_null(strstr(text, "patternd_records_total{outcome=\"processed\"} 10\n"), "%s",
                       text);
    cr_assert_not_null(strstr(text, "patternd_records_total{outcome=\"duplicate\"} 2\n"), "%s",
                       text);
    cr_assert_not_null(strstr(text, "patternd_records_total{outcome=\"rejected\"} 5\n"), "%s",
                       text);
    cr_assert_not_null(strstr(text, "patternd_records_total{outcome=\"error\"} 1\n"), "%s", text);
    /* Everything that is not about tenants is still there. */
    cr_assert_not_null(
        strstr(text, "patternd_http_requests_total{route=\"ingest\",code=\"200\"} 1"), "%s", text);
    cr_assert_not_null(strstr(text, "patternd_batch_commit_seconds_count 1\n"), "%s", text);
    cr_assert_not_null(strstr(text, "patternd_queue_depth 1\n"), "%s", text);
    cr_assert_not_null(strstr(text, "patternd_http_connections 2\n"), "%s", text);
    free(text);
    pd_metrics_destroy(m);
}

Test(metrics, full_view_keeps_per_tenant_series)
{
    pd_metrics_t *m = two_tenants();
    char *text = render(m, PD_METRICS_FULL);
    cr_assert_not_null(
        strstr(text, "patternd_records_total{tenant=\"acme-corp\",outcome=\"processed\"} 6\n"),
        "%s", text);
    cr_assert_not_null(
        strstr(text, "patternd_records_total{tenant=\"globex\",outcome=\"error\"} 1\n"), "%s",
        text);
    /* pd_metrics_render() is the full view. */
    pd_metrics_gauges_t g = {.queue_depth = 1, .queue_capacity = 8, .connections = 2};
    pd_buf_t b = {0};
    pd_metrics_render(m, &g, &b);
    cr_assert_eq(b.len, strlen(text));
    cr_assert_eq(memcmp(b.data, text, b.len), 0);
    pd_buf_close(&b);
    free(text);
    pd_metrics_destroy(m);
}
