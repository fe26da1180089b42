/*
 * A batch's occurrences summed per signature, in C (internal to src/db).
 *
 * When every workflow of a batch is new (the common case), what it adds to
 * operation_patterns and pattern_weeks is known before the statement runs:
 * the occurrences of its final versions.  The client sums them, and patternd_write_batch
 * adds one row per signature instead of aggregating the per-record arrays
 * (src/db/store.c says what that earns).  When some workflow was recorded
 * before, the server ignores these sums and aggregates the net changes
 * itself.
 *
 * The sums are exact and are the values PostgreSQL's own aggregation would
 * give, down to the numeric's scale: integers in 128 bits; each cost as the
 * shortest decimal that reads back as its double (the text the store
 * otherwise sends), added up in units of 10^-18, and printed with the
 * largest scale among its terms, as numeric addition does.  A cost whose
 * decimal has more than 18 places cannot be summed so: pd__sums_build()
 * then reports that the batch must be summed by the server.
 *
 * Threads: a pd__sums_t belongs to the writer thread of its store.
 */
#ifndef PD_DB_SUMS_H
#define PD_DB_SUMS_H

#include <stdbool.h>
#include <stddef.h>

#include "pd/batch.h"
#include "pd/pgarray.h"
#include "pd/store.h"

/* The statement's per-signature columns, in the order of its parameters. */
enum {
    S_SIG,     /* signature (text) */
    S_N,       /* occurrences (bigint) */
    S_TOKENS,  /* Σ total_tokens (numeric) */
    S_COST,    /* Σ actual_cost_total (numeric) */
    S_DUR_N,   /* occurrences with a positive duration (bigint) */
    S_DUR,     /* Σ duration in ms over those (numeric) */
    S_DUR_SQ,  /* Σ duration² (numeric) */
    S_ERR,     /* occurrences with a non-empty error_message (bigint) */
    S_RETRY,   /* Σ retry_count (numeric) */
    S_FIRST,   /* earliest start_time, µs since the epoch (bigint, NULL when none) */
    S_LAST,    /* latest start_time (bigint, NULL when none) */
    S_TYPICAL, /* characteristics of the first workflow in batch order (text) */
    /* Then one element per signature and week (docs/spec.md §6), in that order: */
    S_W_SIG,  /* signature (text) */
    S_W_WEEK, /* the Monday of start_time's ISO week, days since the epoch (integer, NULL when
                 there is no start_time: the server puts those in the week it records them) */
    S_W_N,    /* occurrences (bigint) */
    S_W_COST, /* Σ actual_cost_total (numeric) */
    S_COUNT
};

typedef struct pd__sums {
    pd_pgarray_t col[S_COUNT];
    struct pd__occurrence *occs; /* scratch: the batch's occurrences, sorted */
    size_t occs_cap;
    struct pd__cost *costs; /* scratch: each item's cost, converted for summing */
    size_t costs_cap;
} pd__sums_t;

/*
 * Sums the occurrences of the final versions among rows[0..n) (records of
 * batch, their signatures and characteristics in text) into the columns.
 * Returns 1 when built, 0 when a cost cannot be summed exactly in C,
 * PD_ENOMEM when memory ran out.
 */
int pd__sums_build(pd__sums_t *sums, const pd_batch_t *batch, const pd_store_row_t *rows, size_t n,
                   const char *text);

void pd__sums_close(pd__sums_t *sums);

#endif
