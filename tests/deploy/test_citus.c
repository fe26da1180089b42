/*
 * Stage: db, on a Citus cluster (scripts/citus.sh: a coordinator and two
 * worker nodes; run with PD_TEST_DEPLOYMENT=citus, skipped otherwise).
 *
 * What `patternd migrate` leaves on Citus (every tenant table distributed by
 * tenant_id, co-located; nothing else to run; the same again is a no-op), and
 * that row-level security holds where the rows are: on the worker nodes'
 * shards, queried directly on a worker as a member of patternd_service,
 * bypassing the coordinator.  The exactly-once suites, the fault tests and
 * serve's isolation tests run on Citus unchanged (scripts/test.sh).
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

/* The tenant tables (pattern_occurrences is a view over two of them). */
static const char *const TABLES[] = {"workflows",       "operation_patterns", "api_keys",
                                     "pattern_reviews", "review_thresholds",  "pattern_weeks"};
#define N_TABLES (sizeof(TABLES) / sizeof(TABLES[0]))

static void need_citus(void)
{
    if (strcmp(pdt_deployment(), "citus") != 0)
        cr_skip_test("needs Citus (PD_TEST_DEPLOYMENT=citus)");
}

static PGconn *connect_to(const char *url)
{
    PGconn *c = PQconnectdb(url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s: %s", url, PQerrorMessage(c));
    return c;
}

/* Runs sql, which must succeed; returns the first column of the first row as a number. */
static long count_of(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    cr_assert(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
              "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

/* Begins a transaction with the tenant set as patternd sets it (include/pd/db.h). */
static void begin_tenant(PGconn *c, const char *tenant)
{
    char sql[256];
    exec_ok(c, "BEGIN");
    snprintf(sql, sizeof(sql),
             "SET LOCAL citus.propagate_set_commands = 'local'; SET LOCAL patternd.tenant = '%s'",
             tenant);
    exec_ok(c, sql);
}

Test(citus, migrate_distributes_every_tenant_table_colocated_and_a_rerun_changes_nothing)
{
    need_citus();
    char *url = pdt_new_migrated_database();
    PGconn *c = connect_to(url);
    /* The tenant tables, hash-distributed by tenant_id, in one co-location group. */
    cr_assert_eq(count_of(c, "SELECT count(*) FROM pg_dist_partition"
                             " WHERE logicalrelid IN ('workflows'::regclass,"
                             " 'operation_patterns'::regclass, 'api_keys'::regclass,"
                             " 'pattern_reviews'::regclass, 'review_thresholds'::regclass,"
                             " 'pattern_weeks'::regclass)"
                             " AND partmethod = 'h'"
                             " AND column_to_column_name(logicalrelid, partkey) = 'tenant_id'"),
                 (long)N_TABLES);
    cr_assert_eq(count_of(c, "SELECT count(DISTINCT colocationid) FROM pg_dist_partition"), 1);
    /* schema_migrations stays local to the coordinator. */
    cr_assert_eq(count_of(c, "SELECT count(*) FROM pg_dist_partition"
                             " WHERE logicalrelid = 'schema_migrations'::regclass"),
                 0);
    /* Every node holds shards. */
    cr_assert_eq(count_of(c, "SELECT count(DISTINCT nodeport) FROM citus_shards"
                             " WHERE table_name = 'workflows'::regclass"),
                 2);
    PQfinish(c);

    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' migrate --db '%s' 2>&1", pdt_binary(), url);
    int status;
    char *out = pdt_run(cmd, &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(strstr(out, " 0 applied now") != NULL, "%s", out);
    free(out);

    /* The role, its grants and the policies exist on every worker's shards. */
    for (int n = 1; n <= 2; n++) {
        char *worker = pdt_worker_url(url, n);
        PGconn *w = connect_to(worker);
        exec_ok(w, "SET citus.override_table_visibility = off");
        cr_assert_eq(
            count_of(w, "SELECT count(*) FROM pg_roles WHERE rolname = 'patternd_service'"), 1);
        for (size_t t = 0; t < N_TABLES; t++) {
            char sql[1024];
            snprintf(sql, sizeof(sql),
                     "SELECT count(*) FROM pg_class c WHERE c.relname ~ '^%s_[0-9]+$'"
                     " AND c.relkind = 'r' AND c.relrowsecurity AND c.relforcerowsecurity"
                     " AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid"
                     "  AND p.polname = 'tenant_isolation')"
                     " AND has_table_privilege('patternd_service', c.oid, 'SELECT')",
                     TABLES[t]);
            long shards = count_of(w, sql);
            snprintf(sql, sizeof(sql),
                     "SELECT count(*) FROM pg_class c WHERE c.relname ~ '^%s_[0-9]+$'"
                     " AND c.relkind = 'r'",
                     TABLES[t]);
            cr_assert_gt(shards, 0, "worker %d has no %s shard", n, TABLES[t]);
            cr_assert_eq(shards, count_of(w, sql),
                         "worker %d: a %s shard lacks RLS, its policy or the grant", n, TABLES[t]);
        }
        PQfinish(w);
        free(worker);
    }
    free(url);
}

/* The workflows shards of the worker owner is connected to (by name: shards are tables there). */
static PGresult *shard_contents(PGconn *as_owner)
{
    PGresult *r = PQexec(as_owner, "SELECT c.relname FROM pg_class c"
                                   " WHERE c.relname ~ '^workflows_[0-9]+$' AND c.relkind = 'r'"
                                   " ORDER BY 1");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(as_owner));
    return r;
}

Test(citus, service_role_on_a_worker_shard_sees_and_writes_only_its_tenant)
{
    need_citus();
    char *url = pdt_new_migrated_database();
    char args[4096];
    snprintf(args, sizeof(args), "'%s'", pdt_data("sample-600.ndjson"));
    int status;
    char *out = pdt_ingest(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    free(out);
    /* The occurrences view, planned by Citus: one row per counted occurrence. */
    long occurrences = pdt_sql_long(url, "SELECT count(*) FROM pattern_occurrences");
    cr_assert_gt(occurrences, 0);
    cr_assert_eq(occurrences,
                 pdt_sql_long(url, "SELECT sum(occurrence_count) FROM operation_patterns"));
    char *svc = pdt_service_url(url);

    long seen_tenants = 0, checked_shards = 0;
    for (int n = 1; n <= 2; n++) {
        char *owner_url = pdt_worker_url(url, n), *svc_url = pdt_worker_url(svc, n);
        PGconn *owner = connect_to(owner_url), *s = connect_to(svc_url);
        exec_ok(owner, "SET citus.override_table_visibility = off");
        PGresult *shards = shard_contents(owner);
        for (int i = 0; i < PQntuples(shards); i++) {
            const char *shard = PQgetvalue(shards, i, 0);
            char sql[512];
            /* Without a tenant, the service role sees none of the shard's rows. */
            snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", shard);
            cr_assert_eq(count_of(s, sql), 0, "%s on worker %d without a tenant", shard, n);
            snprintf(sql, sizeof(sql), "SELECT tenant_id, count(*) FROM %s GROUP BY 1 ORDER BY 1",
                     shard);
            PGresult *tenants = PQexec(owner, sql);
            cr_assert_eq(PQresultStatus(tenants), PGRES_TUPLES_OK, "%s", PQerrorMessage(owner));
            checked_shards++;
            for (int t = 0; t < PQntuples(tenants); t++) {
                const char *tenant = PQgetvalue(tenants, t, 0);
                long rows = strtol(PQgetvalue(tenants, t, 1), NULL, 10);
                begin_tenant(s, tenant);
                snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", shard);
                cr_assert_eq(count_of(s, sql), rows, "%s, tenant %s", shard, tenant);
                snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE tenant_id <> '%s'", shard,
                         tenant);
                cr_assert_eq(count_of(s, sql), 0, "%s: another tenant's rows as %s", shard, tenant);
                /* Another tenant's row is refused by the shard's own policy. */
                snprintf(sql, sizeof(sql),
                         "INSERT INTO %s (tenant_id, workflow_id, batch_token, signatures)"
                         " VALUES ('%s-not', 'sneaky', 1, '{}')",
                         shard, tenant);
                PGresult *r = PQexec(s, sql);
                cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "%s", sql);
                cr_assert_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42501");
                PQclear(r);
                exec_ok(s, "ROLLBACK");
                seen_tenants++;
            }
            PQclear(tenants);
        }
        PQclear(shards);
        /* Through the worker's own copy of the metadata too: nothing without a tenant. */
        cr_assert_eq(count_of(s, "SELECT count(*) FROM workflows"), 0);
        PQfinish(s);
        PQfinish(owner);
        free(svc_url);
        free(owner_url);
    }
    cr_assert_gt(checked_shards, 0);
    cr_assert_geq(seen_tenants, 2, "the sample's tenants were not found on the shards");
    free(svc);
    free(url);
}

/*
 * A batch is one tenant's, and the function that writes it is distributed
 * by its tenant argument with force_delegation (migrations/0008): the whole
 * call runs on the worker node holding that tenant, a one-node transaction
 * there.  Two-phase commit would leave a record in pg_dist_transaction for
 * every batch; Citus's recovery, which deletes them, is switched off for the
 * test so that none can hide.
 */
Test(citus, batches_commit_on_one_node_without_two_phase_commit, .timeout = 600)
{
    need_citus();
    char *url = pdt_new_migrated_database();
    PGconn *c = connect_to(url);
    cr_assert_eq(count_of(c, "SELECT count(*) FROM pg_dist_object o"
                             " JOIN pg_proc p ON p.oid = o.objid"
                             " WHERE p.proname IN ('patternd_write_batch', 'patternd_review',"
                             " 'patternd_move_candidates') AND o.force_delegation"
                             " AND o.distribution_argument_index = 0"),
                 3);
    exec_ok(c, "ALTER SYSTEM SET citus.recover_2pc_interval = -1");
    exec_ok(c, "SELECT pg_reload_conf()");
    long before = count_of(c, "SELECT count(*) FROM pg_dist_transaction");

    char path[64], cmd[4096];
    snprintf(path, sizeof(path), "/tmp/pdt-1pc-%d.ndjson", (int)getpid());
    snprintf(cmd, sizeof(cmd), "'%s' --count 100000 --tenants 8 --seed 3 > '%s'", PD_GEN_BINARY,
             path);
    cr_assert_eq(system(cmd), 0);
    char args[256];
    snprintf(args, sizeof(args), "--workers 4 --batch 1000 '%s'", path);
    int status;
    char *out = pdt_ingest(url, args, &status);
    unlink(path);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "processed"), 100000, "%s", out);
    cr_assert_geq(pdt_summary_value(out, "batches"), 100, "%s", out);
    long after = count_of(c, "SELECT count(*) FROM pg_dist_transaction");

    exec_ok(c, "ALTER SYSTEM RESET citus.recover_2pc_interval");
    exec_ok(c, "SELECT pg_reload_conf()");
    cr_assert_eq(after, before, "pg_dist_transaction grew by %ld over %ld batches", after - before,
                 pdt_summary_value(out, "batches"));
    free(out);
    PQfinish(c);
    free(url);
}
