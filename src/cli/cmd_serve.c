/*
 * `patternd serve`: wiring only.  This file parses the options, checks the
 * database once (pd_cli_preflight), runs the service (include/pd/
 * service.h, src/service/) on one libuv loop, and handles the signals.
 *
 * Shutdown: the first SIGTERM or SIGINT drains the service: it stops
 * accepting, closes idle connections and lets every request already begun
 * finish and be answered, then closes its pools, and the command returns
 * 0.  If that takes longer than --drain-timeout, or on a second signal, the
 * process leaves at once (status 1 or 130) without waiting for the threads.
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
    {"readers", "N", pd_opt_int, OPT(readers), "2",
     "reader threads: keys, reads, reviews, readiness", 1, 64},
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
    pd_service_t *sv;
    pd_cli_signals_t signals;
    uv_timer_t drain_timer;
    int abandon; /* non-zero: leave at once with this status */
} serve_t;

/* The service drained and closed: only the signal handling and the drain timer are left. */
static void on_stopped(void *ctx)
{
    serve_t *s = ctx;
    pd_cli_signals_close(&s->signals);
    uv_close((uv_handle_t *)&s->drain_timer, NULL);
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
           pd_service_connections(s->sv));
    uv_timer_start(&s->drain_timer, on_drain_timeout, (uint64_t)s->opt.drain_timeout_ms, 0);
    pd_service_drain(s->sv, on_stopped, s);
}

/* The service's settings, from the options; conninfo and the proxies are borrowed. */
static pd_service_config_t service_config(const serve_options_t *o, const char *conninfo,
                                          bool db_checked)
{
    return (pd_service_config_t){
        .conninfo = conninfo,
        .host = o->listen.host,
        .port = o->listen.port,
        .metrics_host = o->metrics_listen.host[0] != '\0' ? o->metrics_listen.host : NULL,
        .metrics_port = o->metrics_listen.port,
        .workers = o->workers,
        .readers = o->readers,
        .queue = o->queue.given ? (size_t)o->queue.n : (size_t)o->workers * 2,
        .tenant_share = o->tenant_share,
        .max_body = o->max_body,
        .max_buffered = o->max_buffered,
        .max_record = o->max_record,
        .max_records = o->max_records,
        .max_connections = o->max_connections,
        .max_connections_per_client = o->max_per_client,
        .trusted_proxies = &o->trusted_proxies,
        .read_timeout_ms = o->read_timeout_ms,
        .idle_timeout_ms = o->idle_timeout_ms,
        .key_refresh_ms = (uint64_t)o->key_cache_seconds * 1000,
        .auth_failures = o->auth_failures,
        .async_commit = o->async_commit,
        .retry_budget_ms = o->retry_seconds * 1000,
        .allow_bypass = o->allow_bypass,
        .db_checked = db_checked,
    };
}

/* The drain timer and the signals; on failure the service is drained. */
static int start_signals(serve_t *s)
{
    int rc = uv_timer_init(&s->loop, &s->drain_timer);
    s->drain_timer.data = s;
    if (rc == 0 && (rc = pd_cli_signals_start(&s->loop, &s->signals, on_signal, s)) < 0)
        uv_close((uv_handle_t *)&s->drain_timer, NULL);
    if (rc < 0) {
        pd_cli_fail("cannot handle signals: %s", uv_strerror(rc));
        pd_service_drain(s->sv, NULL, NULL);
    }
    return rc;
}

static void announce(const serve_t *s, const pd_service_config_t *cfg)
{
    const char *host = cfg->host;
    bool v6 = strchr(host, ':') != NULL;
    int port = pd_service_port(s->sv);
    pd_log(PD_LOG_INFO, "loop",
           "listening on %s:%d (%d writers, queue %zu, %d readers, max body %zu bytes)", host, port,
           cfg->workers, cfg->queue, cfg->readers, cfg->max_body);
    printf("listening on %s%s%s:%d\n", v6 ? "[" : "", host, v6 ? "]" : "", port);
    if (cfg->metrics_host != NULL) {
        const char *mhost = cfg->metrics_host;
        bool mv6 = strchr(mhost, ':') != NULL;
        int mport = pd_service_metrics_port(s->sv);
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
    const char *conninfo = pd_db_conninfo(s.opt.db);
    int checked = pd_cli_preflight(conninfo, true, s.opt.allow_bypass, true);
    if (checked < 0)
        return PD_EXIT_FAIL;
    pd_service_config_t cfg = service_config(&s.opt, conninfo, checked == 0);

    /* A client that goes away must not kill the process with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    if (pd_service_create(&cfg, &s.sv) < 0 || uv_loop_init(&s.loop) != 0) {
        pd_cli_fail("out of memory");
        pd_service_destroy(s.sv);
        return PD_EXIT_FAIL;
    }
    int exit_code = PD_EXIT_FAIL;
    pd_error_t err;
    if (pd_service_start(s.sv, &s.loop, &err) < 0) {
        pd_cli_fail("%s", err.message);
        uv_run(&s.loop, UV_RUN_DEFAULT); /* until what started is closed */
    } else if (start_signals(&s) < 0) {
        uv_run(&s.loop, UV_RUN_DEFAULT);
    } else {
        announce(&s, &cfg);
        uv_run(&s.loop, UV_RUN_DEFAULT);
        if (s.abandon)
            return s.abandon | PD_EXIT_NOW;
        pd_log(PD_LOG_INFO, "loop", "stopped");
        exit_code = PD_EXIT_OK;
    }
    if (uv_loop_close(&s.loop) != 0)
        pd_log(PD_LOG_WARN, "loop", "handles still open at exit");
    pd_service_destroy(s.sv);
    return exit_code;
}
