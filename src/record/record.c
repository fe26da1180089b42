/*
 * Record parsing and validation (docs/spec.md §1): the stage between a source (a
 * line of a file, or of an HTTP body) and the batch.
 *
 * Threads: none of its own and no state between calls.  It runs where the
 * line is: on the main thread for `patternd detect`, on the loop thread for
 * `patternd ingest` and the service.  A record it accepts owns its strings
 * (see below) and is what the later stages pass on.  Strict UTF-8 lives in
 * utf8.c and timestamps in time.c.
 *
 * A line is decoded with yajl's event parser rather than by building a
 * jansson tree: the record is flat, so the events for its known fields are
 * kept in a small table of slots and everything else is skipped.  This is
 * about eight times faster than jansson on typical records (the parser is
 * most of `patternd detect`'s time), it hands us each number's text, so a
 * value beyond 64 bits is reported with its field instead of as a syntax
 * error, and yajl refuses control characters, trailing garbage and a second
 * value on the line.  yajl's own UTF-8 check lets overlong forms, surrogates
 * and code points past U+10FFFF through (PostgreSQL would then refuse the
 * whole batch), so every key and string is checked again with
 * pd_utf8_valid() (utf8.c).
 *
 * After the parse, each known field is checked for its JSON type and range
 * (the bounds in record.h keep every statistic computed from the numbers
 * within what its readers can hold); unknown fields are ignored.  Every
 * rejection names the line and the field.  Where a message quotes input (a
 * bad start_time, a key), the quote is escaped and cut on a character
 * boundary (pd_error_escape()), so that a message is always valid UTF-8 and
 * never carries control characters to a terminal.
 * The accepted record copies its strings into one heap block, so it no
 * longer depends on the line and moving it to a worker thread is a struct
 * copy.
 */
#include "pd/record.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <yajl/yajl_parse.h>

#include "pd/utf8.h"

/* The fields patternd reads; the order is that of the slot table. */
enum field {
    F_WORKFLOW_ID,
    F_ID,
    F_TENANT_ID,
    F_NL_INPUT,
    F_WORKFLOW_TEMPLATE,
    F_ERROR_MESSAGE,
    F_ERROR_COUNT,
    F_DURATION_SECONDS,
    F_RETRY_COUNT,
    F_TOTAL_TOKENS,
    F_ACTUAL_COST_TOTAL,
    F_START_TIME,
    F_UPDATED_AT,
    F_STATUS,
    F_COUNT,
    F_UNKNOWN = -1
};

static const char *const FIELD_NAMES[F_COUNT] = {
    "workflow_id",       "id",          "tenant_id",        "nl_input",    "workflow_template",
    "error_message",     "error_count", "duration_seconds", "retry_count", "total_tokens",
    "actual_cost_total", "start_time",  "updated_at",       "status",
};

/* strlen() of each FIELD_NAMES entry: keys are matched once per key of every record. */
static const size_t FIELD_LENGTHS[F_COUNT] = {11, 2, 9, 8, 17, 13, 11, 16, 11, 12, 17, 10, 10, 6};

typedef enum kind { K_ABSENT, K_NULL, K_BOOL, K_NUMBER, K_STRING, K_OBJECT, K_ARRAY } kind_t;

/* A field's value: its kind and, for strings and numbers, its text in the scratch buffer. */
typedef struct slot {
    kind_t kind;
    size_t off;
    size_t len;
} slot_t;

typedef struct parse {
    int depth;  /* 0 outside the top-level value, 1 inside the top-level object */
    kind_t top; /* kind of the top-level value */
    int field;  /* field of the current key at depth 1, or F_UNKNOWN */
    slot_t slots[F_COUNT];
    char *scratch; /* copies of string and number texts */
    size_t used, cap;
    char inline_buf[4096];
    bool nomem;
    char bad_utf8[PD_FIELD_MAX]; /* the key whose key or value is not UTF-8, when one is */
    bool has_bad_utf8;
    char key[PD_FIELD_MAX]; /* the current key at depth 1, for messages */
} parse_t;

