/*
 * API key checks that never wait on the database per request, and a limit
 * on failed checks per client.
 *
 * The key table: the service holds a copy of every key's tenant, id, salt,
 * hash, scopes and whether it is revoked (never a secret), loaded whole from
 * api_keys by a reader thread (pd_keys_load_all).  A key is checked against it on the
 * loop thread: its salted hash is computed and compared in constant time
 * (a microsecond).  So a flood of bogus keys costs the database nothing:
 * when to reload the table is the key ring's decision (include/pd/
 * keyring.h), bounded by time, not by traffic.
 *
 * The limit: each client (its address, or behind a trusted proxy the
 * address it forwards for) has a bucket of `failures` failed checks,
 * refilled at that many per minute.  A failed check of a client whose
 * bucket is empty is answered 429 instead of 401.  The limit costs only
 * the failing client: a valid key is accepted whatever its client's bucket
 * holds, so a stale key behind a shared address (a load balancer, a NAT)
 * locks out no one else.
 *
 * The bucket table is fixed-size, indexed by a keyed BLAKE2b hash
 * (libsodium) with a per-process random key, so an attacker cannot aim
 * collisions at a chosen client; a collision replaces the older bucket.
 * Memory grows with the number of active keys (an operator's table), never
 * with what clients send.  Loop thread only.
 */
#ifndef PD_AUTH_H
#define PD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pd/keys.h"

typedef struct pd_auth pd_auth_t;

typedef struct pd_auth_config {
    int failures; /* failed checks per client per minute (and the burst) */
} pd_auth_config_t;

typedef enum pd_auth_verdict {
    PD_AUTH_VALID,   /* an active key of the table, and its secret matches */
    PD_AUTH_REFUSED, /* the table has the key's tenant and id: revoked, or another secret */
    PD_AUTH_UNKNOWN, /* not in the table: made up, or created since the table was loaded */
} pd_auth_verdict_t;

/* Returns 0 or PD_ENOMEM; release with pd_auth_destroy().  The key table starts empty. */
int pd_auth_create(const pd_auth_config_t *cfg, pd_auth_t **out);
void pd_auth_destroy(pd_auth_t *auth);

/*
 * Replaces the key table with keys[0..n) (copied; any order).  Returns 0, or
 * PD_ENOMEM with the old table kept.
 */
int pd_auth_replace(pd_auth_t *auth, const pd_key_entry_t *keys, size_t n);

/* Keys in the table. */
size_t pd_auth_keys(const pd_auth_t *auth);

/* Checks key; when it is valid, *scopes (may be NULL) gets its scopes (PD_SCOPE_* bits). */
pd_auth_verdict_t pd_auth_check(const pd_auth_t *auth, const pd_key_t *key, unsigned *scopes);

/*
 * A check for client failed at now_ms.  Returns true when the client had
 * used up its failed checks: answer 429 rather than 401.
 */
bool pd_auth_failed(pd_auth_t *auth, const char *client, uint64_t now_ms);

#endif
