/*
 * `patternd ingest`: records workflows in PostgreSQL, exactly once.
 *
 * Pipeline and threads:
 *   loop thread  reads the inputs with uv_fs_read (in chunks, so memory stays
 *                bounded whatever the input), splits lines, parses and
 *                validates records, writes rejects, fills batches and submits
 *                them to the pool; it also receives finished batches, keeps
 *                the counts, draws the progress line and prints the summary.
 *   workers      (pd_pool) each own a pd_store_t, i.e. one PostgreSQL
 *                connection, and write one batch per transaction.
 * Backpressure: before each read the loop asks the pool whether it is full;
 * if so it stops reading and resumes when a batch comes back, so at most
 * queue + workers batches (plus what one chunk yields) are ever in memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <sodium.h>
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
#include "pd/lines.h"
#include "pd/migrate.h"
#include "pd/pool.h"
#include "pd/record.h"
#include "pd/store.h"

static const char USAGE[] =
    "usage: patternd ingest [options] [FILE...|-]\n"
    "\n"
    "Reads workflow records (NDJSON) from the FILEs in order, or from standard\n"
    "input, detects their patterns and records them in PostgreSQL exactly once:\n"
    "a workflow already recorded (same tenant_id and workflow_id) is counted as\n"
    "a duplicate and changes nothing.  Prints a JSON summary as the last line.\n"
    "Exits 0 when every record was committed, a duplicate or rejected for bad\n"
    "input; 1 when some could not be committed; 2 on bad usage.\n"
    "\n"
    "  --db URL               database (default: $DATABASE_URL, else libpq's PG* variables)\n"
    "  --tenant T             tenant of records without tenant_id (default: default)\n"
    "  --workers N            writer threads, one connection each (default: 4)\n"
    "  --batch N              records per transaction (default: 1000)\n"
    "  --rejects FILE         write rejected records to FILE (NDJSON, with line and reason)\n"
    "                         instead of to standard error\n"
    "  --max-record-bytes N   longest accepted line (default: 1048576)\n"
    "  --async-commit         synchronous_commit = off: faster, but a server crash may lose\n"
    "                         the last acknowledged batches\n"
    "  --retry-seconds N      give a batch up after retrying this long (default: 120)\n"
    "  --quiet                no progress line\n"
    "  -h, --help             show this help\n";

/*
 * At most this many tenants' batches are filled at once; a record of yet
 * another tenant first sends off the fullest open batch.
 */
#define PD_OPEN_BATCHES 64

typedef struct ingest {
    uv_loop_t loop;
    pd_pool_t *pool;
    pd_store_config_t store_cfg;
    const char *tenant;
    int workers;
    size_t batch_size;
    size_t max_record;
    bool quiet;

    /* Inputs. */
    char **inputs;
    int n_inputs;
    int current;      /* index of the input being read */
    const char *name; /* its name for messages */
    uv_file fd;
    uv_fs_t read_req;
    char *chunk;
    bool reading;    /* a read is in flight */
    bool paused;     /* waiting for the pool to drain */
    bool input_done; /* every input read (or reading stopped) */
    bool stop;       /* stop reading: interrupted or a batch failed */
    pd_lines_t lines;
    int64_t bytes_read, bytes_total; /* bytes_total < 0 when unknown (a pipe) */

    /* Batches being filled, one per tenant: a batch is one tenant's (see store.c). */
    pd_batch_t *open[PD_OPEN_BATCHES];
    int n_open;
    FILE *rejects;

    /* Counts (SPEC §4). */
    long total, processed, duplicates, rejected, total_patterns, new_patterns, errors;
    pd_latency_t commits; /* the batches' transactions, BEGIN to COMMIT acknowledged */
    long batches;
    int fatal; /* 0, or why the run failed */
    char fatal_message[1024];
    int signals;

    uv_timer_t progress;
    uv_signal_t sigint, sigterm;
    uint64_t started_ns;
    bool tty;
} ingest_t;

static void read_more(ingest_t *in);
static void finish_if_done(ingest_t *in);

/* --- rejects ------------------------------------------------------------- */

