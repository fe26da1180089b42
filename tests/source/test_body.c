/*
 * Stage: source (src/source/body.c).  HTTP bodies into records: the
 * elements of a JSON array (or a lone JSON object) handed on as the same
 * texts whatever the chunk boundaries, oversize elements, strings that are
 * not UTF-8 passed through to the record parser, malformed bodies refused,
 * and the NDJSON route unchanged.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/error.h"
#include "pd/record.h"
#include "pd/source.h"

#define MAX_SEEN 32
#define JSON "application/json"

typedef struct seen {
    char *text[MAX_SEEN]; /* NULL for an oversize element */
    size_t len[MAX_SEEN];
    long line_no[MAX_SEEN];
    bool oversize[MAX_SEEN];
    int n;
    int stop_at; /* on_line returns 7 on this call (1-based); 0: never */
} seen_t;

static int collect(void *ctx, long line_no, const char *data, size_t len, bool oversize)
{
    seen_t *s = ctx;
    cr_assert_lt(s->n, MAX_SEEN);
    s->line_no[s->n] = line_no;
    s->oversize[s->n] = oversize;
    s->len[s->n] = len;
    if (oversize) {
        cr_assert_null(data);
    } else {
        cr_assert_eq(data[len], '\0', "the text is NUL-terminated");
        s->text[s->n] = malloc(len + 1);
        memcpy(s->text[s->n], data, len + 1);
    }
    s->n++;
    return s->n == s->stop_at ? 7 : 0;
}

static void seen_free(seen_t *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->text[i]);
    memset(s, 0, sizeof(*s));
}

/*
 * Parses len bytes of body in chunks of step bytes, each in a buffer of its
 * own size (so that reading past a chunk is caught under ASan); returns the
 * first non-zero return of push or finish, else 0.
 */
static int feed_n(const char *content_type, const char *body, size_t len, size_t max, size_t step,
                  seen_t *s)
{
    pd_body_parser_t p;
    int stop_at = s->stop_at;
    memset(s, 0, sizeof(*s));
    s->stop_at = stop_at;
    cr_assert_eq(pd_body_parser_init(&p, content_type, max, collect, s), 0);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < len; i += step) {
        size_t n = len - i < step ? len - i : step;
        char *chunk = malloc(n);
        memcpy(chunk, body + i, n);
        rc = pd_body_parser_push(&p, chunk, n);
        free(chunk);
    }
    if (rc == 0)
        rc = pd_body_parser_finish(&p);
    pd_body_parser_close(&p);
    return rc;
}

static int feed(const char *content_type, const char *body, size_t max, size_t step, seen_t *s)
{
    return feed_n(content_type, body, strlen(body), max, step, s);
}

/* Asserts that body gives exactly the texts in want (n of them), in every chunking. */
static void assert_elements(const char *content_type, const char *body, const char *const *want,
                            int n)
{
    size_t len = strlen(body);
    for (size_t step = 1; step <= len; step++) {
        seen_t s = {0};
        cr_assert_eq(feed(content_type, body, 1 << 20, step, &s), 0, "step %zu", step);
        cr_assert_eq(s.n, n, "step %zu: %d elements", step, s.n);
        for (int i = 0; i < n; i++) {
            cr_assert_str_eq(s.text[i], want[i], "step %zu, element %d", step, i);
            cr_assert_eq(s.len[i], strlen(want[i]));
            cr_assert_eq(s.line_no[i], 0);
            cr_assert(!s.oversize[i]);
        }
        seen_free(&s);
    }
}

/* The one element of "[" record "]" (one piece), which the caller frees. */
static char *element_of(const char *record, size_t len)
{
    char *body = malloc(len + 2);
    body[0] = '[';
    memcpy(body + 1, record, len);
    body[len + 1] = ']';
    seen_t s = {0};
    cr_assert_eq(feed_n(JSON, body, len + 2, 1 << 20, len + 2, &s), 0);
    cr_assert_eq(s.n, 1);
    char *text = s.text[0];
    s.text[0] = NULL;
    seen_free(&s);
    free(body);
    return text;
}

/*
 * Asserts that the record parser treats record (an NDJSON line) and its
 * text as an array element alike: both accepted with the same values, or
 * both rejected for the same field and reason.  Returns the rejection.
 */
