/*
 * The HTTP/1.1 server; see include/pd/http.h.
 *
 * Threads: all of this runs on the loop thread.
 *
 * A connection goes through these states:
 *
 *   READING   bytes are parsed as they arrive.  Before a request begins the
 *             idle timer runs; from its first byte, the read timer.
 *   HANDLING  a whole request is with the handler.  Reading is stopped, so
 *             pipelined requests stay in the socket (or in `pending`, when
 *             they came in the same read) until the answer is written.
 *   WRITING   the answer is being written, under the same timeout.  Then
 *             either back to READING (keep-alive; the pending bytes are
 *             parsed first) or closed.
 *   LINGER    after an error answer: the write side is shut down and what
 *             the client still sends is read and dropped, until it closes or
 *             a short timer fires, so that it reads our answer rather than a
 *             reset caused by unread data.
 *   CLOSING   the handles are closing.  The memory goes when both handles
 *             are closed and the handler no longer holds the request.
 *
 * The parser is paused (http_parser_pause) when a request is complete and
 * when a limit is hit, so that no callback runs for bytes beyond the
 * request the server is answering.
 */
#include "pd/http.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define URL_MAX 8192
#define HEADER_VALUE_MAX 8192
#define FIELD_MAX 32
#define LINGER_MS 2000
#define READ_CHUNK (64 * 1024)

typedef enum conn_state { C_READING, C_HANDLING, C_WRITING, C_LINGER, C_CLOSING } conn_state_t;

/* The headers a request keeps; all others are parsed and dropped. */
enum { H_NONE = -1, H_AUTHORIZATION, H_CONTENT_TYPE, H_EXPECT, H_COUNT };
static const char *const HEADER_NAMES[H_COUNT] = {"authorization", "content-type", "expect"};

typedef struct conn conn_t;

struct pd_http_request {
    conn_t *conn;
    uint64_t id;
    const char *method;
    char url[URL_MAX + 1];
    size_t url_len;
    const char *query; /* into url, after the '?' (which became a NUL), or "" */
    char *headers[H_COUNT];
    size_t header_len[H_COUNT];
    char *body;
    size_t body_len, body_cap;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    pd_http_server_t *server;
    conn_t *prev, *next;
    http_parser parser;
    conn_state_t state;
    pd_http_request_t req;

    /* The request being parsed. */
    bool begun;       /* its first byte arrived */
    bool complete;    /* on_message_complete ran */
    int early_status; /* a limit or a bad header: answer this and close */
    int header;       /* which kept header the current field is, or H_NONE */
    bool in_value;    /* the last header callback was a value */
    char field[FIELD_MAX];
    size_t field_len;
    bool keep_alive;

    char *pending; /* bytes after the request being handled, not parsed yet */
    size_t pending_len;

    bool reading;
    bool held;        /* the handler holds req */
    bool peer_gone;   /* closed while the handler held req: the answer is dropped */
    bool close_after; /* close once the answer is written */
    bool linger;      /* ... after a lingering close */
    int handles_open;
    uv_write_t write_req;
    uv_write_t continue_req;
    uv_shutdown_t shutdown_req;
    char *out; /* the answer being written */
};

struct pd_http_server {
    pd_http_config_t cfg;
    uv_loop_t *loop;
    uv_tcp_t listener;
    http_parser_settings settings;
    conn_t *conns;
    size_t n_conns;
    size_t buffered; /* capacity of the request bodies held */
    uint64_t next_id;
    int port;
    bool draining, listener_closed, drained_called;
    void (*drained)(void *ctx);
    char readbuf[READ_CHUNK]; /* libuv reads into it; parsed before the next read */
};

static void close_conn(conn_t *c);
static void parse(conn_t *c, const char *data, size_t len);
static void send_answer(conn_t *c, int status, const char *content_type, const char *extra,
                        const char *body, size_t len, bool close);

const char *pd_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 207:
        return "Multi-Status";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

/* --- connection bookkeeping ------------------------------------------------ */

static void maybe_drained(pd_http_server_t *s)
{
    if (s->draining && s->listener_closed && s->n_conns == 0 && !s->drained_called) {
        s->drained_called = true;
        if (s->drained != NULL)
            s->drained(s->cfg.ctx);
    }
}

