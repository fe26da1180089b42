/*
 * `patternd ingest`: wiring only.  The pipeline, stage by stage:
 *
 *   file source (source/file.c)   loop thread: reads the inputs in chunks
 *   lines, record (source/, record/)  loop thread: splits and validates
 *   rejects (sink/rejects.c)      loop thread: the dead letters
 *   batcher (batch/batcher.c)     loop thread: one open batch per tenant
 *   pool (pool/pool.c)            bounded queue to the writer threads
 *   writer (worker/writer.c)      writer threads: detect, then store
 *   tally, progress, summary      loop thread, as batches come back
 *
 * Backpressure: the file source asks before each read whether the pool is
 * full, and is resumed when a batch comes back.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "pd/batch.h"
#include "pd/cli.h"
#include "pd/db.h"
#include "pd/latency.h"
#include "pd/options.h"
#include "pd/pool.h"
#include "pd/record.h"
#include "pd/sink.h"
#include "pd/source.h"
#include "pd/store.h"
#include "pd/writer.h"

typedef struct ingest_options {
    const char *db, *tenant, *rejects;
    long max_rejects; /* 0: no limit */
    int workers;
    size_t batch, max_record;
    bool async_commit, quiet;
    int retry_seconds;
} ingest_options_t;

#define OPT(field) offsetof(ingest_options_t, field)
static const pd_option_t OPTIONS[] = {
    PD_OPTION_DB(ingest_options_t, db),
    PD_OPTION_TENANT(ingest_options_t, tenant, "tenant of records without tenant_id"),
    {"workers", "N", pd_opt_int, OPT(workers), "4", "writer threads, one connection each", 1, 64},
    {"batch", "N", pd_opt_size, OPT(batch), "1000", "records per transaction", 1, 100000},
    {"rejects", "FILE", pd_opt_string, OPT(rejects), NULL,
     "write rejected records to FILE (NDJSON, with line, workflow_id\n"
     "when valid, field and reason) instead of to standard error;\n"
     "- is standard output, and the summary then goes to standard\n"
     "error (./- names a file -)",
     0, 0},
    {"max-rejects", "N", pd_opt_long, OPT(max_rejects), NULL,
     "stop reading at the Nth rejected record: the records read before\n"
     "it are still recorded, none after it is read, the summary says\n"
     "\"stopped\": \"max-rejects\", and the exit status is 1\n"
     "(default: no limit)",
     1, LONG_MAX},
    PD_OPTION_MAX_RECORD(ingest_options_t, max_record, "longest accepted line"),
    {"async-commit", NULL, pd_opt_flag, OPT(async_commit), NULL,
     "synchronous_commit = off: faster, but a server crash may lose\n"
     "the last acknowledged batches",
     0, 0},
    {"retry-seconds", "N", pd_opt_int, OPT(retry_seconds), "120",
     "give a batch up after retrying this long", 1, 86400},
    {"quiet", NULL, pd_opt_flag, OPT(quiet), NULL, "no progress line", 0, 0},
    PD_OPTION_END,
};

static const pd_command_t COMMAND = {
    "patternd ingest [options] [FILE...|-]",
    "Reads workflow records (NDJSON) from the FILEs in order, or from standard\n"
    "input, detects their patterns and records them in PostgreSQL exactly once.\n"
    "The latest version of a workflow (same tenant_id and workflow_id) decides,\n"
    "by updated_at: a later one is revised (replaces it), an earlier one is\n"
    "stale, the same one is a duplicate, or a conflict when its content differs\n"
    "(reported with the rejects; nothing changes).  Only final versions count:\n"
    "status pending or running is recorded but counted nowhere yet.\n"
    "A FILE, or standard input, that is gzip-compressed is inflated as it is\n"
    "read: gzip is known by its first bytes, whatever the name.\n"
    "Prints a JSON summary as the last line of standard output (of standard\n"
    "error with --rejects -).\n"
    "Exit status: 0 when every record read was recorded (processed, a\n"
    "duplicate, revised, stale or a conflict) or rejected for bad input, and\n"
    "not every one was rejected; 1 when nothing was recorded but something\n"
    "was rejected, when a record could not be committed, when --max-rejects\n"
    "stopped reading, or when an input could not be read (a corrupt or\n"
    "cut-short gzip input too); 2 on bad usage.\n",
    OPTIONS,
    -1,
};

