/*
 * One HTTP request on a connection: parsing it (libhttp-parser callbacks),
 * handing it to the handler when its headers are complete, and streaming
 * its body to the handler's sink once the handler asks for it.
 *
 * Thread: the loop thread.  The parser is paused (http_parser_pause) when
 * the headers of a request with a body are complete, when a request is
 * complete and when a limit is hit, so that no callback runs for bytes
 * the server is not ready to take: the rest waits in `pending` or in the
 * socket.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"

static const char *const HEADER_NAMES[H_COUNT] = {"authorization", "content-type",
                                                  "content-encoding", "expect", "x-forwarded-for"};

void pd__http_reset_request(conn_t *c)
{
    pd_http_request_t *r = &c->req;
    for (int h = 0; h < H_COUNT; h++)
        free(r->headers[h]);
    c->server->buffered -= r->body_received;
    memset(r, 0, sizeof(*r));
    r->conn = c;
    c->begun = c->headers_done = c->complete = c->in_value = false;
    c->early_status = 0;
    c->header = H_NONE;
    c->field_len = 0;
}

static int limit_hit(http_parser *p, int status)
{
    conn_t *c = p->data;
    if (c->early_status == 0)
        c->early_status = status;
    http_parser_pause(p, 1);
    return 0;
}

static int on_message_begin(http_parser *p)
{
    conn_t *c = p->data;
    c->begun = true;
    pd__http_start_timer(c, c->server->cfg.read_timeout_ms);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (c->req.url_len + len > URL_MAX)
        return limit_hit(p, 414);
    memcpy(c->req.url + c->req.url_len, at, len);
    c->req.url_len += len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (c->in_value) {
        c->in_value = false;
        c->field_len = 0;
    }
    /* Names longer than any kept header's are kept only as "too long": not ours. */
    size_t room = FIELD_MAX - c->field_len;
    size_t n = len < room ? len : room;
    memcpy(c->field + c->field_len, at, n);
    c->field_len += n;
    return 0;
}

/* Which kept header the field just read names, or H_NONE. */
static int kept_header(const conn_t *c)
{
    for (int h = 0; h < H_COUNT; h++) {
        if (c->field_len == strlen(HEADER_NAMES[h]) &&
            strncasecmp(c->field, HEADER_NAMES[h], c->field_len) == 0)
            return h;
    }
    return H_NONE;
}

/* Appends len bytes to kept header h; 0, or the status that refuses the request. */
static int append_value(pd_http_request_t *r, int h, const char *at, size_t len)
{
    size_t have = r->header_len[h];
    if (have + len > HEADER_VALUE_MAX)
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

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    pd_http_request_t *r = &c->req;
    if (!c->in_value) {
        c->in_value = true;
        c->header = kept_header(c);
        if (c->header == H_FORWARDED_FOR && r->headers[c->header] != NULL) {
            /* Several X-Forwarded-For headers make one list, in order (RFC 9110, 5.3). */
            int status = append_value(r, c->header, ",", 1);
            if (status != 0)
                return limit_hit(p, status);
        } else if (c->header != H_NONE && r->headers[c->header] != NULL) {
            return limit_hit(p, 400); /* the same kept header twice: ambiguous */
        } else if (c->header != H_NONE && (r->headers[c->header] = calloc(1, 1)) == NULL) {
            return limit_hit(p, 503);
        }
    }
    if (c->header == H_NONE)
        return 0;
    int status = append_value(r, c->header, at, len);
    return status != 0 ? limit_hit(p, status) : 0;
}

static int on_headers_complete(http_parser *p)
{
    conn_t *c = p->data;
    pd_http_request_t *r = &c->req;
    r->method = http_method_str((enum http_method)p->method);
    bool chunked = (p->flags & F_CHUNKED) != 0;
    bool length = p->content_length != ULLONG_MAX && p->content_length > 0;
    r->has_body = chunked || length;
    r->content_length = length ? p->content_length : 0;
    if (r->content_length > c->server->cfg.max_body)
        return limit_hit(p, 413);
    c->headers_done = true;
    if (r->has_body)
        http_parser_pause(p, 1); /* the handler decides whether to read it */
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    pd_http_request_t *r = &c->req;
    pd_http_server_t *s = c->server;
    if (r->body_received + len > s->cfg.max_body)
        return limit_hit(p, 413);
    if (s->buffered + len > s->cfg.max_buffered)
        return limit_hit(p, 503);
    r->body_received += len;
    s->buffered += len;
    /* The bytes are in the server's read buffer or in `pending`: both writable. */
    int status = r->sink.data(r->sink.ctx, (char *)at, len);
    return status != 0 ? limit_hit(p, status) : 0;
}

static int on_message_complete(http_parser *p)
{
    conn_t *c = p->data;
    c->complete = true;
    c->keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1);
    return 0;
}

