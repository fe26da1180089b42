/*
 * Private to src/service/: which handler a request goes to, and the first
 * step of each: the pd_http_config_t callbacks of the service's two
 * addresses.
 *
 * /healthz, /metrics and /v1/openapi.json are answered at once, without a
 * key.  The key of every other /v1 route is checked by the key ring,
 * without a database lookup, then its scope (docs/spec.md §7: 403 without
 * it, before any body byte is read); then the body goes to the ingestion
 * endpoint (POST /v1/workflows), or the request, with its small JSON body
 * when it has one, to a reader thread (api.h: the patterns, a review, the
 * summary, the thresholds).  /readyz is checked on a reader thread too.
 * The loop never waits on the database.
 *
 * Each route is one row of router.c's ENDPOINTS (path, method, the
 * function that serves it, and for keyed routes the api.h endpoint and
 * scope), so adding a route is adding a row.
 *
 * HEAD is allowed wherever GET is (answered as GET, without the body); a
 * method a route does not serve gets 405 with an Allow header listing
 * those it does.  Loop thread.
 */
#ifndef PD_SERVICE_ROUTER_H
#define PD_SERVICE_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "ingest.h"
#include "keyring.h"
#include "pd/http.h"
#include "pd/metrics.h"
#include "pd/pool.h"

/* What the routes reach; every pointer is borrowed, and filled by the service. */
typedef struct pd__router {
    pd_metrics_t *metrics;
    pd__keyring_t *keyring;
    pd_pool_t *readers;         /* of pd__reader_* callbacks */
    const pd__ingest_t *ingest; /* POST /v1/workflows, and the writers for the gauges */
    pd_http_server_t *http;     /* the service address, for the connections gauge */
    size_t queue;               /* the writers' queue bound, for the gauges */
    bool draining;              /* /readyz answers 503, the gauge says 1 */
} pd__router_t;

/* The service address (ctx: the pd__router_t). */
void pd__router_on_request(void *ctx, pd_http_request_t *req);
void pd__router_on_refused(void *ctx, int status);

/* The operator's metrics address (--metrics-listen): GET /metrics with the tenant series. */
void pd__router_on_metrics_request(void *ctx, pd_http_request_t *req);

#endif
