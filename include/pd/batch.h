/*
 * A batch: the records that one worker writes in one transaction, and what
 * became of each.
 *
 * The loop thread fills a batch with parsed records and submits it to the
 * pool; the worker that takes it detects, writes and fills in the outcome;
 * the loop thread reads the outcome back and destroys the batch.  Only one
 * thread owns a batch at a time.
 */
#ifndef PD_BATCH_H
#define PD_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "pd/error.h"
#include "pd/pool.h"
#include "pd/record.h"

/* What became of a record (docs/spec.md §3.4 and §4). */
typedef enum pd_outcome {
    PD_OUTCOME_PENDING = 0,
    PD_OUTCOME_PROCESSED, /* its workflow recorded now, for the first time */
    PD_OUTCOME_REVISED,   /* a later version: it replaced the recorded one */
    PD_OUTCOME_DUPLICATE, /* the version recorded already, with the same content */
    PD_OUTCOME_STALE,     /* an earlier version than the one recorded: nothing changed */
    PD_OUTCOME_CONFLICT,  /* the version recorded already, with other content: nothing changed */
    PD_OUTCOME_ERROR      /* could not be committed (database unreachable, ...) */
} pd_outcome_t;

/* The outcome's name in summaries and answers ("processed", "revised", ...). */
const char *pd_outcome_name(pd_outcome_t outcome);

typedef struct pd_batch {
    pd_job_t job;  /* the pool's link; first so a pd_job_t * converts back */
    int64_t token; /* random; tells this batch's committed rows from others' */
    pd_record_t *records;
    pd_outcome_t *outcomes; /* one per record */
    size_t count;
    size_t capacity;

    /* Filled by the worker. */
    long total_patterns; /* signatures detected in the processed records */
    long new_patterns;   /* pattern rows this batch created */
    int attempts;        /* transactions tried */
    double commit_ms;    /* the committed transaction, from BEGIN to COMMIT acknowledged */
    int rc;              /* 0, or why the batch failed */
    pd_error_t err;

    void *owner; /* the submitter's (an input file, an HTTP request) */
} pd_batch_t;

/* A new empty batch for up to capacity records; release with pd_batch_destroy(). */
int pd_batch_create(size_t capacity, pd_batch_t **out);

/* Moves rec into the batch (rec is left empty).  The batch must not be full. */
void pd_batch_add(pd_batch_t *batch, pd_record_t *rec);

/*
 * Moves rec into the batch, growing it when full: for batches whose size is
 * not known in advance (an HTTP body read as it arrives).  Returns 0, or
 * PD_ENOMEM with rec released.
 */
int pd_batch_push(pd_batch_t *batch, pd_record_t *rec);

/* Releases the batch and every record in it; NULL is fine. */
void pd_batch_destroy(pd_batch_t *batch);

/*
 * Keeps one record per workflow_id: the highest version (docs/spec.md
 * §3.4; no updated_at is the lowest), the first in the batch of equals.
 * Every other record of that workflow is settled here against the kept
 * one: PD_OUTCOME_STALE (a lower version), PD_OUTCOME_DUPLICATE (the same
 * version and content) or PD_OUTCOME_CONFLICT (the same version, other
 * content).  kept (room for batch->count) gets the kept records' indexes
 * in lock order, workflow_id in byte order; returns how many.
 */
size_t pd_batch_pick_versions(pd_batch_t *batch, size_t *kept);

static inline pd_batch_t *pd_batch_of(pd_job_t *job)
{
    return (pd_batch_t *)job;
}

/* What became of the records of one run or one request: the counts of docs/spec.md §4. */
typedef struct pd_tally {
    long total;          /* records read */
    long processed;      /* recorded now, for the first time */
    long duplicates;     /* recorded before, the same version and content */
    long revised;        /* later versions that replaced the recorded one */
    long stale;          /* earlier versions than the recorded one */
    long conflicts;      /* the recorded version with other content */
    long rejected;       /* refused by validation (counted by the caller) */
    long errors;         /* could not be committed */
    long total_patterns; /* signatures detected in the processed records */
    long new_patterns;   /* pattern rows created */
    long batches;        /* batches finished */
} pd_tally_t;

/* Adds a finished batch's outcomes to the tally. */
void pd_batch_tally(pd_tally_t *tally, const pd_batch_t *batch);

/* Records settled by the database: processed, duplicates, revised, stale and conflicts. */
long pd_tally_settled(const pd_tally_t *tally);

/* Why a conflict changed nothing, as answers and the rejects file say it. */
#define PD_CONFLICT_MESSAGE                                                                        \
    "the recorded version of this workflow has the same updated_at and other content; nothing "    \
    "changed: send the new content with a later updated_at"

/*
 * The batcher: one open batch per tenant, since a batch is one tenant's
 * transaction (see store.c).  At most PD_OPEN_BATCHES are filled at once; a
 * record of yet another tenant first sends the fullest off.  Loop thread.
 */
#define PD_OPEN_BATCHES 64

typedef struct pd_batcher {
    pd_batch_t *open[PD_OPEN_BATCHES];
    int n_open;
    size_t batch_size;
    void (*submit)(void *ctx, pd_batch_t *batch); /* takes the batch */
    void *ctx;
} pd_batcher_t;

void pd_batcher_init(pd_batcher_t *b, size_t batch_size,
                     void (*submit)(void *ctx, pd_batch_t *batch), void *ctx);

/*
 * Moves rec into its tenant's open batch, submitting that batch when it is
 * full.  Returns 0, or PD_ENOMEM with rec released.
 */
int pd_batcher_add(pd_batcher_t *b, pd_record_t *rec);

/* Submits every open batch. */
void pd_batcher_flush(pd_batcher_t *b);

/* Releases the batches never submitted. */
void pd_batcher_close(pd_batcher_t *b);

#endif