void pd__http_settings_init(http_parser_settings *settings)
{
    http_parser_settings_init(settings);
    settings->on_message_begin = on_message_begin;
    settings->on_url = on_url;
    settings->on_header_field = on_header_field;
    settings->on_header_value = on_header_value;
    settings->on_headers_complete = on_headers_complete;
    settings->on_body = on_body;
    settings->on_message_complete = on_message_complete;
}

/* Hands a request whose headers are complete to the handler. */
static void dispatch(conn_t *c)
{
    pd_http_server_t *s = c->server;
    pd_http_request_t *r = &c->req;
    pd__http_stop_reading(c);
    uv_timer_stop(&c->timer);
    c->state = C_HANDLING;
    r->url[r->url_len] = '\0';
    char *q = strchr(r->url, '?');
    if (q != NULL)
        *q++ = '\0';
    r->query = q != NULL ? q : "";
    r->id = ++s->next_id;
    if (r->url[0] != '/') {
        pd__http_answer_error(c, 400); /* only origin-form targets: "/path?query" */
        return;
    }
    if (c->proxied) {
        /* Behind a trusted proxy the request names its client, and the limit counts it. */
        pd_proxies_client(s->cfg.trusted_proxies, c->peer, r->headers[H_FORWARDED_FOR], c->client,
                          sizeof(c->client));
        if (s->cfg.max_connections_per_client > 0 &&
            pd__http_client_connections(c) > s->cfg.max_connections_per_client) {
            pd__http_answer_error(c, 429);
            return;
        }
    }
    c->held = true;
    s->cfg.on_request(s->cfg.ctx, r);
}

void pd__http_end_body(conn_t *c, int status)
{
    pd_http_request_t *r = &c->req;
    pd__http_stop_reading(c);
    uv_timer_stop(&c->timer);
    if (c->state == C_BODY)
        c->state = C_HANDLING;
    r->sink.end(r->sink.ctx, status);
}

/* Keeps the bytes the parser did not take, for when the connection reads on. */
static bool keep_pending(conn_t *c, const char *data, size_t len)
{
    if (len == 0)
        return true;
    c->pending = malloc(len);
    if (c->pending == NULL) {
        pd__http_close_conn(c);
        return false;
    }
    memcpy(c->pending, data, len);
    c->pending_len = len;
    return true;
}

void pd__http_parse(conn_t *c, const char *data, size_t len)
{
    bool in_body = c->state == C_BODY;
    size_t n = http_parser_execute(&c->parser, &c->server->settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_OK)
        return;
    if (e != HPE_PAUSED) {
        c->begun = true;
        int status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
        if (in_body)
            pd__http_end_body(c, status);
        else
            pd__http_answer_error(c, status);
        return;
    }
    if (c->early_status != 0) {
        if (in_body)
            pd__http_end_body(c, c->early_status);
        else
            pd__http_answer_error(c, c->early_status);
        return;
    }
    if (!keep_pending(c, data + n, len - n))
        return;
    if (in_body)
        pd__http_end_body(c, 0); /* the message is complete */
    else
        dispatch(c);
}

void pd_http_read_body(pd_http_request_t *req, const pd_http_body_sink_t *sink)
{
    static const char CONTINUE[] = "HTTP/1.1 100 Continue\r\n\r\n";
    conn_t *c = req->conn;
    req->sink = *sink;
    if (c->peer_gone || c->state != C_HANDLING) {
        req->sink.end(req->sink.ctx, -1);
        return;
    }
    const char *expect = req->headers[H_EXPECT];
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0 && c->parser.http_major == 1 &&
        c->parser.http_minor >= 1) {
        uv_buf_t buf = uv_buf_init((char *)CONTINUE, sizeof(CONTINUE) - 1);
        c->continue_req.data = c;
        if (uv_write(&c->continue_req, (uv_stream_t *)&c->tcp, &buf, 1, NULL) != 0) {
            pd__http_close_conn(c);
            return;
        }
    }
    c->state = C_BODY;
    pd__http_start_timer(c, c->server->cfg.read_timeout_ms);
    pd__http_resume(c);
}

void pd__http_resume(conn_t *c)
{
    conn_state_t state = c->state;
    http_parser_pause(&c->parser, 0);
    if (c->pending != NULL) {
        char *data = c->pending;
        size_t len = c->pending_len;
        c->pending = NULL;
        c->pending_len = 0;
        pd__http_parse(c, data, len);
        free(data);
    }
    if (c->state == state)
        pd__http_start_reading(c);
}

/* --- request accessors ------------------------------------------------------ */

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
    return req->headers[H_AUTHORIZATION];
}

const char *pd_http_content_type(const pd_http_request_t *req)
{
    return req->headers[H_CONTENT_TYPE];
}

const char *pd_http_content_encoding(const pd_http_request_t *req)
{
    return req->headers[H_CONTENT_ENCODING];
}

const char *pd_http_client(const pd_http_request_t *req)
{
    return req->conn->client;
}

bool pd_http_has_body(const pd_http_request_t *req)
{
    return req->has_body;
}

uint64_t pd_http_request_id(const pd_http_request_t *req)
{
    return req->id;
}
