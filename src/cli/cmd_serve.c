/*
 * `patternd serve`: wiring only.  The stages of a request are described in
 * include/pd/service.h; this file parses the options, checks the database
 * once (pd_cli_preflight), starts the writer and reader pools and the HTTP
 * server on one libuv loop, and handles the signals.
 *
 * Shutdown: the first SIGTERM or SIGINT stops accepting, closes idle
 * connections and lets every request already begun finish and be answered;
 * then the pools are closed and the command returns 0.  If that takes
 * longer than --drain-timeout, or on a second signal, the process leaves
 * at once (status 1 or 130) without waiting for the threads.
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "pd/cli.h"
#include "pd/db.h"
#include "pd/log.h"
#include "pd/options.h"
#include "pd/proxies.h"
#include "pd/service.h"
#include "pd/store.h"
#include "pd/writer.h"

#define READER_QUEUE 256

typedef struct serve_options {
    const char *db;
    struct listen {
        char host[256];
        int port;
    } listen, metrics_listen; /* metrics_listen.host "" when not given */
    int workers, readers;
    struct queue_option {
        long n;
        bool given; /* else 2 x workers */
    } queue;
    size_t max_body, max_buffered, max_record, max_records;
    int max_connections, max_per_client;
    double tenant_share;
    int key_cache_seconds, auth_failures;
    pd_proxies_t trusted_proxies;
    int read_timeout_ms, idle_timeout_ms, drain_timeout_ms;
    bool async_commit, allow_bypass;
    int retry_seconds;
    pd_log_level_t log_level;
} serve_options_t;

/* "HOST:PORT" or "[V6]:PORT". */
static bool parse_listen(const pd_option_t *opt, const char *arg, void *dst)
{
    struct listen *l = dst;
    const char *colon = strrchr(arg, ':');
    long port;
    if (colon == NULL || !pd_cli_count("--listen", colon + 1, 0, 65535, &port))
        goto bad;
    const char *h = arg;
    size_t n = (size_t)(colon - arg);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(l->host))
        goto bad;
    memcpy(l->host, h, n);
    l->host[n] = '\0';
    l->port = (int)port;
    return true;
bad:
    pd_cli_fail("--%s: expected HOST:PORT, got '%s'", opt->name, arg);
    return false;
}

static bool parse_queue(const pd_option_t *opt, const char *arg, void *dst)
{
    struct queue_option *q = dst;
    return (q->given = pd_opt_long(opt, arg, &q->n));
}

static bool parse_share(const pd_option_t *opt, const char *arg, void *dst)
{
    char *end;
    double v = strtod(arg, &end);
    if (end != arg && *end == '\0' && v > 0 && v <= 1) {
        *(double *)dst = v;
        return true;
    }
    pd_cli_fail("--%s: expected a fraction above 0 and at most 1, got '%s'", opt->name, arg);
    return false;
}

static bool parse_proxies(const pd_option_t *opt, const char *arg, void *dst)
{
    pd_error_t err;
    if (pd_proxies_parse(arg, dst, &err) == 0)
        return true;
    pd_cli_fail("--%s: %s", opt->name, err.message);
    return false;
}

static bool parse_level(const pd_option_t *opt, const char *arg, void *dst)
{
    if (pd_log_parse_level(arg, dst) == 0)
        return true;
    pd_cli_fail("--%s: expected debug, info, warn or error, got '%s'", opt->name, arg);
    return false;
}

