/*
 * Writing a batch exactly once, latest version first; see include/pd/store.h.
 *
 * What a batch does, in order:
 *
 *  1. The writer keeps one record per workflow_id (the highest version, see
 *     pd_batch_pick_versions) and detects it; the store gets those rows in
 *     lock order, workflow_id in byte order, all of one tenant.
 *  2. One transaction of that tenant (pd_db_begin_tenant: BEGIN, then SET
 *     LOCAL patternd.tenant, which row-level security checks), holding one
 *     statement: SELECT patternd_write_batch(...), with the rows as
 *     parallel array parameters (migrations/0007).  The function, in the
 *     server:
 *       a. locks the batch's recorded workflows, in lock order;
 *       b. tells each row what it is to the recorded version: new, a
 *          revision, stale, a duplicate or a conflict (docs/spec.md §3.4);
 *       c. records the new workflows and replaces the revised ones in the
 *          ledger (`workflows`, one row per workflow: its version, its
 *          signatures, characteristics and numbers);
 *       d. adds each signature's net change to operation_patterns' running
 *          sums, in signature order (INSERT ... ON CONFLICT DO UPDATE: O(1)
 *          per occurrence, never a rescan); a revision takes the old
 *          version's occurrences away and adds the new one's, and only
 *          final versions count;
 *       e. adds the same net change to each pattern's weekly series
 *          (pattern_weeks, one row per pattern and ISO week, docs/spec.md §6);
 *       f. moves the batch's patterns between detected and candidate by the
 *          tenant's thresholds, each move an audit row (docs/spec.md §5);
 *       g. where a revision took away the earliest or latest start_time of
 *          a pattern, looks its span up again;
 *     and returns one letter per row and the patterns the batch created.
 *  3. COMMIT.  Each record's outcome comes from its row's letter.
 *
 * Three pieces make the batch cheaper than the plain form of the function,
 * and each stays because it earns at least a tenth of the CPU a batch
 * costs (client and server together: on a machine where both share the
 * cores, that is what bounds throughput).  Measured by interleaved ingests
 * of 200,000 generated records (4 workers, batches of 1,000), each piece
 * turned off in turn (CPU seconds, server + client, mean of 4 runs; the
 * sums in a set of 2 runs of their own, where all three took 5.54 s):
 *
 *     all three                                     3.80 + 1.83 = 5.63 s
 *     without the sums in C (src/db/sums.c: when    5.99 + 1.78 = 7.77 s, +40%
 *       every workflow is new, the per-signature
 *       and per-week sums arrive computed)
 *     without binary array parameters (pgarray.c:   4.24 + 1.97 = 6.21 s, +10%
 *       no text to build and parse)
 *     without the plain insert first (general_left: 4.43 + 1.83 = 6.27 s, +11%
 *       a batch of new workflows skips the lookups
 *       of recorded versions)
 *
 * Locks are taken in one global order so that concurrent batches do not
 * deadlock: workflow rows first, by workflow_id in byte order, then pattern
 * rows, by signature in byte order.  A deadlock that happens anyway (a new
 * workflow raced by another transaction) is detected by the server and the
 * batch retried.
 *
 * Retries: a deadlock, a serialization failure or a unique violation (two
 * transactions recording the same new workflow: the one that waited runs
 * again and then finds it recorded) rolls back and runs the transaction
 * again after a few milliseconds; a lost connection reconnects with exponential backoff and
 * jitter.  If the connection was lost after COMMIT was sent, the batch may
 * have committed: the next attempt finds its rows by the batch's random
 * token (the ledger keeps the token of the batch that wrote each version)
 * and reports what that attempt recorded, changing nothing.  So a retry is
 * never counted twice.
 *
 * Every statement is sent unnamed and every setting is SET LOCAL, so
 * consecutive transactions may run on different server connections: the
 * store works through PgBouncer in transaction pooling.
 *
 * Threads: a store is used by the one writer thread that created it.
 */
#include "pd/store.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pd/db.h"
#include "pd/hold.h"
#include "pd/pgarray.h"
#include "sums.h"