static pd_error_t assert_same_outcome(const char *record, size_t len)
{
    char *text = element_of(record, len);
    pd_record_t a, b;
    pd_error_t ea = {0}, eb = {0};
    int ra = pd_record_parse(record, len, 1, NULL, &a, &ea);
    int rb = pd_record_parse(text, strlen(text), 1, NULL, &b, &eb);
    cr_assert_eq(ra, rb, "line: %s; element: %s", ea.message, eb.message);
    cr_assert_str_eq(ea.field, eb.field);
    cr_assert_str_eq(ea.message, eb.message);
    if (ra == 0) {
        cr_assert_str_eq(a.workflow_id, b.workflow_id);
        cr_assert_eq(a.workflow_id_is_int, b.workflow_id_is_int);
        cr_assert_str_eq(a.tenant_id, b.tenant_id);
        cr_assert_eq(a.nl_input.len, b.nl_input.len);
        if (a.nl_input.ptr != NULL)
            cr_assert_eq(memcmp(a.nl_input.ptr, b.nl_input.ptr, a.nl_input.len), 0);
        cr_assert_eq(a.duration_ms, b.duration_ms);
        cr_assert_eq(a.total_tokens, b.total_tokens);
        cr_assert_eq(a.cost, b.cost);
        pd_record_close(&a);
        pd_record_close(&b);
    }
    free(text);
    return ea;
}

/* --- arrays --------------------------------------------------------------------- */

Test(body, same_elements_whatever_the_chunk_size)
{
    const char *body = " \n[\n  {\"workflow_id\": \"a\", \"nested\": {\"x\": [1, {\"y\": \"]}\"}], "
                       "\"z\": {}}},\n"
                       "  {\"workflow_id\" : \"b,c\", \"s\": \"q\\\"[{,\\\\\\\\\"} ,\n"
                       "  [], {}, \"[not, an, object]\", [[1], [2, [3]]]\n] \r\n";
    const char *want[] = {
        "{\"workflow_id\":\"a\",\"nested\":{\"x\":[1,{\"y\":\"]}\"}],\"z\":{}}}",
        "{\"workflow_id\":\"b,c\",\"s\":\"q\\\"[{,\\\\\\\\\"}",
        "[]",
        "{}",
        "\"[not, an, object]\"",
        "[[1],[2,[3]]]",
    };
    assert_elements(JSON, body, want, 6);
    assert_elements(NULL, body, want, 6); /* by its first non-space byte */
    assert_elements("Application/JSON; charset=utf-8", body, want, 6);
}

Test(body, compact_elements_are_handed_on_as_written)
{
    const char *body =
        "[{\"workflow_id\":\"w1\",\"nl_input\":\"run\"},{\"id\":42,\"x\":[true,false,"
        "null]}]";
    const char *want[] = {"{\"workflow_id\":\"w1\",\"nl_input\":\"run\"}",
                          "{\"id\":42,\"x\":[true,false,null]}"};
    assert_elements(NULL, body, want, 2);
}

Test(body, numbers_are_kept_as_written)
{
    const char *body = "[{\"a\":1.50,\"b\":-0,\"c\":1E+400,\"d\":123456789012345678901234567890,"
                       "\"e\":0.000,\"f\":[2e-3,10]}, 7.0]";
    const char *want[] = {"{\"a\":1.50,\"b\":-0,\"c\":1E+400,\"d\":123456789012345678901234567890,"
                          "\"e\":0.000,\"f\":[2e-3,10]}",
                          "7.0"};
    assert_elements(JSON, body, want, 2);
}

Test(body, strings_are_escaped_again)
{
    /* Escapes decode and are written anew: \/ and \u0041 need none, control characters do. */
    const char *body = "[{\"s\":\"tab\\there \\u00e9\\/\\u0041 \\\"q\\\" \\\\\",\"k\\n\":\"\\u001f"
                       "\\b\\f\\r\"}]";
    const char *want[] = {"{\"s\":\"tab\\there \xc3\xa9/A \\\"q\\\" \\\\\",\"k\\n\":\"\\u001F"
                          "\\b\\f\\r\"}"};
    assert_elements(JSON, body, want, 1);
}

