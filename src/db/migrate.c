/*
 * Schema migrations; see include/pd/migrate.h.
 *
 * Concurrency: every transaction of a run takes
 * pg_advisory_xact_lock(PD_MIGRATE_LOCK) first: the one that creates
 * schema_migrations and checks the recorded checksums, then one per pending
 * file, which re-reads under the lock whether that file was recorded
 * meanwhile (by a migrator started at the same moment) before applying it.
 * So concurrent migrators queue up file by file and each file is applied
 * once.  Each file runs in its own transaction together with the row that
 * records it, so a failed file leaves neither its changes nor its record.
 *
 * The lock is transaction-scoped, not a session lock, so that migrate is
 * safe through PgBouncer in transaction pooling: a session lock taken in
 * one transaction and released in another may be released on a different
 * server connection than it was taken on, and stay held for ever by the
 * first.  The lock is released by COMMIT or ROLLBACK, whatever happens.
 */
#include "pd/migrate.h"

#include <dirent.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PD_MIGRATE_LOCK "7021946411"

static const char SQL_BEGIN_LOCKED[] = "BEGIN; SELECT pg_advisory_xact_lock(" PD_MIGRATE_LOCK ")";
static const char SQL_CREATE[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                 " version text PRIMARY KEY,"
                                 " checksum text NOT NULL,"
                                 " applied_at timestamptz NOT NULL DEFAULT now())";
static const char SQL_APPLIED[] =
    "SELECT version, checksum, to_char(applied_at, 'YYYY-MM-DD HH24:MI:SSOF')"
    " FROM schema_migrations ORDER BY version";
static const char SQL_EXISTS[] = "SELECT to_regclass('schema_migrations') IS NOT NULL";
static const char SQL_APPLIED_ONE[] = "SELECT checksum FROM schema_migrations WHERE version = $1";
static const char SQL_RECORD[] =
    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)";

void pd_migration_set_builtin(pd_migration_set_t *set)
{
    set->items = pd_migrations;
    set->count = pd_migrations_count;
    set->owned = NULL;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(((const pd_migration_t *)a)->name, ((const pd_migration_t *)b)->name);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *grown = realloc(buf, cap);
            if (grown == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        size_t got = fread(buf + n, 1, 4096, f);
        n += got;
        if (got < 4096)
            break;
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/*
 * A loaded set keeps its items and their strings in one array of
 * pd_migration_t whose name and sql pointers are heap strings.
 */
void pd_migration_set_close(pd_migration_set_t *set)
{
    pd_migration_t *items = set->owned;
    if (items != NULL) {
        for (size_t i = 0; i < set->count; i++) {
            free((char *)items[i].name);
            free((char *)items[i].sql);
        }
        free(items);
    }
    memset(set, 0, sizeof(*set));
}

int pd_migration_set_load(pd_migration_set_t *set, const char *dir, pd_error_t *err)
{
    memset(set, 0, sizeof(*set));
    DIR *d = opendir(dir);
    if (d == NULL)
        return pd_error_set(err, PD_EIO, 0, "", "cannot open migrations folder %s: %m", dir);
    pd_migration_t *items = NULL;
    size_t count = 0, cap = 0;
    int rc = PD_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".sql") != 0)
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            pd_migration_t *grown = realloc(items, cap * sizeof(*items));
            if (grown == NULL) {
                rc = pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
                goto fail;
            }
            items = grown;
        }
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        size_t len = 0;
        char *sql = read_file(path, &len);
        char *name = strdup(e->d_name);
        if (sql == NULL || name == NULL) {
            free(sql);
            free(name);
            rc = pd_error_set(err, PD_EIO, 0, "", "cannot read %s: %m", path);
            goto fail;
        }
        items[count++] = (pd_migration_t){.name = name, .sql = sql, .len = len};
    }
    closedir(d);
    qsort(items, count, sizeof(*items), compare_names);
    set->items = items;
    set->count = count;
    set->owned = items;
    return PD_OK;

fail:
    closedir(d);
    set->owned = items;
    set->count = count;
    pd_migration_set_close(set);
    return rc;
}

static void checksum_hex(const pd_migration_t *m, char out[65])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)m->sql, m->len);
    sodium_bin2hex(out, 65, digest, sizeof(digest));
}

/*
 * Checksums of earlier texts of migrations that differ from today's in
 * comments only: a database that recorded one of them applied the same
 * statements, and is up to date.  (A change to a statement is always a new
 * migration.)
 */
