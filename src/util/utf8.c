/*
 * UTF-8 decoding, validation, truncation and JSON output of untrusted text;
 * see include/pd/utf8.h.  Record validation (record.c), detection's
 * character classes (src/detect/) and the service's error messages all
 * decode through pd_utf8_decode(), so a byte is valid or not for the same
 * reason everywhere.
 */
#include "pd/utf8.h"

#include <string.h>
#include <utf8proc.h>

size_t pd_utf8_decode_multibyte(const char *s, size_t n, int32_t *cp)
{
    utf8proc_ssize_t len = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, cp);
    if (len < 1) {
        *cp = -1;
        return 1;
    }
    return (size_t)len;
}

static bool continuation(char c)
{
    return ((unsigned char)c & 0xc0) == 0x80;
}

/*
 * Every byte that is not a continuation byte starts a character, so only a
 * continuation byte at s[max] can be inside one: the one that starts at the
 * nearest byte before it that is not a continuation, at most three back,
 * when that byte decodes to a character reaching past max.
 */
size_t pd_utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t start = max;
    while (start > 0 && max - start < 3 && continuation(s[start]))
        start--;
    if (start == max || continuation(s[start]))
        return max;
    int32_t cp;
    size_t len = pd_utf8_decode(s + start, n - start, &cp);
    return cp >= 0 && start + len > max ? start : max;
}

void pd_utf8_sanitize(pd_buf_t *buf, const char *s, size_t n)
{
    size_t run = 0; /* start of the pending run of valid characters */
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t len = pd_utf8_decode(s + i, n - i, &cp);
        if (cp >= 0) {
            i += len;
            continue;
        }
        pd_buf_put(buf, s + run, i - run);
        PD_BUF_LIT(buf, "\xef\xbf\xbd"); /* U+FFFD REPLACEMENT CHARACTER */
        run = ++i;
    }
    pd_buf_put(buf, s + run, n - run);
}
