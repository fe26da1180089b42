/*
 * POST /v1/workflows, once its key is verified: the request is admitted
 * (a place in the write path, within its tenant's share), its body is read
 * and parsed as it arrives, and the records become one batch of the key's
 * tenant; the writers commit it, and the answer goes out after the commit,
 * so every "processed" or "duplicate" in an answer is durable.
 *
 * Thread: the loop thread, one body chunk (64 KiB read, or 64 KiB
 * inflated) at a time, so a large body never stalls other connections.
 * Memory per request is bounded by configuration: the records of at most
 * --max-records, each at most --max-record-bytes, of a body of at most
 * --max-body-bytes after decompression; one record's bytes are buffered at
 * a time.  Records are validated exactly as `patternd ingest` validates
 * them; a record of another tenant is rejected and nothing of it written.
 *
 * Content-Encoding: none, identity or gzip (inflated here; the inflated
 * size counts against --max-body-bytes, so a small bomb is refused with
 * 413); anything else gets 415.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "pd/log.h"
#include "pd/record.h"
#include "pd/service.h"
#include "pd/source.h"

#define INFLATE_CHUNK (64 * 1024)

/* Why a body was refused, from inside the parser's callback. */
enum { TOO_MANY_RECORDS = 1 };

struct pd_upload {
    pd_body_parser_t parser;
    bool gzip;
    bool gzip_ended; /* the gzip stream's end was read */
    z_stream z;
    char *inflated;        /* INFLATE_CHUNK bytes, for gzip bodies */
    size_t inflated_bytes; /* of a gzip body, inflated */
    int status;            /* why the body was refused, with message */
    char message[160];
};

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

/* Keeps field and reason for the first PD_RESULTS_DETAILED rejections; counts them all. */
static int reject(pd_call_t *call, pd_result_t *r, const char *field, const char *message)
{
    if (call->rejected++ >= PD_RESULTS_DETAILED)
        return PD_OK;
    snprintf(r->field, sizeof(r->field), "%s", field);
    r->error = strdup(message);
    return r->error != NULL ? PD_OK : PD_ENOMEM;
}

/* One record of the body: line is its NDJSON line (0 in an array). */
static int take_record(void *ctx, long line, const char *data, size_t len, bool oversize)
{
    pd_call_t *call = ctx;
    pd_error_t err;
    pd_record_t rec;
    if (call->n_results >= call->sv->max_records)
        return TOO_MANY_RECORDS;
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
    return pd_batch_push(call->batch, &rec);
}

/* Says why the body is refused; returns the status for the server. */
__attribute__((format(printf, 3, 4))) static int refuse(pd_upload_t *u, int status, const char *fmt,
                                                        ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->message, sizeof(u->message), fmt, ap);
    va_end(ap);
    u->status = status;
    return status;
}

/* The status and reason refusing a body whose parser returned rc (non-zero). */
static int refuse_parse(pd_upload_t *u, int rc, size_t max_records)
{
    if (rc == TOO_MANY_RECORDS)
        return refuse(u, 413, "more than %zu records in one request; send them in several",
                      max_records);
    if (rc == PD_EINVAL)
        return refuse(u, 400, "the body is not a well-formed JSON array of records");
    return refuse(u, 503, "out of memory");
}

/* Parses bytes of the body (inflated when gzip); returns 0 or the status refusing it. */
static int parse_bytes(pd_call_t *call, char *data, size_t len)
{
    pd_upload_t *u = call->upload;
    int rc = pd_body_parser_push(&u->parser, data, len);
    return rc != 0 ? refuse_parse(u, rc, call->sv->max_records) : 0;
}

static int inflate_bytes(pd_call_t *call, char *data, size_t len)
{
    pd_upload_t *u = call->upload;
    u->z.next_in = (unsigned char *)data;
    u->z.avail_in = (unsigned)len;
    for (;;) {
        u->z.next_out = (unsigned char *)u->inflated;
        u->z.avail_out = INFLATE_CHUNK;
        int zrc = inflate(&u->z, Z_NO_FLUSH);
        if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR)
            return refuse(u, 400, "the gzip body is corrupt: %s", u->z.msg ? u->z.msg : "");
        size_t out = INFLATE_CHUNK - u->z.avail_out;
        /* The server bounds the bytes received; the inflated ones are bounded here. */
        u->inflated_bytes += out;
        if (u->inflated_bytes > call->sv->max_body)
            return refuse(u, 413, "the body inflates past the maximum of %zu bytes",
                          call->sv->max_body);
        int status = out > 0 ? parse_bytes(call, u->inflated, out) : 0;
        if (status != 0)
            return status;
        if (zrc == Z_STREAM_END) {
            u->gzip_ended = true;
            return u->z.avail_in > 0 ? refuse(u, 400, "bytes after the end of the gzip stream") : 0;
        }
        /* A full output buffer may leave more output pending even with no input left. */
        if ((u->z.avail_in == 0 && u->z.avail_out > 0) || (zrc == Z_BUF_ERROR && out == 0))
            return 0;
    }
}