static int write_reject(ingest_t *in, long line_no, const char *data, size_t len, bool oversize,
                        const pd_error_t *err)
{
    in->rejected++;
    if (in->rejects == NULL) {
        fprintf(stderr, "%spatternd: %s:%ld: %s%s%s\n", in->tty ? "\r\033[K" : "", in->name,
                line_no, err->field, err->field[0] ? ": " : "", err->message);
        return PD_OK;
    }
    json_t *o = json_pack("{s:s, s:I, s:s, s:s}", "file", in->name, "line", (json_int_t)line_no,
                          "field", err->field, "error", err->message);
    if (o == NULL)
        return PD_ENOMEM;
    if (oversize) {
        json_object_set_new(o, "input_bytes", json_integer((json_int_t)len));
    } else {
        json_t *text = json_stringn(data, len);
        if (text != NULL) {
            json_object_set_new(o, "input", text);
        } else { /* not UTF-8 (or has NUL): keep the exact bytes */
            size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
            char *b64 = malloc(cap);
            if (b64 != NULL) {
                sodium_bin2base64(b64, cap, (const unsigned char *)data, len,
                                  sodium_base64_VARIANT_ORIGINAL);
                json_object_set_new(o, "input_base64", json_string(b64));
                free(b64);
            }
        }
    }
    int rc = json_dumpf(o, in->rejects, 0) == 0 && fputc('\n', in->rejects) != EOF ? PD_OK : PD_EIO;
    json_decref(o);
    return rc;
}

/* --- batches ------------------------------------------------------------- */

/* Sends open[i] to the pool and closes its slot. */
static void submit_open(ingest_t *in, int i)
{
    pd_pool_submit(in->pool, &in->open[i]->job);
    in->open[i] = in->open[--in->n_open];
    in->open[in->n_open] = NULL;
}

static void submit_all(ingest_t *in)
{
    while (in->n_open > 0)
        submit_open(in, in->n_open - 1);
}

/* The open batch for a tenant, opening one (and maybe sending the fullest off) if needed. */
static int batch_for(ingest_t *in, const char *tenant, pd_batch_t **out)
{
    for (int i = 0; i < in->n_open; i++) {
        if (strcmp(in->open[i]->records[0].tenant_id, tenant) == 0) {
            *out = in->open[i];
            return PD_OK;
        }
    }
    if (in->n_open == PD_OPEN_BATCHES) {
        int fullest = 0;
        for (int i = 1; i < in->n_open; i++) {
            if (in->open[i]->count > in->open[fullest]->count)
                fullest = i;
        }
        submit_open(in, fullest);
    }
    int rc = pd_batch_create(in->batch_size, &in->open[in->n_open]);
    if (rc < 0)
        return rc;
    *out = in->open[in->n_open++];
    return PD_OK;
}

/* Stops reading; the first reason given is the one reported. */
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
    in->stop = true;
}

/* Loop thread: a worker finished a batch. */
static void on_batch_done(void *ctx, pd_job_t *job)
{
    ingest_t *in = ctx;
    pd_batch_t *b = pd_batch_of(job);
    for (size_t i = 0; i < b->count; i++) {
        switch (b->outcomes[i]) {
        case PD_OUTCOME_PROCESSED:
            in->processed++;
            break;
        case PD_OUTCOME_DUPLICATE:
            in->duplicates++;
            break;
        default:
            in->errors++;
        }
    }
    in->total_patterns += b->total_patterns;
    in->new_patterns += b->new_patterns;
    in->batches++;
    if (b->rc == 0 && b->commit_ms > 0)
        pd_latency_add(&in->commits, b->commit_ms);
    if (b->rc < 0)
        fail_run(in, b->rc, "could not commit a batch: %s", b->err.message);
    pd_batch_destroy(b);
    if (in->paused && !pd_pool_full(in->pool)) {
        in->paused = false;
        read_more(in);
    }
    finish_if_done(in);
}

/* --- reading ------------------------------------------------------------- */

static int on_line(void *ctx, long line_no, const char *data, size_t len, bool oversize)
{
    ingest_t *in = ctx;
    pd_error_t err;
    pd_record_t rec;
    int rc;

    in->total++;
    if (oversize) {
        pd_error_set(&err, PD_EINVAL, line_no, "", "record of %zu bytes exceeds the maximum of %zu",
                     len, in->max_record);
        return write_reject(in, line_no, NULL, len, true, &err);
    }
    rc = pd_record_parse(data, len, line_no, in->tenant, &rec, &err);
    if (rc == PD_EINVAL)
        return write_reject(in, line_no, data, len, false, &err);
    if (rc < 0)
        return rc;
    pd_batch_t *batch;
    if ((rc = batch_for(in, rec.tenant_id, &batch)) < 0) {
        pd_record_close(&rec);
        return rc;
    }
    pd_batch_add(batch, &rec);
    if (batch->count == in->batch_size) {
        for (int i = 0; i < in->n_open; i++) {
            if (in->open[i] == batch)
                submit_open(in, i);
        }
    }
    return PD_OK;
}

