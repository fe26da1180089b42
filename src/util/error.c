/*
 * Filling pd_error_t; see include/pd/error.h.  Any thread, nothing shared.
 *
 * Messages quote input (a bad timestamp, a key, a number's text), and they
 * end up in JSON documents (the rejects file, HTTP answers) whose encoders
 * refuse text that is not UTF-8.  So what is stored is made valid here,
 * once, rather than by every caller: a message is cut on a character
 * boundary and any stray byte becomes U+FFFD.
 */
#include "pd/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pd/utf8.h"

/*
 * Copies the n bytes at s into dst (cap bytes, NUL-terminated), whole
 * characters only, each byte that is not UTF-8 as U+FFFD.
 */
static void copy_valid(char *dst, size_t cap, const char *s, size_t n)
{
    size_t out = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t len = pd_utf8_decode(s + i, n - i, &cp);
        const char *from = s + i;
        if (cp < 0) {
            from = "\xef\xbf\xbd"; /* U+FFFD REPLACEMENT CHARACTER */
            len = 3;
            i++;
        } else {
            i += len;
        }
        if (out + len >= cap)
            break;
        memmove(dst + out, from, len);
        out += len;
    }
    dst[out] = '\0';
}

int pd_error_set(pd_error_t *err, int code, long line, const char *field, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->line = line;
    field = field ? field : "";
    copy_valid(err->field, sizeof(err->field), field, strlen(field));

    /*
     * Three bytes beyond the message's room, so that a character that
     * straddles the end is there whole and pd_utf8_cut() can see it does.
     */
    char raw[PD_MESSAGE_MAX + 3];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(raw) ? (size_t)n : sizeof(raw) - 1;
    len = pd_utf8_cut(raw, len, sizeof(err->message) - 1);
    copy_valid(err->message, sizeof(err->message), raw, len);
    return code;
}

size_t pd_error_escape(char *dst, size_t cap, const char *s, size_t n, bool quote)
{
    static const char hex[] = "0123456789abcdef";
    size_t out = 0, i = 0;
    while (i < n) {
        int32_t cp;
        size_t len = pd_utf8_decode(s + i, n - i, &cp);
        char esc[8];
        const char *text = esc;
        size_t tlen = 2;
        esc[0] = '\\';
        if (cp < 0) {
            unsigned char c = (unsigned char)s[i];
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            tlen = 4;
        } else if (cp == '\n' || cp == '\t' || cp == '\r') {
            esc[1] = cp == '\n' ? 'n' : cp == '\t' ? 't' : 'r';
        } else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[(cp >> 4) & 15];
            esc[5] = hex[cp & 15];
            tlen = 6;
        } else if (quote && (cp == '"' || cp == '\\')) {
            esc[1] = (char)cp;
        } else {
            text = s + i;
            tlen = len;
        }
        if (out + tlen >= cap)
            break;
        memcpy(dst + out, text, tlen);
        out += tlen;
        i += len;
    }
    dst[out] = '\0';
    return i;
}

const char *pd_strerror(int code)
{
    switch (code) {
    case PD_OK:
        return "success";
    case PD_EINVAL:
        return "invalid input";
    case PD_ENOMEM:
        return "out of memory";
    case PD_EIO:
        return "input/output error";
    case PD_EDB:
        return "database error";
    case PD_ECONN:
        return "database connection failed";
    case PD_ERETRY:
        return "transient database error";
    case PD_ECONFLICT:
        return "conflicting state";
    default:
        return "unknown error";
    }
}
