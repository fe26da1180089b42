/* Batches of records; see include/pd/batch.h. */
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