static void reset_request(conn_t *c)
{
    pd_http_request_t *r = &c->req;
    for (int h = 0; h < H_COUNT; h++)
        free(r->headers[h]);
    c->server->buffered -= r->body_cap;
    free(r->body);
    memset(r, 0, sizeof(*r));
    r->conn = c;
    c->begun = c->complete = c->in_value = false;
    c->early_status = 0;
    c->header = H_NONE;
    c->field_len = 0;
}

static void free_if_done(conn_t *c)
{
    if (c->handles_open > 0 || c->held)
        return;
    pd_http_server_t *s = c->server;
    reset_request(c);
    free(c->pending);
    free(c->out);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    free(c);
    maybe_drained(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    c->handles_open--;
    free_if_done(c);
}

static void close_conn(conn_t *c)
{
    if (c->state == C_CLOSING)
        return;
    if (c->state == C_HANDLING)
        c->peer_gone = true;
    c->state = C_CLOSING;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->server->readbuf, sizeof(c->server->readbuf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void start_reading(conn_t *c)
{
    if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

static void stop_reading(conn_t *c)
{
    if (c->reading)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

static void on_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    switch (c->state) {
    case C_READING:
        if (c->begun) {
            static const char body[] = "{\"error\": \"the request did not arrive in time\"}\n";
            send_answer(c, 408, "application/json", "", body, sizeof(body) - 1, true);
        } else {
            close_conn(c); /* idle keep-alive connection */
        }
        break;
    case C_WRITING: /* the client does not read its answer */
    case C_LINGER:
        close_conn(c);
        break;
    default:
        break;
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

static void start_linger(conn_t *c)
{
    c->state = C_LINGER;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        close_conn(c);
        return;
    }
    uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
    start_reading(c);
}

/* --- answers --------------------------------------------------------------- */

static void on_write(uv_write_t *w, int status)
{
    conn_t *c = w->data;
    free(c->out);
    c->out = NULL;
    if (c->state != C_WRITING)
        return; /* closed meanwhile */
    if (status < 0) {
        close_conn(c);
        return;
    }
    if (c->close_after || c->server->draining) {
        if (c->linger)
            start_linger(c);
        else
            close_conn(c);
        return;
    }
    reset_request(c);
    c->state = C_READING;
    uv_timer_start(&c->timer, on_timer, (uint64_t)c->server->cfg.idle_timeout_ms, 0);
    http_parser_pause(&c->parser, 0);
    if (c->pending != NULL) {
        char *data = c->pending;
        size_t len = c->pending_len;
        c->pending = NULL;
        c->pending_len = 0;
        parse(c, data, len);
        free(data);
    }
    if (c->state == C_READING)
        start_reading(c);
}

static void send_answer(conn_t *c, int status, const char *content_type, const char *extra,
                        const char *body, size_t len, bool close)
{
    pd_http_server_t *s = c->server;
    if (c->early_status != 0 || !c->complete) {
        /* The request was not read to its end: nothing after it can be parsed. */
        close = true;
        c->linger = true;
    }
    close = close || !c->keep_alive || s->draining;
    c->close_after = close;
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Connection: %s\r\n\r\n",
                     status, pd_http_reason(status), content_type, len, extra,
                     close ? "close" : "keep-alive");
    if (n < 0 || (size_t)n >= sizeof(head)) {
        close_conn(c);
        return;
    }
    free(c->out);
    c->out = malloc((size_t)n + len);
    if (c->out == NULL) {
        close_conn(c);
        return;
    }
    memcpy(c->out, head, (size_t)n);
    if (c->req.method != NULL && strcmp(c->req.method, "HEAD") == 0)
        len = 0; /* the headers describe the body; HEAD gets none */
    if (len > 0)
        memcpy(c->out + n, body, len);
    stop_reading(c);
    c->state = C_WRITING;
    uv_timer_start(&c->timer, on_timer, (uint64_t)s->cfg.read_timeout_ms, 0);
    uv_buf_t buf = uv_buf_init(c->out, (unsigned)((size_t)n + len));
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0)
        close_conn(c);
}

static void answer_error(conn_t *c, int status)
{
    char body[160];
    const char *extra = status == 503 ? "Retry-After: 1\r\n" : "";
    int n = snprintf(body, sizeof(body), "{\"error\": \"%s\"}\n", pd_http_reason(status));
    if (c->server->cfg.on_refused != NULL)
        c->server->cfg.on_refused(c->server->cfg.ctx, status);
    send_answer(c, status, "application/json", extra, body, (size_t)n, true);
}

void pd_http_respond(pd_http_request_t *req, int status, const char *content_type,
                     const char *extra_headers, const char *body, size_t len, bool close)
{
    conn_t *c = req->conn;
    c->held = false;
    if (c->peer_gone || c->state != C_HANDLING) {
        free_if_done(c);
        return;
    }
    send_answer(c, status, content_type, extra_headers ? extra_headers : "", body, len, close);
}

/* --- parsing --------------------------------------------------------------- */

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
    uv_timer_start(&c->timer, on_timer, (uint64_t)c->server->cfg.read_timeout_ms, 0);
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

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    pd_http_request_t *r = &c->req;
    if (!c->in_value) {
        c->in_value = true;
        c->header = H_NONE;
        for (int h = 0; h < H_COUNT; h++) {
            if (c->field_len == strlen(HEADER_NAMES[h]) &&
                strncasecmp(c->field, HEADER_NAMES[h], c->field_len) == 0)
                c->header = h;
        }
        if (c->header != H_NONE && r->headers[c->header] != NULL)
            return limit_hit(p, 400); /* the same kept header twice: ambiguous */
        if (c->header != H_NONE && (r->headers[c->header] = calloc(1, 1)) == NULL)
            return limit_hit(p, 503);
    }
    if (c->header == H_NONE)
        return 0;
    size_t have = r->header_len[c->header];
    if (have + len > HEADER_VALUE_MAX)
        return limit_hit(p, 431);
    char *grown = realloc(r->headers[c->header], have + len + 1);
    if (grown == NULL)
        return limit_hit(p, 503);
    memcpy(grown + have, at, len);
    grown[have + len] = '\0';
    r->headers[c->header] = grown;
    r->header_len[c->header] = have + len;
    return 0;
}

static const char CONTINUE[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void on_continue_written(uv_write_t *w, int status)
{
    (void)w;
    (void)status;
}

/* Makes room for want bytes of body in total, within the limits. */
static int reserve_body(http_parser *p, size_t want)
{
    conn_t *c = p->data;
    pd_http_request_t *r = &c->req;
    pd_http_server_t *s = c->server;
    if (want > s->cfg.max_body)
        return 413;
    if (want + 1 <= r->body_cap)
        return 0;
    size_t cap = r->body_cap ? r->body_cap : 16 * 1024;
    while (cap < want + 1)
        cap *= 2;
    if (cap > s->cfg.max_body + 1)
        cap = s->cfg.max_body + 1;
    if (s->buffered - r->body_cap + cap > s->cfg.max_buffered)
        return 503;
    char *grown = realloc(r->body, cap);
    if (grown == NULL)
        return 503;
    s->buffered += cap - r->body_cap;
    r->body = grown;
    r->body_cap = cap;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    conn_t *c = p->data;
    pd_http_request_t *r = &c->req;
    r->method = http_method_str((enum http_method)p->method);
    if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX && p->content_length > 0) {
        if (p->content_length > c->server->cfg.max_body)
            return limit_hit(p, 413);
        int status = reserve_body(p, (size_t)p->content_length);
        if (status != 0)
            return limit_hit(p, status);
    }
    const char *expect = r->headers[H_EXPECT];
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0 && p->http_major == 1 &&
        p->http_minor >= 1) {
        uv_buf_t buf = uv_buf_init((char *)CONTINUE, sizeof(CONTINUE) - 1);
        c->continue_req.data = c;
        uv_write(&c->continue_req, (uv_stream_t *)&c->tcp, &buf, 1, on_continue_written);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    pd_http_request_t *r = &c->req;
    int status = reserve_body(p, r->body_len + len);
    if (status != 0)
        return limit_hit(p, status);
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    conn_t *c = p->data;
    c->complete = true;
    c->keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1);
    return 0;
}

/* Hands a complete request to the handler. */
static void dispatch(conn_t *c)
{
    pd_http_server_t *s = c->server;
    pd_http_request_t *r = &c->req;
    stop_reading(c);
    uv_timer_stop(&c->timer);
    c->state = C_HANDLING;
    r->url[r->url_len] = '\0';
    char *q = strchr(r->url, '?');
    if (q != NULL)
        *q++ = '\0';
    r->query = q != NULL ? q : "";
    if (r->body != NULL)
        r->body[r->body_len] = '\0'; /* reserve_body kept a byte for it */
    r->id = ++s->next_id;
    if (r->url[0] != '/') {
        answer_error(c, 400); /* only origin-form targets: "/path?query" */
        return;
    }
    c->held = true;
    s->cfg.on_request(s->cfg.ctx, r);
}

static void parse(conn_t *c, const char *data, size_t len)
{
    size_t n = http_parser_execute(&c->parser, &c->server->settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) {
        if (c->early_status != 0) {
            answer_error(c, c->early_status);
            return;
        }
        if (n < len) {
            c->pending = malloc(len - n);
            if (c->pending == NULL) {
                close_conn(c);
                return;
            }
            memcpy(c->pending, data + n, len - n);
            c->pending_len = len - n;
        }
        dispatch(c);
    } else if (e != HPE_OK) {
        c->begun = true;
        answer_error(c, e == HPE_HEADER_OVERFLOW ? 431 : 400);
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = stream->data;
    if (nread < 0) {
        close_conn(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->state == C_READING)
        parse(c, buf->base, (size_t)nread);
    /* In LINGER, what the client still sends is dropped. */
}

/* --- accepting ------------------------------------------------------------- */

/* Close callback of a handle whose data is a heap block of its own. */
static void free_data(uv_handle_t *h)
{
    free(h->data);
}

static void on_connection(uv_stream_t *listener, int status)
{
    pd_http_server_t *s = listener->data;
    if (status < 0)
        return;
    conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->server = s;
    c->header = H_NONE;
    c->req.conn = c;
    c->tcp.data = c->timer.data = c;
    if (uv_tcp_init(s->loop, &c->tcp) != 0) {
        free(c); /* nothing was registered with the loop */
        return;
    }
    if (uv_timer_init(s->loop, &c->timer) != 0) {
        uv_close((uv_handle_t *)&c->tcp, free_data);
        return;
    }
    c->handles_open = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        close_conn(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->state = C_READING;
    if (s->n_conns > (size_t)s->cfg.max_connections || s->draining) {
        c->begun = true;
        answer_error(c, 503);
        return;
    }
    uv_timer_start(&c->timer, on_timer, (uint64_t)s->cfg.idle_timeout_ms, 0);
    start_reading(c);
}

int pd_http_server_create(uv_loop_t *loop, const pd_http_config_t *cfg, pd_http_server_t **out,
                          pd_error_t *err)
{
    pd_http_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    s->cfg = *cfg;
    s->loop = loop;
    http_parser_settings_init(&s->settings);
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_value = on_header_value;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;

    struct sockaddr_storage addr;
    int rc = strchr(cfg->host, ':') != NULL
                 ? uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&addr)
                 : uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&addr);
    if (rc != 0) {
        free(s);
        return pd_error_set(err, PD_EINVAL, 0, "", "bad listen address '%s'", cfg->host);
    }
    s->listener.data = s;
    if ((rc = uv_tcp_init(loop, &s->listener)) != 0) {
        free(s);
        return pd_error_set(err, PD_EIO, 0, "", "cannot listen: %s", uv_strerror(rc));
    }
    if ((rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection)) != 0) {
        pd_error_set(err, PD_EIO, 0, "", "cannot listen on %s:%d: %s", cfg->host, cfg->port,
                     uv_strerror(rc));
        /* The handle is freed with the server once the loop has closed it. */
        s->draining = true;
        s->drained_called = true;
        uv_close((uv_handle_t *)&s->listener, free_data);
        return PD_EIO;
    }
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
    s->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    *out = s;
    return PD_OK;
}

int pd_http_server_port(const pd_http_server_t *server)
{
    return server->port;
}

size_t pd_http_server_connections(const pd_http_server_t *server)
{
    return server->n_conns;
}

static void on_listener_closed(uv_handle_t *h)
{
    pd_http_server_t *s = h->data;
    s->listener_closed = true;
    maybe_drained(s);
}

void pd_http_server_drain(pd_http_server_t *s, void (*drained)(void *ctx))
{
    if (s->draining)
        return;
    s->draining = true;
    s->drained = drained;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (conn_t *c = s->conns; c != NULL; c = c->next) {
        if (c->state == C_READING && !c->begun)
            close_conn(c);
    }
}

void pd_http_server_destroy(pd_http_server_t *server)
{
    free(server);
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

char *pd_http_body(pd_http_request_t *req, size_t *len)
{
    *len = req->body_len;
    return req->body_len > 0 ? req->body : NULL;
}

uint64_t pd_http_request_id(const pd_http_request_t *req)
{
    return req->id;
}