static void close_input(ingest_t *in)
{
    if (in->fd >= 0 && in->fd != STDIN_FILENO) {
        uv_fs_t req;
        uv_fs_close(&in->loop, &req, in->fd, NULL);
        uv_fs_req_cleanup(&req);
    }
    in->fd = -1;
}

/* Opens inputs[current]; returns 0 or -1 with the run failed. */
static int open_input(ingest_t *in)
{
    const char *path = in->inputs[in->current];
    pd_lines_close(&in->lines);
    pd_lines_init(&in->lines, in->max_record, on_line, in);
    if (strcmp(path, "-") == 0) {
        in->name = "<stdin>";
        in->fd = STDIN_FILENO;
        return 0;
    }
    in->name = path;
    uv_fs_t req;
    int fd = uv_fs_open(&in->loop, &req, path, O_RDONLY, 0, NULL);
    uv_fs_req_cleanup(&req);
    if (fd < 0) {
        fail_run(in, PD_EIO, "cannot open %s: %s", path, uv_strerror(fd));
        return -1;
    }
    in->fd = fd;
    return 0;
}

static void end_of_inputs(ingest_t *in)
{
    submit_all(in);
    in->input_done = true;
    finish_if_done(in);
}

static void on_read(uv_fs_t *req)
{
    ingest_t *in = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    in->reading = false;

    int rc = PD_OK;
    if (n < 0) {
        fail_run(in, PD_EIO, "reading %s: %s", in->name, uv_strerror((int)n));
    } else if (n == 0) {
        rc = pd_lines_finish(&in->lines);
        close_input(in);
        if (rc == PD_OK && !in->stop && ++in->current < in->n_inputs && open_input(in) == 0) {
            read_more(in);
            return;
        }
    } else {
        in->bytes_read += n;
        rc = pd_lines_push(&in->lines, in->chunk, (size_t)n);
    }
    if (rc < 0)
        fail_run(in, rc, "%s", rc == PD_EIO ? "writing the rejects file failed" : pd_strerror(rc));
    if (n <= 0 || in->stop) {
        close_input(in);
        end_of_inputs(in);
        return;
    }
    read_more(in);
}

enum { CHUNK_SIZE = 256 * 1024 };

static void read_more(ingest_t *in)
{
    if (in->reading || in->input_done)
        return;
    if (in->stop) {
        close_input(in);
        end_of_inputs(in);
        return;
    }
    if (pd_pool_full(in->pool)) {
        in->paused = true;
        return;
    }
    uv_buf_t buf = uv_buf_init(in->chunk, CHUNK_SIZE);
    in->read_req.data = in;
    int rc = uv_fs_read(&in->loop, &in->read_req, in->fd, &buf, 1, -1, on_read);
    if (rc < 0) {
        fail_run(in, PD_EIO, "reading %s: %s", in->name, uv_strerror(rc));
        close_input(in);
        end_of_inputs(in);
        return;
    }
    in->reading = true;
}

/* --- progress, signals, the end ------------------------------------------ */

static double elapsed_s(const ingest_t *in)
{
    return (double)(uv_hrtime() - in->started_ns) / 1e9;
}

static void on_progress(uv_timer_t *t)
{
    ingest_t *in = t->data;
    double secs = elapsed_s(in);
    long done = in->processed + in->duplicates + in->errors;
    fprintf(stderr, "\r\033[K%ld records read, %ld committed or duplicate, %.0f records/s",
            in->total, done, secs > 0 ? (double)done / secs : 0.0);
    if (in->bytes_total > 0)
        fprintf(stderr, ", %.0f%% of input",
                100.0 * (double)in->bytes_read / (double)in->bytes_total);
    fprintf(stderr, ", %ld rejected", in->rejected);
}

static void on_signal(uv_signal_t *h, int signum)
{
    ingest_t *in = h->data;
    if (++in->signals > 1) {
        fprintf(stderr, "\npatternd: interrupted again; exiting without waiting for the workers\n");
        _exit(130);
    }
    fail_run(in, PD_EIO, "%s: stopped reading; batches already read were committed",
             signum == SIGINT ? "interrupted" : "terminated");
}