Test(body, white_space_between_tokens_does_not_change_the_record)
{
    const char *pretty = "{\n    \"workflow_id\": \"w1\",\n    \"nl_input\": \"run the tests\",\n"
                         "    \"duration_seconds\": 1.50,\n    \"total_tokens\": 120,\n"
                         "    \"actual_cost_total\": 0.25\n}";
    char body[512];
    snprintf(body, sizeof(body), "[\n  %s\n]\n", pretty);
    const char *want[] = {"{\"workflow_id\":\"w1\",\"nl_input\":\"run the tests\","
                          "\"duration_seconds\":1.50,\"total_tokens\":120,"
                          "\"actual_cost_total\":0.25}"};
    assert_elements(JSON, body, want, 1);
    pd_error_t err = assert_same_outcome(pretty, strlen(pretty));
    cr_assert_str_eq(err.message, "");
}

Test(body, empty_array_hands_on_nothing)
{
    const char *bodies[] = {"[]", " [ ] ", "\n\r\t[\n]\n", "[\n\n\n]"};
    for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
        for (size_t step = 1; step <= strlen(bodies[b]); step++) {
            seen_t s = {0};
            cr_assert_eq(feed(JSON, bodies[b], 100, step, &s), 0, "%s", bodies[b]);
            cr_assert_eq(s.n, 0);
            cr_assert_eq(feed(NULL, bodies[b], 100, step, &s), 0, "%s", bodies[b]);
            cr_assert_eq(s.n, 0);
        }
    }
}

Test(body, elements_that_are_not_objects_are_rejected_one_by_one)
{
    const char *body = "[1, \"x\", null, true, [2, {\"a\": 3}], {\"workflow_id\": \"w\"}]";
    const char *want[] = {"1", "\"x\"", "null", "true", "[2,{\"a\":3}]", "{\"workflow_id\":\"w\"}"};
    assert_elements(NULL, body, want, 6);
    const char *kinds[] = {"a number", "a string", "null", "a boolean", "an array"};
    for (int i = 0; i < 5; i++) {
        pd_record_t rec;
        pd_error_t err;
        cr_assert_eq(pd_record_parse(want[i], strlen(want[i]), 1, NULL, &rec, &err), PD_EINVAL);
        cr_assert_not_null(strstr(err.message, "expected a JSON object"), "%s", err.message);
        cr_assert_not_null(strstr(err.message, kinds[i]), "%s", err.message);
        assert_same_outcome(want[i], strlen(want[i]));
    }
}

/* --- the limit on a record --------------------------------------------------------- */

Test(body, oversize_element_is_reported_once_and_the_next_is_kept)
{
    /* max 30: the first element's text is 42 bytes, the third's exactly 30. */
    const char *body = "[{\"a\":\"0123456789012345678901234567890123\"},\n{\"b\":1},"
                       "{ \"c\" : \"0123456789012345678901\" }]";
    size_t len = strlen(body);
    for (size_t step = 1; step <= len; step++) {
        seen_t s = {0};
        cr_assert_eq(feed(JSON, body, 30, step, &s), 0);
        cr_assert_eq(s.n, 3, "step %zu", step);
        cr_assert(s.oversize[0]);
        cr_assert_null(s.text[0]);
        cr_assert_eq(s.len[0], 42, "the generated text's length, %zu", s.len[0]);
        cr_assert_str_eq(s.text[1], "{\"b\":1}");
        /* 34 bytes as sent, 30 as written out: the limit counts the element's text. */
        cr_assert(!s.oversize[2]);
        cr_assert_str_eq(s.text[2], "{\"c\":\"0123456789012345678901\"}");
        seen_free(&s);
    }
}

Test(body, oversize_element_is_not_kept_past_the_limit)
{
    size_t n = 1 << 20;
    char *body = malloc(n + 64);
    int at = sprintf(body, "[{\"workflow_id\":\"big\",\"nl_input\":\"");
    memset(body + at, 'x', n);
    strcpy(body + at + n, "\"},{\"id\":1}]");
    pd_body_parser_t p;
    seen_t s = {0};
    cr_assert_eq(pd_body_parser_init(&p, JSON, 1000, collect, &s), 0);
    size_t len = strlen(body);
    for (size_t i = 0; i < len; i += 4096) {
        size_t k = len - i < 4096 ? len - i : 4096;
        cr_assert_eq(pd_body_parser_push(&p, body + i, k), 0);
        cr_assert_leq(p.elem_cap, 1001, "the element's buffer stays within max_record");
    }
    cr_assert_eq(pd_body_parser_finish(&p), 0);
    pd_body_parser_close(&p);
    cr_assert_eq(s.n, 2);
    cr_assert(s.oversize[0]);
    cr_assert_eq(s.len[0], (size_t)at - 1 + n + 2, "the element, without the '['");
    cr_assert_str_eq(s.text[1], "{\"id\":1}");
    seen_free(&s);
    free(body);
}

