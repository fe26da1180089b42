/*
 * Stage: detect (src/detect, with the byte-exact writer of jsonw.c).
 * `patternd detect` against the reference's own output: every record of the
 * test vectors must come out byte for byte as the reference wrote it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* Compares line by line so that a failure names the first differing record. */
static void assert_same_lines(const char *got, const char *want)
{
    size_t line = 1;
    while (*got && *want) {
        const char *g_end = strchr(got, '\n'), *w_end = strchr(want, '\n');
        size_t g_len = g_end ? (size_t)(g_end - got) : strlen(got);
        size_t w_len = w_end ? (size_t)(w_end - want) : strlen(want);
        cr_assert(g_len == w_len && memcmp(got, want, g_len) == 0,
                  "line %zu differs:\n got: %.*s\nwant: %.*s", line, (int)g_len, got, (int)w_len,
                  want);
        got += g_len + (g_end != NULL);
        want += w_len + (w_end != NULL);
        line++;
    }
    cr_assert(*got == '\0' && *want == '\0', "output has %s lines than expected (at line %zu)",
              *got ? "more" : "fewer", line);
}

static void check_vector(const char *input, const char *expected, bool via_stdin)
{
    char cmd[8192];
    if (via_stdin)
        snprintf(cmd, sizeof(cmd), "'%s' detect - < '%s'", pdt_binary(), pdt_data(input));
    else
        snprintf(cmd, sizeof(cmd), "'%s' detect '%s'", pdt_binary(), pdt_data(input));
    int status;
    char *out = pdt_run(cmd, &status);
    char *want = pdt_read_file(pdt_data(expected), NULL);
    cr_assert_not_null(want);
    cr_assert_eq(status, 0, "patternd detect exited %d", status);
    assert_same_lines(out, want);
    free(out);
    free(want);
}

Test(vectors, edge_records_match_reference)
{
    check_vector("edge.ndjson", "edge.detect.ndjson", false);
}

Test(vectors, sample_600_records_match_reference)
{
    check_vector("sample-600.ndjson", "sample-600.detect.ndjson", false);
}

Test(vectors, stdin_gives_same_output_as_file)
{
    check_vector("sample-600.ndjson", "sample-600.detect.ndjson", true);
}