static void on_pool_closed(void *ctx)
{
    ingest_t *in = ctx;
    in->pool = NULL;
    uv_close((uv_handle_t *)&in->progress, NULL);
    uv_close((uv_handle_t *)&in->sigint, NULL);
    uv_close((uv_handle_t *)&in->sigterm, NULL);
}

static void finish_if_done(ingest_t *in)
{
    if (!in->input_done || in->pool == NULL || pd_pool_outstanding(in->pool) > 0)
        return;
    uv_timer_stop(&in->progress);
    pd_pool_close(in->pool, on_pool_closed);
}

/* --- workers --------------------------------------------------------------- */

static int worker_init(void *ctx, int worker_id, void **state)
{
    ingest_t *in = ctx;
    (void)worker_id;
    return pd_store_create(&in->store_cfg, (pd_store_t **)state);
}

static void worker_work(void *state, pd_job_t *job)
{
    pd_store_write(state, pd_batch_of(job));
}

static void worker_fini(void *state)
{
    pd_store_destroy(state);
}

/* Connects once before starting, so that a wrong URL or a missing schema fails at once. */
static int preflight(const char *conninfo)
{
    pd_db_t *db = NULL;
    pd_error_t err;
    pd_migration_set_t set;
    size_t pending = 0;
    pd_migration_set_builtin(&set);
    if (pd_db_connect(conninfo, &db, &err) < 0 ||
        pd_migrate_status(db, &set, NULL, &pending, &err) < 0) {
        pd_cli_fail("%s", err.message);
        pd_db_destroy(db);
        return -1;
    }
    pd_db_destroy(db);
    if (pending > 0) {
        pd_cli_fail("the database schema is not current (%zu migrations pending); run "
                    "`patternd migrate` first",
                    pending);
        return -1;
    }
    return 0;
}

