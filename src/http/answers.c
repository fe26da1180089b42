/*
 * The service's answers: JSON bodies built with jansson, the headers their
 * status needs, and the request and record counts they add to the metrics.
 *
 * Thread: the loop thread, which alone may answer a request.  Every call
 * ends here, in exactly one pd_call_respond() followed by pd_call_free(),
 * or in pd_call_fail() / pd_call_answer_batch(), which do both.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "pd/json.h"
#include "pd/log.h"
#include "pd/service.h"

static json_t *text(const char *s)
{
    return pd_json_text(s, strlen(s));
}

void pd_call_respond(pd_call_t *call, int status, const char *extra, const char *body, size_t len)
{
    pd_service_t *sv = call->sv;
    pd_metrics_request(sv->metrics, call->route, status);
    pd_log(PD_LOG_DEBUG, "loop", "request=%llu %s %s status=%d ms=%.1f",
           (unsigned long long)pd_http_request_id(call->req), pd_http_method(call->req),
           call->route, status, (double)(uv_hrtime() - call->started_ns) / 1e6);
    pd_http_respond(call->req, status, "application/json", extra, body, len, false);
}

void pd_call_free(pd_call_t *call)
{
    pd_service_ingest_release(call);
    for (size_t i = 0; i < call->n_results; i++)
        free(call->results[i].error);
    free(call->results);
    pd_batch_destroy(call->batch);
    free(call->rj.body);
    free(call);
}

/* Answers doc (stolen) as the body, with a newline; 503 when it cannot be rendered. */
static void respond_doc(pd_call_t *call, int status, const char *extra, json_t *doc)
{
    char *body = doc != NULL ? json_dumps(doc, JSON_REAL_PRECISION(17)) : NULL;
    json_decref(doc);
    if (body == NULL) {
        static const char oom[] = "{\"error\": \"out of memory\"}\n";
        pd_call_respond(call, 503, "Retry-After: 1\r\n", oom, sizeof(oom) - 1);
        return;
    }
    size_t len = strlen(body);
    char *line = realloc(body, len + 2);
    if (line != NULL) {
        body = line;
        body[len++] = '\n';
        body[len] = '\0';
    }
    pd_call_respond(call, status, extra, body, len);
    free(body);
}

void pd_call_fail(pd_call_t *call, int status, const char *message)
{
    const char *extra = "";
    if (status == 401)
        extra = "WWW-Authenticate: Bearer realm=\"patternd\"\r\n";
    else if (status == 503 || status == 429)
        extra = "Retry-After: 1\r\n";
    respond_doc(call, status, extra, json_pack("{s:o}", "error", text(message)));
    pd_call_free(call);
}

static json_t *workflow_id(const pd_record_t *rec)
{
    if (rec->workflow_id_is_int)
        return json_integer((json_int_t)strtoll(rec->workflow_id, NULL, 10));
    return json_string(rec->workflow_id);
}

/* One record's entry of "results". New reference. */
static json_t *result_json(const pd_call_t *call, size_t i)
{
    const pd_result_t *r = &call->results[i];
    const pd_batch_t *batch = call->batch;
    json_t *o = json_pack("{s:I}", "index", (json_int_t)i);
    if (o == NULL)
        return NULL;
    if (r->line > 0)
        json_object_set_new(o, "line", json_integer(r->line));
    if (r->record < 0) {
        json_object_set_new(o, "workflow_id", json_null());
        json_object_set_new(o, "status", json_string("rejected"));
        if (r->error == NULL)
            return o; /* past PD_RESULTS_DETAILED: counted, not spelled out */
        if (r->field[0] != '\0')
            json_object_set_new(o, "field", text(r->field));
        json_object_set_new(o, "error", text(r->error));
        return o;
    }
    json_object_set_new(o, "workflow_id", workflow_id(&batch->records[r->record]));
    switch (batch->outcomes[r->record]) {
    case PD_OUTCOME_PROCESSED:
        json_object_set_new(o, "status", json_string("processed"));
        break;
    case PD_OUTCOME_DUPLICATE:
        json_object_set_new(o, "status", json_string("duplicate"));
        break;
    default:
        json_object_set_new(o, "status", json_string("error"));
        json_object_set_new(o, "error",
                            text(batch->err.message[0] ? batch->err.message : "not committed"));
    }
    return o;
}

/* Counts the request's records in the metrics and logs a failed batch. */
static void count_batch(pd_call_t *call, const pd_tally_t *t)
{
    pd_service_t *sv = call->sv;
    const pd_batch_t *batch = call->batch;
    long counts[PD_M_OUTCOMES] = {0};
    counts[PD_M_PROCESSED] = t->processed;
    counts[PD_M_DUPLICATE] = t->duplicates;
    counts[PD_M_REJECTED] = t->rejected;
    counts[PD_M_ERROR] = t->errors;
    pd_metrics_records(sv->metrics, call->rj.key.tenant, counts);
    if (batch->count > 0 && batch->rc == 0 && batch->commit_ms > 0)
        pd_metrics_commit(sv->metrics, batch->commit_ms);
    if (batch->rc < 0)
        pd_log(PD_LOG_WARN, "loop", "request=%llu tenant=%s: %zu records not committed: %s",
               (unsigned long long)pd_http_request_id(call->req), call->rj.key.tenant, batch->count,
               batch->err.message);
}

void pd_call_answer_batch(pd_call_t *call)
{
    pd_tally_t t = {.rejected = call->rejected};
    pd_batch_tally(&t, call->batch);
    count_batch(call, &t);
    json_t *results = json_array();
    for (size_t i = 0; results != NULL && i < call->n_results; i++) {
        if (json_array_append_new(results, result_json(call, i)) < 0) {
            json_decref(results);
            results = NULL;
        }
    }
    json_t *doc =
        results == NULL
            ? NULL
            : json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "total_workflows",
                        (json_int_t)call->n_results, "processed", (json_int_t)t.processed,
                        "duplicates", (json_int_t)t.duplicates, "rejected", (json_int_t)t.rejected,
                        "total_patterns", (json_int_t)t.total_patterns, "new_patterns",
                        (json_int_t)t.new_patterns, "errors", (json_int_t)t.errors, "results",
                        results);
    respond_doc(call, t.rejected > 0 || t.errors > 0 ? 207 : 200, "", doc);
    pd_call_free(call);
}
