/*
 * The connections of the HTTP/1.1 server (include/pd/http.h says what a
 * handler sees).  Each connection is one state machine:
 *
 *   state      where the connection is                        reads  timer
 *   NEW        accepted, not yet served                        no     -
 *   IDLE       between requests: waiting for one's first byte  yes    idle_timeout
 *   HEAD       a request's head is arriving                    yes    read_timeout, from its
 *                                                                     first byte
 *   HELD       the handler holds a request read to its end     no     -
 *   HELD_OPEN  the handler holds a request not read to its     no     -
 *              end (its body unread, or stopped by a limit):
 *              nothing after it can be parsed, so its answer
 *              ends the connection
 *   BODY       the handler asked for the body: it is parsed    yes    read_timeout, from the
 *              as it arrives and streamed to the handler's            asking
 *              sink
 *   WRITING    an answer goes out; then `after_write`          no     read_timeout
 *   LINGER     after an answer to a request not read to its    yes    LINGER_MS
 *              end: the write side is shut and what the
 *              client still sends is dropped, so that it
 *              reads the answer rather than a reset caused by
 *              unread data
 *   ORPHAN     the client went away while the handler holds    -      closing
 *              the request: the answer will be dropped
 *   CLOSED     the handles are closing; the memory goes once   -      closing
 *              both are closed
 *
 * The events, and where they lead:
 *
 *   accepted           NEW -> IDLE; past a connection cap, an answer (503, 429)
 *                      -> WRITING
 *   bytes in IDLE      a request begins -> HEAD
 *   bytes in HEAD      a head with a body -> HELD_OPEN, a whole request -> HELD: to
 *                      the handler (or answered 400 or 429 at once); malformed or past
 *                      a limit -> WRITING (400, 413, 414, 431)
 *   pd_http_read_body  HELD_OPEN -> BODY ("100 Continue" if asked for); in HELD the
 *                      body is empty and ends at once
 *   bytes in BODY      the body ends -> HELD; past a limit or malformed -> HELD_OPEN;
 *                      either way the sink's end() hears it
 *   pd_http_respond    HELD, HELD_OPEN, BODY -> WRITING; ORPHAN -> CLOSED
 *   answer written     -> after_write: IDLE (keep-alive, not draining), LINGER (the
 *                      request was not read to its end) or CLOSED
 *   timer              IDLE -> CLOSED; HEAD -> WRITING (408); BODY -> HELD_OPEN
 *                      (end() hears 408); WRITING, LINGER -> CLOSED
 *   client gone        HELD, HELD_OPEN, BODY -> ORPHAN (in BODY end() hears -1);
 *                      the others -> CLOSED
 *   drain              IDLE -> CLOSED; the others close after their answer
 *
 * Every transition goes through enter(), which checks it against the table
 * MAY_ENTER and starts or stops what the new state needs (reading, the
 * timer, closing); no other code starts or stops them.  Bytes that arrive
 * after a point where the parser stops (the end of a head with a body, the
 * end of a request) are kept in `pending` and parsed first when the
 * connection reads on, so pipelined requests are answered one at a time,
 * in order.
 *
 * Thread: the loop thread, handlers included.
 */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/log.h"
#include "pd/proxies.h"
#include "request.h"

#define READ_CHUNK (64 * 1024)
#define LINGER_MS 2000
#define LINGER_MAX_BYTES (8 * 1024 * 1024)

typedef enum conn_state {
    C_NEW,
    C_IDLE,
    C_HEAD,
    C_HELD,
    C_HELD_OPEN,
    C_BODY,
    C_WRITING,
    C_LINGER,
    C_ORPHAN,
    C_CLOSED,
} conn_state_t;

