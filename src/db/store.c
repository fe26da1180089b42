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
 *  1. CLAIM: insert every distinct (tenant_id, workflow_id) of the batch into
 *     `workflows` with the batch's random token, ON CONFLICT DO NOTHING.  The
 *     rows that come back are the batch's new workflows; the rest were
 *     recorded before (by any batch, worker or process) and are duplicates.
 *  2. PATTERNS: for the occurrences of the new workflows, one statement
 *     aggregates the deltas per (tenant_id, signature), upserts them into
 *     operation_patterns (INSERT ... ON CONFLICT DO UPDATE adds to the
 *     running sums: O(1) per occurrence, never a rescan) and inserts the
 *     pattern_occurrences rows.
 *  3. COMMIT.
 *
 * Locks are taken in one global order so that concurrent batches cannot
 * deadlock: workflow rows first, sorted by workflow_id in byte order, then
 * pattern rows, sorted by signature in byte order (COLLATE "C" in SQL,
 * strcmp here).  Duplicates inside the batch are merged before anything is
 * sent.  That sort and merge stay here (pd_store_distinct), though the
 * writer calls it before detecting: the lock order and distinct workflow
 * ids are preconditions of these statements (CLAIM maps the ordinals it
 * returns back to records, one per workflow id), so the module whose SQL
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
 * batch may have committed: when the next attempt's CLAIM takes no workflow,
 * it looks for workflow rows carrying the batch's token, and if there are
 * any it reports what was committed instead of writing again.
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

static const pd_db_statement_t SQL_CLAIM = {
    "pd_claim",
    "WITH claimed AS ("
    " INSERT INTO workflows (tenant_id, workflow_id, batch_token)"
    " SELECT $1, u.w, $3 FROM unnest($2::text[]) WITH ORDINALITY AS u(w, i)"
    " ORDER BY u.i"
    " ON CONFLICT DO NOTHING"
    " RETURNING workflow_id)"
    " SELECT u.i FROM unnest($2::text[]) WITH ORDINALITY AS u(w, i)"
    " JOIN claimed c ON c.workflow_id = u.w",
    3};

/*
 * The occurrences arrive sorted by (signature, input order), with `first`
 * set on the first of each signature: that workflow's characteristics
 * become the pattern's typical input when the pattern is new.
 *
 * Two details are there for Citus, where the statement runs on a worker
 * node: last_seen takes EXCLUDED.last_seen (the column's default, now(),
 * evaluated for the proposed row) because Citus refuses functions that are
 * not IMMUTABLE in DO UPDATE SET; and the occurrences INSERT ... SELECT has
 * a RETURNING, without which Citus writes its rows into the shards with
 * COPY, which PostgreSQL refuses under row-level security (the service
 * role), while with it they go through INSERT.
 */
static const pd_db_statement_t SQL_PATTERNS = {
    "pd_patterns",
    "WITH occ AS ("
    " SELECT * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::numeric[],"
    "  $6::bigint[], $7::int[], $8::bigint[], $9::bigint[], $10::jsonb[], $11::bool[])"
    "  AS o(sig, workflow_id, tokens, cost, dur_ms, err, retry, start_us, chars, first)"
    "), agg AS ("
    " SELECT sig, count(*) AS n, sum(tokens) AS st, sum(cost) AS sc,"
    "  count(*) FILTER (WHERE dur_ms > 0) AS dn,"
    "  coalesce(sum(dur_ms) FILTER (WHERE dur_ms > 0), 0) AS sd,"
    "  coalesce(sum(dur_ms::numeric * dur_ms) FILTER (WHERE dur_ms > 0), 0) AS sdq,"
    "  sum(err) AS se, sum(retry) AS sr, min(start_us) AS s0, max(start_us) AS s1,"
    "  (array_agg(chars) FILTER (WHERE first))[1] AS typical"
    " FROM occ GROUP BY sig"
    "), up AS ("
    " INSERT INTO operation_patterns AS p (tenant_id, pattern_signature, pattern_type,"
    "  occurrence_count, sum_tokens, sum_cost, duration_n, sum_duration_ms, sum_duration_ms_sq,"
    "  error_n, sum_retry, first_event_at, last_event_at, typical_input_pattern, created_batch)"
    " SELECT $1, sig, split_part(sig, ':', 1), n, st, sc, dn, sd, sdq, se, sr,"
    "  'epoch'::timestamptz + s0 * interval '1 microsecond',"
    "  'epoch'::timestamptz + s1 * interval '1 microsecond', typical, $12"
    " FROM agg ORDER BY sig COLLATE \"C\""
    " ON CONFLICT (tenant_id, pattern_signature) DO UPDATE SET"
    "  occurrence_count = p.occurrence_count + EXCLUDED.occurrence_count,"
    "  sum_tokens = p.sum_tokens + EXCLUDED.sum_tokens,"
    "  sum_cost = p.sum_cost + EXCLUDED.sum_cost,"
    "  duration_n = p.duration_n + EXCLUDED.duration_n,"
    "  sum_duration_ms = p.sum_duration_ms + EXCLUDED.sum_duration_ms,"
    "  sum_duration_ms_sq = p.sum_duration_ms_sq + EXCLUDED.sum_duration_ms_sq,"
    "  error_n = p.error_n + EXCLUDED.error_n,"
    "  sum_retry = p.sum_retry + EXCLUDED.sum_retry,"
    "  first_event_at = least(p.first_event_at, EXCLUDED.first_event_at),"
    "  last_event_at = greatest(p.last_event_at, EXCLUDED.last_event_at),"
    "  last_seen = EXCLUDED.last_seen"
    " RETURNING p.id, p.pattern_signature, (p.xmax = 0) AS created"
    "), occurrences AS ("
    " INSERT INTO pattern_occurrences (tenant_id, pattern_id, workflow_id,"
    "  matched_characteristics)"
    " SELECT $1, up.id, o.workflow_id, o.chars"
    " FROM occ o JOIN up ON up.pattern_signature = o.sig"
    " RETURNING 1)"
    " SELECT count(*) FILTER (WHERE created) FROM up",
    12};

