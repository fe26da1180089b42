/*
 * Reading operation_patterns back; see include/pd/patterns.h.
 *
 * One list statement serves every list: `patternd report` and `patternd
 * review list` (every tenant, or one) and GET /v1/patterns (one tenant).
 * It returns the columns of docs/spec.md §3.2 and of the review lifecycle as text,
 * times as ISO 8601 to the microsecond.  The numeric columns (average
 * costs, savings) come as the numeric's own text and are converted to
 * double here, not by a ::float8 cast in SQL: a cast fails the whole
 * statement on a value past the double range (a pattern whose costs were
 * stored before record.h bounded them, e.g. two costs of 1e308), and one
 * such row would make every read of the tenant, and every report, fail.
 * In C such a value becomes the largest finite double of its sign (NaN,
 * which only hand-written SQL can store, becomes 0), so it still ranks
 * first and prints as a number in JSON, CSV and the table alike.  Rows are
 * copied out of the PGresult into one allocation, so that callers never
 * see libpq.
 *
 * Paging is by keyset: the list is ordered by savings (descending), tenant
 * and id, and a cursor holds the last row's id and savings, as the
 * numeric's exact text, in base64url, so the next page starts right after
 * that row however many rows were added or moved since, and costs a sort
 * of the tenant's patterns, never an OFFSET scan.
 *
 * A pattern's document (GET /v1/patterns/{id}) is read in one transaction:
 * the row, its most recent occurrences from the ledger (workflows: the
 * counted versions whose signatures hold the pattern's), its weeks from
 * pattern_weeks, its audit rows from pattern_reviews and, once implemented,
 * how many occurrences came since.  The examples and that count look the
 * tenant's ledger rows up by tenant (its primary key's prefix), so they
 * cost a scan of that tenant's workflows: fine for a pattern's page, not
 * for a list.
 *
 * Runs on the thread owning the pd_db_t; owns nothing between calls.
 */
#include "pd/patterns.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/db.h"

/*
 * The columns of a pattern, in the order of the C_* constants below; times as
 * ISO 8601 in UTC to the microsecond.
 */
#define PATTERN_COLUMNS                                                                            \
    "id, tenant_id, pattern_signature, pattern_type, occurrence_count,"                            \
    " avg_tokens_with_llm, avg_cost_with_llm, avg_tokens_with_tool,"                               \
    " avg_cost_with_tool, typical_input_pattern::text, automation_status,"                         \
    " confidence_score, potential_monthly_savings,"                                                \
    " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"                \
    " to_char(last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"                 \
    " to_char(first_event_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"            \
    " to_char(last_event_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"             \
    " to_char(status_changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"         \
    " to_char(implemented_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/*
 * $1 the tenant, or NULL for all; $2 a status, $3 a type, $4 a least
 * confidence, each NULL for any; $5 and $6 a cursor's savings and id (NULL:
 * from the first row); $7 the limit, or NULL for none.
 */
static const char SQL_LIST[] =
    "SELECT " PATTERN_COLUMNS " FROM operation_patterns"
    " WHERE ($1::text IS NULL OR tenant_id = $1) AND occurrence_count > 0"
    " AND ($2::text IS NULL OR automation_status = $2)"
    " AND ($3::text IS NULL OR pattern_type = $3)"
    " AND ($4::float8 IS NULL OR confidence_score >= $4)"
    " AND ($5::numeric IS NULL OR potential_monthly_savings < $5"
    "      OR (potential_monthly_savings = $5 AND id > $6::bigint))"
    " ORDER BY potential_monthly_savings DESC, tenant_id COLLATE \"C\", id"
    " LIMIT $7::bigint";

/* $1 the tenant, $2 the id; and the Monday of the current week, as days since the epoch. */
static const char SQL_ONE[] = "SELECT " PATTERN_COLUMNS ", patternd_week(patternd_us(now()))"
                              " FROM operation_patterns WHERE tenant_id = $1 AND id = $2::bigint";

/*
 * $1 the tenant, $2 the signature: its most recent counted occurrences,
 * with their event time, start_time and when they were recorded.
 */
static const char SQL_EXAMPLES[] =
    "SELECT workflow_id,"
    " to_char(('epoch'::timestamptz + coalesce(start_us, patternd_us(ingested_at))"
    "          * interval '1 microsecond') AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
    " CASE WHEN start_us IS NOT NULL THEN to_char(('epoch'::timestamptz"
    "      + start_us * interval '1 microsecond') AT TIME ZONE 'UTC',"
    "      'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') END,"
    " to_char(ingested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
    " tokens, cost, characteristics"
    " FROM workflows"
    " WHERE tenant_id = $1 AND counted AND signatures @> ARRAY[$2::text]"
    " ORDER BY coalesce(start_us, patternd_us(ingested_at)) DESC, workflow_id"
    " LIMIT 20";