#define TO(s) (1u << (s))
/* Which states may follow each one: the transitions of the table above. */
static const unsigned MAY_ENTER[] = {
    [C_NEW] = TO(C_IDLE) | TO(C_WRITING) | TO(C_CLOSED),
    [C_IDLE] = TO(C_HEAD) | TO(C_WRITING) | TO(C_CLOSED),
    [C_HEAD] = TO(C_HELD) | TO(C_HELD_OPEN) | TO(C_WRITING) | TO(C_CLOSED),
    [C_HELD] = TO(C_WRITING) | TO(C_ORPHAN),
    [C_HELD_OPEN] = TO(C_BODY) | TO(C_WRITING) | TO(C_ORPHAN),
    [C_BODY] = TO(C_HELD) | TO(C_HELD_OPEN) | TO(C_WRITING) | TO(C_ORPHAN),
    [C_WRITING] = TO(C_IDLE) | TO(C_LINGER) | TO(C_CLOSED),
    [C_LINGER] = TO(C_CLOSED),
    [C_ORPHAN] = TO(C_CLOSED),
    [C_CLOSED] = 0,
};
#undef TO
static const char *const STATE_NAMES[] = {"NEW",  "IDLE",    "HEAD",   "HELD",   "HELD_OPEN",
                                          "BODY", "WRITING", "LINGER", "ORPHAN", "CLOSED"};

typedef struct pd__conn conn_t;

struct pd__conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    pd__conn_set_t *set;
    conn_t *prev, *next;
    conn_state_t state;
    conn_state_t after_write; /* WRITING: the state once the answer is out */
    pd_http_request_t req;
    char peer[PD_ADDRESS_MAX];   /* the peer's address, without the port */
    char client[PD_ADDRESS_MAX]; /* whom the limits count it for: the peer, or (behind a trusted
                                    proxy) the client its current request is forwarded for */
    bool proxied;                /* the peer is a trusted proxy */
    char *pending;               /* bytes after where the parser stopped, not parsed yet */
    size_t pending_len;
    size_t lingered; /* LINGER: bytes read and dropped */
    int handles_open;
    uv_write_t write_req, continue_req;
    uv_shutdown_t shutdown_req;
    char *out; /* the answer being written */
};

struct pd__conn_set {
    uv_loop_t *loop;
    const pd_http_config_t *cfg;
    pd__request_limits_t limits; /* points at `buffered` */
    size_t buffered;             /* body bytes received by requests not yet answered */
    conn_t *list;
    size_t n;
    uint64_t next_id;
    bool draining;
    void (*emptied)(void *ctx);
    void *ctx;
    char readbuf[READ_CHUNK]; /* libuv reads into it; parsed before the next read */
};

static void enter(conn_t *c, conn_state_t to);
static void feed(conn_t *c, const char *data, size_t len);

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

/* --- the set ----------------------------------------------------------------- */

int pd__conn_set_create(uv_loop_t *loop, const pd_http_config_t *cfg, void (*emptied)(void *ctx),
                        void *ctx, pd__conn_set_t **out)
{
    pd__conn_set_t *set = calloc(1, sizeof(*set));
    if (set == NULL)
        return PD_ENOMEM;
    set->loop = loop;
    set->cfg = cfg;
    set->limits = (pd__request_limits_t){
        .max_body = cfg->max_body, .max_buffered = cfg->max_buffered, .buffered = &set->buffered};
    set->emptied = emptied;
    set->ctx = ctx;
    *out = set;
    return PD_OK;
}

void pd__conn_set_destroy(pd__conn_set_t *set)
{
    free(set);
}

size_t pd__conn_count(const pd__conn_set_t *set)
{
    return set->n;
}

/* Connections open for c's client, c included. */
static int client_connections(const conn_t *c)
{
    int n = 0;
    for (const conn_t *o = c->set->list; o != NULL; o = o->next)
        n += o->state != C_CLOSED && o->state != C_ORPHAN && strcmp(o->client, c->client) == 0;
    return n;
}

/* Releases a closed connection once both handles are closed. */
static void free_if_done(conn_t *c)
{
    if (c->state != C_CLOSED || c->handles_open > 0)
        return;
    pd__conn_set_t *set = c->set;
    pd__request_reset(&c->req);
    free(c->pending);
    free(c->out);
    if (c->prev)
        c->prev->next = c->next;
    else
        set->list = c->next;
    if (c->next)
        c->next->prev = c->prev;
    set->n--;
    free(c);
    if (set->draining && set->n == 0 && set->emptied != NULL)
        set->emptied(set->ctx);
}

static void on_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    c->handles_open--;
    free_if_done(c);
}

/* --- reading and the timer ------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->set->readbuf, sizeof(c->set->readbuf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void on_timer(uv_timer_t *t);
static void on_shutdown(uv_shutdown_t *req, int status);

static void reading(conn_t *c, bool on)
{
    if (on)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read); /* UV_EALREADY when reading */
    else
        uv_read_stop((uv_stream_t *)&c->tcp);
}