/* --- strings the record parser rejects ------------------------------------------------ */

Test(body, strings_that_are_not_utf8_reach_the_record_parser)
{
    const char *records[] = {
        "{\"workflow_id\":\"a\",\"nl_input\":\"bad \xff byte\"}",     /* not UTF-8 at all */
        "{\"workflow_id\":\"a\",\"nl_input\":\"cut \xc3\"}",          /* a character cut short */
        "{\"workflow_id\":\"a\",\"nl_input\":\"overlong \xc0\xaf\"}", /* yajl lets it through */
        "{\"workflow_id\":\"a\",\"nl_input\":\"surrogate \xed\xa0\x80\"}",
        "{\"workflow_id\":\"a\",\"k\xff\":\"v\"}", /* in a key */
        "{\"workflow_id\":\"a\xf4\x90\x80\x80\"}", /* past U+10FFFF */
    };
    for (size_t i = 0; i < sizeof(records) / sizeof(records[0]); i++) {
        /* The bytes go through as they are: the element's text is the record's. */
        char *text = element_of(records[i], strlen(records[i]));
        cr_assert_str_eq(text, records[i]);
        free(text);
        pd_error_t err = assert_same_outcome(records[i], strlen(records[i]));
        cr_assert_neq(err.message[0], '\0', "record %zu is rejected", i);
    }
}

Test(body, nul_and_lone_surrogates_are_judged_as_in_a_line)
{
    /* Each as an NDJSON line and as an array element: the same outcome. */
    static const struct {
        const char *record;
        const char *field; /* of the rejection; NULL when the record is accepted */
        const char *words;
    } cases[] = {
        {"{\"workflow_id\":\"a\",\"nl_input\":\"x\\u0000y\"}", "nl_input", "NUL"},
        {"{\"workflow_id\":\"a\\u0000\"}", "workflow_id", "NUL"},
        {"{\"workflow_id\":\"a\",\"nl_input\":\"low \\udc00\"}", "nl_input", "not valid UTF-8"},
        {"{\"workflow_id\":\"a\",\"k\\udfff\":1}", "k\\xed\\xbf\\xbf", "not valid UTF-8"},
        {"{\"workflow_id\":\"a\",\"nl_input\":\"high \\ud800 alone\"}", NULL, NULL},
        {"{\"workflow_id\":\"a\",\"nl_input\":\"high at the end \\ud800\"}", NULL, NULL},
        {"{\"workflow_id\":\"a\",\"nl_input\":\"pair \\ud83d\\ude00\"}", NULL, NULL},
        {"{\"workflow_id\":\"a\",\"nl_input\":\"high then not low \\ud800\\u0041\"}", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pd_error_t err = assert_same_outcome(cases[i].record, strlen(cases[i].record));
        if (cases[i].field == NULL) {
            cr_assert_str_eq(err.message, "", "case %zu accepted", i);
            continue;
        }
        cr_assert_str_eq(err.field, cases[i].field, "case %zu", i);
        cr_assert_not_null(strstr(err.message, cases[i].words), "case %zu: %s", i, err.message);
    }
}

/* --- a lone object ------------------------------------------------------------------ */

Test(body, single_object_with_json_content_type_is_one_record)
{
    const char *want[] = {"{\"workflow_id\":\"a\",\"nl_input\":\"[1, 2]\",\"n\":{\"m\":[]}}"};
    assert_elements(JSON,
                    " \n{\"workflow_id\": \"a\", \"nl_input\": \"[1, 2]\", \"n\": {\"m\": []}}\n",
                    want, 1);
}

Test(body, single_object_without_content_type_is_an_ndjson_line)
{
    const char *body = "\n{\"workflow_id\": \"a\"}\n{\"workflow_id\": \"b\"}";
    for (size_t step = 1; step <= strlen(body); step++) {
        seen_t s = {0};
        cr_assert_eq(feed(NULL, body, 100, step, &s), 0);
        cr_assert_eq(s.n, 2);
        cr_assert_str_eq(s.text[0], "{\"workflow_id\": \"a\"}");
        cr_assert_eq(s.line_no[0], 2);
        cr_assert_str_eq(s.text[1], "{\"workflow_id\": \"b\"}");
        cr_assert_eq(s.line_no[1], 3);
        seen_free(&s);
    }
}

/* --- NDJSON --------------------------------------------------------------------------- */

Test(body, ndjson_content_type_reads_lines_whatever_they_start_with)
{
    seen_t s = {0};
    cr_assert_eq(feed("application/x-ndjson", "[{\"a\":1}]\n  {\"b\": 2}\n", 100, 3, &s), 0);
    cr_assert_eq(s.n, 2);
    cr_assert_str_eq(s.text[0], "[{\"a\":1}]");
    cr_assert_eq(s.line_no[0], 1);
    cr_assert_str_eq(s.text[1], "  {\"b\": 2}");
    cr_assert_eq(s.line_no[1], 2);
    seen_free(&s);
}

Test(body, empty_body_without_content_type_has_no_records)
{
    seen_t s = {0};
    cr_assert_eq(feed(NULL, "", 100, 1, &s), 0);
    cr_assert_eq(feed(NULL, " \n\t\r\n", 100, 1, &s), 0);
    cr_assert_eq(s.n, 0);
}

/* --- malformed bodies ------------------------------------------------------------------ */

Test(body, malformed_json_bodies_are_refused)
{
    const char *bodies[] = {
        "[1,]",
        "[",
        "[1",
        "]",
        "]x",
        "}",
        "[}",
        "[1}",
        "[,1]",
        "[1 2]",
        "[]x",
        "[1] [2]",
        "[] ,",
        "{}x",
        "{} {}",
        "{\"a\":}",
        "{\"a\" 1}",
        "{1:2}",
        "1",
        "\"record\"",
        "null",
        "true",
        "",
        "  \n ",
        "[{\"a\":01}]",
        "[{\"a\":\"\x01\"}]",
        "[{broken}]",
        "[{\"a\":1},{\"b\":",
        "[\"open",
        "[\xff]",
        "[{\"a\":1}]]",
    };
    for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
        size_t len = strlen(bodies[b]);
        for (size_t step = 1; step <= (len > 0 ? len : 1); step++) {
            seen_t s = {0};
            cr_assert_eq(feed(JSON, bodies[b], 100, step, &s), PD_EINVAL, "%s, step %zu", bodies[b],
                         step);
            seen_free(&s);
            if (bodies[b][0] == '[') {
                cr_assert_eq(feed(NULL, bodies[b], 100, step, &s), PD_EINVAL, "%s", bodies[b]);
                seen_free(&s);
            }
        }
    }
}

