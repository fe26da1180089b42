/*
 * Stage: cli (src/cli/cmd_review.c, cmd_keys.c, cmd_report.c).  `patternd
 * review`: every action's --help, the moves with their exit statuses (0
 * moved, 2 bad usage or a missing reason, 3 conflict, 4 no such pattern),
 * the reviewer recorded (the OS user by default); `keys create --scope`
 * and the scopes `keys list` shows; and what `report` and `keys` tell a
 * new user: to run migrate first, whole tenant names, shortest decimals,
 * revocation within --key-cache-seconds, savings counted once per
 * signature, and --status.
 */
#include <criterion/criterion.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

/* `patternd ARGS` with standard error merged; *status its exit status. */
static char *run(const char *args, int *status)
{
    char cmd[16384];
    snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", pdt_binary(), args);
    return pdt_run(cmd, status);
}

/* `patternd <command> ... --db url`. */
static char *run_db(const char *url, const char *args, int *status)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "%s --db '%s'", args, url);
    return run(cmd, status);
}

/* A migrated database holding records of tenant t, every workflow "run the backend tests". */
static char *database_with(const char *tenant, int n, const char *cost)
{
    char *url = pdt_new_migrated_database();
    char path[64];
    snprintf(path, sizeof(path), "/tmp/pdt-cli-%d-%ld.ndjson", (int)getpid(), random());
    size_t cap = (size_t)n * 300 + 1, len = 0;
    char *body = malloc(cap);
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(body + len, cap - len,
                                "{\"tenant_id\": \"%s\", \"workflow_id\": \"w-%d\", \"nl_input\":"
                                " \"run the backend tests\", \"total_tokens\": 1000,"
                                " \"actual_cost_total\": %s}\n",
                                tenant, i, cost);
    pdt_write_file(path, body, len);
    char args[256];
    snprintf(args, sizeof(args), "'%s'", path);
    int status;
    char *out = pdt_ingest(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    free(out);
    unlink(path);
    free(body);
    return url;
}

/* How many weeks a pattern's document lists. */
static int count_of_weeks(const char *doc)
{
    int n = 0;
    for (const char *p = doc; (p = strstr(p, "\"week_start\"")) != NULL; p++)
        n++;
    return n;
}

Test(review_cli, every_action_has_help_and_bad_usage_exits_2)
{
    static const char *const actions[] = {"list",      "show",      "approve", "reject",
                                          "implement", "deprecate", "reopen",  "thresholds"};
    int status;
    char *out = run("review --help", &status);
    cr_assert_eq(status, 0, "%s", out);
    for (int i = 0; i < 8; i++)
        cr_assert_not_null(strstr(out, actions[i]), "%s", out);
    free(out);
    for (int i = 0; i < 8; i++) {
        char args[64];
        snprintf(args, sizeof(args), "review %s --help", actions[i]);
        out = run(args, &status);
        cr_assert_eq(status, 0, "%s: %s", args, out);
        char want[64];
        snprintf(want, sizeof(want), "patternd review %s", actions[i]);
        cr_assert_not_null(strstr(out, want), "%s", out);
        free(out);
    }
    const char *bad[] = {"review",
                         "review ship 1",
                         "review approve --tenant t 1",
                         "review approve --tenant t --expected candidate x",
                         "review reject --tenant t --expected candidate 1",
                         "review show 1",
                         "review list --status done"};
    for (int i = 0; i < 7; i++) {
        out = run(bad[i], &status);
        cr_assert_eq(status, 2, "%s: %s", bad[i], out);
        cr_assert_not_null(strstr(out, "patternd"), "%s", out);
        free(out);
    }
}

Test(review_cli, moves_exit_statuses_and_the_reviewer)
{
    char *url = database_with("acme", 6, "0.5");
    long id = pdt_sql_long(url, "SELECT min(id) FROM operation_patterns");
    int status;
    char args[512];
    char *out = run_db(url, "review list --tenant acme", &status);
    cr_assert_eq(status, 0, "%s", out);
    char idtext[32];
    snprintf(idtext, sizeof(idtext), "%ld", id);
    cr_assert_not_null(strstr(out, idtext), "%s", out);
    cr_assert_not_null(strstr(out, "candidate"), "%s", out); /* 6 workflows, $0.50 each */
    free(out);

    /* Reject without --reason: 2, nothing changed. */
    snprintf(args, sizeof(args), "review reject --tenant acme --expected candidate %ld", id);
    out = run_db(url, args, &status);
    cr_assert_eq(status, 2, "%s", out);
    free(out);
    /* A stale --expected: 3, nothing changed. */
    snprintf(args, sizeof(args), "review approve --tenant acme --expected detected %ld", id);
    out = run_db(url, args, &status);
    cr_assert_eq(status, 3, "%s", out);
    cr_assert_not_null(strstr(out, "is candidate"), "%s", out);
    free(out);
    /* Another tenant's, or no such id: 4. */
    snprintf(args, sizeof(args), "review approve --tenant globex --expected candidate %ld", id);
    out = run_db(url, args, &status);
    cr_assert_eq(status, 4, "%s", out);
    free(out);
    cr_assert_eq(
        pdt_sql_long(url, "SELECT count(*) FROM pattern_reviews WHERE actor <> 'patternd'"), 0);

    /* Approve (the OS user as reviewer), implement, deprecate, reopen. */
    snprintf(args, sizeof(args), "review approve --tenant acme --expected candidate %ld", id);
    out = run_db(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_not_null(strstr(out, "candidate -> approved"), "%s", out);
    free(out);
    snprintf(args, sizeof(args),
             "review implement --tenant acme --expected approved --reviewer Ana"
             " --notes 'tools/run-tests' %ld",
             id);
    out = run_db(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    free(out);
    /* The graph refuses approve from implemented: 3. */
    snprintf(args, sizeof(args), "review approve --tenant acme --expected implemented %ld", id);
    out = run_db(url, args, &status);
    cr_assert_eq(status, 3, "%s", out);
    free(out);
    snprintf(args, sizeof(args),
             "review deprecate --tenant acme --expected implemented --reason 'replaced' %ld", id);
    out = run_db(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    free(out);
    snprintf(args, sizeof(args), "review reopen --tenant acme --expected deprecated %ld", id);
    out = run_db(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    free(out);

    const struct passwd *pw = getpwuid(geteuid());
    char want[512];
    snprintf(want, sizeof(want),
             "candidate>approved %s|approved>implemented Ana|implemented>deprecated %s|"
             "deprecated>detected %s",
             pw->pw_name, pw->pw_name, pw->pw_name);
    char *history = pdt_sql_value(url, "SELECT string_agg(from_status || '>' || to_status || ' '"
                                       " || reviewer, '|' ORDER BY id) FROM pattern_reviews"
                                       " WHERE actor <> 'patternd'");
    cr_assert_str_eq(history, want);
    free(history);
    char actor[300];
    snprintf(actor, sizeof(actor), "SELECT count(*) FROM pattern_reviews WHERE actor = 'cli:%s'",
             pw->pw_name);
    cr_assert_eq(pdt_sql_long(url, actor), 4);

    /* show: the document with its history and weekly series. */
    snprintf(args, sizeof(args), "review show --tenant acme --weeks 4 %ld", id);
    out = run_db(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_not_null(strstr(out, "\"history\": ["), "%s", out);
    cr_assert_eq(count_of_weeks(out), 4, "%s", out);
    free(out);
    free(url);
}

Test(keys_cli, create_with_scopes_and_list_shows_them)
{
    char *url = pdt_new_migrated_database();
    int status;
    char *out = run_db(url, "keys create --tenant acme --scope review", &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_not_null(strstr(out, "with scopes read,review"), "%s", out);
    free(out);
    out = run_db(url, "keys create --tenant acme", &status);
    cr_assert_eq(status, 0, "%s", out);
    free(out);
    out = run_db(url, "keys create --tenant acme --scope ingest,admin", &status);
    cr_assert_eq(status, 2, "%s", out);
    cr_assert_not_null(strstr(out, "ingest, read and review"), "%s", out);
    free(out);
    char *scopes = pdt_sql_value(url, "SELECT string_agg(array_to_string(scopes, ','), ' '"
                                      " ORDER BY created_at, key_id) FROM api_keys");
    cr_assert_str_eq(scopes, "read,review ingest,read");
    free(scopes);
    out = run_db(url, "keys list", &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_not_null(strstr(out, "scopes"), "%s", out);
    cr_assert_not_null(strstr(out, "read,review"), "%s", out);
    cr_assert_not_null(strstr(out, "ingest,read"), "%s", out);
    free(out);
    out = run("keys revoke --help", &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_not_null(strstr(out, "within its\n           --key-cache-seconds"), "%s", out);
    free(out);
    free(url);
}

Test(report_cli, before_migrate_says_to_run_migrate)
{
    char *url = pdt_new_database();
    int status;
    char *out = run_db(url, "report", &status);
    cr_assert_eq(status, 1, "%s", out);
    cr_assert_not_null(strstr(out, "patternd migrate"), "%s", out);
    cr_assert_null(strstr(out, "ERROR"), "%s", out);
    cr_assert_null(strstr(out, "LINE 1"), "%s", out);
    free(out);
    out = run_db(url, "review list", &status);
    cr_assert_eq(status, 1, "%s", out);
    cr_assert_not_null(strstr(out, "patternd migrate"), "%s", out);
    free(out);
    free(url);
}

Test(report_cli, whole_tenant_names_shortest_decimals_status_and_help)
{
    static const char tenant[] = "a-tenant-with-a-rather-long-name-of-48-characters";
    char *url = database_with(tenant, 6, "0.1");
    int status;
    char *out = run_db(url, "report --format table", &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_not_null(strstr(out, tenant), "the tenant's name is cut: %s", out);
    free(out);
    out = run_db(url, "report --format json", &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_not_null(strstr(out, "\"avg_cost_with_llm\": 0.1,"), "%s", out);
    cr_assert_null(strstr(out, "00000000"), "%s", out);
    free(out);
    /* --status: 6 workflows of $0.10 are not worth a tool by the defaults (savings < 1.00). */
    out = run_db(url, "report --status detected --format csv", &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_not_null(strstr(out, "test:"), "%s", out);
    free(out);
    out = run_db(url, "report --status candidate --format json", &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_str_eq(out, "[]\n");
    free(out);
    out = run("report --help", &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_not_null(strstr(out, "once per signature"), "%s", out);
    cr_assert_not_null(strstr(out, "--status"), "%s", out);
    free(out);
    free(url);
}
