/*
 * Stage: db, behind PgBouncer in transaction pooling (scripts/pgbouncer.sh;
 * run with PD_TEST_DEPLOYMENT=pgbouncer, skipped otherwise).
 *
 * patternd leaves nothing on the server connections it borrowed: after an
 * ingest with --async-commit through the pooler, every server connection of
 * the pool, the ingest's among them, still has synchronous_commit on, no
 * prepared statement and no advisory lock.  The exactly-once suites, the
 * fault tests and serve's isolation tests run through PgBouncer unchanged
 * (scripts/test.sh).
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* As many clients as PgBouncer's pool has server connections (default_pool_size = 40). */
enum { CLIENTS = 40 };

/* Sets PgBouncer's server_idle_timeout (seconds, 0 for never) through its admin console. */
static void set_server_idle_timeout(const char *url, int seconds)
{
    char admin[128], sql[64];
    snprintf(admin, sizeof(admin), "postgresql://postgres@127.0.0.1:%d/pgbouncer",
             pdt_url_port(url));
    snprintf(sql, sizeof(sql), "SET server_idle_timeout = %d", seconds);
    PGconn *c = PQconnectdb(admin);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
              "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

Test(pgbouncer, ingest_and_migrate_leave_no_session_state_on_pooled_connections)
{
    if (strcmp(pdt_deployment(), "pgbouncer") != 0)
        cr_skip_test("needs PgBouncer (PD_TEST_DEPLOYMENT=pgbouncer)");
    char *url = pdt_new_migrated_database();
    /* The pool keeps the ingest's server connections until they are looked at (5 s otherwise). */
    set_server_idle_timeout(url, 0);
    char args[4096];
    snprintf(args, sizeof(args), "--async-commit --workers 8 --batch 50 '%s'",
             pdt_data("sample-600.ndjson"));
    int status;
    char *out = pdt_ingest(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "processed"), 600, "%s", out);
    free(out);
    /* The pool's server connections now: the ingest's, and the one this query runs on. */
    char *pooled = pdt_sql_value(url, "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity"
                                      " WHERE datname = current_database()"
                                      " AND backend_type = 'client backend'");
    cr_assert_not_null(pooled);

    /*
     * Clients that each hold a transaction open occupy distinct server
     * connections, so together they look at every connection of the pool,
     * among them those the ingest used.
     */
    char seen[CLIENTS * 16 + 2] = " ";
    PGconn *c[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        c[i] = PQconnectdb(url);
        cr_assert_eq(PQstatus(c[i]), CONNECTION_OK, "%s", PQerrorMessage(c[i]));
        PGresult *r = PQexec(
            c[i], "BEGIN; SELECT current_setting('synchronous_commit'),"
                  " (SELECT count(*) FROM pg_prepared_statements),"
                  " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                  "  AND pid = pg_backend_pid()),"
                  " coalesce(current_setting('patternd.tenant', true), ''), pg_backend_pid()");
        cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c[i]));
        cr_assert_str_eq(PQgetvalue(r, 0, 0), "on", "a server connection kept synchronous_commit");
        cr_assert_str_eq(PQgetvalue(r, 0, 1), "0", "a server connection kept prepared statements");
        cr_assert_str_eq(PQgetvalue(r, 0, 2), "0", "a server connection kept an advisory lock");
        /* A tenant set LOCAL reads back as '' afterwards, never as a tenant. */
        cr_assert_str_eq(PQgetvalue(r, 0, 3), "", "a server connection kept a tenant");
        size_t at = strlen(seen);
        snprintf(seen + at, sizeof(seen) - at, "%s ", PQgetvalue(r, 0, 4));
        PQclear(r);
    }
    for (char *pid = strtok(pooled, " "); pid != NULL; pid = strtok(NULL, " ")) {
        char word[24];
        snprintf(word, sizeof(word), " %s ", pid);
        cr_assert_not_null(strstr(seen, word), "server connection %s was not looked at (%s)", pid,
                           seen);
    }
    for (int i = 0; i < CLIENTS; i++)
        PQfinish(c[i]);
    set_server_idle_timeout(url, 5);
    free(pooled);
    free(url);
}
