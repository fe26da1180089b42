/*
 * HTTP bodies into records: NDJSON through the line splitter, or the
 * elements of a top-level JSON array.  Only the array's structure is looked
 * at here (strings with their escapes, and nesting, to find the commas
 * between elements): each element's text then goes to the same callback as
 * an NDJSON line, so it is validated exactly as one by pd_record_parse().
 *
 * Pure: runs on whichever thread holds the body.
 */
#include <strings.h>

#include "pd/error.h"
#include "pd/source.h"

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static size_t skip_space(const char *s, size_t n, size_t i)
{
    while (i < n && is_space(s[i]))
        i++;
    return i;
}

/* The end of the array element that starts at i: the index of its ',' or ']', or n. */
static size_t element_end(const char *s, size_t n, size_t i)
{
    int depth = 0;
    bool in_string = false, escaped = false;
    for (; i < n; i++) {
        char c = s[i];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return c == ']' ? i : n; /* a stray '}' is malformed */
            depth--;
        } else if (c == ',' && depth == 0) {
            return i;
        }
    }
    return n;
}

/*
 * Walks a top-level array, passing each element's text to on_line (or only
 * counting, when on_line is NULL).
 */
static int split_array(char *s, size_t n, size_t max_record, pd_lines_cb on_line, void *ctx,
                       size_t *count)
{
    size_t i = skip_space(s, n, 0), found = 0;
    if (i == n || s[i] != '[')
        return PD_EINVAL;
    i = skip_space(s, n, i + 1);
    if (i < n && s[i] == ']') {
        i++;
    } else {
        for (;;) {
            size_t start = i;
            i = element_end(s, n, i);
            if (i == n)
                return PD_EINVAL; /* unterminated, or a stray '}' */
            size_t end = i;
            start = skip_space(s, end, start);
            while (end > start && is_space(s[end - 1]))
                end--;
            if (end == start)
                return PD_EINVAL; /* "[,]" or "[1,]" */
            found++;
            if (on_line != NULL) {
                char saved = s[end];
                s[end] = '\0'; /* the callback sees a NUL-terminated element, as a line */
                int rc = on_line(ctx, 0, s + start, end - start, end - start > max_record);
                s[end] = saved;
                if (rc != 0)
                    return rc;
            }
            if (s[i++] == ']')
                break;
        }
    }
    if (skip_space(s, n, i) != n)
        return PD_EINVAL;
    *count = found;
    return PD_OK;
}

int pd_body_count(const char *body, size_t len, bool as_array, size_t *count)
{
    if (as_array) /* only counts: the body is not written to */
        return split_array((char *)body, len, 0, NULL, NULL, count);
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += body[i] == '\n';
    *count = lines;
    return PD_OK;
}

int pd_body_split(char *body, size_t len, bool as_array, size_t max_record, pd_lines_cb on_line,
                  void *ctx)
{
    size_t count;
    if (as_array)
        return split_array(body, len, max_record, on_line, ctx, &count);
    if (len == 0)
        return PD_OK;
    pd_lines_t lines;
    int rc = pd_lines_init(&lines, max_record, on_line, ctx);
    if (rc == PD_OK)
        rc = pd_lines_push(&lines, body, len);
    if (rc == PD_OK)
        rc = pd_lines_finish(&lines);
    pd_lines_close(&lines);
    return rc;
}

bool pd_body_is_array(const char *content_type, const char *body, size_t len)
{
    if (content_type != NULL) {
        if (strncasecmp(content_type, "application/json", 16) == 0)
            return true;
        if (strncasecmp(content_type, "application/x-ndjson", 20) == 0)
            return false;
    }
    size_t i = skip_space(body, len, 0);
    return i < len && body[i] == '[';
}
