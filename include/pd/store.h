/*
 * Writing batches to PostgreSQL exactly once (SPEC §3).
 *
 * A pd_store_t is one worker's connection and everything it needs to write:
 * it is created and used by one thread only.  pd_store_write() detects the
 * batch's records, writes them in one transaction, and retries that
 * transaction (after a deadlock, a serialization failure, or a lost
 * connection, reconnecting with backoff and jitter) until it commits or the
 * retry budget is spent.  A retry never counts anything twice.
 */
#ifndef PD_STORE_H
#define PD_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "pd/batch.h"
#include "pd/error.h"

typedef struct pd_store pd_store_t;

typedef struct pd_store_config {
    const char *conninfo; /* borrowed; must outlive the store */
    bool async_commit;    /* SET synchronous_commit = off (not durable on a crash) */
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
 * Writes the batch: sets each record's outcome, total_patterns,
 * new_patterns, attempts and commit_ms.  Returns 0 when the batch committed
 * (or had already committed before a lost connection), else the error, also
 * kept in batch->rc and batch->err, with every pending record marked
 * PD_OUTCOME_ERROR.
 */
int pd_store_write(pd_store_t *store, pd_batch_t *batch);

const pd_store_stats_t *pd_store_stats(const pd_store_t *store);

#endif
