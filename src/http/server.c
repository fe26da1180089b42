/*
 * The HTTP/1.1 server; see include/pd/http.h.  This file holds the
 * connections: accepting them (within the total and per-address caps),
 * their timers, writing answers, lingering closes and draining; request.c
 * parses each request and streams its body.  The connection states are
 * described in conn.h.
 *
 * Threads: all of this runs on the loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"

#define LINGER_MS 2000
#define LINGER_MAX_BYTES (8 * 1024 * 1024)

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

static void free_if_done(conn_t *c)
{
    if (c->handles_open > 0 || c->held)
        return;
    pd_http_server_t *s = c->server;
    pd__http_reset_request(c);
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

void pd__http_close_conn(conn_t *c)
{
    if (c->state == C_CLOSING)
        return;
    bool in_body = c->state == C_BODY;
    if (c->state == C_HANDLING || in_body)
        c->peer_gone = true;
    c->state = C_CLOSING;
    c->reading = false;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    if (in_body)
        c->req.sink.end(c->req.sink.ctx, -1); /* the handler answers; the answer is dropped */
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->server->readbuf, sizeof(c->server->readbuf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

void pd__http_start_reading(conn_t *c)
{
    if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

void pd__http_stop_reading(conn_t *c)
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
            pd__http_close_conn(c); /* idle keep-alive connection */
        }
        break;
    case C_BODY:
        pd__http_end_body(c, 408);
        break;
    case C_WRITING: /* the client does not read its answer */
    case C_LINGER:
        pd__http_close_conn(c);
        break;
    default:
        break;
    }
}

void pd__http_start_timer(conn_t *c, int ms)
{
    uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
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
        pd__http_close_conn(c);
        return;
    }
    uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
    pd__http_start_reading(c);
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
        pd__http_close_conn(c);
        return;
    }
    if (c->close_after || c->server->draining) {
        if (c->linger)
            start_linger(c);
        else
            pd__http_close_conn(c);
        return;
    }
    pd__http_reset_request(c);
    c->state = C_READING;
    uv_timer_start(&c->timer, on_timer, (uint64_t)c->server->cfg.idle_timeout_ms, 0);
    pd__http_resume(c);
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
        pd__http_close_conn(c);
        return;
    }
    free(c->out);
    c->out = malloc((size_t)n + len);
    if (c->out == NULL) {
        pd__http_close_conn(c);
        return;
    }
    memcpy(c->out, head, (size_t)n);
    if (c->req.method != NULL && strcmp(c->req.method, "HEAD") == 0)
        len = 0; /* the headers describe the body; HEAD gets none */
    if (len > 0)
        memcpy(c->out + n, body, len);
    pd__http_stop_reading(c);
    c->state = C_WRITING;
    uv_timer_start(&c->timer, on_timer, (uint64_t)s->cfg.read_timeout_ms, 0);
    uv_buf_t buf = uv_buf_init(c->out, (unsigned)((size_t)n + len));
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0)
        pd__http_close_conn(c);
}

void pd__http_answer_error(conn_t *c, int status)
{
    char body[160];
    const char *extra = status == 503 || status == 429 ? "Retry-After: 1\r\n" : "";
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

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = stream->data;
    if (nread < 0) {
        pd__http_close_conn(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->state == C_READING || c->state == C_BODY) {
        pd__http_parse(c, buf->base, (size_t)nread);
    } else if (c->state == C_LINGER) {
        /* Dropped; but a client that keeps sending is not worth more than a bounded read. */
        c->lingered += (size_t)nread;
        if (c->lingered > LINGER_MAX_BYTES)
            pd__http_close_conn(c);
    }
}

/* --- accepting ------------------------------------------------------------- */

/* Close callback of a handle whose data is a heap block of its own. */
static void free_data(uv_handle_t *h)
{
    free(h->data);
}

/* The client's address as text, without the port; "" when unknown. */
static void peer_of(conn_t *c)
{
    struct sockaddr_storage addr;
    int len = sizeof(addr);
    c->peer[0] = '\0';
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&addr, &len) != 0)
        return;
    if (addr.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&addr, c->peer, sizeof(c->peer));
    else
        uv_ip4_name((struct sockaddr_in *)&addr, c->peer, sizeof(c->peer));
}

int pd__http_client_connections(const conn_t *c)
{
    int n = 0;
    for (const conn_t *o = c->server->conns; o != NULL; o = o->next)
        n += o->state != C_CLOSING && strcmp(o->client, c->client) == 0;
    return n;
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
        pd__http_close_conn(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    peer_of(c);
    memcpy(c->client, c->peer, sizeof(c->client));
    c->proxied = pd_proxies_trusts(s->cfg.trusted_proxies, c->peer);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->state = C_READING;
    /*
     * Over a cap the connection is answered at once and closed; the first
     * thing a client sends is read and dropped while the answer goes out.
     */
    if (s->n_conns > (size_t)s->cfg.max_connections || s->draining) {
        c->begun = true;
        pd__http_answer_error(c, 503);
        return;
    }
    /* A trusted proxy's connections are counted for the clients of their requests (request.c). */
    if (s->cfg.max_connections_per_client > 0 && !c->proxied &&
        pd__http_client_connections(c) > s->cfg.max_connections_per_client) {
        c->begun = true;
        pd__http_answer_error(c, 429);
        return;
    }
    pd__http_start_timer(c, s->cfg.idle_timeout_ms);
    pd__http_start_reading(c);
}

int pd_http_server_create(uv_loop_t *loop, const pd_http_config_t *cfg, pd_http_server_t **out,
                          pd_error_t *err)
{
    pd_http_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    s->cfg = *cfg;
    s->loop = loop;
    pd__http_settings_init(&s->settings);

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
            pd__http_close_conn(c);
    }
}

void pd_http_server_destroy(pd_http_server_t *server)
{
    free(server);
}