static void timer(conn_t *c, int ms)
{
    uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
}

static void close_handles(conn_t *c)
{
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

/*
 * The one place a connection changes state: what the new state needs is
 * started, and what it does not is stopped.
 */
static void enter(conn_t *c, conn_state_t to)
{
    conn_state_t from = c->state;
    if ((MAY_ENTER[from] & (1u << to)) == 0) {
        pd_log(PD_LOG_ERROR, "loop", "http: a connection went from %s to %s", STATE_NAMES[from],
               STATE_NAMES[to]);
        abort(); /* a programming error: the table above says what may follow what */
    }
    c->state = to;
    const pd_http_config_t *cfg = c->set->cfg;
    switch (to) {
    case C_NEW:
        break; /* only ever the first state */
    case C_IDLE:
        pd__request_reset(&c->req); /* the answered request is forgotten */
        reading(c, true);
        timer(c, cfg->idle_timeout_ms);
        break;
    case C_HEAD:
        timer(c, cfg->read_timeout_ms);
        break;
    case C_HELD:
    case C_HELD_OPEN:
        reading(c, false);
        uv_timer_stop(&c->timer);
        break;
    case C_BODY:
        reading(c, true);
        timer(c, cfg->read_timeout_ms);
        break;
    case C_WRITING:
        reading(c, false);
        timer(c, cfg->read_timeout_ms);
        break;
    case C_LINGER:
        if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
            enter(c, C_CLOSED);
            return;
        }
        timer(c, LINGER_MS);
        reading(c, true);
        break;
    case C_ORPHAN:
        close_handles(c);
        break;
    case C_CLOSED:
        if (from == C_ORPHAN)
            free_if_done(c); /* the handles may be closed already */
        else
            close_handles(c);
        break;
    }
}

/* --- answers ------------------------------------------------------------------- */

static void on_write(uv_write_t *w, int status)
{
    conn_t *c = w->data;
    free(c->out);
    c->out = NULL;
    if (c->state != C_WRITING)
        return; /* closed meanwhile */
    if (status < 0) {
        enter(c, C_CLOSED);
        return;
    }
    conn_state_t next = c->after_write;
    if (next == C_IDLE && c->set->draining)
        next = C_CLOSED;
    enter(c, next);
    if (next == C_IDLE && c->pending != NULL) {
        /* A pipelined request arrived with the last one. */
        char *data = c->pending;
        size_t len = c->pending_len;
        c->pending = NULL;
        c->pending_len = 0;
        feed(c, data, len);
        free(data);
    }
}

/* Sends an answer: WRITING, then keep-alive, a lingering close or a close. */
static void answer(conn_t *c, int status, const char *content_type, const char *extra,
                   const char *body, size_t len, bool close)
{
    /* Only a request read to its end leaves the connection able to parse the next one. */
    conn_state_t after = C_LINGER;
    if (c->state == C_HELD)
        after = close || !c->req.keep_alive || c->set->draining ? C_CLOSED : C_IDLE;
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Connection: %s\r\n\r\n",
                     status, pd_http_reason(status), content_type, len, extra,
                     after == C_IDLE ? "keep-alive" : "close");
    free(c->out);
    c->out = n > 0 && (size_t)n < sizeof(head) ? malloc((size_t)n + len) : NULL;
    enter(c, C_WRITING);
    c->after_write = after;
    if (c->out == NULL) {
        enter(c, C_CLOSED);
        return;
    }
    memcpy(c->out, head, (size_t)n);
    if (c->req.method != NULL && strcmp(c->req.method, "HEAD") == 0)
        len = 0; /* the headers describe the body; HEAD gets none */
    if (len > 0)
        memcpy(c->out + n, body, len);
    uv_buf_t buf = uv_buf_init(c->out, (unsigned)((size_t)n + len));
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0)
        enter(c, C_CLOSED);
}

