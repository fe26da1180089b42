/* Routing; see router.h.  Loop thread. */
#include "router.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "pd/buf.h"
#include "reader.h"

#define TOP_DEFAULT 20
#define TOP_MAX 10000

/* The routes, as metric labels. */
static const char R_WORKFLOWS[] = "/v1/workflows";
static const char R_PATTERNS[] = "/v1/patterns";
static const char R_HEALTHZ[] = "/healthz";
static const char R_READYZ[] = "/readyz";
static const char R_METRICS[] = "/metrics";
static const char R_OTHER[] = "other";

static const struct route {
    const char *path;
    const char *method;
} ROUTES[] = {
    {R_HEALTHZ, "GET"},    {R_METRICS, "GET"},  {R_READYZ, "GET"},
    {R_WORKFLOWS, "POST"}, {R_PATTERNS, "GET"},
};

/* A read of a request, with a reader thread until its done(). */
typedef struct read {
    pd__reader_job_t job; /* first: the pool's link */
    pd__call_t *call;
    pd__router_t *router;
} read_t;

/* Reads ?top=N into *top (default TOP_DEFAULT); false when it is malformed. */
static bool parse_top(const char *query, long *top)
{
    *top = TOP_DEFAULT;
    for (const char *q = query; *q != '\0';) {
        const char *end = strchr(q, '&');
        size_t n = end ? (size_t)(end - q) : strlen(q);
        if (n > 4 && strncmp(q, "top=", 4) == 0) {
            char digits[16], *stop;
            size_t d = n - 4;
            if (d >= sizeof(digits))
                return false;
            memcpy(digits, q + 4, d);
            digits[d] = '\0';
            errno = 0;
            long v = strtol(digits, &stop, 10);
            if (errno != 0 || *stop != '\0' || v < 1 || v > TOP_MAX)
                return false;
            *top = v;
        }
        q += n + (end != NULL);
    }
    return true;
}

/*
 * Ready: the database answers, the schema is current, the role is checked,
 * and the service is not stopping.  Why not goes to the log (the reader
 * logs it): the answer is anonymous, so it names no host, port or role.
 */
static void answer_ready(pd__call_t *call, const pd__router_t *router, const pd__reader_job_t *j)
{
    bool ready = j->rc == PD_OK && j->ready;
    if (ready && !router->draining) {
        static const char ok[] = "{\"status\": \"ready\"}\n";
        pd__call_answer(call, 200, "", ok, sizeof(ok) - 1);
    } else {
        pd__call_fail(call, 503,
                      router->draining ? "shutting down"
                      : j->rc < 0      ? "the database is unavailable"
                                       : "not ready: the service log says why");
    }
}

/* A read is back from its reader thread. */
static void on_read_done(pd__reader_job_t *job)
{
    read_t *rd = job->owner;
    if (job->kind == PD__READER_READY)
        answer_ready(rd->call, rd->router, job);
    else if (job->rc < 0)
        pd__call_fail(rd->call, 503, "the database is unavailable; retry later");
    else
        pd__call_answer(rd->call, 200, "", job->body, job->len);
    free(job->body);
    free(rd);
}

static void submit_read(pd__router_t *router, pd__call_t *call, pd__reader_kind_t kind, long top)
{
    read_t *rd = pd_pool_full(router->readers) ? NULL : calloc(1, sizeof(*rd));
    if (rd == NULL) {
        pd__call_fail(call, 503, "busy; retry later");
        return;
    }
    rd->call = call;
    rd->router = router;
    rd->job = (pd__reader_job_t){
        .kind = kind, .tenant = call->key.tenant, .top = top, .done = on_read_done, .owner = rd};
    pd_pool_submit(router->readers, &rd->job.job);
}

/* The Prometheus exposition; the tenant series only for the operator's address. */
static void answer_metrics(pd__router_t *router, pd__call_t *call, pd_metrics_view_t view)
{
    const pd__ingest_t *ingest = router->ingest;
    pd_metrics_gauges_t g = {
        .queue_depth = pd_pool_queued(ingest->writers),
        .queue_capacity = router->queue,
        .batches_in_flight = pd_pool_outstanding(ingest->writers),
        .connections = pd_http_server_connections(router->http),
        .draining = router->draining,
    };
    pd_buf_t b = {0};
    pd_metrics_request(router->metrics, call->route, 200); /* counted before rendering */
    pd_metrics_render_view(router->metrics, &g, view, &b);
    pd_http_respond(call->req, 200, "text/plain; version=0.0.4; charset=utf-8", "", b.data, b.len,
                    false);
    pd_buf_close(&b);
    pd__call_free(call);
}