static const struct {
    const char *name;
    const char *checksum;
} EARLIER_TEXTS[] = {
    {"0001_schema.sql", "9c58cd1d92d1f0293dcd5cb883451e35e0a9d4cc8034a575b256905afb291ebf"},
    {"0002_tenant_isolation.sql",
     "cabedfc5240f33a283f2a7505639c123c9e0f747de815784137a70a9576bd5fc"},
    {"0003_service_reads_api_keys.sql",
     "2738abbf7ad2d61fe05b41f8d6712a4886451a3dd8a5a96ed2e5400ab6560d55"},
    {"0004_citus_distribution.sql",
     "b20a7acea2f3aa6ac7ee0bafc63829d612a546c667e47f85731a7bee3187113e"},
    {"0005_occurrences_per_workflow.sql",
     "8fa06ece5bea6c409d0839ee61840a3a14d9d75826c465cdc65cd6edea3f9303"},
};

/* True when recorded is the checksum of m's text (sum) or of an earlier text of it. */
static bool same_text(const pd_migration_t *m, const char *sum, const char *recorded)
{
    if (strcmp(recorded, sum) == 0)
        return true;
    for (size_t i = 0; i < sizeof(EARLIER_TEXTS) / sizeof(EARLIER_TEXTS[0]); i++) {
        if (strcmp(EARLIER_TEXTS[i].name, m->name) == 0 &&
            strcmp(EARLIER_TEXTS[i].checksum, recorded) == 0)
            return true;
    }
    return false;
}

/* Finds a migration's row in the applied list; -1 when not applied. */
static int find_applied(const PGresult *applied, const char *name)
{
    for (int i = 0; i < PQntuples(applied); i++) {
        if (strcmp(PQgetvalue(applied, i, 0), name) == 0)
            return i;
    }
    return -1;
}

/* The error for an applied file whose text changed since. */
static int changed_error(const pd_migration_t *m, const char *sum, const char *recorded,
                         pd_error_t *err)
{
    return pd_error_set(err, PD_ECONFLICT, 0, "",
                        "migration %s was changed after it was applied (checksum %.12s..., "
                        "recorded %.12s...); add a new migration instead of editing it",
                        m->name, sum, recorded);
}

/*
 * True when the statement that failed on db collided with another
 * transaction on a shared catalog: roles and their grants are cluster-wide,
 * so migrators of two databases of one cluster (or of one Citus cluster's
 * nodes) may update the same row at once, and PostgreSQL refuses the
 * second with "tuple concurrently updated" (or a deadlock, or a
 * serialization failure).  The file's transaction rolled back whole, so it
 * may run again.
 */
static bool collision(const pd_db_t *db, const pd_error_t *err)
{
    const char *state = pd_db_sqlstate(db);
    return strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
           (strcmp(state, "XX000") == 0 && err != NULL &&
            strstr(err->message, "concurrently updated") != NULL);
}

#define APPLY_ATTEMPTS 5

/*
 * Applies m in one transaction under the lock, unless it was recorded
 * meanwhile.  *applied is set when it was applied now; *collided when it
 * failed by a collision() and may be tried again.
 */
static int apply_one(pd_db_t *db, const pd_migration_t *m, bool *applied, bool *collided,
                     pd_error_t *err)
{
    PGresult *recorded = NULL;
    char sum[65];
    checksum_hex(m, sum);
    const char *params[] = {m->name, sum};
    *applied = false;
    *collided = false;
    int rc = pd_db_exec(db, SQL_BEGIN_LOCKED, err);
    if (rc < 0)
        return pd_db_end(db, rc, err);
    if ((rc = pd_db_query(db, SQL_APPLIED_ONE, 1, params, &recorded, err)) < 0)
        return pd_db_end(db, rc, err);
    if (PQntuples(recorded) > 0) { /* another migrator applied it while we waited */
        if (!same_text(m, sum, PQgetvalue(recorded, 0, 0)))
            rc = changed_error(m, sum, PQgetvalue(recorded, 0, 0), err);
        pd_db_result_free(recorded);
        return pd_db_end(db, rc, err);
    }
    pd_db_result_free(recorded);
    if ((rc = pd_db_exec(db, m->sql, err)) == 0)
        rc = pd_db_query(db, SQL_RECORD, 2, params, NULL, err);
    *collided = rc < 0 && collision(db, err);
    if ((rc = pd_db_end(db, rc, err)) < 0) {
        char reason[PD_MESSAGE_MAX];
        snprintf(reason, sizeof(reason), "%s", err ? err->message : "");
        return pd_error_set(err, rc, 0, "", "migration %s failed: %s", m->name, reason);
    }
    *applied = true;
    return PD_OK;
}

