/*
 * The HTTP ingestion service behind `patternd serve`: its life, from
 * create to destroy.  What it serves and how a request goes through it:
 *
 *   http/            loop thread: connections, parsing, limits (generic)
 *   service/router.c   loop thread: route, and the first step of each
 *   service/keyring.c  loop thread: the key table, reloaded by a reader
 *   service/reader.c   reader threads: key table loads, pattern reads, readiness
 *   service/ingest.c   loop thread: admission, body -> one batch of the key's tenant
 *   worker/writer.c    writer threads: detect, then store, in one transaction
 *   service/call.c     loop thread: the answers, each counted in the metrics
 *
 * The service owns its writer and reader pools, its key ring, the request
 * admission, the metrics and its HTTP servers (the service address, and
 * the operator's metrics address when configured).
 *
 * Thread: every function here is called on the loop thread.
 */
#ifndef PD_SERVICE_H
#define PD_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pd/error.h"
#include "pd/proxies.h"

typedef struct pd_service pd_service_t;

typedef struct pd_service_config {
    const char *conninfo;     /* borrowed: must outlive the service */
    const char *host;         /* the service address */
    int port;                 /* 0: any free port (pd_service_port) */
    const char *metrics_host; /* the operator's metrics address, or NULL for none */
    int metrics_port;
    int workers;         /* writer threads, one connection each */
    int readers;         /* reader threads, one connection each */
    size_t queue;        /* batches that may wait for a writer */
    double tenant_share; /* of queue + workers, one tenant's at most */
    size_t max_body;     /* bytes of one request body, after decompression */
    size_t max_buffered; /* body bytes received and not yet answered, all requests */
    size_t max_record;   /* bytes of one record */
    size_t max_records;  /* records in one request */
    int max_connections;
    int max_connections_per_client;
    const pd_proxies_t *trusted_proxies; /* borrowed, may be NULL */
    int read_timeout_ms, idle_timeout_ms;
    uint64_t key_refresh_ms; /* how old the key table may be */
    int auth_failures;       /* failed key checks per client per minute */
    bool async_commit;
    int retry_budget_ms; /* a batch is given up after retrying this long */
    bool allow_bypass;   /* serve as a role that bypasses row-level security */
    /*
     * The database was reached, its schema is current and the role is
     * allowed (pd_cli_preflight).  When false, the key ring's loads check
     * it until it answers, and until then /readyz and /v1 get 503.
     */
    bool db_checked;
} pd_service_config_t;

/* A new service, not started; cfg is copied.  Returns 0 or PD_ENOMEM. */
int pd_service_create(const pd_service_config_t *cfg, pd_service_t **out);

/*
 * Starts the pools, the key ring and the HTTP servers on loop.  Returns 0,
 * or a negative code with the reason in err; whatever started is then
 * closed again (running loop until it is), and only pd_service_destroy()
 * is left to call.
 */
int pd_service_start(pd_service_t *sv, uv_loop_t *loop, pd_error_t *err);

/* The port the service address listens on; the metrics address's, or 0 without one. */
int pd_service_port(const pd_service_t *sv);
int pd_service_metrics_port(const pd_service_t *sv);

/* Open connections of the service address. */
size_t pd_service_connections(const pd_service_t *sv);

/*
 * Stops accepting, closes idle connections and lets every request already
 * begun finish and be answered; then closes the key ring and the pools.
 * stopped(ctx) runs once nothing of the service is left on the loop.  Call
 * once, after a successful start.
 */
void pd_service_drain(pd_service_t *sv, void (*stopped)(void *ctx), void *ctx);

/*
 * Releases the service: after stopped() ran, or after a failed start.
 * NULL is fine.  A service whose loop was abandoned (threads still running)
 * is not to be destroyed.
 */
void pd_service_destroy(pd_service_t *sv);

#endif
