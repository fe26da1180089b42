/*
 * The writer thread's job; see include/pd/writer.h.
 *
 * Design: a batch goes through two steps on its writer's thread.  First
 * what to write: pd_batch_pick_versions() keeps one record per workflow
 * (the latest version) in lock order and settles the others against it
 * (they are never detected); each kept record is detected, and its
 * signatures and characteristics are written as text into one buffer for
 * the whole batch, which the rows point into.  Then how to write it: the
 * store's one transaction, retried until it commits (src/db/store.c).
 * Detection runs once per batch, not once per attempt: a retry writes the
 * same rows.
 *
 * Threads: a pd_writer_t is created, used and destroyed by one writer
 * thread (a pd_pool worker).  It owns its store (and so its connection),
 * its detection, the text buffer and the rows, all reused from batch to
 * batch; it borrows the metrics, shared with the loop thread through their
 * atomic store counters.
 */
#include "pd/writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/buf.h"
#include "pd/detect.h"
#include "pd/jsonw.h"
#include "pd/log.h"

struct pd_writer {
    pd_writer_config_t cfg;
    char name[24]; /* "writer-2", for the logs */
    pd_store_t *store;
    pd_store_stats_t seen; /* the store's counters already added to the metrics */
    pd_detection_t det;
    pd_buf_t text;        /* the rows' signatures and characteristics */
    size_t *kept;         /* the records kept, one per workflow */
    pd_store_row_t *rows; /* what the store writes of each */
    size_t cap;           /* records kept and rows have room for */
};

/* Releases what a writer holds but its store. */
static void release_scratch(pd_writer_t *w)
{
    pd_detection_close(&w->det);
    pd_buf_close(&w->text);
    free(w->kept);
    free(w->rows);
}

int pd_writer_create(const pd_writer_config_t *cfg, int worker_id, pd_writer_t **out)
{
    pd_writer_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return PD_ENOMEM;
    w->cfg = *cfg;
    snprintf(w->name, sizeof(w->name), "writer-%d", worker_id);
    pd_detection_init(&w->det);
    int rc = pd_store_create(&cfg->store, &w->store);
    if (rc < 0) {
        release_scratch(w);
        free(w);
        return rc;
    }
    *out = w;
    return PD_OK;
}

void pd_writer_destroy(pd_writer_t *w)
{
    if (w == NULL)
        return;
    pd_store_destroy(w->store);
    release_scratch(w);
    free(w);
}

/* Makes room for a batch of count records. */
static int reserve(pd_writer_t *w, size_t count)
{
    if (count <= w->cap)
        return PD_OK;
    size_t *kept = realloc(w->kept, count * sizeof(*kept));
    if (kept != NULL)
        w->kept = kept;
    pd_store_row_t *rows = realloc(w->rows, count * sizeof(*rows));
    if (rows != NULL)
        w->rows = rows;
    if (kept == NULL || rows == NULL)
        return PD_ENOMEM;
    w->cap = count;
    return PD_OK;
}

/* Keeps one record per workflow and detects each into a row; *n gets their count. */
static int detect(pd_writer_t *w, pd_batch_t *batch, size_t *n, pd_error_t *err)
{
    if (reserve(w, batch->count) < 0)
        return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    *n = pd_batch_pick_versions(batch, w->kept);
    pd_buf_reset(&w->text);
    for (size_t i = 0; i < *n; i++) {
        const pd_record_t *r = &batch->records[w->kept[i]];
        if (pd_detect_record(r, &w->det) < 0)
            return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
        pd_store_row_t *row = &w->rows[i];
        *row = (pd_store_row_t){.record = w->kept[i], .n_signatures = w->det.n_patterns};
        row->sigs_off = w->text.len;
        for (int p = 0; p < w->det.n_patterns; p++) {
            if (p > 0)
                pd_buf_put(&w->text, " ", 1);
            pd_buf_puts(&w->text, w->det.patterns[p]);
        }
        row->sigs_len = w->text.len - row->sigs_off;
        row->chars_off = w->text.len;
        pd_jsonw_characteristics(&w->text, &w->det, r);
        row->chars_len = w->text.len - row->chars_off;
    }
    if (w->text.failed)
        return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    return PD_OK;
}

/* Detects, then writes; the batch holds the outcome. */
static int write_batch(pd_writer_t *w, pd_batch_t *batch)
{
    pd_error_t err = {0};
    size_t n = 0;
    if (batch->count == 0)
        return PD_OK;
    int rc = detect(w, batch, &n, &err);
    if (rc < 0)
        return pd_store_fail(w->store, batch, rc, &err);
    return pd_store_write(w->store, batch, w->rows, n, w->text.data);
}

/* Adds what the store counted since the last batch to the metrics, and logs the batch. */
static void report(pd_writer_t *w, const pd_batch_t *batch)
{
    const pd_store_stats_t *st = pd_store_stats(w->store);
    if (w->cfg.metrics != NULL)
        pd_metrics_add_store(w->cfg.metrics, st->db_errors - w->seen.db_errors,
                             st->reconnects - w->seen.reconnects, st->retries - w->seen.retries);
    if (w->cfg.log && st->reconnects != w->seen.reconnects)
        pd_log(PD_LOG_WARN, w->name, "reconnected to PostgreSQL (%llu reconnects so far)",
               (unsigned long long)st->reconnects);
    w->seen = *st;
    if (!w->cfg.log || batch->count == 0)
        return;
    if (batch->rc < 0)
        pd_log(PD_LOG_ERROR, w->name, "batch of %zu records (tenant %s) failed: %s", batch->count,
               batch->records[0].tenant_id, batch->err.message);
    else
        pd_log(PD_LOG_DEBUG, w->name, "batch of %zu records (tenant %s) committed in %.1f ms",
               batch->count, batch->records[0].tenant_id, batch->commit_ms);
}

int pd_writer_write(pd_writer_t *w, pd_batch_t *batch)
{
    write_batch(w, batch);
    report(w, batch);
    return batch->rc;
}

int pd_writer_init(void *worker_ctx, int worker_id, void **state)
{
    pd_writer_t *w = NULL;
    int rc = pd_writer_create(worker_ctx, worker_id, &w);
    *state = w;
    return rc;
}

void pd_writer_work(void *state, pd_job_t *job)
{
    pd_writer_write(state, pd_batch_of(job));
}

void pd_writer_fini(void *state)
{
    pd_writer_destroy(state);
}
