/*
 * POST /v1/workflows; see ingest.h.  Every "processed" or "duplicate" in an
 * answer is durable: the answer goes out after the commit.
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
 *
 * An upload is the request's state from admission to answer; it is
 * released, with its place in the admission, when the request is answered.
 */
#include "ingest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "pd/batch.h"
#include "pd/log.h"
#include "pd/record.h"
#include "pd/source.h"
#include "results.h"

#define INFLATE_CHUNK (64 * 1024)

/* Why a body was refused, from inside the parser's callback. */
enum { TOO_MANY_RECORDS = 1 };

typedef struct upload {
    const pd__ingest_t *ingest;
    pd__call_t *call;
    pd_batch_t *batch; /* the records accepted, in body order */
    pd__results_t results;
    pd_body_parser_t *parser; /* NULL until the body is read */
    bool gzip;
    bool gzip_ended; /* the gzip stream's end was read */
    z_stream z;
    char *inflated;        /* INFLATE_CHUNK bytes, for gzip bodies */
    size_t inflated_bytes; /* of a gzip body, inflated */
    int status;            /* why the body was refused, with message */
    char message[160];
} upload_t;

/* Releases the upload and the request's place in the write path; the call stays. */
static void release(upload_t *u)
{
    pd_admission_leave(u->ingest->admission, u->call->key.tenant);
    if (u->parser != NULL)
        pd_body_parser_close(u->parser);
    free(u->parser);
    if (u->gzip)
        inflateEnd(&u->z);
    free(u->inflated);
    pd__results_close(&u->results);
    pd_batch_destroy(u->batch);
    free(u);
}

/* Releases the upload and answers {"error": message} (which may be the upload's own). */
static void fail(upload_t *u, int status, const char *message)
{
    pd__call_t *call = u->call;
    char why[sizeof(u->message)];
    snprintf(why, sizeof(why), "%s", message);
    release(u);
    pd__call_fail(call, status, why);
}

/* Counts the request's records in the metrics and logs a failed batch. */
static void count(const upload_t *u, const pd_tally_t *t)
{
    const pd_batch_t *batch = u->batch;
    const char *tenant = u->call->key.tenant;
    long counts[PD_M_OUTCOMES] = {0};
    counts[PD_M_PROCESSED] = t->processed;
    counts[PD_M_DUPLICATE] = t->duplicates;
    counts[PD_M_REJECTED] = t->rejected;
    counts[PD_M_ERROR] = t->errors;
    pd_metrics_records(u->ingest->metrics, tenant, counts);
    if (batch->count > 0 && batch->rc == 0 && batch->commit_ms > 0)
        pd_metrics_commit(u->ingest->metrics, batch->commit_ms);
    if (batch->rc < 0)
        pd_log(PD_LOG_WARN, "loop", "request=%llu tenant=%s: %zu records not committed: %s",
               (unsigned long long)pd_http_request_id(u->call->req), tenant, batch->count,
               batch->err.message);
}

/*
 * Answers after the batch finished (or when it had no record): 200, or 207
 * when a record was rejected, could not be committed, or was a conflict.
 */
static void answer(upload_t *u)
{
    pd_tally_t t = {.rejected = u->results.rejected};
    pd_batch_tally(&t, u->batch);
    count(u, &t);
    json_t *doc = pd__results_json(&u->results, u->batch, &t);
    pd__call_t *call = u->call;
    release(u);
    pd__call_answer_json(call, t.rejected > 0 || t.errors > 0 || t.conflicts > 0 ? 207 : 200, "",
                         doc);
}

/* One record of the body: line is its NDJSON line (0 in an array). */
static int take_record(void *ctx, long line, const char *data, size_t len, bool oversize)
{
    upload_t *u = ctx;
    pd__results_t *rs = &u->results;
    pd_error_t err;
    pd_record_t rec;
    if (rs->n >= u->ingest->max_records)
        return TOO_MANY_RECORDS;
    pd__result_t *r = pd__results_add(rs, line);
    if (r == NULL)
        return PD_ENOMEM;
    if (oversize) {
        char message[128];
        snprintf(message, sizeof(message), "record of %zu bytes exceeds the maximum of %zu", len,
                 u->ingest->max_record);
        return pd__results_reject(rs, r, NULL, "", message);
    }
    const char *tenant = u->call->key.tenant;
    long number = line > 0 ? line : (long)rs->n;
    int rc = pd_record_parse(data, len, number, tenant, &rec, &err);
    if (rc == PD_EINVAL) /* rec holds nothing to release, but its workflow_id when it parsed */
        return pd__results_reject(rs, r, &rec, err.field, err.message);
    if (rc < 0)
        return rc;
    if (strcmp(rec.tenant_id, tenant) != 0) {
        char message[256];
        snprintf(message, sizeof(message),
                 "tenant_id '%s' is not the tenant of the API key; nothing of this record "
                 "was written",
                 rec.tenant_id);
        rc = pd__results_reject(rs, r, &rec, "tenant_id", message);
        pd_record_close(&rec);
        return rc;
    }
    r->record = (long)u->batch->count;
    return pd_batch_push(u->batch, &rec);
}

