/*
 * One request as llhttp parses it; see request.h.
 *
 * llhttp calls back as the bytes go by.  The callbacks keep the URL and the
 * kept headers, count the head's bytes and the body's, and hand body bytes
 * to the sink.  Where the connection must decide something, a callback
 * pauses the parser (HPE_PAUSED: at a request's first byte, at the end of
 * the head of a request with a body, at the end of a request), and
 * pd__request_parse() reports where it stopped.  A limit hit inside a data
 * callback is an error for llhttp (HPE_USER), after which the parser takes
 * nothing more: the request is answered and the connection closed.
 *
 * Thread: the connection's (the loop thread).
 */
#include "request.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const HEADER_NAMES[PD__H_COUNT] = {
    "authorization", "content-type", "content-encoding", "expect", "x-forwarded-for"};

static pd_http_request_t *request_of(llhttp_t *p)
{
    return p->data;
}

/* A limit is hit in a data callback: llhttp stops with HPE_USER and the request is refused. */
static int refuse(pd_http_request_t *r, int status)
{
    if (r->refusal == 0)
        r->refusal = status;
    return HPE_USER;
}

/* Counts bytes of the head; false once it is past PD__HEAD_MAX. */
static bool head_fits(pd_http_request_t *r, size_t len)
{
    r->head_bytes += len;
    return r->head_bytes <= PD__HEAD_MAX;
}

/* Pauses the parser at where; pd__request_parse() reports it. */
static int pause_at(pd_http_request_t *r, pd__parse_t where)
{
    r->paused_at = where;
    return HPE_PAUSED;
}

static int on_message_begin(llhttp_t *p)
{
    return pause_at(request_of(p), PD__PARSE_BEGUN); /* the connection starts its timer */
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    pd_http_request_t *r = request_of(p);
    if (r->url_len + len > PD__URL_MAX)
        return refuse(r, 414);
    if (!head_fits(r, len))
        return refuse(r, 431);
    memcpy(r->url + r->url_len, at, len);
    r->url_len += len;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    pd_http_request_t *r = request_of(p);
    if (!head_fits(r, len))
        return refuse(r, 431);
    /* Names longer than any kept header's are kept only as "too long": not ours. */
    size_t room = PD__FIELD_MAX - r->field_len;
    size_t n = len < room ? len : room;
    memcpy(r->field + r->field_len, at, n);
    r->field_len += n;
    return 0;
}

/* Which kept header the field just read names, or PD__H_NONE. */
static pd__header_t kept_header(const pd_http_request_t *r)
{
    for (int h = 0; h < PD__H_COUNT; h++) {
        if (r->field_len == strlen(HEADER_NAMES[h]) &&
            strncasecmp(r->field, HEADER_NAMES[h], r->field_len) == 0)
            return (pd__header_t)h;
    }
    return PD__H_NONE;
}

/* Appends len bytes to kept header h; 0, or the status that refuses the request. */
static int append_value(pd_http_request_t *r, pd__header_t h, const char *at, size_t len)
{
    size_t have = r->header_len[h];
    if (have + len > PD__HEADER_VALUE_MAX)
        return 431;
    char *grown = realloc(r->headers[h], have + len + 1);
    if (grown == NULL)
        return 503;
    memcpy(grown + have, at, len);
    grown[have + len] = '\0';
    r->headers[h] = grown;
    r->header_len[h] = have + len;
    return 0;
}

/*
 * The first bytes of a header's value: which kept header it is, if any.
 * A header whose value is empty never gets here, so it counts as absent.
 */
static int begin_value(pd_http_request_t *r)
{
    r->header = kept_header(r);
    r->field_len = 0;
    if (r->header == PD__H_NONE || r->headers[r->header] == NULL)
        return 0;
    /* Several X-Forwarded-For headers make one list, in order (RFC 9110, 5.3). */
    if (r->header == PD__H_FORWARDED_FOR)
        return append_value(r, r->header, ",", 1);
    return 400; /* the same kept header twice: ambiguous */
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    pd_http_request_t *r = request_of(p);
    if (!head_fits(r, len))
        return refuse(r, 431);
    if (r->field_len > 0) {
        int status = begin_value(r);
        if (status != 0)
            return refuse(r, status);
    }
    if (r->header == PD__H_NONE)
        return 0;
    int status = append_value(r, r->header, at, len);
    return status != 0 ? refuse(r, status) : 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    pd_http_request_t *r = request_of(p);
    r->field_len = 0;
    r->header = PD__H_NONE;
    /* The separator and the line's end: so a flood of empty headers is bounded too. */
    if (!head_fits(r, 4)) {
        r->refusal = 431;
        return -1;
    }
    return 0;
}

/* The URL is whole: split into path and query. */
static void split_url(pd_http_request_t *r)
{
    r->url[r->url_len] = '\0';
    char *q = strchr(r->url, '?');
    if (q != NULL)
        *q++ = '\0';
    r->query = q;
}