Test(body, elements_before_a_syntax_error_were_handed_on)
{
    seen_t s = {0};
    cr_assert_eq(feed(JSON, "[{\"a\":1},{\"b\":2},{\"c\" 3}]", 100, 4, &s), PD_EINVAL);
    cr_assert_eq(s.n, 2);
    cr_assert_str_eq(s.text[1], "{\"b\":2}");
    seen_free(&s);
}

Test(body, nesting_is_limited_by_the_generator)
{
    /* 127 levels inside an element are written out; 128 cannot be. */
    for (int levels = 126; levels <= 128; levels++) {
        char body[600];
        size_t len = 0;
        body[len++] = '[';
        for (int i = 0; i < levels; i++)
            body[len++] = '[';
        for (int i = 0; i < levels; i++)
            body[len++] = ']';
        body[len++] = ']';
        seen_t s = {0};
        int rc = feed_n(JSON, body, len, 1000, len, &s);
        cr_assert_eq(rc, levels <= 127 ? 0 : PD_EINVAL, "%d levels", levels);
        cr_assert_eq(s.n, levels <= 127 ? 1 : 0);
        if (levels <= 127)
            cr_assert_eq(s.len[0], (size_t)levels * 2);
        seen_free(&s);
    }
}

/* --- the callback --------------------------------------------------------------------- */

Test(body, callback_error_stops_the_body_and_sticks)
{
    pd_body_parser_t p;
    seen_t s = {.stop_at = 2};
    char body[] = "[{\"a\":1},{\"b\":2},{\"c\":3}]";
    cr_assert_eq(pd_body_parser_init(&p, JSON, 100, collect, &s), 0);
    cr_assert_eq(pd_body_parser_push(&p, body, strlen(body)), 7);
    cr_assert_eq(s.n, 2, "nothing after the callback said stop");
    char more[] = " ";
    cr_assert_eq(pd_body_parser_push(&p, more, 1), 7);
    cr_assert_eq(pd_body_parser_finish(&p), 7);
    pd_body_parser_close(&p);
    seen_free(&s);
}
