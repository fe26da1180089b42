/*
 * A small HTTP/1.1 server on a libuv loop: connections, keep-alive, limits
 * and timeouts.  It knows nothing of what it serves: a handler gets each
 * request and answers it.  Parsing is llhttp's (the parser of Node.js);
 * src/http/ keeps the connections (server.c listens, conn.c runs each
 * connection as one state machine, request.c parses a request), enforces
 * the limits and streams request bodies.
 *
 * Threads: everything here runs on the loop thread, including the handler.
 * A handler that needs other threads (a database lookup, a batch write)
 * keeps the request and answers it later, from the loop thread, with
 * pd_http_respond().
 *
 * The handler gets a request as soon as its headers are complete.  A
 * request with a body (pd_http_has_body()) has read none of it yet: the
 * handler answers at once (e.g. 401: no body byte was buffered) or calls
 * pd_http_read_body(), after which the body is handed to its sink chunk by
 * chunk as it arrives ("100 Continue" is sent only then).  Nothing of a
 * body is kept by the server.  The handler answers once the sink's end()
 * ran; an answer given before stops the body there (end() does not run).
 *
 * One request at a time per connection: while a request is with the
 * handler the connection reads nothing more (the body, when not asked for,
 * and pipelined requests wait in the socket), so a client cannot make the
 * server buffer without bound.  Every request handed to the handler must be
 * answered exactly once with pd_http_respond(), even when the client has
 * gone away meanwhile (the answer is then dropped and the request released).
 *
 * Limits: a body over max_body bytes is refused with 413 (at once when
 * Content-Length says so); body bytes received by requests not yet
 * answered are capped by max_buffered across all connections (the sink
 * learns of it as 503); more than max_connections connections get 503, more
 * than max_connections_per_client from one client get 429; a request that
 * does not arrive whole within read_timeout_ms of its first byte (or of the
 * handler asking for its body) gets 408; an idle keep-alive connection is
 * closed after idle_timeout_ms; a response the client does not read within
 * read_timeout_ms is dropped with the connection.  Malformed requests get
 * 400 (431 for headers too large, 414 for an over-long URL).  After an
 * answer to a request that was not read to its end the server stops
 * sending, reads and discards what the client still sends for a moment
 * ("lingering close"), so the client sees the answer instead of a reset.
 */
#ifndef PD_HTTP_H
#define PD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pd/error.h"

typedef struct pd_http_server pd_http_server_t;
typedef struct pd_proxies pd_proxies_t; /* include/pd/proxies.h */
typedef struct pd_http_request pd_http_request_t;

typedef struct pd_http_config {
    const char *host;    /* address to listen on, e.g. "127.0.0.1" or "::" */
    int port;            /* 0 for any free port (see pd_http_server_port) */
    size_t max_body;     /* bytes of one request body */
    size_t max_buffered; /* body bytes of requests not yet answered, all connections together */
    int max_connections;
    int max_connections_per_client; /* from one client address */
    /*
     * Borrowed, may be NULL: peers whose X-Forwarded-For names the client
     * (include/pd/proxies.h).  A trusted proxy's connections are counted
     * for the client of their current request, checked when its headers
     * are complete, rather than for the proxy's own address.
     */
    const pd_proxies_t *trusted_proxies;
    int read_timeout_ms; /* a request must arrive whole within this of its first byte */
    int idle_timeout_ms; /* a keep-alive connection waiting for its next request */
    /* Loop thread: a request whose headers are complete; answer it once with pd_http_respond(). */
    void (*on_request)(void *ctx, pd_http_request_t *req);
    /* Loop thread, may be NULL: the server answered status itself (a limit, a bad request). */
    void (*on_refused)(void *ctx, int status);
    void *ctx;
} pd_http_config_t;

/*
 * Binds, listens and starts accepting on loop.  On success *out is a new
 * server: call pd_http_server_drain() and, once drained, destroy it.
 * Returns 0, or PD_EIO with the reason in err (e.g. address in use).
 */
int pd_http_server_create(uv_loop_t *loop, const pd_http_config_t *cfg, pd_http_server_t **out,
                          pd_error_t *err);

/* The port actually bound (useful with port 0). */
int pd_http_server_port(const pd_http_server_t *server);

/* Open connections (for metrics). */
size_t pd_http_server_connections(const pd_http_server_t *server);

/*
 * Stops accepting and closes idle connections; a connection in the middle
 * of a request finishes it (within the timeouts) and is closed after its
 * response.  drained(ctx), when not NULL, runs once no connection is left
 * and the listening socket is closed.  Call once.
 */
void pd_http_server_drain(pd_http_server_t *server, void (*drained)(void *ctx), void *ctx);

/* Releases a drained server; NULL is fine. */
void pd_http_server_destroy(pd_http_server_t *server);

/* --- the request a handler holds (borrowed; valid until pd_http_respond) --- */

const char *pd_http_method(const pd_http_request_t *req); /* "GET", "POST", ... */
const char *pd_http_path(const pd_http_request_t *req);   /* "/v1/workflows" (no query) */
const char *pd_http_query(const pd_http_request_t *req);  /* "top=5", or "" */

/* The Authorization, Content-Type header value, or NULL when absent. */
const char *pd_http_authorization(const pd_http_request_t *req);
const char *pd_http_content_type(const pd_http_request_t *req);

/* The Content-Encoding header value, or NULL when absent. */
const char *pd_http_content_encoding(const pd_http_request_t *req);

/*
 * The client's address as text, without the port ("127.0.0.1", "::1"): the
 * peer's, or behind a trusted proxy the one it forwards for.
 */
const char *pd_http_client(const pd_http_request_t *req);

/* True when the request has a body (Content-Length > 0, or chunked). */
bool pd_http_has_body(const pd_http_request_t *req);

/* Where a body goes, chunk by chunk, once the handler asks for it. */
typedef struct pd_http_body_sink {
    /*
     * Loop thread: the next bytes of the body, writable and valid during the
     * call only.  Returns 0, or an HTTP status that stops the body there
     * (e.g. 413); end() then follows with that status.
     */
    int (*data)(void *ctx, char *data, size_t len);
    /*
     * Loop thread: the body ended.  status is 0 when it arrived whole, else
     * why it stopped: the sink's own status, 413 past max_body, 503 past
     * max_buffered, 408 too slow, 400 malformed, or -1 when the client went
     * away.  The handler answers after this (the answer is dropped for -1).
     */
    void (*end)(void *ctx, int status);
    void *ctx;
} pd_http_body_sink_t;

/*
 * Starts reading the body of a request that has one; sink is copied.  For
 * a request without one (or read already) end() runs at once with 0; when
 * the client went away, with -1.
 */
void pd_http_read_body(pd_http_request_t *req, const pd_http_body_sink_t *sink);

/* A number unique to this request within the process, for logs. */
uint64_t pd_http_request_id(const pd_http_request_t *req);

/*
 * Answers the request and releases it.  extra_headers is "" or complete
 * header lines, each ending in "\r\n" (e.g. "Retry-After: 1\r\n").  The
 * body is copied.  close asks to close the connection after the answer.
 */
void pd_http_respond(pd_http_request_t *req, int status, const char *content_type,
                     const char *extra_headers, const char *body, size_t len, bool close);

/* The reason phrase of a status code ("OK", "Multi-Status", ...). */
const char *pd_http_reason(int status);

#endif
