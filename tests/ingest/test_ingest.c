/*
 * The whole ingest pipeline, end to end (file source -> record -> batch ->
 * pool -> worker -> db), and the report read back from it.
 * `patternd ingest` and `patternd report` against the throwaway PostgreSQL:
 * the reference's statistics, exactly once whatever the workers, order,
 * repetitions or processes, and bad input accounted for line by line.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

static char *sample(void)
{
    return strdup(pdt_data("sample-600.ndjson"));
}

Test(ingest, sample_one_worker_matches_reference)
{
    char *url = pdt_new_migrated_database();
    char args[4096];
    char *file = sample();
    snprintf(args, sizeof(args), "--workers 1 '%s'", file);
    int status;
    char *out = pdt_ingest(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "total_workflows"), 600);
    cr_assert_eq(pdt_summary_value(out, "processed"), 600);
    cr_assert_eq(pdt_summary_value(out, "duplicates"), 0);
    cr_assert_eq(pdt_summary_value(out, "errors"), 0);
    cr_assert_eq(pdt_summary_value(out, "new_patterns"), 104);
    pdt_assert_patterns_match(url, pdt_data("sample-600.patterns.ndjson"));
    free(out);
    free(file);
    free(url);
}

Test(ingest, sample_eight_workers_small_batches_matches_reference)
{
    char *url = pdt_new_migrated_database();
    char args[4096];
    char *file = sample();
    snprintf(args, sizeof(args), "--workers 8 --batch 7 '%s'", file);
    int status;
    char *out = pdt_ingest(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "processed"), 600);
    cr_assert_eq(pdt_summary_value(out, "new_patterns"), 104);
    pdt_assert_patterns_match(url, pdt_data("sample-600.patterns.ndjson"));
    free(out);
    free(file);
    free(url);
}

Test(ingest, same_file_twice_counts_once)
{
    char *url = pdt_new_migrated_database();
    char args[4096];
    char *file = sample();
    snprintf(args, sizeof(args), "--workers 4 --batch 50 '%s'", file);
    int status;
    free(pdt_ingest(url, args, &status));
    cr_assert_eq(status, 0);
    char *digest = pdt_tables_digest(url);
    char *out = pdt_ingest(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "processed"), 0);
    cr_assert_eq(pdt_summary_value(out, "duplicates"), 600);
    cr_assert_eq(pdt_summary_value(out, "new_patterns"), 0);
    char *again = pdt_tables_digest(url);
    cr_assert_str_eq(digest, again);
    pdt_assert_patterns_match(url, pdt_data("sample-600.patterns.ndjson"));
    free(again);
    free(digest);
    free(out);
    free(file);
    free(url);
}

Test(ingest, shuffled_input_gives_same_statistics)
{
    char *url = pdt_new_migrated_database();
    char path[] = "/tmp/pd-shuffled-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    char cmd[4096];
    /* A fixed random source keeps the shuffle, and so the test, reproducible. */
    snprintf(cmd, sizeof(cmd), "shuf --random-source=<(yes patternd) '%s' > '%s'",
             pdt_data("sample-600.ndjson"), path);
    char bash[4200];
    snprintf(bash, sizeof(bash), "bash -c \"%s\"", cmd);
    cr_assert_eq(system(bash), 0);
    char args[4096];
    snprintf(args, sizeof(args), "--workers 3 --batch 13 '%s'", path);
    int status;
    char *out = pdt_ingest(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "processed"), 600);
    pdt_assert_patterns_match(url, pdt_data("sample-600.patterns.ndjson"));
    unlink(path);
    free(out);
    free(url);
}

