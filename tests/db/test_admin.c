/*
 * Stage: db (migration 0008's patternd_admin).  Administration on a PostgreSQL where nobody is a
 * superuser, as on a managed service: the database belongs to a login role with CREATEROLE and
 * nothing more; it runs `patternd migrate`, which makes it a member of patternd_admin, and
 * ingests for two tenants.  Then `patternd report` across tenants, `patternd keys list` and
 * `patternd review list` see both tenants, as that owner and as a second login role granted
 * patternd_admin, while a plain member of patternd_service with no tenant set sees no tenant's
 * workflows or patterns.
 *
 * Roles are cluster-wide and tests run side by side, so each test names its roles after its
 * process.  On Citus the database comes from scripts/citus.sh createdb (the extension and the
 * nodes registered) and is then handed to the owner with ALTER DATABASE ... OWNER TO, which
 * Citus passes on to the worker nodes.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

/* url with its user (the part before '@', after "postgresql://") replaced by user; malloc'd. */
static char *as_user(const char *url, const char *user)
{
    const char *scheme = "postgresql://";
    const char *at = strchr(url, '@');
    cr_assert(strncmp(url, scheme, strlen(scheme)) == 0 && at != NULL, "unexpected URL %s", url);
    size_t n = strlen(scheme) + strlen(user) + strlen(at) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%s%s%s", scheme, user, at);
    return out;
}

/* url with its database name (after the last '/') replaced by name; malloc'd. */
static char *with_database(const char *url, const char *name)
{
    const char *slash = strrchr(url, '/');
    cr_assert_not_null(slash, "unexpected URL %s", url);
    size_t prefix = (size_t)(slash - url) + 1;
    char *out = malloc(prefix + strlen(name) + 1);
    memcpy(out, url, prefix);
    strcpy(out + prefix, name);
    return out;
}

/* Runs `patternd <args>` and returns its standard output; fails the test unless it exits 0. */
static char *patternd(const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", pdt_binary(), args);
    int status;
    char *out = pdt_run(cmd, &status);
    cr_assert_eq(status, 0, "patternd %s: %s", args, out);
    return out;
}

/* Lines of a CSV report (header excepted) whose first column is tenant. */
static long report_rows_of(const char *csv, const char *tenant)
{
    long n = 0;
    size_t len = strlen(tenant);
    const char *line = strchr(csv, '\n');
    while (line != NULL && line[1] != '\0') {
        line++;
        if (strncmp(line, tenant, len) == 0 && line[len] == ',')
            n++;
        line = strchr(line, '\n');
    }
    return n;
}

/* Keys of tenant in the output of `keys list` (the tenant is the first column). */
static long key_rows_of(const char *list, const char *tenant)
{
    long n = 0;
    size_t len = strlen(tenant);
    for (const char *line = list; line != NULL && *line != '\0';) {
        if (strncmp(line, tenant, len) == 0 && line[len] == ' ')
            n++;
        line = strchr(line, '\n');
        line = line != NULL ? line + 1 : NULL;
    }
    return n;
}

/* Entries of tenant in the JSON array printed by `review list --format json`. */
static long review_rows_of(const char *json, const char *tenant)
{
    json_error_t jerr;
    json_t *doc = json_loads(json, 0, &jerr);
    cr_assert(json_is_array(doc), "review list did not print a JSON array (%s): %s", jerr.text,
              json);
    long n = 0;
    size_t i;
    json_t *row;
    json_array_foreach(doc, i, row)
    {
        const char *t = json_string_value(json_object_get(row, "tenant_id"));
        if (t != NULL && strcmp(t, tenant) == 0)
            n++;
    }
    json_decref(doc);
    return n;
}

/*
 * Checks that the role at url, through report, keys list and review list across tenants, sees
 * both tenants' rows, as many as the superuser counts.
 */
static void assert_sees_both_tenants(const char *url, const char *superuser_url, const char *who)
{
    char args[4096];
    snprintf(args, sizeof(args), "report --db '%s' --top 0 --format csv", url);
    char *csv = patternd(args);
    snprintf(args, sizeof(args), "review list --db '%s' --top 0 --format json", url);
    char *reviews = patternd(args);
    const char *tenants[] = {"admin-a", "admin-b"};
    for (int i = 0; i < 2; i++) {
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM operation_patterns WHERE tenant_id = '%s'"
                 " AND occurrence_count > 0",
                 tenants[i]);
        long expected = pdt_sql_long(superuser_url, sql);
        cr_assert_gt(expected, 0);
        cr_assert_eq(report_rows_of(csv, tenants[i]), expected, "%s: report shows %s: %s", who,
                     tenants[i], csv);
        cr_assert_eq(review_rows_of(reviews, tenants[i]), expected, "%s: review list shows %s: %s",
                     who, tenants[i], reviews);
    }
    snprintf(args, sizeof(args), "keys list --db '%s'", url);
    char *keys = patternd(args);
    cr_assert_eq(key_rows_of(keys, "admin-a"), 1, "%s: keys list: %s", who, keys);
    cr_assert_eq(key_rows_of(keys, "admin-b"), 1, "%s: keys list: %s", who, keys);
    free(keys);
    free(reviews);
    free(csv);
}