/* Notes the first key whose key or value is not valid UTF-8; stops the parse. */
static int bad_utf8(parse_t *p, const unsigned char *key, size_t len)
{
    if (!p->has_bad_utf8) {
        p->has_bad_utf8 = true;
        /* Printed back escaped: a key may hold control characters or bytes that are not UTF-8. */
        pd_error_escape(p->bad_utf8, sizeof(p->bad_utf8), (const char *)key, len, false);
    }
    return 0;
}

static bool scratch_put(parse_t *p, const char *s, size_t n, slot_t *slot)
{
    if (p->used + n + 1 > p->cap) {
        size_t cap = p->cap * 2;
        while (cap < p->used + n + 1)
            cap *= 2;
        char *grown = p->scratch == p->inline_buf ? malloc(cap) : realloc(p->scratch, cap);
        if (grown == NULL) {
            p->nomem = true;
            return false;
        }
        if (p->scratch == p->inline_buf)
            memcpy(grown, p->inline_buf, p->used);
        p->scratch = grown;
        p->cap = cap;
    }
    memcpy(p->scratch + p->used, s, n);
    p->scratch[p->used + n] = '\0';
    slot->off = p->used;
    slot->len = n;
    p->used += n + 1;
    return true;
}

/* Records a scalar or the start of a container; false stops the parse. */
static int on_value(parse_t *p, kind_t kind, const char *text, size_t len)
{
    if (p->depth == 0) {
        p->top = kind;
        return kind == K_OBJECT; /* anything else is rejected without reading further */
    }
    if (p->depth == 1 && p->field != F_UNKNOWN) {
        slot_t *slot = &p->slots[p->field];
        slot->kind = kind;
        if (text != NULL && !scratch_put(p, text, len, slot))
            return 0;
    }
    return 1;
}

static int cb_null(void *ctx)
{
    return on_value(ctx, K_NULL, NULL, 0);
}

static int cb_boolean(void *ctx, int value)
{
    (void)value;
    return on_value(ctx, K_BOOL, NULL, 0);
}

static int cb_number(void *ctx, const char *text, size_t len)
{
    return on_value(ctx, K_NUMBER, text, len);
}

static int cb_string(void *ctx, const unsigned char *text, size_t len)
{
    parse_t *p = ctx;
    if (!pd_utf8_valid((const char *)text, len)) {
        const char *key = p->field != F_UNKNOWN ? FIELD_NAMES[p->field] : p->key;
        return bad_utf8(p, (const unsigned char *)key, strlen(key));
    }
    return on_value(p, K_STRING, (const char *)text, len);
}

static int cb_start_map(void *ctx)
{
    parse_t *p = ctx;
    int rc = on_value(p, K_OBJECT, NULL, 0);
    p->depth++;
    return rc;
}

static int cb_start_array(void *ctx)
{
    parse_t *p = ctx;
    int rc = on_value(p, K_ARRAY, NULL, 0);
    p->depth++;
    return rc;
}

static int cb_end(void *ctx)
{
    ((parse_t *)ctx)->depth--;
    return 1;
}

static int cb_map_key(void *ctx, const unsigned char *key, size_t len)
{
    parse_t *p = ctx;
    if (!pd_utf8_valid((const char *)key, len))
        return bad_utf8(p, key, len);
    if (p->depth != 1)
        return 1;
    p->field = F_UNKNOWN;
    for (int f = 0; f < F_COUNT; f++) {
        if (FIELD_LENGTHS[f] == len && key[0] == (unsigned char)FIELD_NAMES[f][0] &&
            memcmp(FIELD_NAMES[f], key, len) == 0) {
            p->field = f;
            return 1;
        }
    }
    /* Kept only for the message should this field's value turn out not to be UTF-8. */
    size_t n = pd_utf8_cut((const char *)key, len, sizeof(p->key) - 1);
    memcpy(p->key, key, n);
    p->key[n] = '\0';
    return 1;
}

