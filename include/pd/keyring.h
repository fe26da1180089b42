/*
 * The service's key ring: the table of active keys (include/pd/auth.h),
 * when it is reloaded, and the requests that wait for a reload.
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
 * PD_KEYRING_MIN_INTERVAL_MS after the one before, and never while one is
 * running.  So a key created now is usable within about a second of its
 * first use, and a revoked key is refused at most refresh_ms after its
 * revocation (plus the load's own time).  When a load fails (the database
 * is down), the requests that waited for it get 503, and the table loaded
 * before stays in use.
 *
 * Loop thread only; loads run on a reader thread.
 */
#ifndef PD_KEYRING_H
#define PD_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pd/auth.h"

#define PD_KEYRING_MIN_INTERVAL_MS 1000

struct pd_service;
struct pd_call;
struct pd_read_job;

typedef struct pd_keyring {
    struct pd_service *sv;
    pd_auth_t *auth;
    uv_timer_t periodic; /* every refresh_ms */
    uv_timer_t soon;     /* the next allowed start, when a load is wanted before it */
    uint64_t refresh_ms;
    struct pd_read_job *load; /* the load job: with a reader while `loading` */
    bool loading, wanted;     /* wanted: load again once this load ends */
    uint64_t loads_started, last_start_ms;
    struct pd_call *waiting, *waiting_tail; /* in arrival order */
    size_t n_waiting;
} pd_keyring_t;

/*
 * Sets the ring up on sv's loop (sv->readers must exist) and starts the
 * first load.  auth_cfg is copied.  Returns 0 or PD_ENOMEM (nothing to
 * close then).
 */
int pd_keyring_init(pd_keyring_t *ring, struct pd_service *sv, uint64_t refresh_ms,
                    const pd_auth_config_t *auth_cfg);

/* Closes the timers; once the readers are closed, releases the rest. */
void pd_keyring_close(pd_keyring_t *ring);
void pd_keyring_release(pd_keyring_t *ring);

/*
 * Authenticates call->rj.key for call: call->authorized(call) when valid
 * (now or after a load), else the call is answered (401, 429 or 503) and
 * freed.
 */
void pd_keyring_authenticate(pd_keyring_t *ring, struct pd_call *call);

/* The readers' done callback for PD_READ_KEYS. */
void pd_keyring_on_loaded(struct pd_read_job *job);

#endif
