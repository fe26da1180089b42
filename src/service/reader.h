/*
 * Private to src/service/: the service's reader threads, for the short
 * reads that must never wait behind batch writes and that the loop thread
 * must never make itself: every API key (for the key ring), readiness, and
 * the answers of the read and review endpoints (api.h), whose writes (a
 * review, a thresholds change) are short transactions of one tenant.
 *
 * A job is filled on the loop thread, run on a reader thread, and handed
 * back to the loop thread, where its done() runs.  Only one thread touches
 * a job at a time.
 */
#ifndef PD_SERVICE_READER_H
#define PD_SERVICE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pd/error.h"
#include "pd/keys.h"
#include "pd/pool.h"

typedef struct pd__api_request pd__api_request_t; /* api.h */

/*
 * What the reader threads share.  Set before they start and then only
 * read, but for the two times, which they keep (in uv_hrtime ms): until
 * when a failed connect makes a reader without a connection answer at
 * once, and when one last connected.
 */
typedef struct pd__reader_shared {
    const char *conninfo; /* borrowed */
    bool allow_bypass;    /* serve even as a role that bypasses row-level security */
    _Atomic uint64_t db_down_until_ms, db_up_at_ms;
} pd__reader_shared_t;

typedef enum pd__reader_kind {
    PD__READER_KEYS,  /* every API key (pd_keys_load_all) */
    PD__READER_API,   /* an endpoint's answer (pd__api_answer) */
    PD__READER_READY, /* PostgreSQL answers and every built-in migration is applied */
} pd__reader_kind_t;

typedef struct pd__reader_job {
    pd_job_t job; /* first: the pool's link */
    pd__reader_kind_t kind;
    /* Inputs, from the loop thread. */
    const pd__api_request_t *api; /* API: borrowed until done() */
    bool check_db;                /* KEYS: first check what READY checks, and the role */
    /* Loop thread: the job is finished.  owner is the submitter's. */
    void (*done)(struct pd__reader_job *job);
    void *owner;
    /* Outputs, from the reader thread. */
    int rc;
    bool ready;
    int status; /* API: the answer's HTTP status */
    char *body; /* API: the answer's JSON body, malloc'd; the submitter frees it */
    size_t len;
    pd_key_entry_t *keys; /* KEYS: released with pd_keys_entries_free() by the submitter */
    size_t n_keys;
    pd_error_t err;
} pd__reader_job_t;

/*
 * The readers' pd_pool_config_t callbacks: .init = pd__reader_init (with
 * .worker_ctx a pd__reader_shared_t that outlives the pool), .work, .fini,
 * and .done = pd__reader_done, which runs the job's own done().
 */
int pd__reader_init(void *shared, int worker_id, void **state);
void pd__reader_work(void *state, pd_job_t *job);
void pd__reader_fini(void *state);
void pd__reader_done(void *ctx, pd_job_t *job);

#endif