/* The batch's parameters after the tenant and the token: one array element per row. */
enum {
    P_WIDS,
    P_VERSIONS,
    P_DIGESTS,
    P_COUNTED,
    P_SIGS,
    P_CHARS,
    P_TOKENS,
    P_COSTS,
    P_DURS,
    P_ERRS,
    P_RETRIES,
    P_STARTS,
    P_COUNT
};
static const pd_pgarray_kind_t P_KIND[P_COUNT] = {
    [P_WIDS] = PD_PGARRAY_TEXT,    [P_VERSIONS] = PD_PGARRAY_INT8, [P_DIGESTS] = PD_PGARRAY_INT8,
    [P_COUNTED] = PD_PGARRAY_BOOL, [P_SIGS] = PD_PGARRAY_TEXT,     [P_CHARS] = PD_PGARRAY_TEXT,
    [P_TOKENS] = PD_PGARRAY_INT8,  [P_COSTS] = PD_PGARRAY_LITERAL, [P_DURS] = PD_PGARRAY_INT8,
    [P_ERRS] = PD_PGARRAY_BOOL,    [P_RETRIES] = PD_PGARRAY_INT8,  [P_STARTS] = PD_PGARRAY_INT8};

static const pd_db_statement_t SQL_WRITE = {
    "patternd_write_batch",
    "SELECT outcomes, new_patterns FROM patternd_write_batch($1, $2, $3::text[], $4::bigint[],"
    " $5::bigint[], $6::boolean[], $7::text[], $8::text[], $9::bigint[], $10::numeric[],"
    " $11::bigint[], $12::boolean[], $13::bigint[], $14::bigint[], $15::text[], $16::bigint[],"
    " $17::numeric[], $18::numeric[], $19::bigint[], $20::numeric[], $21::numeric[],"
    " $22::bigint[], $23::numeric[], $24::bigint[], $25::bigint[], $26::text[], $27::text[],"
    " $28::integer[], $29::bigint[], $30::numeric[], $31::boolean)",
    2 + P_COUNT + S_COUNT + 1};

/* Batches written without trying the plain insert after one met a recorded workflow. */
#define GENERAL_BATCHES 16

/* SQLSTATE unique_violation: another transaction recorded one of the batch's new workflows. */
#define UNIQUE_VIOLATION "23505"

struct pd_store {
    pd_store_config_t cfg;
    pd_db_t *db;
    pd_store_stats_t stats;
    pd_pgarray_t params[P_COUNT]; /* the batch being written; the memory is reused */
    pd__sums_t sums;              /* its occurrences summed per signature, when summed */
    bool summed;                  /* sums hold this batch's (its costs could be summed in C) */
    int general_left;             /* batches still to write without trying the plain insert */
};

int pd_store_create(const pd_store_config_t *cfg, pd_store_t **out)
{
    pd_store_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return PD_ENOMEM;
    s->cfg = *cfg;
    if (s->cfg.retry_budget_ms <= 0)
        s->cfg.retry_budget_ms = 120000;
    *out = s;
    return PD_OK;
}

void pd_store_destroy(pd_store_t *store)
{
    if (store == NULL)
        return;
    pd_db_destroy(store->db);
    for (int i = 0; i < P_COUNT; i++)
        pd_pgarray_close(&store->params[i]);
    pd__sums_close(&store->sums);
    free(store);
}

const pd_store_stats_t *pd_store_stats(const pd_store_t *store)
{
    return &store->stats;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(double ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                          .tv_nsec = (long)((ms - (double)(time_t)(ms / 1000) * 1000) * 1e6)};
    nanosleep(&ts, NULL);
}

/* A random delay in [ms/2, ms], so that writers that failed together do not retry together. */
static double jitter(double ms)
{
    return ms / 2 + (double)randombytes_uniform(1000) / 1000.0 * ms / 2;
}

/* Connects, unless connected. */
static int ensure_connected(pd_store_t *s, pd_error_t *err)
{
    if (s->db != NULL && pd_db_connected(s->db))
        return PD_OK;
    pd_db_destroy(s->db);
    s->db = NULL;
    int rc = pd_db_connect(s->cfg.conninfo, &s->db, err);
    if (rc == PD_OK)
        pd_db_set_async_commit(s->db, s->cfg.async_commit);
    return rc;
}