#define OPT(field) offsetof(serve_options_t, field)
static const pd_option_t OPTIONS[] = {
    {"db", "URL", pd_opt_string, OPT(db), NULL,
     "database (default: $DATABASE_URL, else libpq's PG* variables);\n"
     "connect as a member of patternd_service, not as the owner",
     0, 0},
    {"listen", "HOST:PORT", parse_listen, OPT(listen), "127.0.0.1:8080",
     "address (port 0 picks a free one)", 0, 0},
    {"metrics-listen", "HOST:PORT", parse_listen, OPT(metrics_listen), NULL,
     "also serve GET /metrics with the per-tenant series on this\n"
     "address (keep it private: e.g. 127.0.0.1:9464); the service\n"
     "address's /metrics names no tenant",
     0, 0},
    {"workers", "N", pd_opt_int, OPT(workers), "4", "writer threads, one connection each", 1, 64},
    {"readers", "N", pd_opt_int, OPT(readers), "2", "reader threads for keys, patterns, readiness",
     1, 64},
    {"queue", "N", parse_queue, OPT(queue), NULL,
     "batches that may wait for a writer before requests are\n"
     "refused with 503 (default: 2 x workers)",
     0, 100000},
    {"max-body-bytes", "N", pd_opt_size, OPT(max_body), "16777216", "largest request body", 1024,
     1L << 30},
    {"max-buffered-bytes", "N", pd_opt_size, OPT(max_buffered), "268435456",
     "request bodies held at once", 1024, 1L << 40},
    PD_OPTION_MAX_RECORD(serve_options_t, max_record, "largest record"),
    {"max-records", "N", pd_opt_size, OPT(max_records), "10000",
     "records in one request (413 past it)", 1, 1000000},
    {"max-connections", "N", pd_opt_int, OPT(max_connections), "1024",
     "open connections (503 past it)", 1, 1000000},
    {"max-connections-per-client", "N", pd_opt_int, OPT(max_per_client), "64",
     "open connections from one client address (429 past it)", 1, 1000000},
    {"tenant-share", "F", parse_share, OPT(tenant_share), "0.5",
     "share of the write path (queue + workers) one tenant may hold\n"
     "at once; its requests past it get 429",
     0, 0},
    {"key-cache-seconds", "S", pd_opt_int, OPT(key_cache_seconds), "2",
     "reload the table of active API keys every S seconds (1 to 5):\n"
     "a revoked key is refused about S seconds later at most",
     1, 5},
    {"max-auth-failures", "N", pd_opt_int, OPT(auth_failures), "30",
     "failed key checks per client per minute; that client's\n"
     "failures past it get 429 (valid keys are never refused)",
     1, 1000000},
    {"trusted-proxies", "CIDR[,CIDR...]", parse_proxies, OPT(trusted_proxies), NULL,
     "peers whose X-Forwarded-For names the client that the\n"
     "per-client limits count (default: none; the header of any\n"
     "other peer is ignored)",
     0, 0},
    {"read-timeout", "S", pd_opt_seconds_ms, OPT(read_timeout_ms), "30",
     "a request must arrive whole within S seconds", 0, 86400},
    {"idle-timeout", "S", pd_opt_seconds_ms, OPT(idle_timeout_ms), "60",
     "close keep-alive connections idle this long", 0, 86400},
    {"drain-timeout", "S", pd_opt_seconds_ms, OPT(drain_timeout_ms), "40",
     "on SIGTERM, give in-flight requests this long\n(keep it above --read-timeout)", 0, 86400},
    {"async-commit", NULL, pd_opt_flag, OPT(async_commit), NULL,
     "synchronous_commit = off (answers may precede durability)", 0, 0},
    {"retry-seconds", "N", pd_opt_int, OPT(retry_seconds), "120",
     "give a batch up after retrying this long", 1, 86400},
    {"log-level", "L", parse_level, OPT(log_level), "info", "debug, info, warn or error", 0, 0},
    {"allow-rls-bypass", NULL, pd_opt_flag, OPT(allow_bypass), NULL,
     "start even when the role bypasses row-level security\n"
     "(superuser, BYPASSRLS or table owner): for development only",
     0, 0},
    PD_OPTION_END,
};

static const pd_command_t COMMAND = {
    "patternd serve [options]",
    "Serves multi-tenant ingestion over HTTP/1.1.  Each request authenticates with\n"
    "`Authorization: Bearer <key>` (see `patternd keys`) and acts for the key's tenant.\n"
    "\n"
    "  POST /v1/workflows    NDJSON (application/x-ndjson) or a JSON array of records;\n"
    "                        answered after commit with a summary and one result per\n"
    "                        record: 200 all processed or duplicates, 207 some rejected\n"
    "                        or failed, 401 bad key, 413 too large, 415 unknown\n"
    "                        Content-Encoding (gzip is read), 429 the tenant's share or\n"
    "                        the address's limits used up, 503 busy\n"
    "  GET /v1/patterns?top=N  the tenant's patterns by potential monthly savings\n"
    "  GET /healthz, /readyz, /metrics (Prometheus)\n"
    "\n"
    "Prints \"listening on HOST:PORT\" on standard output once it accepts connections.\n"
    "SIGTERM or SIGINT: stop accepting, answer the requests in flight, exit 0.\n",
    OPTIONS,
    0,
};

typedef struct serve {
    serve_options_t opt;
    uv_loop_t loop;
    pd_service_t sv;
    pd_writer_config_t writer_cfg;
    pd_http_server_t *metrics_http; /* --metrics-listen, or NULL */
    pd_cli_signals_t signals;
    uv_timer_t drain_timer;
    int abandon; /* non-zero: leave at once with this status */
} serve_t;

static void on_readers_closed(void *ctx)
{
    serve_t *s = ctx;
    s->sv.readers = NULL;
    pd_cli_signals_close(&s->signals);
    uv_close((uv_handle_t *)&s->drain_timer, NULL);
}

static void on_writers_closed(void *ctx)
{
    serve_t *s = ctx;
    s->sv.writers = NULL;
    pd_pool_close(s->sv.readers, on_readers_closed);
}

