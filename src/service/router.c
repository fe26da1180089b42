/*
 * Routing; see router.h.  Loop thread.
 *
 * Every route is a row of ENDPOINTS: its path (also its metric label, with
 * {id} for a pattern's number), method, what serves it and the scope it
 * needs.  A /v1 request other than the OpenAPI document gets a request
 * state (request_t) that lives as long as its call: the endpoint, the
 * parsed query and body, and the reader job that answers it.
 */
#include "router.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "call.h"
#include "dashboard.h"
#include "openapi.h"
#include "pd/buf.h"
#include "pd/log.h"
#include "reader.h"

/* The routes, as metric labels. */
static const char R_WORKFLOWS[] = "/v1/workflows";
static const char R_PATTERNS[] = "/v1/patterns";
static const char R_PATTERN[] = "/v1/patterns/{id}";
static const char R_REVIEW[] = "/v1/patterns/{id}/review";
static const char R_SUMMARY[] = "/v1/review/summary";
static const char R_THRESHOLDS[] = "/v1/review/thresholds";
static const char R_OPENAPI[] = "/v1/openapi.json";
static const char R_HEALTHZ[] = "/healthz";
static const char R_READYZ[] = "/readyz";
static const char R_METRICS[] = "/metrics";
static const char R_ME[] = "/v1/me";
static const char R_OTHER[] = "other";

typedef struct endpoint endpoint_t;

/*
 * What serves a route: answers the call (at once, or through a reader
 * thread or the key ring).  id is the pattern's number of a {id} path.
 */
typedef void serve_fn(pd__router_t *router, pd__call_t *call, const endpoint_t *ep, int64_t id);

static serve_fn serve_healthz, serve_readyz, serve_metrics, serve_openapi, serve_keyed;

struct endpoint {
    const char *route;  /* the path, {id} standing for a pattern's number; the metric label */
    const char *method; /* GET also serves HEAD */
    serve_fn *serve;
    /* serve_keyed: the endpoint of api.h (but for POST /v1/workflows), and the scope it needs. */
    pd__api_op_t api;
    unsigned scope; /* PD_SCOPE_* */
};

/*
 * The routes.  A route is one row: its path (a path without {id} is matched
 * as it is), method and serve function; a route without a key, such as a
 * page, is {"/path", "GET", its_serve_fn, 0, 0}.
 */
static const endpoint_t ENDPOINTS[] = {
    {R_HEALTHZ, "GET", serve_healthz, 0, 0},
    {R_READYZ, "GET", serve_readyz, 0, 0},
    {R_METRICS, "GET", serve_metrics, 0, 0},
    {R_OPENAPI, "GET", serve_openapi, 0, 0},
    {R_ME, "GET", serve_keyed, PD__API_ME, 0},
    {R_WORKFLOWS, "POST", serve_keyed, 0, PD_SCOPE_INGEST},
    {R_PATTERNS, "GET", serve_keyed, PD__API_LIST, PD_SCOPE_READ},
    {R_PATTERN, "GET", serve_keyed, PD__API_PATTERN, PD_SCOPE_READ},
    {R_REVIEW, "POST", serve_keyed, PD__API_REVIEW, PD_SCOPE_REVIEW},
    {R_SUMMARY, "GET", serve_keyed, PD__API_SUMMARY, PD_SCOPE_READ},
    {R_THRESHOLDS, "GET", serve_keyed, PD__API_THRESHOLDS, PD_SCOPE_READ},
    {R_THRESHOLDS, "PUT", serve_keyed, PD__API_SET_THRESHOLDS, PD_SCOPE_REVIEW},
};
#define N_ENDPOINTS (sizeof(ENDPOINTS) / sizeof(ENDPOINTS[0]))

/* A request past routing, until its call is answered (it is the call's data). */
typedef struct request {
    pd__reader_job_t job; /* first: the pool's link */
    pd__call_t *call;
    pd__router_t *router;
    const endpoint_t *ep;
    pd__api_request_t api;
    pd_buf_t body; /* a review's or a thresholds PUT's JSON body */
} request_t;

