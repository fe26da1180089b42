/*
 * Exactly-once batch writes; see include/pd/store.h.
 *
 * A batch holds the records of one tenant (the batcher groups them), so
 * that every transaction runs with that tenant set (SET LOCAL
 * patternd.tenant, which the row-level security policies check).  One
 * transaction per batch, in these statements:
 *
 *  0. TENANT: BEGIN and SET LOCAL patternd.tenant (pd_db_begin_tenant,
 *     which says why SET LOCAL and how it reaches Citus's worker nodes).
 *  1. WRITE: one statement (SQL_WRITE_SUMS, SQL_WRITE or SQL_WRITE_DEDUP
 *     below) claims every distinct (tenant_id, workflow_id) of the batch
 *     in the `workflows` ledger, with the batch's random token and each
 *     workflow's occurrences (its signatures and characteristics), and
 *     adds the occurrences of the workflows it claimed to the running sums
 *     of operation_patterns.  The workflows recorded before (by any batch,
 *     worker or process) are duplicates and change nothing.
 *  2. COMMIT.
 *
 * Locks are taken in one global order so that concurrent batches cannot
 * deadlock: workflow rows first, sorted by workflow_id in byte order, then
 * pattern rows, sorted by signature in byte order (COLLATE "C" in SQL,
 * strcmp here).  Duplicates inside the batch are merged before anything is
 * sent.  That sort and merge stay here (pd_store_distinct), though the
 * writer calls it before detecting: the lock order and distinct workflow
 * ids are preconditions of WRITE (which maps the ordinals it returns back
 * to records, one per workflow id), so the module whose SQL
 * needs them is the one that guarantees them; pd_store_write checks
 * them.  Detection (what to write) is the writer's, src/worker/writer.c.
 *
 * Every statement is sent unnamed (pd_db_run) and every setting is SET
 * LOCAL, so consecutive transactions may run on different server
 * connections: the store works through PgBouncer in transaction pooling.
 * On Citus, each transaction writes one tenant's shards, on one worker
 * node, but the statements' intermediate results go to every worker, so
 * Citus commits with two-phase commit, the coordinator deciding.  A worker
 * restarting between PREPARE and COMMIT PREPARED leaves the transaction in
 * doubt, holding its row locks, until Citus's recovery settles it
 * (citus.recover_2pc_interval); the lost-commit check below waits for that.
 *
 * Threads: a store is used by the one writer thread that created it.
 *
 * Retries: a deadlock or serialization failure (40P01, 40001) rolls back and
 * runs the transaction again; a lost connection reconnects with exponential
 * backoff and jitter.  If the connection was lost after COMMIT was sent, the
 * batch may have committed: the next attempts claim with ON CONFLICT DO
 * NOTHING, and when one claims no workflow it looks for workflow rows
 * carrying the batch's token; if there are any it reports what was
 * committed instead of writing again.
 */
#define _GNU_SOURCE /* qsort_r */
#include "pd/store.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pd/buf.h"
#include "pd/db.h"
#include "pd/hold.h"
#include "pd/pgarray.h"
#include "sums.h"

