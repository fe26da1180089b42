/*
 * Stage: db (API keys and the row-level security of the migrations).  What
 * keeps tenants apart in PostgreSQL itself, whoever connects: `patternd keys`
 * stores only a salted hash of each key, and a member of patternd_service
 * sees and writes only the rows of the tenant its transaction set.
 *
 * The HTTP side of the same isolation (a key's tenant, records of another
 * tenant rejected) is in tests/http/test_serve.c.
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

/* --- keys ------------------------------------------------------------------- */

Test(keys, create_prints_key_last_and_stores_only_a_salted_hash)
{
    char *url = pdt_new_migrated_database();
    char *key = pdt_create_key(url, "acme");
    const char *secret = strrchr(key, '~') + 1;
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM api_keys WHERE tenant_id = 'acme'"), 1);
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM api_keys WHERE api_keys::text LIKE '%%%s%%' OR "
             "encode(hash, 'escape') LIKE '%%%s%%'",
             secret, secret);
    cr_assert_eq(pdt_sql_long(url, sql), 0, "the secret is stored");
    cr_assert_eq(pdt_sql_long(url, "SELECT octet_length(salt) + octet_length(hash) FROM api_keys"),
                 64);
    /* Two keys of one tenant get different salts. */
    char *other = pdt_create_key(url, "acme");
    cr_assert_eq(pdt_sql_long(url, "SELECT count(DISTINCT salt) FROM api_keys"), 2);

    char cmd[4096];
    int status;
    snprintf(cmd, sizeof(cmd), "'%s' keys list --db '%s' --tenant acme", pdt_binary(), url);
    char *list = pdt_run(cmd, &status);
    cr_assert_eq(status, 0);
    cr_assert_eq(pdt_count_lines(list), 3, "%s", list);
    cr_assert_null(strstr(list, secret), "list shows the secret");
    free(list);
    free(other);
    free(key);
    free(url);
}

/* --- row-level security, checked in SQL under the service's role --------------------- */

static PGresult *run(PGconn *c, const char *sql)
{
    return PQexec(c, sql);
}

static long count_in(PGconn *c, const char *sql)
{
    PGresult *r = run(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

Test(rls, service_role_sees_and_writes_only_the_tenant_it_set)
{
    char *url = pdt_new_migrated_database();
    char *svc = pdt_service_url(url);
    /* Data of two tenants (ingest runs as the superuser here, and sets the tenant itself). */
    char *a = pdt_records_file("a", 20);
    char args[512];
    snprintf(args, sizeof(args), "--tenant alpha '%s'", a);
    int status;
    free(pdt_ingest(url, args, &status));
    cr_assert_eq(status, 0);
    char *b = pdt_records_file("b", 30);
    snprintf(args, sizeof(args), "--tenant beta '%s'", b);
    free(pdt_ingest(url, args, &status));
    cr_assert_eq(status, 0);
    free(pdt_create_key(url, "alpha"));
    free(pdt_create_key(url, "beta"));

    /*
     * Every data table has row-level security enabled and forced; the
     * pattern_occurrences view reads them with its reader's rights.
     */
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND"
                                   " relnamespace = 'public'::regnamespace AND"
                                   " relname <> 'schema_migrations' AND"
                                   " NOT (relrowsecurity AND relforcerowsecurity)"),
                 0);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND"
                                   " relnamespace = 'public'::regnamespace AND relrowsecurity"),
                 6);

    PGconn *c = PQconnectdb(svc);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    static const char *const tables[] = {"workflows", "operation_patterns", "pattern_occurrences"};
    char sql[256];
    /* No tenant set: nothing at all. */
    for (int t = 0; t < 3; t++) {
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", tables[t]);
        cr_assert_eq(count_in(c, sql), 0, "%s without a tenant", tables[t]);
    }
    /*
     * But every key's row, whatever the tenant: the service checks keys
     * against a table of them all (migrations/0006).  It may write none.
     */
    cr_assert_eq(count_in(c, "SELECT count(*) FROM api_keys"), 2);
    /* Tenant alpha set for one transaction: only alpha's rows, whatever the WHERE. */
    PQclear(run(c, "BEGIN"));
    PQclear(run(c, "SELECT set_config('patternd.tenant', 'alpha', true)"));
    cr_assert_eq(count_in(c, "SELECT count(*) FROM workflows"), 20);
    cr_assert_eq(count_in(c, "SELECT count(*) FROM workflows WHERE tenant_id = 'beta'"), 0);
    cr_assert_eq(count_in(c, "SELECT count(*) FROM api_keys"), 2);
    cr_assert_eq(count_in(c, "SELECT count(*) FROM operation_patterns WHERE tenant_id <> 'alpha'"),
                 0);
    cr_assert_gt(count_in(c, "SELECT count(*) FROM pattern_occurrences"), 0);
    cr_assert_eq(count_in(c, "SELECT count(*) FROM pattern_occurrences WHERE tenant_id <> 'alpha'"),
                 0);
    /* Writing beta's row while alpha is set is refused by the policy. */
    PGresult *r = run(c, "INSERT INTO workflows (tenant_id, workflow_id, batch_token, signatures)"
                         " VALUES ('beta', 'sneaky', 1, '{}')");
    cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
    cr_assert_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42501");
    PQclear(r);
    PQclear(run(c, "ROLLBACK"));
    /* Nor may it move alpha's rows to beta, or change beta's. */
    PQclear(run(c, "BEGIN"));
    PQclear(run(c, "SELECT set_config('patternd.tenant', 'alpha', true)"));
    r = run(c, "UPDATE operation_patterns SET tenant_id = 'beta'");
    cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "%s", PQcmdStatus(r));
    PQclear(r);
    PQclear(run(c, "ROLLBACK"));
    PQclear(run(c, "BEGIN"));
    PQclear(run(c, "SELECT set_config('patternd.tenant', 'alpha', true)"));
    r = run(c, "UPDATE operation_patterns SET last_seen = now() WHERE tenant_id = 'beta'");
    cr_assert_str_eq(PQcmdTuples(r), "0");
    PQclear(r);
    PQclear(run(c, "COMMIT"));
    /*
     * Ledger rows are revised in place (migration 0007), but only the
     * tenant's own, and none moves to another tenant.
     */
    PQclear(run(c, "BEGIN"));
    PQclear(run(c, "SELECT set_config('patternd.tenant', 'alpha', true)"));
    r = run(c, "UPDATE workflows SET tenant_id = 'beta'");
    cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "%s", PQcmdStatus(r));
    cr_assert_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42501");
    PQclear(r);
    PQclear(run(c, "ROLLBACK"));
    PQclear(run(c, "BEGIN"));
    PQclear(run(c, "SELECT set_config('patternd.tenant', 'alpha', true)"));
    r = run(c, "UPDATE workflows SET batch_token = 0 WHERE tenant_id = 'beta'");
    cr_assert_str_eq(PQcmdTuples(r), "0");
    PQclear(r);
    PQclear(run(c, "ROLLBACK"));
    /* After the transaction the setting is gone (SET LOCAL): nothing visible again. */
    cr_assert_eq(count_in(c, "SELECT count(*) FROM workflows"), 0);
    /* The service role can neither switch the policies off nor delete. */
    r = run(c, "ALTER TABLE workflows DISABLE ROW LEVEL SECURITY");
    cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    r = run(c, "DELETE FROM workflows");
    cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    PQfinish(c);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM workflows WHERE tenant_id = 'beta'"), 30);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM workflows WHERE batch_token = 0"), 0);
    unlink(a);
    unlink(b);
    free(a);
    free(b);
    free(svc);
    free(url);
}

