/*
 * Batches: the unit of work between the loop thread and the writers.
 *
 * The loop thread fills a batch (directly for an HTTP request, through the
 * batcher for files), hands it to the pool, and gets it back with an
 * outcome per record, which pd_batch_tally() counts.  A batch has one owner
 * at a time, so nothing in it is locked.
 */
#include "pd/batch.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int pd_batch_create(size_t capacity, pd_batch_t **out)
{
    pd_batch_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return PD_ENOMEM;
    b->records = calloc(capacity, sizeof(*b->records));
    b->outcomes = calloc(capacity, sizeof(*b->outcomes));
    if (b->records == NULL || b->outcomes == NULL) {
        pd_batch_destroy(b);
        return PD_ENOMEM;
    }
    b->capacity = capacity;
    uint64_t token;
    randombytes_buf(&token, sizeof(token));
    b->token = (int64_t)(token >> 1); /* a positive bigint */
    *out = b;
    return PD_OK;
}

void pd_batch_add(pd_batch_t *batch, pd_record_t *rec)
{
    pd_record_move(&batch->records[batch->count], rec);
    batch->outcomes[batch->count] = PD_OUTCOME_PENDING;
    batch->count++;
}

int pd_batch_push(pd_batch_t *batch, pd_record_t *rec)
{
    if (batch->count == batch->capacity) {
        size_t cap = batch->capacity ? batch->capacity * 2 : 64;
        pd_record_t *records = realloc(batch->records, cap * sizeof(*records));
        if (records != NULL)
            batch->records = records;
        pd_outcome_t *outcomes = realloc(batch->outcomes, cap * sizeof(*outcomes));
        if (outcomes != NULL)
            batch->outcomes = outcomes;
        if (records == NULL || outcomes == NULL) {
            pd_record_close(rec);
            return PD_ENOMEM;
        }
        batch->capacity = cap;
    }
    pd_batch_add(batch, rec);
    return PD_OK;
}

void pd_batch_destroy(pd_batch_t *batch)
{
    if (batch == NULL)
        return;
    for (size_t i = 0; i < batch->count; i++)
        pd_record_close(&batch->records[i]);
    free(batch->records);
    free(batch->outcomes);
    free(batch);
}

void pd_batch_tally(pd_tally_t *tally, const pd_batch_t *batch)
{
    for (size_t i = 0; i < batch->count; i++) {
        switch (batch->outcomes[i]) {
        case PD_OUTCOME_PROCESSED:
            tally->processed++;
            break;
        case PD_OUTCOME_DUPLICATE:
            tally->duplicates++;
            break;
        default:
            tally->errors++;
        }
    }
    tally->total_patterns += batch->total_patterns;
    tally->new_patterns += batch->new_patterns;
    tally->batches++;
}