/*
 * The whole batch in one statement.  The input is one array element per
 * distinct record, in lock order (workflow_id in byte order): its
 * signatures joined by spaces, its characteristics (NULL when it has no
 * signature), the numbers the statistics add up and its position in the
 * batch (`ord`).
 *
 *  - claimed: the ledger rows, inserted in the arrays' order (a function
 *    scan returns its rows in order; were it not to, a deadlock would be
 *    detected and retried, never a wrong result).  The rows that come back
 *    are the batch's new workflows.  A row's signatures and characteristics
 *    are its occurrences (migrations/0005, the pattern_occurrences view).
 *  - new, agg, up: the deltas of the new workflows' occurrences per
 *    signature, upserted into operation_patterns in signature order
 *    (INSERT ... ON CONFLICT DO UPDATE adds to the running sums: O(1) per
 *    occurrence, never a rescan).  The aggregate consumes every claimed row
 *    before the first pattern row is written, so all workflow locks come
 *    before any pattern lock.  A new pattern's typical input is the
 *    characteristics of its first new workflow in batch order.
 *  - the result: how many patterns were created, and the ordinals (1-based,
 *    in lock order) of the new workflows.
 *
 * The claim comes in two forms.  SQL_WRITE inserts plainly: a workflow
 * recorded before (by any batch, worker or process) fails the statement
 * with a unique violation (23505), and the batch is written again with
 * SQL_WRITE_DEDUP, whose ON CONFLICT DO NOTHING leaves such workflows out
 * as duplicates.  The plain form is the fast path: ON CONFLICT first
 * searches the index for each row (a speculative insertion) and then
 * confirms the row with a second WAL record, a tenth of the server's work
 * per workflow (issue 11).  A store that met a recorded workflow keeps to
 * SQL_WRITE_DEDUP for its next DEDUP_BATCHES batches, so that input with
 * many duplicates (a replay) costs about what it always did.
 *
 * When the plain claim succeeds every workflow of the batch is new, so the
 * per-signature deltas are known beforehand: SQL_WRITE_SUMS (below) takes
 * them summed by the client (src/db/sums.c, exactly) instead of the
 * per-record numbers, and the server neither joins nor aggregates.
 * SQL_WRITE is the plain form for a batch whose costs cannot be summed
 * exactly in C.
 *
 * Two details are there for Citus, where the statement runs on a worker
 * node: last_seen takes EXCLUDED.last_seen (the column's default, now(),
 * evaluated for the proposed row) because Citus refuses functions that are
 * not IMMUTABLE in DO UPDATE SET; and the ledger INSERT ... SELECT has a
 * RETURNING, without which Citus writes its rows into the shards with COPY,
 * which PostgreSQL refuses under row-level security (the service role).
 */
/* The upsert of operation_patterns, shared by the write statements. */
#define SQL_UPSERT_INTO                                                                            \
    " INSERT INTO operation_patterns AS p (tenant_id, pattern_signature, pattern_type,"            \
    "  occurrence_count, sum_tokens, sum_cost, duration_n, sum_duration_ms, sum_duration_ms_sq,"   \
    "  error_n, sum_retry, first_event_at, last_event_at, typical_input_pattern, created_batch)"
#define SQL_UPSERT_SET                                                                             \
    " ON CONFLICT (tenant_id, pattern_signature) DO UPDATE SET"                                    \
    "  occurrence_count = p.occurrence_count + EXCLUDED.occurrence_count,"                         \
    "  sum_tokens = p.sum_tokens + EXCLUDED.sum_tokens,"                                           \
    "  sum_cost = p.sum_cost + EXCLUDED.sum_cost,"                                                 \
    "  duration_n = p.duration_n + EXCLUDED.duration_n,"                                           \
    "  sum_duration_ms = p.sum_duration_ms + EXCLUDED.sum_duration_ms,"                            \
    "  sum_duration_ms_sq = p.sum_duration_ms_sq + EXCLUDED.sum_duration_ms_sq,"                   \
    "  error_n = p.error_n + EXCLUDED.error_n,"                                                    \
    "  sum_retry = p.sum_retry + EXCLUDED.sum_retry,"                                              \
    "  first_event_at = least(p.first_event_at, EXCLUDED.first_event_at),"                         \
    "  last_event_at = greatest(p.last_event_at, EXCLUDED.last_event_at),"                         \
    "  last_seen = EXCLUDED.last_seen"

