/*
 * Stage: http.  libFuzzer target: any bytes as what a client sends on one
 * connection, through the server's request parser (src/http/request.c,
 * llhttp with the server's callbacks and limits), the way the connection
 * drives it (src/http/conn.c) but without sockets: the bytes arrive in
 * pieces whose size the input's first byte picks, what follows a pause
 * point is given again, a body is read when one is announced, and
 * keep-alive requests follow each other.  Finds crashes, leaks and
 * undefined behaviour (built with ASan and UBSan), and checks the
 * invariants the connection relies on:
 *
 *   - the parser never takes more bytes than it was given, and takes them
 *     all when it asks for more;
 *   - a request reaches the handler only with its method, an origin-form or
 *     other URL within PD__URL_MAX, and kept headers within
 *     PD__HEADER_VALUE_MAX;
 *   - a body never passes max_body bytes, and the shared body budget never
 *     passes max_buffered and is back to 0 once the request is forgotten;
 *   - a refusal is one of the statuses the server answers with.
 *
 *   cmake -B build-fuzz -DCMAKE_C_COMPILER=clang -DPD_FUZZ=ON -DPD_BUILD_TESTS=OFF
 *   cmake --build build-fuzz --target fuzz_http
 *   build-fuzz/fuzz_http -max_total_time=60 CORPUS_DIR tests/http/fuzz_http_corpus
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

#define MAX_BODY 4096
#define MAX_BUFFERED 3000 /* below MAX_BODY, so the budget's 503 is reached too */
#define SINK_REFUSAL 422  /* what the sink answers to a body byte '!' */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The body's sink: counts what it is given (the parser itself never calls end()). */
static int on_data(void *ctx, char *data, size_t len)
{
    size_t *bytes = ctx;
    *bytes += len;
    return memchr(data, '!', len) != NULL ? SINK_REFUSAL : 0;
}

/* What the handler sees of a request whose head is complete. */
static void check_head(const pd_http_request_t *req)
{
    if (pd_http_method(req)[0] == '\0' || req->url_len > PD__URL_MAX ||
        strlen(pd_http_path(req)) > req->url_len)
        abort();
    for (int h = 0; h < PD__H_COUNT; h++) {
        const char *v = pd__request_header(req, (pd__header_t)h);
        if (v != NULL && strlen(v) > PD__HEADER_VALUE_MAX)
            abort();
    }
    (void)pd_http_query(req);
    (void)pd__request_expects_continue(req);
}

static bool answerable(int status)
{
    switch (status) {
    case 400:
    case 413:
    case 414:
    case 431:
    case 503:
    case SINK_REFUSAL:
        return true;
    default:
        return false;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t piece = (size_t)data[0] % 64 + 1; /* bytes a read delivers */
    const char *in = (const char *)data + 1;
    size_t left = size - 1;

    size_t buffered = 0;
    pd__request_limits_t limits = {
        .max_body = MAX_BODY, .max_buffered = MAX_BUFFERED, .buffered = &buffered};
    pd_http_request_t *req = malloc(sizeof(*req));
    if (req == NULL)
        return 0;
    pd__request_init(req, NULL, &limits);
    size_t body = 0; /* bytes the sink was given */

    /* What arrived and is not parsed yet: the read piece, or what followed a pause point. */
    const char *at = in;
    size_t avail = 0;
    bool done = false;
    while (!done) {
        if (avail == 0) {
            if (left == 0)
                break; /* the client sent everything it had */
            avail = left < piece ? left : piece;
            at = in;
            in += avail;
            left -= avail;
        }
        size_t used;
        int status;
        pd__parse_t stop = pd__request_parse(req, at, avail, &used, &status);
        if (used > avail || (stop == PD__PARSE_MORE && used != avail))
            abort();
        at += used;
        avail -= used;
        if (buffered > MAX_BUFFERED || req->body_received > MAX_BODY)
            abort();
        switch (stop) {
        case PD__PARSE_MORE:
        case PD__PARSE_BEGUN:
            break;
        case PD__PARSE_HEAD:
            /* A handler that reads the body (conn.c: HELD_OPEN -> BODY). */
            check_head(req);
            if (!pd_http_has_body(req))
                abort();
            body = 0;
            req->sink = (pd_http_body_sink_t){.data = on_data, .ctx = &body};
            break;
        case PD__PARSE_DONE:
            check_head(req);
            if (pd_http_has_body(req) && body != req->body_received)
                abort();
            if (!req->keep_alive) {
                done = true; /* the connection closes after the answer */
                break;
            }
            pd__request_reset(req); /* answered: the next request on the connection */
            if (buffered != 0)
                abort();
            break;
        case PD__PARSE_REFUSED:
            if (!answerable(status))
                abort();
            done = true; /* answered, and the connection lingers and closes */
            break;
        }
    }
    pd__request_reset(req);
    if (buffered != 0)
        abort();
    free(req);
    return 0;
}
