/*
 * The HTTP ingestion service behind `patternd serve`: its state and the
 * request in flight (a call), shared by the stages of a request:
 *
 *   http/server.c   loop thread: connections, parsing, limits
 *   http/router.c   loop thread: route, authenticate
 *   http/keyring.c  loop thread: the key table, reloaded by a reader
 *   worker/reader.c reader threads: key table loads, pattern reads, readiness
 *   http/ingest.c   loop thread: body -> one batch of the key's tenant
 *   worker/writer.c writer threads: detect, then store, in one transaction
 *   http/answers.c  loop thread: the JSON answers and the metrics they count
 *
 * A call belongs to one thread at a time: the loop thread, or the pool
 * that holds its job.  It is released by exactly one answer.
 */
#ifndef PD_SERVICE_H
#define PD_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pd/admission.h"
#include "pd/auth.h"
#include "pd/batch.h"
#include "pd/http.h"
#include "pd/keyring.h"
#include "pd/keys.h"
#include "pd/metrics.h"
#include "pd/pool.h"

#define PD_TOP_DEFAULT 20
#define PD_TOP_MAX 10000

/* Rejections whose field and reason an answer spells out; the rest are counted. */
#define PD_RESULTS_DETAILED 1000

typedef struct pd_service {
    uv_loop_t *loop;
    pd_http_server_t *http;
    pd_pool_t *writers, *readers;
    pd_metrics_t *metrics;
    pd_admission_t *admission; /* POST requests in flight, in all and per tenant */
    pd_keyring_t keyring;      /* the key table, its reloads, and requests waiting for one */
    const char *conninfo;
    size_t queue;       /* the writers' queue bound, for the metrics */
    size_t max_record;  /* longest record accepted */
    size_t max_records; /* records in one request */
    size_t max_body;    /* bytes of one body, after decompression */
    bool draining;
    /*
     * The database was reached, its schema is current and the role does not
     * bypass row-level security (or --allow-rls-bypass).  Checked once before
     * serving; when the database could not be reached at start, the key
     * ring's loads check it until it answers, and until then /readyz and
     * /v1 requests get 503.
     */
    bool db_checked;
    bool allow_bypass;
    /*
     * Readers (uv_hrtime in ms): until when a failed connect makes a reader
     * without a connection answer at once, and when one last connected.
     */
    _Atomic uint64_t db_down_until_ms, db_up_at_ms;
} pd_service_t;

typedef enum pd_read_kind { PD_READ_KEYS, PD_READ_PATTERNS, PD_READ_READY } pd_read_kind_t;

/*
 * A reader's job: the loop thread fills the inputs, a reader thread the
 * outputs.  PD_READ_KEYS is the key ring's own job (not a call's).
 */
typedef struct pd_read_job {
    pd_job_t job; /* first: the pool's link */
    pd_read_kind_t kind;
    pd_key_t key; /* PD_READ_PATTERNS: the request's key, checked on the loop thread */
    long top;
    bool check_db; /* PD_READ_KEYS: check what db_checked says first */
    /* Outputs. */
    int rc;
    bool ready;
    char *body; /* PD_READ_PATTERNS: the JSON answer, malloc'd */
    size_t len;
    pd_key_entry_t *keys; /* PD_READ_KEYS: every key (pd_keys_load_all) */
    size_t n_keys;
    pd_error_t err;
} pd_read_job_t;

/* What became of one record of a POST body, in body order. */
typedef struct pd_result {
    long line;   /* NDJSON line; 0 in a JSON array */
    long record; /* index in the batch, or -1 when rejected */
    char field[PD_FIELD_MAX];
    char *error; /* why it was rejected (malloc'd); NULL past PD_RESULTS_DETAILED */
} pd_result_t;

typedef struct pd_upload pd_upload_t; /* http/ingest.c: a body being read */

/* One request that waits for other threads. */
typedef struct pd_call {
    pd_read_job_t rj; /* first: a finished reader job converts back to its call */
    pd_service_t *sv;
    pd_http_request_t *req;
    const char *route; /* a metric label (static storage) */
    uint64_t started_ns;
    /* Waiting for the key table to be reloaded (http/keyring.c). */
    struct pd_call *next_waiting;
    uint64_t wait_after;                   /* resolved by a load started after this many */
    void (*authorized)(struct pd_call *c); /* what follows a valid key */
    /* POST /v1/workflows */
    bool admitted; /* holds a place in sv->admission */
    pd_upload_t *upload;
    pd_result_t *results;
    size_t n_results, cap_results;
    pd_batch_t *batch;
    long rejected;
} pd_call_t;

/* http/router.c, loop thread: the pd_http_config_t callbacks of the service. */
void pd_service_on_request(void *ctx, pd_http_request_t *req);
void pd_service_on_refused(void *ctx, int status);
/* The operator's metrics address (--metrics-listen): GET /metrics with the tenant series. */
void pd_service_on_metrics_request(void *ctx, pd_http_request_t *req);
/* The readers' done callback. */
void pd_service_on_read_done(void *ctx, pd_job_t *job);

/*
 * http/ingest.c, loop thread: the key is good; admit the request, read and
 * parse its body as it arrives, and hand the batch to the writers.
 */
void pd_service_ingest(pd_call_t *call);
/* Releases what pd_service_ingest() holds for the call (its place, its body state). */
void pd_service_ingest_release(pd_call_t *call);
/* The writers' done callback: answers the request whose batch finished. */
void pd_service_on_batch_done(void *ctx, pd_job_t *job);

/* http/answers.c, loop thread. */
/* Answers with a JSON body, counting the request in the metrics; does not free the call. */
void pd_call_respond(pd_call_t *call, int status, const char *extra, const char *body, size_t len);
/* Answers {"error": message} (with the headers its status needs) and frees the call. */
void pd_call_fail(pd_call_t *call, int status, const char *message);
/* Answers a POST /v1/workflows after its batch finished (or when it had none) and frees it. */
void pd_call_answer_batch(pd_call_t *call);
void pd_call_free(pd_call_t *call);

/* worker/reader.c: the readers' pd_pool_config_t callbacks (ctx: the pd_service_t). */
int pd_reader_init(void *ctx, int worker_id, void **state);
void pd_reader_work(void *state, pd_job_t *job);
void pd_reader_fini(void *state);

#endif