#define SQL_WRITE_TEXT(on_conflict)                                                                \
    "WITH claimed AS ("                                                                            \
    " INSERT INTO workflows (tenant_id, workflow_id, batch_token, signatures, characteristics)"    \
    " SELECT $1, u.workflow_id, $2, string_to_array(u.sigs, ' '), u.chars"                         \
    " FROM unnest($3::text[], $4::text[], $5::text[]) AS u(workflow_id, sigs, chars)" on_conflict  \
    " RETURNING workflow_id"                                                                       \
    "), new AS ("                                                                                  \
    " SELECT s.* FROM unnest($3::text[], $4::text[], $6::bigint[], $7::numeric[], $8::bigint[],"   \
    "  $9::int[], $10::bigint[], $11::bigint[], $12::int[]) WITH ORDINALITY"                       \
    "  AS s(workflow_id, sigs, tokens, cost, dur_ms, err, retry, start_us, ord, i)"                \
    " JOIN claimed c ON c.workflow_id = s.workflow_id COLLATE \"C\""                               \
    "), agg AS ("                                                                                  \
    " SELECT g.sig, count(*) AS n, sum(tokens) AS st, sum(cost) AS sc,"                            \
    "  count(*) FILTER (WHERE dur_ms > 0) AS dn,"                                                  \
    "  coalesce(sum(dur_ms) FILTER (WHERE dur_ms > 0), 0) AS sd,"                                  \
    "  coalesce(sum(dur_ms::numeric * dur_ms) FILTER (WHERE dur_ms > 0), 0) AS sdq,"               \
    "  sum(err) AS se, sum(retry) AS sr, min(start_us) AS s0, max(start_us) AS s1,"                \
    "  min(ord) AS first_ord"                                                                      \
    " FROM new CROSS JOIN LATERAL unnest(string_to_array(new.sigs, ' ')) AS g(sig)"                \
    " GROUP BY g.sig"                                                                              \
    "), up AS (" SQL_UPSERT_INTO                                                                   \
    " SELECT $1, a.sig, split_part(a.sig, ':', 1), a.n, a.st, a.sc, a.dn, a.sd, a.sdq, a.se,"      \
    "  a.sr, 'epoch'::timestamptz + a.s0 * interval '1 microsecond',"                              \
    "  'epoch'::timestamptz + a.s1 * interval '1 microsecond', ($5::text[])[f.i]::jsonb, $2"       \
    " FROM agg a JOIN new f ON f.ord = a.first_ord ORDER BY a.sig COLLATE \"C\"" SQL_UPSERT_SET    \
    " RETURNING (p.xmax = 0) AS created"                                                           \
    ")"                                                                                            \
    " SELECT (SELECT count(*) FROM up WHERE created), (SELECT array_agg(i) FROM new)"

/*
 * The fast path: a plain claim, with the deltas summed per signature by the
 * client (src/db/sums.c), since every workflow of the batch is new when
 * the statement succeeds.  The upsert joins the count of claimed rows, so
 * that the ledger rows are all inserted before the first pattern row is
 * locked, as in SQL_WRITE.
 */
static const pd_db_statement_t SQL_WRITE_SUMS = {
    "pd_write_sums",
    "WITH claimed AS ("
    " INSERT INTO workflows (tenant_id, workflow_id, batch_token, signatures, characteristics)"
    " SELECT $1, u.workflow_id, $2, string_to_array(u.sigs, ' '), u.chars"
    " FROM unnest($3::text[], $4::text[], $5::text[]) AS u(workflow_id, sigs, chars)"
    " RETURNING 1"
    "), up AS (" SQL_UPSERT_INTO
    " SELECT $1, g.sig, split_part(g.sig, ':', 1), g.n, g.st, g.sc, g.dn, g.sd, g.sdq, g.se,"
    "  g.sr, 'epoch'::timestamptz + g.s0 * interval '1 microsecond',"
    "  'epoch'::timestamptz + g.s1 * interval '1 microsecond', g.typical::jsonb, $2"
    " FROM unnest($6::text[], $7::bigint[], $8::numeric[], $9::numeric[], $10::bigint[],"
    "  $11::numeric[], $12::numeric[], $13::bigint[], $14::numeric[], $15::bigint[],"
    "  $16::bigint[], $17::text[])"
    "  AS g(sig, n, st, sc, dn, sd, sdq, se, sr, s0, s1, typical)"
    " JOIN (SELECT count(*) AS n FROM claimed) c ON c.n = cardinality($3::text[])"
    " ORDER BY g.sig COLLATE \"C\"" SQL_UPSERT_SET " RETURNING (p.xmax = 0) AS created"
    ")"
    " SELECT (SELECT count(*) FROM up WHERE created), (SELECT count(*) FROM claimed)",
    17};