Test(ingest, two_processes_on_the_same_file_count_once)
{
    char *url = pdt_new_migrated_database();
    char cmd[8192];
    snprintf(cmd, sizeof(cmd),
             "for i in 1 2; do '%s' ingest --quiet --db '%s' --workers 4 --batch 20 '%s' | "
             "tail -n 1 & done; wait",
             pdt_binary(), url, pdt_data("sample-600.ndjson"));
    int status;
    char *out = pdt_run(cmd, &status);
    cr_assert_eq(pdt_count_lines(out), 2, "%s", out);
    char *second = strchr(out, '\n') + 1;
    long processed = pdt_summary_value(second, "processed");
    long duplicates = pdt_summary_value(second, "duplicates");
    second[-1] = '\0';
    processed += pdt_summary_value(out, "processed");
    duplicates += pdt_summary_value(out, "duplicates");
    cr_assert_eq(processed, 600, "processed %ld", processed);
    cr_assert_eq(duplicates, 600, "duplicates %ld", duplicates);
    pdt_assert_patterns_match(url, pdt_data("sample-600.patterns.ndjson"));
    free(out);
    free(url);
}

Test(ingest, unreachable_database_fails_with_message)
{
    int status;
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "'%s' ingest --quiet --db 'postgresql://postgres@127.0.0.1:1/x' '%s' 2>&1",
             pdt_binary(), pdt_data("sample-600.ndjson"));
    char *out = pdt_run(cmd, &status);
    cr_assert_eq(status, 1, "%s", out);
    cr_assert_not_null(strstr(out, "cannot connect to PostgreSQL"), "%s", out);
    free(out);
}

Test(ingest, unmigrated_database_is_refused)
{
    char *url = pdt_new_database();
    int status;
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' ingest --quiet --db '%s' '%s' 2>&1", pdt_binary(), url,
             pdt_data("sample-600.ndjson"));
    char *out = pdt_run(cmd, &status);
    cr_assert_eq(status, 1, "%s", out);
    cr_assert_not_null(strstr(out, "patternd migrate"), "%s", out);
    free(out);
    free(url);
}

/* Appends one line to a growing buffer. */
static void add_line(char **buf, size_t *len, const char *line, size_t n)
{
    *buf = realloc(*buf, *len + n + 2);
    memcpy(*buf + *len, line, n);
    *len += n;
    (*buf)[(*len)++] = '\n';
    (*buf)[*len] = '\0';
}

