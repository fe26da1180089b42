/*
 * One open batch per tenant; see include/pd/batch.h.
 *
 * Thread: the loop thread.  A batch holds one tenant's records so that its
 * transaction is scoped to that tenant (row-level security) and the write
 * statements take the tenant as a scalar.  Files mix tenants, so records
 * are sorted into per-tenant batches as they arrive; a full batch goes to
 * the writers at once, the rest when the input ends.
 */
#include <string.h>

#include "pd/batch.h"

void pd_batcher_init(pd_batcher_t *b, size_t batch_size,
                     void (*submit)(void *ctx, pd_batch_t *batch), void *ctx)
{
    *b = (pd_batcher_t){.batch_size = batch_size, .submit = submit, .ctx = ctx};
}

/* Sends open[i] off and closes its slot. */
static void submit_open(pd_batcher_t *b, int i)
{
    pd_batch_t *batch = b->open[i];
    b->open[i] = b->open[--b->n_open];
    b->open[b->n_open] = NULL;
    b->submit(b->ctx, batch);
}

/* The open batch's slot for tenant, opening one (maybe sending the fullest off) if needed. */
static int slot_for(pd_batcher_t *b, const char *tenant)
{
    for (int i = 0; i < b->n_open; i++) {
        if (strcmp(b->open[i]->records[0].tenant_id, tenant) == 0)
            return i;
    }
    if (b->n_open == PD_OPEN_BATCHES) {
        int fullest = 0;
        for (int i = 1; i < b->n_open; i++) {
            if (b->open[i]->count > b->open[fullest]->count)
                fullest = i;
        }
        submit_open(b, fullest);
    }
    int rc = pd_batch_create(b->batch_size, &b->open[b->n_open]);
    return rc < 0 ? rc : b->n_open++;
}

int pd_batcher_add(pd_batcher_t *b, pd_record_t *rec)
{
    int i = slot_for(b, rec->tenant_id);
    if (i < 0) {
        pd_record_close(rec);
        return i;
    }
    pd_batch_add(b->open[i], rec);
    if (b->open[i]->count == b->batch_size)
        submit_open(b, i);
    return PD_OK;
}

void pd_batcher_flush(pd_batcher_t *b)
{
    while (b->n_open > 0)
        submit_open(b, b->n_open - 1);
}

void pd_batcher_close(pd_batcher_t *b)
{
    for (int i = 0; i < b->n_open; i++)
        pd_batch_destroy(b->open[i]);
    b->n_open = 0;
}