static const pd_db_statement_t SQL_WRITE = {"pd_write", SQL_WRITE_TEXT(""), 12};
static const pd_db_statement_t SQL_WRITE_DEDUP = {"pd_write_dedup",
                                                  SQL_WRITE_TEXT(" ON CONFLICT DO NOTHING"), 12};

/* Batches a store writes with SQL_WRITE_DEDUP after a plain claim met a recorded workflow. */
#define DEDUP_BATCHES 16
/* SQLSTATE unique_violation. */
#define UNIQUE_VIOLATION "23505"
/* attempt(): the plain claim met a recorded workflow; write the batch again with the dedup form. */
#define WRITE_AGAIN_DEDUP 1

/* After a lost connection: which of the batch's workflows did an earlier attempt commit? */
static const pd_db_statement_t SQL_CHECK = {
    "pd_check",
    "SELECT array_agg(u.i) FROM unnest($3::text[]) WITH ORDINALITY AS u(w, i)"
    " JOIN workflows w ON w.tenant_id = $1 AND w.workflow_id = u.w"
    " WHERE w.batch_token = $2",
    3};
static const pd_db_statement_t SQL_CHECK_NEW = {"pd_check_new",
                                                "SELECT count(*) FROM operation_patterns"
                                                " WHERE tenant_id = $1 AND created_batch = $2",
                                                2};

/* The columns of SQL_WRITE's input, $3 to $12, and the kind of array each is sent as. */
enum { A_WID, A_SIGS, A_CHARS, A_TOKENS, A_COST, A_DUR, A_ERR, A_RETRY, A_START, A_ORD, A_COUNT };
static const pd_pgarray_kind_t A_KIND[A_COUNT] = {
    [A_WID] = PD_PGARRAY_TEXT,    [A_SIGS] = PD_PGARRAY_TEXT,    [A_CHARS] = PD_PGARRAY_TEXT,
    [A_TOKENS] = PD_PGARRAY_INT8, [A_COST] = PD_PGARRAY_LITERAL, [A_DUR] = PD_PGARRAY_INT8,
    [A_ERR] = PD_PGARRAY_INT4,    [A_RETRY] = PD_PGARRAY_INT8,   [A_START] = PD_PGARRAY_INT8,
    [A_ORD] = PD_PGARRAY_INT4};

