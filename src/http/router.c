/*
 * Routing: which handler a request goes to, and the first step of each.
 *
 * Thread: the loop thread.  /healthz and /metrics are answered here at
 * once; the key of a /v1 route is checked by the key ring (http/keyring.c)
 * without a database lookup; /readyz and pattern reads go to a reader
 * thread (the loop never waits on the database), and their answer comes
 * back through pd_service_on_read_done().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pd/service.h"

/* The routes, as metric labels. */
static const char R_WORKFLOWS[] = "/v1/workflows";
static const char R_PATTERNS[] = "/v1/patterns";
static const char R_HEALTHZ[] = "/healthz";
static const char R_READYZ[] = "/readyz";
static const char R_METRICS[] = "/metrics";
static const char R_OTHER[] = "other";

/* Reads ?top=N into *top (default PD_TOP_DEFAULT); false when it is malformed. */
static bool parse_top(const char *query, long *top)
{
    *top = PD_TOP_DEFAULT;
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
            if (errno != 0 || *stop != '\0' || v < 1 || v > PD_TOP_MAX)
                return false;
            *top = v;
        }
        q += n + (end != NULL);
    }
    return true;
}

static void submit_read(pd_call_t *call, pd_read_kind_t kind)
{
    if (pd_pool_full(call->sv->readers)) {
        pd_call_fail(call, 503, "busy; retry later");
        return;
    }
    call->rj.kind = kind;
    pd_pool_submit(call->sv->readers, &call->rj.job);
}

/* The Prometheus exposition; the tenant series only for the operator's address. */
static void answer_metrics(pd_call_t *call, pd_metrics_view_t view)
{
    pd_service_t *sv = call->sv;
    pd_metrics_gauges_t g = {
        .queue_depth = pd_pool_queued(sv->writers),
        .queue_capacity = sv->queue,
        .batches_in_flight = pd_pool_outstanding(sv->writers),
        .connections = pd_http_server_connections(sv->http),
        .draining = sv->draining,
    };
    pd_buf_t b = {0};
    pd_metrics_request(sv->metrics, call->route, 200); /* counted before rendering */
    pd_metrics_render_view(sv->metrics, &g, view, &b);
    pd_http_respond(call->req, 200, "text/plain; version=0.0.4; charset=utf-8", "", b.data, b.len,
                    false);
    pd_buf_close(&b);
    pd_call_free(call);
}

static void read_patterns(pd_call_t *call)
{
    submit_read(call, PD_READ_PATTERNS);
}

/*
 * The /v1 routes: the key first (401 without one), before any body byte is
 * read; then the body (POST /v1/workflows) or the read.
 */
static void route_v1(pd_call_t *call, bool workflows)
{
    pd_service_t *sv = call->sv;
    if (pd_key_from_bearer(pd_http_authorization(call->req), &call->rj.key) < 0) {
        pd_call_fail(call, 401, "missing or malformed API key: send Authorization: Bearer <key>");
        return;
    }
    if (!workflows && !parse_top(pd_http_query(call->req), &call->rj.top)) {
        pd_call_fail(call, 400, "top: expected a number from 1 to 10000");
        return;
    }
    if (!sv->db_checked) {
        pd_call_fail(call, 503, "the database is unavailable; retry later");
        return;
    }
    call->authorized = workflows ? pd_service_ingest : read_patterns;
    pd_keyring_authenticate(&sv->keyring, call);
}

static const struct route {
    const char *path;
    const char *method;
} ROUTES[] = {
    {R_HEALTHZ, "GET"},    {R_METRICS, "GET"},  {R_READYZ, "GET"},
    {R_WORKFLOWS, "POST"}, {R_PATTERNS, "GET"},
};