static const yajl_callbacks CALLBACKS = {
    .yajl_null = cb_null,
    .yajl_boolean = cb_boolean,
    .yajl_number = cb_number,
    .yajl_string = cb_string,
    .yajl_start_map = cb_start_map,
    .yajl_map_key = cb_map_key,
    .yajl_end_map = cb_end,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = cb_end,
};

static const char *kind_name(kind_t kind)
{
    switch (kind) {
    case K_OBJECT:
        return "an object";
    case K_ARRAY:
        return "an array";
    case K_STRING:
        return "a string";
    case K_NUMBER:
        return "a number";
    case K_BOOL:
        return "a boolean";
    case K_NULL:
        return "null";
    case K_ABSENT:
        break;
    }
    return "nothing";
}

bool pd_record_tenant_valid(const char *tenant)
{
    size_t n = 0;
    for (const char *p = tenant; *p; p++, n++) {
        if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-'))
            return false;
    }
    return n >= 1 && n <= PD_TENANT_MAX;
}

/* The text of a string or number slot (NUL-terminated in the scratch buffer). */
static const char *slot_text(const parse_t *p, const slot_t *slot)
{
    return p->scratch + slot->off;
}

/* Checks an optional string field; *out is NULL when absent or null. */
static int get_text(const parse_t *p, int f, long line, pd_text_t *out, pd_error_t *err)
{
    const slot_t *slot = &p->slots[f];
    out->ptr = NULL;
    out->len = 0;
    if (slot->kind == K_ABSENT || slot->kind == K_NULL)
        return PD_OK;
    if (slot->kind != K_STRING)
        return pd_error_set(err, PD_EINVAL, line, FIELD_NAMES[f],
                            "expected a string or null, got %s", kind_name(slot->kind));
    if (memchr(slot_text(p, slot), '\0', slot->len) != NULL)
        return pd_error_set(err, PD_EINVAL, line, FIELD_NAMES[f], "contains a NUL character");
    out->ptr = slot_text(p, slot);
    out->len = slot->len;
    return PD_OK;
}

/*
 * A JSON number's value.  Plain decimals of at most 15 significant digits
 * (nearly every duration and cost) take Clinger's fast path: the digits as an
 * integer and the power of ten are both exact doubles, so one division is
 * correctly rounded, as strtod would be.  Anything else goes to strtod.
 * errno is ERANGE on overflow, as with strtod.
 */
static double number_value(const char *text)
{
    static const double pow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    const char *p = text;
    bool negative = *p == '-';
    p += negative;
    uint64_t mantissa = 0;
    int digits = 0, fraction = -1;
    for (;; p++) {
        if (*p >= '0' && *p <= '9') {
            mantissa = mantissa * 10 + (uint64_t)(*p - '0');
            digits++;
            fraction += fraction >= 0;
        } else if (*p == '.' && fraction < 0) {
            fraction = 0;
        } else {
            break;
        }
    }
    errno = 0;
    if (*p != '\0' || digits > 15)
        return strtod(text, NULL);
    double d = (double)mantissa / pow10[fraction > 0 ? fraction : 0];
    return negative ? -d : d;
}

/* True when a JSON number's text has no fraction and no exponent. */
static bool is_integer_text(const char *s)
{
    return strpbrk(s, ".eE") == NULL;
}

/*
 * Checks an optional number in [0, max] (max_text: max as the message says
 * it); absent or null counts as 0.
 */