/* $1 the tenant, $2 the pattern, $3 and $4 the first and last Monday (days since the epoch). */
static const char SQL_WEEKS[] =
    "SELECT week - 'epoch'::date, occurrences, cost FROM pattern_weeks"
    " WHERE tenant_id = $1 AND pattern_id = $2::bigint"
    " AND week BETWEEN 'epoch'::date + $3::int AND 'epoch'::date + $4::int"
    " ORDER BY week";

/* $1 the tenant, $2 the pattern. */
static const char SQL_HISTORY[] =
    "SELECT from_status, to_status, actor, reviewer, notes, reason,"
    " to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    " FROM pattern_reviews WHERE tenant_id = $1 AND pattern_id = $2::bigint ORDER BY id";

/* $1 the tenant, $2 the signature, $3 implemented_at. */
static const char SQL_SINCE[] =
    "SELECT count(*) FROM workflows"
    " WHERE tenant_id = $1 AND counted AND signatures @> ARRAY[$2::text]"
    " AND coalesce(start_us, patternd_us(ingested_at)) >= patternd_us($3::timestamptz)";

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
    C_LAST_SEEN,
    C_FIRST_EVENT,
    C_LAST_EVENT,
    C_STATUS_CHANGED,
    C_IMPLEMENTED,
    C_COLUMNS /* SQL_ONE's current week follows */
};

const char *const pd_pattern_statuses[] = {"detected",    "candidate",  "approved", "rejected",
                                           "implemented", "deprecated", NULL};

bool pd_pattern_status_valid(const char *name)
{
    for (const char *const *s = pd_pattern_statuses; *s != NULL; s++) {
        if (strcmp(name, *s) == 0)
            return true;
    }
    return false;
}

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
        .savings_text = pd_db_text_copy(res, i, C_SAVINGS, strings),
        .created_at = pd_db_text_copy(res, i, C_CREATED, strings),
        .last_seen = pd_db_text_copy(res, i, C_LAST_SEEN, strings),
        .first_event_at = pd_db_text_copy(res, i, C_FIRST_EVENT, strings),
        .last_event_at = pd_db_text_copy(res, i, C_LAST_EVENT, strings),
        .status_changed_at = pd_db_text_copy(res, i, C_STATUS_CHANGED, strings),
        .implemented_at = pd_db_text_copy(res, i, C_IMPLEMENTED, strings),
    };
}

/* --- cursors ------------------------------------------------------------------------------- */

/* A numeric's text as PostgreSQL prints one: an optional '-', digits, an optional fraction. */
static bool numeric_text(const char *s)
{
    if (*s == '-')
        s++;
    if (!isdigit((unsigned char)*s))
        return false;
    while (isdigit((unsigned char)*s))
        s++;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s))
            return false;
        while (isdigit((unsigned char)*s))
            s++;
    }
    return *s == '\0';
}