Test(ingest, bad_input_is_rejected_line_by_line_and_good_records_committed)
{
    char *url = pdt_new_migrated_database();
    char *good = pdt_read_file(pdt_data("sample-600.ndjson"), NULL);
    char *buf = NULL;
    size_t len = 0;

    static const char nul_line[] = "{\"workflow_id\": \"nul\", \"nl_input\": \"a\0b\"}";
    static const char *const bad[] = {
        "{\"workflow_id\": \"broken\", ",                                   /* invalid JSON */
        "[\"not\", \"an\", \"object\"]",                                    /* not an object */
        "{\"nl_input\": \"no id\"}",                                        /* no usable id */
        "{\"workflow_id\": \"w\", \"duration_seconds\": \"12\"}",           /* wrong type */
        "{\"workflow_id\": \"w\", \"total_tokens\": -5}",                   /* negative */
        "{\"workflow_id\": \"w\", \"total_tokens\": 99999999999999999999}", /* beyond 64 bits */
        "{\"workflow_id\": \"w\", \"start_time\": \"last tuesday\"}",       /* bad time */
        "{\"workflow_id\": \"w\", \"tenant_id\": \"bad tenant!\"}",         /* bad tenant */
        "{\"workflow_id\": \"w\", \"nl_input\": \"caf\xc3\x28\"}",          /* invalid UTF-8 */
        "{\"workflow_id\": \"w\"} trailing",                                /* garbage */
    };
    size_t n_bad = sizeof(bad) / sizeof(bad[0]);
    long expected_rejects[32];
    size_t n_expected = 0;
    long line_no = 0;

    /* Good records with a bad one after every 40th, then the long and NUL lines. */
    size_t good_count = 0, b = 0;
    for (char *line = strtok(good, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        add_line(&buf, &len, line, strlen(line));
        line_no++;
        good_count++;
        if (good_count % 40 == 0 && b < n_bad) {
            add_line(&buf, &len, bad[b], strlen(bad[b]));
            expected_rejects[n_expected++] = ++line_no;
            b++;
        }
    }
    cr_assert_eq(b, n_bad);
    add_line(&buf, &len, nul_line, sizeof(nul_line) - 1);
    expected_rejects[n_expected++] = ++line_no;
    {
        /* 5 MiB of one record: over the 1 MiB limit. */
        size_t big = 5 * 1024 * 1024;
        char *huge = malloc(big + 64);
        int h = snprintf(huge, 64, "{\"workflow_id\": \"huge\", \"nl_input\": \"");
        memset(huge + h, 'x', big);
        memcpy(huge + h + big, "\"}", 2);
        add_line(&buf, &len, huge, (size_t)h + big + 2);
        expected_rejects[n_expected++] = ++line_no;
        free(huge);
    }
    add_line(&buf, &len, "", 0); /* a blank line is skipped, not rejected */
    line_no++;

    char input[] = "/tmp/pd-bad-XXXXXX";
    int fd = mkstemp(input);
    close(fd);
    pdt_write_file(input, buf, len);
    char rejects[] = "/tmp/pd-rejects-XXXXXX";
    fd = mkstemp(rejects);
    close(fd);

    char args[4096];
    snprintf(args, sizeof(args), "--workers 2 --batch 64 --rejects '%s' '%s'", rejects, input);
    int status;
    char *out = pdt_ingest(url, args, &status);
    cr_assert_eq(status, 0, "rejections are not failures: %s", out);
    cr_assert_eq(pdt_summary_value(out, "total_workflows"), (long)(good_count + n_expected));
    cr_assert_eq(pdt_summary_value(out, "processed"), (long)good_count);
    cr_assert_eq(pdt_summary_value(out, "rejected"), (long)n_expected);
    cr_assert_eq(pdt_summary_value(out, "errors"), 0);
    char *committed = pdt_sql_value(url, "SELECT count(*) FROM workflows");
    char expected_count[32];
    snprintf(expected_count, sizeof(expected_count), "%zu", good_count);
    cr_assert_str_eq(committed, expected_count);

    /* Every bad line is in the rejects file, with its line number and a reason. */
    char *rej = pdt_read_file(rejects, NULL);
    cr_assert_eq(pdt_count_lines(rej), n_expected, "%s", rej);
    cr_assert_not_null(strstr(rej, "\"field\": \"total_tokens\""));
    cr_assert_not_null(strstr(rej, "\"field\": \"start_time\""));
    cr_assert_not_null(strstr(rej, "exceeds the maximum"));
    size_t i = 0;
    for (char *line = strtok(rej, "\n"); line != NULL; line = strtok(NULL, "\n"), i++) {
        char needle[64];
        snprintf(needle, sizeof(needle), "\"line\": %ld,", expected_rejects[i]);
        cr_assert_not_null(strstr(line, needle), "reject %zu lacks %s: %.300s", i, needle, line);
        cr_assert_not_null(strstr(line, "\"error\": \""), "%.300s", line);
    }

    unlink(input);
    unlink(rejects);
    free(rej);
    free(committed);
    free(out);
    free(buf);
    free(good);
    free(url);
}

Test(report, ranks_candidates_by_savings)
{
    char *url = pdt_new_migrated_database();
    char args[4096];
    snprintf(args, sizeof(args), "'%s'", pdt_data("sample-600.ndjson"));
    int status;
    free(pdt_ingest(url, args, &status));
    cr_assert_eq(status, 0);

    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' report --db '%s' --top 3 --format csv", pdt_binary(), url);
    char *csv = pdt_run(cmd, &status);
    cr_assert_eq(status, 0);
    cr_assert_eq(pdt_count_lines(csv), 4, "%s", csv);
    char *top = pdt_sql_value(url, "SELECT tenant_id || ',' || pattern_signature FROM "
                                   "operation_patterns ORDER BY potential_monthly_savings DESC "
                                   "LIMIT 1");
    cr_assert_not_null(strstr(strchr(csv, '\n') + 1, top), "first row is not %s: %s", top, csv);

    snprintf(cmd, sizeof(cmd), "'%s' report --db '%s' --tenant tenant-01 --top 0 --format json",
             pdt_binary(), url);
    char *json = pdt_run(cmd, &status);
    cr_assert_eq(status, 0);
    char *n = pdt_sql_value(url, "SELECT count(*) FROM operation_patterns WHERE tenant_id = "
                                 "'tenant-01'");
    size_t rows = 0;
    for (const char *p = json; (p = strstr(p, "\"pattern_signature\"")) != NULL; p++)
        rows++;
    cr_assert_eq((long)rows, strtol(n, NULL, 10), "%s", json);
    cr_assert_null(strstr(json, "tenant-00"));
    free(n);
    free(json);
    free(top);
    free(csv);
    free(url);
}

Test(ingest, typical_input_is_the_first_workflow_of_each_pattern)
{
    char *url = pdt_new_migrated_database();
    char args[4096];
    snprintf(args, sizeof(args), "--workers 1 '%s'", pdt_data("sample-600.ndjson"));
    int status;
    free(pdt_ingest(url, args, &status));
    cr_assert_eq(status, 0);

    /* With one worker, the first record in the file with a signature creates its pattern. */
    char *expected = pdt_read_file(pdt_data("sample-600.detect.ndjson"), NULL);
    json_t *seen = json_object();
    size_t checked = 0;
    for (char *line = strtok(expected, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        json_t *d = json_loads(line, 0, NULL);
        cr_assert_not_null(d);
        const char *tenant = json_string_value(json_object_get(d, "tenant_id"));
        size_t i;
        json_t *sig;
        json_array_foreach(json_object_get(d, "patterns"), i, sig)
        {
            char key[256];
            snprintf(key, sizeof(key), "%s|%s", tenant, json_string_value(sig));
            if (json_object_get(seen, key) != NULL)
                continue;
            json_object_set_new(seen, key, json_true());
            char *chars = json_dumps(json_object_get(d, "characteristics"), JSON_COMPACT);
            char sql[4096];
            snprintf(sql, sizeof(sql),
                     "SELECT typical_input_pattern = '%s'::jsonb FROM operation_patterns"
                     " WHERE tenant_id = '%s' AND pattern_signature = '%s'",
                     chars, tenant, json_string_value(sig));
            char *same = pdt_sql_value(url, sql);
            cr_assert_not_null(same, "no pattern row for %s", key);
            cr_assert_str_eq(same, "t", "typical input of %s is not the first workflow's", key);
            free(same);
            free(chars);
            checked++;
        }
        json_decref(d);
    }
    cr_assert_eq(checked, 104);
    json_decref(seen);
    free(expected);
    free(url);
}

Test(report, tenant_report_works_under_row_level_security)
{
    char *url = pdt_new_migrated_database();
    char args[4096];
    snprintf(args, sizeof(args), "'%s'", pdt_data("sample-600.ndjson"));
    int status;
    free(pdt_ingest(url, args, &status));
    cr_assert_eq(status, 0);
    char *svc = pdt_service_url(url);

    /* Scoped to a tenant, a role under row-level security sees that tenant's patterns. */
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' report --db '%s' --tenant tenant-01 --top 0 --format csv",
             pdt_binary(), svc);
    char *csv = pdt_run(cmd, &status);
    cr_assert_eq(status, 0, "%s", csv);
    char *n = pdt_sql_value(url, "SELECT count(*) FROM operation_patterns WHERE tenant_id = "
                                 "'tenant-01'");
    cr_assert_eq((long)pdt_count_lines(csv) - 1, strtol(n, NULL, 10), "%s", csv);
    cr_assert_null(strstr(csv, "tenant-00"));

    /* Across tenants it sees nothing, and says why. */
    snprintf(cmd, sizeof(cmd), "'%s' report --db '%s'", pdt_binary(), svc);
    char *table = pdt_run(cmd, &status);
    cr_assert_eq(status, 0);
    cr_assert_not_null(strstr(table, "row-level security"), "%s", table);
    free(table);
    free(n);
    free(csv);
    free(svc);
    free(url);
}

/* --- rejects never stop ingestion -------------------------------------------------------- */

/* Writes data to a new temporary file; returns its path (malloc'd). */
static char *temp_file(const char *data)
{
    char *path = strdup("/tmp/pd-i9-XXXXXX");
    int fd = mkstemp(path);
    close(fd);
    pdt_write_file(path, data, strlen(data));
    return path;
}

/*
 * Ingests the NDJSON text input with --rejects into url; asserts exit 0 and the processed and
 * rejected counts.  Returns the rejects file's content (malloc'd).
 */
static char *ingest_text(const char *url, const char *input, long processed, long rejected)
{
    char *in = temp_file(input);
    char *rejects = temp_file("");
    char args[1024];
    snprintf(args, sizeof(args), "--rejects '%s' '%s'", rejects, in);
    int status;
    char *out = pdt_ingest(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "processed"), processed, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "rejected"), rejected, "%s", out);
    char *rej = pdt_read_file(rejects, NULL);
    cr_assert_eq((long)pdt_count_lines(rej), rejected, "%s", rej);
    unlink(in);
    unlink(rejects);
    free(out);
    free(rejects);
    free(in);
    return rej;
}