/* Answers a request the server refuses itself (a limit, a malformed request), and closes. */
static void refuse(conn_t *c, int status)
{
    const pd_http_config_t *cfg = c->set->cfg;
    char body[160];
    const char *extra = status == 503 || status == 429 ? "Retry-After: 1\r\n" : "";
    int n = snprintf(body, sizeof(body), "{\"error\": \"%s\"}\n", pd_http_reason(status));
    if (cfg->on_refused != NULL)
        cfg->on_refused(cfg->ctx, status);
    answer(c, status, "application/json", extra, body, (size_t)n, true);
}

void pd_http_respond(pd_http_request_t *req, int status, const char *content_type,
                     const char *extra_headers, const char *body, size_t len, bool close)
{
    conn_t *c = req->conn;
    switch (c->state) {
    case C_HELD:
    case C_HELD_OPEN:
    case C_BODY: /* answered before its body ended: the body stops there */
        answer(c, status, content_type, extra_headers ? extra_headers : "", body, len, close);
        break;
    case C_ORPHAN:
        enter(c, C_CLOSED); /* the client went away: the answer is dropped */
        break;
    default:
        break; /* no request is held: nothing to answer */
    }
}

/* --- requests and bodies ------------------------------------------------------------ */

/* The client went away (or cannot be written to). */
static void gone(conn_t *c)
{
    switch (c->state) {
    case C_HELD:
    case C_HELD_OPEN:
        enter(c, C_ORPHAN); /* the handler answers; the answer is dropped */
        break;
    case C_BODY:
        enter(c, C_ORPHAN);
        c->req.sink.end(c->req.sink.ctx, -1);
        break;
    case C_ORPHAN:
    case C_CLOSED:
        break;
    default:
        enter(c, C_CLOSED);
    }
}

/* The body ended: whole (status 0) or stopped (why). */
static void end_body(conn_t *c, int status)
{
    enter(c, status == 0 ? C_HELD : C_HELD_OPEN);
    c->req.sink.end(c->req.sink.ctx, status);
}

/* Hands a request whose head is complete to the handler; held is HELD or HELD_OPEN. */
static void dispatch(conn_t *c, conn_state_t held)
{
    pd__conn_set_t *set = c->set;
    const pd_http_config_t *cfg = set->cfg;
    pd_http_request_t *r = &c->req;
    enter(c, held);
    r->id = ++set->next_id;
    if (r->url[0] != '/') {
        refuse(c, 400); /* only origin-form targets: "/path?query" */
        return;
    }
    if (c->proxied) {
        /* Behind a trusted proxy the request names its client, and the limit counts it. */
        pd_proxies_client(cfg->trusted_proxies, c->peer, pd__request_header(r, PD__H_FORWARDED_FOR),
                          c->client, sizeof(c->client));
        if (cfg->max_connections_per_client > 0 &&
            client_connections(c) > cfg->max_connections_per_client) {
            refuse(c, 429);
            return;
        }
    }
    cfg->on_request(cfg->ctx, r);
}

/* Keeps the bytes the parser did not take, for when the connection reads on; false if it cannot. */
static bool keep_pending(conn_t *c, const char *data, size_t len)
{
    if (len == 0)
        return true;
    c->pending = malloc(len);
    if (c->pending == NULL) {
        gone(c);
        return false;
    }
    memcpy(c->pending, data, len);
    c->pending_len = len;
    return true;
}

/* Parses bytes that arrived (or were pending) in IDLE, HEAD or BODY, and acts on where it stops. */
static void feed(conn_t *c, const char *data, size_t len)
{
    for (;;) {
        size_t used;
        int status;
        pd__parse_t stop = pd__request_parse(&c->req, data, len, &used, &status);
        data += used;
        len -= used;
        switch (stop) {
        case PD__PARSE_MORE:
            return;
        case PD__PARSE_BEGUN:
            enter(c, C_HEAD);
            break; /* parse on */
        case PD__PARSE_HEAD:
            if (keep_pending(c, data, len))
                dispatch(c, C_HELD_OPEN);
            return;
        case PD__PARSE_DONE:
            if (!keep_pending(c, data, len))
                return;
            if (c->state == C_BODY)
                end_body(c, 0);
            else
                dispatch(c, C_HELD);
            return;
        case PD__PARSE_REFUSED:
            if (c->state == C_BODY)
                end_body(c, status);
            else
                refuse(c, status);
            return;
        }
    }
}

