/*
 * The service's reader threads; see reader.h.
 *
 * Threads: each reader thread owns one pd_db_t (connected on first use) and
 * runs one job at a time: load every API key (for the key ring,
 * keyring.c), answer a read or review endpoint (api.c), or check readiness
 * (PostgreSQL answers and every built-in migration is applied).  A job that
 * met a lost connection is run once more on a fresh one.  Reads are
 * idempotent; so are the writes, as far as their answers allow: a review
 * carries the status it expects, so one whose COMMIT was lost but happened
 * is refused the second time (409, reporting the status it set), never
 * applied twice, and thresholds are set to the same values again.
 * pd__reader_done() runs on the loop thread.
 */
#include "reader.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "api.h"
#include "pd/db.h"
#include "pd/log.h"
#include "pd/migrate.h"

/* After a failed connect, readers without a connection answer at once for this long. */
#define DOWN_RETRY_MS 1000

typedef struct reader {
    pd__reader_shared_t *shared;
    char name[24];
    pd_db_t *db;
} reader_t;

int pd__reader_init(void *shared, int worker_id, void **state)
{
    reader_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return PD_ENOMEM;
    r->shared = shared;
    snprintf(r->name, sizeof(r->name), "reader-%d", worker_id);
    *state = r;
    return PD_OK;
}

void pd__reader_fini(void *state)
{
    reader_t *r = state;
    pd_db_destroy(r->db);
    free(r);
}

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* Refuses a role that bypasses row-level security, unless the service allows it. */
static int check_role(reader_t *r, pd__reader_job_t *j)
{
    bool bypass = false;
    char role[64] = "";
    int rc = pd_db_role_bypasses_rls(r->db, &bypass, role, sizeof(role), &j->err);
    if (rc < 0 || !bypass || r->shared->allow_bypass)
        return rc;
    return pd_error_set(&j->err, PD_EDB, 0, "",
                        "role %s bypasses row-level security: serving nothing until the "
                        "service connects as a member of patternd_service",
                        role);
}

static int check_ready(reader_t *r, pd__reader_job_t *j)
{
    pd_migration_set_t set;
    size_t pending = 0;
    pd_migration_set_builtin(&set);
    int rc = pd_migrate_status(r->db, &set, NULL, &pending, &j->err);
    if (rc == PD_OK && pending > 0)
        rc = pd_error_set(&j->err, PD_EDB, 0, "", "%zu migrations pending", pending);
    if (rc == PD_OK && j->check_db)
        rc = check_role(r, j);
    j->ready = rc == PD_OK;
    return rc == PD_ECONN ? rc : PD_OK; /* not ready is an answer, not a failure */
}

static int attempt(reader_t *r, pd__reader_job_t *j)
{
    int rc;
    if (r->db == NULL) {
        uint64_t started = now_ms();
        if ((rc = pd_db_connect(r->shared->conninfo, &r->db, &j->err)) < 0) {
            /* Unless another reader connected since this attempt began: that one knows better. */
            if (started >= atomic_load(&r->shared->db_up_at_ms))
                atomic_store(&r->shared->db_down_until_ms, now_ms() + DOWN_RETRY_MS);
            return rc;
        }
        atomic_store(&r->shared->db_up_at_ms, now_ms());
        atomic_store(&r->shared->db_down_until_ms, 0);
    }
    if (j->kind == PD__READER_READY)
        return check_ready(r, j);
    if (j->kind == PD__READER_KEYS) {
        if (j->check_db && ((rc = check_ready(r, j)) < 0 || !j->ready))
            return rc < 0 ? rc : PD_EDB;
        return pd_keys_load_all(r->db, &j->keys, &j->n_keys, &j->err);
    }
    return pd__api_answer(r->db, j->api, &j->status, &j->body, &j->len, &j->err);
}

void pd__reader_work(void *state, pd_job_t *job)
{
    reader_t *r = state;
    pd__reader_job_t *j = (pd__reader_job_t *)job;
    /*
     * While another reader has just failed to connect, a reader without a
     * connection answers at once: a database that does not answer costs
     * one connect timeout, not one per queued read.
     */
    if (r->db == NULL && now_ms() < atomic_load(&r->shared->db_down_until_ms)) {
        j->rc = pd_error_set(&j->err, PD_ECONN, 0, "", "the database is unavailable");
        return;
    }
    for (int tries = 0; tries < 2; tries++) {
        bool had_connection = r->db != NULL;
        j->rc = attempt(r, j);
        if (j->rc != PD_ECONN)
            break;
        pd_db_destroy(r->db);
        r->db = NULL;
        if (!had_connection)
            break; /* the connect itself failed: a lost connection is what a retry is for */
    }
    if (j->rc < 0)
        pd_log(PD_LOG_WARN, r->name, "%s", j->err.message);
    else if (j->kind == PD__READER_READY && !j->ready)
        pd_log(PD_LOG_WARN, r->name, "not ready: %s", j->err.message);
}

void pd__reader_done(void *ctx, pd_job_t *job)
{
    (void)ctx;
    pd__reader_job_t *j = (pd__reader_job_t *)job; /* the pool's link is the job's first member */
    j->done(j);
}
