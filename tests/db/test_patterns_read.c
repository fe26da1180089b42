/*
 * Stage: db (src/db/patterns.c).  Reads never fail on stored values: a database that holds
 * statistics past the double range (written before record.h bounded the numbers, or by hand) is
 * still readable by GET /v1/patterns (pd_patterns_list_json) and by `patternd report` in every
 * format, each such value shown as the largest finite double.
 */
#include <criterion/criterion.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/db.h"
#include "pd/json.h"
#include "pd/patterns.h"
#include "support.h"

/*
 * Patterns inserted as the superuser, past validation: two costs of 1e308 (what two accepted
 * records used to store; the savings overflow a float8), a sum far past the double range, and a
 * cost too small for a double.
 */
static char *database_with_huge_values(void)
{
    char *url = pdt_new_migrated_database();
    pdt_sql_exec(url,
                 "INSERT INTO operation_patterns (tenant_id, pattern_signature, pattern_type,"
                 " occurrence_count, sum_tokens, sum_cost, duration_n, sum_duration_ms,"
                 " sum_duration_ms_sq, error_n, sum_retry, typical_input_pattern, created_batch)"
                 " VALUES"
                 " ('huge', 'test:pytest:backend', 'test', 2, 10, 2e308, 0, 0, 0, 0, 0,"
                 "  '{\"error_count\": 0}', 1),"
                 " ('huge', 'build:tsc:all', 'build', 3, 9, ('1' || repeat('0', 400))::numeric,"
                 "  0, 0, 0, 0, 0, '{}', 1),"
                 " ('huge', 'git:diff:summary', 'git', 1, 1, 1e-400, 0, 0, 0, 0, 0, '{}', 1),"
                 " ('plain', 'docs:generate:all', 'docs', 1, 100, 0.5, 0, 0, 0, 0, 0, '{}', 1)");
    return url;
}

Test(patterns_read, tenant_json_reads_values_past_the_double_range)
{
    char *url = database_with_huge_values();
    /* The savings overflow what the old ::float8 cast could read. */
    char *sql_says = pdt_sql_value(url, "SELECT count(*) FROM operation_patterns"
                                        " WHERE potential_monthly_savings > 1.8e308");
    cr_assert_str_eq(sql_says, "2");
    free(sql_says);

    /* As the service reads it: a patternd_service member, under row-level security. */
    char *svc = pdt_service_url(url);
    pd_db_t *db = NULL;
    pd_error_t err;
    cr_assert_eq(pd_db_connect(svc, &db, &err), 0, "%s", err.message);
    pd_patterns_filter_t f = {.tenant = "huge"};
    json_t *doc = NULL;
    cr_assert_eq(pd_patterns_list_json(db, &f, &doc, &err), 0, "%s", err.message);
    /* As the service writes it out, and a client reads it back. */
    char *body = pd_json_dumps(doc, 0);
    json_decref(doc);
    cr_assert_not_null(body);
    json_error_t jerr;
    json_t *answer = json_loads(body, 0, &jerr);
    cr_assert_not_null(answer, "%s: %s", jerr.text, body);
    json_t *rows = json_object_get(answer, "patterns");
    cr_assert_eq(json_array_size(rows), 3, "%s", body);
    /* Most savings first; what a double cannot hold is its largest finite value. */
    json_t *top = json_array_get(rows, 0);
    cr_assert_eq(json_real_value(json_object_get(top, "potential_monthly_savings")), DBL_MAX, "%s",
                 body);
    cr_assert_eq(json_real_value(json_object_get(top, "avg_cost_with_llm")), DBL_MAX, "%s", body);
    json_t *first = json_array_get(rows, 1);
    cr_assert_str_eq(json_string_value(json_object_get(first, "pattern_signature")),
                     "test:pytest:backend");
    cr_assert_eq(json_real_value(json_object_get(first, "avg_cost_with_llm")), 1e308, "%s", body);
    cr_assert_eq(json_real_value(json_object_get(first, "potential_monthly_savings")), DBL_MAX,
                 "%s", body);
    json_t *tiny = json_array_get(rows, 2);
    cr_assert_eq(json_real_value(json_object_get(tiny, "avg_cost_with_llm")), 0.0, "%s", body);
    json_decref(answer);
    free(body);
    pd_db_destroy(db);
    free(svc);
    free(url);
}

Test(patterns_read, report_reads_values_past_the_double_range_in_every_format)
{
    char *url = database_with_huge_values();
    static const char *const formats[] = {"table", "json", "csv"};
    for (int f = 0; f < 3; f++) {
        for (int scoped = 0; scoped < 2; scoped++) {
            char cmd[4096];
            snprintf(cmd, sizeof(cmd), "'%s' report --db '%s' --top 0 --format %s %s 2>&1",
                     pdt_binary(), url, formats[f], scoped ? "--tenant huge" : "");
            int status;
            char *out = pdt_run(cmd, &status);
            cr_assert_eq(status, 0, "%s: %s", cmd, out);
            cr_assert_not_null(strstr(out, "test:pytest:backend"), "%s", out);
            cr_assert_eq(strstr(out, "plain") != NULL, !scoped, "%s", out);
            if (f == 1) {
                json_t *list = json_loads(out, 0, NULL);
                cr_assert_not_null(list, "%s", out);
                cr_assert_eq(json_real_value(json_object_get(json_array_get(list, 0),
                                                             "potential_monthly_savings")),
                             DBL_MAX, "%s", out);
                json_decref(list);
            } else if (f == 2) {
                cr_assert_not_null(strstr(out, "1.7976931348623157e+308"), "%s", out);
            } else {
                cr_assert_lt(strlen(out), 2000, "the table stays readable: %s", out);
            }
            free(out);
        }
    }
    free(url);
}

Test(patterns_read, number_text_converts_within_the_double_range)
{
    cr_assert_eq(pd_patterns_number("12.5"), 12.5);
    cr_assert_eq(pd_patterns_number("1e400"), DBL_MAX);
    cr_assert_eq(pd_patterns_number("-1e400"), -DBL_MAX);
    cr_assert_eq(pd_patterns_number("Infinity"), DBL_MAX);
    cr_assert_eq(pd_patterns_number("NaN"), 0.0);
    cr_assert_eq(pd_patterns_number("1e-400"), 0.0);
    cr_assert_eq(pd_patterns_number(""), 0.0);
}
