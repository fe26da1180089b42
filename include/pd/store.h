/*
 * Writing batches to PostgreSQL exactly once (SPEC §3).
 *
 * A pd_store_t is one worker's connection and everything it needs to write:
 * it is created and used by one thread only.  The writer (include/pd/
 * writer.h) first calls pd_store_distinct() to put the batch's records into
 * lock order and set its duplicates aside, detects the distinct ones, and
 * hands them to pd_store_write(), which writes them in one transaction and
 * retries that transaction (after a deadlock, a serialization failure, or a
 * lost connection, reconnecting with backoff and jitter) until it commits
 * or the retry budget is spent.  A retry never counts anything twice.
 */
#ifndef PD_STORE_H
#define PD_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "pd/batch.h"
#include "pd/detect.h"
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

/* One distinct record of a batch and what detection found in it. */
typedef struct pd_store_item {
    size_t record; /* index in batch->records */
    int n_patterns;
    char patterns[PD_MAX_PATTERNS][PD_SIGNATURE_MAX]; /* signatures, as detected */
    size_t chars_off, chars_len; /* its characteristics JSON, in the `chars` text */
    bool is_new;                 /* set by pd_store_write(): first recorded now */
} pd_store_item_t;

/*
 * Fills items (room for batch->count) with the batch's distinct records in
 * lock order (workflow_id in byte order), the first in input order of each
 * workflow_id, and marks every other one PD_OUTCOME_DUPLICATE.  Sets only
 * .record of each item; returns how many there are.
 */
size_t pd_store_distinct(pd_batch_t *batch, pd_store_item_t *items);

/*
 * Writes the batch: items are its distinct records as pd_store_distinct()
 * ordered them, their detection filled in, chars the text their chars_off
 * and chars_len point into (all borrowed for the call).  Sets each record's
 * outcome, total_patterns, new_patterns, attempts and commit_ms.  Returns 0
 * when the batch committed (or had already committed before a lost
 * connection), else the error, as pd_store_fail() leaves it.
 */
int pd_store_write(pd_store_t *store, pd_batch_t *batch, pd_store_item_t *items, size_t n_items,
                   const char *chars);

/*
 * Gives the batch up: keeps rc and err (NULL: "out of memory" for
 * PD_ENOMEM) in batch->rc and batch->err, marks every record
 * PD_OUTCOME_ERROR (nothing of it was committed, its in-batch duplicates
 * included), counts it in the store's db_errors, and returns rc.
 */
int pd_store_fail(pd_store_t *store, pd_batch_t *batch, int rc, const pd_error_t *err);

const pd_store_stats_t *pd_store_stats(const pd_store_t *store);

#endif
