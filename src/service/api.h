/*
 * Private to src/service/: the endpoints that read a tenant's patterns and
 * review them (docs/spec.md §5-§7), apart from routing and keys:
 *
 *   GET  /v1/patterns                 the list: filters and cursor paging
 *   GET  /v1/patterns/{id}            a pattern, its examples, weeks and history
 *   POST /v1/patterns/{id}/review     a reviewer's move
 *   GET  /v1/review/summary           patterns per status
 *   GET  /v1/review/thresholds        the tenant's thresholds
 *   PUT  /v1/review/thresholds        ... set, and the patterns moved by them
 *
 * A request is parsed on the loop thread (its query string, its JSON body:
 * pure functions that say which field is wrong), then answered on a reader
 * thread, which runs its statements and renders the answer's status and
 * body.  Only one thread touches a request at a time.
 */
#ifndef PD_SERVICE_API_H
#define PD_SERVICE_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "pd/error.h"
#include "pd/keys.h"
#include "pd/patterns.h"
#include "pd/record.h"
#include "pd/review.h"

typedef struct pd_db pd_db_t; /* include/pd/db.h */

/* The most body bytes a review or a thresholds PUT may send. */
#define PD__API_BODY_MAX (64 * 1024)
#define PD__API_TOP_DEFAULT 20
#define PD__API_TOP_MAX 10000

typedef enum pd__api_op {
    PD__API_LIST,
    PD__API_PATTERN,
    PD__API_REVIEW,
    PD__API_SUMMARY,
    PD__API_THRESHOLDS,
    PD__API_SET_THRESHOLDS,
    PD__API_ME, /* the key's tenant, id and scopes, answered on the loop thread */
} pd__api_op_t;

/* One request, from its parsing on the loop thread to its answer on a reader thread. */
typedef struct pd__api_request {
    pd__api_op_t op;
    char tenant[PD_TENANT_MAX + 1]; /* the key's */
    char actor[PD_KEY_ID_LEN + 1];  /* the key's id: who made a move */
    int64_t id;                     /* PATTERN, REVIEW: from the path */
    long weeks;                     /* PATTERN, REVIEW: the weekly series' length */
    pd_patterns_filter_t filter;    /* LIST: its strings point into the buffers below */
    char status[PD_REVIEW_STATUS_MAX], type[PD_TENANT_MAX + 1], cursor[PD_PATTERNS_CURSOR_MAX + 1];
    json_t *body;                      /* REVIEW, SET_THRESHOLDS: the parsed body (owned) */
    pd_review_request_t review;        /* REVIEW: its strings point into body */
    pd_review_thresholds_t thresholds; /* SET_THRESHOLDS */
} pd__api_request_t;

/*
 * Sets rq up for op (the list's defaults), with the tenant and actor of
 * the request's key.
 */
void pd__api_init(pd__api_request_t *rq, pd__api_op_t op, const char *tenant, const char *actor);

/*
 * Reads the query string ("top=5&status=candidate", percent-encoded) into
 * rq: for LIST top (1 to 10000, default 20), cursor, status, type and
 * min_confidence (0 to 100); for PATTERN and REVIEW (its answer) weeks
 * (1 to 520, default 26).
 * Other parameters are ignored.  Returns 0, or PD_EINVAL with the
 * parameter and why in err.
 */
int pd__api_parse_query(pd__api_request_t *rq, const char *query, pd_error_t *err);

/*
 * Reads a JSON body (REVIEW, SET_THRESHOLDS) into rq, which keeps the
 * parsed document.  Returns 0, or PD_EINVAL with the field ("" when the
 * body as a whole is wrong) and why in err.
 */
int pd__api_parse_body(pd__api_request_t *rq, const char *body, size_t len, pd_error_t *err);

/*
 * Reader thread: answers rq with the statements it needs on db.  On
 * success *status is the HTTP status and *body a new JSON document of
 * *len bytes with its newline (free()).  Returns 0, or the errors of
 * pd_db_query() and PD_ENOMEM (no answer: the caller says the database is
 * unavailable, or fails).
 */
int pd__api_answer(pd_db_t *db, const pd__api_request_t *rq, int *status, char **body, size_t *len,
                   pd_error_t *err);

/* Releases what rq holds. */
void pd__api_close(pd__api_request_t *rq);

#endif