/* After a lost connection: which of the batch's workflows did an earlier attempt commit? */
static const pd_db_statement_t SQL_CHECK = {
    "pd_check",
    "SELECT u.i FROM unnest($2::text[]) WITH ORDINALITY AS u(w, i)"
    " JOIN workflows w ON w.tenant_id = $1 AND w.workflow_id = u.w"
    " WHERE w.batch_token = $3",
    3};
static const pd_db_statement_t SQL_CHECK_NEW = {"pd_check_new",
                                                "SELECT count(*) FROM operation_patterns"
                                                " WHERE tenant_id = $1 AND created_batch = $2",
                                                2};

/* A PostgreSQL array literal being built, e.g. {"a","b",NULL}. */
typedef struct pg_array {
    pd_buf_t buf;
    size_t n;
} pg_array_t;

enum { A_SIG, A_WID, A_TOKENS, A_COST, A_DUR, A_ERR, A_RETRY, A_START, A_CHARS, A_FIRST, A_COUNT };

/* One occurrence of a new workflow: a detected signature of a distinct record. */
typedef struct occurrence {
    size_t item; /* index in store->items */
    int pattern; /* index in that item's patterns */
} occurrence_t;

struct pd_store {
    pd_store_config_t cfg;
    pd_db_t *db;
    pd_store_stats_t stats;
    /* The batch being written, borrowed from pd_store_write's caller. */
    pd_store_item_t *items; /* distinct records, in lock order */
    size_t n_items;
    const char *chars;  /* the text items' characteristics point into */
    pg_array_t keys;    /* workflow ids of `items`, for CLAIM and CHECK */
    occurrence_t *occs; /* the occurrences of the new records, sorted for PATTERNS */
    size_t occs_cap;
    pg_array_t occ[A_COUNT];
};

static void arr_begin(pg_array_t *a)
{
    pd_buf_reset(&a->buf);
    PD_BUF_LIT(&a->buf, "{");
    a->n = 0;
}

static void arr_sep(pg_array_t *a)
{
    if (a->n++ > 0)
        PD_BUF_LIT(&a->buf, ",");
}

static void arr_text(pg_array_t *a, const char *s, size_t len)
{
    arr_sep(a);
    PD_BUF_LIT(&a->buf, "\"");
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            pd_buf_put(&a->buf, s + run, i - run);
            PD_BUF_LIT(&a->buf, "\\");
            run = i;
        }
    }
    pd_buf_put(&a->buf, s + run, len - run);
    PD_BUF_LIT(&a->buf, "\"");
}

static void arr_int(pg_array_t *a, int64_t v)
{
    arr_sep(a);
    pd_buf_int(&a->buf, v);
}

static void arr_null(pg_array_t *a)
{
    arr_sep(a);
    PD_BUF_LIT(&a->buf, "NULL");
}