Test(admin, non_superuser_owner_and_admins_see_every_tenant_and_the_service_role_none)
{
    const char *base = getenv("PD_TEST_DATABASE_URL");
    cr_assert_not_null(base, "PD_TEST_DATABASE_URL is not set");
    char owner[64], admin[64], service[64], sql[512];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long tag = (long)(ts.tv_sec % 100000) * 1000 + ts.tv_nsec / 1000000;
    snprintf(owner, sizeof(owner), "pdt_owner_%d_%ld", (int)getpid(), tag);
    snprintf(admin, sizeof(admin), "pdt_admin_%d_%ld", (int)getpid(), tag);
    snprintf(service, sizeof(service), "pdt_svc_%d_%ld", (int)getpid(), tag);

    /* The managed setup: a login role that may create roles and owns the database, no more. */
    snprintf(sql, sizeof(sql), "CREATE ROLE %s LOGIN CREATEROLE", owner);
    pdt_sql_exec(base, sql);
    char *url;
    if (strcmp(pdt_deployment(), "citus") == 0) {
        char *made = pdt_new_database();
        snprintf(sql, sizeof(sql), "ALTER DATABASE %s OWNER TO %s", strrchr(made, '/') + 1, owner);
        pdt_sql_exec(made, sql);
        url = as_user(made, owner);
        free(made);
    } else {
        char name[80];
        snprintf(name, sizeof(name), "pdt_admin_db_%d_%ld", (int)getpid(), tag);
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER %s", name, owner);
        pdt_sql_exec(base, sql);
        char *owner_base = as_user(base, owner);
        url = with_database(owner_base, name);
        free(owner_base);
    }
    char *superuser_url = as_user(url, "postgres");
    cr_assert_eq(pdt_sql_long(url, "SELECT count(*) FROM pg_roles WHERE rolname = current_user"
                                   " AND NOT rolsuper AND NOT rolbypassrls"),
                 1, "the owner must be an ordinary role");

    char args[4096];
    snprintf(args, sizeof(args), "migrate --db '%s'", url);
    free(patternd(args));

    /* Records without tenant_id, ingested once for each tenant by the owner. */
    const char *tenants[] = {"admin-a", "admin-b"};
    char *records = pdt_records_file("adm", 30);
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof(args), "ingest --quiet --db '%s' --tenant %s '%s'", url, tenants[i],
                 records);
        char *out = patternd(args);
        cr_assert_eq(pdt_summary_value(out, "processed"), 30, "%s", out);
        free(out);
        snprintf(args, sizeof(args), "keys create --db '%s' --tenant %s", url, tenants[i]);
        free(patternd(args));
    }
    cr_assert_eq(pdt_sql_long(superuser_url, "SELECT count(DISTINCT tenant_id) FROM workflows"), 2);

    assert_sees_both_tenants(url, superuser_url, "the owner");

    /* A second administrator: an ordinary login role the owner grants patternd_admin. */
    snprintf(sql, sizeof(sql), "CREATE ROLE %s LOGIN; GRANT patternd_admin TO %s", admin, admin);
    pdt_sql_exec(url, sql);
    char *admin_url = as_user(url, admin);
    assert_sees_both_tenants(admin_url, superuser_url, "a member of patternd_admin");

    /* A plain member of patternd_service, no tenant set: no tenant's rows. */
    snprintf(sql, sizeof(sql), "CREATE ROLE %s LOGIN IN ROLE patternd_service", service);
    pdt_sql_exec(url, sql);
    char *service_url = as_user(url, service);
    snprintf(args, sizeof(args), "report --db '%s' --top 0 --format csv", service_url);
    char *csv = patternd(args);
    cr_assert_eq(pdt_count_lines(csv), 1, "only the header: %s", csv);
    cr_assert_eq(pdt_sql_long(service_url, "SELECT count(*) FROM workflows"), 0);
    cr_assert_eq(pdt_sql_long(service_url, "SELECT count(*) FROM operation_patterns"), 0);
    cr_assert_eq(pdt_sql_long(service_url, "SELECT count(*) FROM pattern_weeks"), 0);

    unlink(records);
    free(records);
    free(csv);
    free(service_url);
    free(admin_url);
    free(superuser_url);
    free(url);
}
