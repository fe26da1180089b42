/*
 * `patternd serve`: multi-tenant ingestion over HTTP.
 *
 * Pipeline and threads:
 *   loop thread  runs the HTTP server (src/http.c), routes requests, parses
 *                and validates the records of a POST body into one batch
 *                (one request = one tenant = one batch, as store.c needs),
 *                answers, keeps the metrics, and handles the signals.
 *   writers      (a pd_pool) each own a pd_store_t, i.e. one PostgreSQL
 *                connection, and write one batch per transaction, exactly
 *                as `patternd ingest` does.
 *   readers      (a second, small pd_pool) each own one pd_db_t for the
 *                short reads: API key lookups, GET /v1/patterns and the
 *                /readyz check, so that they never wait behind batch writes
 *                and the loop thread never blocks on the database.
 * Finished jobs come back to the loop through the pools' uv_async_send.
 *
 * A POST /v1/workflows request: the key's tenant is read from the key
 * itself and the key is checked by a reader under that tenant (row-level
 * security); then, if the writers' queue has room (else 503 + Retry-After:
 * nothing is buffered beyond the bound), the body is parsed, records of
 * another tenant are rejected, the rest become one batch for the writers,
 * and the answer is sent after the batch committed: every "processed" or
 * "duplicate" in an answer is durable.
 *
 * Shutdown: the first SIGTERM or SIGINT stops accepting, closes idle
 * connections and lets every request already begun finish and be answered;
 * then the pools are closed and the command returns 0.  If that takes
 * longer than --drain-timeout, or on a second signal, the process exits at
 * once (status 1 or 130).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <utf8proc.h>
#include <uv.h>

#include "pd/batch.h"
#include "pd/cli.h"
#include "pd/db.h"
#include "pd/http.h"
#include "pd/jsonw.h"
#include "pd/keys.h"
#include "pd/lines.h"
#include "pd/log.h"
#include "pd/metrics.h"
#include "pd/migrate.h"
#include "pd/pool.h"
#include "pd/record.h"
#include "pd/store.h"

static const char USAGE[] =
    "usage: patternd serve [options]\n"
    "\n"
    "Serves multi-tenant ingestion over HTTP/1.1.  Each request authenticates with\n"
    "`Authorization: Bearer <key>` (see `patternd keys`) and acts for the key's tenant.\n"
    "\n"
    "  POST /v1/workflows    NDJSON (application/x-ndjson) or a JSON array of records;\n"
    "                        answered after commit with a summary and one result per\n"
    "                        record: 200 all processed or duplicates, 207 some rejected\n"
    "                        or failed, 401 bad key, 413 too large, 503 busy\n"
    "  GET /v1/patterns?top=N  the tenant's patterns by potential monthly savings\n"
    "  GET /healthz, /readyz, /metrics (Prometheus)\n"
    "\n"
    "Prints \"listening on HOST:PORT\" on standard output once it accepts connections.\n"
    "SIGTERM or SIGINT: stop accepting, answer the requests in flight, exit 0.\n"
    "\n"
    "  --db URL               database (default: $DATABASE_URL, else libpq's PG* variables);\n"
    "                         connect as a member of patternd_service, not as the owner\n"
    "  --listen HOST:PORT     address (default: 127.0.0.1:8080; port 0 picks a free one)\n"
    "  --workers N            writer threads, one connection each (default: 4)\n"
    "  --readers N            reader threads for keys, patterns, readiness (default: 2)\n"
    "  --queue N              batches that may wait for a writer before requests are\n"
    "                         refused with 503 (default: 2 x workers)\n"
    "  --max-body-bytes N     largest request body (default: 16777216)\n"
    "  --max-buffered-bytes N request bodies held at once (default: 268435456)\n"
    "  --max-record-bytes N   largest record (default: 1048576)\n"
    "  --max-connections N    (default: 1024)\n"
    "  --read-timeout S       a request must arrive whole within S seconds (default: 30)\n"
    "  --idle-timeout S       close keep-alive connections idle this long (default: 60)\n"
    "  --drain-timeout S      on SIGTERM, give in-flight requests this long (default: 40;\n"
    "                         keep it above --read-timeout)\n"
    "  --async-commit         synchronous_commit = off (answers may precede durability)\n"
    "  --retry-seconds N      give a batch up after retrying this long (default: 120)\n"
    "  --log-level L          debug, info (default), warn or error\n"
    "  --allow-rls-bypass     start even when the role bypasses row-level security\n"
    "                         (superuser, BYPASSRLS or table owner): for development only\n"
    "  -h, --help             show this help\n";

/* The routes, as metric labels. */
static const char R_WORKFLOWS[] = "/v1/workflows";
static const char R_PATTERNS[] = "/v1/patterns";
static const char R_HEALTHZ[] = "/healthz";
static const char R_READYZ[] = "/readyz";
static const char R_METRICS[] = "/metrics";
static const char R_OTHER[] = "other";

static const char SQL_BYPASS[] =
    "SELECT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)"
    " OR EXISTS (SELECT 1 FROM pg_class WHERE oid IN ('workflows'::regclass,"
    " 'operation_patterns'::regclass, 'pattern_occurrences'::regclass, 'api_keys'::regclass)"
    " AND pg_has_role(current_user, relowner, 'MEMBER')),"
    " current_user";

