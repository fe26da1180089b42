/*
 * Stage: db (the automatic moves of docs/spec.md §5).  Ingesting
 * sample-600 with the default thresholds makes candidates of exactly the
 * patterns that tests/data/sample-600.patterns.ndjson says meet them
 * (occurrences >= 5, confidence >= 70, savings >= 1.00; computed here from
 * the file), each with one audit row by patternd, and ingesting it again
 * moves nothing.  A tenant's own thresholds, set by `patternd review
 * thresholds`, move its patterns both ways at once, with audit rows, and
 * leave the other tenants' alone; the options' ranges are the API's, and a
 * set of one threshold never undoes a concurrent set of another.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

static int by_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "tenant signature" lines, sorted, of the expected candidates; malloc'd. */
static char *expected_candidates(const char *tenant_only)
{
    size_t len = 0;
    char *text = pdt_read_file(pdt_data("sample-600.patterns.ndjson"), &len);
    cr_assert_not_null(text);
    char **lines = calloc(256, sizeof(char *));
    size_t n = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        json_t *row = json_loads(line, 0, NULL);
        cr_assert_not_null(row, "%s", line);
        const char *tenant = json_string_value(json_object_get(row, "tenant_id"));
        if (json_integer_value(json_object_get(row, "occurrence_count")) >= 5 &&
            json_number_value(json_object_get(row, "confidence_score")) >= 70 &&
            json_number_value(json_object_get(row, "potential_monthly_savings")) >= 1.00 &&
            (tenant_only == NULL || strcmp(tenant, tenant_only) == 0)) {
            cr_assert_lt(n, 256);
            lines[n] = malloc(256);
            snprintf(lines[n++], 256, "%s %s", tenant,
                     json_string_value(json_object_get(row, "pattern_signature")));
        }
        json_decref(row);
    }
    free(text);
    qsort(lines, n, sizeof(char *), by_text);
    size_t cap = n * 256 + 1, at = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        at += (size_t)snprintf(out + at, cap - at, "%s\n", lines[i]);
        free(lines[i]);
    }
    free(lines);
    return out;
}

/* The same lines of the patterns in status (of tenant, or all), as the database has them. */
static char *patterns_in(const char *url, const char *status, const char *tenant)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(string_agg(tenant_id || ' ' || pattern_signature, E'\\n'"
             " ORDER BY tenant_id || ' ' || pattern_signature COLLATE \"C\") || E'\\n', '')"
             " FROM operation_patterns WHERE automation_status = '%s'%s%s%s",
             status, tenant ? " AND tenant_id = '" : "", tenant ? tenant : "", tenant ? "'" : "");
    return pdt_sql_value(url, sql);
}

Test(candidates, sample_with_default_thresholds_gives_the_candidates_of_the_vectors)
{
    char *url = pdt_new_migrated_database();
    char args[4096];
    snprintf(args, sizeof(args), "--workers 4 --batch 37 '%s'", pdt_data("sample-600.ndjson"));
    int status;
    char *out = pdt_ingest(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    free(out);
    char *want = expected_candidates(NULL), *got = patterns_in(url, "candidate", NULL);
    cr_assert_gt(strlen(want), 0, "the vectors hold candidates");
    cr_assert_str_eq(got, want);
    /*
     * Each move an audit row by patternd.  Batches in any order can move a
     * pattern back and forth on its way (its confidence and savings follow
     * the occurrences), so per pattern the moves up outnumber those down by
     * one for a candidate, and by none for the others.
     */
    long candidates = pdt_sql_long(url, "SELECT count(*) FROM operation_patterns"
                                        " WHERE automation_status = 'candidate'");
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM pattern_reviews WHERE actor <> 'patternd'"
                                   " OR reviewer IS NOT NULL OR NOT ((from_status = 'detected'"
                                   " AND to_status = 'candidate' AND reason LIKE 'meets%')"
                                   " OR (from_status = 'candidate' AND to_status = 'detected'"
                                   " AND reason LIKE 'no longer meets%'))"),
                 0);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM operation_patterns p WHERE"
                                   " (SELECT count(*) FILTER (WHERE to_status = 'candidate')"
                                   "  - count(*) FILTER (WHERE to_status = 'detected')"
                                   "  FROM pattern_reviews r WHERE r.tenant_id = p.tenant_id"
                                   "  AND r.pattern_id = p.id)"
                                   " <> CASE WHEN p.automation_status = 'candidate' THEN 1"
                                   " ELSE 0 END"),
                 0);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM operation_patterns WHERE"
                                   " automation_status NOT IN ('detected', 'candidate')"),
                 0);
    long audit = pdt_sql_long(url, "SELECT count(*) FROM pattern_reviews");
    cr_assert_geq(audit, candidates);

    /* Again: every record a duplicate, nothing moves. */
    out = pdt_ingest(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    free(out);
    char *again = patterns_in(url, "candidate", NULL);
    cr_assert_str_eq(again, want);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM pattern_reviews"), audit);
    free(again);
    free(want);
    free(got);
    free(url);
}