struct pd_store {
    pd_store_config_t cfg;
    pd_db_t *db;
    pd_store_stats_t stats;
    /* The batch being written, borrowed from pd_store_write's caller. */
    pd_store_item_t *items; /* distinct records, in lock order */
    size_t n_items;
    const char *chars;        /* the text items' characteristics point into */
    pd_pgarray_t in[A_COUNT]; /* SQL_WRITE's input; in[A_WID] is also CHECK's */
    pd__sums_t sums;          /* SQL_WRITE_SUMS's input */
    bool sums_ready;          /* sums hold this batch's (its costs could be summed in C) */
    bool stats_ready;         /* in[A_TOKENS..A_ORD] hold this batch's */
    int dedup_left;           /* batches still to write with SQL_WRITE_DEDUP */
    bool in_doubt;    /* an attempt of this batch lost its connection: it may have committed */
    bool passed_hold; /* this batch went by the test-only pause point (pd/hold.h) */
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
    for (int i = 0; i < A_COUNT; i++)
        pd_pgarray_close(&store->in[i]);
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

/* Connects, unless already connected. */
static int ensure_connected(pd_store_t *s, pd_error_t *err)
{
    if (s->db != NULL && pd_db_connected(s->db))
        return PD_OK;
    pd_db_destroy(s->db);
    s->db = NULL;
    int rc = pd_db_connect(s->cfg.conninfo, &s->db, err);
    if (rc < 0)
        return rc;
    pd_db_set_async_commit(s->db, s->cfg.async_commit);
    return PD_OK;
}

static int compare_items(const void *a, const void *b, void *arg)
{
    const pd_batch_t *batch = arg;
    size_t x = ((const pd_store_item_t *)a)->record, y = ((const pd_store_item_t *)b)->record;
    int c = strcmp(batch->records[x].workflow_id, batch->records[y].workflow_id);
    if (c == 0) /* the same workflow twice: the first in input order wins */
        c = x < y ? -1 : x > y;
    return c;
}

size_t pd_store_distinct(pd_batch_t *batch, pd_store_item_t *items)
{
    for (size_t i = 0; i < batch->count; i++)
        items[i] = (pd_store_item_t){.record = i};
    if (batch->count > 1)
        qsort_r(items, batch->count, sizeof(*items), compare_items, batch);
    size_t n = 0;
    for (size_t i = 0; i < batch->count; i++) {
        const pd_record_t *r = &batch->records[items[i].record];
        if (n > 0 && strcmp(batch->records[items[n - 1].record].workflow_id, r->workflow_id) == 0) {
            batch->outcomes[items[i].record] = PD_OUTCOME_DUPLICATE;
            continue;
        }
        items[n++] = items[i];
    }
    return n;
}

/* Appends a record's signatures, joined by spaces (SQL_WRITE splits them). */
static void add_signatures(pd_pgarray_t *a, const pd_store_item_t *item)
{
    char joined[PD_MAX_PATTERNS * PD_SIGNATURE_MAX];
    size_t len = 0;
    for (int p = 0; p < item->n_patterns; p++) {
        size_t n = strlen(item->patterns[p]);
        if (p > 0)
            joined[len++] = ' ';
        memcpy(joined + len, item->patterns[p], n); /* each is < PD_SIGNATURE_MAX with its NUL */
        len += n;
    }
    pd_pgarray_text(a, joined, len);
}

/* A signature is sent space-separated: it must be non-empty, without spaces (the detector's are).
 */
static bool plain_signature(const char *sig)
{
    return sig[0] != '\0' && strchr(sig, ' ') == NULL;
}

/* The columns every write form sends: workflow ids, signatures, characteristics. */
enum { A_CLAIM_COUNT = A_TOKENS };

/* Appends one distinct record's ledger row to the input columns (A_WID to A_CHARS). */
static void add_claim_row(pd_store_t *s, const pd_record_t *r, const pd_store_item_t *item)
{
    pd_pgarray_t *in = s->in;
    pd_pgarray_text(&in[A_WID], r->workflow_id, strlen(r->workflow_id));
    add_signatures(&in[A_SIGS], item);
    if (item->n_patterns > 0)
        pd_pgarray_text(&in[A_CHARS], s->chars + item->chars_off, item->chars_len);
    else
        pd_pgarray_null(&in[A_CHARS]);
}

/* Appends one distinct record's numbers to the input columns (A_TOKENS to A_ORD). */
static void add_stats_row(pd_store_t *s, const pd_record_t *r, const pd_store_item_t *item)
{
    pd_pgarray_t *in = s->in;
    pd_pgarray_int(&in[A_TOKENS], r->total_tokens);
    /* As the shortest decimal that reads back as the cost: the sums are of what was sent. */
    pd_pgarray_double(&in[A_COST], r->cost);
    pd_pgarray_int(&in[A_DUR], r->duration_ms);
    pd_pgarray_int(&in[A_ERR], r->error_message.ptr != NULL && r->error_message.len > 0);
    pd_pgarray_int(&in[A_RETRY], r->retry_count);
    if (r->has_start_time)
        pd_pgarray_int(&in[A_START], r->start_time_us);
    else
        pd_pgarray_null(&in[A_START]);
    pd_pgarray_int(&in[A_ORD], (int64_t)item->record);
}

/* Builds the input columns [from, to), add_row appending each distinct record to them. */
static int build_columns(pd_store_t *s, const pd_batch_t *batch, int from, int to,
                         void (*add_row)(pd_store_t *, const pd_record_t *,
                                         const pd_store_item_t *),
                         pd_error_t *err)
{
    for (int a = from; a < to; a++)
        pd_pgarray_begin(&s->in[a], A_KIND[a]);
    for (size_t i = 0; i < s->n_items; i++)
        add_row(s, &batch->records[s->items[i].record], &s->items[i]);
    for (int a = from; a < to; a++) {
        if (pd_pgarray_end(&s->in[a]) < 0)
            return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    }
    return PD_OK;
}

/*
 * Checks what the statements rely on (one tenant; distinct workflow ids in
 * lock order; plain signatures) and builds the ledger rows' columns, and,
 * when the store will try the plain claim, the per-signature sums.  Done
 * once per batch, before any attempt.  The per-record numbers that the
 * other forms send are built when first needed (need_stats).
 */
static int prepare(pd_store_t *s, const pd_batch_t *batch, pd_error_t *err)
{
    for (size_t i = 1; i < batch->count; i++) {
        if (strcmp(batch->records[i].tenant_id, batch->records[0].tenant_id) != 0)
            return pd_error_set(err, PD_EINVAL, 0, "tenant_id",
                                "a batch must hold one tenant's records");
    }
    for (size_t i = 0; i < s->n_items; i++) {
        const pd_store_item_t *item = &s->items[i];
        if (i > 0 && strcmp(batch->records[s->items[i - 1].record].workflow_id,
                            batch->records[item->record].workflow_id) >= 0)
            return pd_error_set(err, PD_EINVAL, 0, "workflow_id",
                                "the records to write are not distinct and in lock order");
        for (int p = 0; p < item->n_patterns; p++) {
            if (!plain_signature(item->patterns[p]))
                return pd_error_set(err, PD_EINVAL, 0, "signature",
                                    "a signature must be non-empty, with no space");
        }
    }
    s->stats_ready = false;
    s->sums_ready = false;
    int rc = build_columns(s, batch, 0, A_CLAIM_COUNT, add_claim_row, err);
    if (rc == PD_OK && s->dedup_left == 0) {
        rc = pd__sums_build(&s->sums, batch, s->items, s->n_items, s->chars);
        if (rc < 0)
            return pd_error_set(err, rc, 0, "", "out of memory");
        s->sums_ready = rc == 1;
        rc = PD_OK;
    }
    return rc;
}

/* Builds the per-record numbers for SQL_WRITE and SQL_WRITE_DEDUP, once per batch. */
static int need_stats(pd_store_t *s, const pd_batch_t *batch, pd_error_t *err)
{
    if (s->stats_ready)
        return PD_OK;
    int rc = build_columns(s, batch, A_CLAIM_COUNT, A_COUNT, add_stats_row, err);
    s->stats_ready = rc == PD_OK;
    return rc;
}

/*
 * Marks items[ordinal - 1] new for every ordinal of an int[] as PostgreSQL
 * prints it ("{1,4,5}", or NULL: the empty string); returns their count.
 */
static size_t mark_new(pd_store_t *s, const char *list)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_items; i++)
        s->items[i].is_new = false;
    for (const char *p = list; *p != '\0';) {
        char *end;
        long ordinal = strtol(p, &end, 10);
        if (end == p) {
            p++; /* a brace or a comma */
            continue;
        }
        if (ordinal >= 1 && (size_t)ordinal <= s->n_items && !s->items[ordinal - 1].is_new) {
            s->items[ordinal - 1].is_new = true;
            n++;
        }
        p = end;
    }
    return n;
}