void pd_service_on_request(void *ctx, pd_http_request_t *req)
{
    pd_call_t *call = calloc(1, sizeof(*call));
    if (call == NULL) {
        static const char oom[] = "{\"error\": \"out of memory\"}\n";
        pd_http_respond(req, 503, "application/json", "Retry-After: 1\r\n", oom, sizeof(oom) - 1,
                        true);
        return;
    }
    *call = (pd_call_t){.sv = ctx, .req = req, .route = R_OTHER, .started_ns = uv_hrtime()};
    const char *path = pd_http_path(req);
    const struct route *r = NULL;
    for (size_t i = 0; i < sizeof(ROUTES) / sizeof(ROUTES[0]); i++) {
        if (strcmp(path, ROUTES[i].path) == 0)
            r = &ROUTES[i];
    }
    if (r == NULL) {
        pd_call_fail(call, 404, "no such resource");
        return;
    }
    call->route = r->path;
    if (strcmp(pd_http_method(req), r->method) != 0) {
        pd_call_fail(call, 405, "method not allowed");
    } else if (r->path == R_HEALTHZ) {
        static const char ok[] = "{\"status\": \"ok\"}\n";
        pd_call_respond(call, 200, "", ok, sizeof(ok) - 1);
        pd_call_free(call);
    } else if (r->path == R_METRICS) {
        answer_metrics(call, PD_METRICS_PUBLIC);
    } else if (r->path == R_READYZ && !call->sv->db_checked) {
        /* The key ring's loads check the database until it answers; no reader waits for it here. */
        pd_call_fail(call, 503, "the database has not answered yet");
    } else if (r->path == R_READYZ) {
        submit_read(call, PD_READ_READY);
    } else {
        route_v1(call, r->path == R_WORKFLOWS);
    }
}

void pd_service_on_metrics_request(void *ctx, pd_http_request_t *req)
{
    pd_call_t *call = calloc(1, sizeof(*call));
    if (call == NULL) {
        pd_http_respond(req, 503, "text/plain", "", "out of memory\n", 14, true);
        return;
    }
    *call = (pd_call_t){.sv = ctx, .req = req, .route = R_METRICS, .started_ns = uv_hrtime()};
    if (strcmp(pd_http_path(req), R_METRICS) != 0 || strcmp(pd_http_method(req), "GET") != 0) {
        call->route = R_OTHER;
        pd_call_fail(call, 404, "only GET /metrics is served here");
        return;
    }
    answer_metrics(call, PD_METRICS_FULL);
}

void pd_service_on_refused(void *ctx, int status)
{
    pd_service_t *sv = ctx;
    pd_metrics_request(sv->metrics, R_OTHER, status);
}

/*
 * Ready: the database answers, the schema is current, the role is checked,
 * and the service is not stopping.  Why not goes to the log (the reader
 * logs it): the answer is anonymous, so it names no host, port or role.
 */
static void answer_ready(pd_call_t *call, const pd_read_job_t *j)
{
    pd_service_t *sv = call->sv;
    bool ready = j->rc == PD_OK && j->ready;
    if (ready && !sv->draining) {
        static const char ok[] = "{\"status\": \"ready\"}\n";
        pd_call_respond(call, 200, "", ok, sizeof(ok) - 1);
        pd_call_free(call);
    } else {
        pd_call_fail(call, 503,
                     sv->draining ? "shutting down"
                     : j->rc < 0  ? "the database is unavailable"
                                  : "not ready: the service log says why");
    }
}

void pd_service_on_read_done(void *ctx, pd_job_t *job)
{
    (void)ctx;
    pd_read_job_t *j = (pd_read_job_t *)job;
    if (j->kind == PD_READ_KEYS) {
        pd_keyring_on_loaded(j);
        return;
    }
    pd_call_t *call = (pd_call_t *)job; /* the reader job is the call's first member */
    if (j->kind == PD_READ_READY) {
        answer_ready(call, j);
    } else if (j->rc < 0) {
        pd_call_fail(call, 503, "the database is unavailable; retry later");
    } else {
        pd_call_respond(call, 200, "", j->body, j->len);
        pd_call_free(call);
    }
}