static char *review_cli(const char *url, const char *args, int *status)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' review %s --db '%s' 2>&1", pdt_binary(), args, url);
    return pdt_run(cmd, status);
}

Test(candidates, a_tenants_thresholds_move_its_patterns_both_ways_with_audit_rows)
{
    char *url = pdt_new_migrated_database();
    char args[4096];
    snprintf(args, sizeof(args), "'%s'", pdt_data("sample-600.ndjson"));
    int status;
    char *out = pdt_ingest(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    free(out);
    char *others = patterns_in(url, "candidate", "tenant-01");
    long patterns = pdt_sql_long(url, "SELECT count(*) FROM operation_patterns"
                                      " WHERE tenant_id = 'tenant-00'");
    long before = pdt_sql_long(url, "SELECT count(*) FROM operation_patterns"
                                    " WHERE tenant_id = 'tenant-00' AND automation_status ="
                                    " 'candidate'");
    long audit = pdt_sql_long(url, "SELECT count(*) FROM pattern_reviews");

    /* Down to nothing: every detected pattern of tenant-00 becomes a candidate. */
    out = review_cli(url,
                     "thresholds --tenant tenant-00 --min-occurrences 0 --min-confidence 0"
                     " --min-savings 0",
                     &status);
    cr_assert_eq(status, 0, "%s", out);
    char want[128];
    snprintf(want, sizeof(want), "moved %ld patterns", patterns - before);
    cr_assert_not_null(strstr(out, want), "%s", out);
    free(out);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM operation_patterns WHERE tenant_id ="
                                   " 'tenant-00' AND automation_status = 'candidate'"),
                 patterns);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM pattern_reviews"),
                 audit + patterns - before);

    /* Up past every pattern: all of them go back to detected, each with its audit row. */
    out = review_cli(url, "thresholds --tenant tenant-00 --min-occurrences 100000", &status);
    cr_assert_eq(status, 0, "%s", out);
    snprintf(want, sizeof(want), "moved %ld patterns", patterns);
    cr_assert_not_null(strstr(out, want), "%s", out);
    free(out);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM operation_patterns WHERE tenant_id ="
                                   " 'tenant-00' AND automation_status = 'detected'"),
                 patterns);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM pattern_reviews WHERE tenant_id ="
                                   " 'tenant-00' AND actor = 'patternd' AND from_status ="
                                   " 'candidate' AND to_status = 'detected'"),
                 patterns);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM pattern_reviews"),
                 audit + patterns - before + patterns);

    /* The next batch keeps to the tenant's thresholds: nothing of tenant-00 qualifies. */
    char more[64];
    snprintf(more, sizeof(more), "/tmp/pdt-more-%d.ndjson", (int)getpid());
    static const char records[] =
        "{\"tenant_id\": \"tenant-00\", \"workflow_id\": \"more-1\", \"nl_input\": \"run the"
        " backend tests\", \"total_tokens\": 900000, \"actual_cost_total\": 40}\n";
    pdt_write_file(more, records, sizeof(records) - 1);
    snprintf(args, sizeof(args), "'%s'", more);
    out = pdt_ingest(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    free(out);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM operation_patterns WHERE tenant_id ="
                                   " 'tenant-00' AND automation_status = 'candidate'"),
                 0);
    unlink(more);
    /* The other tenants keep theirs. */
    char *still = patterns_in(url, "candidate", "tenant-01");
    cr_assert_str_eq(still, others);
    free(still);
    free(others);
    free(url);
}

