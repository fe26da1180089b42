/*
 * API keys: their format, generation and salted hashes, and the api_keys
 * table.
 *
 * A key reads "pdk_<tenant>~<key id>~<secret>".  The tenant comes first so
 * that the service knows which tenant to set for row-level security before
 * it looks the key up (the lookup itself runs under that tenant); '~' is
 * outside the tenant alphabet [A-Za-z0-9._-], so the split is unambiguous.
 * The key id is 16 hex digits (64 random bits) and names the key in
 * `patternd keys list|revoke`; the secret is 32 random bytes in unpadded
 * base64url (43 characters).
 *
 * Only a salted hash of the secret is stored: BLAKE2b-256 (libsodium's
 * crypto_generichash) keyed with a random 32-byte salt per key.  A slow
 * password hash protects guessable secrets; these have 256 bits of
 * entropy, so a fast keyed hash is as strong and keeps authentication off
 * the critical path.  Hashes are compared in constant time.
 *
 * Scopes (docs/spec.md §7): what a key may do, stored with it as a text
 * array (api_keys.scopes) and held here as bits.  `review` includes
 * everything `read` allows; a key with no recorded scopes holds `ingest`
 * and `read` (the column's default).
 *
 * The functions taking a pd_db_t run on whichever thread owns that
 * connection; the others are pure.
 */
#ifndef PD_KEYS_H
#define PD_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "pd/error.h"
#include "pd/record.h"

typedef struct pd_db pd_db_t; /* include/pd/db.h */

#define PD_KEY_PREFIX "pdk_"
#define PD_KEY_ID_LEN 16
#define PD_KEY_SECRET_LEN 43
#define PD_KEY_TEXT_MAX (4 + PD_TENANT_MAX + 1 + PD_KEY_ID_LEN + 1 + PD_KEY_SECRET_LEN + 1)

typedef struct pd_key {
    char tenant[PD_TENANT_MAX + 1];
    char key_id[PD_KEY_ID_LEN + 1];
    char secret[PD_KEY_SECRET_LEN + 1];
} pd_key_t;

/* The scopes, as bits of a key's scope set. */
#define PD_SCOPE_INGEST 1u /* POST /v1/workflows */
#define PD_SCOPE_READ 2u   /* reading the tenant's patterns, series, examples and history */
#define PD_SCOPE_REVIEW 4u /* changing automation_status and the thresholds; implies read */
#define PD_SCOPES_DEFAULT (PD_SCOPE_INGEST | PD_SCOPE_READ)
#define PD_SCOPES_TEXT_MAX sizeof("ingest,read,review")

/*
 * A comma-separated list of scope names ("ingest,read"; spaces around a
 * name are allowed) into *out; review adds read.  Returns 0, or PD_EINVAL
 * for an empty list or an unknown name (*out then holds the known ones).
 */
int pd_key_scopes_parse(const char *text, unsigned *out);

/* The scope set as text, its names in the order ingest, read, review ("ingest,read"). */
void pd_key_scopes_format(unsigned scopes, char out[PD_SCOPES_TEXT_MAX]);

/* True when a key holding `held` may do what needs `needed` (one scope bit). */
bool pd_key_scopes_allow(unsigned held, unsigned needed);

/* Splits a key's text into out; PD_EINVAL when it is not a well-formed key. */
int pd_key_parse(const char *text, pd_key_t *out);

/* The key of an Authorization header value "Bearer <key>"; PD_EINVAL otherwise. */
int pd_key_from_bearer(const char *authorization, pd_key_t *out);

/* A new random key for tenant (which must be valid). */
void pd_key_generate(const char *tenant, pd_key_t *out);

/* The key's text, "pdk_<tenant>~<key id>~<secret>". */
void pd_key_format(const pd_key_t *key, char out[PD_KEY_TEXT_MAX]);

/*
 * Stores a new key with its scopes (PD_SCOPE_* bits; not 0): a random
 * salt and the hash of its secret, never the secret.
 */
int pd_keys_create(pd_db_t *db, const pd_key_t *key, unsigned scopes, pd_error_t *err);

/* A key as the service holds it: no secret, only its salt and salted hash. */
typedef struct pd_key_entry {
    char tenant[PD_TENANT_MAX + 1];
    char key_id[PD_KEY_ID_LEN + 1];
    unsigned char salt[32];
    unsigned char hash[32];
    bool revoked;
    unsigned scopes; /* PD_SCOPE_* bits */
} pd_key_entry_t;

/* True when key's secret hashes, with entry's salt, to entry's hash (compared in constant time). */
bool pd_key_matches(const pd_key_t *key, const pd_key_entry_t *entry);

/*
 * Every key of every tenant, revoked ones marked, in one statement; the
 * service's role may read them all (migrations/0006).  On success *keys is
 * a new array of *n entries, released with pd_keys_entries_free() (which
 * wipes it); on failure *keys is NULL.
 */
int pd_keys_load_all(pd_db_t *db, pd_key_entry_t **keys, size_t *n, pd_error_t *err);
void pd_keys_entries_free(pd_key_entry_t *keys, size_t n);

/*
 * Revokes the key key_id, of tenant when tenant is not NULL (required when
 * the connection's role is subject to row-level security).  *revoked gets
 * the number of keys revoked (0: no such active key).
 */
int pd_keys_revoke(pd_db_t *db, const char *tenant, const char *key_id, long *revoked,
                   pd_error_t *err);

/* One row of `patternd keys list`; times are ISO 8601 in UTC, to the second. */
typedef struct pd_key_row {
    const char *tenant_id;
    const char *key_id;
    const char *created_at;
    const char *revoked_at; /* NULL while the key is active */
    const char *scopes;     /* "ingest,read", as stored */
} pd_key_row_t;

/*
 * The keys of tenant (NULL: every key the role may see), oldest first.  On
 * success *rows is a new array of *n rows (its strings live in the same
 * allocation), released with pd_keys_list_free(); on failure *rows is NULL.
 */
int pd_keys_list(pd_db_t *db, const char *tenant, pd_key_row_t **rows, size_t *n, pd_error_t *err);
void pd_keys_list_free(pd_key_row_t *rows);

#endif
