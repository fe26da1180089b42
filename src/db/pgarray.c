/*
 * Array parameters; see include/pd/pgarray.h.
 *
 * The binary format, as array_recv reads it (all integers big-endian):
 * int32 number of dimensions (1), int32 flags (1 when any element is NULL),
 * uint32 element type OID, then per dimension int32 length and int32 lower
 * bound (1), then per element int32 byte length (-1 for NULL) and the
 * element's own binary form: the bytes of a text, a big-endian int64 or
 * int32, one byte 0 or 1 for a boolean.  The flags and the length are written when the array ends.
 *
 * Threads: an array belongs to the thread that builds it.
 */
#include "pd/pgarray.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FLAGS_AT = 4, LENGTH_AT = 12 }; /* byte offsets in the header */

static void put_be32(pd_buf_t *buf, uint32_t v)
{
    char b[4] = {(char)(v >> 24), (char)(v >> 16), (char)(v >> 8), (char)v};
    pd_buf_put(buf, b, sizeof(b));
}

static void set_be32(pd_buf_t *buf, size_t at, uint32_t v)
{
    if (buf->failed || buf->len < at + 4)
        return;
    char b[4] = {(char)(v >> 24), (char)(v >> 16), (char)(v >> 8), (char)v};
    memcpy(buf->data + at, b, sizeof(b));
}

void pd_pgarray_begin(pd_pgarray_t *a, pd_pgarray_kind_t kind)
{
    pd_buf_reset(&a->buf);
    a->kind = kind;
    a->n = 0;
    a->has_null = false;
    if (kind == PD_PGARRAY_LITERAL) {
        PD_BUF_LIT(&a->buf, "{");
        return;
    }
    put_be32(&a->buf, 1);              /* dimensions */
    put_be32(&a->buf, 0);              /* flags, set by pd_pgarray_end() */
    put_be32(&a->buf, (uint32_t)kind); /* element type */
    put_be32(&a->buf, 0);              /* length, set by pd_pgarray_end() */
    put_be32(&a->buf, 1);              /* lower bound */
}

/* A LITERAL array's separator before every element but the first. */
static void separate(pd_pgarray_t *a)
{
    if (a->n > 0)
        PD_BUF_LIT(&a->buf, ",");
}

void pd_pgarray_text(pd_pgarray_t *a, const char *s, size_t len)
{
    if (a->kind == PD_PGARRAY_TEXT) {
        put_be32(&a->buf, (uint32_t)len);
        pd_buf_put(&a->buf, s, len);
    } else {
        separate(a);
        PD_BUF_LIT(&a->buf, "\"");
        size_t run = 0;
        for (size_t i = 0; i < len; i++) {
            if (s[i] == '"' || s[i] == '\\') {
                pd_buf_put(&a->buf, s + run, i - run);
                PD_BUF_LIT(&a->buf, "\\");
                run = i;
            }
        }
        pd_buf_put(&a->buf, s + run, len - run);
        PD_BUF_LIT(&a->buf, "\"");
    }
    a->n++;
}

void pd_pgarray_int(pd_pgarray_t *a, int64_t v)
{
    uint64_t u = (uint64_t)v;
    if (a->kind == PD_PGARRAY_INT8) {
        put_be32(&a->buf, 8);
        put_be32(&a->buf, (uint32_t)(u >> 32));
        put_be32(&a->buf, (uint32_t)u);
    } else if (a->kind == PD_PGARRAY_INT4) {
        put_be32(&a->buf, 4);
        put_be32(&a->buf, (uint32_t)u);
    } else {
        separate(a);
        pd_buf_int(&a->buf, v);
    }
    a->n++;
}

void pd_pgarray_bool(pd_pgarray_t *a, bool v)
{
    if (a->kind == PD_PGARRAY_BOOL) {
        put_be32(&a->buf, 1);
        pd_buf_put(&a->buf, v ? "\1" : "\0", 1);
    } else {
        separate(a);
        pd_buf_put(&a->buf, v ? "t" : "f", 1);
    }
    a->n++;
}

void pd_shortest_decimal(double d, char *buf)
{
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(buf, PD_SHORTEST_MAX, "%.*g", precision, d);
        if (strtod(buf, NULL) == d)
            break;
    }
}

void pd_pgarray_double(pd_pgarray_t *a, double d)
{
    char tmp[PD_SHORTEST_MAX];
    pd_shortest_decimal(d, tmp);
    separate(a);
    pd_buf_puts(&a->buf, tmp);
    a->n++;
}

void pd_pgarray_null(pd_pgarray_t *a)
{
    if (a->kind == PD_PGARRAY_LITERAL) {
        separate(a);
        PD_BUF_LIT(&a->buf, "NULL");
    } else {
        put_be32(&a->buf, UINT32_MAX); /* -1 */
        a->has_null = true;
    }
    a->n++;
}

int pd_pgarray_end(pd_pgarray_t *a)
{
    if (a->kind == PD_PGARRAY_LITERAL) {
        pd_buf_put(&a->buf, "}", 2); /* with the NUL libpq reads text parameters to */
    } else {
        set_be32(&a->buf, FLAGS_AT, a->has_null ? 1 : 0);
        set_be32(&a->buf, LENGTH_AT, a->n);
    }
    return a->buf.failed ? PD_ENOMEM : PD_OK;
}

const char *pd_pgarray_value(const pd_pgarray_t *a)
{
    return a->buf.data;
}

int pd_pgarray_length(const pd_pgarray_t *a)
{
    return (int)a->buf.len;
}

int pd_pgarray_format(const pd_pgarray_t *a)
{
    return a->kind == PD_PGARRAY_LITERAL ? 0 : 1;
}

void pd_pgarray_close(pd_pgarray_t *a)
{
    pd_buf_close(&a->buf);
}
