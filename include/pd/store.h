/*
 * Writing batches to PostgreSQL exactly once, latest version first
 * (docs/spec.md §3).
 *
 * A pd_store_t is one writer's connection and what it needs to write: it is
 * created and used by one thread only.  The writer (include/pd/writer.h)
 * keeps one record per workflow of a batch (pd_batch_pick_versions), detects
 * them, and hands them to pd_store_write() as rows, which writes them in one
 * transaction and retries that transaction (after a deadlock, a
 * serialization failure, a race on a new workflow, or a lost connection,
 * reconnecting with backoff and jitter) until it commits or the retry budget
 * is spent.  A retry never counts anything twice.
 */
#ifndef PD_STORE_H
#define PD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pd/batch.h"
#include "pd/error.h"

typedef struct pd_store pd_store_t;

typedef struct pd_store_config {
    const char *conninfo; /* borrowed; must outlive the store */
    bool async_commit;    /* SET LOCAL synchronous_commit = off (not durable on a crash) */
    int retry_budget_ms;  /* give a batch up after retrying this long (default 120000) */
} pd_store_config_t;

/* Counters a store keeps; read by its own thread, or after it stopped. */
typedef struct pd_store_stats {
    uint64_t reconnects;
    uint64_t retries;
    uint64_t db_errors;
} pd_store_stats_t;

/* Creates a store; it connects on first use.  Release with pd_store_destroy(). */
int pd_store_create(const pd_store_config_t *cfg, pd_store_t **out);
void pd_store_destroy(pd_store_t *store);

/*
 * One workflow to write: the batch's record kept for it and what detection
 * found, as text in the buffer the caller passes beside the rows.
 */
typedef struct pd_store_row {
    size_t record;               /* index in batch->records */
    int n_signatures;            /* 0 to PD_MAX_PATTERNS */
    size_t sigs_off, sigs_len;   /* the signatures, in detected order, joined by spaces */
    size_t chars_off, chars_len; /* the characteristics JSON (unused without a signature) */
} pd_store_row_t;

/*
 * Writes rows[0..n) of batch, in one transaction of the batch's tenant:
 * every record of a batch has the same tenant_id, and the rows are distinct
 * workflows in lock order (workflow_id in byte order), as
 * pd_batch_pick_versions() leaves them; text holds what their offsets point
 * at (all borrowed for the call).  Sets each row's record's outcome, and
 * the batch's total_patterns, new_patterns, attempts and commit_ms.
 * Returns 0 when the batch committed (or had committed before a lost
 * connection), else the error, as pd_store_fail() leaves it.
 */
int pd_store_write(pd_store_t *store, pd_batch_t *batch, const pd_store_row_t *rows, size_t n,
                   const char *text);

/*
 * Gives the batch up: keeps rc and err (NULL: "out of memory" for
 * PD_ENOMEM) in batch->rc and batch->err, marks every record
 * PD_OUTCOME_ERROR (nothing of it was committed, the records settled before
 * the write included), counts it in the store's db_errors, and returns rc.
 */
int pd_store_fail(pd_store_t *store, pd_batch_t *batch, int rc, const pd_error_t *err);

const pd_store_stats_t *pd_store_stats(const pd_store_t *store);

#endif