Test(ingest, reject_cut_inside_a_utf8_character_does_not_stop_the_run)
{
    char *url = pdt_new_migrated_database();
    /* A bad start_time of 63 ASCII bytes and an 'é' (a message cut at 64 bytes split it), then a
     * good record. */
    char *rej =
        ingest_text(url,
                    "{\"workflow_id\": \"bad\", \"start_time\": "
                    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9\"}\n"
                    "{\"workflow_id\": \"good\", \"nl_input\": \"run the backend tests\","
                    " \"actual_cost_total\": 0.25}\n",
                    1, 1);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM workflows WHERE workflow_id = 'good'"), 1);
    json_error_t jerr;
    json_t *o = json_loads(rej, 0, &jerr);
    cr_assert_not_null(o, "not JSON (%s): %s", jerr.text, rej);
    cr_assert_eq(json_integer_value(json_object_get(o, "line")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(o, "field")), "start_time");
    cr_assert_not_null(strstr(json_string_value(json_object_get(o, "error")), "ISO-8601"), "%s",
                       rej);
    cr_assert_not_null(strstr(json_string_value(json_object_get(o, "input")), "\xc3\xa9"), "%s",
                       rej);
    json_decref(o);
    free(rej);
    free(url);
}

Test(ingest, rejects_on_standard_error_have_control_characters_escaped)
{
    char *url = pdt_new_migrated_database();
    char *input = temp_file("{\"workflow_id\": \"bad\", \"start_time\": "
                            "\"\\u001b]0;owned\\u0007\\u001b[2J\\nforged: line\"}\n"
                            "{\"workflow_id\": \"good\"}\n");
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' ingest --quiet --db '%s' '%s' 2>&1 >/dev/null", pdt_binary(),
             url, input);
    int status;
    char *err = pdt_run(cmd, &status);
    cr_assert_eq(status, 0, "%s", err);
    cr_assert_eq(pdt_count_lines(err), 1, "one line per reject: %s", err);
    cr_assert_not_null(strstr(err, "\\u001b]0;owned\\u0007\\u001b[2J\\nforged: line"), "%s", err);
    for (const char *p = err; *p; p++)
        cr_assert((unsigned char)*p >= 0x20 || *p == '\n', "control byte 0x%02x in: %s", *p, err);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM workflows"), 1);
    unlink(input);
    free(err);
    free(input);
    free(url);
}