static int on_headers_complete(llhttp_t *p)
{
    pd_http_request_t *r = request_of(p);
    split_url(r);
    r->method = llhttp_method_name((llhttp_method_t)p->method);
    bool chunked = (p->flags & F_CHUNKED) != 0;
    bool length = (p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > 0;
    r->has_body = chunked || length;
    r->content_length = length ? p->content_length : 0;
    if (r->content_length > r->limits->max_body) {
        r->refusal = 413;
        return -1;
    }
    /* A request with a body stops here: the handler decides whether to read it. */
    return r->has_body ? pause_at(r, PD__PARSE_HEAD) : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    pd_http_request_t *r = request_of(p);
    const pd__request_limits_t *lim = r->limits;
    if (r->body_received + len > lim->max_body)
        return refuse(r, 413);
    if (*lim->buffered + len > lim->max_buffered)
        return refuse(r, 503);
    r->body_received += len;
    *lim->buffered += len;
    /* The bytes are in the connection's read buffer or its pending copy: both writable. */
    int status = r->sink.data(r->sink.ctx, (char *)at, len);
    return status != 0 ? refuse(r, status) : 0;
}

static int on_message_complete(llhttp_t *p)
{
    pd_http_request_t *r = request_of(p);
    r->keep_alive = llhttp_should_keep_alive(p) != 0;
    return pause_at(r, PD__PARSE_DONE);
}

/* Every other callback is left out: llhttp skips what has none. */
static const llhttp_settings_t SETTINGS = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void pd__request_init(pd_http_request_t *req, struct pd__conn *conn,
                      const pd__request_limits_t *limits)
{
    memset(req, 0, sizeof(*req));
    req->conn = conn;
    req->limits = limits;
    req->header = PD__H_NONE;
    llhttp_init(&req->parser, HTTP_REQUEST, &SETTINGS);
    req->parser.data = req;
}

void pd__request_reset(pd_http_request_t *req)
{
    for (int h = 0; h < PD__H_COUNT; h++) {
        free(req->headers[h]);
        req->headers[h] = NULL;
        req->header_len[h] = 0;
    }
    *req->limits->buffered -= req->body_received;
    req->body_received = 0;
    req->id = 0;
    req->method = NULL;
    req->url_len = 0;
    req->url[0] = '\0';
    req->query = NULL;
    req->field_len = 0;
    req->header = PD__H_NONE;
    req->head_bytes = 0;
    req->refusal = 0;
    req->paused_at = PD__PARSE_MORE;
    req->has_body = false;
    req->content_length = 0;
    req->keep_alive = false;
    req->sink = (pd_http_body_sink_t){0};
}

pd__parse_t pd__request_parse(pd_http_request_t *req, const char *data, size_t len, size_t *used,
                              int *status)
{
    llhttp_t *p = &req->parser;
    if (llhttp_get_errno(p) == HPE_PAUSED)
        llhttp_resume(p);
    llhttp_errno_t e = llhttp_execute(p, data, len);
    if (e == HPE_PAUSED_UPGRADE) {
        /* No protocol is switched to: what follows an Upgrade request is the next request. */
        size_t at = (size_t)(llhttp_get_error_pos(p) - data);
        llhttp_resume_after_upgrade(p);
        e = llhttp_execute(p, data + at, len - at);
    }
    *used = e == HPE_OK ? len : (size_t)(llhttp_get_error_pos(p) - data);
    *status = 0;
    if (e == HPE_OK)
        return PD__PARSE_MORE;
    if (e != HPE_PAUSED) {
        /* A limit, or a malformed request (llhttp keeps no limit on the head: ours is 431). */
        *status = req->refusal != 0 ? req->refusal : 400;
        return PD__PARSE_REFUSED;
    }
    return req->paused_at;
}

const char *pd__request_header(const pd_http_request_t *req, pd__header_t h)
{
    return req->headers[h];
}

bool pd__request_expects_continue(const pd_http_request_t *req)
{
    const char *expect = req->headers[PD__H_EXPECT];
    return expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
           req->parser.http_major == 1 && req->parser.http_minor >= 1;
}

/* --- what a handler reads (include/pd/http.h) --------------------------------- */

const char *pd_http_method(const pd_http_request_t *req)
{
    return req->method ? req->method : "";
}

const char *pd_http_path(const pd_http_request_t *req)
{
    return req->url;
}

const char *pd_http_query(const pd_http_request_t *req)
{
    return req->query ? req->query : "";
}

const char *pd_http_authorization(const pd_http_request_t *req)
{
    return req->headers[PD__H_AUTHORIZATION];
}

const char *pd_http_content_type(const pd_http_request_t *req)
{
    return req->headers[PD__H_CONTENT_TYPE];
}

const char *pd_http_content_encoding(const pd_http_request_t *req)
{
    return req->headers[PD__H_CONTENT_ENCODING];
}

bool pd_http_has_body(const pd_http_request_t *req)
{
    return req->has_body;
}

uint64_t pd_http_request_id(const pd_http_request_t *req)
{
    return req->id;
}
