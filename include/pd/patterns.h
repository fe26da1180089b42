/*
 * Reading the detected patterns (the operation_patterns table, SPEC §3.2)
 * back as typed rows: for `patternd report` (every tenant or one) and for
 * the service's GET /v1/patterns (one tenant, under row-level security).
 *
 * Threads: the functions taking a pd_db_t run on the thread that owns it
 * (the report command, or one of the service's reader threads); the others
 * are pure.
 */
#ifndef PD_PATTERNS_H
#define PD_PATTERNS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "pd/error.h"

typedef struct pd_db pd_db_t; /* include/pd/db.h */

/*
 * One row of operation_patterns, with every column of SPEC §3.2.  Times are
 * ISO 8601 in UTC to the microsecond ("2024-05-01T12:00:00.000000Z").  The
 * doubles are always finite (see pd_patterns_number()).
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
    const char *created_at;
    const char *last_seen;
} pd_pattern_t;

/*
 * The patterns of tenant (NULL: of every tenant the role may see), most
 * potential monthly savings first (ties by tenant, then signature, in byte
 * order), at most top of them (0: all).  With a tenant the read runs in a
 * transaction scoped to it, so that it works for a role under row-level
 * security; across tenants it needs a role that bypasses the policies.
 *
 * On success *rows is a new array of *n rows (their strings live in the
 * same allocation), released with pd_patterns_free(); on failure *rows is
 * NULL.  Returns 0 or the errors of pd_db_query().
 */
int pd_patterns_read(pd_db_t *db, const char *tenant, long top, pd_pattern_t **rows, size_t *n,
                     pd_error_t *err);
void pd_patterns_free(pd_pattern_t *rows);

/*
 * A number's text as PostgreSQL prints a numeric or float8, as a double:
 * past the double range (numeric has none) the largest finite double of its
 * sign, NaN as 0, so that a stored value can always be shown.  Pure.
 */
double pd_patterns_number(const char *text);

/*
 * The row as the JSON object of GET /v1/patterns: every column, in table
 * order, typical_input_pattern as a JSON value (null when absent or not
 * JSON).  Returns a new reference (json_decref), or NULL when out of memory.
 */
json_t *pd_pattern_json(const pd_pattern_t *row);

/*
 * The answer of GET /v1/patterns: {"tenant_id": tenant, "patterns": [rows]},
 * the top patterns of tenant (0: all), read as pd_patterns_read() does.  On
 * success *body is a new NUL-terminated string of *len bytes, released with
 * free().  Returns 0, PD_ENOMEM or the errors of pd_db_query().
 */
int pd_patterns_read_tenant_json(pd_db_t *db, const char *tenant, long top, char **body,
                                 size_t *len, pd_error_t *err);

#endif
