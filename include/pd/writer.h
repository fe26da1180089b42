/*
 * The writer: the worker step of `patternd ingest` and `patternd serve`
 * that turns a batch of validated records into rows, exactly once.
 *
 * Each writer thread owns one pd_writer_t: a pd_store_t (its own
 * PostgreSQL connection), a detection, and the buffers of one batch.  For
 * each batch it sets the in-batch duplicates aside, detects the distinct
 * records, has the store write them in one transaction, and leaves each
 * record's outcome in the batch (see pd_store_write()).  With
 * metrics it also adds the store's counters to them, and with `log` it logs
 * reconnects and each batch's fate under its name ("writer-2").
 *
 * Threads: everything here runs on the writer's own thread; the config
 * (and the metrics, whose store counters are atomics) is shared read-only.
 */
#ifndef PD_WRITER_H
#define PD_WRITER_H

#include <stdbool.h>

#include "pd/batch.h"
#include "pd/metrics.h"
#include "pd/pool.h"
#include "pd/store.h"

typedef struct pd_writer pd_writer_t;

typedef struct pd_writer_config {
    pd_store_config_t store; /* its conninfo is borrowed: it must outlive the writers */
    pd_metrics_t *metrics;   /* borrowed; NULL: none (ingest) */
    bool log;                /* log reconnects and every batch (serve) */
} pd_writer_config_t;

/*
 * A new writer for worker worker_id (it connects on its first batch); cfg is
 * copied.  Release with pd_writer_destroy().  Returns 0 or PD_ENOMEM.
 */
int pd_writer_create(const pd_writer_config_t *cfg, int worker_id, pd_writer_t **out);
void pd_writer_destroy(pd_writer_t *writer);

/*
 * Detects and writes the batch: every record's outcome, the batch's
 * total_patterns, new_patterns, attempts, commit_ms, rc and err are set.
 * Returns batch->rc.
 */
int pd_writer_write(pd_writer_t *writer, pd_batch_t *batch);

/*
 * The same, shaped as pd_pool_config_t's worker callbacks:
 *   .init = pd_writer_init, .work = pd_writer_work, .fini = pd_writer_fini,
 *   .worker_ctx = a pd_writer_config_t * that outlives the pool.
 * The jobs are pd_batch_t.
 */
int pd_writer_init(void *worker_ctx, int worker_id, void **state);
void pd_writer_work(void *state, pd_job_t *job);
void pd_writer_fini(void *state);

#endif