Test(candidates, threshold_options_have_the_ranges_of_the_api)
{
    /* Refused before connecting: the address below has no server. */
    static const struct {
        const char *args, *message;
    } bad[] = {
        {"--min-confidence 101", "--min-confidence: expected a number from 0 to 100"},
        {"--min-confidence nan", "--min-confidence: expected a number from 0 to 100"},
        {"--min-savings 1e29", "--min-savings: expected a number from 0 to 1e28"},
        {"--min-savings -0.5", "--min-savings: expected a number from 0 to 1e28"},
        {"--min-savings 1x", "--min-savings: expected a number, got '1x'"},
        {"--min-occurrences 9007199254740992", "--min-occurrences: expected"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char args[256];
        snprintf(args, sizeof(args), "thresholds --tenant tenant-00 %s", bad[i].args);
        int status;
        char *out = review_cli("postgresql://127.0.0.1:1/none", args, &status);
        cr_assert_eq(status, 2, "%s: %s", args, out);
        cr_assert_not_null(strstr(out, bad[i].message), "%s: %s", args, out);
        free(out);
    }
    /* The largest values the API takes are taken. */
    char *url = pdt_new_migrated_database();
    int status;
    char *out = review_cli(url,
                           "thresholds --tenant tenant-00 --min-occurrences 9007199254740991"
                           " --min-confidence 100 --min-savings 1e28",
                           &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_not_null(strstr(out, "min_occurrences 9007199254740991, min_confidence 100.0,"
                                   " min_savings 1e+28"),
                       "%s", out);
    free(out);
    free(url);
}

static int a_lock_waiter(void *arg)
{
    return pdt_lock_waiters(arg) > 0;
}

Test(candidates, setting_one_threshold_keeps_another_set_concurrently)
{
    char *url = pdt_new_migrated_database();
    pdt_sql_exec(url, "INSERT INTO review_thresholds (tenant_id, min_occurrences, min_confidence,"
                      " min_savings, updated_by) VALUES ('tenant-00', 5, 70, 1.00, 'test')");
    /* The test changes min_occurrences and holds the row, uncommitted. */
    PGconn *holder = PQconnectdb(url);
    cr_assert_eq(PQstatus(holder), CONNECTION_OK, "%s", PQerrorMessage(holder));
    PGresult *res = PQexec(holder, "BEGIN; UPDATE review_thresholds SET min_occurrences = 42"
                                   " WHERE tenant_id = 'tenant-00'");
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(holder));
    PQclear(res);

    /* Meanwhile the CLI sets min_confidence: it waits for the row. */
    char out_path[64], cmd[4096];
    snprintf(out_path, sizeof(out_path), "/tmp/pdt-thresholds-%d.out", (int)getpid());
    snprintf(cmd, sizeof(cmd),
             "'%s' review thresholds --tenant tenant-00 --min-confidence 80 --db '%s' >'%s' 2>&1",
             pdt_binary(), url, out_path);
    pid_t cli = fork();
    cr_assert_geq(cli, 0);
    if (cli == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    pdt_nodes_t nodes;
    pdt_nodes_of(url, &nodes);
    pdt_poll_until(a_lock_waiter, &nodes, 120, "the CLI to wait on the held row");
    pdt_nodes_free(&nodes);
    cr_assert_eq(waitpid(cli, NULL, WNOHANG), 0, "the CLI ended while the row was held");
    res = PQexec(holder, "COMMIT");
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(holder));
    PQclear(res);
    PQfinish(holder);

    int status;
    cr_assert_eq(waitpid(cli, &status, 0), cli);
    char *out = pdt_read_file(out_path, NULL);
    cr_assert_not_null(out);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", out);
    cr_assert_not_null(strstr(out, "min_occurrences 42, min_confidence 80.0, min_savings 1.0"),
                       "%s", out);
    char *row = pdt_sql_value(url, "SELECT min_occurrences || ' ' || min_confidence || ' ' ||"
                                   " min_savings || ' ' || updated_by FROM review_thresholds"
                                   " WHERE tenant_id = 'tenant-00'");
    cr_assert_eq(strncmp(row, "42 80 1.00 cli:", 15), 0, "%s", row);
    unlink(out_path);
    free(row);
    free(out);
    free(url);
}
