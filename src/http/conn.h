/*
 * Private to src/http/: the connections of one server (conn.c), each a state
 * machine from its first byte to its close.  server.c owns the listening
 * socket and hands each accepted connection here.
 *
 * Thread: the loop thread.
 */
#ifndef PD_HTTP_CONN_H
#define PD_HTTP_CONN_H

#include <stddef.h>
#include <uv.h>

#include "pd/http.h"

typedef struct pd__conn_set pd__conn_set_t;

/*
 * The connections of a server configured by cfg (borrowed: it must outlive
 * the set).  emptied(ctx) runs each time the last connection is gone while
 * the set drains.  Returns 0 or PD_ENOMEM; release with
 * pd__conn_set_destroy() once no connection is left.
 */
int pd__conn_set_create(uv_loop_t *loop, const pd_http_config_t *cfg, void (*emptied)(void *ctx),
                        void *ctx, pd__conn_set_t **out);
void pd__conn_set_destroy(pd__conn_set_t *set);

/*
 * Accepts the connection waiting on listener.  Past max_connections (or
 * while draining) it is answered 503 and closed, past
 * max_connections_per_client 429.
 */
void pd__conn_accept(pd__conn_set_t *set, uv_stream_t *listener);

/*
 * From now on every connection closes after its answer; those waiting for
 * a request close at once.  Call once.
 */
void pd__conn_drain(pd__conn_set_t *set);

/* Open connections, closing ones included. */
size_t pd__conn_count(const pd__conn_set_t *set);

#endif