/* The shortest decimal text that reads back as d, so numeric sums are of what was sent. */
static void arr_double(pg_array_t *a, double d)
{
    char tmp[40];
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(tmp, sizeof(tmp), "%.*g", precision, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    arr_sep(a);
    pd_buf_puts(&a->buf, tmp);
}

static const char *arr_end(pg_array_t *a)
{
    pd_buf_put(&a->buf, "}", 2); /* with the NUL libpq needs */
    return a->buf.data;
}

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
    pd_buf_close(&store->keys.buf);
    free(store->occs);
    for (int i = 0; i < A_COUNT; i++)
        pd_buf_close(&store->occ[i].buf);
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

/*
 * Checks what the statements rely on (one tenant; distinct workflow ids in
 * lock order) and lists the workflow ids for CLAIM and CHECK.  Done once
 * per batch, before any attempt.
 */
static int prepare(pd_store_t *s, const pd_batch_t *batch, pd_error_t *err)
{
    for (size_t i = 1; i < batch->count; i++) {
        if (strcmp(batch->records[i].tenant_id, batch->records[0].tenant_id) != 0)
            return pd_error_set(err, PD_EINVAL, 0, "tenant_id",
                                "a batch must hold one tenant's records");
    }
    arr_begin(&s->keys);
    for (size_t i = 0; i < s->n_items; i++) {
        const char *id = batch->records[s->items[i].record].workflow_id;
        if (i > 0 && strcmp(batch->records[s->items[i - 1].record].workflow_id, id) >= 0)
            return pd_error_set(err, PD_EINVAL, 0, "workflow_id",
                                "the records to write are not distinct and in lock order");
        arr_text(&s->keys, id, strlen(id));
    }
    arr_end(&s->keys);
    if (s->keys.buf.failed)
        return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    return PD_OK;
}

/* Marks items[ordinal - 1] new for every ordinal in column 0 of res. */
static void mark_new(pd_store_t *s, const PGresult *res)
{
    for (size_t i = 0; i < s->n_items; i++)
        s->items[i].is_new = false;
    for (int row = 0; row < PQntuples(res); row++) {
        long ordinal = strtol(PQgetvalue(res, row, 0), NULL, 10);
        if (ordinal >= 1 && (size_t)ordinal <= s->n_items)
            s->items[ordinal - 1].is_new = true;
    }
}

/* Orders occurrences by signature, then by the input order of their records. */
static int compare_occurrence(const void *a, const void *b, void *arg)
{
    const pd_store_t *s = arg;
    const occurrence_t *x = a, *y = b;
    const pd_store_item_t *fx = &s->items[x->item], *fy = &s->items[y->item];
    int c = strcmp(fx->patterns[x->pattern], fy->patterns[y->pattern]);
    if (c == 0)
        c = fx->record < fy->record ? -1 : fx->record > fy->record;
    return c;
}

/* Builds the PATTERNS arrays from the occurrences of the new records; returns their count. */
static int build_occurrences(pd_store_t *s, const pd_batch_t *batch, size_t *rows)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_items; i++)
        n += s->items[i].is_new ? (size_t)s->items[i].n_patterns : 0;
    if (n > s->occs_cap) {
        occurrence_t *grown = realloc(s->occs, n * sizeof(*grown));
        if (grown == NULL)
            return PD_ENOMEM;
        s->occs = grown;
        s->occs_cap = n;
    }
    n = 0;
    for (size_t i = 0; i < s->n_items; i++) {
        for (int p = 0; s->items[i].is_new && p < s->items[i].n_patterns; p++)
            s->occs[n++] = (occurrence_t){.item = i, .pattern = p};
    }
    if (n > 1) /* s->occs is still NULL when no batch had an occurrence yet */
        qsort_r(s->occs, n, sizeof(occurrence_t), compare_occurrence, s);

    for (int a = 0; a < A_COUNT; a++)
        arr_begin(&s->occ[a]);
    const char *previous = NULL;
    for (size_t i = 0; i < n; i++) {
        const pd_store_item_t *f = &s->items[s->occs[i].item];
        const pd_record_t *r = &batch->records[f->record];
        const char *sig = f->patterns[s->occs[i].pattern];
        arr_text(&s->occ[A_SIG], sig, strlen(sig));
        arr_text(&s->occ[A_WID], r->workflow_id, strlen(r->workflow_id));
        arr_int(&s->occ[A_TOKENS], r->total_tokens);
        arr_double(&s->occ[A_COST], r->cost);
        arr_int(&s->occ[A_DUR], r->duration_ms);
        arr_int(&s->occ[A_ERR], r->error_message.ptr != NULL && r->error_message.len > 0);
        arr_int(&s->occ[A_RETRY], r->retry_count);
        if (r->has_start_time)
            arr_int(&s->occ[A_START], r->start_time_us);
        else
            arr_null(&s->occ[A_START]);
        arr_text(&s->occ[A_CHARS], s->chars + f->chars_off, f->chars_len);
        bool first = previous == NULL || strcmp(previous, sig) != 0;
        arr_sep(&s->occ[A_FIRST]);
        pd_buf_put(&s->occ[A_FIRST].buf, first ? "t" : "f", 1);
        previous = sig;
    }
    for (int a = 0; a < A_COUNT; a++) {
        arr_end(&s->occ[a]);
        if (s->occ[a].buf.failed)
            return PD_ENOMEM;
    }
    *rows = n;
    return PD_OK;
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