static int get_number(const parse_t *p, int f, double max, const char *max_text, long line,
                      double *out, pd_error_t *err)
{
    const slot_t *slot = &p->slots[f];
    *out = 0;
    if (slot->kind == K_ABSENT || slot->kind == K_NULL)
        return PD_OK;
    if (slot->kind != K_NUMBER)
        return pd_error_set(err, PD_EINVAL, line, FIELD_NAMES[f],
                            "expected a number or null, got %s", kind_name(slot->kind));
    double d = number_value(slot_text(p, slot));
    if (d < 0)
        return pd_error_set(err, PD_EINVAL, line, FIELD_NAMES[f], "must not be negative, got %.40s",
                            slot_text(p, slot));
    if (!isfinite(d) || (errno == ERANGE && fabs(d) > 1.0) || d > max)
        return pd_error_set(err, PD_EINVAL, line, FIELD_NAMES[f],
                            "out of range: at most %s, got %.40s", max_text, slot_text(p, slot));
    *out = d;
    return PD_OK;
}

/*
 * Checks an optional integer in [0, max]; absent or null counts as 0.  A
 * number with a zero fraction (1234.0, as some table exports write integers)
 * is accepted; one with a fraction is not.
 */
static int get_integer(const parse_t *p, int f, int64_t max, long line, int64_t *out,
                       pd_error_t *err)
{
    const slot_t *slot = &p->slots[f];
    *out = 0;
    if (slot->kind == K_ABSENT || slot->kind == K_NULL)
        return PD_OK;
    if (slot->kind != K_NUMBER)
        return pd_error_set(err, PD_EINVAL, line, FIELD_NAMES[f],
                            "expected an integer or null, got %s", kind_name(slot->kind));
    const char *text = slot_text(p, slot);
    if (text[0] == '-' && strspn(text + 1, "0.eE+-") != strlen(text + 1))
        return pd_error_set(err, PD_EINVAL, line, FIELD_NAMES[f], "must not be negative, got %.40s",
                            text);
    if (is_integer_text(text)) {
        errno = 0;
        long long v = strtoll(text, NULL, 10);
        if (errno == ERANGE || v > max)
            return pd_error_set(err, PD_EINVAL, line, FIELD_NAMES[f],
                                "out of range: at most %lld, got %.40s", (long long)max, text);
        *out = v < 0 ? 0 : v; /* "-0" */
        return PD_OK;
    }
    double d = number_value(text);
    if (!isfinite(d) || d > (double)max)
        return pd_error_set(err, PD_EINVAL, line, FIELD_NAMES[f],
                            "out of range: at most %lld, got %.40s", (long long)max, text);
    if (d != floor(d))
        return pd_error_set(err, PD_EINVAL, line, FIELD_NAMES[f], "expected an integer, got %.40s",
                            text);
    *out = d < 0 ? 0 : (int64_t)d;
    return PD_OK;
}

/*
 * Reads an identity field (string or integer) into buf.  Returns 1 when it
 * holds a usable id, 0 when it is absent, null or "", or an error.
 */
static int get_id(const parse_t *p, int f, long line, char *buf, bool *is_int, pd_error_t *err)
{
    const slot_t *slot = &p->slots[f];
    const char *text = slot_text(p, slot);
    if (slot->kind == K_ABSENT || slot->kind == K_NULL)
        return 0;
    if (slot->kind == K_NUMBER && is_integer_text(text)) {
        errno = 0;
        long long v = strtoll(text, NULL, 10);
        if (errno == ERANGE)
            return pd_error_set(err, PD_EINVAL, line, FIELD_NAMES[f],
                                "number out of range for 64-bit storage: %.40s", text);
        snprintf(buf, PD_WORKFLOW_ID_MAX + 1, "%lld", v);
        *is_int = true;
        return 1;
    }
    if (slot->kind != K_STRING)
        return pd_error_set(err, PD_EINVAL, line, FIELD_NAMES[f],
                            "expected a string or integer, got %s",
                            slot->kind == K_NUMBER ? "a fractional number" : kind_name(slot->kind));
    if (slot->len == 0)
        return 0;
    if (slot->len > PD_WORKFLOW_ID_MAX)
        return pd_error_set(err, PD_EINVAL, line, FIELD_NAMES[f], "longer than %d bytes (%zu)",
                            PD_WORKFLOW_ID_MAX, slot->len);
    if (memchr(text, '\0', slot->len) != NULL)
        return pd_error_set(err, PD_EINVAL, line, FIELD_NAMES[f], "contains a NUL character");
    memcpy(buf, text, slot->len + 1);
    *is_int = false;
    return 1;
}

