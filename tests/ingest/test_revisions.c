/*
 * Revisions (docs/spec.md §3.4), end to end through `patternd ingest`: the
 * latest final version of every workflow decides the statistics, whatever
 * the arrival order, batching, workers or processes.  The vectors:
 * tests/data/revisions-600.ndjson holds every version of sample-600's
 * workflows, shuffled (pending and running ones with partial numbers, final
 * ones, workflows that never finish, verbatim re-sends, records without
 * updated_at), and revisions-600.patterns.ndjson the reference's statistics
 * over the latest final versions.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

#define VECTORS "revisions-600.ndjson"
#define EXPECTED "revisions-600.patterns.ndjson"

/* The summary's keys, which must add up to total_workflows (docs/spec.md §3.4). */
static void assert_identity(const char *summary)
{
    static const char *const parts[] = {"processed", "duplicates", "revised", "stale",
                                        "conflicts", "rejected",   "errors"};
    long sum = 0;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        long v = pdt_summary_value(summary, parts[i]);
        cr_assert_geq(v, 0, "no %s in %s", parts[i], summary);
        sum += v;
    }
    cr_assert_eq(sum, pdt_summary_value(summary, "total_workflows"), "%s", summary);
}

/* Ingests path with args; asserts it exited 0 with the identity; returns the summary. */
static char *ingest(const char *url, const char *args, const char *path)
{
    char all[4096];
    snprintf(all, sizeof(all), "%s '%s'", args, path);
    int status;
    char *out = pdt_ingest(url, all, &status);
    cr_assert_eq(status, 0, "%s", out);
    assert_identity(out);
    cr_assert_eq(pdt_summary_value(out, "errors"), 0, "%s", out);
    return out;
}

Test(revisions, vectors_in_one_process)
{
    char *url = pdt_new_migrated_database();
    char *out = ingest(url, "--workers 1", pdt_data(VECTORS));
    cr_assert_eq(pdt_summary_value(out, "total_workflows"), 1478, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "processed"), 600, "%s", out);
    /* Earlier versions met later ones in their batch, or as recorded: none of them counts. */
    cr_assert_gt(pdt_summary_value(out, "revised") + pdt_summary_value(out, "stale"), 0, "%s", out);
    pdt_assert_patterns_match(url, pdt_data(EXPECTED));
    free(out);
    free(url);
}

Test(revisions, vectors_with_eight_workers_and_batches_of_fifty)
{
    char *url = pdt_new_migrated_database();
    free(ingest(url, "--workers 8 --batch 50", pdt_data(VECTORS)));
    pdt_assert_patterns_match(url, pdt_data(EXPECTED));
    free(url);
}

Test(revisions, vectors_reversed)
{
    char *url = pdt_new_migrated_database();
    char path[64], cmd[4096];
    snprintf(path, sizeof(path), "/tmp/pdt-rev-%d.ndjson", (int)getpid());
    snprintf(cmd, sizeof(cmd), "tac '%s' > '%s'", pdt_data(VECTORS), path);
    cr_assert_eq(system(cmd), 0);
    free(ingest(url, "--workers 4 --batch 100", path));
    pdt_assert_patterns_match(url, pdt_data(EXPECTED));
    unlink(path);
    free(url);
}

Test(revisions, vectors_twice_change_nothing_the_second_time)
{
    char *url = pdt_new_migrated_database();
    free(ingest(url, "--workers 4 --batch 100", pdt_data(VECTORS)));
    char *before = pdt_tables_digest(url);
    char *out = ingest(url, "--workers 4 --batch 100", pdt_data(VECTORS));
    cr_assert_eq(pdt_summary_value(out, "processed"), 0, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "revised"), 0, "%s", out);
    char *after = pdt_tables_digest(url);
    cr_assert_str_eq(after, before);
    pdt_assert_patterns_match(url, pdt_data(EXPECTED));
    free(after);
    free(before);
    free(out);
    free(url);
}

Test(revisions, vectors_in_three_concurrent_processes_on_thirds)
{
    char *url = pdt_new_migrated_database();
    char prefix[64], cmd[8192];
    snprintf(prefix, sizeof(prefix), "/tmp/pdt-third-%d-", (int)getpid());
    snprintf(cmd, sizeof(cmd),
             "split -n l/3 -d '%s' '%s' && for f in '%s'0?; do '%s' ingest --quiet --db '%s' "
             "--workers 2 --batch 40 \"$f\" | tail -n 1 & done; wait; rm -f '%s'0?",
             pdt_data(VECTORS), prefix, prefix, pdt_binary(), url, prefix);
    int status;
    char *out = pdt_run(cmd, &status);
    cr_assert_eq(pdt_count_lines(out), 3, "%s", out);
    long processed = 0;
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        assert_identity(line);
        cr_assert_eq(pdt_summary_value(line, "errors"), 0, "%s", line);
        processed += pdt_summary_value(line, "processed");
    }
    cr_assert_eq(processed, 600);
    pdt_assert_patterns_match(url, pdt_data(EXPECTED));
    free(out);
    free(url);
}

/* Writes lines (NDJSON) to a file and ingests it; returns the summary. */
static char *ingest_text(const char *url, const char *lines, const char *rejects)
{
    char path[64], args[256];
    snprintf(path, sizeof(path), "/tmp/pdt-revtext-%d.ndjson", (int)getpid());
    pdt_write_file(path, lines, strlen(lines));
    snprintf(args, sizeof(args), "--rejects '%s'", rejects);
    char *out = ingest(url, args, path);
    unlink(path);
    return out;
}

