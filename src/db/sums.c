/*
 * Per-signature sums of a batch; see src/db/sums.h.
 *
 * The occurrences (row, signature) are sorted by signature, then by week,
 * then by the record's position in the batch, and summed one run of equal
 * signatures at a time, and within it one run of equal weeks; the first
 * workflow of a signature's run in batch order is the one whose
 * characteristics become the pattern's typical input.
 */
#define _GNU_SOURCE /* qsort_r */
#include "sums.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pd/record.h"

typedef __int128 wide_t;

#define COST_PLACES 18 /* a cost is summed in units of 10^-COST_PLACES */

struct pd__occurrence {
    size_t row;              /* index in rows */
    size_t sig_off, sig_len; /* the signature, in the text */
    int32_t week;            /* the record's week (see S_W_WEEK), NO_WEEK without a start */
};

#define NO_WEEK INT32_MIN

/* An item's cost, converted once however many occurrences it has. */
struct pd__cost {
    wide_t units;
    int scale;
};

/* The sums of one signature's occurrences. */
typedef struct run {
    int64_t n, dur_n, err;
    wide_t tokens, dur, dur_sq, retry, cost;
    int cost_scale; /* the largest scale among the cost terms */
    bool has_start;
    int64_t first, last;
} run_t;

static const pd_pgarray_kind_t S_KIND[S_COUNT] = {
    [S_SIG] = PD_PGARRAY_TEXT,       [S_N] = PD_PGARRAY_INT8,      [S_TOKENS] = PD_PGARRAY_LITERAL,
    [S_COST] = PD_PGARRAY_LITERAL,   [S_DUR_N] = PD_PGARRAY_INT8,  [S_DUR] = PD_PGARRAY_LITERAL,
    [S_DUR_SQ] = PD_PGARRAY_LITERAL, [S_ERR] = PD_PGARRAY_INT8,    [S_RETRY] = PD_PGARRAY_LITERAL,
    [S_FIRST] = PD_PGARRAY_INT8,     [S_LAST] = PD_PGARRAY_INT8,   [S_TYPICAL] = PD_PGARRAY_TEXT,
    [S_W_SIG] = PD_PGARRAY_TEXT,     [S_W_WEEK] = PD_PGARRAY_INT4, [S_W_N] = PD_PGARRAY_INT8,
    [S_W_COST] = PD_PGARRAY_LITERAL};

/* The Monday (UTC) of the ISO week of a time, in days since the epoch (a Thursday). */
static int32_t week_of(int64_t us)
{
    int64_t day = us >= 0 ? us / 86400000000LL : -((-us + 86400000000LL - 1) / 86400000000LL);
    int64_t since_monday = ((day + 3) % 7 + 7) % 7;
    return (int32_t)(day - since_monday);
}

/*
 * The cost as a whole number of 10^-COST_PLACES units and the scale
 * numeric_in gives its shortest decimal (digits after the point less the
 * exponent, at least 0).  Returns false when that scale exceeds
 * COST_PLACES.  The text is what %.17g writes: [-]digits[.digits][e±digits].
 */
static bool cost_units(double cost, wide_t *units, int *scale)
{
    if (!(cost >= -PD_COST_MAX && cost <= PD_COST_MAX))
        return false; /* never a validated cost; beyond it the units could overflow */
    char text[PD_SHORTEST_MAX];
    pd_shortest_decimal(cost, text);
    const char *p = text;
    bool negative = *p == '-';
    if (negative)
        p++;
    wide_t mantissa = 0;
    int places = 0, exponent = 0, digits = 0;
    bool point = false;
    for (; *p != '\0' && *p != 'e'; p++) {
        if (*p == '.') {
            point = true;
            continue;
        }
        if (*p < '0' || *p > '9' || ++digits > 20)
            return false; /* inf or nan: never a validated cost */
        mantissa = mantissa * 10 + (*p - '0');
        places += point;
    }
    if (*p == 'e')
        exponent = (int)strtol(p + 1, NULL, 10);
    int shift = COST_PLACES - places + exponent; /* units = mantissa × 10^shift */
    *scale = places - exponent > 0 ? places - exponent : 0;
    if (*scale > COST_PLACES)
        return false;
    for (int i = 0; i < shift; i++)
        mantissa *= 10;
    *units = negative ? -mantissa : mantissa;
    return true;
}

