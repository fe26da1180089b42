/*
 * Private to src/http/: the connection and server structures shared by
 * server.c (accepting, limits, timers, writing answers, draining) and
 * request.c (parsing a request and streaming its body to the handler).
 * Loop thread only.
 */
#ifndef PD_HTTP_CONN_H
#define PD_HTTP_CONN_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pd/http.h"
#include "pd/proxies.h"

#define URL_MAX 8192
#define HEADER_VALUE_MAX 8192
#define FIELD_MAX 32
#define PEER_MAX 64 /* an IPv6 address as text, with room */

/*
 * READING   bytes are parsed as they arrive.  Before a request begins the
 *           idle timer runs; from its first byte, the read timer.
 * HANDLING  the request (its headers, and its body when it has been read)
 *           is with the handler.  Reading is stopped, so the body and any
 *           pipelined request stay in the socket (or in `pending`).
 * BODY      the handler asked for the body: it is parsed as it arrives and
 *           handed to the handler's sink, under the read timer.
 * WRITING   the answer is being written, under the same timeout.  Then
 *           back to READING (keep-alive; `pending` is parsed first) or closed.
 * LINGER    after an answer to a request not read to its end: the write
 *           side is shut down and what the client still sends is dropped,
 *           until it closes or a short timer fires, so that it reads the
 *           answer rather than a reset caused by unread data.
 * CLOSING   the handles are closing.  The memory goes when both handles are
 *           closed and the handler no longer holds the request.
 */
typedef enum conn_state {
    C_READING,
    C_HANDLING,
    C_BODY,
    C_WRITING,
    C_LINGER,
    C_CLOSING
} conn_state_t;

/* The headers a request keeps; all others are parsed and dropped. */
enum {
    H_NONE = -1,
    H_AUTHORIZATION,
    H_CONTENT_TYPE,
    H_CONTENT_ENCODING,
    H_EXPECT,
    H_FORWARDED_FOR,
    H_COUNT
};

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
    bool has_body;            /* Content-Length > 0 or chunked */
    uint64_t content_length;  /* announced; 0 when chunked or absent */
    size_t body_received;     /* bytes of body passed to the sink, counted in the budget */
    pd_http_body_sink_t sink; /* set by pd_http_read_body() */
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    pd_http_server_t *server;
    conn_t *prev, *next;
    http_parser parser;
    conn_state_t state;
    pd_http_request_t req;
    char peer[PEER_MAX];   /* the peer's address, without the port */
    char client[PEER_MAX]; /* whom the limits count it for: the peer, or (behind a trusted
                              proxy) the client its current request is forwarded for */
    bool proxied;          /* the peer is a trusted proxy */

    /* The request being parsed. */
    bool begun;        /* its first byte arrived */
    bool headers_done; /* on_headers_complete ran */
    bool complete;     /* on_message_complete ran */
    int early_status;  /* a limit or a bad header: answer this and close */
    int header;        /* which kept header the current field is, or H_NONE */
    bool in_value;     /* the last header callback was a value */
    char field[FIELD_MAX];
    size_t field_len;
    bool keep_alive;

    char *pending; /* bytes after what was parsed, not parsed yet */
    size_t pending_len;

    bool reading;
    bool held;        /* the handler holds req */
    bool peer_gone;   /* closed while the handler held req: the answer is dropped */
    bool close_after; /* close once the answer is written */
    bool linger;      /* ... after a lingering close */
    size_t lingered;  /* bytes read and dropped while lingering */
    int handles_open;
    uv_write_t write_req;
    uv_write_t continue_req;
    uv_shutdown_t shutdown_req;
    char *out; /* the answer being written */
};

#define READ_CHUNK (64 * 1024)

struct pd_http_server {
    pd_http_config_t cfg;
    uv_loop_t *loop;
    uv_tcp_t listener;
    http_parser_settings settings;
    conn_t *conns;
    size_t n_conns;
    size_t buffered; /* body bytes received by requests not yet answered */
    uint64_t next_id;
    int port;
    bool draining, listener_closed, drained_called;
    void (*drained)(void *ctx);
    char readbuf[READ_CHUNK]; /* libuv reads into it; parsed before the next read */
};

/* server.c */
void pd__http_close_conn(conn_t *c);
void pd__http_start_reading(conn_t *c);
void pd__http_stop_reading(conn_t *c);
void pd__http_start_timer(conn_t *c, int ms);
/* Connections open for c's client, c included. */
int pd__http_client_connections(const conn_t *c);
/* Answers a request the server refuses itself (a limit, a malformed request), and closes. */
void pd__http_answer_error(conn_t *c, int status);

/* request.c */
void pd__http_settings_init(http_parser_settings *settings);
/* Parses bytes that arrived (or were pending) in state READING or BODY. */
void pd__http_parse(conn_t *c, const char *data, size_t len);
/*
 * Parses on in the connection's new state (READING or BODY): first the bytes
 * kept in `pending`, then from the socket, unless parsing them moved on.
 */
void pd__http_resume(conn_t *c);
/* Forgets the request, releasing its headers and its share of the body budget. */
void pd__http_reset_request(conn_t *c);
/* The body stopped before its end (status, or -1 when the client went away). */
void pd__http_end_body(conn_t *c, int status);

#endif
