/*
 * Stages: pool and worker (src/pool, src/db/store.c).  The worker pool and
 * concurrent writers: jobs come back exactly once on the loop thread, and
 * threads racing to record the same new pattern, the same workflow, or
 * versions of one workflow in any order, leave one row and exact counts; an
 * ingest with many workers and small batches runs clean.
 *
 * A plain program rather than Criterion tests, because it also runs under
 * ThreadSanitizer, and Criterion's runtime cannot start under TSan (its
 * fixed-address arena collides with TSan's shadow memory).  Any TSan report
 * makes the program exit non-zero.
 */
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/batch.h"
#include "pd/pool.h"
#include "pd/store.h"
#include "pd/writer.h"
#include "support.h"

static int failures;

/* Like an assertion, but records the failure and lets the program go on to the next test. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

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
    CHECK(j->worked > 0, "done before a worker ran the job");
    t->done_sum += j->value;
    t->done_count++;
    submit_more(t);
    if (t->submitted == 1000 && pd_pool_outstanding(t->pool) == 0)
        pd_pool_close(t->pool, NULL);
}

static void every_job_runs_once_and_comes_back_on_the_loop(void)
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
    if (pd_pool_create(&loop, &cfg, &t->pool) != 0) {
        CHECK(false, "pd_pool_create failed");
        return;
    }
    submit_more(t);
    CHECK(pd_pool_full(t->pool), "the bound must stop submissions");
    CHECK(t->submitted == 7, "queue 3 + 4 workers");
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(t->done_count == 1000, "%s", "");
    CHECK(t->done_sum == 999L * 1000, "%s", ""); /* 2 * (0 + ... + 999) */
    CHECK(atomic_load(&t->inits) == 4, "%s", "");
    CHECK(uv_loop_close(&loop) == 0, "%s", "");
    free(t);
}

/* --- concurrent writers against PostgreSQL ------------------------------- */

enum { THREADS = 16 };

typedef struct racer {
    const char *url;
    pthread_barrier_t *start;
    char workflow_id[32];
    long tokens;
    int version; /* the record's updated_at, in seconds past 2026-01-01; 0: none */
    pd_outcome_t outcome;
    long new_patterns;
    int rc;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    pd_writer_config_t cfg = {.store = {.conninfo = r->url}};
    pd_writer_t *writer;
    pd_batch_t *batch;
    pd_record_t rec;
    pd_error_t err;
    char line[512], version[64] = "";
    if (r->version > 0)
        snprintf(version, sizeof(version), ", \"updated_at\": \"2026-01-01 00:00:%02d\"",
                 r->version);
    snprintf(line, sizeof(line),
             "{\"workflow_id\": \"%s\", \"tenant_id\": \"racers\", \"nl_input\": \"Run pytest on "
             "the backend\", \"total_tokens\": %ld, \"duration_seconds\": 10%s}",
             r->workflow_id, r->tokens, version);
    pd_writer_create(&cfg, 0, &writer);
    pd_batch_create(1, &batch);
    r->rc = pd_record_parse(line, strlen(line), 1, NULL, &rec, &err);
    if (r->rc == 0) {
        pd_batch_add(batch, &rec);
        pthread_barrier_wait(r->start);
        r->rc = pd_writer_write(writer, batch);
        r->outcome = batch->outcomes[0];
        r->new_patterns = batch->new_patterns;
    }
    pd_batch_destroy(batch);
    pd_writer_destroy(writer);
    return NULL;
}

/* How the racers' records differ. */
typedef enum race_kind {
    DISTINCT_WORKFLOWS, /* wf-0 .. wf-15, tokens 1000 + i */
    ONE_WORKFLOW,       /* wf-0, all the same record */
    VERSIONS,           /* wf-0, versions 1..16 in a shuffled order, tokens 1000 + version */
} race_kind_t;

