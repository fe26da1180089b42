/*
 * Stage: db (src/db/migrate.c and migrations/).  `patternd migrate` against the throwaway
 * PostgreSQL: a fresh database, a re-run, two migrators at once, and a migration edited after it
 * was applied.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static int migrate(const char *url, const char *extra, char **out)
{
    char cmd[4096];
    int status;
    snprintf(cmd, sizeof(cmd), "'%s' migrate --db '%s' %s 2>&1", pdt_binary(), url, extra);
    char *o = pdt_run(cmd, &status);
    if (out)
        *out = o;
    else
        free(o);
    return status;
}

static char *schema_fingerprint(const char *url)
{
    return pdt_sql_value(url, "SELECT string_agg(table_name || '.' || column_name || ':' || "
                              "data_type, ',' ORDER BY table_name, column_name) "
                              "FROM information_schema.columns WHERE table_schema = 'public'");
}

Test(migrate, fresh_database_gets_every_table)
{
    char *url = pdt_new_database();
    char *out;
    cr_assert_eq(migrate(url, "", &out), 0, "%s", out);
    char *tables = pdt_sql_value(url, "SELECT string_agg(tablename, ',' ORDER BY tablename) "
                                      "FROM pg_tables WHERE schemaname = 'public'");
    cr_assert_str_eq(tables, "api_keys,operation_patterns,pattern_reviews,pattern_weeks,"
                             "review_thresholds,schema_migrations,workflows");
    /* The occurrences are a view over the ledger (migration 0005). */
    char *views = pdt_sql_value(url, "SELECT count(*) FROM pg_views WHERE schemaname = 'public'"
                                     " AND viewname = 'pattern_occurrences'");
    cr_assert_str_eq(views, "1");
    free(views);
    char *keys = pdt_sql_value(url, "SELECT count(*) FROM pg_index i JOIN pg_class c ON "
                                    "c.oid = i.indrelid JOIN pg_attribute a ON a.attrelid = c.oid "
                                    "AND a.attnum = i.indkey[0] WHERE (i.indisprimary OR "
                                    "i.indisunique) AND c.relname <> 'schema_migrations' "
                                    "AND a.attname <> 'tenant_id' AND c.relnamespace = "
                                    "'public'::regnamespace");
    cr_assert_str_eq(keys, "0", "every primary/unique key must start with tenant_id");
    free(keys);
    free(tables);
    free(out);
    free(url);
}

Test(migrate, second_run_changes_nothing)
{
    char *url = pdt_new_database();
    cr_assert_eq(migrate(url, "", NULL), 0);
    char *before = schema_fingerprint(url);
    char *count_before = pdt_sql_value(url, "SELECT count(*) FROM schema_migrations");
    char *out;
    cr_assert_eq(migrate(url, "", &out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "0 applied now"), "%s", out);
    char *after = schema_fingerprint(url);
    char *count_after = pdt_sql_value(url, "SELECT count(*) FROM schema_migrations");
    cr_assert_str_eq(before, after);
    cr_assert_str_eq(count_before, count_after);
    char *status_out;
    cr_assert_eq(migrate(url, "--status", &status_out), 0, "%s", status_out);
    cr_assert_not_null(strstr(status_out, "applied  0001_schema.sql"), "%s", status_out);
    free(status_out);
    free(out);
    free(before);
    free(after);
    free(count_before);
    free(count_after);
    free(url);
}

Test(migrate, status_lists_pending_on_fresh_database)
{
    char *url = pdt_new_database();
    char *out;
    cr_assert_eq(migrate(url, "--status", &out), 3, "%s", out);
    cr_assert_not_null(strstr(out, "pending  0001_schema.sql"), "%s", out);
    free(out);
    free(url);
}