int pd_cmd_ingest(int argc, char **argv)
{
    static const struct option options[] = {
        {"db", required_argument, NULL, 'd'},
        {"tenant", required_argument, NULL, 't'},
        {"workers", required_argument, NULL, 'w'},
        {"batch", required_argument, NULL, 'b'},
        {"rejects", required_argument, NULL, 'r'},
        {"max-record-bytes", required_argument, NULL, 'm'},
        {"async-commit", no_argument, NULL, 'a'},
        {"retry-seconds", required_argument, NULL, 'R'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static char *stdin_only[] = {"-"};
    ingest_t in = {.workers = 4,
                   .batch_size = 1000,
                   .max_record = PD_RECORD_MAX_DEFAULT,
                   .fd = -1,
                   .bytes_total = 0};
    const char *url = NULL, *rejects_path = NULL;
    long v;
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'd':
            url = optarg;
            break;
        case 't':
            if (!pd_cli_tenant("--tenant", optarg))
                return PD_EXIT_USAGE;
            in.tenant = optarg;
            break;
        case 'w':
            if (!pd_cli_count("--workers", optarg, 1, 64, &v))
                return PD_EXIT_USAGE;
            in.workers = (int)v;
            break;
        case 'b':
            if (!pd_cli_count("--batch", optarg, 1, 100000, &v))
                return PD_EXIT_USAGE;
            in.batch_size = (size_t)v;
            break;
        case 'r':
            rejects_path = optarg;
            break;
        case 'm':
            if (!pd_cli_count("--max-record-bytes", optarg, 64, 1L << 30, &v))
                return PD_EXIT_USAGE;
            in.max_record = (size_t)v;
            break;
        case 'a':
            in.store_cfg.async_commit = true;
            break;
        case 'R':
            if (!pd_cli_count("--retry-seconds", optarg, 1, 86400, &v))
                return PD_EXIT_USAGE;
            in.store_cfg.retry_budget_ms = (int)(v * 1000);
            break;
        case 'q':
            in.quiet = true;
            break;
        case 'h':
            fputs(USAGE, stdout);
            return PD_EXIT_OK;
        default:
            fputs(USAGE, stderr);
            return PD_EXIT_USAGE;
        }
    }
    in.inputs = optind < argc ? argv + optind : stdin_only;
    in.n_inputs = optind < argc ? argc - optind : 1;
    in.store_cfg.conninfo = pd_db_conninfo(url);

    /* Sizes for the share-of-input progress; unknown when any input is a pipe. */
    for (int i = 0; i < in.n_inputs; i++) {
        struct stat st;
        int fd_ok =
            strcmp(in.inputs[i], "-") == 0 ? fstat(STDIN_FILENO, &st) : stat(in.inputs[i], &st);
        if (fd_ok != 0 && strcmp(in.inputs[i], "-") != 0) {
            pd_cli_fail("cannot read %s: %s", in.inputs[i], strerror(errno));
            return PD_EXIT_FAIL;
        }
        if (fd_ok != 0 || !S_ISREG(st.st_mode))
            in.bytes_total = -1;
        else if (in.bytes_total >= 0)
            in.bytes_total += st.st_size;
    }

    if (preflight(in.store_cfg.conninfo) < 0)
        return PD_EXIT_FAIL;
    if (rejects_path != NULL && (in.rejects = fopen(rejects_path, "w")) == NULL) {
        pd_cli_fail("cannot write %s: %s", rejects_path, strerror(errno));
        return PD_EXIT_FAIL;
    }

    int exit_code = PD_EXIT_FAIL;
    in.chunk = malloc(CHUNK_SIZE);
    if (in.chunk == NULL || uv_loop_init(&in.loop) != 0) {
        pd_cli_fail("out of memory");
        goto done;
    }
    pd_pool_config_t pool_cfg = {
        .workers = in.workers,
        .queue_capacity = (size_t)in.workers * 2,
        .init = worker_init,
        .work = worker_work,
        .fini = worker_fini,
        .done = on_batch_done,
        .ctx = &in,
    };
    if (pd_pool_create(&in.loop, &pool_cfg, &in.pool) < 0) {
        pd_cli_fail("cannot start the worker threads");
        goto done_loop;
    }
    in.tty = isatty(STDERR_FILENO) && !in.quiet;
    in.started_ns = uv_hrtime();
    uv_timer_init(&in.loop, &in.progress);
    in.progress.data = &in;
    if (in.tty)
        uv_timer_start(&in.progress, on_progress, 250, 250);
    uv_signal_init(&in.loop, &in.sigint);
    uv_signal_init(&in.loop, &in.sigterm);
    in.sigint.data = in.sigterm.data = &in;
    uv_signal_start(&in.sigint, on_signal, SIGINT);
    uv_signal_start(&in.sigterm, on_signal, SIGTERM);

    if (open_input(&in) == 0)
        read_more(&in);
    else
        end_of_inputs(&in);
    uv_run(&in.loop, UV_RUN_DEFAULT);

    if (in.tty)
        fputs("\r\033[K", stderr);
    double secs = elapsed_s(&in);
    json_t *summary = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:{s:f, s:f, s:f}}", "total_workflows",
        (json_int_t)in.total, "processed", (json_int_t)in.processed, "duplicates",
        (json_int_t)in.duplicates, "rejected", (json_int_t)in.rejected, "total_patterns",
        (json_int_t)in.total_patterns, "new_patterns", (json_int_t)in.new_patterns, "errors",
        (json_int_t)in.errors, "elapsed_seconds", secs, "workflows_per_second",
        secs > 0 ? (double)(in.processed + in.duplicates) / secs : 0.0, "batches",
        (json_int_t)in.batches, "commit_ms", "p50", pd_latency_quantile(&in.commits, 0.5), "p99",
        pd_latency_quantile(&in.commits, 0.99), "max", in.commits.max_ms);
    if (summary != NULL) {
        json_dumpf(summary, stdout, JSON_REAL_PRECISION(6));
        fputc('\n', stdout);
        json_decref(summary);
    }
    if (in.fatal != 0)
        pd_cli_fail("%s", in.fatal_message);
    if (in.rejected > 0 && in.rejects != NULL)
        fprintf(stderr, "patternd: %ld records rejected; see %s\n", in.rejected, rejects_path);
    exit_code = in.fatal == 0 && in.errors == 0 ? PD_EXIT_OK : PD_EXIT_FAIL;

done_loop:
    uv_loop_close(&in.loop);
done:
    if (in.rejects != NULL && fclose(in.rejects) != 0) {
        pd_cli_fail("writing %s: %s", rejects_path, strerror(errno));
        exit_code = PD_EXIT_FAIL;
    }
    pd_lines_close(&in.lines);
    for (int i = 0; i < in.n_open; i++)
        pd_batch_destroy(in.open[i]);
    free(in.chunk);
    return exit_code;
}
