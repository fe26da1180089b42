/*
 * Calls and their answers; see call.h.  The bodies are built with jansson
 * and written by pd_json_dumps().
 *
 * The access log: one line per answered request, at level info, so that an
 * operator sees every request by default.  The path is the request's,
 * without its query string (which may carry a cursor), escaped and cut so
 * that a client cannot forge or flood a log line; the key never appears,
 * only its tenant once the key was found valid.
 *
 * Thread: the loop thread, which alone may answer a request.
 */
#include "call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "pd/json.h"
#include "pd/log.h"

#define LOGGED_PATH_MAX 160 /* bytes of a path the access log shows */

pd__call_t *pd__call_create(pd_http_request_t *req, pd_metrics_t *metrics, const char *route)
{
    pd__call_t *call = calloc(1, sizeof(*call));
    if (call != NULL)
        *call =
            (pd__call_t){.req = req, .metrics = metrics, .route = route, .started_ns = uv_hrtime()};
    return call;
}

void pd__call_free(pd__call_t *call)
{
    if (call->data_free != NULL)
        call->data_free(call->data);
    free(call);
}

/* The access log's line for the answer. */
static void log_answer(const pd__call_t *call, int status)
{
    char path[LOGGED_PATH_MAX + 8];
    const char *raw = pd_http_path(call->req);
    size_t n = strlen(raw);
    size_t shown = pd_error_escape(path, LOGGED_PATH_MAX, raw, n, true);
    if (shown < n)
        strcat(path, "...");
    pd_log(PD_LOG_INFO, "loop", "request=%llu method=%s path=\"%s\" status=%d ms=%.1f%s%s",
           (unsigned long long)pd_http_request_id(call->req), pd_http_method(call->req), path,
           status, (double)(uv_hrtime() - call->started_ns) / 1e6,
           call->key_valid ? " tenant=" : "", call->key_valid ? call->key.tenant : "");
}

void pd__call_respond(pd__call_t *call, int status, const char *content_type, const char *extra,
                      const char *body, size_t len)
{
    if (call->metrics != NULL)
        pd_metrics_request(call->metrics, call->route, status);
    log_answer(call, status);
    pd_http_respond(call->req, status, content_type, extra, body, len, false);
    pd__call_free(call);
}

void pd__call_answer(pd__call_t *call, int status, const char *extra, const char *body, size_t len)
{
    pd__call_respond(call, status, "application/json", extra, body, len);
}

void pd__call_answer_json(pd__call_t *call, int status, const char *extra, json_t *doc)
{
    char *body = pd_json_dumps(doc, 0);
    json_decref(doc);
    if (body == NULL) {
        static const char oom[] = "{\"error\": \"out of memory\"}\n";
        pd__call_answer(call, 503, "Retry-After: 1\r\n", oom, sizeof(oom) - 1);
        return;
    }
    size_t len = strlen(body);
    char *line = realloc(body, len + 2);
    if (line != NULL) {
        body = line;
        body[len++] = '\n';
        body[len] = '\0';
    }
    pd__call_answer(call, status, extra, body, len);
    free(body);
}

void pd__call_fail_with(pd__call_t *call, int status, const char *extra, const char *message)
{
    char headers[256];
    const char *own = "";
    if (status == 401)
        own = "WWW-Authenticate: Bearer realm=\"patternd\"\r\n";
    else if (status == 503 || status == 429)
        own = "Retry-After: 1\r\n";
    snprintf(headers, sizeof(headers), "%s%s", own, extra);
    pd__call_answer_json(call, status, headers,
                         json_pack("{s:o}", "error", pd_json_text(message, strlen(message))));
}

void pd__call_fail(pd__call_t *call, int status, const char *message)
{
    pd__call_fail_with(call, status, "", message);
}
