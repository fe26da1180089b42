/*
 * The HTTP/1.1 server; see include/pd/http.h.  This file holds the
 * listening socket and the server's life: listening, then draining (the
 * listener closes while the connections finish their requests), then
 * drained.  Each accepted connection goes to conn.c, which runs it.
 *
 * Thread: the loop thread.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"

typedef enum server_state {
    S_LISTENING,
    S_CLOSING_LISTENER, /* drain asked: the listener is closing */
    S_FINISHING,        /* the listener is closed; connections finish their requests */
    S_DRAINED,          /* no connection is left and drained() ran (or listening failed) */
} server_state_t;

struct pd_http_server {
    pd_http_config_t cfg;
    uv_loop_t *loop;
    uv_tcp_t listener;
    pd__conn_set_t *conns;
    int port;
    server_state_t state;
    void (*drained)(void *ctx);
    void *drained_ctx;
};

/* Drained once the listener is closed and the last connection gone. */
static void maybe_drained(void *ctx)
{
    pd_http_server_t *s = ctx;
    if (s->state != S_FINISHING || pd__conn_count(s->conns) > 0)
        return;
    s->state = S_DRAINED;
    if (s->drained != NULL)
        s->drained(s->drained_ctx);
}

static void on_connection(uv_stream_t *listener, int status)
{
    pd_http_server_t *s = listener->data;
    if (status == 0)
        pd__conn_accept(s->conns, listener);
}

/* Close callback of a listener whose server never served: the server goes with it. */
static void free_server(uv_handle_t *h)
{
    free(h->data);
}

int pd_http_server_create(uv_loop_t *loop, const pd_http_config_t *cfg, pd_http_server_t **out,
                          pd_error_t *err)
{
    pd_http_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    s->cfg = *cfg;
    s->loop = loop;

    struct sockaddr_storage addr;
    int rc = strchr(cfg->host, ':') != NULL
                 ? uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&addr)
                 : uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&addr);
    if (rc != 0) {
        free(s);
        return pd_error_set(err, PD_EINVAL, 0, "", "bad listen address '%s'", cfg->host);
    }
    if (pd__conn_set_create(loop, &s->cfg, maybe_drained, s, &s->conns) < 0) {
        free(s);
        return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    }
    s->listener.data = s;
    if ((rc = uv_tcp_init(loop, &s->listener)) != 0) {
        pd__conn_set_destroy(s->conns);
        free(s);
        return pd_error_set(err, PD_EIO, 0, "", "cannot listen: %s", uv_strerror(rc));
    }
    if ((rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection)) != 0) {
        pd_error_set(err, PD_EIO, 0, "", "cannot listen on %s:%d: %s", cfg->host, cfg->port,
                     uv_strerror(rc));
        /* The server is freed with the handle, once the loop has closed it. */
        pd__conn_set_destroy(s->conns);
        s->state = S_DRAINED;
        uv_close((uv_handle_t *)&s->listener, free_server);
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
    return pd__conn_count(server->conns);
}

static void on_listener_closed(uv_handle_t *h)
{
    pd_http_server_t *s = h->data;
    s->state = S_FINISHING;
    maybe_drained(s);
}

void pd_http_server_drain(pd_http_server_t *s, void (*drained)(void *ctx), void *ctx)
{
    if (s->state != S_LISTENING)
        return;
    s->state = S_CLOSING_LISTENER;
    s->drained = drained;
    s->drained_ctx = ctx;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    pd__conn_drain(s->conns);
}

void pd_http_server_destroy(pd_http_server_t *server)
{
    if (server == NULL)
        return;
    pd__conn_set_destroy(server->conns);
    free(server);
}
