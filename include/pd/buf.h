/*
 * A growable byte buffer, for the output patternd writes by hand: detect's
 * JSON lines, the batch's characteristics, HTTP bodies, the metrics page.
 *
 * A buffer remembers a failed allocation instead of reporting it at every
 * write: once `failed` is set, later writes are dropped, and the caller
 * checks the flag once when the text is complete.
 */
#ifndef PD_BUF_H
#define PD_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pd/error.h"

/* Zero-initialise (or pd_buf_reset() a used one); release with pd_buf_close(). */
typedef struct pd_buf {
    char *data; /* owned by the buffer; not NUL-terminated */
    size_t len;
    size_t cap;
    int failed; /* set when an allocation failed; later writes are dropped */
} pd_buf_t;

/* Frees the buffer's memory and zeroes it. */
void pd_buf_close(pd_buf_t *buf);

/* Empties the buffer, keeping its memory (and its failed flag). */
void pd_buf_reset(pd_buf_t *buf);

/*
 * Makes room for n more bytes (growing the buffer's memory when needed).
 * Returns 0, or PD_ENOMEM with buf->failed set.
 */
int pd_buf_reserve(pd_buf_t *buf, size_t n);

/*
 * Appends n bytes.  Inline because the writers call it for every few bytes
 * they write, mostly with sizes known at compile time: the copy then
 * compiles to a few moves (measured: out of line, `patternd detect` ran
 * some 3% more instructions).
 */
static inline void pd_buf_put(pd_buf_t *buf, const char *s, size_t n)
{
    if (buf->len + n > buf->cap && pd_buf_reserve(buf, n) != 0)
        return;
    memcpy(buf->data + buf->len, s, n);
    buf->len += n;
}

void pd_buf_puts(pd_buf_t *buf, const char *s);
/* Appends a string literal without measuring it at run time. */
#define PD_BUF_LIT(buf, lit) pd_buf_put((buf), "" lit, sizeof(lit) - 1)
void pd_buf_int(pd_buf_t *buf, int64_t v);

/*
 * Appends s (n bytes of valid UTF-8) as a JSON string literal: quotes,
 * '"' and '\\' and control characters escaped, everything else as is (as
 * Python's json.dumps(ensure_ascii=False) writes it).  For text that may not
 * be valid UTF-8, see pd_utf8_sanitize() in pd/utf8.h.
 */
void pd_buf_json_string(pd_buf_t *buf, const char *s, size_t n);

/* Appends s (n bytes) escaped as in pd_buf_json_string(), without the quotes. */
void pd_buf_json_escape(pd_buf_t *buf, const char *s, size_t n);

#endif
