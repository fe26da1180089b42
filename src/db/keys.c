/*
 * API keys; see include/pd/keys.h.
 *
 * Threads: pure functions, and database functions that run on the thread
 * owning the pd_db_t they are given (a `patternd keys` command, or one of
 * the service's reader threads).
 */
#include "pd/keys.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pd/db.h"

#define SALT_BYTES crypto_generichash_KEYBYTES /* 32 */
#define HASH_BYTES crypto_generichash_BYTES    /* 32 */

static const char SQL_INSERT[] =
    "INSERT INTO api_keys (tenant_id, key_id, salt, hash, scopes)"
    " VALUES ($1, $2, decode($3, 'hex'), decode($4, 'hex'), string_to_array($5, ','))";
static const char SQL_LOAD_ALL[] = "SELECT tenant_id, key_id, encode(salt, 'hex'),"
                                   " encode(hash, 'hex'), revoked_at IS NOT NULL,"
                                   " array_to_string(scopes, ',') FROM api_keys";
static const char SQL_REVOKE[] = "UPDATE api_keys SET revoked_at = now()"
                                 " WHERE ($1::text IS NULL OR tenant_id = $1) AND key_id = $2"
                                 " AND revoked_at IS NULL";
static const char SQL_LIST[] =
    "SELECT tenant_id, key_id,"
    " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    " to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    " array_to_string(scopes, ',')"
    " FROM api_keys WHERE $1::text IS NULL OR tenant_id = $1"
    " ORDER BY created_at, tenant_id COLLATE \"C\", key_id";

static bool is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

static bool is_base64url(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

static const struct {
    const char *name;
    unsigned bit;
} SCOPES[] = {{"ingest", PD_SCOPE_INGEST}, {"read", PD_SCOPE_READ}, {"review", PD_SCOPE_REVIEW}};

int pd_key_scopes_parse(const char *text, unsigned *out)
{
    int rc = PD_OK;
    *out = 0;
    for (const char *p = text;;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, ",");
        size_t len = n;
        while (len > 0 && p[len - 1] == ' ')
            len--;
        bool known = false;
        for (size_t i = 0; i < sizeof(SCOPES) / sizeof(SCOPES[0]); i++) {
            if (len == strlen(SCOPES[i].name) && strncmp(p, SCOPES[i].name, len) == 0) {
                *out |= SCOPES[i].bit;
                known = true;
            }
        }
        if (!known)
            rc = PD_EINVAL;
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    if (*out & PD_SCOPE_REVIEW)
        *out |= PD_SCOPE_READ;
    return *out == 0 ? PD_EINVAL : rc;
}

void pd_key_scopes_format(unsigned scopes, char out[PD_SCOPES_TEXT_MAX])
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(SCOPES) / sizeof(SCOPES[0]); i++) {
        if (scopes & SCOPES[i].bit)
            len += (size_t)snprintf(out + len, PD_SCOPES_TEXT_MAX - len, "%s%s", len ? "," : "",
                                    SCOPES[i].name);
    }
}

bool pd_key_scopes_allow(unsigned held, unsigned needed)
{
    if (held & PD_SCOPE_REVIEW)
        held |= PD_SCOPE_READ;
    return (held & needed) == needed;
}

int pd_key_parse(const char *text, pd_key_t *out)
{
    size_t plen = sizeof(PD_KEY_PREFIX) - 1;
    if (strncmp(text, PD_KEY_PREFIX, plen) != 0)
        return PD_EINVAL;
    const char *tenant = text + plen;
    const char *sep1 = strchr(tenant, '~');
    if (sep1 == NULL || sep1 == tenant || (size_t)(sep1 - tenant) > PD_TENANT_MAX)
        return PD_EINVAL;
    const char *id = sep1 + 1;
    const char *sep2 = strchr(id, '~');
    if (sep2 == NULL || (size_t)(sep2 - id) != PD_KEY_ID_LEN || !is_hex(id, PD_KEY_ID_LEN))
        return PD_EINVAL;
    const char *secret = sep2 + 1;
    if (strlen(secret) != PD_KEY_SECRET_LEN || !is_base64url(secret, PD_KEY_SECRET_LEN))
        return PD_EINVAL;
    memset(out, 0, sizeof(*out));
    memcpy(out->tenant, tenant, (size_t)(sep1 - tenant));
    if (!pd_record_tenant_valid(out->tenant))
        return PD_EINVAL;
    memcpy(out->key_id, id, PD_KEY_ID_LEN);
    memcpy(out->secret, secret, PD_KEY_SECRET_LEN);
    return PD_OK;
}

