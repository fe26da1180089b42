/*
 * Calls and their answers; see call.h.  The bodies are built with jansson.
 *
 * Thread: the loop thread, which alone may answer a request.
 */
#include "call.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "pd/json.h"
#include "pd/log.h"

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
    free(call);
}

void pd__call_answer(pd__call_t *call, int status, const char *extra, const char *body, size_t len)
{
    pd_metrics_request(call->metrics, call->route, status);
    pd_log(PD_LOG_DEBUG, "loop", "request=%llu %s %s status=%d ms=%.1f",
           (unsigned long long)pd_http_request_id(call->req), pd_http_method(call->req),
           call->route, status, (double)(uv_hrtime() - call->started_ns) / 1e6);
    pd_http_respond(call->req, status, "application/json", extra, body, len, false);
    pd__call_free(call);
}

void pd__call_answer_json(pd__call_t *call, int status, const char *extra, json_t *doc)
{
    char *body = doc != NULL ? json_dumps(doc, JSON_REAL_PRECISION(17)) : NULL;
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

void pd__call_fail(pd__call_t *call, int status, const char *message)
{
    const char *extra = "";
    if (status == 401)
        extra = "WWW-Authenticate: Bearer realm=\"patternd\"\r\n";
    else if (status == 503 || status == 429)
        extra = "Retry-After: 1\r\n";
    pd__call_answer_json(call, status, extra,
                         json_pack("{s:o}", "error", pd_json_text(message, strlen(message))));
}