/* Prints v with `places` digits after the point out of its last `units_places` (0 for integers). */
static void print_wide(wide_t v, int units_places, int places, char *out)
{
    char digits[64];
    int n = 0;
    bool negative = v < 0;
    unsigned __int128 u = negative ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
    do {
        digits[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u != 0 || n <= units_places); /* at least one digit before the point */
    char *o = out;
    if (negative)
        *o++ = '-';
    for (int i = n - 1; i >= units_places; i--)
        *o++ = digits[i];
    if (places > 0) {
        *o++ = '.';
        for (int i = units_places - 1; i >= units_places - places; i--)
            *o++ = digits[i];
    }
    *o = '\0';
}

static void add_wide(pd_pgarray_t *a, wide_t v, int units_places, int places)
{
    char text[80];
    print_wide(v, units_places, places, text);
    pd_pgarray_text(a, text, strlen(text));
}

typedef struct sort_ctx {
    const pd_store_row_t *rows;
    const char *text;
} sort_ctx_t;

/* Byte order of two signatures of the text. */
static int compare_sigs(const char *text, const struct pd__occurrence *x,
                        const struct pd__occurrence *y)
{
    size_t n = x->sig_len < y->sig_len ? x->sig_len : y->sig_len;
    int c = memcmp(text + x->sig_off, text + y->sig_off, n);
    return c != 0 ? c : (x->sig_len > y->sig_len) - (x->sig_len < y->sig_len);
}

/* By signature (byte order), then week, then the record's position in the batch. */
static int compare_occurrence(const void *a, const void *b, void *arg)
{
    const sort_ctx_t *ctx = arg;
    const struct pd__occurrence *x = a, *y = b;
    int c = compare_sigs(ctx->text, x, y);
    if (c == 0)
        c = (x->week > y->week) - (x->week < y->week);
    if (c == 0) {
        size_t rx = ctx->rows[x->row].record, ry = ctx->rows[y->row].record;
        c = (rx > ry) - (rx < ry);
    }
    return c;
}

/* Adds one occurrence of record r, whose cost is c, to the run. */
static void add_to_run(run_t *run, const pd_record_t *r, const struct pd__cost *c)
{
    run->n++;
    run->tokens += r->total_tokens;
    run->cost += c->units;
    if (c->scale > run->cost_scale)
        run->cost_scale = c->scale;
    if (r->duration_ms > 0) {
        run->dur_n++;
        run->dur += r->duration_ms;
        run->dur_sq += (wide_t)r->duration_ms * r->duration_ms;
    }
    run->err += r->error_message.ptr != NULL && r->error_message.len > 0;
    run->retry += r->retry_count;
    if (r->has_start_time) {
        if (!run->has_start || r->start_time_us < run->first)
            run->first = r->start_time_us;
        if (!run->has_start || r->start_time_us > run->last)
            run->last = r->start_time_us;
        run->has_start = true;
    }
}

static void emit_run(pd__sums_t *s, const char *sig, size_t sig_len, const run_t *run,
                     const char *typical, size_t typical_len)
{
    pd_pgarray_t *c = s->col;
    pd_pgarray_text(&c[S_SIG], sig, sig_len);
    pd_pgarray_int(&c[S_N], run->n);
    add_wide(&c[S_TOKENS], run->tokens, 0, 0);
    add_wide(&c[S_COST], run->cost, COST_PLACES, run->cost_scale);
    pd_pgarray_int(&c[S_DUR_N], run->dur_n);
    add_wide(&c[S_DUR], run->dur, 0, 0);
    add_wide(&c[S_DUR_SQ], run->dur_sq, 0, 0);
    pd_pgarray_int(&c[S_ERR], run->err);
    add_wide(&c[S_RETRY], run->retry, 0, 0);
    if (run->has_start) {
        pd_pgarray_int(&c[S_FIRST], run->first);
        pd_pgarray_int(&c[S_LAST], run->last);
    } else {
        pd_pgarray_null(&c[S_FIRST]);
        pd_pgarray_null(&c[S_LAST]);
    }
    pd_pgarray_text(&c[S_TYPICAL], typical, typical_len);
}

/* One signature's occurrences and cost in one week. */
static void emit_week(pd__sums_t *s, const char *sig, size_t sig_len, int32_t week,
                      const run_t *run)
{
    pd_pgarray_t *c = s->col;
    pd_pgarray_text(&c[S_W_SIG], sig, sig_len);
    if (week == NO_WEEK)
        pd_pgarray_null(&c[S_W_WEEK]);
    else
        pd_pgarray_int(&c[S_W_WEEK], week);
    pd_pgarray_int(&c[S_W_N], run->n);
    add_wide(&c[S_W_COST], run->cost, COST_PLACES, run->cost_scale);
}

/* Lists the occurrences of the final versions, sorted; returns their count, or PD_ENOMEM. */
static long sort_occurrences(pd__sums_t *s, const pd_batch_t *batch, const pd_store_row_t *rows,
                             size_t n_rows, const char *text)
{
    size_t n = 0;
    for (size_t i = 0; i < n_rows; i++)
        n += (size_t)rows[i].n_signatures;
    if (n > s->occs_cap) {
        struct pd__occurrence *grown = realloc(s->occs, n * sizeof(*grown));
        if (grown == NULL)
            return PD_ENOMEM;
        s->occs = grown;
        s->occs_cap = n;
    }
    n = 0;
    for (size_t i = 0; i < n_rows; i++) {
        const pd_record_t *r = &batch->records[rows[i].record];
        if (r->unfinished)
            continue; /* counts nowhere yet */
        int32_t week = r->has_start_time ? week_of(r->start_time_us) : NO_WEEK;
        size_t at = rows[i].sigs_off, end = rows[i].sigs_off + rows[i].sigs_len;
        while (at < end) {
            const char *space = memchr(text + at, ' ', end - at);
            size_t len = space != NULL ? (size_t)(space - (text + at)) : end - at;
            s->occs[n++] =
                (struct pd__occurrence){.row = i, .sig_off = at, .sig_len = len, .week = week};
            at += len + 1;
        }
    }
    sort_ctx_t ctx = {rows, text};
    if (n > 1)
        qsort_r(s->occs, n, sizeof(*s->occs), compare_occurrence, &ctx);
    return (long)n;
}

/*
 * Converts the cost of every row with an occurrence.  Returns 0 when one
 * cannot be summed exactly (then nothing else is done), PD_ENOMEM when
 * memory ran out, else 1.
 */
static int convert_costs(pd__sums_t *s, const pd_batch_t *batch, const pd_store_row_t *rows,
                         size_t n)
{
    if (n > s->costs_cap) {
        struct pd__cost *grown = realloc(s->costs, n * sizeof(*grown));
        if (grown == NULL)
            return PD_ENOMEM;
        s->costs = grown;
        s->costs_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        if (rows[i].n_signatures > 0 && !cost_units(batch->records[rows[i].record].cost,
                                                    &s->costs[i].units, &s->costs[i].scale))
            return 0;
    }
    return 1;
}

int pd__sums_build(pd__sums_t *s, const pd_batch_t *batch, const pd_store_row_t *rows,
                   size_t n_rows, const char *text)
{
    int rc = convert_costs(s, batch, rows, n_rows);
    if (rc <= 0)
        return rc;
    long n = sort_occurrences(s, batch, rows, n_rows, text);
    if (n < 0)
        return (int)n;
    for (int c = 0; c < S_COUNT; c++)
        pd_pgarray_begin(&s->col[c], S_KIND[c]);
    for (long i = 0; i < n;) {
        const struct pd__occurrence *first = &s->occs[i];
        run_t run = {0}, week = {0};
        size_t typical = first->row; /* the earliest record of the run */
        long j = i;
        for (; j < n && compare_sigs(text, &s->occs[j], first) == 0; j++) {
            size_t row = s->occs[j].row;
            const pd_record_t *r = &batch->records[rows[row].record];
            add_to_run(&run, r, &s->costs[row]);
            add_to_run(&week, r, &s->costs[row]);
            if (rows[row].record < rows[typical].record)
                typical = row;
            if (j + 1 == n || compare_sigs(text, &s->occs[j + 1], first) != 0 ||
                s->occs[j + 1].week != s->occs[j].week) {
                emit_week(s, text + first->sig_off, first->sig_len, s->occs[j].week, &week);
                week = (run_t){0};
            }
        }
        emit_run(s, text + first->sig_off, first->sig_len, &run, text + rows[typical].chars_off,
                 rows[typical].chars_len);
        i = j;
    }
    for (int c = 0; c < S_COUNT; c++) {
        if (pd_pgarray_end(&s->col[c]) < 0)
            return PD_ENOMEM;
    }
    return 1;
}

void pd__sums_close(pd__sums_t *s)
{
    for (int c = 0; c < S_COUNT; c++)
        pd_pgarray_close(&s->col[c]);
    free(s->occs);
    free(s->costs);
}