/* The key was valid: the route's next step. */
static void on_authorized(pd__call_t *call)
{
    pd__router_t *router = call->ctx;
    if (call->route == R_WORKFLOWS) {
        pd__ingest_start(router->ingest, call);
        return;
    }
    long top;
    parse_top(pd_http_query(call->req), &top); /* checked before the key */
    submit_read(router, call, PD__READER_PATTERNS, top);
}

/*
 * The /v1 routes: the key first (401 without one), before any body byte is
 * read; then the body (POST /v1/workflows) or the read.
 */
static void route_v1(pd__router_t *router, pd__call_t *call)
{
    long top;
    if (pd_key_from_bearer(pd_http_authorization(call->req), &call->key) < 0) {
        pd__call_fail(call, 401, "missing or malformed API key: send Authorization: Bearer <key>");
        return;
    }
    if (call->route == R_PATTERNS && !parse_top(pd_http_query(call->req), &top)) {
        pd__call_fail(call, 400, "top: expected a number from 1 to 10000");
        return;
    }
    if (!pd__keyring_db_checked(router->keyring)) {
        pd__call_fail(call, 503, "the database is unavailable; retry later");
        return;
    }
    call->authorized = on_authorized;
    call->ctx = router;
    pd__keyring_authenticate(router->keyring, call);
}

void pd__router_on_request(void *ctx, pd_http_request_t *req)
{
    pd__router_t *router = ctx;
    pd__call_t *call = pd__call_create(req, router->metrics, R_OTHER);
    if (call == NULL) {
        static const char oom[] = "{\"error\": \"out of memory\"}\n";
        pd_http_respond(req, 503, "application/json", "Retry-After: 1\r\n", oom, sizeof(oom) - 1,
                        true);
        return;
    }
    const char *path = pd_http_path(req);
    const struct route *r = NULL;
    for (size_t i = 0; i < sizeof(ROUTES) / sizeof(ROUTES[0]); i++) {
        if (strcmp(path, ROUTES[i].path) == 0)
            r = &ROUTES[i];
    }
    if (r == NULL) {
        pd__call_fail(call, 404, "no such resource");
        return;
    }
    call->route = r->path;
    if (strcmp(pd_http_method(req), r->method) != 0) {
        pd__call_fail(call, 405, "method not allowed");
    } else if (r->path == R_HEALTHZ) {
        static const char ok[] = "{\"status\": \"ok\"}\n";
        pd__call_answer(call, 200, "", ok, sizeof(ok) - 1);
    } else if (r->path == R_METRICS) {
        answer_metrics(router, call, PD_METRICS_PUBLIC);
    } else if (r->path == R_READYZ && !pd__keyring_db_checked(router->keyring)) {
        /* The key ring's loads check the database until it answers; no reader waits for it here. */
        pd__call_fail(call, 503, "the database has not answered yet");
    } else if (r->path == R_READYZ) {
        submit_read(router, call, PD__READER_READY, 0);
    } else {
        route_v1(router, call);
    }
}

void pd__router_on_metrics_request(void *ctx, pd_http_request_t *req)
{
    pd__router_t *router = ctx;
    pd__call_t *call = pd__call_create(req, router->metrics, R_METRICS);
    if (call == NULL) {
        pd_http_respond(req, 503, "text/plain", "", "out of memory\n", 14, true);
        return;
    }
    if (strcmp(pd_http_path(req), R_METRICS) != 0 || strcmp(pd_http_method(req), "GET") != 0) {
        call->route = R_OTHER;
        pd__call_fail(call, 404, "only GET /metrics is served here");
        return;
    }
    answer_metrics(router, call, PD_METRICS_FULL);
}

void pd__router_on_refused(void *ctx, int status)
{
    pd__router_t *router = ctx;
    pd_metrics_request(router->metrics, R_OTHER, status);
}
