/*
 * What keeps API key checks cheap and unfloodable: a short-lived cache of
 * keys a reader verified, and a limit on failed checks per client address.
 *
 * Cache: a key verified by the database is trusted for ttl_ms afterwards
 * without asking again, so a revoked key is refused at most ttl_ms after
 * its revocation (the service allows at most 5 s).  Only a keyed hash of
 * the secret is kept, compared in constant time.
 *
 * Limit: each client address has a bucket of `failures` failed checks,
 * refilled at that many per minute; with the bucket empty, keys that are
 * not in the cache are refused with 429 before any database lookup, so a
 * flood of bogus keys cannot take the readers from real tenants.
 *
 * Both tables are fixed-size (a colliding entry replaces the older one), so
 * memory does not grow with the number of keys or addresses seen.
 * Loop thread only.
 */
#ifndef PD_AUTH_H
#define PD_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "pd/keys.h"

typedef struct pd_auth pd_auth_t;

typedef struct pd_auth_config {
    uint64_t ttl_ms; /* how long a verified key is trusted; 0: never cached */
    int failures;    /* failed checks per client address per minute (and the burst) */
} pd_auth_config_t;

/* Returns 0 or PD_ENOMEM; release with pd_auth_destroy(). */
int pd_auth_create(const pd_auth_config_t *cfg, pd_auth_t **out);
void pd_auth_destroy(pd_auth_t *auth);

/* True when key was verified less than ttl_ms before now_ms. */
bool pd_auth_cached(pd_auth_t *auth, const pd_key_t *key, uint64_t now_ms);

/* A reader verified key at now_ms. */
void pd_auth_remember(pd_auth_t *auth, const pd_key_t *key, uint64_t now_ms);

/* False when peer has used up its failed checks. */
bool pd_auth_may_check(pd_auth_t *auth, const char *peer, uint64_t now_ms);

/* A check for peer failed (an unknown, revoked or forged key). */
void pd_auth_failed(pd_auth_t *auth, const char *peer, uint64_t now_ms);

#endif