/* Copies src into the block at *cursor and points dst at the copy. */
static void place_text(pd_text_t *dst, char **cursor)
{
    if (dst->ptr == NULL)
        return;
    memcpy(*cursor, dst->ptr, dst->len);
    (*cursor)[dst->len] = '\0';
    dst->ptr = *cursor;
    *cursor += dst->len + 1;
}

/* A timestamp field (start_time, updated_at) when present: 0, or a rejection quoting it. */
static int get_timestamp(const pd_text_t *text, const char *field, long line_no, bool *has,
                         int64_t *us, pd_error_t *err)
{
    *has = false;
    if (text->ptr == NULL)
        return PD_OK;
    if (pd_timestamp_parse(text->ptr, text->len, us) < 0) {
        char quoted[PD_QUOTE_MAX];
        size_t shown = pd_error_escape(quoted, sizeof(quoted), text->ptr, text->len, true);
        return pd_error_set(err, PD_EINVAL, line_no, field, "not an ISO-8601 timestamp: \"%s\"%s",
                            quoted, shown < text->len ? "..." : "");
    }
    *has = true;
    return PD_OK;
}

static bool text_is(const pd_text_t *t, const char *word)
{
    return t->len == strlen(word) && memcmp(t->ptr, word, t->len) == 0;
}

/* Feeds a field to the digest: a tag, then its bytes with their length (absent: length -1). */
static void digest_put(crypto_generichash_state *st, char tag, const void *bytes, int64_t len)
{
    crypto_generichash_update(st, (const unsigned char *)&tag, 1);
    crypto_generichash_update(st, (const unsigned char *)&len, sizeof(len));
    if (len > 0)
        crypto_generichash_update(st, bytes, (unsigned long long)len);
}

static void digest_text(crypto_generichash_state *st, char tag, const pd_text_t *t)
{
    digest_put(st, tag, t->ptr, t->ptr != NULL ? (int64_t)t->len : -1);
}

static void digest_int(crypto_generichash_state *st, char tag, bool present, int64_t v)
{
    digest_put(st, tag, &v, present ? (int64_t)sizeof(v) : -1);
}

/*
 * The record's content as patternd reads it, hashed (BLAKE2b, 64 bits): the
 * values after parsing, so 12 and 12.0, or two spellings of one instant,
 * are the same content.  Two versions of a workflow with the same
 * updated_at and different digests are a conflict (docs/spec.md §3.4).
 */
static int64_t content_digest(const pd_record_t *r, const pd_text_t *status)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 8);
    digest_put(&st, 'w', r->workflow_id, (int64_t)strlen(r->workflow_id));
    digest_put(&st, 't', r->tenant_id, (int64_t)strlen(r->tenant_id));
    digest_text(&st, 'n', &r->nl_input);
    digest_text(&st, 'p', &r->workflow_template);
    digest_text(&st, 'e', &r->error_message);
    digest_text(&st, 's', status);
    digest_int(&st, 'c', true, r->error_count);
    digest_int(&st, 'd', true, r->duration_ms);
    digest_int(&st, 'r', true, r->retry_count);
    digest_int(&st, 'k', true, r->total_tokens);
    double cost = r->cost == 0 ? 0 : r->cost; /* -0 and 0 are one value */
    digest_put(&st, '$', &cost, sizeof(cost));
    digest_int(&st, 'b', r->has_start_time, r->start_time_us);
    digest_int(&st, 'u', r->has_version, r->version_us);
    unsigned char out[8];
    crypto_generichash_final(&st, out, sizeof(out));
    int64_t v;
    memcpy(&v, out, sizeof(v));
    return v;
}

