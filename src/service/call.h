/*
 * Private to src/service/: a call is one request the service holds while
 * it works on it (on the loop thread, or waiting for a reader, the key
 * ring or a writer), and its answers: JSON bodies with the headers their
 * status needs, each answer counted in the metrics and logged.
 *
 * A call belongs to one thread at a time and ends with exactly one answer:
 * pd__call_respond(), pd__call_answer(), pd__call_answer_json(),
 * pd__call_fail() or pd__call_fail_with(), which free it.  Every answer is
 * counted under the call's route and logged, one line per request at level
 * info (request id, method, path without its query, status, milliseconds,
 * and the tenant once its key was checked; never the key).  Loop thread.
 */
#ifndef PD_SERVICE_CALL_H
#define PD_SERVICE_CALL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pd/http.h"
#include "pd/keys.h"
#include "pd/metrics.h"

typedef struct pd__call {
    pd_http_request_t *req;
    pd_metrics_t *metrics; /* borrowed: where the answer is counted; NULL: counted already */
    const char *route;     /* a metric label (static storage) */
    uint64_t started_ns;
    pd_key_t key;    /* a /v1 request's key, once read from its Authorization header */
    unsigned scopes; /* the key's scopes (PD_SCOPE_*), once the key ring found it valid */
    bool key_valid;  /* ... and that it did */
    /* The route's own state, released with data_free(data) when the call is freed. */
    void *data;
    void (*data_free)(void *data);
    /*
     * What follows a valid key, with its context (the key ring calls it),
     * and the key ring's queue of calls waiting for a load of the key
     * table (keyring.c): resolved by a load started after `wait_after`
     * loads.
     */
    void (*authorized)(struct pd__call *call);
    void *ctx;
    struct pd__call *next_waiting;
    uint64_t wait_after;
} pd__call_t;

/* A new call for req, counted under route (static storage); NULL when out of memory. */
pd__call_t *pd__call_create(pd_http_request_t *req, pd_metrics_t *metrics, const char *route);

/*
 * Answers with body (copied) of content_type, extra headers ("" or lines
 * ending in "\r\n"), counting the request in the metrics and logging it;
 * frees the call.
 */
void pd__call_respond(pd__call_t *call, int status, const char *content_type, const char *extra,
                      const char *body, size_t len);

/* pd__call_respond() of a JSON body. */
void pd__call_answer(pd__call_t *call, int status, const char *extra, const char *body, size_t len);

/*
 * Answers doc (stolen) as the JSON body (pd_json_dumps: reals as their
 * shortest decimals), with a newline (503 when it cannot be rendered).
 */
void pd__call_answer_json(pd__call_t *call, int status, const char *extra, json_t *doc);

/*
 * Answers {"error": message} with the headers its status needs
 * (WWW-Authenticate for 401, Retry-After for 429 and 503).  message is
 * copied.
 */
void pd__call_fail(pd__call_t *call, int status, const char *message);

/* pd__call_fail() with extra headers besides those (e.g. "Allow: GET, HEAD\r\n" for a 405). */
void pd__call_fail_with(pd__call_t *call, int status, const char *extra, const char *message);

/* Releases a call (and its data) without answering: only when its request is gone already. */
void pd__call_free(pd__call_t *call);

#endif
