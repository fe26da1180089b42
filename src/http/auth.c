/*
 * The verified-key cache and the per-address failure limit; see
 * include/pd/auth.h.  Loop thread.
 *
 * Both are open tables of fixed size indexed by a keyed BLAKE2b hash
 * (libsodium) with a per-process random key, so an attacker cannot aim
 * collisions at a chosen entry.  A collision replaces the older entry:
 * for the cache that costs one database lookup, for the limit it resets
 * one address's bucket, which a flood from one address refills at once.
 */
#include "pd/auth.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "pd/error.h"

#define CACHE_SLOTS 4096
#define LIMIT_SLOTS 4096
#define DIGEST 16

typedef struct cached_key {
    unsigned char id[DIGEST];     /* hash of tenant and key id */
    unsigned char secret[DIGEST]; /* hash of the secret */
    uint64_t verified_ms;
    bool used;
} cached_key_t;

typedef struct bucket {
    unsigned char peer[DIGEST];
    double tokens;
    uint64_t at_ms;
    bool used;
} bucket_t;

struct pd_auth {
    pd_auth_config_t cfg;
    unsigned char hash_key[crypto_generichash_KEYBYTES];
    cached_key_t cache[CACHE_SLOTS];
    bucket_t buckets[LIMIT_SLOTS];
};

int pd_auth_create(const pd_auth_config_t *cfg, pd_auth_t **out)
{
    pd_auth_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return PD_ENOMEM;
    a->cfg = *cfg;
    randombytes_buf(a->hash_key, sizeof(a->hash_key));
    *out = a;
    return PD_OK;
}

void pd_auth_destroy(pd_auth_t *auth)
{
    if (auth != NULL)
        sodium_memzero(auth, sizeof(*auth));
    free(auth);
}

static void digest(const pd_auth_t *a, const char *s1, const char *s2, unsigned char out[DIGEST])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, a->hash_key, sizeof(a->hash_key), DIGEST);
    crypto_generichash_update(&st, (const unsigned char *)s1, strlen(s1) + 1);
    if (s2 != NULL)
        crypto_generichash_update(&st, (const unsigned char *)s2, strlen(s2) + 1);
    crypto_generichash_final(&st, out, DIGEST);
}

static size_t slot_of(const unsigned char d[DIGEST], size_t slots)
{
    uint32_t v;
    memcpy(&v, d, sizeof(v));
    return v % slots;
}

bool pd_auth_cached(pd_auth_t *auth, const pd_key_t *key, uint64_t now_ms)
{
    if (auth->cfg.ttl_ms == 0)
        return false;
    unsigned char id[DIGEST], secret[DIGEST];
    digest(auth, key->tenant, key->key_id, id);
    const cached_key_t *e = &auth->cache[slot_of(id, CACHE_SLOTS)];
    if (!e->used || memcmp(e->id, id, DIGEST) != 0 || now_ms - e->verified_ms >= auth->cfg.ttl_ms)
        return false;
    digest(auth, key->secret, NULL, secret);
    return sodium_memcmp(e->secret, secret, DIGEST) == 0;
}

void pd_auth_remember(pd_auth_t *auth, const pd_key_t *key, uint64_t now_ms)
{
    if (auth->cfg.ttl_ms == 0)
        return;
    unsigned char id[DIGEST];
    digest(auth, key->tenant, key->key_id, id);
    cached_key_t *e = &auth->cache[slot_of(id, CACHE_SLOTS)];
    memcpy(e->id, id, DIGEST);
    digest(auth, key->secret, NULL, e->secret);
    e->verified_ms = now_ms;
    e->used = true;
}

/* peer's bucket, refilled to now_ms (a new, full one when peer has none). */
static bucket_t *bucket_of(pd_auth_t *auth, const char *peer, uint64_t now_ms)
{
    unsigned char d[DIGEST];
    digest(auth, peer, NULL, d);
    bucket_t *b = &auth->buckets[slot_of(d, LIMIT_SLOTS)];
    double full = (double)auth->cfg.failures;
    if (!b->used || memcmp(b->peer, d, DIGEST) != 0) {
        *b = (bucket_t){.tokens = full, .at_ms = now_ms, .used = true};
        memcpy(b->peer, d, DIGEST);
    }
    b->tokens += full * (double)(now_ms - b->at_ms) / 60000.0;
    if (b->tokens > full)
        b->tokens = full;
    b->at_ms = now_ms;
    return b;
}

bool pd_auth_may_check(pd_auth_t *auth, const char *peer, uint64_t now_ms)
{
    return bucket_of(auth, peer, now_ms)->tokens >= 1.0;
}

void pd_auth_failed(pd_auth_t *auth, const char *peer, uint64_t now_ms)
{
    bucket_t *b = bucket_of(auth, peer, now_ms);
    b->tokens = b->tokens >= 1.0 ? b->tokens - 1.0 : 0.0;
}