Test(ingest, numbers_past_their_bounds_are_rejected_and_stored_sums_stay_readable)
{
    char *url = pdt_new_migrated_database();
    /* Two costs of 1e308 used to be accepted and make every later read overflow. */
    char *rej = ingest_text(url,
                            "{\"workflow_id\": \"a\", \"nl_input\": \"run tests\","
                            " \"actual_cost_total\": 1e308}\n"
                            "{\"workflow_id\": \"b\", \"nl_input\": \"run tests\","
                            " \"actual_cost_total\": 1e308}\n"
                            "{\"workflow_id\": \"c\", \"nl_input\": \"run tests\","
                            " \"total_tokens\": 1000000000000, \"actual_cost_total\": 1e9}\n"
                            "{\"workflow_id\": \"d\", \"nl_input\": \"run tests\","
                            " \"total_tokens\": 1000000000000, \"actual_cost_total\": 1e9,"
                            " \"retry_count\": 1000000000, \"error_count\": 1000000000}\n",
                            2, 2);
    cr_assert_not_null(strstr(rej, "\"field\": \"actual_cost_total\""), "%s", rej);
    cr_assert_not_null(strstr(rej, "out of range: at most 1000000000"), "%s", rej);

    /* The largest accepted values give statistics that read back exactly. */
    char *row = pdt_sql_value(url, "SELECT avg_tokens_with_llm || ' ' || avg_cost_with_llm::float8"
                                   " || ' ' || potential_monthly_savings::float8"
                                   " FROM operation_patterns");
    cr_assert_str_eq(row, "1000000000000 1000000000 1900000000");
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' report --db '%s' --format csv", pdt_binary(), url);
    int status;
    char *csv = pdt_run(cmd, &status);
    cr_assert_eq(status, 0, "%s", csv);
    cr_assert_not_null(strstr(csv, ",1000000000000,1000000000,50000000000,50000000,"), "%s", csv);
    free(csv);
    free(row);
    free(rej);
    free(url);
}