static const char SQL_PATTERNS[] =
    "SELECT id, tenant_id, pattern_signature, pattern_type, occurrence_count,"
    " avg_tokens_with_llm, avg_cost_with_llm::float8, avg_tokens_with_tool,"
    " avg_cost_with_tool::float8, typical_input_pattern::text, automation_status,"
    " confidence_score, potential_monthly_savings::float8,"
    " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
    " to_char(last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    " FROM operation_patterns WHERE tenant_id = $1"
    " ORDER BY potential_monthly_savings DESC, pattern_signature COLLATE \"C\""
    " LIMIT $2::bigint";

#define TOP_DEFAULT 20
#define TOP_MAX 10000
#define READER_QUEUE 256

typedef struct serve serve_t;

/* One request that waits for other threads. */
typedef struct call call_t;

typedef enum read_kind { J_AUTH, J_PATTERNS, J_READY } read_kind_t;

/* A reader's job; the loop thread fills the inputs, the reader the outputs. */
typedef struct read_job {
    pd_job_t job; /* first: the pool's link */
    read_kind_t kind;
    call_t *call;
    pd_key_t key;
    long top;
    /* Outputs. */
    int rc;
    bool valid; /* the key */
    bool ready;
    char *body; /* J_PATTERNS: the JSON answer, malloc'd */
    size_t len;
    pd_error_t err;
} read_job_t;

/* What became of one record of a POST body, in body order. */
typedef struct result {
    long line;   /* NDJSON line; 0 in a JSON array */
    long record; /* index in the batch, or -1 when rejected */
    char field[PD_FIELD_MAX];
    char *error; /* why it was rejected (malloc'd) */
} result_t;

struct call {
    serve_t *sv;
    pd_http_request_t *req;
    const char *route;
    read_job_t rj;
    uint64_t started_ns;
    /* POST /v1/workflows */
    result_t *results;
    size_t n_results, cap_results;
    pd_batch_t *batch;
    long rejected;
    int fail; /* PD_ENOMEM while parsing */
};

/* A writer thread's state. */
typedef struct writer {
    serve_t *sv;
    char name[24];
    pd_store_t *store;
    pd_store_stats_t seen; /* counters already added to the metrics */
} writer_t;

/* A reader thread's state. */
typedef struct reader {
    serve_t *sv;
    char name[24];
    pd_db_t *db;
} reader_t;

struct serve {
    uv_loop_t loop;
    pd_http_server_t *http;
    pd_pool_t *writers, *readers;
    pd_store_config_t store_cfg;
    const char *conninfo;
    pd_metrics_t *metrics;
    pd_http_config_t http_cfg;
    int workers, readers_n;
    size_t queue;
    size_t max_record;
    int drain_timeout_ms;
    bool draining;
    int signals;
    int exit_code;
    uv_signal_t sigint, sigterm;
    uv_timer_t drain_timer;
};

/* --- small helpers ------------------------------------------------------- */

/* Appends s as a JSON string, replacing any byte that is not valid UTF-8 by U+FFFD. */
static void put_text(pd_buf_t *buf, const char *s)
{
    size_t n = strlen(s);
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    size_t i = 0;
    bool clean = true;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) {
            clean = false;
            break;
        }
        i += (size_t)k;
    }
    if (clean) {
        pd_buf_json_string(buf, s, n);
        return;
    }
    pd_buf_t tmp = {0};
    for (i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) {
            PD_BUF_LIT(&tmp, "\xef\xbf\xbd");
            i++;
        } else {
            pd_buf_put(&tmp, s + i, (size_t)k);
            i += (size_t)k;
        }
    }
    pd_buf_json_string(buf, tmp.data ? tmp.data : "", tmp.len);
    pd_buf_close(&tmp);
}

static void respond_json(call_t *call, int status, const char *extra, const char *body, size_t len)
{
    serve_t *sv = call->sv;
    pd_metrics_request(sv->metrics, call->route, status);
    pd_log(PD_LOG_DEBUG, "loop", "request=%llu %s %s status=%d ms=%.1f",
           (unsigned long long)pd_http_request_id(call->req), pd_http_method(call->req),
           call->route, status, (double)(uv_hrtime() - call->started_ns) / 1e6);
    pd_http_respond(call->req, status, "application/json", extra, body, len, false);
}

static void call_free(call_t *call)
{
    for (size_t i = 0; i < call->n_results; i++)
        free(call->results[i].error);
    free(call->results);
    pd_batch_destroy(call->batch);
    free(call->rj.body);
    free(call);
}

/* Answers {"error": message} and releases the call. */
static void fail_call(call_t *call, int status, const char *message)
{
    pd_buf_t b = {0};
    PD_BUF_LIT(&b, "{\"error\": ");
    put_text(&b, message);
    PD_BUF_LIT(&b, "}\n");
    const char *extra = "";
    if (status == 401)
        extra = "WWW-Authenticate: Bearer realm=\"patternd\"\r\n";
    else if (status == 503 || status == 429)
        extra = "Retry-After: 1\r\n";
    respond_json(call, status, extra, b.data, b.len);
    pd_buf_close(&b);
    call_free(call);
}

/* --- POST /v1/workflows: records into one batch ---------------------------- */

