/*
 * The service's life; see include/pd/service.h.
 *
 * Start: the writer and reader pools, then the key ring (its first load
 * goes to a reader), then the HTTP servers, the operator's metrics address
 * first.  Drain: both servers stop accepting and finish their requests;
 * once both are drained every request taken was answered, so the key ring
 * stops its timers and the pools close, the writers first (their batches
 * may still be committing), then the readers; then stopped().  A failed
 * start closes what started, in the same order.
 *
 * Thread: the loop thread.  The pools' threads see only the writer
 * configuration and the readers' shared part, which live here as long as
 * the service.
 */
#include "pd/service.h"

#include <stdlib.h>

#include "ingest.h"
#include "keyring.h"
#include "pd/admission.h"
#include "pd/http.h"
#include "pd/log.h"
#include "pd/metrics.h"
#include "pd/pool.h"
#include "pd/writer.h"
#include "reader.h"
#include "router.h"

#define READER_QUEUE 256

struct pd_service {
    pd_service_config_t cfg;
    uv_loop_t *loop;
    pd_metrics_t *metrics;
    pd_admission_t *admission; /* POST requests in flight, in all and per tenant */
    pd_writer_config_t writer_cfg;
    pd__reader_shared_t reader_shared;
    pd_pool_t *writers, *readers; /* NULL when not running */
    pd__keyring_t keyring;
    pd__ingest_t ingest;
    pd__router_t router;
    pd_http_server_t *http, *metrics_http;
    int servers_draining; /* servers whose drained() has not run yet */
    void (*stopped)(void *ctx);
    void *stopped_ctx;
};

int pd_service_create(const pd_service_config_t *cfg, pd_service_t **out)
{
    pd_service_t *sv = calloc(1, sizeof(*sv));
    if (sv == NULL)
        return PD_ENOMEM;
    sv->cfg = *cfg;
    if (pd_metrics_create(&sv->metrics) < 0 ||
        pd_admission_create(cfg->queue + (size_t)cfg->workers, cfg->tenant_share, &sv->admission) <
            0) {
        pd_service_destroy(sv);
        return PD_ENOMEM;
    }
    *out = sv;
    return PD_OK;
}

void pd_service_destroy(pd_service_t *sv)
{
    if (sv == NULL)
        return;
    pd_http_server_destroy(sv->http);
    pd_http_server_destroy(sv->metrics_http);
    pd__keyring_release(&sv->keyring);
    pd_admission_destroy(sv->admission);
    pd_metrics_destroy(sv->metrics);
    free(sv);
}

/* --- closing the pools, one after the other ---------------------------------------- */

static void on_readers_closed(void *ctx)
{
    pd_service_t *sv = ctx;
    sv->readers = NULL;
    if (sv->stopped != NULL)
        sv->stopped(sv->stopped_ctx);
}

static void on_writers_closed(void *ctx)
{
    pd_service_t *sv = ctx;
    sv->writers = NULL;
    if (sv->readers != NULL)
        pd_pool_close(sv->readers, on_readers_closed);
    else
        on_readers_closed(sv);
}

static void close_pools(pd_service_t *sv)
{
    if (sv->writers != NULL)
        pd_pool_close(sv->writers, on_writers_closed);
    else
        on_writers_closed(sv);
}

/* --- start ------------------------------------------------------------------------------ */

static int start_pools(pd_service_t *sv, pd_error_t *err)
{
    const pd_service_config_t *cfg = &sv->cfg;
    sv->writer_cfg = (pd_writer_config_t){
        .store = {.conninfo = cfg->conninfo,
                  .async_commit = cfg->async_commit,
                  .retry_budget_ms = cfg->retry_budget_ms},
        .metrics = sv->metrics,
        .log = true,
    };
    sv->reader_shared.conninfo = cfg->conninfo;
    sv->reader_shared.allow_bypass = cfg->allow_bypass;
    pd_pool_config_t writers = {
        .workers = cfg->workers,
        .queue_capacity = cfg->queue,
        .init = pd_writer_init,
        .work = pd_writer_work,
        .fini = pd_writer_fini,
        .done = pd__ingest_on_batch_done,
        .ctx = sv, /* for the close callback */
        .worker_ctx = &sv->writer_cfg,
    };
    pd_pool_config_t readers = {
        .workers = cfg->readers,
        .queue_capacity = READER_QUEUE,
        .init = pd__reader_init,
        .work = pd__reader_work,
        .fini = pd__reader_fini,
        .done = pd__reader_done,
        .ctx = sv,
        .worker_ctx = &sv->reader_shared,
    };
    if (pd_pool_create(sv->loop, &writers, &sv->writers) < 0)
        return pd_error_set(err, PD_ENOMEM, 0, "", "cannot start the writer threads");
    if (pd_pool_create(sv->loop, &readers, &sv->readers) < 0)
        return pd_error_set(err, PD_ENOMEM, 0, "", "cannot start the reader threads");
    return PD_OK;
}