/* Fills outcomes and totals from the is_new flags. */
static void settle(pd_store_t *s, pd_batch_t *batch)
{
    batch->total_patterns = 0;
    for (size_t i = 0; i < s->n_items; i++) {
        const pd_store_item_t *f = &s->items[i];
        batch->outcomes[f->record] = f->is_new ? PD_OUTCOME_PROCESSED : PD_OUTCOME_DUPLICATE;
        if (f->is_new)
            batch->total_patterns += f->n_patterns;
    }
}

/* Runs st with the tenant, the token and columns[0..n) as its parameters. */
static int run_with_columns(pd_store_t *s, const pd_db_statement_t *st, const char *tenant,
                            const char *token, const pd_pgarray_t *const *columns, int n,
                            PGresult **res, pd_error_t *err)
{
    const char *params[2 + A_COUNT + S_COUNT] = {tenant, token};
    int lengths[2 + A_COUNT + S_COUNT] = {0}, formats[2 + A_COUNT + S_COUNT] = {0};
    for (int c = 0; c < n; c++) {
        params[2 + c] = pd_pgarray_value(columns[c]);
        lengths[2 + c] = pd_pgarray_length(columns[c]);
        formats[2 + c] = pd_pgarray_format(columns[c]);
    }
    return pd_db_run_formats(s->db, st, params, lengths, formats, res, err);
}

