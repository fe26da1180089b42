/*
 * The key ring; see keyring.h.  Loop thread.
 *
 * One load job exists, reused: a load is either running (with a reader)
 * or not, and a wish for another (`wanted`) is kept until the running one
 * ends.  The waiting requests form a queue in arrival order; each records
 * how many loads had started when it arrived, so a load resolves exactly
 * the requests that arrived before it started: for those, its table is
 * newer than their key.
 */
#include "keyring.h"

#include <stdlib.h>

#include "pd/log.h"

static void start_load(pd__keyring_t *ring);
static void on_loaded(pd__reader_job_t *job);

static void on_soon(uv_timer_t *t)
{
    start_load(t->data);
}

/* Starts a load now if allowed, else as soon as allowed. */
static void want_load(pd__keyring_t *ring)
{
    if (ring->loading) {
        ring->wanted = true;
        return;
    }
    uint64_t now = uv_now(ring->loop);
    uint64_t next = ring->last_start_ms + PD__KEYRING_MIN_INTERVAL_MS;
    if (ring->loads_started == 0 || now >= next)
        start_load(ring);
    else if (!uv_is_active((uv_handle_t *)&ring->soon))
        uv_timer_start(&ring->soon, on_soon, next - now, 0);
}

static void on_periodic(uv_timer_t *t)
{
    want_load(t->data);
}

static void start_load(pd__keyring_t *ring)
{
    if (ring->loading || ring->readers == NULL)
        return;
    uv_timer_stop(&ring->soon);
    ring->load = (pd__reader_job_t){
        .kind = PD__READER_KEYS, .check_db = !ring->db_checked, .done = on_loaded, .owner = ring};
    ring->loading = true;
    ring->wanted = false;
    ring->loads_started++;
    ring->last_start_ms = uv_now(ring->loop);
    /* Ahead of the queued reads: requests may be waiting for it. */
    pd_pool_submit_first(ring->readers, &ring->load.job);
}

int pd__keyring_init(pd__keyring_t *ring, uv_loop_t *loop, pd_pool_t *readers, uint64_t refresh_ms,
                     const pd_auth_config_t *auth_cfg, bool db_checked)
{
    *ring = (pd__keyring_t){
        .loop = loop, .readers = readers, .refresh_ms = refresh_ms, .db_checked = db_checked};
    if (pd_auth_create(auth_cfg, &ring->auth) < 0)
        return PD_ENOMEM;
    uv_timer_init(loop, &ring->periodic);
    uv_timer_init(loop, &ring->soon);
    ring->periodic.data = ring->soon.data = ring;
    uv_timer_start(&ring->periodic, on_periodic, refresh_ms, refresh_ms);
    start_load(ring);
    return PD_OK;
}

void pd__keyring_close(pd__keyring_t *ring)
{
    ring->readers = NULL; /* nothing starts any more */
    uv_close((uv_handle_t *)&ring->periodic, NULL);
    uv_close((uv_handle_t *)&ring->soon, NULL);
}

void pd__keyring_release(pd__keyring_t *ring)
{
    pd_keys_entries_free(ring->load.keys, ring->load.n_keys);
    pd_auth_destroy(ring->auth);
    *ring = (pd__keyring_t){0};
}

bool pd__keyring_db_checked(const pd__keyring_t *ring)
{
    return ring->db_checked;
}

/* Answers a key that is not valid: 401, or 429 once its client used up its failed checks. */
static void refuse(pd__keyring_t *ring, pd__call_t *call)
{
    uint64_t now = uv_now(ring->loop);
    if (pd_auth_failed(ring->auth, pd_http_client(call->req), now))
        pd__call_fail(call, 429, "too many failed API key checks from this client; retry later");
    else
        pd__call_fail(call, 401, "unknown or revoked API key");
}

void pd__keyring_authenticate(pd__keyring_t *ring, pd__call_t *call)
{
    switch (pd_auth_check(ring->auth, &call->key, &call->scopes)) {
    case PD_AUTH_VALID:
        call->key_valid = true;
        call->authorized(call);
        return;
    case PD_AUTH_REFUSED:
        refuse(ring, call);
        return;
    case PD_AUTH_UNKNOWN:
        break;
    }
    if (ring->readers == NULL) { /* stopping: no load will come */
        pd__call_fail(call, 503, "shutting down");
        return;
    }
    call->wait_after = ring->loads_started;
    call->next_waiting = NULL;
    if (ring->waiting_tail != NULL)
        ring->waiting_tail->next_waiting = call;
    else
        ring->waiting = call;
    ring->waiting_tail = call;
    ring->n_waiting++;
    want_load(ring);
}

/* Settles the waiting requests that arrived before load number `load` started. */
static void settle_waiting(pd__keyring_t *ring, uint64_t load, bool loaded)
{
    while (ring->waiting != NULL && ring->waiting->wait_after < load) {
        pd__call_t *call = ring->waiting;
        ring->waiting = call->next_waiting;
        if (ring->waiting == NULL)
            ring->waiting_tail = NULL;
        ring->n_waiting--;
        if (!loaded)
            pd__call_fail(call, 503, "the database is unavailable; retry later");
        else if (pd_auth_check(ring->auth, &call->key, &call->scopes) == PD_AUTH_VALID) {
            call->key_valid = true;
            call->authorized(call);
        } else
            refuse(ring, call);
    }
}

/* The readers' done callback of the load job. */
static void on_loaded(pd__reader_job_t *job)
{
    pd__keyring_t *ring = job->owner;
    ring->loading = false;
    bool loaded = job->rc == PD_OK;
    if (loaded && job->check_db && !ring->db_checked) {
        pd_log(PD_LOG_INFO, "keys", "the database is reachable and checked: serving");
        ring->db_checked = true;
    }
    if (loaded && pd_auth_replace(ring->auth, job->keys, job->n_keys) < 0) {
        pd_log(PD_LOG_ERROR, "keys", "out of memory: keeping the key table loaded before");
        loaded = false;
    } else if (loaded) {
        pd_log(PD_LOG_DEBUG, "keys", "loaded %zu keys", job->n_keys);
    }
    pd_keys_entries_free(job->keys, job->n_keys);
    job->keys = NULL;
    job->n_keys = 0;
    settle_waiting(ring, ring->loads_started, loaded);
    if (ring->readers != NULL && (ring->wanted || ring->waiting != NULL))
        want_load(ring);
}
