/*
 * The review lifecycle (docs/spec.md §5) on the database: a reviewer's
 * move of a pattern's automation_status through patternd_review(), which
 * holds the status graph and writes the audit row (migrations/0008); the
 * count of a tenant's patterns per status; and the tenant's thresholds
 * (review_thresholds), whose change moves the tenant's patterns between
 * detected and candidate at once (patternd_move_candidates()).
 *
 * Every function runs in one transaction scoped to the tenant it is given
 * (pd_db_begin_tenant), so the service's role, under row-level security,
 * reaches that tenant only; an operator's role (a member of
 * patternd_admin) writes audit rows that carry the tenant all the same.
 *
 * Threads: the functions taking a pd_db_t run on the thread that owns it (a
 * `patternd review` command, or one of the service's reader threads); the
 * others are pure.
 */
#ifndef PD_REVIEW_H
#define PD_REVIEW_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "pd/error.h"

typedef struct pd_db pd_db_t; /* include/pd/db.h */

/* A reviewer's moves, as patternd_review() names them. */
typedef enum pd_review_action {
    PD_REVIEW_APPROVE,   /* detected or candidate -> approved */
    PD_REVIEW_REJECT,    /* detected or candidate -> rejected; a reason is required */
    PD_REVIEW_IMPLEMENT, /* approved -> implemented */
    PD_REVIEW_DEPRECATE, /* approved or implemented -> deprecated; a reason is required */
    PD_REVIEW_REOPEN,    /* rejected or deprecated -> detected */
} pd_review_action_t;

/* The actions' names, indexed by pd_review_action_t; NULL-terminated. */
extern const char *const pd_review_actions[];

/* The action named name; PD_EINVAL when there is none. */
int pd_review_action_parse(const char *name, pd_review_action_t *out);

/* True for the actions that need a reason (reject, deprecate). */
bool pd_review_action_needs_reason(pd_review_action_t action);

/*
 * Bounds on what a review carries, in bytes of UTF-8 (the HTTP body as a
 * whole is bounded by the service): a reviewer's name 1 to
 * PD_REVIEW_REVIEWER_MAX, notes and reason each at most PD_REVIEW_TEXT_MAX.
 */
#define PD_REVIEW_REVIEWER_MAX 256
#define PD_REVIEW_TEXT_MAX 16384

typedef struct pd_review_request {
    int64_t id; /* the pattern's id within the tenant */
    pd_review_action_t action;
    const char *expected;       /* the status the reviewer saw */
    const char *actor;          /* who asked: the API key's id, or "cli:<user>" */
    const char *reviewer;       /* the name the reviewer gave */
    const char *notes, *reason; /* NULL when not given */
    long weeks;                 /* the answer's weekly series (pd_patterns_detail_json) */
} pd_review_request_t;

typedef enum pd_review_result {
    PD_REVIEW_OK,              /* moved, and the audit row written */
    PD_REVIEW_NOT_FOUND,       /* the tenant has no such pattern */
    PD_REVIEW_CONFLICT,        /* not in the expected status, or the graph has no such move */
    PD_REVIEW_REASON_REQUIRED, /* reject and deprecate need a reason */
} pd_review_result_t;

#define PD_REVIEW_STATUS_MAX 16 /* the longest status, "implemented", and its NUL */

/*
 * Makes the move rq asks for on tenant's pattern, in one transaction:
 * patternd_review() checks and changes the status and writes the audit
 * row; on success the pattern's document (pd_patterns_detail_json) is
 * then read in a transaction of its own, so that the pattern's row is not
 * locked while the document's reads run.  *result says what
 * happened; status gets the pattern's status after the call (for a
 * conflict, the status it has); *doc (may be NULL) gets the document for
 * PD_REVIEW_OK, a new reference, else NULL.  Returns 0 or the errors of
 * pd_db_query() (nothing changed then, unless the connection was lost
 * during COMMIT or the error came from reading the document after it).
 */
int pd_review_apply(pd_db_t *db, const char *tenant, const pd_review_request_t *rq,
                    pd_review_result_t *result, char status[PD_REVIEW_STATUS_MAX], json_t **doc,
                    pd_error_t *err);

/*
 * How many of tenant's patterns (NULL: of every tenant the role sees) have
 * each status, indexed as pd_pattern_statuses (include/pd/patterns.h);
 * patterns with occurrence_count 0 are left out, as in every list.
 */
int pd_review_summary(pd_db_t *db, const char *tenant, int64_t counts[6], pd_error_t *err);

/* A tenant's thresholds: a pattern qualifies as a candidate when it meets all three. */
typedef struct pd_review_thresholds {
    int64_t min_occurrences; /* occurrence_count at least this */
    double min_confidence;   /* confidence_score at least this */
    double min_savings;      /* potential_monthly_savings at least this (US dollars) */
} pd_review_thresholds_t;

#define PD_REVIEW_THRESHOLDS_DEFAULT                                                               \
    {                                                                                              \
        5, 70.0, 1.00                                                                              \
    }

/* Accepted ranges; past them a PUT is refused. */
#define PD_REVIEW_MIN_OCCURRENCES_MAX 9007199254740991LL /* 2^53 - 1: exact as a JSON number */
#define PD_REVIEW_MIN_SAVINGS_MAX 1e28 /* above any savings a pattern can have (record.h) */

/* tenant's thresholds (its own, else the defaults). */
int pd_review_thresholds_get(pd_db_t *db, const char *tenant, pd_review_thresholds_t *out,
                             pd_error_t *err);

/* Which members of a pd_review_thresholds_t pd_review_thresholds_set() sets. */
enum {
    PD_REVIEW_SET_MIN_OCCURRENCES = 1u << 0,
    PD_REVIEW_SET_MIN_CONFIDENCE = 1u << 1,
    PD_REVIEW_SET_MIN_SAVINGS = 1u << 2,
    PD_REVIEW_SET_ALL = 7u,
};

/*
 * Checks the members of t that fields names (PD_REVIEW_SET_*) against the
 * ranges: min_occurrences 0 to PD_REVIEW_MIN_OCCURRENCES_MAX,
 * min_confidence 0 to 100, min_savings 0 to PD_REVIEW_MIN_SAVINGS_MAX.
 * Returns 0, or PD_EINVAL with the field and why in err ("field: ...").
 * Pure.
 */
int pd_review_thresholds_check(const pd_review_thresholds_t *t, unsigned fields, pd_error_t *err);

/*
 * Sets the members of *t that fields names (after
 * pd_review_thresholds_check) and keeps tenant's other thresholds
 * (its own, else the defaults): one statement, under the row's lock, so two
 * concurrent sets of different members never undo each other.  In the same
 * transaction, moves every detected or candidate pattern of tenant to where
 * the thresholds put it, each move an audit row by "patternd".  actor is
 * recorded as who changed them.  On success, *t holds all three thresholds
 * as stored and *moved how many patterns moved.
 */
int pd_review_thresholds_set(pd_db_t *db, const char *tenant, unsigned fields,
                             pd_review_thresholds_t *t, const char *actor, int64_t *moved,
                             pd_error_t *err);

#endif