void pd_http_read_body(pd_http_request_t *req, const pd_http_body_sink_t *sink)
{
    static const char CONTINUE[] = "HTTP/1.1 100 Continue\r\n\r\n";
    conn_t *c = req->conn;
    req->sink = *sink;
    if (c->state == C_HELD) {
        req->sink.end(req->sink.ctx, 0); /* read to its end already: no body is coming */
        return;
    }
    if (c->state != C_HELD_OPEN) {
        req->sink.end(req->sink.ctx, -1); /* the client went away */
        return;
    }
    enter(c, C_BODY);
    if (pd__request_expects_continue(req)) {
        uv_buf_t buf = uv_buf_init((char *)CONTINUE, sizeof(CONTINUE) - 1);
        c->continue_req.data = c;
        if (uv_write(&c->continue_req, (uv_stream_t *)&c->tcp, &buf, 1, NULL) != 0) {
            gone(c);
            return;
        }
    }
    if (c->pending != NULL) {
        char *data = c->pending;
        size_t len = c->pending_len;
        c->pending = NULL;
        c->pending_len = 0;
        feed(c, data, len);
        free(data);
    }
}

const char *pd_http_client(const pd_http_request_t *req)
{
    return req->conn->client;
}

/* --- libuv's callbacks ---------------------------------------------------------------- */

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = stream->data;
    if (nread < 0) {
        gone(c);
        return;
    }
    if (nread == 0)
        return; /* nothing was read (EAGAIN) */
    switch (c->state) {
    case C_IDLE:
    case C_HEAD:
    case C_BODY:
        feed(c, buf->base, (size_t)nread);
        break;
    case C_LINGER:
        /* Dropped; but a client that keeps sending is not worth more than a bounded read. */
        c->lingered += (size_t)nread;
        if (c->lingered > LINGER_MAX_BYTES)
            enter(c, C_CLOSED);
        break;
    default:
        break; /* not reading */
    }
}

static void on_timer(uv_timer_t *t)
{
    static const char late[] = "{\"error\": \"the request did not arrive in time\"}\n";
    conn_t *c = t->data;
    switch (c->state) {
    case C_IDLE:    /* an idle keep-alive connection */
    case C_WRITING: /* the client does not read its answer */
    case C_LINGER:
        enter(c, C_CLOSED);
        break;
    case C_HEAD:
        answer(c, 408, "application/json", "", late, sizeof(late) - 1, true);
        break;
    case C_BODY:
        end_body(c, 408);
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

/* Close callback of a TCP handle that never became a connection. */
static void free_unborn(uv_handle_t *h)
{
    free(h->data);
}

void pd__conn_accept(pd__conn_set_t *set, uv_stream_t *listener)
{
    const pd_http_config_t *cfg = set->cfg;
    conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->set = set;
    c->tcp.data = c->timer.data = c;
    if (uv_tcp_init(set->loop, &c->tcp) != 0) {
        free(c); /* nothing was registered with the loop */
        return;
    }
    if (uv_timer_init(set->loop, &c->timer) != 0) {
        uv_close((uv_handle_t *)&c->tcp, free_unborn);
        return;
    }
    c->handles_open = 2;
    c->next = set->list;
    if (set->list)
        set->list->prev = c;
    set->list = c;
    set->n++;
    pd__request_init(&c->req, c, &set->limits);
    c->state = C_NEW;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        enter(c, C_CLOSED);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    peer_of(c);
    memcpy(c->client, c->peer, sizeof(c->client));
    c->proxied = pd_proxies_trusts(cfg->trusted_proxies, c->peer);
    /*
     * Over a cap the connection is answered at once and closed; what the
     * client sends meanwhile is read and dropped (LINGER) after the answer.
     */
    if (set->n > (size_t)cfg->max_connections || set->draining) {
        refuse(c, 503);
        return;
    }
    /* A trusted proxy's connections are counted for the clients of their requests (dispatch). */
    if (cfg->max_connections_per_client > 0 && !c->proxied &&
        client_connections(c) > cfg->max_connections_per_client) {
        refuse(c, 429);
        return;
    }
    enter(c, C_IDLE);
}

void pd__conn_drain(pd__conn_set_t *set)
{
    set->draining = true;
    for (conn_t *c = set->list; c != NULL; c = c->next) {
        if (c->state == C_IDLE)
            enter(c, C_CLOSED);
    }
}