typedef struct ingest {
    ingest_options_t opt;
    uv_loop_t loop;
    pd_pool_t *pool;
    pd_writer_config_t writer_cfg;
    pd_file_source_t *source;
    pd_batcher_t batcher;
    pd_rejects_t *rejects;
    bool input_done; /* the source ended */
    pd_tally_t tally;
    pd_latency_t commits; /* the batches' transactions, BEGIN to COMMIT acknowledged */
    int fatal;            /* 0, or why the run failed */
    char fatal_message[1024];
    int abandon; /* non-zero: leave at once with this status (second signal) */
    uv_timer_t progress;
    pd_cli_signals_t signals;
    uint64_t started_ns;
    bool tty;
    const char *stopped; /* why reading stopped before the end, for the summary; or NULL */
    long stopped_line;   /* the line it stopped at, in stopped_input */
    char stopped_input[256];
} ingest_t;

/* Records the first reason the run failed and stops reading. */
__attribute__((format(printf, 3, 4))) static void fail_run(ingest_t *in, int rc, const char *fmt,
                                                           ...)
{
    if (in->fatal == 0) {
        in->fatal = rc;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(in->fatal_message, sizeof(in->fatal_message), fmt, ap);
        va_end(ap);
    }
    if (in->source != NULL)
        pd_file_source_stop(in->source);
}

static void on_pool_closed(void *ctx)
{
    ingest_t *in = ctx;
    in->pool = NULL;
    uv_close((uv_handle_t *)&in->progress, NULL);
    pd_cli_signals_close(&in->signals);
}

/* Closes the pool once the input ended and every batch came back. */
static void finish_if_done(ingest_t *in)
{
    if (!in->input_done || in->pool == NULL || pd_pool_outstanding(in->pool) > 0)
        return;
    uv_timer_stop(&in->progress);
    pd_pool_close(in->pool, on_pool_closed);
}

/* Each conflict goes where the rejects go: its update was not applied, and the caller must know. */
static void report_conflicts(ingest_t *in, const pd_batch_t *b)
{
    for (size_t i = 0; i < b->count; i++) {
        if (b->outcomes[i] != PD_OUTCOME_CONFLICT)
            continue;
        pd_error_t err;
        pd_error_set(&err, PD_EINVAL, b->records[i].line, "updated_at", "workflow %s: %s",
                     b->records[i].workflow_id, PD_CONFLICT_MESSAGE);
        if (pd_rejects_write(in->rejects, pd_file_source_name(in->source), &b->records[i], NULL, 0,
                             false, &err) < 0)
            fail_run(in, PD_EIO, "cannot write the rejects file");
    }
}

/* Loop thread: a writer finished a batch. */
static void on_batch_done(void *ctx, pd_job_t *job)
{
    ingest_t *in = ctx;
    pd_batch_t *b = pd_batch_of(job);
    pd_batch_tally(&in->tally, b);
    report_conflicts(in, b);
    if (b->rc == 0 && b->commit_ms > 0)
        pd_latency_add(&in->commits, b->commit_ms);
    if (b->rc < 0)
        fail_run(in, b->rc, "could not commit a batch: %s", b->err.message);
    pd_batch_destroy(b);
    if (!in->input_done && !pd_pool_full(in->pool))
        pd_file_source_resume(in->source);
    finish_if_done(in);
}

static void submit_batch(void *ctx, pd_batch_t *batch)
{
    ingest_t *in = ctx;
    pd_pool_submit(in->pool, &batch->job);
}

static bool can_read(void *ctx)
{
    ingest_t *in = ctx;
    return !pd_pool_full(in->pool);
}

