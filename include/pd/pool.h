/*
 * A fixed pool of worker threads fed through one bounded queue, reporting
 * back to a libuv loop.
 *
 * Threads: pd_pool_create(), pd_pool_submit(), pd_pool_full() and
 * pd_pool_close() are called on the loop thread only.  Each worker runs
 * cfg->init once (to open its own resources, e.g. a database connection),
 * then cfg->work for each job it takes, then cfg->fini.  Finished jobs go
 * back to the loop through uv_async_send(), the one thread-safe door into
 * libuv, and cfg->done runs for each of them on the loop thread.  The
 * queue, the finished list and the counters are the only shared state.
 */
#ifndef PD_POOL_H
#define PD_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "pd/error.h"

typedef struct pd_pool pd_pool_t;

/* A unit of work; embed it in your own struct. */
typedef struct pd_job {
    struct pd_job *next; /* owned by the pool while queued */
} pd_job_t;

typedef struct pd_pool_config {
    int workers;           /* threads, >= 1 */
    size_t queue_capacity; /* jobs waiting for a worker before the pool is "full" */
    /* Worker thread: opens the worker's state; a non-zero return stops that worker. */
    int (*init)(void *ctx, int worker_id, void **state);
    /* Worker thread: does one job. */
    void (*work)(void *state, pd_job_t *job);
    /* Worker thread: releases the state. */
    void (*fini)(void *state);
    /* Loop thread: a job is finished; the pool no longer touches it. */
    void (*done)(void *ctx, pd_job_t *job);
    void *ctx;        /* for done and the close callback */
    void *worker_ctx; /* for init; NULL: ctx (read by the worker threads, so never changed) */
} pd_pool_config_t;

/* Starts the workers.  *out is released by pd_pool_close(). */
int pd_pool_create(uv_loop_t *loop, const pd_pool_config_t *cfg, pd_pool_t **out);

/*
 * Queues a job.  Always accepts it; callers keep to the bound by asking
 * pd_pool_full() first, so the bound is never exceeded by more than what one
 * read produces.
 */
void pd_pool_submit(pd_pool_t *pool, pd_job_t *job);

/*
 * Queues a job ahead of every waiting one: for work that must not wait
 * behind a backlog that is not its own (a tenant with nothing else in
 * flight, see http/ingest.c).
 */
void pd_pool_submit_first(pd_pool_t *pool, pd_job_t *job);

/* True when queue_capacity jobs are waiting for a worker. */
bool pd_pool_full(const pd_pool_t *pool);

/* Jobs submitted and not yet passed to cfg->done. */
size_t pd_pool_outstanding(const pd_pool_t *pool);

/* Jobs waiting in the queue (for metrics). */
size_t pd_pool_queued(pd_pool_t *pool);

/*
 * Lets the workers finish the queued jobs, joins them, and closes the async
 * handle; cfg->done has run for every job when close_cb runs.  Blocks the
 * loop thread while the workers finish, so call it once nothing is pending.
 */
void pd_pool_close(pd_pool_t *pool, void (*close_cb)(void *ctx));

#endif