/*
 * Looks for the rows of an earlier attempt of this batch.  Returns 1 (with
 * the outcomes settled) when that attempt committed, 0 when it did not, or
 * an error.
 */
static int committed_before(pd_store_t *s, pd_batch_t *batch, const char *tenant, const char *token,
                            pd_error_t *err)
{
    PGresult *res = NULL;
    const char *check[] = {tenant, s->keys.buf.data, token};
    int rc = pd_db_run(s->db, &SQL_CHECK, check, &res, err);
    if (rc < 0)
        return rc;
    if (PQntuples(res) == 0) {
        pd_db_result_free(res);
        return 0;
    }
    mark_new(s, res);
    pd_db_result_free(res);
    const char *check_new[] = {tenant, token};
    if ((rc = pd_db_run(s->db, &SQL_CHECK_NEW, check_new, &res, err)) < 0)
        return rc;
    batch->new_patterns = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    pd_db_result_free(res);
    settle(s, batch);
    return 1;
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
    PGresult *res = NULL;
    int rc;

    if ((rc = ensure_connected(s, err)) < 0)
        return rc;
    double t0 = now_ms();
    if ((rc = pd_db_begin_tenant(s->db, tenant, err)) < 0)
        return rc;

    const char *claim[] = {tenant, s->keys.buf.data, token};
    if ((rc = pd_db_run(s->db, &SQL_CLAIM, claim, &res, err)) < 0)
        goto fail;
    int claimed = PQntuples(res);
    mark_new(s, res);
    pd_db_result_free(res);
    res = NULL;

    if (batch->attempts > 1 && claimed == 0) {
        /*
         * An earlier attempt may have committed: then every workflow of the
         * batch exists and CLAIM took none.  Looking after CLAIM rather than
         * before matters when that attempt's outcome was still in doubt (on
         * Citus, a transaction prepared on a worker node that restarted stays
         * in doubt until the coordinator's recovery settles it): CLAIM waits
         * on its rows' locks until it is settled, so the look that follows
         * sees the rows if it committed.
         */
        if ((rc = committed_before(s, batch, tenant, token, err)) < 0)
            goto fail;
        if (rc == 1)
            return pd_db_end(s->db, PD_OK, err);
    }

    batch->new_patterns = 0;
    size_t rows = 0;
    if ((rc = build_occurrences(s, batch, &rows)) < 0) {
        pd_error_set(err, rc, 0, "", "out of memory");
        goto fail;
    }
    if (rows > 0) {
        const char *params[12];
        params[0] = tenant;
        for (int a = 0; a < A_COUNT; a++)
            params[1 + a] = s->occ[a].buf.data;
        params[11] = token;
        if ((rc = pd_db_run(s->db, &SQL_PATTERNS, params, &res, err)) < 0)
            goto fail;
        batch->new_patterns = strtol(PQgetvalue(res, 0, 0), NULL, 10);
        pd_db_result_free(res);
        res = NULL;
    }

    if ((rc = pd_db_end(s->db, PD_OK, err)) < 0)
        return rc;
    batch->commit_ms = now_ms() - t0;
    settle(s, batch);
    return PD_OK;

fail:
    pd_db_result_free(res);
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
    while (rc == PD_OK) {
        batch->attempts++;
        rc = attempt(store, batch, &err);
        if (rc == PD_OK)
            break;
        if (rc != PD_ERETRY && rc != PD_ECONN)
            break; /* not transient: retrying would fail the same way */
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
