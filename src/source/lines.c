/*
 * NDJSON line splitting with a hard cap on the buffered line; see
 * include/pd/lines.h.  Complete lines inside a chunk are delivered straight
 * from the chunk; only a line that straddles two chunks is copied.
 */
#include "pd/lines.h"

#include <stdlib.h>
#include <string.h>

#include "pd/error.h"

int pd_lines_init(pd_lines_t *lines, size_t max, pd_lines_cb cb, void *ctx)
{
    memset(lines, 0, sizeof(*lines));
    lines->max = max;
    lines->cb = cb;
    lines->ctx = ctx;
    return PD_OK;
}

void pd_lines_close(pd_lines_t *lines)
{
    free(lines->buf);
    memset(lines, 0, sizeof(*lines));
}

static bool is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    }
    return true;
}

/* Delivers one complete line (without its "\n"); data[len] must be writable. */
static int deliver(pd_lines_t *lines, char *data, size_t len)
{
    lines->line_no++;
    if (len > 0 && data[len - 1] == '\r')
        len--;
    if (is_blank(data, len))
        return 0;
    char saved = data[len];
    data[len] = '\0';
    int rc = lines->cb(lines->ctx, lines->line_no, data, len, false);
    data[len] = saved;
    return rc;
}

static int append(pd_lines_t *lines, const char *data, size_t n)
{
    if (lines->len + n + 1 > lines->cap) {
        size_t cap = lines->cap ? lines->cap : 4096;
        while (cap < lines->len + n + 1)
            cap *= 2;
        char *buf = realloc(lines->buf, cap);
        if (buf == NULL)
            return PD_ENOMEM;
        lines->buf = buf;
        lines->cap = cap;
    }
    memcpy(lines->buf + lines->len, data, n);
    lines->len += n;
    return PD_OK;
}

/*
 * Handles the bytes of a line that did not end inside this chunk, or the head
 * of one that did (when earlier bytes are buffered).  Switches to discarding
 * once the line has grown past the limit ("\r" included, since it may yet be
 * stripped, allows one byte of slack).
 */
static int take_partial(pd_lines_t *lines, const char *data, size_t n)
{
    if (lines->discarding) {
        lines->discarded += n;
        return PD_OK;
    }
    if (lines->len + n > lines->max + 1) {
        lines->discarding = true;
        lines->discarded = lines->len + n;
        lines->len = 0;
        return PD_OK;
    }
    return append(lines, data, n);
}

static int end_oversize(pd_lines_t *lines)
{
    lines->line_no++;
    size_t n = lines->discarded;
    lines->discarding = false;
    lines->discarded = 0;
    return lines->cb(lines->ctx, lines->line_no, NULL, n, true);
}

/* Ends the buffered line: delivers it, or reports it as oversize. */
static int end_buffered(pd_lines_t *lines)
{
    if (lines->discarding)
        return end_oversize(lines);
    size_t len = lines->len;
    lines->len = 0;
    if (len > 0 && lines->buf[len - 1] == '\r')
        len--;
    if (len > lines->max) {
        lines->discarded = len;
        return end_oversize(lines);
    }
    if (lines->buf == NULL) { /* an empty line: nothing was ever buffered */
        lines->line_no++;
        return 0;
    }
    return deliver(lines, lines->buf, len);
}

int pd_lines_push(pd_lines_t *lines, char *data, size_t len)
{
    char *p = data, *end = data + len;
    int rc;

    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            return take_partial(lines, p, (size_t)(end - p));
        size_t n = (size_t)(nl - p);
        if (lines->len == 0 && !lines->discarding) {
            /* The whole line is in this chunk: check its size, deliver in place. */
            size_t body = n > 0 && p[n - 1] == '\r' ? n - 1 : n;
            if (body > lines->max) {
                lines->discarded = body;
                rc = end_oversize(lines);
            } else {
                /* deliver() NUL-terminates in place, over the "\n". */
                rc = deliver(lines, p, n);
            }
        } else {
            if ((rc = take_partial(lines, p, n)) < 0)
                return rc;
            rc = end_buffered(lines);
        }
        if (rc != 0)
            return rc;
        p = nl + 1;
    }
    return 0;
}

int pd_lines_finish(pd_lines_t *lines)
{
    if (lines->len == 0 && !lines->discarding)
        return 0;
    return end_buffered(lines);
}