static int start_http(pd_service_t *sv, pd_error_t *err)
{
    const pd_service_config_t *cfg = &sv->cfg;
    if (cfg->metrics_host != NULL) {
        pd_http_config_t metrics = {
            .host = cfg->metrics_host,
            .port = cfg->metrics_port,
            .max_body = 1024,
            .max_buffered = 64 * 1024,
            .max_connections = 16,
            .max_connections_per_client = 16,
            .read_timeout_ms = cfg->read_timeout_ms,
            .idle_timeout_ms = cfg->idle_timeout_ms,
            .on_request = pd__router_on_metrics_request,
            .ctx = &sv->router,
        };
        int rc = pd_http_server_create(sv->loop, &metrics, &sv->metrics_http, err);
        if (rc < 0)
            return rc;
    }
    pd_http_config_t http = {
        .host = cfg->host,
        .port = cfg->port,
        .max_body = cfg->max_body,
        .max_buffered = cfg->max_buffered,
        .max_connections = cfg->max_connections,
        .max_connections_per_client = cfg->max_connections_per_client,
        .trusted_proxies = cfg->trusted_proxies,
        .read_timeout_ms = cfg->read_timeout_ms,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .on_request = pd__router_on_request,
        .on_refused = pd__router_on_refused,
        .ctx = &sv->router,
    };
    int rc = pd_http_server_create(sv->loop, &http, &sv->http, err);
    sv->router.http = sv->http;
    return rc;
}

int pd_service_start(pd_service_t *sv, uv_loop_t *loop, pd_error_t *err)
{
    const pd_service_config_t *cfg = &sv->cfg;
    pd_auth_config_t auth = {.failures = cfg->auth_failures};
    bool ring = false;
    sv->loop = loop;
    int rc = start_pools(sv, err);
    if (rc < 0)
        goto fail;
    rc = pd__keyring_init(&sv->keyring, loop, sv->readers, cfg->key_refresh_ms, &auth,
                          cfg->db_checked);
    if (rc < 0) {
        pd_error_set(err, rc, 0, "", "out of memory");
        goto fail;
    }
    ring = true;
    sv->ingest = (pd__ingest_t){
        .writers = sv->writers,
        .admission = sv->admission,
        .metrics = sv->metrics,
        .max_record = cfg->max_record,
        .max_records = cfg->max_records,
        .max_body = cfg->max_body,
    };
    sv->router = (pd__router_t){
        .metrics = sv->metrics,
        .keyring = &sv->keyring,
        .readers = sv->readers,
        .ingest = &sv->ingest,
        .queue = cfg->queue,
    };
    if ((rc = start_http(sv, err)) < 0)
        goto fail;
    return PD_OK;
fail:
    /* What started closes as the loop runs on; nothing calls back. */
    if (sv->metrics_http != NULL)
        pd_http_server_drain(sv->metrics_http, NULL, NULL);
    if (ring)
        pd__keyring_close(&sv->keyring);
    close_pools(sv);
    return rc;
}

int pd_service_port(const pd_service_t *sv)
{
    return pd_http_server_port(sv->http);
}

int pd_service_metrics_port(const pd_service_t *sv)
{
    return sv->metrics_http != NULL ? pd_http_server_port(sv->metrics_http) : 0;
}

size_t pd_service_connections(const pd_service_t *sv)
{
    return pd_http_server_connections(sv->http);
}

/* --- drain ------------------------------------------------------------------------------ */

/* A server is drained; once both are, every request taken was answered. */
static void on_server_drained(void *ctx)
{
    pd_service_t *sv = ctx;
    if (--sv->servers_draining > 0)
        return;
    pd_log(PD_LOG_INFO, "loop", "every request answered; stopping the workers");
    pd__keyring_close(&sv->keyring);
    close_pools(sv);
}

void pd_service_drain(pd_service_t *sv, void (*stopped)(void *ctx), void *ctx)
{
    sv->stopped = stopped;
    sv->stopped_ctx = ctx;
    sv->router.draining = true;
    sv->servers_draining = sv->metrics_http != NULL ? 2 : 1;
    if (sv->metrics_http != NULL)
        pd_http_server_drain(sv->metrics_http, on_server_drained, sv);
    pd_http_server_drain(sv->http, on_server_drained, sv);
}
