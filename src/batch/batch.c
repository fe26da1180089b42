/*
 * Batches: the unit of work between the loop thread and the writers.
 *
 * The loop thread fills a batch (directly for an HTTP request, through the
 * batcher for files), hands it to the pool, and gets it back with an
 * outcome per record, which pd_batch_tally() counts.  A batch has one owner
 * at a time, so nothing in it is locked.
 */
#define _GNU_SOURCE /* qsort_r */
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

const char *pd_outcome_name(pd_outcome_t outcome)
{
    switch (outcome) {
    case PD_OUTCOME_PROCESSED:
        return "processed";
    case PD_OUTCOME_REVISED:
        return "revised";
    case PD_OUTCOME_DUPLICATE:
        return "duplicate";
    case PD_OUTCOME_STALE:
        return "stale";
    case PD_OUTCOME_CONFLICT:
        return "conflict";
    default:
        return "error";
    }
}

/* Lower first: no version, then by version. */
static int compare_versions(const pd_record_t *a, const pd_record_t *b)
{
    if (a->has_version != b->has_version)
        return a->has_version ? 1 : -1;
    if (!a->has_version)
        return 0;
    return (a->version_us > b->version_us) - (a->version_us < b->version_us);
}

/* By workflow_id in byte order, then the highest version first, then batch order. */
static int compare_kept(const void *x, const void *y, void *arg)
{
    const pd_batch_t *batch = arg;
    size_t i = *(const size_t *)x, j = *(const size_t *)y;
    const pd_record_t *a = &batch->records[i], *b = &batch->records[j];
    int c = strcmp(a->workflow_id, b->workflow_id);
    if (c == 0)
        c = -compare_versions(a, b);
    if (c == 0)
        c = (i > j) - (i < j);
    return c;
}

size_t pd_batch_pick_versions(pd_batch_t *batch, size_t *kept)
{
    for (size_t i = 0; i < batch->count; i++)
        kept[i] = i;
    if (batch->count > 1)
        qsort_r(kept, batch->count, sizeof(*kept), compare_kept, batch);
    size_t n = 0;
    for (size_t k = 0; k < batch->count; k++) {
        const pd_record_t *r = &batch->records[kept[k]];
        const pd_record_t *winner = n > 0 ? &batch->records[kept[n - 1]] : NULL;
        if (winner == NULL || strcmp(winner->workflow_id, r->workflow_id) != 0) {
            kept[n++] = kept[k];
            continue;
        }
        pd_outcome_t *o = &batch->outcomes[kept[k]];
        if (compare_versions(r, winner) < 0)
            *o = PD_OUTCOME_STALE;
        else
            *o = r->digest == winner->digest ? PD_OUTCOME_DUPLICATE : PD_OUTCOME_CONFLICT;
    }
    return n;
}

void pd_batch_tally(pd_tally_t *tally, const pd_batch_t *batch)
{
    for (size_t i = 0; i < batch->count; i++) {
        switch (batch->outcomes[i]) {
        case PD_OUTCOME_PROCESSED:
            tally->processed++;
            break;
        case PD_OUTCOME_REVISED:
            tally->revised++;
            break;
        case PD_OUTCOME_DUPLICATE:
            tally->duplicates++;
            break;
        case PD_OUTCOME_STALE:
            tally->stale++;
            break;
        case PD_OUTCOME_CONFLICT:
            tally->conflicts++;
            break;
        default:
            tally->errors++;
        }
    }
    tally->total_patterns += batch->total_patterns;
    tally->new_patterns += batch->new_patterns;
    tally->batches++;
}

long pd_tally_settled(const pd_tally_t *tally)
{
    return tally->processed + tally->duplicates + tally->revised + tally->stale + tally->conflicts;
}
