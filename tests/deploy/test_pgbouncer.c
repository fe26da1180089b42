/*
 * Stage: db, behind PgBouncer in transaction pooling (scripts/pgbouncer.sh;
 * run with PD_TEST_DEPLOYMENT=pgbouncer, skipped otherwise).
 *
 * patternd leaves nothing on the server connections it borrowed: after an
 * ingest with --async-commit through the pooler, every server connection of
 * the pool still has synchronous_commit on, no prepared statement and no
 * advisory lock.  The exactly-once suites, the fault tests and serve's
 * isolation tests run through PgBouncer unchanged (scripts/test.sh).
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* As many clients as PgBouncer's pool has server connections (default_pool_size = 40). */
enum { CLIENTS = 40 };

Test(pgbouncer, ingest_and_migrate_leave_no_session_state_on_pooled_connections)
{
    if (strcmp(pdt_deployment(), "pgbouncer") != 0)
        cr_skip_test("needs PgBouncer (PD_TEST_DEPLOYMENT=pgbouncer)");
    char *url = pdt_new_migrated_database();
    char args[4096];
    snprintf(args, sizeof(args), "--async-commit --workers 8 --batch 50 '%s'",
             pdt_data("sample-600.ndjson"));
    int status;
    char *out = pdt_ingest(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "processed"), 600, "%s", out);
    free(out);

    /*
     * Clients that each hold a transaction open occupy distinct server
     * connections, so together they look at every connection of the pool,
     * among them those the ingest used.
     */
    PGconn *c[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        c[i] = PQconnectdb(url);
        cr_assert_eq(PQstatus(c[i]), CONNECTION_OK, "%s", PQerrorMessage(c[i]));
        PGresult *r = PQexec(c[i], "BEGIN; SELECT current_setting('synchronous_commit'),"
                                   " (SELECT count(*) FROM pg_prepared_statements),"
                                   " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                                   "  AND pid = pg_backend_pid()),"
                                   " coalesce(current_setting('patternd.tenant', true), '')");
        cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c[i]));
        cr_assert_str_eq(PQgetvalue(r, 0, 0), "on", "a server connection kept synchronous_commit");
        cr_assert_str_eq(PQgetvalue(r, 0, 1), "0", "a server connection kept prepared statements");
        cr_assert_str_eq(PQgetvalue(r, 0, 2), "0", "a server connection kept an advisory lock");
        /* A tenant set LOCAL reads back as '' afterwards, never as a tenant. */
        cr_assert_str_eq(PQgetvalue(r, 0, 3), "", "a server connection kept a tenant");
        PQclear(r);
    }
    for (int i = 0; i < CLIENTS; i++)
        PQfinish(c[i]);
    free(url);
}