static result_t *add_result(call_t *call, long line)
{
    if (call->n_results == call->cap_results) {
        size_t cap = call->cap_results ? call->cap_results * 2 : 64;
        result_t *grown = realloc(call->results, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        call->results = grown;
        call->cap_results = cap;
    }
    result_t *r = &call->results[call->n_results++];
    *r = (result_t){.line = line, .record = -1};
    return r;
}

static int reject(call_t *call, result_t *r, const char *field, const char *message)
{
    snprintf(r->field, sizeof(r->field), "%s", field);
    r->error = strdup(message);
    call->rejected++;
    return r->error != NULL ? PD_OK : PD_ENOMEM;
}

/* One record of the body: line is its NDJSON line (0 in an array), index its position. */
static int take_record(call_t *call, const char *data, size_t len, long line, bool oversize)
{
    pd_error_t err;
    pd_record_t rec;
    result_t *r = add_result(call, line);
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

static int on_body_line(void *ctx, long line_no, const char *data, size_t len, bool oversize)
{
    return take_record(ctx, data, len, line_no, oversize);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Finds the elements of a top-level JSON array and passes each one's text to
 * take_record (or only counts them, when call is NULL), so that an element
 * is validated exactly as an NDJSON line is, by pd_record_parse.  Only the
 * array's structure is looked at here: strings (with their escapes) and
 * nesting, to find the commas between elements.  Returns PD_EINVAL when
 * the body is not an array of that shape.
 */
static int split_array(call_t *call, const char *s, size_t n, size_t *count)
{
    size_t i = 0, found = 0;
    while (i < n && is_space(s[i]))
        i++;
    if (i == n || s[i] != '[')
        return PD_EINVAL;
    i++;
    while (i < n && is_space(s[i]))
        i++;
    if (i < n && s[i] == ']') {
        i++;
    } else {
        for (;;) {
            size_t start = i;
            int depth = 0;
            bool in_string = false, escaped = false;
            for (; i < n; i++) {
                char c = s[i];
                if (in_string) {
                    if (escaped)
                        escaped = false;
                    else if (c == '\\')
                        escaped = true;
                    else if (c == '"')
                        in_string = false;
                    continue;
                }
                if (c == '"') {
                    in_string = true;
                } else if (c == '{' || c == '[') {
                    depth++;
                } else if (c == '}' || c == ']') {
                    if (depth == 0)
                        break;
                    depth--;
                } else if (c == ',' && depth == 0) {
                    break;
                }
            }
            if (i == n || s[i] == '}')
                return PD_EINVAL; /* unterminated, or a stray '}' */
            size_t end = i;
            while (start < end && is_space(s[start]))
                start++;
            while (end > start && is_space(s[end - 1]))
                end--;
            if (end == start)
                return PD_EINVAL; /* "[,]" or "[1,]" */
            found++;
            if (call != NULL) {
                int rc = take_record(call, s + start, end - start, 0,
                                     end - start > call->sv->max_record);
                if (rc < 0)
                    return rc;
            }
            if (s[i++] == ']')
                break;
        }
    }
    while (i < n && is_space(s[i]))
        i++;
    if (i != n)
        return PD_EINVAL;
    *count = found;
    return PD_OK;
}

static bool body_is_array(const char *content_type, const char *body, size_t len)
{
    if (content_type != NULL) {
        if (strncasecmp(content_type, "application/json", 16) == 0)
            return true;
        if (strncasecmp(content_type, "application/x-ndjson", 20) == 0)
            return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_space(body[i]))
            return body[i] == '[';
    }
    return false;
}

static void answer_batch(call_t *call);

/* The key is good: parse the body into a batch and hand it to the writers. */
static void start_ingest(call_t *call)
{
    serve_t *sv = call->sv;
    if (pd_pool_full(sv->writers)) {
        fail_call(call, 503, "busy: the write queue is full; retry later");
        return;
    }
    size_t len;
    char *body = pd_http_body(call->req, &len);
    bool array = body_is_array(pd_http_content_type(call->req), body, len);
    size_t capacity = 1;
    int rc = PD_OK;
    if (array) {
        rc = split_array(NULL, body, len, &capacity);
        if (rc < 0) {
            fail_call(call, 400, "the body is not a well-formed JSON array of records");
            return;
        }
    } else {
        for (size_t i = 0; i < len; i++)
            capacity += body[i] == '\n';
    }
    if (pd_batch_create(capacity > 0 ? capacity : 1, &call->batch) < 0) {
        fail_call(call, 503, "out of memory");
        return;
    }
    call->batch->owner = call;
    if (array) {
        size_t ignored;
        rc = split_array(call, body, len, &ignored);
    } else if (len > 0) {
        pd_lines_t lines;
        rc = pd_lines_init(&lines, sv->max_record, on_body_line, call);
        if (rc == PD_OK)
            rc = pd_lines_push(&lines, body, len);
        if (rc == PD_OK)
            rc = pd_lines_finish(&lines);
        pd_lines_close(&lines);
    }
    if (rc < 0) {
        fail_call(call, 503, "out of memory");
        return;
    }
    if (call->batch->count == 0) {
        answer_batch(call);
        return;
    }
    pd_pool_submit(sv->writers, &call->batch->job);
}

static void put_workflow_id(pd_buf_t *b, const pd_record_t *rec)
{
    if (rec->workflow_id_is_int)
        pd_buf_puts(b, rec->workflow_id);
    else
        pd_buf_json_string(b, rec->workflow_id, strlen(rec->workflow_id));
}

/* Answers a POST /v1/workflows after its batch finished (or when it had no records). */
static void answer_batch(call_t *call)
{
    serve_t *sv = call->sv;
    pd_batch_t *batch = call->batch;
    long counts[PD_M_OUTCOMES] = {0};
    counts[PD_M_REJECTED] = call->rejected;
    for (size_t i = 0; i < batch->count; i++) {
        switch (batch->outcomes[i]) {
        case PD_OUTCOME_PROCESSED:
            counts[PD_M_PROCESSED]++;
            break;
        case PD_OUTCOME_DUPLICATE:
            counts[PD_M_DUPLICATE]++;
            break;
        default:
            counts[PD_M_ERROR]++;
        }
    }
    pd_metrics_records(sv->metrics, call->rj.key.tenant, counts);
    if (batch->count > 0 && batch->rc == 0 && batch->commit_ms > 0)
        pd_metrics_commit(sv->metrics, batch->commit_ms);
    if (batch->rc < 0)
        pd_log(PD_LOG_WARN, "loop", "request=%llu tenant=%s: %zu records not committed: %s",
               (unsigned long long)pd_http_request_id(call->req), call->rj.key.tenant, batch->count,
               batch->err.message);

    pd_buf_t b = {0};
    char head[512];
    snprintf(head, sizeof(head),
             "{\"total_workflows\": %zu, \"processed\": %ld, \"duplicates\": %ld, "
             "\"rejected\": %ld, \"total_patterns\": %ld, \"new_patterns\": %ld, \"errors\": "
             "%ld, \"results\": [",
             call->n_results, counts[PD_M_PROCESSED], counts[PD_M_DUPLICATE], counts[PD_M_REJECTED],
             batch->total_patterns, batch->new_patterns, counts[PD_M_ERROR]);
    pd_buf_puts(&b, head);
    for (size_t i = 0; i < call->n_results; i++) {
        const result_t *r = &call->results[i];
        PD_BUF_LIT(&b, "{\"index\": ");
        pd_buf_int(&b, (int64_t)i);
        if (r->line > 0) {
            PD_BUF_LIT(&b, ", \"line\": ");
            pd_buf_int(&b, r->line);
        }
        PD_BUF_LIT(&b, ", \"workflow_id\": ");
        if (r->record < 0) {
            PD_BUF_LIT(&b, "null, \"status\": \"rejected\"");
            if (r->field[0] != '\0') {
                PD_BUF_LIT(&b, ", \"field\": ");
                put_text(&b, r->field);
            }
            PD_BUF_LIT(&b, ", \"error\": ");
            put_text(&b, r->error ? r->error : "rejected");
        } else {
            put_workflow_id(&b, &batch->records[r->record]);
            switch (batch->outcomes[r->record]) {
            case PD_OUTCOME_PROCESSED:
                PD_BUF_LIT(&b, ", \"status\": \"processed\"");
                break;
            case PD_OUTCOME_DUPLICATE:
                PD_BUF_LIT(&b, ", \"status\": \"duplicate\"");
                break;
            default:
                PD_BUF_LIT(&b, ", \"status\": \"error\", \"error\": ");
                put_text(&b, batch->err.message[0] ? batch->err.message : "not committed");
            }
        }
        pd_buf_puts(&b, i + 1 < call->n_results ? "}, " : "}");
    }
    PD_BUF_LIT(&b, "]}\n");
    if (b.failed) {
        pd_buf_close(&b);
        fail_call(call, 503, "out of memory");
        return;
    }
    int status = counts[PD_M_REJECTED] > 0 || counts[PD_M_ERROR] > 0 ? 207 : 200;
    respond_json(call, status, "", b.data, b.len);
    pd_buf_close(&b);
    call_free(call);
}

/* Loop thread: a writer finished a batch. */
static void on_batch_done(void *ctx, pd_job_t *job)
{
    (void)ctx;
    pd_batch_t *batch = pd_batch_of(job);
    answer_batch(batch->owner);
}

/* --- writers -------------------------------------------------------------- */

static int writer_init(void *ctx, int worker_id, void **state)
{
    serve_t *sv = ctx;
    writer_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return PD_ENOMEM;
    w->sv = sv;
    snprintf(w->name, sizeof(w->name), "writer-%d", worker_id);
    int rc = pd_store_create(&sv->store_cfg, &w->store);
    if (rc < 0) {
        free(w);
        return rc;
    }
    *state = w;
    return PD_OK;
}

static void writer_work(void *state, pd_job_t *job)
{
    writer_t *w = state;
    pd_batch_t *batch = pd_batch_of(job);
    pd_store_write(w->store, batch);
    const pd_store_stats_t *st = pd_store_stats(w->store);
    pd_metrics_add_store(w->sv->metrics, st->db_errors - w->seen.db_errors,
                         st->reconnects - w->seen.reconnects, st->retries - w->seen.retries);
    if (st->reconnects != w->seen.reconnects)
        pd_log(PD_LOG_WARN, w->name, "reconnected to PostgreSQL (%llu reconnects so far)",
               (unsigned long long)st->reconnects);
    w->seen = *st;
    if (batch->rc < 0)
        pd_log(PD_LOG_ERROR, w->name, "batch of %zu records (tenant %s) failed: %s", batch->count,
               batch->records[0].tenant_id, batch->err.message);
    else
        pd_log(PD_LOG_DEBUG, w->name, "batch of %zu records (tenant %s) committed in %.1f ms",
               batch->count, batch->records[0].tenant_id, batch->commit_ms);
}

static void writer_fini(void *state)
{
    writer_t *w = state;
    pd_store_destroy(w->store);
    free(w);
}

/* --- readers -------------------------------------------------------------- */

static int reader_init(void *ctx, int worker_id, void **state)
{
    reader_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return PD_ENOMEM;
    r->sv = ctx;
    snprintf(r->name, sizeof(r->name), "reader-%d", worker_id);
    *state = r;
    return PD_OK;
}

static void reader_fini(void *state)
{
    reader_t *r = state;
    pd_db_destroy(r->db);
    free(r);
}

static json_t *pattern_row(const PGresult *res, int i)
{
    json_error_t jerr;
    json_t *typical = json_loads(PQgetvalue(res, i, 9), 0, &jerr);
    return json_pack(
        "{s:I, s:s, s:s, s:s, s:I, s:I, s:f, s:I, s:f, s:o?, s:s, s:f, s:f, s:s, s:s}", "id",
        (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10), "tenant_id", PQgetvalue(res, i, 1),
        "pattern_signature", PQgetvalue(res, i, 2), "pattern_type", PQgetvalue(res, i, 3),
        "occurrence_count", (json_int_t)strtoll(PQgetvalue(res, i, 4), NULL, 10),
        "avg_tokens_with_llm", (json_int_t)strtoll(PQgetvalue(res, i, 5), NULL, 10),
        "avg_cost_with_llm", strtod(PQgetvalue(res, i, 6), NULL), "avg_tokens_with_tool",
        (json_int_t)strtoll(PQgetvalue(res, i, 7), NULL, 10), "avg_cost_with_tool",
        strtod(PQgetvalue(res, i, 8), NULL), "typical_input_pattern", typical, "automation_status",
        PQgetvalue(res, i, 10), "confidence_score", strtod(PQgetvalue(res, i, 11), NULL),
        "potential_monthly_savings", strtod(PQgetvalue(res, i, 12), NULL), "created_at",
        PQgetvalue(res, i, 13), "last_seen", PQgetvalue(res, i, 14));
}

/* The tenant's patterns as the JSON answer, read in one transaction under that tenant. */
static int read_patterns(reader_t *r, read_job_t *j)
{
    PGresult *res = NULL;
    char limit[32];
    snprintf(limit, sizeof(limit), "%ld", j->top);
    int rc = pd_db_begin_tenant(r->db, j->key.tenant, &j->err);
    if (rc < 0)
        return rc;
    const char *params[] = {j->key.tenant, limit};
    rc = pd_db_query(r->db, SQL_PATTERNS, 2, params, &res, &j->err);
    if (rc < 0) {
        if (rc != PD_ECONN)
            pd_db_exec(r->db, "ROLLBACK", NULL);
        return rc;
    }
    if ((rc = pd_db_exec(r->db, "COMMIT", &j->err)) < 0) {
        pd_db_result_free(res);
        return rc;
    }
    json_t *rows = json_array();
    for (int i = 0; rows != NULL && i < PQntuples(res); i++) {
        json_t *o = pattern_row(res, i);
        if (o == NULL || json_array_append_new(rows, o) < 0) {
            json_decref(rows);
            rows = NULL;
        }
    }
    pd_db_result_free(res);
    json_t *answer =
        rows ? json_pack("{s:s, s:o}", "tenant_id", j->key.tenant, "patterns", rows) : NULL;
    j->body = answer ? json_dumps(answer, JSON_REAL_PRECISION(17)) : NULL;
    json_decref(answer);
    if (j->body == NULL)
        return pd_error_set(&j->err, PD_ENOMEM, 0, "", "out of memory");
    j->len = strlen(j->body);
    return PD_OK;
}

static int reader_attempt(reader_t *r, read_job_t *j)
{
    int rc;
    if (r->db == NULL && (rc = pd_db_connect(r->sv->conninfo, &r->db, &j->err)) < 0)
        return rc;
    switch (j->kind) {
    case J_READY: {
        pd_migration_set_t set;
        size_t pending = 0;
        pd_migration_set_builtin(&set);
        rc = pd_migrate_status(r->db, &set, NULL, &pending, &j->err);
        j->ready = rc == PD_OK && pending == 0;
        if (rc == PD_OK && pending > 0)
            pd_error_set(&j->err, PD_EDB, 0, "", "%zu migrations pending", pending);
        return rc;
    }
    case J_AUTH:
    case J_PATTERNS:
        rc = pd_keys_verify(r->db, &j->key, &j->valid, &j->err);
        if (rc < 0 || !j->valid || j->kind == J_AUTH)
            return rc;
        return read_patterns(r, j);
    }
    return PD_EINVAL;
}

static void reader_work(void *state, pd_job_t *job)
{
    reader_t *r = state;
    read_job_t *j = (read_job_t *)job;
    /* A lost connection is retried once on a fresh one: reads are idempotent. */
    for (int attempt = 0; attempt < 2; attempt++) {
        j->rc = reader_attempt(r, j);
        if (j->rc != PD_ECONN)
            break;
        pd_db_destroy(r->db);
        r->db = NULL;
    }
    if (j->rc < 0)
        pd_log(PD_LOG_WARN, r->name, "%s", j->err.message);
}

/* Loop thread: a reader finished. */
static void on_read_done(void *ctx, pd_job_t *job)
{
    (void)ctx;
    read_job_t *j = (read_job_t *)job;
    call_t *call = j->call;
    if (j->kind == J_READY) {
        if (j->ready && !call->sv->draining) {
            static const char ok[] = "{\"status\": \"ready\"}\n";
            respond_json(call, 200, "", ok, sizeof(ok) - 1);
            call_free(call);
        } else {
            fail_call(call, 503, call->sv->draining ? "shutting down" : j->err.message);
        }
        return;
    }
    if (j->rc < 0) {
        fail_call(call, 503, "the database is unavailable; retry later");
        return;
    }
    if (!j->valid) {
        fail_call(call, 401, "unknown or revoked API key");
        return;
    }
    if (j->kind == J_AUTH) {
        start_ingest(call);
        return;
    }
    respond_json(call, 200, "", j->body, j->len);
    call_free(call);
}

/* --- routing --------------------------------------------------------------- */

static void submit_read(call_t *call, read_kind_t kind)
{
    serve_t *sv = call->sv;
    if (pd_pool_full(sv->readers)) {
        fail_call(call, 503, "busy; retry later");
        return;
    }
    call->rj.kind = kind;
    call->rj.call = call;
    pd_pool_submit(sv->readers, &call->rj.job);
}

/* Reads ?top=N; returns false (having answered 400) when it is malformed. */
static bool parse_top(call_t *call, long *top)
{
    *top = TOP_DEFAULT;
    const char *q = pd_http_query(call->req);
    while (*q != '\0') {
        const char *end = strchr(q, '&');
        size_t n = end ? (size_t)(end - q) : strlen(q);
        if (n > 4 && strncmp(q, "top=", 4) == 0) {
            char digits[16];
            size_t d = n - 4;
            char *stop;
            if (d >= sizeof(digits))
                goto bad;
            memcpy(digits, q + 4, d);
            digits[d] = '\0';
            errno = 0;
            long v = strtol(digits, &stop, 10);
            if (errno != 0 || *stop != '\0' || v < 1 || v > TOP_MAX)
                goto bad;
            *top = v;
        }
        q += n + (end != NULL);
    }
    return true;
bad:
    fail_call(call, 400, "top: expected a number from 1 to 10000");
    return false;
}

static void on_request(void *ctx, pd_http_request_t *req)
{
    serve_t *sv = ctx;
    const char *path = pd_http_path(req), *method = pd_http_method(req);
    call_t *call = calloc(1, sizeof(*call));
    if (call == NULL) {
        static const char oom[] = "{\"error\": \"out of memory\"}\n";
        pd_http_respond(req, 503, "application/json", "Retry-After: 1\r\n", oom, sizeof(oom) - 1,
                        true);
        return;
    }
    call->sv = sv;
    call->req = req;
    call->started_ns = uv_hrtime();
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;

    if (strcmp(path, "/healthz") == 0) {
        call->route = R_HEALTHZ;
        if (!get)
            goto not_allowed;
        static const char ok[] = "{\"status\": \"ok\"}\n";
        respond_json(call, 200, "", ok, sizeof(ok) - 1);
        call_free(call);
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        call->route = R_METRICS;
        if (!get)
            goto not_allowed;
        pd_metrics_gauges_t g = {
            .queue_depth = pd_pool_queued(sv->writers),
            .queue_capacity = sv->queue,
            .batches_in_flight = pd_pool_outstanding(sv->writers),
            .connections = pd_http_server_connections(sv->http),
            .draining = sv->draining,
        };
        pd_buf_t b = {0};
        pd_metrics_request(sv->metrics, call->route, 200); /* counted before rendering */
        pd_metrics_render(sv->metrics, &g, &b);
        pd_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", "", b.data, b.len,
                        false);
        pd_buf_close(&b);
        call_free(call);
        return;
    }
    if (strcmp(path, "/readyz") == 0) {
        call->route = R_READYZ;
        if (!get)
            goto not_allowed;
        submit_read(call, J_READY);
        return;
    }
    if (strcmp(path, "/v1/workflows") == 0 || strcmp(path, "/v1/patterns") == 0) {
        bool workflows = path[4] == 'w';
        call->route = workflows ? R_WORKFLOWS : R_PATTERNS;
        if (workflows ? !post : !get)
            goto not_allowed;
        if (pd_key_from_bearer(pd_http_authorization(req), &call->rj.key) < 0) {
            fail_call(call, 401, "missing or malformed API key: send Authorization: Bearer <key>");
            return;
        }
        if (!workflows && !parse_top(call, &call->rj.top))
            return;
        submit_read(call, workflows ? J_AUTH : J_PATTERNS);
        return;
    }
    call->route = R_OTHER;
    fail_call(call, 404, "no such resource");
    return;

not_allowed:
    fail_call(call, 405, "method not allowed");
}

/* The HTTP server answered a request itself (a limit, a malformed request). */
static void on_refused(void *ctx, int status)
{
    serve_t *sv = ctx;
    pd_metrics_request(sv->metrics, R_OTHER, status);
}

/* --- startup and shutdown --------------------------------------------------- */

static void on_readers_closed(void *ctx)
{
    serve_t *sv = ctx;
    sv->readers = NULL;
    uv_close((uv_handle_t *)&sv->sigint, NULL);
    uv_close((uv_handle_t *)&sv->sigterm, NULL);
    uv_close((uv_handle_t *)&sv->drain_timer, NULL);
}

static void on_writers_closed(void *ctx)
{
    serve_t *sv = ctx;
    sv->writers = NULL;
    pd_pool_close(sv->readers, on_readers_closed);
}

/* Every connection is closed, so every request taken was answered. */
static void on_drained(void *ctx)
{
    serve_t *sv = ctx;
    pd_log(PD_LOG_INFO, "loop", "every request answered; stopping the workers");
    pd_pool_close(sv->writers, on_writers_closed);
}

static void on_drain_timeout(uv_timer_t *t)
{
    (void)t;
    pd_log(PD_LOG_ERROR, "loop", "requests still in flight after the drain timeout; exiting");
    _exit(PD_EXIT_FAIL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    serve_t *sv = h->data;
    if (++sv->signals > 1) {
        pd_log(PD_LOG_WARN, "loop", "signal %d again: exiting without draining", signum);
        _exit(130);
    }
    pd_log(PD_LOG_INFO, "loop",
           "signal %d: no longer accepting; answering the %zu open connections' requests", signum,
           pd_http_server_connections(sv->http));
    sv->draining = true;
    uv_timer_start(&sv->drain_timer, on_drain_timeout, (uint64_t)sv->drain_timeout_ms, 0);
    pd_http_server_drain(sv->http, on_drained);
}

/*
 * Connects once before starting: the database must be reachable, its schema
 * current, and (unless allowed) the role subject to row-level security.
 */
static int preflight(const char *conninfo, bool allow_bypass)
{
    pd_db_t *db = NULL;
    pd_error_t err;
    pd_migration_set_t set;
    PGresult *res = NULL;
    size_t pending = 0;
    pd_migration_set_builtin(&set);
    if (pd_db_connect(conninfo, &db, &err) < 0 ||
        pd_migrate_status(db, &set, NULL, &pending, &err) < 0) {
        pd_cli_fail("%s", err.message);
        pd_db_destroy(db);
        return -1;
    }
    if (pending > 0) {
        pd_cli_fail("the database schema is not current (%zu migrations pending); run "
                    "`patternd migrate` first",
                    pending);
        pd_db_destroy(db);
        return -1;
    }
    if (pd_db_query(db, SQL_BYPASS, 0, NULL, &res, &err) < 0) {
        pd_cli_fail("%s", err.message);
        pd_db_destroy(db);
        return -1;
    }
    bool bypass = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    if (bypass && !allow_bypass) {
        pd_cli_fail("role %s bypasses row-level security (superuser, BYPASSRLS or owner of the "
                    "tables), so tenants would not be isolated by the database: connect as a "
                    "member of patternd_service (see README), or pass --allow-rls-bypass",
                    PQgetvalue(res, 0, 1));
        pd_db_result_free(res);
        pd_db_destroy(db);
        return -1;
    }
    if (bypass)
        pd_log(PD_LOG_WARN, "loop", "role %s bypasses row-level security (--allow-rls-bypass)",
               PQgetvalue(res, 0, 1));
    pd_db_result_free(res);
    pd_db_destroy(db);
    return 0;
}

static bool parse_seconds(const char *opt, const char *arg, int *out_ms)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno != 0 || *end != '\0' || !(v >= 0.01 && v <= 86400)) {
        pd_cli_fail("%s: expected seconds from 0.01 to 86400, got '%s'", opt, arg);
        return false;
    }
    *out_ms = (int)(v * 1000 + 0.5);
    return true;
}