/* Appends one row to the parameters. */
static void add_row(pd_pgarray_t *p, const pd_record_t *r, const pd_store_row_t *row,
                    const char *text)
{
    pd_pgarray_text(&p[P_WIDS], r->workflow_id, strlen(r->workflow_id));
    if (r->has_version)
        pd_pgarray_int(&p[P_VERSIONS], r->version_us);
    else
        pd_pgarray_null(&p[P_VERSIONS]);
    pd_pgarray_int(&p[P_DIGESTS], r->digest);
    pd_pgarray_bool(&p[P_COUNTED], !r->unfinished);
    pd_pgarray_text(&p[P_SIGS], text + row->sigs_off, row->sigs_len);
    if (row->n_signatures > 0)
        pd_pgarray_text(&p[P_CHARS], text + row->chars_off, row->chars_len);
    else
        pd_pgarray_null(&p[P_CHARS]);
    pd_pgarray_int(&p[P_TOKENS], r->total_tokens);
    /* As the shortest decimal that reads back as the cost: the sums are of what was sent. */
    pd_pgarray_double(&p[P_COSTS], r->cost);
    pd_pgarray_int(&p[P_DURS], r->duration_ms);
    pd_pgarray_bool(&p[P_ERRS], r->error_message.ptr != NULL && r->error_message.len > 0);
    pd_pgarray_int(&p[P_RETRIES], r->retry_count);
    if (r->has_start_time)
        pd_pgarray_int(&p[P_STARTS], r->start_time_us);
    else
        pd_pgarray_null(&p[P_STARTS]);
}

/* The parameters of the batch's statement, built once for all its attempts. */
static int build_params(pd_store_t *s, const pd_batch_t *batch, const pd_store_row_t *rows,
                        size_t n, const char *text, pd_error_t *err)
{
    for (int p = 0; p < P_COUNT; p++)
        pd_pgarray_begin(&s->params[p], P_KIND[p]);
    for (size_t i = 0; i < n; i++) {
        const pd_record_t *r = &batch->records[rows[i].record];
        /* What the statement relies on: one tenant, distinct workflows in lock order. */
        assert(strcmp(r->tenant_id, batch->records[rows[0].record].tenant_id) == 0);
        assert(i == 0 ||
               strcmp(batch->records[rows[i - 1].record].workflow_id, r->workflow_id) < 0);
        add_row(s->params, r, &rows[i], text);
    }
    for (int p = 0; p < P_COUNT; p++) {
        if (pd_pgarray_end(&s->params[p]) < 0)
            return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    }
    int rc = pd__sums_build(&s->sums, batch, rows, n, text);
    if (rc < 0)
        return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    s->summed = rc == 1;
    return PD_OK;
}

/*
 * Each row's record gets the outcome of its letter (see migrations/0007);
 * false on a bad letter.  A batch that met a recorded workflow makes the
 * next GENERAL_BATCHES skip the plain insert, which would fail for them too
 * (a replay, or sources sending revisions).
 */
static bool settle(pd_store_t *s, pd_batch_t *batch, const pd_store_row_t *rows, size_t n,
                   const char *letters)
{
    if (strlen(letters) != n)
        return false;
    if (strspn(letters, "n") < n)
        s->general_left = GENERAL_BATCHES;
    else if (s->general_left > 0)
        s->general_left--;
    batch->total_patterns = 0;
    for (size_t i = 0; i < n; i++) {
        pd_outcome_t o;
        switch (letters[i]) {
        case 'n':
        case 'N':
            o = PD_OUTCOME_PROCESSED;
            batch->total_patterns += rows[i].n_signatures;
            break;
        case 'r':
        case 'R':
            o = PD_OUTCOME_REVISED;
            break;
        case 's':
            o = PD_OUTCOME_STALE;
            break;
        case 'd':
            o = PD_OUTCOME_DUPLICATE;
            break;
        case 'c':
            o = PD_OUTCOME_CONFLICT;
            break;
        default:
            return false;
        }
        batch->outcomes[rows[i].record] = o;
    }
    return true;
}