/* Every connection is closed, so every request taken was answered.  ctx: the service. */
static void on_drained(void *ctx)
{
    serve_t *s = (serve_t *)((char *)ctx - offsetof(serve_t, sv));
    pd_log(PD_LOG_INFO, "loop", "every request answered; stopping the workers");
    pd_keyring_close(&s->sv.keyring);
    pd_pool_close(s->sv.writers, on_writers_closed);
}

static void on_drain_timeout(uv_timer_t *t)
{
    serve_t *s = t->data;
    pd_log(PD_LOG_ERROR, "loop", "requests still in flight after the drain timeout; exiting");
    s->abandon = PD_EXIT_FAIL;
    uv_stop(&s->loop);
}

static void on_signal(void *ctx, int signum, int count)
{
    serve_t *s = ctx;
    if (count > 1) {
        pd_log(PD_LOG_WARN, "loop", "signal %d again: exiting without draining", signum);
        s->abandon = 130;
        uv_stop(&s->loop);
        return;
    }
    pd_log(PD_LOG_INFO, "loop",
           "signal %d: no longer accepting; answering the %zu open connections' requests", signum,
           pd_http_server_connections(s->sv.http));
    s->sv.draining = true;
    uv_timer_start(&s->drain_timer, on_drain_timeout, (uint64_t)s->opt.drain_timeout_ms, 0);
    if (s->metrics_http != NULL)
        pd_http_server_drain(s->metrics_http, NULL);
    pd_http_server_drain(s->sv.http, on_drained);
}