Test(migrate, concurrent_migrators_both_succeed_with_one_schema)
{
    char *url = pdt_new_database();
    char cmd[8192];
    /* Four migrators start together; each prints its exit status. */
    snprintf(cmd, sizeof(cmd),
             "for i in 1 2 3 4; do ('%s' migrate --db '%s' >/dev/null 2>&1; echo \"rc=$?\") & "
             "done; wait",
             pdt_binary(), url);
    int status;
    char *out = pdt_run(cmd, &status);
    cr_assert_str_eq(out, "rc=0\nrc=0\nrc=0\nrc=0\n", "%s", out);
    char *n = pdt_sql_value(url, "SELECT count(*) FROM schema_migrations");
    char expected[16];
    size_t files = 0;
    char *listing = pdt_run("ls " PD_SOURCE_DIR "/migrations/*.sql", NULL);
    files = pdt_count_lines(listing);
    snprintf(expected, sizeof(expected), "%zu", files);
    cr_assert_str_eq(n, expected);
    char *tables = pdt_sql_value(url, "SELECT count(*) FROM pg_tables WHERE schemaname='public'");
    cr_assert_str_eq(tables, "7");
    free(tables);
    free(listing);
    free(n);
    free(out);
    free(url);
}

/*
 * Copies the migration files of the source tree matching pattern (e.g.
 * "*.sql") into a new folder; dir receives its path (a mkdtemp template of
 * at least 32 bytes) and extra the --dir argument naming it.
 */