static int on_line(void *ctx, long line_no, const char *data, size_t len, bool oversize)
{
    ingest_t *in = ctx;
    pd_error_t err;
    pd_record_t rec;
    int rc;

    in->tally.total++;
    if (oversize) {
        pd_error_set(&err, PD_EINVAL, line_no, "", "record of %zu bytes exceeds the maximum of %zu",
                     len, in->opt.max_record);
    } else if ((rc = pd_record_parse(data, len, line_no, in->opt.tenant, &rec, &err)) == PD_OK) {
        return pd_batcher_add(&in->batcher, &rec);
    } else if (rc != PD_EINVAL) {
        return rc;
    }
    in->tally.rejected++;
    /* On rejection rec holds nothing to release, but its workflow_id when the id was valid. */
    rc = pd_rejects_write(in->rejects, pd_file_source_name(in->source), oversize ? NULL : &rec,
                          data, len, oversize, &err);
    if (rc == 0 && in->opt.max_rejects > 0 && in->tally.rejected >= in->opt.max_rejects) {
        in->stopped = "max-rejects";
        in->stopped_line = line_no;
        snprintf(in->stopped_input, sizeof(in->stopped_input), "%s",
                 pd_file_source_name(in->source));
        return PD_SOURCE_STOP; /* nothing after this line is read */
    }
    return rc;
}

static void on_input_end(void *ctx, int rc, const char *message)
{
    ingest_t *in = ctx;
    if (rc != 0)
        fail_run(in, rc, "%s", message);
    pd_batcher_flush(&in->batcher);
    in->input_done = true;
    finish_if_done(in);
}

static double elapsed_s(const ingest_t *in)
{
    return (double)(uv_hrtime() - in->started_ns) / 1e9;
}

static void on_progress(uv_timer_t *t)
{
    ingest_t *in = t->data;
    pd_progress_draw(stderr, &in->tally, elapsed_s(in), pd_file_source_bytes_read(in->source),
                     pd_file_source_bytes_total(in->source));
}

static void on_signal(void *ctx, int signum, int count)
{
    ingest_t *in = ctx;
    if (count > 1) {
        fprintf(stderr, "\npatternd: interrupted again; exiting without waiting for the workers\n");
        in->abandon = 130;
        uv_stop(&in->loop);
        return;
    }
    fail_run(in, PD_EIO, "%s: stopped reading; batches already read were committed",
             signum == SIGINT ? "interrupted" : "terminated");
}

/* Every FILE must be readable before anything starts. */
static bool inputs_readable(char **paths, int n)
{
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (strcmp(paths[i], "-") != 0 && stat(paths[i], &st) != 0) {
            pd_cli_fail("cannot read %s: %s", paths[i], strerror(errno));
            return false;
        }
    }
    return true;
}

/* Starts the pool, the timers, the signals and the source; then runs the loop. */
static int run(ingest_t *in, char **paths, int n_paths)
{
    pd_pool_config_t pool_cfg = {
        .workers = in->opt.workers,
        .queue_capacity = (size_t)in->opt.workers * 2,
        .init = pd_writer_init,
        .work = pd_writer_work,
        .fini = pd_writer_fini,
        .done = on_batch_done,
        .ctx = in,
        .worker_ctx = &in->writer_cfg,
    };
    pd_file_source_config_t src_cfg = {
        .paths = paths,
        .n_paths = n_paths,
        .max_record = in->opt.max_record,
        .on_line = on_line,
        .can_read = can_read,
        .on_end = on_input_end,
        .ctx = in,
    };
    if (pd_pool_create(&in->loop, &pool_cfg, &in->pool) < 0) {
        pd_cli_fail("cannot start the worker threads");
        return -1;
    }
    in->started_ns = uv_hrtime();
    in->progress.data = in;
    int rc = uv_timer_init(&in->loop, &in->progress);
    if (rc == 0 && in->tty)
        rc = uv_timer_start(&in->progress, on_progress, 250, 250);
    if (rc == 0)
        rc = pd_cli_signals_start(&in->loop, &in->signals, on_signal, in);
    if (rc == 0)
        rc = pd_file_source_start(&in->loop, &src_cfg, &in->source);
    if (rc != 0) {
        pd_cli_fail("cannot start reading: %s",
                    rc == PD_ENOMEM ? "out of memory" : uv_strerror(rc));
        return -1; /* the process ends; the threads with it */
    }
    uv_run(&in->loop, UV_RUN_DEFAULT);
    return 0;
}

