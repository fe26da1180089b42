/*
 * The worker pool and concurrent writers: jobs come back exactly once on the
 * loop thread, and threads racing to record the same new pattern, or the same
 * workflow, leave one row and exact counts.  Also run under ThreadSanitizer.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/batch.h"
#include "pd/pool.h"
#include "pd/store.h"
#include "support.h"

typedef struct counted_job {
    pd_job_t job;
    int value;
    int worked; /* set by the worker that ran it */
} counted_job_t;

typedef struct pool_test {
    pd_pool_t *pool;
    long done_sum;
    int done_count;
    int submitted;
    counted_job_t jobs[1000];
    atomic_int inits;
} pool_test_t;

static int job_init(void *ctx, int worker_id, void **state)
{
    pool_test_t *t = ctx;
    atomic_fetch_add(&t->inits, 1);
    *state = (void *)(long)worker_id;
    return 0;
}

static void job_work(void *state, pd_job_t *job)
{
    counted_job_t *j = (counted_job_t *)job;
    j->worked = (int)(long)state;
    j->value *= 2;
}

static void submit_more(pool_test_t *t)
{
    while (t->submitted < 1000 && !pd_pool_full(t->pool)) {
        t->jobs[t->submitted].value = t->submitted;
        pd_pool_submit(t->pool, &t->jobs[t->submitted].job);
        t->submitted++;
    }
}

static void job_done(void *ctx, pd_job_t *job)
{
    pool_test_t *t = ctx;
    counted_job_t *j = (counted_job_t *)job;
    cr_assert_gt(j->worked, 0, "done before a worker ran the job");
    t->done_sum += j->value;
    t->done_count++;
    submit_more(t);
    if (t->submitted == 1000 && pd_pool_outstanding(t->pool) == 0)
        pd_pool_close(t->pool, NULL);
}

Test(pool, every_job_runs_once_and_comes_back_on_the_loop)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    pool_test_t *t = calloc(1, sizeof(*t));
    pd_pool_config_t cfg = {.workers = 4,
                            .queue_capacity = 3,
                            .init = job_init,
                            .work = job_work,
                            .done = job_done,
                            .ctx = t};
    cr_assert_eq(pd_pool_create(&loop, &cfg, &t->pool), 0);
    submit_more(t);
    cr_assert(pd_pool_full(t->pool), "the bound must stop submissions");
    cr_assert_eq(t->submitted, 7, "queue 3 + 4 workers");
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(t->done_count, 1000);
    cr_assert_eq(t->done_sum, 999L * 1000); /* 2 * (0 + ... + 999) */
    cr_assert_eq(atomic_load(&t->inits), 4);
    cr_assert_eq(uv_loop_close(&loop), 0);
    free(t);
}

/* --- concurrent writers against PostgreSQL ------------------------------- */

enum { THREADS = 16 };

typedef struct racer {
    const char *url;
    pthread_barrier_t *start;
    char workflow_id[32];
    long tokens;
    pd_outcome_t outcome;
    long new_patterns;
    int rc;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    pd_store_config_t cfg = {.conninfo = r->url};
    pd_store_t *store;
    pd_batch_t *batch;
    pd_record_t rec;
    pd_error_t err;
    char line[256];
    snprintf(line, sizeof(line),
             "{\"workflow_id\": \"%s\", \"tenant_id\": \"racers\", \"nl_input\": \"Run pytest on "
             "the backend\", \"total_tokens\": %ld, \"duration_seconds\": 10}",
             r->workflow_id, r->tokens);
    pd_store_create(&cfg, &store);
    pd_batch_create(1, &batch);
    r->rc = pd_record_parse(line, strlen(line), 1, NULL, &rec, &err);
    if (r->rc == 0) {
        pd_batch_add(batch, &rec);
        pthread_barrier_wait(r->start);
        r->rc = pd_store_write(store, batch);
        r->outcome = batch->outcomes[0];
        r->new_patterns = batch->new_patterns;
    }
    pd_batch_destroy(batch);
    pd_store_destroy(store);
    return NULL;
}

/* Starts THREADS writers together; same_id makes them all write one workflow. */
static void run_race(const char *url, bool same_id, racer_t *racers)
{
    pthread_barrier_t start;
    pthread_t threads[THREADS];
    pthread_barrier_init(&start, NULL, THREADS);
    for (int i = 0; i < THREADS; i++) {
        racers[i] = (racer_t){.url = url, .start = &start, .tokens = 1000 + i};
        snprintf(racers[i].workflow_id, sizeof(racers[i].workflow_id), "wf-%d", same_id ? 0 : i);
        pthread_create(&threads[i], NULL, race, &racers[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start);
}

Test(pool, sixteen_threads_creating_one_pattern_leave_one_row)
{
    char *url = pdt_new_migrated_database();
    racer_t racers[THREADS];
    run_race(url, false, racers);
    long new_patterns = 0;
    for (int i = 0; i < THREADS; i++) {
        cr_assert_eq(racers[i].rc, 0, "writer %d failed", i);
        cr_assert_eq(racers[i].outcome, PD_OUTCOME_PROCESSED);
        new_patterns += racers[i].new_patterns;
    }
    cr_assert_eq(new_patterns, 1, "exactly one writer creates the pattern");
    char *rows = pdt_sql_value(url, "SELECT count(*) || ' ' || sum(occurrence_count) || ' ' || "
                                    "sum(sum_tokens) || ' ' || sum(avg_tokens_with_llm) "
                                    "FROM operation_patterns");
    /* 16 occurrences, tokens 1000..1015: sum 16120, average 1007. */
    cr_assert_str_eq(rows, "1 16 16120 1007");
    char *occ = pdt_sql_value(url, "SELECT count(*) FROM pattern_occurrences");
    cr_assert_str_eq(occ, "16");
    free(occ);
    free(rows);
    free(url);
}

Test(pool, sixteen_threads_writing_one_workflow_count_it_once)
{
    char *url = pdt_new_migrated_database();
    racer_t racers[THREADS];
    run_race(url, true, racers);
    int processed = 0, duplicates = 0;
    for (int i = 0; i < THREADS; i++) {
        cr_assert_eq(racers[i].rc, 0, "writer %d failed", i);
        processed += racers[i].outcome == PD_OUTCOME_PROCESSED;
        duplicates += racers[i].outcome == PD_OUTCOME_DUPLICATE;
    }
    cr_assert_eq(processed, 1);
    cr_assert_eq(duplicates, THREADS - 1);
    char *rows = pdt_sql_value(url, "SELECT count(*) || ' ' || sum(occurrence_count) FROM "
                                    "operation_patterns");
    cr_assert_str_eq(rows, "1 1");
    free(rows);
    free(url);
}