/* The body sink: the next bytes as they arrive. */
static int on_body_data(void *ctx, char *data, size_t len)
{
    pd_call_t *call = ctx;
    return call->upload->gzip ? inflate_bytes(call, data, len) : parse_bytes(call, data, len);
}

static void on_body_end(void *ctx, int status)
{
    pd_call_t *call = ctx;
    pd_upload_t *u = call->upload;
    if (status == 0 && u->gzip && !u->gzip_ended)
        status = refuse(u, 400, "the gzip body is cut short");
    if (status == 0) {
        int rc = pd_body_parser_finish(&u->parser);
        if (rc != 0)
            status = refuse_parse(u, rc, call->sv->max_records);
    }
    if (status != 0) {
        const char *why = u->status == status ? u->message
                          : status == 413     ? "the body exceeds --max-body-bytes"
                          : status == 503     ? "busy: too many request bodies at once"
                          : status == 408     ? "the request did not arrive in time"
                                              : "the request could not be read";
        pd_call_fail(call, status < 0 ? 400 : status, why); /* dropped when the client left */
        return;
    }
    if (call->batch->count == 0) {
        pd_call_answer_batch(call);
        return;
    }
    /*
     * Fairness in the queue too: a tenant with nothing else in flight goes
     * ahead of the waiting batches, which are some busier tenant's backlog;
     * the others queue in order.
     */
    if (pd_admission_count(call->sv->admission, call->rj.key.tenant) <= 1)
        pd_pool_submit_first(call->sv->writers, &call->batch->job);
    else
        pd_pool_submit(call->sv->writers, &call->batch->job);
}

/* Sets up the body's decoding; false (having answered) when its encoding is not ours. */
static bool start_upload(pd_call_t *call)
{
    const char *enc = pd_http_content_encoding(call->req);
    bool gzip = enc != NULL && strcasecmp(enc, "gzip") == 0;
    if (enc != NULL && !gzip && strcasecmp(enc, "identity") != 0) {
        pd_call_fail(call, 415, "Content-Encoding: expected gzip or none");
        return false;
    }
    pd_upload_t *u = calloc(1, sizeof(*u));
    if (u == NULL || pd_batch_create(64, &call->batch) < 0) {
        free(u);
        pd_call_fail(call, 503, "out of memory");
        return false;
    }
    call->upload = u;
    call->batch->owner = call;
    u->gzip = gzip;
    int rc = pd_body_parser_init(&u->parser, pd_http_content_type(call->req), call->sv->max_record,
                                 take_record, call);
    if (rc == 0 && gzip) {
        u->inflated = malloc(INFLATE_CHUNK);
        rc = u->inflated != NULL && inflateInit2(&u->z, 16 + MAX_WBITS) == Z_OK ? 0 : PD_ENOMEM;
        if (rc < 0)
            u->gzip = false; /* nothing to end */
    }
    if (rc < 0) {
        pd_call_fail(call, 503, "out of memory");
        return false;
    }
    return true;
}

void pd_service_ingest(pd_call_t *call)
{
    pd_service_t *sv = call->sv;
    int status = pd_admission_enter(sv->admission, call->rj.key.tenant);
    if (status == 503) {
        pd_call_fail(call, 503, "busy: the write queue is full; retry later");
        return;
    }
    if (status == 429) {
        char message[200];
        snprintf(message, sizeof(message),
                 "tenant %s already has %zu requests in flight, its share of the write path; "
                 "retry later",
                 call->rj.key.tenant, pd_admission_tenant_limit(sv->admission));
        pd_call_fail(call, 429, message);
        return;
    }
    call->admitted = true;
    if (!pd_http_has_body(call->req)) {
        if (pd_batch_create(1, &call->batch) < 0)
            pd_call_fail(call, 503, "out of memory");
        else
            pd_call_answer_batch(call);
        return;
    }
    if (!start_upload(call))
        return;
    pd_http_body_sink_t sink = {.data = on_body_data, .end = on_body_end, .ctx = call};
    pd_http_read_body(call->req, &sink);
}

void pd_service_ingest_release(pd_call_t *call)
{
    if (call->admitted)
        pd_admission_leave(call->sv->admission, call->rj.key.tenant);
    call->admitted = false;
    pd_upload_t *u = call->upload;
    if (u == NULL)
        return;
    pd_body_parser_close(&u->parser);
    if (u->gzip)
        inflateEnd(&u->z);
    free(u->inflated);
    free(u);
    call->upload = NULL;
}

void pd_service_on_batch_done(void *ctx, pd_job_t *job)
{
    (void)ctx;
    pd_call_answer_batch(pd_batch_of(job)->owner);
}