static void request_free(void *data)
{
    request_t *rq = data;
    pd__api_close(&rq->api);
    pd_buf_close(&rq->body);
    free(rq->job.body);
    free(rq);
}

/* A new request state for call, freed with it; NULL when out of memory (the call is answered). */
static request_t *request_of(pd__router_t *router, pd__call_t *call, const endpoint_t *ep)
{
    request_t *rq = calloc(1, sizeof(*rq));
    if (rq == NULL) {
        pd__call_fail(call, 503, "out of memory");
        return NULL;
    }
    *rq = (request_t){.call = call, .router = router, .ep = ep};
    call->data = rq;
    call->data_free = request_free;
    return rq;
}

/* Answers {"error": message, "field": field} (field left out when ""). */
static void fail_field(pd__call_t *call, int status, const char *message, const char *field)
{
    json_t *doc = json_pack("{s:s}", "error", message);
    if (doc != NULL && field[0] != '\0')
        json_object_set_new(doc, "field", json_string(field));
    pd__call_answer_json(call, status, "", doc);
}

/*
 * The route of path, static storage (an ENDPOINTS row's); *id gets a
 * pattern's number from it.  NULL when no route has that path.
 */
static const char *route_of(const char *path, int64_t *id)
{
    for (size_t i = 0; i < N_ENDPOINTS; i++) {
        if (strchr(ENDPOINTS[i].route, '{') == NULL && strcmp(path, ENDPOINTS[i].route) == 0)
            return ENDPOINTS[i].route;
    }
    static const char prefix[] = "/v1/patterns/";
    if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
        return NULL;
    const char *digits = path + sizeof(prefix) - 1;
    size_t n = strspn(digits, "0123456789");
    if (n == 0 || n > 18)
        return NULL; /* not a pattern's number: no such resource */
    *id = strtoll(digits, NULL, 10);
    if (digits[n] == '\0')
        return R_PATTERN;
    return strcmp(digits + n, "/review") == 0 ? R_REVIEW : NULL;
}

/* The endpoint of route for method (HEAD as GET), or NULL; allow gets the route's methods. */
static const endpoint_t *endpoint_of(const char *route, const char *method, char allow[64])
{
    const endpoint_t *found = NULL;
    bool head = strcmp(method, "HEAD") == 0;
    allow[0] = '\0';
    for (size_t i = 0; i < N_ENDPOINTS; i++) {
        const endpoint_t *ep = &ENDPOINTS[i];
        if (strcmp(ep->route, route) != 0)
            continue;
        if (strcmp(ep->method, method) == 0 || (head && strcmp(ep->method, "GET") == 0))
            found = ep;
        size_t len = strlen(allow);
        snprintf(allow + len, 64 - len, "%s%s%s", len ? ", " : "", ep->method,
                 strcmp(ep->method, "GET") == 0 ? ", HEAD" : "");
    }
    return found;
}

/* --- answers from the reader threads ----------------------------------------------------- */

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

/* A job is back from its reader thread: its request is answered (and freed with its call). */
static void on_job_done(pd__reader_job_t *job)
{
    request_t *rq = job->owner;
    if (job->kind == PD__READER_READY)
        answer_ready(rq->call, rq->router, job);
    else if (job->rc == PD_ECONN || job->rc == PD_ERETRY)
        pd__call_fail(rq->call, 503, "the database is unavailable; retry later");
    else if (job->rc < 0)
        pd__call_fail(rq->call, 500, "internal error: the service log says why");
    else
        pd__call_answer(rq->call, job->status, "", job->body, job->len);
}

static void submit(request_t *rq, pd__reader_kind_t kind)
{
    if (pd_pool_full(rq->router->readers)) {
        pd__call_fail(rq->call, 503, "busy; retry later");
        return;
    }
    rq->job = (pd__reader_job_t){.kind = kind, .api = &rq->api, .done = on_job_done, .owner = rq};
    pd_pool_submit(rq->router->readers, &rq->job.job);
}

