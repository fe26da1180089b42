/*
 * The key table and the failed-check limit; see include/pd/auth.h.  Loop
 * thread.
 *
 * The table is an array sorted by (tenant, key id), searched by bisection:
 * a check costs a few string comparisons and one keyed hash, and a reload
 * replaces the array whole.
 */
#include "pd/auth.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "pd/error.h"

#define LIMIT_SLOTS 4096
#define DIGEST 16

typedef struct bucket {
    unsigned char client[DIGEST];
    double tokens;
    uint64_t at_ms;
    bool used;
} bucket_t;

struct pd_auth {
    pd_auth_config_t cfg;
    pd_key_entry_t *keys; /* sorted by compare_entries */
    size_t n_keys;
    unsigned char hash_key[crypto_generichash_KEYBYTES];
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
    if (auth == NULL)
        return;
    if (auth->keys != NULL)
        sodium_memzero(auth->keys, auth->n_keys * sizeof(*auth->keys));
    free(auth->keys);
    sodium_memzero(auth, sizeof(*auth));
    free(auth);
}

static int compare_ids(const char *tenant, const char *key_id, const pd_key_entry_t *e)
{
    int c = strcmp(tenant, e->tenant);
    return c != 0 ? c : strcmp(key_id, e->key_id);
}

static int compare_entries(const void *x, const void *y)
{
    const pd_key_entry_t *a = x;
    return compare_ids(a->tenant, a->key_id, y);
}

int pd_auth_replace(pd_auth_t *auth, const pd_key_entry_t *keys, size_t n)
{
    pd_key_entry_t *copy = malloc((n > 0 ? n : 1) * sizeof(*copy));
    if (copy == NULL)
        return PD_ENOMEM;
    if (n > 0)
        memcpy(copy, keys, n * sizeof(*copy));
    qsort(copy, n, sizeof(*copy), compare_entries);
    if (auth->keys != NULL)
        sodium_memzero(auth->keys, auth->n_keys * sizeof(*auth->keys));
    free(auth->keys);
    auth->keys = copy;
    auth->n_keys = n;
    return PD_OK;
}

size_t pd_auth_keys(const pd_auth_t *auth)
{
    return auth->n_keys;
}

pd_auth_verdict_t pd_auth_check(const pd_auth_t *auth, const pd_key_t *key, unsigned *scopes)
{
    size_t lo = 0, hi = auth->n_keys;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = compare_ids(key->tenant, key->key_id, &auth->keys[mid]);
        if (c == 0) {
            const pd_key_entry_t *e = &auth->keys[mid];
            if (e->revoked || !pd_key_matches(key, e))
                return PD_AUTH_REFUSED;
            if (scopes != NULL)
                *scopes = e->scopes;
            return PD_AUTH_VALID;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return PD_AUTH_UNKNOWN;
}

/* client's bucket, refilled to now_ms (a new, full one when client has none). */
static bucket_t *bucket_of(pd_auth_t *auth, const char *client, uint64_t now_ms)
{
    unsigned char d[DIGEST];
    crypto_generichash(d, DIGEST, (const unsigned char *)client, strlen(client), auth->hash_key,
                       sizeof(auth->hash_key));
    uint32_t slot;
    memcpy(&slot, d, sizeof(slot));
    bucket_t *b = &auth->buckets[slot % LIMIT_SLOTS];
    double full = (double)auth->cfg.failures;
    if (!b->used || memcmp(b->client, d, DIGEST) != 0) {
        *b = (bucket_t){.tokens = full, .at_ms = now_ms, .used = true};
        memcpy(b->client, d, DIGEST);
    }
    b->tokens += full * (double)(now_ms - b->at_ms) / 60000.0;
    if (b->tokens > full)
        b->tokens = full;
    b->at_ms = now_ms;
    return b;
}

bool pd_auth_failed(pd_auth_t *auth, const char *client, uint64_t now_ms)
{
    bucket_t *b = bucket_of(auth, client, now_ms);
    if (b->tokens < 1.0)
        return true;
    b->tokens -= 1.0;
    return false;
}