/* The cursor after row p: base64url of "<id>:<savings>". */
static void cursor_of(const pd_pattern_t *p, char out[PD_PATTERNS_CURSOR_MAX])
{
    char plain[128];
    int n = snprintf(plain, sizeof(plain), "%lld:%s", (long long)p->id, p->savings_text);
    if (n < 0 || (size_t)n >= sizeof(plain) ||
        sodium_base64_ENCODED_LEN((size_t)n, sodium_base64_VARIANT_URLSAFE_NO_PADDING) >
            PD_PATTERNS_CURSOR_MAX) {
        out[0] = '\0'; /* savings past 10^100: no row after it is worth a page */
        return;
    }
    sodium_bin2base64(out, PD_PATTERNS_CURSOR_MAX, (const unsigned char *)plain, (size_t)n,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* Splits a cursor into the savings text and the id (as text); PD_EINVAL when no list gave it. */
static int cursor_parse(const char *cursor, char savings[128], char id[24], pd_error_t *err)
{
    unsigned char plain[128];
    size_t len = 0;
    if (sodium_base642bin(plain, sizeof(plain) - 1, cursor, strlen(cursor), NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        goto bad;
    plain[len] = '\0';
    char *colon = strchr((char *)plain, ':');
    if (colon == NULL || colon == (char *)plain || (size_t)(colon - (char *)plain) >= 20)
        goto bad;
    *colon = '\0';
    char *end;
    errno = 0;
    long long v = strtoll((char *)plain, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0 || !numeric_text(colon + 1))
        goto bad;
    snprintf(id, 24, "%lld", v);
    snprintf(savings, 128, "%s", colon + 1);
    return PD_OK;
bad:
    return pd_error_set(err, PD_EINVAL, 0, "cursor", "cursor: not a cursor that a list gave");
}

/* --- lists --------------------------------------------------------------------------------- */

/* Runs a statement in a transaction scoped to tenant when there is one, else in none. */
static int query(pd_db_t *db, const char *tenant, const char *sql, int nparams,
                 const char *const *params, PGresult **res, pd_error_t *err)
{
    if (tenant == NULL)
        return pd_db_query(db, sql, nparams, params, res, err);
    int rc = pd_db_begin_tenant(db, tenant, err);
    if (rc < 0)
        return rc;
    rc = pd_db_end(db, pd_db_query(db, sql, nparams, params, res, err), err);
    if (rc < 0) { /* COMMIT failed after the query succeeded */
        pd_db_result_free(*res);
        *res = NULL;
    }
    return rc;
}

/* Copies res's rows into a new array (*rows); PD_ENOMEM. */
static int rows_of(PGresult *res, pd_pattern_t **rows, size_t *n, pd_error_t *err)
{
    char *strings = NULL;
    pd_pattern_t *out = pd_db_rows_alloc(res, sizeof(*out), &strings);
    if (out == NULL)
        return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    for (int i = 0; i < PQntuples(res); i++)
        row_from(res, i, &strings, &out[i]);
    *rows = out;
    *n = (size_t)PQntuples(res);
    return PD_OK;
}

int pd_patterns_read(pd_db_t *db, const pd_patterns_filter_t *f, pd_pattern_t **rows, size_t *n,
                     char *next_cursor, pd_error_t *err)
{
    PGresult *res = NULL;
    char conf[64], limit[32], savings[128], id[24];
    *rows = NULL;
    *n = 0;
    if (next_cursor != NULL)
        next_cursor[0] = '\0';
    if (f->cursor != NULL && cursor_parse(f->cursor, savings, id, err) < 0)
        return PD_EINVAL;
    snprintf(conf, sizeof(conf), "%.17g", f->min_confidence);
    /* One row more than asked for tells whether there is a next page. */
    snprintf(limit, sizeof(limit), "%ld", f->limit + (next_cursor != NULL));
    const char *params[] = {f->tenant,
                            f->status,
                            f->type,
                            f->has_min_confidence ? conf : NULL,
                            f->cursor != NULL ? savings : NULL,
                            f->cursor != NULL ? id : NULL,
                            f->limit > 0 ? limit : NULL};
    int rc = query(db, f->tenant, SQL_LIST, 7, params, &res, err);
    if (rc < 0)
        return rc;
    rc = rows_of(res, rows, n, err);
    pd_db_result_free(res);
    if (rc == PD_OK && next_cursor != NULL && f->limit > 0 && *n > (size_t)f->limit) {
        *n = (size_t)f->limit;
        cursor_of(&(*rows)[*n - 1], next_cursor);
    }
    return rc;
}

void pd_patterns_free(pd_pattern_t *rows)
{
    free(rows);
}

/* A nullable text as JSON: a string or null. New reference. */
static json_t *text_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

json_t *pd_pattern_json(const pd_pattern_t *p)
{
    json_t *typical =
        p->typical_input_pattern ? json_loads(p->typical_input_pattern, 0, NULL) : NULL;
    return json_pack(
        "{s:I, s:s, s:s, s:s, s:I, s:I, s:f, s:I, s:f, s:o?, s:s, s:f, s:f, s:s, s:s,"
        " s:o, s:o, s:o, s:o}",
        "id", (json_int_t)p->id, "tenant_id", p->tenant_id, "pattern_signature",
        p->pattern_signature, "pattern_type", p->pattern_type, "occurrence_count",
        (json_int_t)p->occurrence_count, "avg_tokens_with_llm", (json_int_t)p->avg_tokens_with_llm,
        "avg_cost_with_llm", p->avg_cost_with_llm, "avg_tokens_with_tool",
        (json_int_t)p->avg_tokens_with_tool, "avg_cost_with_tool", p->avg_cost_with_tool,
        "typical_input_pattern", typical, "automation_status", p->automation_status,
        "confidence_score", p->confidence_score, "potential_monthly_savings",
        p->potential_monthly_savings, "created_at", p->created_at, "last_seen", p->last_seen,
        "first_occurrence_at", text_or_null(p->first_event_at), "last_occurrence_at",
        text_or_null(p->last_event_at), "status_changed_at", text_or_null(p->status_changed_at),
        "implemented_at", text_or_null(p->implemented_at));
}

/* Appends each row's document to a new array; NULL when out of memory. */
static json_t *rows_json(const pd_pattern_t *rows, size_t n)
{
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++) {
        if (json_array_append_new(list, pd_pattern_json(&rows[i])) < 0) {
            json_decref(list);
            list = NULL;
        }
    }
    return list;
}

int pd_patterns_list_json(pd_db_t *db, const pd_patterns_filter_t *f, json_t **out, pd_error_t *err)
{
    pd_pattern_t *rows = NULL;
    size_t n = 0;
    char next[PD_PATTERNS_CURSOR_MAX];
    *out = NULL;
    int rc = pd_patterns_read(db, f, &rows, &n, next, err);
    if (rc < 0)
        return rc;
    json_t *list = rows_json(rows, n);
    pd_patterns_free(rows);
    if (list != NULL)
        *out = json_pack("{s:s, s:o, s:o}", "tenant_id", f->tenant, "patterns", list, "next_cursor",
                         next[0] != '\0' ? json_string(next) : json_null());
    return *out != NULL ? PD_OK : pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
}

/* --- one pattern's document ----------------------------------------------------------------- */

/* Days since 1970-01-01 of a civil date (proleptic Gregorian), and back. */
static long days_from_civil(long y, long m, long d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(long z, long *y, long *m, long *d)
{
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    long doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

/*
 * The ISO week of the Monday `monday` (days since the epoch): "2026-W41",
 * the year being the one its Thursday falls in; and the Monday's date.
 */
static void iso_week(long monday, char label[32], char date[32])
{
    long y, m, d, ty, tm, td;
    civil_from_days(monday, &y, &m, &d);
    snprintf(date, 32, "%04ld-%02ld-%02ld", y, m, d);
    civil_from_days(monday + 3, &ty, &tm, &td);
    long week = (monday + 3 - days_from_civil(ty, 1, 1)) / 7 + 1;
    snprintf(label, 32, "%04ld-W%02ld", ty, week);
}

/* The weekly series: `weeks` weeks up to the one starting on `current`, zeros filled in. */
static int weekly_json(pd_db_t *db, const char *tenant, const char *id, long current, long weeks,
                       json_t **out, pd_error_t *err)
{
    char first_day[24], last_day[24];
    long first = current - 7 * (weeks - 1);
    snprintf(first_day, sizeof(first_day), "%ld", first);
    snprintf(last_day, sizeof(last_day), "%ld", current);
    const char *params[] = {tenant, id, first_day, last_day};
    PGresult *res = NULL;
    int rc = pd_db_query(db, SQL_WEEKS, 4, params, &res, err);
    if (rc < 0)
        return rc;
    json_t *list = json_array();
    int row = 0, rows = PQntuples(res);
    for (long monday = first; list != NULL && monday <= current; monday += 7) {
        char label[32], date[32];
        json_int_t n = 0;
        double cost = 0;
        if (row < rows && strtol(PQgetvalue(res, row, 0), NULL, 10) == monday) {
            n = (json_int_t)int_at(res, row, 1);
            cost = real_at(res, row, 2);
            row++;
        }
        iso_week(monday, label, date);
        if (json_array_append_new(list,
                                  json_pack("{s:s, s:s, s:I, s:f}", "week", label, "week_start",
                                            date, "occurrences", n, "cost", cost)) < 0) {
            json_decref(list);
            list = NULL;
        }
    }
    pd_db_result_free(res);
    *out = list;
    return list != NULL ? PD_OK : pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
}

static int examples_json(pd_db_t *db, const char *tenant, const char *signature, json_t **out,
                         pd_error_t *err)
{
    const char *params[] = {tenant, signature};
    PGresult *res = NULL;
    int rc = pd_db_query(db, SQL_EXAMPLES, 2, params, &res, err);
    if (rc < 0)
        return rc;
    json_t *list = json_array();
    for (int i = 0; list != NULL && i < PQntuples(res); i++) {
        json_t *chars = PQgetisnull(res, i, 6) ? NULL : json_loads(PQgetvalue(res, i, 6), 0, NULL);
        json_t *tokens = PQgetisnull(res, i, 4) ? json_null() : json_integer(int_at(res, i, 4));
        json_t *cost = PQgetisnull(res, i, 5) ? json_null() : json_real(real_at(res, i, 5));
        json_t *e = json_pack(
            "{s:s, s:s, s:o, s:s, s:o, s:o, s:o}", "workflow_id", PQgetvalue(res, i, 0), "event_at",
            PQgetvalue(res, i, 1), "start_time",
            text_or_null(PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2)), "recorded_at",
            PQgetvalue(res, i, 3), "total_tokens", tokens, "actual_cost_total", cost,
            "characteristics", chars != NULL ? chars : json_null());
        if (json_array_append_new(list, e) < 0) {
            json_decref(list);
            list = NULL;
        }
    }
    pd_db_result_free(res);
    *out = list;
    return list != NULL ? PD_OK : pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
}

/* The column of row i as a JSON string, or null when NULL. */
static json_t *column_json(const PGresult *res, int i, int col)
{
    return PQgetisnull(res, i, col) ? json_null() : json_string(PQgetvalue(res, i, col));
}

static int history_json(pd_db_t *db, const char *tenant, const char *id, json_t **out,
                        pd_error_t *err)
{
    const char *params[] = {tenant, id};
    PGresult *res = NULL;
    int rc = pd_db_query(db, SQL_HISTORY, 2, params, &res, err);
    if (rc < 0)
        return rc;
    json_t *list = json_array();
    for (int i = 0; list != NULL && i < PQntuples(res); i++) {
        json_t *h = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "from", column_json(res, i, 0),
                              "to", column_json(res, i, 1), "actor", column_json(res, i, 2),
                              "reviewer", column_json(res, i, 3), "notes", column_json(res, i, 4),
                              "reason", column_json(res, i, 5), "at", column_json(res, i, 6));
        if (json_array_append_new(list, h) < 0) {
            json_decref(list);
            list = NULL;
        }
    }
    pd_db_result_free(res);
    *out = list;
    return list != NULL ? PD_OK : pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
}

/* Adds occurrences_since_implemented to doc. */
static int since_json(pd_db_t *db, const char *tenant, const pd_pattern_t *p, json_t *doc,
                      pd_error_t *err)
{
    const char *params[] = {tenant, p->pattern_signature, p->implemented_at};
    PGresult *res = NULL;
    int rc = pd_db_query(db, SQL_SINCE, 3, params, &res, err);
    if (rc < 0)
        return rc;
    rc = json_object_set_new(doc, "occurrences_since_implemented",
                             json_integer(int_at(res, 0, 0))) == 0
             ? PD_OK
             : pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    pd_db_result_free(res);
    return rc;
}

/* pd_patterns_detail_json() in the transaction open on db, scoped to tenant. */
static int detail_json_in(pd_db_t *db, const char *tenant, int64_t id, long weeks, json_t **out,
                          pd_error_t *err)
{
    char id_text[24];
    snprintf(id_text, sizeof(id_text), "%lld", (long long)id);
    const char *params[] = {tenant, id_text};
    PGresult *res = NULL;
    pd_pattern_t *row = NULL;
    size_t n = 0;
    json_t *doc = NULL, *part = NULL;
    *out = NULL;
    int rc = pd_db_query(db, SQL_ONE, 2, params, &res, err);
    if (rc < 0 || PQntuples(res) == 0)
        goto done; /* no such pattern: *out stays NULL */
    long current = strtol(PQgetvalue(res, 0, C_COLUMNS), NULL, 10);
    if ((rc = rows_of(res, &row, &n, err)) < 0)
        goto done;
    if ((doc = pd_pattern_json(row)) == NULL) {
        rc = pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
        goto done;
    }
    if ((rc = examples_json(db, tenant, row->pattern_signature, &part, err)) < 0 ||
        json_object_set_new(doc, "examples", part) < 0)
        goto fail;
    if ((rc = weekly_json(db, tenant, id_text, current, weeks, &part, err)) < 0 ||
        json_object_set_new(doc, "weekly", part) < 0)
        goto fail;
    if ((rc = history_json(db, tenant, id_text, &part, err)) < 0 ||
        json_object_set_new(doc, "history", part) < 0)
        goto fail;
    if (strcmp(row->automation_status, "implemented") == 0 && row->implemented_at != NULL &&
        (rc = since_json(db, tenant, row, doc, err)) < 0)
        goto fail;
    *out = doc;
    goto done;
fail:
    if (rc == PD_OK) /* json_object_set_new failed; it released the part */
        rc = pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    json_decref(doc);
done:
    pd_patterns_free(row);
    pd_db_result_free(res);
    return rc;
}

int pd_patterns_detail_json(pd_db_t *db, const char *tenant, int64_t id, long weeks, json_t **out,
                            pd_error_t *err)
{
    int rc = pd_db_begin_tenant(db, tenant, err);
    if (rc < 0)
        return rc;
    rc = pd_db_end(db, detail_json_in(db, tenant, id, weeks, out, err), err);
    if (rc < 0) { /* COMMIT failed after the reads succeeded */
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}
