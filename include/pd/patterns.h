/*
 * Reading the detected patterns (the operation_patterns table, docs/spec.md §3.2)
 * back: as typed rows for `patternd report` and `patternd review list`
 * (every tenant or one), and as the JSON documents of the service's GET
 * /v1/patterns and GET /v1/patterns/{id} (one tenant, under row-level
 * security), the latter with the pattern's examples, weekly series (§6)
 * and review history (§5).
 *
 * Patterns whose occurrences were all taken away by revisions
 * (occurrence_count 0, docs/spec.md §3.4) are left out of every list; a pattern
 * read by its id is shown whatever its count.
 *
 * Threads: the functions taking a pd_db_t run on the thread that owns it
 * (a command, or one of the service's reader threads); the others are
 * pure.
 */
#ifndef PD_PATTERNS_H
#define PD_PATTERNS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pd/error.h"

typedef struct pd_db pd_db_t; /* include/pd/db.h */

/*
 * One row of operation_patterns, with every column of docs/spec.md §3.2 and those
 * of the review lifecycle.  Times are ISO 8601 in UTC to the microsecond
 * ("2024-05-01T12:00:00.000000Z").  The doubles are always finite (see
 * pd_patterns_number()).
 */
typedef struct pd_pattern {
    int64_t id;
    const char *tenant_id;
    const char *pattern_signature;
    const char *pattern_type;
    int64_t occurrence_count;
    int64_t avg_tokens_with_llm;
    double avg_cost_with_llm;
    int64_t avg_tokens_with_tool;
    double avg_cost_with_tool;
    const char *typical_input_pattern; /* JSON text; NULL when the column is NULL */
    const char *automation_status;
    double confidence_score;
    double potential_monthly_savings;
    const char *savings_text; /* potential_monthly_savings as the numeric's own text */
    const char *created_at;
    const char *last_seen;
    const char *first_event_at;    /* earliest start_time of its occurrences; NULL when none */
    const char *last_event_at;     /* latest; NULL when none */
    const char *status_changed_at; /* NULL until its status first moved */
    const char *implemented_at;    /* NULL until it was first implemented */
} pd_pattern_t;

/* The automation statuses of docs/spec.md §5, in the graph's order; NULL-terminated. */
extern const char *const pd_pattern_statuses[];

/* True when name is one of pd_pattern_statuses. */
bool pd_pattern_status_valid(const char *name);

/* Which patterns a list reads, in which order, and how many. */
typedef struct pd_patterns_filter {
    const char *tenant; /* NULL: every tenant the role may see */
    const char *status; /* automation_status, or NULL for any */
    const char *type;   /* pattern_type, or NULL for any */
    bool has_min_confidence;
    double min_confidence; /* confidence_score at least this, with has_min_confidence */
    long limit;            /* at most this many rows; 0: all */
    const char *cursor;    /* a list's next_cursor: the rows after it; NULL: from the first */
} pd_patterns_filter_t;

/*
 * The patterns of f, most potential monthly savings first (ties by tenant
 * in byte order, then by id).  With a tenant the read runs in a
 * transaction scoped to it, so that it works for a role under row-level
 * security; across tenants it needs a role that sees every tenant (a
 * member of patternd_admin, the owner or a superuser).
 *
 * On success *rows is a new array of *n rows (their strings live in the
 * same allocation), released with pd_patterns_free(); on failure *rows is
 * NULL.  When next_cursor is not NULL it gets, in PD_PATTERNS_CURSOR_MAX
 * bytes, the cursor of the rows after these ("" when there are none).
 * Returns 0, PD_EINVAL (with field "cursor") for a cursor that no list
 * gave, or the errors of pd_db_query().
 */
#define PD_PATTERNS_CURSOR_MAX 192
int pd_patterns_read(pd_db_t *db, const pd_patterns_filter_t *f, pd_pattern_t **rows, size_t *n,
                     char *next_cursor, pd_error_t *err);
void pd_patterns_free(pd_pattern_t *rows);

/*
 * A number's text as PostgreSQL prints a numeric or float8, as a double:
 * past the double range (numeric has none) the largest finite double of its
 * sign, NaN as 0, so that a stored value can always be shown.  Pure.
 */
double pd_patterns_number(const char *text);

/*
 * The row as the JSON object of GET /v1/patterns: every column, in table
 * order, then first_occurrence_at, last_occurrence_at, status_changed_at
 * and implemented_at (null when not set); typical_input_pattern as a JSON
 * value (null when absent or not JSON).  Returns a new reference
 * (json_decref), or NULL when out of memory.
 */
json_t *pd_pattern_json(const pd_pattern_t *row);

/*
 * The answer of GET /v1/patterns: {"tenant_id", "patterns": [rows],
 * "next_cursor": text or null}, read as pd_patterns_read() does (f->tenant
 * must be set).  On success *out is a new reference; same returns as
 * pd_patterns_read(), or PD_ENOMEM.
 */
int pd_patterns_list_json(pd_db_t *db, const pd_patterns_filter_t *f, json_t **out,
                          pd_error_t *err);

#define PD_PATTERN_EXAMPLES 20 /* the most recent occurrences a pattern's document shows */
#define PD_PATTERN_WEEKS 26    /* the weekly series' default length */
#define PD_PATTERN_WEEKS_MAX 520

/*
 * The document of GET /v1/patterns/{id}: the pattern as pd_pattern_json()
 * has it, plus
 *   examples   its PD_PATTERN_EXAMPLES most recent occurrences (by event
 *              time: start_time, else when patternd recorded the workflow):
 *              {workflow_id, event_at, start_time, recorded_at,
 *              total_tokens, actual_cost_total, characteristics}
 *   weekly     {week ("2026-W41"), week_start (its Monday), occurrences,
 *              cost} for the `weeks` ISO weeks up to the current one (UTC),
 *              oldest first, weeks without occurrences as 0
 *   history    its status changes, oldest first: {from, to, actor,
 *              reviewer, notes, reason, at}
 *   occurrences_since_implemented
 *              for an implemented pattern, its occurrences whose event time
 *              is at or after implemented_at (docs/spec.md §5); absent otherwise
 * read in one transaction scoped to tenant.  *out is a new reference, or
 * NULL when the tenant has no pattern id.  Returns 0, PD_ENOMEM or the
 * errors of pd_db_query().
 */
int pd_patterns_detail_json(pd_db_t *db, const char *tenant, int64_t id, long weeks, json_t **out,
                            pd_error_t *err);

#endif
