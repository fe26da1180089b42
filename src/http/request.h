/*
 * Private to src/http/: one request as llhttp parses it.  request.c keeps
 * what a handler may ask for (the method, the URL, a few headers), enforces
 * the limits of a request's head and body, and streams the body to the
 * handler's sink; it knows nothing of sockets or timers, so the fuzz target
 * (tests/http/fuzz_http.c) drives it with bytes alone.
 *
 * The parser lives as long as its connection and is reset between
 * requests; pd__request_parse() stops at every point where the connection
 * has something to decide (a request began, its head is complete, it is
 * complete, it is refused) and leaves the bytes after that point unparsed.
 *
 * Thread: whichever thread owns the connection (the loop thread).
 */
#ifndef PD_HTTP_REQUEST_H
#define PD_HTTP_REQUEST_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pd/http.h"

#define PD__URL_MAX 8192          /* past it: 414 */
#define PD__HEADER_VALUE_MAX 8192 /* bytes of one kept header's value; past it: 431 */
#define PD__HEAD_MAX (80 * 1024)  /* bytes of a request's head, all headers together; 431 */
#define PD__FIELD_MAX 32          /* a kept header's name fits; longer names are not ours */

/* The headers a request keeps; all others are parsed and dropped. */
typedef enum pd__header {
    PD__H_NONE = -1,
    PD__H_AUTHORIZATION,
    PD__H_CONTENT_TYPE,
    PD__H_CONTENT_ENCODING,
    PD__H_EXPECT,
    PD__H_FORWARDED_FOR,
    PD__H_COUNT
} pd__header_t;

/* What a request is parsed under: its server's limits and the body budget shared by all. */
typedef struct pd__request_limits {
    size_t max_body;     /* bytes of one body; past it: 413 */
    size_t max_buffered; /* body bytes of every request not yet answered; past it: 503 */
    size_t *buffered;    /* those bytes now: the server's counter */
} pd__request_limits_t;

/* Where pd__request_parse() stopped. */
typedef enum pd__parse {
    PD__PARSE_MORE,    /* every byte was taken; more are needed */
    PD__PARSE_BEGUN,   /* the first byte of a request (the head is not complete yet) */
    PD__PARSE_HEAD,    /* the head of a request with a body is complete; the body waits */
    PD__PARSE_DONE,    /* the request is complete, with its body if it has one */
    PD__PARSE_REFUSED, /* the request cannot be read further: answer *status */
} pd__parse_t;

struct pd_http_request {
    struct pd__conn *conn; /* the connection it arrived on (conn.c's; not read here) */
    llhttp_t parser;
    const pd__request_limits_t *limits;
    uint64_t id;
    const char *method; /* static storage; NULL until the head is complete */
    char url[PD__URL_MAX + 1];
    size_t url_len;
    const char *query; /* into url, after the '?' (which became a NUL), or NULL */
    char *headers[PD__H_COUNT];
    size_t header_len[PD__H_COUNT];
    /*
     * The header being read: its name while it arrives (cut at
     * PD__FIELD_MAX); field_len is 0 again once its value begins, and
     * `header` then says which kept header the value goes to.
     */
    char field[PD__FIELD_MAX];
    size_t field_len;
    pd__header_t header;
    size_t head_bytes;       /* of the head so far, for PD__HEAD_MAX */
    int refusal;             /* set by a callback: the status that refuses the request */
    pd__parse_t paused_at;   /* set by the callback that paused the parser */
    bool has_body;           /* Content-Length > 0, or chunked */
    uint64_t content_length; /* announced; 0 when chunked or absent */
    size_t body_received;    /* body bytes passed to the sink, counted in *limits->buffered */
    bool keep_alive;         /* known once the request is complete */
    pd_http_body_sink_t sink;
};

/* Sets up the request of a new connection; limits must outlive it. */
void pd__request_init(pd_http_request_t *req, struct pd__conn *conn,
                      const pd__request_limits_t *limits);

/*
 * Forgets the request (its headers, its share of the body budget) so that
 * the next one on the connection can be parsed.  The parser goes on where
 * it stopped.
 */
void pd__request_reset(pd_http_request_t *req);

/*
 * Parses data[0..len).  *used gets how many bytes were taken: all of them
 * for PD__PARSE_MORE; for the others, the bytes after *used belong to what
 * comes next and are to be given again once the caller has acted.  Body
 * bytes go to req->sink as they are parsed (set it before parsing past
 * PD__PARSE_HEAD).  For PD__PARSE_REFUSED, *status is why (400 malformed,
 * 413, 414, 431, 503, or the sink's own status), and nothing more can be
 * parsed on this connection.
 */
pd__parse_t pd__request_parse(pd_http_request_t *req, const char *data, size_t len, size_t *used,
                              int *status);

/* A kept header's value, or NULL when the request has none. */
const char *pd__request_header(const pd_http_request_t *req, pd__header_t h);

/* True when the client asked for "100 Continue" before it sends the body (HTTP/1.1 and later). */
bool pd__request_expects_continue(const pd_http_request_t *req);

#endif