/* Splits "HOST:PORT" or "[V6]:PORT" into host (into buf) and port. */
static bool parse_listen(const char *arg, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(arg, ':');
    long p;
    if (colon == NULL || !pd_cli_count("--listen", colon + 1, 0, 65535, &p))
        return false;
    const char *h = arg;
    size_t n = (size_t)(colon - arg);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= cap) {
        pd_cli_fail("--listen: expected HOST:PORT, got '%s'", arg);
        return false;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (int)p;
    return true;
}

int pd_cmd_serve(int argc, char **argv)
{
    static const struct option options[] = {
        {"db", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"workers", required_argument, NULL, 'w'},
        {"readers", required_argument, NULL, 'r'},
        {"queue", required_argument, NULL, 'Q'},
        {"max-body-bytes", required_argument, NULL, 'B'},
        {"max-buffered-bytes", required_argument, NULL, 'U'},
        {"max-record-bytes", required_argument, NULL, 'm'},
        {"max-connections", required_argument, NULL, 'C'},
        {"read-timeout", required_argument, NULL, 'T'},
        {"idle-timeout", required_argument, NULL, 'I'},
        {"drain-timeout", required_argument, NULL, 'D'},
        {"async-commit", no_argument, NULL, 'a'},
        {"retry-seconds", required_argument, NULL, 'R'},
        {"log-level", required_argument, NULL, 'L'},
        {"allow-rls-bypass", no_argument, NULL, 'X'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    serve_t sv = {.workers = 4,
                  .readers_n = 2,
                  .max_record = PD_RECORD_MAX_DEFAULT,
                  .drain_timeout_ms = 40000};
    char host[256] = "127.0.0.1";
    int port = 8080;
    long v, queue = -1;
    const char *url = NULL;
    bool allow_bypass = false;
    pd_log_level_t level = PD_LOG_INFO;
    sv.http_cfg = (pd_http_config_t){
        .max_body = 16 * 1024 * 1024,
        .max_buffered = 256 * 1024 * 1024,
        .max_connections = 1024,
        .read_timeout_ms = 30000,
        .idle_timeout_ms = 60000,
    };
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'd':
            url = optarg;
            break;
        case 'l':
            if (!parse_listen(optarg, host, sizeof(host), &port))
                return PD_EXIT_USAGE;
            break;
        case 'w':
            if (!pd_cli_count("--workers", optarg, 1, 64, &v))
                return PD_EXIT_USAGE;
            sv.workers = (int)v;
            break;
        case 'r':
            if (!pd_cli_count("--readers", optarg, 1, 64, &v))
                return PD_EXIT_USAGE;
            sv.readers_n = (int)v;
            break;
        case 'Q':
            if (!pd_cli_count("--queue", optarg, 0, 100000, &queue))
                return PD_EXIT_USAGE;
            break;
        case 'B':
            if (!pd_cli_count("--max-body-bytes", optarg, 1024, 1L << 30, &v))
                return PD_EXIT_USAGE;
            sv.http_cfg.max_body = (size_t)v;
            break;
        case 'U':
            if (!pd_cli_count("--max-buffered-bytes", optarg, 1024, 1L << 40, &v))
                return PD_EXIT_USAGE;
            sv.http_cfg.max_buffered = (size_t)v;
            break;
        case 'm':
            if (!pd_cli_count("--max-record-bytes", optarg, 64, 1L << 30, &v))
                return PD_EXIT_USAGE;
            sv.max_record = (size_t)v;
            break;
        case 'C':
            if (!pd_cli_count("--max-connections", optarg, 1, 1000000, &v))
                return PD_EXIT_USAGE;
            sv.http_cfg.max_connections = (int)v;
            break;
        case 'T':
            if (!parse_seconds("--read-timeout", optarg, &sv.http_cfg.read_timeout_ms))
                return PD_EXIT_USAGE;
            break;
        case 'I':
            if (!parse_seconds("--idle-timeout", optarg, &sv.http_cfg.idle_timeout_ms))
                return PD_EXIT_USAGE;
            break;
        case 'D':
            if (!parse_seconds("--drain-timeout", optarg, &sv.drain_timeout_ms))
                return PD_EXIT_USAGE;
            break;
        case 'a':
            sv.store_cfg.async_commit = true;
            break;
        case 'R':
            if (!pd_cli_count("--retry-seconds", optarg, 1, 86400, &v))
                return PD_EXIT_USAGE;
            sv.store_cfg.retry_budget_ms = (int)(v * 1000);
            break;
        case 'L':
            if (pd_log_parse_level(optarg, &level) < 0) {
                pd_cli_fail("--log-level: expected debug, info, warn or error, got '%s'", optarg);
                return PD_EXIT_USAGE;
            }
            break;
        case 'X':
            allow_bypass = true;
            break;
        case 'h':
            fputs(USAGE, stdout);
            return PD_EXIT_OK;
        default:
            fputs(USAGE, stderr);
            return PD_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        pd_cli_fail("serve takes no arguments; got '%s'", argv[optind]);
        return PD_EXIT_USAGE;
    }
    pd_log_set_level(level);
    sv.queue = queue >= 0 ? (size_t)queue : (size_t)sv.workers * 2;
    sv.conninfo = pd_db_conninfo(url);
    sv.store_cfg.conninfo = sv.conninfo;
    if (preflight(sv.conninfo, allow_bypass) < 0)
        return PD_EXIT_FAIL;

    /* A client that goes away must not kill the process with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    int exit_code = PD_EXIT_FAIL;
    pd_error_t err;
    if (pd_metrics_create(&sv.metrics) < 0 || uv_loop_init(&sv.loop) != 0) {
        pd_cli_fail("out of memory");
        goto done;
    }
    pd_pool_config_t writers_cfg = {
        .workers = sv.workers,
        .queue_capacity = sv.queue,
        .init = writer_init,
        .work = writer_work,
        .fini = writer_fini,
        .done = on_batch_done,
        .ctx = &sv,
    };
    pd_pool_config_t readers_cfg = {
        .workers = sv.readers_n,
        .queue_capacity = READER_QUEUE,
        .init = reader_init,
        .work = reader_work,
        .fini = reader_fini,
        .done = on_read_done,
        .ctx = &sv,
    };
    if (pd_pool_create(&sv.loop, &writers_cfg, &sv.writers) < 0) {
        pd_cli_fail("cannot start the writer threads");
        goto done_loop;
    }
    if (pd_pool_create(&sv.loop, &readers_cfg, &sv.readers) < 0) {
        pd_cli_fail("cannot start the reader threads");
        pd_pool_close(sv.writers, NULL);
        uv_run(&sv.loop, UV_RUN_DEFAULT);
        goto done_loop;
    }
    sv.http_cfg.host = host;
    sv.http_cfg.port = port;
    sv.http_cfg.on_request = on_request;
    sv.http_cfg.on_refused = on_refused;
    sv.http_cfg.ctx = &sv;
    uv_signal_init(&sv.loop, &sv.sigint);
    uv_signal_init(&sv.loop, &sv.sigterm);
    uv_timer_init(&sv.loop, &sv.drain_timer);
    sv.sigint.data = sv.sigterm.data = sv.drain_timer.data = &sv;
    if (pd_http_server_create(&sv.loop, &sv.http_cfg, &sv.http, &err) < 0) {
        pd_cli_fail("%s", err.message);
        pd_pool_close(sv.writers, on_writers_closed); /* closes the rest too */
        uv_run(&sv.loop, UV_RUN_DEFAULT);
        goto done_loop;
    }
    uv_signal_start(&sv.sigint, on_signal, SIGINT);
    uv_signal_start(&sv.sigterm, on_signal, SIGTERM);

    pd_log(PD_LOG_INFO, "loop",
           "listening on %s:%d (%d writers, queue %zu, %d readers, max body %zu bytes)", host,
           pd_http_server_port(sv.http), sv.workers, sv.queue, sv.readers_n, sv.http_cfg.max_body);
    printf("listening on %s%s%s:%d\n", strchr(host, ':') ? "[" : "", host,
           strchr(host, ':') ? "]" : "", pd_http_server_port(sv.http));
    fflush(stdout);

    uv_run(&sv.loop, UV_RUN_DEFAULT);
    pd_http_server_destroy(sv.http);
    pd_log(PD_LOG_INFO, "loop", "stopped");
    exit_code = PD_EXIT_OK;

done_loop:
    if (uv_loop_close(&sv.loop) != 0)
        pd_log(PD_LOG_WARN, "loop", "handles still open at exit");
done:
    pd_metrics_destroy(sv.metrics);
    return exit_code;
}