/* Runs yajl over the line; returns 0, or a rejection with the parser's message. */
static int decode(const char *line, size_t len, long line_no, parse_t *p, pd_error_t *err)
{
    yajl_handle h = yajl_alloc(&CALLBACKS, NULL, p);
    if (h == NULL)
        return pd_error_set(err, PD_ENOMEM, line_no, "", "out of memory");
    yajl_status st = yajl_parse(h, (const unsigned char *)line, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    int rc = PD_OK;
    if (p->nomem) {
        rc = pd_error_set(err, PD_ENOMEM, line_no, "", "out of memory");
    } else if (p->has_bad_utf8) {
        rc = pd_error_set(err, PD_EINVAL, line_no, p->bad_utf8, "not valid UTF-8");
    } else if (p->top != K_OBJECT && p->top != K_ABSENT) {
        rc = pd_error_set(err, PD_EINVAL, line_no, "", "expected a JSON object, got %s",
                          kind_name(p->top));
    } else if (st != yajl_status_ok) {
        unsigned char *msg = yajl_get_error(h, 0, (const unsigned char *)line, len);
        size_t at = yajl_get_bytes_consumed(h);
        char *nl = msg ? strchr((char *)msg, '\n') : NULL;
        if (nl)
            *nl = '\0';
        rc = pd_error_set(err, PD_EINVAL, line_no, "", "invalid JSON near byte %zu: %s", at + 1,
                          msg ? (char *)msg : "parse error");
        yajl_free_error(h, msg);
    }
    yajl_free(h);
    return rc;
}

/* The record's identity: workflow_id (else id), and tenant_id (else the caller's, else "default").
 */
static int get_identity(const parse_t *p, long line_no, const char *default_tenant,
                        pd_record_t *out, pd_error_t *err)
{
    int has_id = get_id(p, F_WORKFLOW_ID, line_no, out->workflow_id, &out->workflow_id_is_int, err);
    if (has_id == 0)
        has_id = get_id(p, F_ID, line_no, out->workflow_id, &out->workflow_id_is_int, err);
    if (has_id < 0)
        return has_id;
    if (has_id == 0)
        return pd_error_set(err, PD_EINVAL, line_no, "workflow_id",
                            "no usable id: workflow_id and id are both absent, null or empty");

    const slot_t *tenant = &p->slots[F_TENANT_ID];
    if (tenant->kind == K_ABSENT || tenant->kind == K_NULL) {
        snprintf(out->tenant_id, sizeof(out->tenant_id), "%s",
                 default_tenant ? default_tenant : "default");
        return PD_OK;
    }
    if (tenant->kind != K_STRING)
        return pd_error_set(err, PD_EINVAL, line_no, "tenant_id", "expected a string, got %s",
                            kind_name(tenant->kind));
    const char *t = slot_text(p, tenant);
    if (strlen(t) != tenant->len || !pd_record_tenant_valid(t))
        return pd_error_set(err, PD_EINVAL, line_no, "tenant_id",
                            "must be 1-64 characters of A-Z a-z 0-9 . _ -");
    memcpy(out->tenant_id, t, tenant->len + 1);
    return PD_OK;
}

int pd_record_parse(const char *line, size_t len, long line_no, const char *default_tenant,
                    pd_record_t *out, pd_error_t *err)
{
    parse_t p = {.top = K_ABSENT, .field = F_UNKNOWN};
    int rc;

    p.scratch = p.inline_buf;
    p.cap = sizeof(p.inline_buf);
    memset(out, 0, sizeof(*out));
    out->line = line_no;

    if ((rc = decode(line, len, line_no, &p, err)) < 0)
        goto fail;

    if ((rc = get_identity(&p, line_no, default_tenant, out, err)) < 0)
        goto fail;

    pd_text_t start, updated, status;
    double duration;
    if ((rc = get_text(&p, F_NL_INPUT, line_no, &out->nl_input, err)) < 0 ||
        (rc = get_text(&p, F_UPDATED_AT, line_no, &updated, err)) < 0 ||
        (rc = get_text(&p, F_STATUS, line_no, &status, err)) < 0 ||
        (rc = get_text(&p, F_WORKFLOW_TEMPLATE, line_no, &out->workflow_template, err)) < 0 ||
        (rc = get_text(&p, F_ERROR_MESSAGE, line_no, &out->error_message, err)) < 0 ||
        (rc = get_text(&p, F_START_TIME, line_no, &start, err)) < 0 ||
        (rc = get_integer(&p, F_ERROR_COUNT, PD_ERROR_COUNT_MAX, line_no, &out->error_count, err)) <
            0 ||
        (rc = get_integer(&p, F_RETRY_COUNT, PD_RETRY_COUNT_MAX, line_no, &out->retry_count, err)) <
            0 ||
        (rc = get_integer(&p, F_TOTAL_TOKENS, PD_TOTAL_TOKENS_MAX, line_no, &out->total_tokens,
                          err)) < 0 ||
        (rc = get_number(&p, F_DURATION_SECONDS, INFINITY, "", line_no, &duration, err)) < 0 ||
        (rc = get_number(&p, F_ACTUAL_COST_TOTAL, PD_COST_MAX, PD_COST_MAX_TEXT, line_no,
                         &out->cost, err)) < 0)
        goto fail;

    if (duration > PD_DURATION_MAX_MS / 1000) {
        rc = pd_error_set(err, PD_EINVAL, line_no, "duration_seconds",
                          "more than one year (31536000 s), got %.40s",
                          slot_text(&p, &p.slots[F_DURATION_SECONDS]));
        goto fail;
    }
    out->duration_ms = llround(duration * 1000.0);

    if ((rc = get_timestamp(&start, "start_time", line_no, &out->has_start_time,
                            &out->start_time_us, err)) < 0 ||
        (rc = get_timestamp(&updated, "updated_at", line_no, &out->has_version, &out->version_us,
                            err)) < 0)
        goto fail;
    out->unfinished =
        status.ptr != NULL && (text_is(&status, "pending") || text_is(&status, "running"));
    out->digest = content_digest(out, &status);

    size_t total = out->nl_input.len + out->workflow_template.len + out->error_message.len + 3;
    out->strings = malloc(total);
    if (out->strings == NULL) {
        rc = pd_error_set(err, PD_ENOMEM, line_no, "", "out of memory");
        goto fail;
    }
    char *cursor = out->strings;
    place_text(&out->nl_input, &cursor);
    place_text(&out->workflow_template, &cursor);
    place_text(&out->error_message, &cursor);
    if (p.scratch != p.inline_buf)
        free(p.scratch);
    return PD_OK;

fail:
    if (p.scratch != p.inline_buf)
        free(p.scratch);
    /*
     * A rejection keeps the identity when it parsed, so that the rejection
     * can name its workflow; nothing else, and nothing on the heap.
     */
    char id[sizeof(out->workflow_id)];
    bool id_is_int = out->workflow_id_is_int;
    memcpy(id, out->workflow_id, sizeof(id));
    memset(out, 0, sizeof(*out));
    out->line = line_no;
    if (rc == PD_EINVAL) {
        memcpy(out->workflow_id, id, sizeof(id));
        out->workflow_id_is_int = id_is_int;
    }
    return rc;
}

void pd_record_close(pd_record_t *rec)
{
    free(rec->strings);
    memset(rec, 0, sizeof(*rec));
}

void pd_record_move(pd_record_t *dst, pd_record_t *src)
{
    *dst = *src;
    memset(src, 0, sizeof(*src));
}