int pd_cmd_ingest(int argc, char **argv)
{
    static char *stdin_only[] = {"-"};
    ingest_t in = {0};
    int first;
    int status = pd_options_parse(&COMMAND, argc, argv, &in.opt, &first);
    if (status != PD_OPTIONS_RUN)
        return status;
    /* With the rejects on standard output, the summary goes to standard error, as tar's does. */
    bool rejects_stdout = in.opt.rejects != NULL && strcmp(in.opt.rejects, "-") == 0;
    char **paths = first < argc ? argv + first : stdin_only;
    int n_paths = first < argc ? argc - first : 1;
    in.writer_cfg.store = (pd_store_config_t){.conninfo = pd_db_conninfo(in.opt.db),
                                              .async_commit = in.opt.async_commit,
                                              .retry_budget_ms = in.opt.retry_seconds * 1000};
    in.tty = isatty(STDERR_FILENO) && !in.opt.quiet;
    pd_batcher_init(&in.batcher, in.opt.batch, submit_batch, &in);

    pd_error_t err;
    if (!inputs_readable(paths, n_paths) ||
        pd_cli_preflight(in.writer_cfg.store.conninfo, false, false, false))
        return PD_EXIT_FAIL;
    if (pd_rejects_open(in.opt.rejects, in.tty, &in.rejects, &err) < 0) {
        pd_cli_fail("%s", err.message);
        return PD_EXIT_FAIL;
    }
    if (uv_loop_init(&in.loop) != 0) {
        pd_cli_fail("cannot start the event loop");
        pd_rejects_close(in.rejects);
        return PD_EXIT_FAIL;
    }
    if (run(&in, paths, n_paths) < 0 || in.abandon)
        return (in.abandon ? in.abandon : PD_EXIT_FAIL) | PD_EXIT_NOW;

    if (in.tty)
        fputs("\r\033[K", stderr);
    if (in.fatal != 0)
        pd_cli_fail("%s", in.fatal_message);
    if (in.stopped != NULL)
        pd_cli_fail("stopped reading at %s:%ld after %ld rejected records (--max-rejects): "
                    "nothing after that line was read; %ld records before it were recorded",
                    in.stopped_input, in.stopped_line, in.tally.rejected,
                    pd_tally_settled(&in.tally));
    /* Bad input alone is no failure, unless it was all there was. */
    bool all_rejected = in.tally.rejected > 0 && pd_tally_settled(&in.tally) == 0;
    if (all_rejected && in.tally.errors == 0)
        pd_cli_fail("nothing was recorded: all %ld records read were rejected", in.tally.rejected);
    else if (all_rejected)
        pd_cli_fail(
            "nothing was recorded: %ld records were rejected and %ld could not be committed",
            in.tally.rejected, in.tally.errors);
    if (in.tally.rejected > 0 && in.opt.rejects != NULL && !rejects_stdout)
        fprintf(stderr, "patternd: %ld records rejected; see %s\n", in.tally.rejected,
                in.opt.rejects);
    int exit_code = in.fatal == 0 && in.tally.errors == 0 && in.stopped == NULL && !all_rejected
                        ? PD_EXIT_OK
                        : PD_EXIT_FAIL;
    uv_loop_close(&in.loop);
    if (pd_rejects_close(in.rejects) < 0) {
        pd_cli_fail("writing %s: %s",
                    rejects_stdout ? "the rejects to standard output" : in.opt.rejects,
                    strerror(errno));
        exit_code = PD_EXIT_FAIL;
    }
    /* The last line of its stream, after every message. */
    pd_summary_print(rejects_stdout ? stderr : stdout, &in.tally, elapsed_s(&in), &in.commits,
                     in.stopped);
    pd_batcher_close(&in.batcher);
    pd_file_source_destroy(in.source);
    return exit_code;
}
