/*
 * Worker pool; see include/pd/pool.h.
 *
 * Which thread runs what:
 *   loop thread  - pd_pool_create/submit/full/outstanding/close, on_async
 *                  (which calls cfg->done), on_closed
 *   workers      - worker_main: cfg->init, cfg->work, cfg->fini
 * Shared between them, under pool->lock: the job queue, the finished list
 * and the stopping flag.  `outstanding` is touched by the loop thread only.
 */
#include "pd/pool.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct worker {
    pd_pool_t *pool;
    int id;
    pthread_t thread;
    bool started;
} worker_t;

struct pd_pool {
    pd_pool_config_t cfg;
    uv_async_t async; /* workers -> loop: "jobs finished" */
    pthread_mutex_t lock;
    pthread_cond_t ready;  /* a job was queued, or stopping was set */
    pd_job_t *head, *tail; /* queued jobs, oldest first */
    size_t queued;
    pd_job_t *finished; /* finished jobs, newest first */
    bool stopping;
    size_t outstanding; /* loop thread only */
    worker_t *workers;
    void (*close_cb)(void *ctx);
};

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    pd_pool_t *pool = w->pool;
    void *state = NULL;
    int init_rc = pool->cfg.init
                      ? pool->cfg.init(pool->cfg.worker_ctx ? pool->cfg.worker_ctx : pool->cfg.ctx,
                                       w->id, &state)
                      : 0;

    for (;;) {
        pthread_mutex_lock(&pool->lock);
        while (pool->head == NULL && !pool->stopping)
            pthread_cond_wait(&pool->ready, &pool->lock);
        pd_job_t *job = pool->head;
        if (job == NULL) { /* stopping and drained */
            pthread_mutex_unlock(&pool->lock);
            break;
        }
        pool->head = job->next;
        if (pool->head == NULL)
            pool->tail = NULL;
        pool->queued--;
        pthread_mutex_unlock(&pool->lock);

        if (init_rc == 0)
            pool->cfg.work(state, job);
        /* A worker whose init failed still hands the job back; cfg->done sees it unworked. */

        pthread_mutex_lock(&pool->lock);
        job->next = pool->finished;
        pool->finished = job;
        pthread_mutex_unlock(&pool->lock);
        uv_async_send(&pool->async);
    }
    if (init_rc == 0 && pool->cfg.fini)
        pool->cfg.fini(state);
    return NULL;
}

/* Loop thread: passes every finished job to cfg->done, oldest first. */
static void on_async(uv_async_t *handle)
{
    pd_pool_t *pool = handle->data;
    pthread_mutex_lock(&pool->lock);
    pd_job_t *list = pool->finished;
    pool->finished = NULL;
    pthread_mutex_unlock(&pool->lock);

    pd_job_t *ordered = NULL; /* reverse into finishing order */
    while (list != NULL) {
        pd_job_t *next = list->next;
        list->next = ordered;
        ordered = list;
        list = next;
    }
    while (ordered != NULL) {
        pd_job_t *next = ordered->next;
        ordered->next = NULL;
        pool->outstanding--;
        pool->cfg.done(pool->cfg.ctx, ordered);
        ordered = next;
    }
}

int pd_pool_create(uv_loop_t *loop, const pd_pool_config_t *cfg, pd_pool_t **out)
{
    pd_pool_t *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return PD_ENOMEM;
    pool->cfg = *cfg;
    pool->workers = calloc((size_t)cfg->workers, sizeof(worker_t));
    if (pool->workers == NULL)
        goto fail_alloc;
    if (pthread_mutex_init(&pool->lock, NULL) != 0)
        goto fail_alloc;
    if (pthread_cond_init(&pool->ready, NULL) != 0)
        goto fail_mutex;
    if (uv_async_init(loop, &pool->async, on_async) != 0)
        goto fail_cond;
    pool->async.data = pool;

    for (int i = 0; i < cfg->workers; i++) {
        worker_t *w = &pool->workers[i];
        w->pool = pool;
        w->id = i + 1;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            break;
        w->started = true;
    }
    if (!pool->workers[0].started) {
        /* No thread at all: nothing could ever run a job. */
        uv_close((uv_handle_t *)&pool->async, NULL);
        goto fail_cond;
    }
    *out = pool;
    return PD_OK;

fail_cond:
    pthread_cond_destroy(&pool->ready);
fail_mutex:
    pthread_mutex_destroy(&pool->lock);
fail_alloc:
    free(pool->workers);
    free(pool);
    return PD_ENOMEM;
}

void pd_pool_submit(pd_pool_t *pool, pd_job_t *job)
{
    job->next = NULL;
    pool->outstanding++;
    pthread_mutex_lock(&pool->lock);
    if (pool->tail)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    pool->queued++;
    pthread_cond_signal(&pool->ready);
    pthread_mutex_unlock(&pool->lock);
}

void pd_pool_submit_first(pd_pool_t *pool, pd_job_t *job)
{
    pool->outstanding++;
    pthread_mutex_lock(&pool->lock);
    job->next = pool->head;
    pool->head = job;
    if (pool->tail == NULL)
        pool->tail = job;
    pool->queued++;
    pthread_cond_signal(&pool->ready);
    pthread_mutex_unlock(&pool->lock);
}

bool pd_pool_full(const pd_pool_t *pool)
{
    /* outstanding counts queued and running jobs; running ones are bounded by the workers. */
    return pool->outstanding >= pool->cfg.queue_capacity + (size_t)pool->cfg.workers;
}

size_t pd_pool_outstanding(const pd_pool_t *pool)
{
    return pool->outstanding;
}

size_t pd_pool_queued(pd_pool_t *pool)
{
    pthread_mutex_lock(&pool->lock);
    size_t n = pool->queued;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

static void on_closed(uv_handle_t *handle)
{
    pd_pool_t *pool = handle->data;
    void (*cb)(void *) = pool->close_cb;
    void *ctx = pool->cfg.ctx;
    pthread_cond_destroy(&pool->ready);
    pthread_mutex_destroy(&pool->lock);
    free(pool->workers);
    free(pool);
    if (cb)
        cb(ctx);
}

void pd_pool_close(pd_pool_t *pool, void (*close_cb)(void *ctx))
{
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->ready);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->cfg.workers; i++) {
        if (pool->workers[i].started)
            pthread_join(pool->workers[i].thread, NULL);
    }
    on_async(&pool->async); /* jobs finished after the last wake-up */
    pool->close_cb = close_cb;
    uv_close((uv_handle_t *)&pool->async, on_closed);
}