int pd_key_from_bearer(const char *authorization, pd_key_t *out)
{
    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return PD_EINVAL;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    char buf[PD_KEY_TEXT_MAX];
    size_t n = strlen(token);
    while (n > 0 && (token[n - 1] == ' ' || token[n - 1] == '\t'))
        n--;
    if (n >= sizeof(buf))
        return PD_EINVAL;
    memcpy(buf, token, n);
    buf[n] = '\0';
    return pd_key_parse(buf, out);
}

void pd_key_generate(const char *tenant, pd_key_t *out)
{
    unsigned char id[PD_KEY_ID_LEN / 2], secret[32];
    memset(out, 0, sizeof(*out));
    snprintf(out->tenant, sizeof(out->tenant), "%s", tenant);
    randombytes_buf(id, sizeof(id));
    sodium_bin2hex(out->key_id, sizeof(out->key_id), id, sizeof(id));
    randombytes_buf(secret, sizeof(secret));
    sodium_bin2base64(out->secret, sizeof(out->secret), secret, sizeof(secret),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(secret, sizeof(secret));
}

void pd_key_format(const pd_key_t *key, char out[PD_KEY_TEXT_MAX])
{
    snprintf(out, PD_KEY_TEXT_MAX, "%s%s~%s~%s", PD_KEY_PREFIX, key->tenant, key->key_id,
             key->secret);
}

static void hash_secret(const pd_key_t *key, const unsigned char salt[SALT_BYTES],
                        unsigned char out[HASH_BYTES])
{
    crypto_generichash(out, HASH_BYTES, (const unsigned char *)key->secret, strlen(key->secret),
                       salt, SALT_BYTES);
}

int pd_keys_create(pd_db_t *db, const pd_key_t *key, unsigned scopes, pd_error_t *err)
{
    char scope_text[PD_SCOPES_TEXT_MAX];
    pd_key_scopes_format(scopes, scope_text);
    unsigned char salt[SALT_BYTES], hash[HASH_BYTES];
    char salt_hex[2 * SALT_BYTES + 1], hash_hex[2 * HASH_BYTES + 1];
    randombytes_buf(salt, sizeof(salt));
    hash_secret(key, salt, hash);
    sodium_bin2hex(salt_hex, sizeof(salt_hex), salt, sizeof(salt));
    sodium_bin2hex(hash_hex, sizeof(hash_hex), hash, sizeof(hash));
    int rc = pd_db_begin_tenant(db, key->tenant, err);
    if (rc < 0)
        return rc;
    const char *params[] = {key->tenant, key->key_id, salt_hex, hash_hex, scope_text};
    rc = pd_db_query(db, SQL_INSERT, 5, params, NULL, err);
    return pd_db_end(db, rc, err);
}

bool pd_key_matches(const pd_key_t *key, const pd_key_entry_t *entry)
{
    unsigned char hash[HASH_BYTES];
    hash_secret(key, entry->salt, hash);
    return sodium_memcmp(hash, entry->hash, HASH_BYTES) == 0;
}

/* Reads the hex text of column col of row i into out (exactly len bytes); false when it is not. */
static bool hex_column(PGresult *res, int i, int col, unsigned char *out, size_t len)
{
    const char *hex = PQgetvalue(res, i, col);
    size_t got = 0;
    return sodium_hex2bin(out, len, hex, strlen(hex), NULL, &got, NULL) == 0 && got == len;
}

int pd_keys_load_all(pd_db_t *db, pd_key_entry_t **keys, size_t *n, pd_error_t *err)
{
    PGresult *res = NULL;
    *keys = NULL;
    *n = 0;
    int rc = pd_db_begin(db, err);
    if (rc < 0)
        return rc;
    rc = pd_db_query(db, SQL_LOAD_ALL, 0, NULL, &res, err);
    if ((rc = pd_db_end(db, rc, err)) < 0)
        goto done;
    int rows = PQntuples(res);
    pd_key_entry_t *out = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*out));
    if (out == NULL) {
        rc = pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
        goto done;
    }
    size_t kept = 0;
    for (int i = 0; i < rows; i++) {
        pd_key_entry_t *e = &out[kept];
        const char *tenant = PQgetvalue(res, i, 0), *key_id = PQgetvalue(res, i, 1);
        /* A row that no key could match (a malformed one written by hand) is left out. */
        if (strlen(tenant) > PD_TENANT_MAX || strlen(key_id) != PD_KEY_ID_LEN ||
            !hex_column(res, i, 2, e->salt, SALT_BYTES) ||
            !hex_column(res, i, 3, e->hash, HASH_BYTES))
            continue;
        memcpy(e->tenant, tenant, strlen(tenant) + 1);
        memcpy(e->key_id, key_id, PD_KEY_ID_LEN + 1);
        e->revoked = strcmp(PQgetvalue(res, i, 4), "t") == 0;
        /* The table's constraint allows only known names; an empty set never passes a check. */
        pd_key_scopes_parse(PQgetvalue(res, i, 5), &e->scopes);
        kept++;
    }
    *keys = out;
    *n = kept;