#define WF(version, status, tokens, cost, error)                                                   \
    "{\"workflow_id\": \"upd-1\", \"tenant_id\": \"acme\", \"nl_input\": \"run the backend "       \
    "tests\", \"updated_at\": \"" version "\", \"status\": \"" status                              \
    "\", \"total_tokens\": " tokens ", \"actual_cost_total\": " cost ", \"error_message\": " error \
    ", "                                                                                           \
    "\"start_time\": \"2026-10-01T10:00:00Z\"}\n"

static char *pattern(const char *url, const char *sig)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT occurrence_count || ' ' || sum_tokens || ' ' || trim_scale(sum_cost) FROM "
             "operation_patterns WHERE tenant_id = 'acme' AND pattern_signature = '%s'",
             sig);
    return pdt_sql_value(url, sql);
}

Test(revisions, running_counts_nowhere_until_its_final_version_which_counts_once)
{
    char *url = pdt_new_migrated_database();
    const char *rejects = "/tmp/pdt-rev-rejects";
    char *out =
        ingest_text(url, WF("2026-10-01 10:00:05", "running", "100", "0.09", "null"), rejects);
    cr_assert_eq(pdt_summary_value(out, "processed"), 1, "%s", out);
    free(out);
    /* Recorded, counted nowhere: no pattern row yet. */
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM workflows"), 1);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM operation_patterns"), 0);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM pattern_occurrences"), 0);

    out =
        ingest_text(url, WF("2026-10-01T10:07:00Z", "completed", "50000", "2.37", "null"), rejects);
    cr_assert_eq(pdt_summary_value(out, "revised"), 1, "%s", out);
    free(out);
    char *p = pattern(url, "test:generic:backend");
    cr_assert_str_eq(p, "1 50000 2.37");
    free(p);

    /* The running version again, late: stale, nothing changes. */
    out = ingest_text(url, WF("2026-10-01 10:00:05", "running", "100", "0.09", "null"), rejects);
    cr_assert_eq(pdt_summary_value(out, "stale"), 1, "%s", out);
    free(out);
    p = pattern(url, "test:generic:backend");
    cr_assert_str_eq(p, "1 50000 2.37");
    free(p);

    /* A later version with an error message: it moves to the error's pattern too. */
    out = ingest_text(
        url, WF("2026-10-01T10:09:00Z", "failed", "60000", "3", "\"pytest: 2 tests failed\""),
        rejects);
    cr_assert_eq(pdt_summary_value(out, "revised"), 1, "%s", out);
    free(out);
    p = pattern(url, "test:generic:backend");
    cr_assert_str_eq(p, "1 60000 3");
    free(p);
    p = pattern(url, "test:pytest:backend");
    cr_assert_str_eq(p, "1 60000 3");
    free(p);

    /* And back to running: it stops counting; the patterns stay, with no occurrence. */
    out = ingest_text(url, WF("2026-10-01T10:10:00Z", "running", "61000", "3.1", "null"), rejects);
    cr_assert_eq(pdt_summary_value(out, "revised"), 1, "%s", out);
    free(out);
    p = pattern(url, "test:generic:backend");
    cr_assert_str_eq(p, "0 0 0");
    free(p);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM operation_patterns WHERE "
                                   "occurrence_count = 0 AND avg_cost_with_llm = 0 AND "
                                   "confidence_score = 0 AND potential_monthly_savings = 0"),
                 2);
    unlink(rejects);
    free(url);
}

Test(revisions, a_same_version_change_is_a_conflict_reported_with_why_and_changes_nothing)
{
    char *url = pdt_new_migrated_database();
    const char *rejects = "/tmp/pdt-rev-conflict";
    free(ingest_text(url, WF("2026-10-01T10:07:00Z", "completed", "50000", "2.37", "null"),
                     rejects));
    char *before = pdt_tables_digest(url);
    /* The same version verbatim: a duplicate.  Other content at that version: a conflict. */
    char *out = ingest_text(url,
                            WF("2026-10-01T10:07:00Z", "completed", "50000", "2.37", "null")
                                WF("2026-10-01T10:07:00Z", "completed", "51000", "2.37", "null"),
                            rejects);
    cr_assert_eq(pdt_summary_value(out, "duplicates"), 1, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "conflicts"), 1, "%s", out);
    char *after = pdt_tables_digest(url);
    cr_assert_str_eq(after, before);
    char *why = pdt_read_file(rejects, NULL);
    cr_assert_not_null(strstr(why, "\"line\": 2"), "%s", why);
    cr_assert_not_null(strstr(why, "\"field\": \"updated_at\""), "%s", why);
    cr_assert_not_null(strstr(why, "later updated_at"), "%s", why);
    free(why);
    free(after);
    free(before);
    free(out);
    unlink(rejects);
    free(url);
}

Test(revisions, updated_at_reads_sqlite_text_as_utc_and_rejects_what_is_no_time)
{
    char *url = pdt_new_migrated_database();
    const char *rejects = "/tmp/pdt-rev-bad";
    /* 10:07:00Z and SQLite's "2026-10-01 10:07:00" are one version: a duplicate. */
    char *out = ingest_text(url,
                            WF("2026-10-01T10:07:00Z", "completed", "50000", "2.37", "null")
                                WF("2026-10-01 10:07:00", "completed", "50000", "2.37", "null")
                                    WF("yesterday", "completed", "50000", "2.37", "null"),
                            rejects);
    cr_assert_eq(pdt_summary_value(out, "processed"), 1, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "duplicates"), 1, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "rejected"), 1, "%s", out);
    char *why = pdt_read_file(rejects, NULL);
    cr_assert_not_null(strstr(why, "\"field\": \"updated_at\""), "%s", why);
    free(why);
    free(out);
    unlink(rejects);
    free(url);
}