static void copy_migrations(const char *pattern, char *dir, char *extra, size_t extra_size)
{
    strcpy(dir, "/tmp/pd-migrations-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "cp " PD_SOURCE_DIR "/migrations/%s %s/", pattern, dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(extra, extra_size, "--dir %s", dir);
}

/*
 * The migrations' comments were reworded once: a database that recorded the
 * earlier text of such a file is up to date, and only that earlier text is
 * accepted besides today's.
 */
Test(migrate, earlier_text_differing_in_comments_is_accepted)
{
    char *url = pdt_new_database();
    cr_assert_eq(migrate(url, "", NULL), 0);
    pdt_sql_exec(url, "UPDATE schema_migrations SET checksum = "
                      "'cabedfc5240f33a283f2a7505639c123c9e0f747de815784137a70a9576bd5fc'"
                      " WHERE version = '0002_tenant_isolation.sql'");
    char *out;
    cr_assert_eq(migrate(url, "", &out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "0 applied now"), "%s", out);
    free(out);
    cr_assert_eq(migrate(url, "--status", &out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "applied  0002_tenant_isolation.sql"), "%s", out);
    free(out);

    /* Another file's earlier checksum is not this file's. */
    pdt_sql_exec(url, "UPDATE schema_migrations SET checksum = "
                      "'2738abbf7ad2d61fe05b41f8d6712a4886451a3dd8a5a96ed2e5400ab6560d55'"
                      " WHERE version = '0002_tenant_isolation.sql'");
    cr_assert_neq(migrate(url, "", &out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "0002_tenant_isolation.sql was changed after it was applied"),
                       "%s", out);
    free(out);
    free(url);
}

/*
 * A database migrated by an earlier build, whose last migration was 0008,
 * takes the migrations after it: the files it applied are unchanged.
 */
Test(migrate, a_database_of_an_earlier_build_takes_the_later_migrations)
{
    char *url = pdt_new_database();
    char dir[32], cmd[4096], extra[256];
    copy_migrations("000[1-8]_*.sql", dir, extra, sizeof(extra));
    char *out;
    cr_assert_eq(migrate(url, extra, &out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "8 applied now"), "%s", out);
    free(out);
    cr_assert_eq(migrate(url, "", &out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "applied 0011_citus_delegation.sql"), "%s", out);
    free(out);
    char *fn = pdt_sql_value(url, "SELECT count(*) FROM pg_proc WHERE proname = "
                                  "'patternd_move_candidates' AND prosrc LIKE '%unnest(m_ids%'");
    cr_assert_str_eq(fn, "1", "0011 replaced patternd_move_candidates");
    free(fn);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    free(url);
}

Test(migrate, edited_migration_is_refused)
{
    char *url = pdt_new_database();
    char dir[32], cmd[4096], extra[256];
    copy_migrations("*.sql", dir, extra, sizeof(extra));
    cr_assert_eq(migrate(url, extra, NULL), 0);

    snprintf(cmd, sizeof(cmd), "echo '-- edited' >> %s/0001_schema.sql", dir);
    cr_assert_eq(system(cmd), 0);
    char *out;
    int status = migrate(url, extra, &out);
    cr_assert_neq(status, 0, "an edited migration must be refused");
    cr_assert_not_null(strstr(out, "0001_schema.sql was changed after it was applied"), "%s", out);

    /* A new file next to the edited one is not applied either. */
    snprintf(cmd, sizeof(cmd),
             "echo 'CREATE TABLE t_new (tenant_id text PRIMARY KEY);' > %s/9999_new.sql", dir);
    cr_assert_eq(system(cmd), 0);
    free(out);
    cr_assert_neq(migrate(url, extra, &out), 0);
    char *exists = pdt_sql_value(url, "SELECT to_regclass('t_new') IS NOT NULL");
    cr_assert_str_eq(exists, "f");
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    system(cmd);
    free(exists);
    free(out);
    free(url);
}

/*
 * A database migrated before 0005 keeps its occurrences: each workflow's
 * signatures (in the order of the old occurrence ids) and characteristics
 * move into its ledger row, and the pattern_occurrences view shows the same
 * (tenant_id, pattern_id, workflow_id, similarity_score,
 * matched_characteristics) rows as the old table held.
 */
Test(migrate, upgrade_keeps_every_occurrence)
{
    char *url = pdt_new_database();
    char dir[32], cmd[4096], extra[256];
    copy_migrations("000[1-4]_*.sql", dir, extra, sizeof(extra));
    char *out;
    cr_assert_eq(migrate(url, extra, &out), 0, "%s", out);
    free(out);

    /* The old shape, as the tables' owner (a superuser here, so no row policy applies). */
    pdt_sql_exec(url,
                 "INSERT INTO workflows (tenant_id, workflow_id, batch_token) VALUES"
                 " ('t1', 'w1', 7), ('t1', 'w2', 7), ('t1', 'w3', 7), ('t2', 'w1', 8);"
                 "INSERT INTO operation_patterns (id, tenant_id, pattern_signature, pattern_type,"
                 " occurrence_count, sum_tokens, sum_cost, duration_n, sum_duration_ms,"
                 " sum_duration_ms_sq, error_n, sum_retry, typical_input_pattern, created_batch)"
                 " VALUES (11, 't1', 'test:a:all', 'test', 2, 10, 1, 0, 0, 0, 0, 0, '{}', 7),"
                 " (12, 't1', 'build:b:all', 'build', 1, 10, 1, 0, 0, 0, 0, 0, '{}', 7),"
                 " (13, 't2', 'test:a:all', 'test', 1, 10, 1, 0, 0, 0, 0, 0, '{}', 8);"
                 "INSERT INTO pattern_occurrences (id, tenant_id, pattern_id, workflow_id,"
                 " matched_characteristics) VALUES"
                 " (1, 't1', 12, 'w1', '{\"k\": 1}'), (2, 't1', 11, 'w1', '{\"k\": 1}'),"
                 " (3, 't1', 11, 'w2', '{\"k\": 2}'), (4, 't2', 13, 'w1', '{\"k\": 3}')");
    cr_assert_eq(migrate(url, "", &out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "applied 0005_"), "%s", out);
    free(out);

    char *rows = pdt_sql_value(
        url, "SELECT string_agg(concat_ws(' ', tenant_id, pattern_id, workflow_id,"
             " similarity_score, matched_characteristics), '; ' ORDER BY tenant_id, id)"
             " FROM pattern_occurrences");
    cr_assert_str_eq(rows, "t1 12 w1 100 {\"k\": 1}; t1 11 w1 100 {\"k\": 1}; "
                           "t1 11 w2 100 {\"k\": 2}; t2 13 w1 100 {\"k\": 3}");
    char *ledger = pdt_sql_value(
        url, "SELECT string_agg(concat_ws(' ', tenant_id, workflow_id, batch_token,"
             " signatures, characteristics IS NULL), '; ' ORDER BY tenant_id, workflow_id)"
             " FROM workflows");
    cr_assert_str_eq(ledger, "t1 w1 7 {build:b:all,test:a:all} f; t1 w2 7 {test:a:all} f; "
                             "t1 w3 7 {} t; t2 w1 8 {test:a:all} f");
    free(ledger);
    free(rows);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    free(url);
}
