/*
 * POST /v1/workflows, once its key is verified: the body becomes one batch
 * of the key's tenant, the writers commit it, and the answer goes out after
 * the commit, so every "processed" or "duplicate" in an answer is durable.
 *
 * Thread: the loop thread (the batch itself is written by a writer thread).
 * Records are validated exactly as `patternd ingest` validates them; a
 * record of another tenant is rejected and nothing of it is written.  When
 * the writers' queue is full the request is refused at once with 503, so
 * nothing is buffered beyond the bound.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/record.h"
#include "pd/service.h"
#include "pd/source.h"

static pd_result_t *add_result(pd_call_t *call, long line)
{
    if (call->n_results == call->cap_results) {
        size_t cap = call->cap_results ? call->cap_results * 2 : 64;
        pd_result_t *grown = realloc(call->results, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        call->results = grown;
        call->cap_results = cap;
    }
    pd_result_t *r = &call->results[call->n_results++];
    *r = (pd_result_t){.line = line, .record = -1};
    return r;
}

static int reject(pd_call_t *call, pd_result_t *r, const char *field, const char *message)
{
    snprintf(r->field, sizeof(r->field), "%s", field);
    r->error = strdup(message);
    call->rejected++;
    return r->error != NULL ? PD_OK : PD_ENOMEM;
}

/* One record of the body: line is its NDJSON line (0 in an array). */
static int take_record(void *ctx, long line, const char *data, size_t len, bool oversize)
{
    pd_call_t *call = ctx;
    pd_error_t err;
    pd_record_t rec;
    pd_result_t *r = add_result(call, line);
    if (r == NULL)
        return PD_ENOMEM;
    if (oversize) {
        char message[128];
        snprintf(message, sizeof(message), "record of %zu bytes exceeds the maximum of %zu", len,
                 call->sv->max_record);
        return reject(call, r, "", message);
    }
    const char *tenant = call->rj.key.tenant;
    long number = line > 0 ? line : (long)call->n_results;
    int rc = pd_record_parse(data, len, number, tenant, &rec, &err);
    if (rc == PD_EINVAL)
        return reject(call, r, err.field, err.message);
    if (rc < 0)
        return rc;
    if (strcmp(rec.tenant_id, tenant) != 0) {
        char message[256];
        snprintf(message, sizeof(message),
                 "tenant_id '%s' is not the tenant of the API key; nothing of this record "
                 "was written",
                 rec.tenant_id);
        pd_record_close(&rec);
        return reject(call, r, "tenant_id", message);
    }
    r->record = (long)call->batch->count;
    pd_batch_add(call->batch, &rec);
    return PD_OK;
}

void pd_service_ingest(pd_call_t *call)
{
    pd_service_t *sv = call->sv;
    if (pd_pool_full(sv->writers)) {
        pd_call_fail(call, 503, "busy: the write queue is full; retry later");
        return;
    }
    size_t len, capacity = 1;
    char *body = pd_http_body(call->req, &len);
    bool array = pd_body_is_array(pd_http_content_type(call->req), body, len);
    if (pd_body_count(body, len, array, &capacity) < 0) {
        pd_call_fail(call, 400, "the body is not a well-formed JSON array of records");
        return;
    }
    if (pd_batch_create(capacity > 0 ? capacity : 1, &call->batch) < 0) {
        pd_call_fail(call, 503, "out of memory");
        return;
    }
    call->batch->owner = call;
    if (pd_body_split(body, len, array, sv->max_record, take_record, call) < 0) {
        pd_call_fail(call, 503, "out of memory");
        return;
    }
    if (call->batch->count == 0) {
        pd_call_answer_batch(call);
        return;
    }
    pd_pool_submit(sv->writers, &call->batch->job);
}

void pd_service_on_batch_done(void *ctx, pd_job_t *job)
{
    (void)ctx;
    pd_call_answer_batch(pd_batch_of(job)->owner);
}