/*
 * Looks for the rows of an earlier attempt of this batch.  Returns 1 (with
 * the outcomes settled) when that attempt committed, 0 when it did not, or
 * an error.
 */
static int committed_before(pd_store_t *s, pd_batch_t *batch, const char *tenant, const char *token,
                            pd_error_t *err)
{
    PGresult *res = NULL;
    const pd_pgarray_t *ids = &s->in[A_WID];
    int rc = run_with_columns(s, &SQL_CHECK, tenant, token, &ids, 1, &res, err);
    if (rc < 0)
        return rc;
    size_t committed = mark_new(s, PQgetvalue(res, 0, 0));
    pd_db_result_free(res);
    if (committed == 0)
        return 0;
    const char *check_new[] = {tenant, token};
    if ((rc = pd_db_run(s->db, &SQL_CHECK_NEW, check_new, &res, err)) < 0)
        return rc;
    batch->new_patterns = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    pd_db_result_free(res);
    settle(s, batch);
    return 1;
}

/* SQL_WRITE_SUMS: every workflow is new when it succeeds. */
static int write_summed(pd_store_t *s, pd_batch_t *batch, const char *tenant, const char *token,
                        size_t *claimed, pd_error_t *err)
{
    const pd_pgarray_t *columns[A_CLAIM_COUNT + S_COUNT];
    for (int c = 0; c < A_CLAIM_COUNT; c++)
        columns[c] = &s->in[c];
    for (int c = 0; c < S_COUNT; c++)
        columns[A_CLAIM_COUNT + c] = &s->sums.col[c];
    PGresult *res = NULL;
    int rc = run_with_columns(s, &SQL_WRITE_SUMS, tenant, token, columns, A_CLAIM_COUNT + S_COUNT,
                              &res, err);
    if (rc < 0)
        return rc;
    batch->new_patterns = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    *claimed = (size_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    pd_db_result_free(res);
    if (*claimed != s->n_items)
        return pd_error_set(err, PD_EDB, 0, "", "pd_write_sums: claimed %zu of %zu workflows",
                            *claimed, s->n_items);
    for (size_t i = 0; i < s->n_items; i++)
        s->items[i].is_new = true;
    return PD_OK;
}

/* SQL_WRITE or SQL_WRITE_DEDUP: the server sums the claimed workflows' occurrences. */
static int write_per_record(pd_store_t *s, pd_batch_t *batch, const pd_db_statement_t *st,
                            const char *tenant, const char *token, size_t *claimed, pd_error_t *err)
{
    const pd_pgarray_t *columns[A_COUNT];
    for (int c = 0; c < A_COUNT; c++)
        columns[c] = &s->in[c];
    PGresult *res = NULL;
    int rc = run_with_columns(s, st, tenant, token, columns, A_COUNT, &res, err);
    if (rc < 0)
        return rc;
    batch->new_patterns = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    *claimed = mark_new(s, PQgetvalue(res, 0, 1));
    pd_db_result_free(res);
    return PD_OK;
}

/*
 * One transaction.  Returns 0 when the batch is committed (now or by an
 * earlier attempt), else the classified error.
 */
static int attempt(pd_store_t *s, pd_batch_t *batch, pd_error_t *err)
{
    const char *tenant = batch->records[0].tenant_id;
    char token[24];
    snprintf(token, sizeof(token), "%lld", (long long)batch->token);
    int rc;

    if ((rc = ensure_connected(s, err)) < 0)
        return rc;
    double t0 = now_ms();
    if ((rc = pd_db_begin_tenant(s->db, tenant, err)) < 0)
        return rc;

    /* After a lost connection the batch may be recorded already: only the dedup form can tell. */
    bool plain = s->dedup_left == 0 && !s->in_doubt;
    size_t claimed = 0;
    if (plain && s->sums_ready) {
        rc = write_summed(s, batch, tenant, token, &claimed, err);
    } else if ((rc = need_stats(s, batch, err)) == PD_OK) {
        rc = write_per_record(s, batch, plain ? &SQL_WRITE : &SQL_WRITE_DEDUP, tenant, token,
                              &claimed, err);
    }
    if (rc < 0) {
        if (plain && strcmp(pd_db_sqlstate(s->db), UNIQUE_VIOLATION) == 0) {
            pd_db_end(s->db, rc, NULL); /* rolls back */
            s->dedup_left = DEDUP_BATCHES;
            return WRITE_AGAIN_DEDUP;
        }
        goto fail;
    }
    if (!plain && s->dedup_left > 0)
        s->dedup_left--;
    if (!s->passed_hold) {
        s->passed_hold = true;
        pd_hold_batch();
    }

    if (s->in_doubt && claimed == 0) {
        /*
         * An earlier attempt may have committed: then every workflow of the
         * batch exists, this statement claimed none and changed nothing.
         * Looking after the claim rather than before matters when that
         * attempt's outcome was still in doubt (on Citus, a transaction
         * prepared on a worker node that restarted stays in doubt until the
         * coordinator's recovery settles it): the claim waits on its rows'
         * locks until it is settled, so the look that follows sees the rows
         * if it committed.
         */
        if ((rc = committed_before(s, batch, tenant, token, err)) < 0)
            goto fail;
        if (rc == 1)
            return pd_db_end(s->db, PD_OK, err);
    }

    if ((rc = pd_db_end(s->db, PD_OK, err)) < 0)
        return rc;
    batch->commit_ms = now_ms() - t0;
    settle(s, batch);
    return PD_OK;

fail:
    return pd_db_end(s->db, rc, err);
}

/* A random delay in [ms/2, ms], so that workers that failed together do not retry together. */
static double jitter(double ms)
{
    return ms / 2 + (double)randombytes_uniform(1000) / 1000.0 * ms / 2;
}

int pd_store_write(pd_store_t *store, pd_batch_t *batch, pd_store_item_t *items, size_t n_items,
                   const char *chars)
{
    pd_error_t err = {0};
    double started = now_ms(), backoff = 50;
    if (batch->count == 0)
        return PD_OK;
    store->items = items;
    store->n_items = n_items;
    store->chars = chars;
    int rc = prepare(store, batch, &err);

    batch->attempts = 0;
    store->in_doubt = false;
    store->passed_hold = false;
    while (rc == PD_OK) {
        batch->attempts++;
        rc = attempt(store, batch, &err);
        if (rc == PD_OK)
            break;
        if (rc == WRITE_AGAIN_DEDUP) { /* at once: nothing failed */
            rc = PD_OK;
            continue;
        }
        if (rc != PD_ERETRY && rc != PD_ECONN)
            break; /* not transient: retrying would fail the same way */
        store->stats.retries++;
        if (now_ms() - started > store->cfg.retry_budget_ms)
            break;
        if (rc == PD_ECONN) {
            store->in_doubt = true;
            pd_db_destroy(store->db);
            store->db = NULL;
            store->stats.reconnects++;
            sleep_ms(jitter(backoff));
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
        } else {
            sleep_ms(jitter(20));
        }
        rc = PD_OK;
    }
    store->items = NULL; /* borrowed for this call only */
    store->chars = NULL;
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
    /* Nothing of the batch was committed, its in-batch duplicates included. */
    for (size_t i = 0; i < batch->count; i++)
        batch->outcomes[i] = PD_OUTCOME_ERROR;
    return rc;
}