/* --- least privilege: the service reads keys, only `patternd keys` writes them ---------------
 */

/* Runs sql on c in a transaction scoped to tenant; asserts its SQLSTATE ("" for success). */
static void expect_sqlstate(PGconn *c, const char *tenant, const char *sql, const char *sqlstate)
{
    char set[128];
    snprintf(set, sizeof(set), "SELECT set_config('patternd.tenant', '%s', true)", tenant);
    PQclear(run(c, "BEGIN"));
    PQclear(run(c, set));
    PGresult *r = run(c, sql);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    cr_assert_str_eq(state ? state : "", sqlstate, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQclear(run(c, "ROLLBACK"));
}

Test(rls, service_role_reads_api_keys_but_cannot_mint_or_unrevoke)
{
    char *url = pdt_new_migrated_database();
    char *svc = pdt_service_url(url);
    /* `patternd keys` as the owner still creates and revokes. */
    char *key = pdt_create_key(url, "acme");
    char key_id[17];
    snprintf(key_id, sizeof(key_id), "%.16s", strchr(key, '~') + 1);
    char cmd[4096];
    int status;
    snprintf(cmd, sizeof(cmd), "'%s' keys revoke --tenant acme --db '%s' %s 2>&1", pdt_binary(),
             url, key_id);
    char *out = pdt_run(cmd, &status);
    cr_assert_eq(status, 0, "keys revoke: %s", out);
    free(out);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL"),
                 1);
    free(pdt_create_key(url, "acme"));

    PGconn *c = PQconnectdb(svc);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    /* Reading under its tenant works: the service authenticates with this. */
    PQclear(run(c, "BEGIN"));
    PQclear(run(c, "SELECT set_config('patternd.tenant', 'acme', true)"));
    cr_assert_eq(count_in(c, "SELECT count(*) FROM api_keys"), 2);
    cr_assert_eq(count_in(c, "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL"), 1);
    PQclear(run(c, "ROLLBACK"));
    /* Minting, un-revoking or deleting a key is refused: permission denied (42501). */
    expect_sqlstate(c, "acme",
                    "INSERT INTO api_keys (tenant_id, key_id, salt, hash)"
                    " VALUES ('acme', '0123456789abcdef', '\\x00', '\\x00')",
                    "42501");
    expect_sqlstate(c, "acme", "UPDATE api_keys SET revoked_at = NULL", "42501");
    expect_sqlstate(c, "acme", "DELETE FROM api_keys", "42501");
    expect_sqlstate(c, "acme", "SELECT key_id FROM api_keys", "");
    PQfinish(c);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM api_keys"), 2);
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL"),
                 1);
    /* The grants themselves, whatever the policy would allow. */
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM information_schema.role_table_grants"
                                   " WHERE grantee = 'patternd_service' AND table_name = 'api_keys'"
                                   " AND privilege_type <> 'SELECT'"),
                 0);
    free(key);
    free(svc);
    free(url);
}