/* --- exact sums, whichever side adds them up ---------------------------------------------- */

/* One record of tenant "sums" whose only varying fields are its id and cost. */
static void sums_record(char *buf, size_t size, const char *id, const char *cost)
{
    snprintf(buf, size,
             "{\"workflow_id\": \"%s\", \"tenant_id\": \"sums\", \"nl_input\": \"run the backend"
             " tests\", \"workflow_template\": \"test\", \"duration_seconds\": 2.5,"
             " \"retry_count\": 1, \"error_count\": 0, \"total_tokens\": 1000,"
             " \"actual_cost_total\": %s, \"start_time\": \"2026-10-01T00:00:00Z\"}\n",
             id, cost);
}

/*
 * A batch of new workflows is summed per signature in C (src/db/sums.c); a
 * batch with a cost of more than 18 decimal places, or with duplicates, by
 * the server.  Either way sum_cost is the exact decimal sum, with the
 * scale PostgreSQL's numeric addition gives it.
 */
Test(ingest, pattern_sums_are_exact_whichever_side_adds_them_up)
{
    char *url = pdt_new_migrated_database();
    const char *costs[] = {"0.1", "0.2", "999999999", "1.5e-07"};
    char line[1024], first[4096] = "";
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof(id), "s%d", i);
        sums_record(line, sizeof(line), id, costs[i]);
        strcat(first, line);
    }
    free(ingest_text(url, first, 4, 0));
    const char *sql = "SELECT string_agg(DISTINCT sum_cost::text || ' ' || occurrence_count"
                      " || ' ' || sum_tokens, ',') FROM operation_patterns"
                      " WHERE tenant_id = 'sums'";
    char *sums = pdt_sql_value(url, sql);
    cr_assert_str_eq(sums, "999999999.30000015 4 4000");
    free(sums);

    /* 1e-20 has 20 decimal places: the server sums this batch. */
    sums_record(line, sizeof(line), "s4", "1e-20");
    free(ingest_text(url, line, 1, 0));
    sums = pdt_sql_value(url, sql);
    cr_assert_str_eq(sums, "999999999.30000015000000000001 5 5000");
    free(sums);

    /* The first batch again, and one new workflow with it: duplicates change nothing. */
    sums_record(line, sizeof(line), "s5", "0.05");
    strcat(first, line);
    free(ingest_text(url, first, 1, 0));
    sums = pdt_sql_value(url, sql);
    cr_assert_str_eq(sums, "999999999.35000015000000000001 6 6000");
    free(sums);
    free(url);
}