/* --- bodies of reviews and thresholds ----------------------------------------------------- */

static int on_body_data(void *ctx, char *data, size_t len)
{
    request_t *rq = ctx;
    if (rq->body.len + len > PD__API_BODY_MAX)
        return 413;
    pd_buf_put(&rq->body, data, len);
    return rq->body.failed ? 503 : 0;
}

static void on_body_end(void *ctx, int status)
{
    request_t *rq = ctx;
    pd_error_t err;
    switch (status) {
    case 0:
        break;
    case 413: {
        char message[64];
        snprintf(message, sizeof(message), "the body is larger than %d bytes", PD__API_BODY_MAX);
        pd__call_fail(rq->call, 413, message);
        return;
    }
    case 408:
        pd__call_fail(rq->call, 408, "the body did not arrive in time");
        return;
    case 503:
        pd__call_fail(rq->call, 503, "busy; retry later");
        return;
    default: /* 400 malformed; -1: the client went away, and the answer is dropped */
        pd__call_fail(rq->call, 400, "malformed body");
        return;
    }
    if (pd__api_parse_body(&rq->api, rq->body.data ? rq->body.data : "", rq->body.len, &err) < 0) {
        fail_field(rq->call, 400, err.message, err.field);
        return;
    }
    submit(rq, PD__READER_API);
}

static void read_body(request_t *rq)
{
    const char *enc = pd_http_content_encoding(rq->call->req);
    if (enc != NULL && strcasecmp(enc, "identity") != 0) {
        pd__call_fail(rq->call, 415, "Content-Encoding: expected none");
        return;
    }
    pd_http_body_sink_t sink = {.data = on_body_data, .end = on_body_end, .ctx = rq};
    pd_http_read_body(rq->call->req, &sink);
}

/* --- the routes ---------------------------------------------------------------------------- */

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
    /* Counted above: the answer goes out through the call without counting it again. */
    call->metrics = NULL;
    pd__call_respond(call, 200, "text/plain; version=0.0.4; charset=utf-8", "", b.data, b.len);
    pd_buf_close(&b);
}

static const char *scope_name(unsigned scope)
{
    return scope == PD_SCOPE_INGEST ? "ingest" : scope == PD_SCOPE_READ ? "read" : "review";
}

/* GET /v1/me: the key's tenant, id and scopes (what the dashboard offers depends on them). */
static void answer_me(pd__call_t *call)
{
    json_t *scopes = json_array();
    if (call->scopes & PD_SCOPE_INGEST)
        json_array_append_new(scopes, json_string("ingest"));
    if (pd_key_scopes_allow(call->scopes, PD_SCOPE_READ))
        json_array_append_new(scopes, json_string("read"));
    if (call->scopes & PD_SCOPE_REVIEW)
        json_array_append_new(scopes, json_string("review"));
    pd__call_answer_json(call, 200, "",
                         json_pack("{s:s, s:s, s:o}", "tenant_id", call->key.tenant, "key_id",
                                   call->key.key_id, "scopes", scopes));
}

/* The key is valid: its scope, then the route's next step. */
static void on_authorized(pd__call_t *call)
{
    request_t *rq = call->data;
    const endpoint_t *ep = rq->ep;
    if (!pd_key_scopes_allow(call->scopes, ep->scope)) {
        char message[96];
        snprintf(message, sizeof(message), "this key lacks the %s scope", scope_name(ep->scope));
        pd__call_fail(call, 403, message);
        return;
    }
    if (ep->scope == PD_SCOPE_INGEST) {
        pd__ingest_start(rq->router->ingest, call);
        return;
    }
    if (ep->api == PD__API_ME) {
        answer_me(call);
        return;
    }
    if (ep->api == PD__API_REVIEW || ep->api == PD__API_SET_THRESHOLDS)
        read_body(rq);
    else
        submit(rq, PD__READER_API);
}

