/*
 * Reading operation_patterns back; see include/pd/patterns.h.
 *
 * One statement serves both readers: `patternd report` (every tenant, or
 * one) and GET /v1/patterns (one tenant).  It returns every column of SPEC
 * §3.2 as text, times as ISO 8601 to the microsecond.  The numeric columns
 * (average costs, savings) come as the numeric's own text and are converted
 * to double here, not by a ::float8 cast in SQL: a cast fails the whole
 * statement on a value past the double range (a pattern whose costs were
 * stored before record.h bounded them, e.g. two costs of 1e308), and one
 * such row would make every read of the tenant, and every report, fail.
 * In C such a value becomes the largest finite double of its sign (NaN,
 * which only hand-written SQL can store, becomes 0), so it still ranks
 * first and prints as a number in JSON, CSV and the table alike.  Rows are
 * copied out of the PGresult into one allocation, so that callers never
 * see libpq.
 *
 * Runs on the thread owning the pd_db_t; owns nothing between calls.
 */
#include "pd/patterns.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/db.h"

/* $1: the tenant, or NULL for all; $2: the limit, or NULL for none. */
static const char SQL_PATTERNS[] =
    "SELECT id, tenant_id, pattern_signature, pattern_type, occurrence_count,"
    " avg_tokens_with_llm, avg_cost_with_llm, avg_tokens_with_tool,"
    " avg_cost_with_tool, typical_input_pattern::text, automation_status,"
    " confidence_score, potential_monthly_savings,"
    " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
    " to_char(last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    " FROM operation_patterns"
    " WHERE $1::text IS NULL OR tenant_id = $1"
    " ORDER BY potential_monthly_savings DESC, tenant_id COLLATE \"C\","
    " pattern_signature COLLATE \"C\""
    " LIMIT $2::bigint";

enum {
    C_ID,
    C_TENANT,
    C_SIG,
    C_TYPE,
    C_COUNT,
    C_TOK_LLM,
    C_COST_LLM,
    C_TOK_TOOL,
    C_COST_TOOL,
    C_TYPICAL,
    C_STATUS,
    C_CONF,
    C_SAVINGS,
    C_CREATED,
    C_LAST_SEEN
};

static int64_t int_at(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* A numeric or float8 column as a double: see the note at the top for what cannot be one. */
static double real_at(const PGresult *res, int row, int col)
{
    return pd_patterns_number(PQgetvalue(res, row, col));
}

double pd_patterns_number(const char *text)
{
    double d = strtod(text, NULL);
    if (isnan(d))
        return 0;
    if (isinf(d))
        return copysign(DBL_MAX, d);
    return d;
}

static void row_from(const PGresult *res, int i, char **strings, pd_pattern_t *out)
{
    *out = (pd_pattern_t){
        .id = int_at(res, i, C_ID),
        .tenant_id = pd_db_text_copy(res, i, C_TENANT, strings),
        .pattern_signature = pd_db_text_copy(res, i, C_SIG, strings),
        .pattern_type = pd_db_text_copy(res, i, C_TYPE, strings),
        .occurrence_count = int_at(res, i, C_COUNT),
        .avg_tokens_with_llm = int_at(res, i, C_TOK_LLM),
        .avg_cost_with_llm = real_at(res, i, C_COST_LLM),
        .avg_tokens_with_tool = int_at(res, i, C_TOK_TOOL),
        .avg_cost_with_tool = real_at(res, i, C_COST_TOOL),
        .typical_input_pattern = pd_db_text_copy(res, i, C_TYPICAL, strings),
        .automation_status = pd_db_text_copy(res, i, C_STATUS, strings),
        .confidence_score = real_at(res, i, C_CONF),
        .potential_monthly_savings = real_at(res, i, C_SAVINGS),
        .created_at = pd_db_text_copy(res, i, C_CREATED, strings),
        .last_seen = pd_db_text_copy(res, i, C_LAST_SEEN, strings),
    };
}

/* Runs the statement, in a transaction scoped to tenant when there is one. */
static int query(pd_db_t *db, const char *tenant, long top, PGresult **res, pd_error_t *err)
{
    char limit[32];
    snprintf(limit, sizeof(limit), "%ld", top);
    const char *params[] = {tenant, top == 0 ? NULL : limit};
    if (tenant == NULL)
        return pd_db_query(db, SQL_PATTERNS, 2, params, res, err);
    int rc = pd_db_begin_tenant(db, tenant, err);
    if (rc < 0)
        return rc;
    rc = pd_db_end(db, pd_db_query(db, SQL_PATTERNS, 2, params, res, err), err);
    if (rc < 0) { /* COMMIT failed after the query succeeded */
        pd_db_result_free(*res);
        *res = NULL;
    }
    return rc;
}

int pd_patterns_read(pd_db_t *db, const char *tenant, long top, pd_pattern_t **rows, size_t *n,
                     pd_error_t *err)
{
    PGresult *res = NULL;
    char *strings = NULL;
    *rows = NULL;
    int rc = query(db, tenant, top, &res, err);
    if (rc < 0)
        return rc;
    pd_pattern_t *out = pd_db_rows_alloc(res, sizeof(*out), &strings);
    if (out == NULL) {
        pd_db_result_free(res);
        return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    }
    for (int i = 0; i < PQntuples(res); i++)
        row_from(res, i, &strings, &out[i]);
    *rows = out;
    *n = (size_t)PQntuples(res);
    pd_db_result_free(res);
    return PD_OK;
}

void pd_patterns_free(pd_pattern_t *rows)
{
    free(rows);
}

json_t *pd_pattern_json(const pd_pattern_t *p)
{
    json_t *typical =
        p->typical_input_pattern ? json_loads(p->typical_input_pattern, 0, NULL) : NULL;
    return json_pack("{s:I, s:s, s:s, s:s, s:I, s:I, s:f, s:I, s:f, s:o?, s:s, s:f, s:f, s:s, s:s}",
                     "id", (json_int_t)p->id, "tenant_id", p->tenant_id, "pattern_signature",
                     p->pattern_signature, "pattern_type", p->pattern_type, "occurrence_count",
                     (json_int_t)p->occurrence_count, "avg_tokens_with_llm",
                     (json_int_t)p->avg_tokens_with_llm, "avg_cost_with_llm", p->avg_cost_with_llm,
                     "avg_tokens_with_tool", (json_int_t)p->avg_tokens_with_tool,
                     "avg_cost_with_tool", p->avg_cost_with_tool, "typical_input_pattern", typical,
                     "automation_status", p->automation_status, "confidence_score",
                     p->confidence_score, "potential_monthly_savings", p->potential_monthly_savings,
                     "created_at", p->created_at, "last_seen", p->last_seen);
}

int pd_patterns_read_tenant_json(pd_db_t *db, const char *tenant, long top, char **body,
                                 size_t *len, pd_error_t *err)
{
    pd_pattern_t *rows = NULL;
    size_t n = 0;
    *body = NULL;
    int rc = pd_patterns_read(db, tenant, top, &rows, &n, err);
    if (rc < 0)
        return rc;
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++) {
        if (json_array_append_new(list, pd_pattern_json(&rows[i])) < 0) {
            json_decref(list);
            list = NULL;
        }
    }
    pd_patterns_free(rows);
    json_t *answer = list ? json_pack("{s:s, s:o}", "tenant_id", tenant, "patterns", list) : NULL;
    *body = answer ? json_dumps(answer, JSON_REAL_PRECISION(17)) : NULL;
    json_decref(answer);
    if (*body == NULL)
        return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    *len = strlen(*body);
    return PD_OK;
}