done:
    pd_db_result_free(res);
    return rc;
}

void pd_keys_entries_free(pd_key_entry_t *keys, size_t n)
{
    if (keys != NULL)
        sodium_memzero(keys, n * sizeof(*keys));
    free(keys);
}

int pd_keys_revoke(pd_db_t *db, const char *tenant, const char *key_id, long *revoked,
                   pd_error_t *err)
{
    PGresult *res = NULL;
    const char *params[] = {tenant, key_id};
    int rc = tenant != NULL ? pd_db_begin_tenant(db, tenant, err) : pd_db_begin(db, err);
    if (rc < 0)
        return rc;
    rc = pd_db_query(db, SQL_REVOKE, 2, params, &res, err);
    if ((rc = pd_db_end(db, rc, err)) < 0) {
        pd_db_result_free(res);
        return rc;
    }
    *revoked = strtol(PQcmdTuples(res), NULL, 10);
    pd_db_result_free(res);
    return PD_OK;
}

int pd_keys_list(pd_db_t *db, const char *tenant, pd_key_row_t **rows, size_t *n, pd_error_t *err)
{
    PGresult *res = NULL;
    pd_key_row_t *out = NULL;
    char *strings = NULL;
    *rows = NULL;
    int rc = tenant != NULL ? pd_db_begin_tenant(db, tenant, err) : pd_db_begin(db, err);
    if (rc < 0)
        return rc;
    rc = pd_db_query(db, SQL_LIST, 1, &tenant, &res, err);
    if ((rc = pd_db_end(db, rc, err)) < 0)
        goto done;
    if ((out = pd_db_rows_alloc(res, sizeof(*out), &strings)) == NULL) {
        rc = pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
        goto done;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        out[i] = (pd_key_row_t){
            .tenant_id = pd_db_text_copy(res, i, 0, &strings),
            .key_id = pd_db_text_copy(res, i, 1, &strings),
            .created_at = pd_db_text_copy(res, i, 2, &strings),
            .revoked_at = pd_db_text_copy(res, i, 3, &strings),
            .scopes = pd_db_text_copy(res, i, 4, &strings),
        };
    }
    *rows = out;
    *n = (size_t)PQntuples(res);
done:
    pd_db_result_free(res);
    return rc;
}

void pd_keys_list_free(pd_key_row_t *rows)
{
    free(rows);
}
