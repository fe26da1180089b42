/*
 * Private to src/service/: a call is one request the service holds while
 * it works on it (on the loop thread, or waiting for a reader, the key
 * ring or a writer), and its answers: JSON bodies with the headers their
 * status needs, each answer counted in the metrics and logged.
 *
 * A call belongs to one thread at a time and ends with exactly one answer:
 * pd__call_answer(), pd__call_answer_json() or pd__call_fail(), which free it
 * (or pd__call_free() for a request answered through pd_http_respond()).
 * Loop thread.
 */
#ifndef PD_SERVICE_CALL_H
#define PD_SERVICE_CALL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "pd/http.h"
#include "pd/keys.h"
#include "pd/metrics.h"

typedef struct pd__call {
    pd_http_request_t *req;
    pd_metrics_t *metrics; /* borrowed: where the answer is counted */
    const char *route;     /* a metric label (static storage) */
    uint64_t started_ns;
    pd_key_t key; /* a /v1 request's key, once read from its Authorization header */
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

/* Answers with body (copied), counting the request in the metrics, and frees the call. */
void pd__call_answer(pd__call_t *call, int status, const char *extra, const char *body, size_t len);

/* Answers doc (stolen) as the JSON body, with a newline (503 when it cannot be rendered). */
void pd__call_answer_json(pd__call_t *call, int status, const char *extra, json_t *doc);

/*
 * Answers {"error": message} with the headers its status needs
 * (WWW-Authenticate for 401, Retry-After for 429 and 503).  message is
 * copied.
 */
void pd__call_fail(pd__call_t *call, int status, const char *message);

/* Releases a call whose request was answered directly, with pd_http_respond(). */
void pd__call_free(pd__call_t *call);

#endif