/* Starts THREADS writers together. */
static void run_race(const char *url, race_kind_t kind, racer_t *racers)
{
    pthread_barrier_t start;
    pthread_t threads[THREADS];
    pthread_barrier_init(&start, NULL, THREADS);
    int order[THREADS];
    for (int i = 0; i < THREADS; i++)
        order[i] = i + 1;
    for (int i = THREADS - 1; i > 0; i--) { /* Fisher-Yates: which thread gets which version */
        int j = (int)randombytes_uniform((uint32_t)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < THREADS; i++) {
        racers[i] = (racer_t){.url = url, .start = &start, .tokens = 1000 + i};
        if (kind == ONE_WORKFLOW)
            racers[i].tokens = 1000;
        if (kind == VERSIONS) {
            racers[i].version = order[i];
            racers[i].tokens = 1000 + order[i];
        }
        snprintf(racers[i].workflow_id, sizeof(racers[i].workflow_id), "wf-%d",
                 kind == DISTINCT_WORKFLOWS ? i : 0);
        pthread_create(&threads[i], NULL, race, &racers[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start);
}

static void sixteen_threads_creating_one_pattern_leave_one_row(void)
{
    char *url = pdt_new_migrated_database();
    racer_t racers[THREADS];
    run_race(url, DISTINCT_WORKFLOWS, racers);
    long new_patterns = 0;
    for (int i = 0; i < THREADS; i++) {
        CHECK(racers[i].rc == 0, "writer %d failed", i);
        CHECK(racers[i].outcome == PD_OUTCOME_PROCESSED, "%s", "");
        new_patterns += racers[i].new_patterns;
    }
    CHECK(new_patterns == 1, "exactly one writer creates the pattern");
    char *rows = pdt_sql_value(url, "SELECT count(*) || ' ' || sum(occurrence_count) || ' ' || "
                                    "sum(sum_tokens) || ' ' || sum(avg_tokens_with_llm) "
                                    "FROM operation_patterns");
    /* 16 occurrences, tokens 1000..1015: sum 16120, average 1007. */
    CHECK(strcmp(rows, "1 16 16120 1007") == 0, "got %s", rows);
    char *occ = pdt_sql_value(url, "SELECT count(*) FROM pattern_occurrences");
    CHECK(strcmp(occ, "16") == 0, "got %s", occ);
    free(occ);
    free(rows);
    free(url);
}

static void sixteen_threads_writing_one_workflow_count_it_once(void)
{
    char *url = pdt_new_migrated_database();
    racer_t racers[THREADS];
    run_race(url, ONE_WORKFLOW, racers);
    int processed = 0, duplicates = 0;
    for (int i = 0; i < THREADS; i++) {
        CHECK(racers[i].rc == 0, "writer %d failed", i);
        processed += racers[i].outcome == PD_OUTCOME_PROCESSED;
        duplicates += racers[i].outcome == PD_OUTCOME_DUPLICATE;
    }
    CHECK(processed == 1, "%s", "");
    CHECK(duplicates == THREADS - 1, "%s", "");
    char *rows = pdt_sql_value(url, "SELECT count(*) || ' ' || sum(occurrence_count) FROM "
                                    "operation_patterns");
    CHECK(strcmp(rows, "1 1") == 0, "got %s", rows);
    free(rows);
    free(url);
}

/*
 * 16 versions of one workflow, written at once in a shuffled order, several
 * times: whatever the interleaving, the highest version's contribution is
 * counted, once, and every record's outcome adds up.
 */
static void sixteen_threads_writing_versions_of_one_workflow_count_the_latest_once(void)
{
    for (int round = 0; round < 5; round++) {
        char *url = pdt_new_migrated_database();
        racer_t racers[THREADS];
        run_race(url, VERSIONS, racers);
        int processed = 0, revised = 0, stale = 0;
        for (int i = 0; i < THREADS; i++) {
            CHECK(racers[i].rc == 0, "writer %d failed", i);
            processed += racers[i].outcome == PD_OUTCOME_PROCESSED;
            revised += racers[i].outcome == PD_OUTCOME_REVISED;
            stale += racers[i].outcome == PD_OUTCOME_STALE;
        }
        CHECK(processed == 1, "processed %d", processed);
        CHECK(processed + revised + stale == THREADS, "%d + %d + %d", processed, revised, stale);
        char *rows = pdt_sql_value(url, "SELECT count(*) || ' ' || sum(occurrence_count) || ' ' || "
                                        "sum(sum_tokens) FROM operation_patterns");
        CHECK(strcmp(rows, "1 1 1016") == 0, "round %d: got %s", round, rows);
        char *ledger = pdt_sql_value(url, "SELECT count(*) || ' ' || max(tokens) FROM workflows");
        CHECK(strcmp(ledger, "1 1016") == 0, "round %d: got %s", round, ledger);
        free(ledger);
        free(rows);
        free(url);
    }
}

static void many_workers_and_small_batches_ingest_cleanly(void)
{
    char *url = pdt_new_migrated_database();
    char args[4096];
    snprintf(args, sizeof(args), "--workers 8 --batch 3 '%s'", pdt_data("sample-600.ndjson"));
    int status;
    char *out = pdt_ingest(url, args, &status);
    CHECK(status == 0, "ingest exited %d (66 is a ThreadSanitizer report): %s", status, out);
    CHECK(pdt_summary_value(out, "processed") == 600, "%s", out);
    free(out);
    free(url);
}

int main(void)
{
    static const struct {
        const char *name;
        void (*run)(void);
    } tests[] = {
        {"every_job_runs_once_and_comes_back_on_the_loop",
         every_job_runs_once_and_comes_back_on_the_loop},
        {"sixteen_threads_creating_one_pattern_leave_one_row",
         sixteen_threads_creating_one_pattern_leave_one_row},
        {"sixteen_threads_writing_one_workflow_count_it_once",
         sixteen_threads_writing_one_workflow_count_it_once},
        {"sixteen_threads_writing_versions_of_one_workflow_count_the_latest_once",
         sixteen_threads_writing_versions_of_one_workflow_count_the_latest_once},
        {"many_workers_and_small_batches_ingest_cleanly",
         many_workers_and_small_batches_ingest_cleanly},
    };
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        int before = failures;
        tests[i].run();
        bool ok = failures == before;
        printf("%s pool::%s\n", ok ? "[PASS]" : "[FAIL]", tests[i].name);
        ok ? passed++ : failed++;
    }
    printf("pool: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
