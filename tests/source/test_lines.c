/*
 * Stage: source (src/source/lines.c).  NDJSON line splitting: the same lines
 * whatever the chunk boundaries, CRLF, blank lines, oversize lines.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "pd/lines.h"

typedef struct seen {
    char text[16][64];
    long line_no[16];
    bool oversize[16];
    size_t len[16];
    int n;
} seen_t;

static int collect(void *ctx, long line_no, const char *data, size_t len, bool oversize)
{
    seen_t *s = ctx;
    cr_assert_lt(s->n, 16);
    s->line_no[s->n] = line_no;
    s->oversize[s->n] = oversize;
    s->len[s->n] = len;
    snprintf(s->text[s->n], sizeof(s->text[0]), "%s", oversize ? "" : data);
    s->n++;
    return 0;
}

/* Feeds text in chunks of `step` bytes. */
static void feed(const char *text, size_t max, size_t step, seen_t *s)
{
    pd_lines_t lines;
    char buf[256];
    memset(s, 0, sizeof(*s));
    pd_lines_init(&lines, max, collect, s);
    size_t len = strlen(text);
    for (size_t i = 0; i < len; i += step) {
        size_t n = len - i < step ? len - i : step;
        memcpy(buf, text + i, n);
        cr_assert_eq(pd_lines_push(&lines, buf, n), 0);
    }
    cr_assert_eq(pd_lines_finish(&lines), 0);
    pd_lines_close(&lines);
}

Test(lines, same_lines_whatever_the_chunk_size)
{
    const char *text = "{\"a\":1}\r\n\n  \n{\"b\":2}\n{\"c\":3}";
    for (size_t step = 1; step <= 40; step++) {
        seen_t s;
        feed(text, 100, step, &s);
        cr_assert_eq(s.n, 3, "step %zu", step);
        cr_assert_str_eq(s.text[0], "{\"a\":1}");
        cr_assert_eq(s.line_no[0], 1);
        cr_assert_str_eq(s.text[1], "{\"b\":2}");
        cr_assert_eq(s.line_no[1], 4);
        cr_assert_str_eq(s.text[2], "{\"c\":3}");
        cr_assert_eq(s.line_no[2], 5);
    }
}

Test(lines, oversize_line_is_reported_once_and_not_kept)
{
    const char *text = "short\n0123456789ABCDEF\nok\n";
    for (size_t step = 1; step <= 30; step++) {
        seen_t s;
        feed(text, 10, step, &s);
        cr_assert_eq(s.n, 3, "step %zu", step);
        cr_assert(!s.oversize[0]);
        cr_assert(s.oversize[1]);
        cr_assert_eq(s.line_no[1], 2);
        cr_assert_geq(s.len[1], 11);
        cr_assert_str_eq(s.text[2], "ok");
        cr_assert_eq(s.line_no[2], 3);
    }
}

Test(lines, line_of_exactly_the_maximum_is_kept)
{
    seen_t s;
    feed("0123456789\r\n0123456789", 10, 3, &s);
    cr_assert_eq(s.n, 2);
    cr_assert(!s.oversize[0] && !s.oversize[1]);
    cr_assert_str_eq(s.text[0], "0123456789");
    cr_assert_str_eq(s.text[1], "0123456789");
}
