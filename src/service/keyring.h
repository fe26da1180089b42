/*
 * Private to src/service/: the key ring, which holds the table of active
 * keys (include/pd/auth.h), reloads it, and keeps the requests that wait
 * for a reload.
 *
 * A request's key is checked on the loop thread.  A valid key goes on at
 * once; a revoked key or a wrong secret is refused at once (401, or 429
 * once its client used up its failed checks).  A key the table does not
 * hold may have been created since the last load: its request waits for
 * the next load that starts after it arrived, and is checked again then.
 * (So a client that makes keys up gets one answer a second per
 * connection.)
 *
 * The database sees at most one load per second, whatever clients send:
 * the table is reloaded every refresh_ms (--key-cache-seconds), and sooner
 * when a request waits for it, but a load never starts less than
 * PD__KEYRING_MIN_INTERVAL_MS after the one before, and never while one is
 * running.  So a key created now is usable within about a second of its
 * first use, and a revoked key is refused at most refresh_ms after its
 * revocation (plus the load's own time).  When a load fails (the database
 * is down), the requests that waited for it get 503, and the table loaded
 * before stays in use.
 *
 * The key ring also knows whether the database was ever checked (reached,
 * its schema current, the role not bypassing row-level security): until
 * then (when serve started while the database was away) each load checks
 * it first, and the service answers /readyz and /v1 requests 503.
 *
 * Loop thread only; loads run on a reader thread.
 */
#ifndef PD_SERVICE_KEYRING_H
#define PD_SERVICE_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "call.h"
#include "pd/auth.h"
#include "pd/pool.h"
#include "reader.h"

#define PD__KEYRING_MIN_INTERVAL_MS 1000

typedef struct pd__keyring {
    uv_loop_t *loop;
    pd_pool_t *readers; /* borrowed; NULL once closed: no load starts any more */
    pd_auth_t *auth;
    uv_timer_t periodic; /* every refresh_ms */
    uv_timer_t soon;     /* the next allowed start, when a load is wanted before it */
    uint64_t refresh_ms;
    pd__reader_job_t load; /* the one load job: with a reader while `loading` */
    bool loading, wanted;  /* wanted: load again once this load ends */
    bool db_checked;
    uint64_t loads_started, last_start_ms;
    pd__call_t *waiting, *waiting_tail; /* in arrival order */
    size_t n_waiting;
} pd__keyring_t;

/*
 * Sets the ring up on loop, its loads going to readers (a pool of
 * pd__reader_* callbacks), and starts the first load.  db_checked: the
 * database was checked already.  auth_cfg is copied.  Returns 0 or
 * PD_ENOMEM (nothing to close then).
 */
int pd__keyring_init(pd__keyring_t *ring, uv_loop_t *loop, pd_pool_t *readers, uint64_t refresh_ms,
                     const pd_auth_config_t *auth_cfg, bool db_checked);

/* Closes the timers; no load starts any more.  Once the readers are closed, release the rest. */
void pd__keyring_close(pd__keyring_t *ring);
void pd__keyring_release(pd__keyring_t *ring);

/*
 * Authenticates call->key: call->authorized(call) when it is valid (now or
 * after a load), else the call is answered (401, 429 or 503).
 */
void pd__keyring_authenticate(pd__keyring_t *ring, pd__call_t *call);

/* The database was reached and checked, at start or by a load since. */
bool pd__keyring_db_checked(const pd__keyring_t *ring);

#endif