int pd_migrate_apply(pd_db_t *db, const pd_migration_set_t *set, FILE *log, pd_error_t *err)
{
    PGresult *applied = NULL;
    int rc;

    /* Create the table and refuse, before changing anything, if an applied file was edited. */
    if ((rc = pd_db_exec(db, SQL_BEGIN_LOCKED, err)) < 0 ||
        (rc = pd_db_exec(db, SQL_CREATE, err)) < 0 ||
        (rc = pd_db_query(db, SQL_APPLIED, 0, NULL, &applied, err)) < 0) {
        pd_db_end(db, rc, err);
        goto done;
    }
    for (size_t i = 0; i < set->count && rc == PD_OK; i++) {
        int row = find_applied(applied, set->items[i].name);
        char sum[65];
        checksum_hex(&set->items[i], sum);
        if (row >= 0 && !same_text(&set->items[i], sum, PQgetvalue(applied, row, 1)))
            rc = changed_error(&set->items[i], sum, PQgetvalue(applied, row, 1), err);
    }
    if ((rc = pd_db_end(db, rc, err)) < 0)
        goto done;

    size_t done_count = 0;
    for (size_t i = 0; i < set->count; i++) {
        const pd_migration_t *m = &set->items[i];
        bool now = false;
        if (find_applied(applied, m->name) >= 0)
            continue;
        bool collided = true;
        for (int attempt = 1; collided; attempt++) {
            rc = apply_one(db, m, &now, &collided, err);
            if (rc == PD_OK || !collided || attempt == APPLY_ATTEMPTS)
                break;
            struct timespec pause = {0, 20000000L * attempt}; /* 20, 40, ... ms */
            nanosleep(&pause, NULL);
        }
        if (rc < 0)
            goto done;
        if (now && log != NULL)
            fprintf(log, "applied %s\n", m->name);
        done_count += now;
    }
    if (log != NULL)
        fprintf(log, "schema is up to date: %zu applied now, %zu in all\n", done_count, set->count);
    rc = PD_OK;

done:
    pd_db_result_free(applied);
    return rc;
}

int pd_migrate_status(pd_db_t *db, const pd_migration_set_t *set, FILE *out, size_t *pending,
                      pd_error_t *err)
{
    PGresult *exists = NULL, *applied = NULL;
    size_t waiting = 0;
    int rc = pd_db_query(db, SQL_EXISTS, 0, NULL, &exists, err);
    if (rc < 0)
        return rc;
    bool has_table = strcmp(PQgetvalue(exists, 0, 0), "t") == 0;
    pd_db_result_free(exists);
    if (has_table && (rc = pd_db_query(db, SQL_APPLIED, 0, NULL, &applied, err)) < 0)
        return rc;

    for (size_t i = 0; i < set->count; i++) {
        const pd_migration_t *m = &set->items[i];
        int row = applied ? find_applied(applied, m->name) : -1;
        char sum[65];
        checksum_hex(m, sum);
        if (row < 0) {
            waiting++;
            if (out)
                fprintf(out, "pending  %s\n", m->name);
        } else if (!same_text(m, sum, PQgetvalue(applied, row, 1))) {
            waiting++;
            if (out)
                fprintf(out, "CHANGED  %s (applied %s, file edited since)\n", m->name,
                        PQgetvalue(applied, row, 2));
        } else if (out) {
            fprintf(out, "applied  %s (%s)\n", m->name, PQgetvalue(applied, row, 2));
        }
    }
    for (int r = 0; applied && r < PQntuples(applied); r++) {
        bool known = false;
        for (size_t i = 0; i < set->count && !known; i++)
            known = strcmp(set->items[i].name, PQgetvalue(applied, r, 0)) == 0;
        if (!known && out)
            fprintf(out, "unknown  %s (applied %s, not in this build)\n", PQgetvalue(applied, r, 0),
                    PQgetvalue(applied, r, 2));
    }
    pd_db_result_free(applied);
    if (pending)
        *pending = waiting;
    return PD_OK;
}
