/*
 * The growable byte buffer; see include/pd/buf.h.  util/ holds what every
 * stage uses and no stage owns: this buffer, error details (error.c), log
 * lines (log.c) and the commit-latency histogram (latency.c).  A buffer
 * belongs to one thread at a time; nothing here is shared.
 */
#include "pd/buf.h"

#include <stdlib.h>
#include <string.h>

void pd_buf_close(pd_buf_t *buf)
{
    free(buf->data);
    memset(buf, 0, sizeof(*buf));
}

void pd_buf_reset(pd_buf_t *buf)
{
    buf->len = 0;
}

int pd_buf_reserve(pd_buf_t *buf, size_t n)
{
    if (buf->len + n <= buf->cap)
        return 0;
    if (buf->failed)
        return PD_ENOMEM;
    size_t cap = buf->cap ? buf->cap : 512;
    while (cap < buf->len + n)
        cap *= 2;
    char *grown = realloc(buf->data, cap);
    if (grown == NULL) {
        buf->failed = 1;
        return PD_ENOMEM;
    }
    buf->data = grown;
    buf->cap = cap;
    return 0;
}

void pd_buf_puts(pd_buf_t *buf, const char *s)
{
    pd_buf_put(buf, s, strlen(s));
}

void pd_buf_int(pd_buf_t *buf, int64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    pd_buf_put(buf, p, (size_t)(tmp + sizeof(tmp) - p));
}

void pd_buf_json_escape(pd_buf_t *buf, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0; /* start of the pending run of bytes that need no escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        pd_buf_put(buf, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0};
        size_t len = 2;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            len = 6;
        }
        pd_buf_put(buf, esc, len);
    }
    pd_buf_put(buf, s + run, n - run);
}

void pd_buf_json_string(pd_buf_t *buf, const char *s, size_t n)
{
    /* Most strings need no escape: one reservation covers them. */
    if (pd_buf_reserve(buf, n + 2) != 0)
        return;
    buf->data[buf->len++] = '"';
    pd_buf_json_escape(buf, s, n);
    pd_buf_put(buf, "\"", 1);
}