static void serve_healthz(pd__router_t *router, pd__call_t *call, const endpoint_t *ep, int64_t id)
{
    (void)router, (void)ep, (void)id;
    static const char ok[] = "{\"status\": \"ok\"}\n";
    pd__call_answer(call, 200, "", ok, sizeof(ok) - 1);
}

static void serve_metrics(pd__router_t *router, pd__call_t *call, const endpoint_t *ep, int64_t id)
{
    (void)ep, (void)id;
    answer_metrics(router, call, PD_METRICS_PUBLIC);
}

static void serve_openapi(pd__router_t *router, pd__call_t *call, const endpoint_t *ep, int64_t id)
{
    (void)router, (void)ep, (void)id;
    pd__call_respond(call, 200, "application/json", "", pd__openapi_json, pd__openapi_json_len);
}

static void serve_readyz(pd__router_t *router, pd__call_t *call, const endpoint_t *ep, int64_t id)
{
    (void)id;
    /* The key ring's loads check the database until it answers; no reader waits for it here. */
    if (!pd__keyring_db_checked(router->keyring)) {
        pd__call_fail(call, 503, "the database has not answered yet");
        return;
    }
    request_t *rq = request_of(router, call, ep);
    if (rq != NULL)
        submit(rq, PD__READER_READY);
}

/*
 * The /v1 routes that need a key: the key first (401 without one), before
 * any body byte is read, and the query; then the key ring, whose verdict
 * goes on in on_authorized().
 */
static void serve_keyed(pd__router_t *router, pd__call_t *call, const endpoint_t *ep, int64_t id)
{
    if (pd_key_from_bearer(pd_http_authorization(call->req), &call->key) < 0) {
        pd__call_fail(call, 401, "missing or malformed API key: send Authorization: Bearer <key>");
        return;
    }
    request_t *rq = request_of(router, call, ep);
    if (rq == NULL)
        return;
    pd_error_t err;
    pd__api_init(&rq->api, ep->api, call->key.tenant, call->key.key_id);
    rq->api.id = id;
    if (ep->scope != PD_SCOPE_INGEST &&
        pd__api_parse_query(&rq->api, pd_http_query(call->req), &err) < 0) {
        fail_field(call, 400, err.message, err.field);
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
    if (pd__dashboard_answer(call)) /* GET / and /assets/: the review dashboard */
        return;
    int64_t id = 0;
    const char *route = route_of(pd_http_path(req), &id);
    if (route == NULL) {
        pd__call_fail(call, 404, "no such resource");
        return;
    }
    call->route = route;
    char allow[64], header[96];
    const endpoint_t *ep = endpoint_of(route, pd_http_method(req), allow);
    if (ep == NULL) {
        snprintf(header, sizeof(header), "Allow: %s\r\n", allow);
        pd__call_fail_with(call, 405, header, "method not allowed");
        return;
    }
    ep->serve(router, call, ep, id);
}

void pd__router_on_metrics_request(void *ctx, pd_http_request_t *req)
{
    pd__router_t *router = ctx;
    pd__call_t *call = pd__call_create(req, router->metrics, R_METRICS);
    if (call == NULL) {
        pd_http_respond(req, 503, "text/plain", "", "out of memory\n", 14, true);
        return;
    }
    const char *method = pd_http_method(req);
    if (strcmp(pd_http_path(req), R_METRICS) != 0) {
        call->route = R_OTHER;
        pd__call_fail(call, 404, "only GET /metrics is served here");
        return;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        pd__call_fail_with(call, 405, "Allow: GET, HEAD\r\n", "only GET /metrics is served here");
        return;
    }
    answer_metrics(router, call, PD_METRICS_FULL);
}

void pd__router_on_refused(void *ctx, int status)
{
    pd__router_t *router = ctx;
    pd_metrics_request(router->metrics, R_OTHER, status);
    /* The server answered before a request was whole: no method or path to show. */
    pd_log(PD_LOG_INFO, "loop", "request refused by the HTTP server status=%d", status);
}
