/*
 * The service's reader threads: the short reads that must never wait
 * behind batch writes, and that the loop thread must never make itself.
 *
 * Threads: each reader thread owns one pd_db_t (connected on first use) and
 * runs one job at a time: check an API key (under its tenant), read that
 * tenant's patterns as the JSON answer, or check readiness (PostgreSQL
 * answers and every built-in migration is applied).  Reads are idempotent,
 * so a lost connection is retried once on a fresh one.
 */
#include <stdio.h>
#include <stdlib.h>

#include "pd/db.h"
#include "pd/log.h"
#include "pd/migrate.h"
#include "pd/patterns.h"
#include "pd/service.h"

typedef struct reader {
    const pd_service_t *sv;
    char name[24];
    pd_db_t *db;
} reader_t;

int pd_reader_init(void *ctx, int worker_id, void **state)
{
    reader_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return PD_ENOMEM;
    r->sv = ctx;
    snprintf(r->name, sizeof(r->name), "reader-%d", worker_id);
    *state = r;
    return PD_OK;
}

void pd_reader_fini(void *state)
{
    reader_t *r = state;
    pd_db_destroy(r->db);
    free(r);
}

static int check_ready(reader_t *r, pd_read_job_t *j)
{
    pd_migration_set_t set;
    size_t pending = 0;
    pd_migration_set_builtin(&set);
    int rc = pd_migrate_status(r->db, &set, NULL, &pending, &j->err);
    j->ready = rc == PD_OK && pending == 0;
    if (rc == PD_OK && pending > 0)
        pd_error_set(&j->err, PD_EDB, 0, "", "%zu migrations pending", pending);
    return rc;
}

static int attempt(reader_t *r, pd_read_job_t *j)
{
    int rc;
    if (r->db == NULL && (rc = pd_db_connect(r->sv->conninfo, &r->db, &j->err)) < 0)
        return rc;
    if (j->kind == PD_READ_READY)
        return check_ready(r, j);
    if (j->verified) {
        j->valid = true; /* from the service's cache of verified keys */
    } else {
        rc = pd_keys_verify(r->db, &j->key, &j->valid, &j->err);
        if (rc < 0 || !j->valid || j->kind == PD_READ_AUTH)
            return rc;
    }
    return pd_patterns_read_tenant_json(r->db, j->key.tenant, j->top, &j->body, &j->len, &j->err);
}

void pd_reader_work(void *state, pd_job_t *job)
{
    reader_t *r = state;
    pd_read_job_t *j = (pd_read_job_t *)job;
    for (int tries = 0; tries < 2; tries++) {
        j->rc = attempt(r, j);
        if (j->rc != PD_ECONN)
            break;
        pd_db_destroy(r->db);
        r->db = NULL;
    }
    if (j->rc < 0)
        pd_log(PD_LOG_WARN, r->name, "%s", j->err.message);
}
