/*
 * UTF-8, decoded the one way patternd needs everywhere: strict (no overlong
 * forms, no surrogates, nothing past U+10FFFF, as PostgreSQL demands), with
 * an invalid byte standing alone.  The decoding itself is utf8proc's.
 *
 * Pure functions of their arguments: any thread may call them.
 */
#ifndef PD_UTF8_H
#define PD_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pd/buf.h"

/* pd_utf8_decode() for a first byte of 0x80 or more. */
size_t pd_utf8_decode_multibyte(const char *s, size_t n, int32_t *cp);

/*
 * Decodes the character at the start of s (n > 0 bytes) into *cp and
 * returns its length in bytes.  An invalid byte is taken alone: *cp is -1
 * and the length 1.  Inline because ASCII, nearly all text, needs no call.
 */
static inline size_t pd_utf8_decode(const char *s, size_t n, int32_t *cp)
{
    unsigned char c = (unsigned char)s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    return pd_utf8_decode_multibyte(s, n, cp);
}

/*
 * True when the n bytes at s are strict UTF-8 (see above).  Inline, eight
 * ASCII bytes at a time: record validation calls it for every key and
 * string of every record.
 */
static inline bool pd_utf8_valid(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint64_t word;
        if (n - i >= 8 && (memcpy(&word, s + i, 8), (word & UINT64_C(0x8080808080808080)) == 0)) {
            i += 8; /* eight ASCII bytes */
            continue;
        }
        int32_t cp;
        i += pd_utf8_decode(s + i, n - i, &cp);
        if (cp < 0)
            return false;
    }
    return true;
}

/*
 * The length of the longest prefix of s (n bytes) of at most max bytes that
 * does not end inside a character: for truncating text safely.  Bytes that
 * are not UTF-8 count as characters of one byte.
 */
size_t pd_utf8_cut(const char *s, size_t n, size_t max);

/*
 * Appends s (n bytes, any bytes) to buf with each invalid byte replaced by
 * U+FFFD: for text that did not come through record validation (error
 * messages, a peer's input) on its way into a JSON document.
 */
void pd_utf8_sanitize(pd_buf_t *buf, const char *s, size_t n);

#endif