/* Starts both pools; on failure, whatever started is closed again. */
static int start_pools(serve_t *s)
{
    pd_pool_config_t writers = {
        .workers = s->opt.workers,
        .queue_capacity = s->sv.queue,
        .init = pd_writer_init,
        .work = pd_writer_work,
        .fini = pd_writer_fini,
        .done = pd_service_on_batch_done,
        .ctx = s, /* for the close callbacks; the done callbacks need none */
        .worker_ctx = &s->writer_cfg,
    };
    pd_pool_config_t readers = {
        .workers = s->opt.readers,
        .queue_capacity = READER_QUEUE,
        .init = pd_reader_init,
        .work = pd_reader_work,
        .fini = pd_reader_fini,
        .done = pd_service_on_read_done,
        .ctx = s,
        .worker_ctx = &s->sv,
    };
    if (pd_pool_create(&s->loop, &writers, &s->sv.writers) < 0) {
        pd_cli_fail("cannot start the writer threads");
        return -1;
    }
    if (pd_pool_create(&s->loop, &readers, &s->sv.readers) < 0) {
        pd_cli_fail("cannot start the reader threads");
        pd_pool_close(s->sv.writers, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        return -1;
    }
    return 0;
}

/* Starts the key ring (its first load); on failure closes the pools. */
static int start_keyring(serve_t *s, uint64_t refresh_ms, const pd_auth_config_t *auth)
{
    if (pd_keyring_init(&s->sv.keyring, &s->sv, refresh_ms, auth) == 0)
        return 0;
    pd_cli_fail("out of memory");
    pd_pool_close(s->sv.writers, on_writers_closed); /* closes the readers too */
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return -1;
}

/* The operator's metrics address, when --metrics-listen names one. */
static int start_metrics_http(serve_t *s, pd_error_t *err)
{
    if (s->opt.metrics_listen.host[0] == '\0')
        return 0;
    pd_http_config_t http = {
        .host = s->opt.metrics_listen.host,
        .port = s->opt.metrics_listen.port,
        .max_body = 1024,
        .max_buffered = 64 * 1024,
        .max_connections = 16,
        .max_connections_per_client = 16,
        .read_timeout_ms = s->opt.read_timeout_ms,
        .idle_timeout_ms = s->opt.idle_timeout_ms,
        .on_request = pd_service_on_metrics_request,
        .ctx = &s->sv,
    };
    return pd_http_server_create(&s->loop, &http, &s->metrics_http, err);
}

/* Starts the HTTP servers and the signal handling; on failure closes the pools. */
static int start_http(serve_t *s)
{
    pd_error_t err;
    pd_http_config_t http = {
        .host = s->opt.listen.host,
        .port = s->opt.listen.port,
        .max_body = s->opt.max_body,
        .max_buffered = s->opt.max_buffered,
        .max_connections = s->opt.max_connections,
        .max_connections_per_client = s->opt.max_per_client,
        .trusted_proxies = &s->opt.trusted_proxies,
        .read_timeout_ms = s->opt.read_timeout_ms,
        .idle_timeout_ms = s->opt.idle_timeout_ms,
        .on_request = pd_service_on_request,
        .on_refused = pd_service_on_refused,
        .ctx = &s->sv,
    };
    int rc = uv_timer_init(&s->loop, &s->drain_timer);
    s->drain_timer.data = s;
    if (rc == 0 && (rc = pd_cli_signals_start(&s->loop, &s->signals, on_signal, s)) < 0)
        uv_close((uv_handle_t *)&s->drain_timer, NULL);
    if (rc < 0) {
        pd_cli_fail("cannot handle signals: %s", uv_strerror(rc));
    } else if (start_metrics_http(s, &err) < 0 ||
               pd_http_server_create(&s->loop, &http, &s->sv.http, &err) < 0) {
        pd_cli_fail("%s", err.message);
        rc = -1;
    }
    if (rc < 0) {
        if (s->metrics_http != NULL)
            pd_http_server_drain(s->metrics_http, NULL);
        pd_keyring_close(&s->sv.keyring);
        pd_pool_close(s->sv.writers, on_writers_closed); /* closes the rest too */
        uv_run(&s->loop, UV_RUN_DEFAULT);
        pd_http_server_destroy(s->metrics_http);
    }
    return rc;
}

static void release(serve_t *s)
{
    pd_metrics_destroy(s->sv.metrics);
    pd_keyring_release(&s->sv.keyring);
    pd_admission_destroy(s->sv.admission);
}

static void announce(const serve_t *s)
{
    const char *host = s->opt.listen.host;
    bool v6 = strchr(host, ':') != NULL;
    int port = pd_http_server_port(s->sv.http);
    pd_log(PD_LOG_INFO, "loop",
           "listening on %s:%d (%d writers, queue %zu, %d readers, max body %zu bytes)", host, port,
           s->opt.workers, s->sv.queue, s->opt.readers, s->opt.max_body);
    printf("listening on %s%s%s:%d\n", v6 ? "[" : "", host, v6 ? "]" : "", port);
    if (s->metrics_http != NULL) {
        const char *mhost = s->opt.metrics_listen.host;
        bool mv6 = strchr(mhost, ':') != NULL;
        int mport = pd_http_server_port(s->metrics_http);
        pd_log(PD_LOG_INFO, "loop", "metrics with tenant series on %s:%d", mhost, mport);
        printf("metrics on %s%s%s:%d\n", mv6 ? "[" : "", mhost, mv6 ? "]" : "", mport);
    }
    fflush(stdout);
}

int pd_cmd_serve(int argc, char **argv)
{
    static serve_t s; /* static: the threads may outlive this frame on an abandoned exit */
    int first;
    int status = pd_options_parse(&COMMAND, argc, argv, &s.opt, &first);
    if (status != PD_OPTIONS_RUN)
        return status;
    pd_log_set_level(s.opt.log_level);
    s.sv = (pd_service_t){
        .loop = &s.loop,
        .conninfo = pd_db_conninfo(s.opt.db),
        .queue = s.opt.queue.given ? (size_t)s.opt.queue.n : (size_t)s.opt.workers * 2,
        .max_record = s.opt.max_record,
        .max_records = s.opt.max_records,
        .max_body = s.opt.max_body,
    };
    int checked = pd_cli_preflight(s.sv.conninfo, true, s.opt.allow_bypass, true);
    if (checked < 0)
        return PD_EXIT_FAIL;
    s.sv.db_checked = checked == 0;
    s.sv.allow_bypass = s.opt.allow_bypass;

    /* A client that goes away must not kill the process with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    if (pd_metrics_create(&s.sv.metrics) < 0 ||
        pd_admission_create(s.sv.queue + (size_t)s.opt.workers, s.opt.tenant_share,
                            &s.sv.admission) < 0 ||
        uv_loop_init(&s.loop) != 0) {
        pd_cli_fail("out of memory");
        release(&s);
        return PD_EXIT_FAIL;
    }
    s.writer_cfg = (pd_writer_config_t){
        .store = {.conninfo = s.sv.conninfo,
                  .async_commit = s.opt.async_commit,
                  .retry_budget_ms = s.opt.retry_seconds * 1000},
        .metrics = s.sv.metrics,
        .log = true,
    };
    int exit_code = PD_EXIT_FAIL;
    pd_auth_config_t auth = {.failures = s.opt.auth_failures};
    if (start_pools(&s) == 0 &&
        start_keyring(&s, (uint64_t)s.opt.key_cache_seconds * 1000, &auth) == 0 &&
        start_http(&s) == 0) {
        announce(&s);
        uv_run(&s.loop, UV_RUN_DEFAULT);
        if (s.abandon)
            return s.abandon | PD_EXIT_NOW;
        pd_http_server_destroy(s.sv.http);
        pd_http_server_destroy(s.metrics_http);
        pd_log(PD_LOG_INFO, "loop", "stopped");
        exit_code = PD_EXIT_OK;
    }
    if (uv_loop_close(&s.loop) != 0)
        pd_log(PD_LOG_WARN, "loop", "handles still open at exit");
    release(&s);
    return exit_code;
}
