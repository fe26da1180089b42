/*
 * Private to src/service/: which handler a request goes to, and the first
 * step of each: the pd_http_config_t callbacks of the service's two
 * addresses.  /healthz and /metrics are answered at once; the key of a /v1
 * route is checked by the key ring, without a database lookup, then the
 * body goes to the ingestion endpoint (POST /v1/workflows) or the read to a
 * reader thread (GET /v1/patterns); /readyz is checked on a reader thread
 * too.  The loop never waits on the database.  Loop thread.
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