/* Says why the body is refused; returns the status for the server. */
__attribute__((format(printf, 3, 4))) static int refuse(upload_t *u, int status, const char *fmt,
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
static int refuse_parse(upload_t *u, int rc)
{
    if (rc == TOO_MANY_RECORDS)
        return refuse(u, 413, "more than %zu records in one request; send them in several",
                      u->ingest->max_records);
    if (rc == PD_EINVAL)
        return refuse(u, 400, "the body is not a well-formed JSON array of records");
    return refuse(u, 503, "out of memory");
}

/* Parses bytes of the body (inflated when gzip); returns 0 or the status refusing it. */
static int parse_bytes(upload_t *u, char *data, size_t len)
{
    int rc = pd_body_parser_push(u->parser, data, len);
    return rc != 0 ? refuse_parse(u, rc) : 0;
}

static int inflate_bytes(upload_t *u, char *data, size_t len)
{
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
        if (u->inflated_bytes > u->ingest->max_body)
            return refuse(u, 413, "the body inflates past the maximum of %zu bytes",
                          u->ingest->max_body);
        int status = out > 0 ? parse_bytes(u, u->inflated, out) : 0;
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
    upload_t *u = ctx;
    return u->gzip ? inflate_bytes(u, data, len) : parse_bytes(u, data, len);
}

static void on_body_end(void *ctx, int status)
{
    upload_t *u = ctx;
    if (status == 0 && u->gzip && !u->gzip_ended)
        status = refuse(u, 400, "the gzip body is cut short");
    if (status == 0) {
        int rc = pd_body_parser_finish(u->parser);
        if (rc != 0)
            status = refuse_parse(u, rc);
    }
    if (status != 0) {
        const char *why = u->status == status ? u->message
                          : status == 413     ? "the body exceeds --max-body-bytes"
                          : status == 503     ? "busy: too many request bodies at once"
                          : status == 408     ? "the request did not arrive in time"
                                              : "the request could not be read";
        fail(u, status < 0 ? 400 : status, why); /* dropped when the client left */
        return;
    }
    if (u->batch->count == 0) {
        answer(u);
        return;
    }
    /*
     * Fairness in the queue too: a tenant with nothing else in flight goes
     * ahead of the waiting batches, which are some busier tenant's backlog;
     * the others queue in order.
     */
    if (pd_admission_count(u->ingest->admission, u->call->key.tenant) <= 1)
        pd_pool_submit_first(u->ingest->writers, &u->batch->job);
    else
        pd_pool_submit(u->ingest->writers, &u->batch->job);
}

/* Sets up the body's decoding; 0, or the status (with u->message) refusing it. */
static int start_body(upload_t *u)
{
    const char *enc = pd_http_content_encoding(u->call->req);
    bool gzip = enc != NULL && strcasecmp(enc, "gzip") == 0;
    if (enc != NULL && !gzip && strcasecmp(enc, "identity") != 0)
        return refuse(u, 415, "Content-Encoding: expected gzip or none");
    if ((u->parser = malloc(sizeof(*u->parser))) == NULL)
        return refuse(u, 503, "out of memory");
    if (pd_body_parser_init(u->parser, pd_http_content_type(u->call->req), u->ingest->max_record,
                            take_record, u) < 0)
        return refuse(u, 503, "out of memory");
    if (gzip) {
        u->inflated = malloc(INFLATE_CHUNK);
        if (u->inflated == NULL || inflateInit2(&u->z, 16 + MAX_WBITS) != Z_OK)
            return refuse(u, 503, "out of memory");
        u->gzip = true; /* from here on there is a stream to end */
    }
    return 0;
}

void pd__ingest_start(const pd__ingest_t *ingest, pd__call_t *call)
{
    int status = pd_admission_enter(ingest->admission, call->key.tenant);
    if (status == 503) {
        pd__call_fail(call, 503, "busy: the write queue is full; retry later");
        return;
    }
    if (status == 429) {
        char message[200];
        snprintf(message, sizeof(message),
                 "tenant %s already has %zu requests in flight, its share of the write path; "
                 "retry later",
                 call->key.tenant, pd_admission_tenant_limit(ingest->admission));
        pd__call_fail(call, 429, message);
        return;
    }
    upload_t *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        pd_admission_leave(ingest->admission, call->key.tenant);
        pd__call_fail(call, 503, "out of memory");
        return;
    }
    u->ingest = ingest;
    u->call = call;
    bool body = pd_http_has_body(call->req);
    if (pd_batch_create(body ? 64 : 1, &u->batch) < 0) {
        fail(u, 503, "out of memory");
        return;
    }
    u->batch->owner = u;
    if (!body) {
        answer(u);
        return;
    }
    if ((status = start_body(u)) != 0) {
        fail(u, status, u->message);
        return;
    }
    pd_http_body_sink_t sink = {.data = on_body_data, .end = on_body_end, .ctx = u};
    pd_http_read_body(call->req, &sink);
}

void pd__ingest_on_batch_done(void *ctx, pd_job_t *job)
{
    (void)ctx;
    answer(pd_batch_of(job)->owner);
}