/* One transaction.  Returns 0 when the batch committed, else the classified error. */
static int attempt(pd_store_t *s, pd_batch_t *batch, const pd_store_row_t *rows, size_t n,
                   bool *held, pd_error_t *err)
{
    const char *tenant = batch->records[rows[0].record].tenant_id;
    char token[24];
    snprintf(token, sizeof(token), "%lld", (long long)batch->token);
    enum { N_VALUES = 2 + P_COUNT + S_COUNT + 1 };
    const char *values[N_VALUES] = {tenant, token};
    int lengths[N_VALUES] = {0}, formats[N_VALUES] = {0};
    values[N_VALUES - 1] = s->general_left == 0 ? "true" : "false";
    for (int p = 0; p < P_COUNT; p++) {
        values[2 + p] = pd_pgarray_value(&s->params[p]);
        lengths[2 + p] = pd_pgarray_length(&s->params[p]);
        formats[2 + p] = pd_pgarray_format(&s->params[p]);
    }
    for (int c = 0; s->summed && c < S_COUNT; c++) { /* else NULL: the server sums */
        values[2 + P_COUNT + c] = pd_pgarray_value(&s->sums.col[c]);
        lengths[2 + P_COUNT + c] = pd_pgarray_length(&s->sums.col[c]);
        formats[2 + P_COUNT + c] = pd_pgarray_format(&s->sums.col[c]);
    }

    int rc = ensure_connected(s, err);
    if (rc < 0)
        return rc;
    double t0 = now_ms();
    if ((rc = pd_db_begin_tenant(s->db, tenant, err)) < 0)
        return rc;
    PGresult *res = NULL;
    rc = pd_db_run_formats(s->db, &SQL_WRITE, values, lengths, formats, &res, err);
    if (rc == PD_EDB && strcmp(pd_db_sqlstate(s->db), UNIQUE_VIOLATION) == 0)
        rc = PD_ERETRY;
    if (rc == PD_OK && !*held) {
        *held = true;
        pd_hold_batch();
    }
    if (rc == PD_OK && !settle(s, batch, rows, n, PQgetvalue(res, 0, 0)))
        rc = pd_error_set(err, PD_EDB, 0, "", "patternd_write_batch: unexpected outcomes \"%.60s\"",
                          PQgetvalue(res, 0, 0));
    if (rc == PD_OK)
        batch->new_patterns = strtol(PQgetvalue(res, 0, 1), NULL, 10);
    pd_db_result_free(res);
    if ((rc = pd_db_end(s->db, rc, err)) == PD_OK)
        batch->commit_ms = now_ms() - t0;
    return rc;
}

int pd_store_write(pd_store_t *store, pd_batch_t *batch, const pd_store_row_t *rows, size_t n,
                   const char *text)
{
    pd_error_t err = {0};
    batch->attempts = 0;
    if (n == 0)
        return PD_OK; /* every record was settled against another of the batch */
    int rc = build_params(store, batch, rows, n, text, &err);
    double started = now_ms(), backoff = 50;
    bool held = false; /* went by the test-only pause point (pd/hold.h) */
    while (rc == PD_OK) {
        batch->attempts++;
        rc = attempt(store, batch, rows, n, &held, &err);
        if (rc == PD_OK || (rc != PD_ERETRY && rc != PD_ECONN))
            break; /* committed, or failed in a way a retry would repeat */
        store->stats.retries++;
        if (now_ms() - started > store->cfg.retry_budget_ms)
            break;
        if (rc == PD_ECONN) {
            pd_db_destroy(store->db);
            store->db = NULL;
            store->stats.reconnects++;
            sleep_ms(jitter(backoff));
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
        } else {
            sleep_ms(jitter(20)); /* apart from the transaction it met */
        }
        rc = PD_OK;
    }
    batch->rc = rc;
    return rc < 0 ? pd_store_fail(store, batch, rc, &err) : PD_OK;
}

int pd_store_fail(pd_store_t *store, pd_batch_t *batch, int rc, const pd_error_t *err)
{
    store->stats.db_errors++;
    batch->rc = rc;
    batch->err = err != NULL ? *err : (pd_error_t){0};
    if (rc == PD_ENOMEM && (err == NULL || err->message[0] == '\0'))
        pd_error_set(&batch->err, rc, 0, "", "out of memory");
    /* Nothing of the batch was committed: not even its records settled in advance. */
    for (size_t i = 0; i < batch->count; i++)
        batch->outcomes[i] = PD_OUTCOME_ERROR;
    return rc;
}
