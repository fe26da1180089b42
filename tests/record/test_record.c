/*
 * Stage: record (src/record).  Record validation (docs/spec.md §1): one test per rejection class,
 * each checking that the record is refused and that the error names the line and field.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/record.h"
#include "pd/utf8.h"
#include "support.h"

static int parse(const char *line, pd_record_t *rec, pd_error_t *err)
{
    return pd_record_parse(line, strlen(line), 7, NULL, rec, err);
}

static void assert_rejected(const char *line, const char *field, const char *words)
{
    pd_record_t rec;
    pd_error_t err;
    int rc = parse(line, &rec, &err);
    cr_assert_eq(rc, PD_EINVAL, "accepted: %s", line);
    cr_assert_eq(err.line, 7);
    cr_assert_str_eq(err.field, field, "field for %s", line);
    cr_assert_not_null(strstr(err.message, words), "message '%s' lacks '%s'", err.message, words);
}

Test(record, accepts_full_record)
{
    pd_record_t rec;
    pd_error_t err;
    const char *line = "{\"workflow_id\":\"w1\",\"tenant_id\":\"t-1\",\"nl_input\":\"Run tests\","
                       "\"workflow_template\":\"adw_test\",\"error_message\":null,"
                       "\"error_count\":2,\"duration_seconds\":12.3456,\"retry_count\":1,"
                       "\"total_tokens\":1000,\"actual_cost_total\":0.5,"
                       "\"start_time\":\"2026-10-21T13:06:23Z\",\"extra\":[1,2]}";
    cr_assert_eq(parse(line, &rec, &err), PD_OK, "%s", err.message);
    cr_assert_str_eq(rec.workflow_id, "w1");
    cr_assert_str_eq(rec.tenant_id, "t-1");
    cr_assert_str_eq(rec.nl_input.ptr, "Run tests");
    cr_assert_null(rec.error_message.ptr);
    cr_assert_eq(rec.duration_ms, 12346);
    cr_assert_eq(rec.total_tokens, 1000);
    cr_assert(rec.has_start_time);
    cr_assert_eq(rec.start_time_us, 1792587983LL * 1000000);
    pd_record_close(&rec);
}

Test(record, integer_id_is_stored_as_decimal_text)
{
    pd_record_t rec;
    pd_error_t err;
    cr_assert_eq(parse("{\"id\": 4242}", &rec, &err), PD_OK);
    cr_assert_str_eq(rec.workflow_id, "4242");
    cr_assert(rec.workflow_id_is_int);
    cr_assert_str_eq(rec.tenant_id, "default");
    pd_record_close(&rec);
}

Test(record, empty_workflow_id_falls_back_to_id)
{
    pd_record_t rec;
    pd_error_t err;
    cr_assert_eq(parse("{\"workflow_id\": \"\", \"id\": \"alias\"}", &rec, &err), PD_OK);
    cr_assert_str_eq(rec.workflow_id, "alias");
    pd_record_close(&rec);
}

Test(record, caller_tenant_applies_when_record_has_none)
{
    pd_record_t rec;
    pd_error_t err;
    const char *line = "{\"workflow_id\": \"w\"}";
    cr_assert_eq(pd_record_parse(line, strlen(line), 1, "acme", &rec, &err), PD_OK);
    cr_assert_str_eq(rec.tenant_id, "acme");
    pd_record_close(&rec);
}

Test(record, integral_real_counts_as_integer)
{
    pd_record_t rec;
    pd_error_t err;
    cr_assert_eq(parse("{\"id\": \"w\", \"total_tokens\": 1234.0}", &rec, &err), PD_OK);
    cr_assert_eq(rec.total_tokens, 1234);
    pd_record_close(&rec);
}

Test(record, rejects_invalid_json)
{
    assert_rejected("{\"workflow_id\": \"w\",", "", "invalid JSON");
}

Test(record, rejects_trailing_garbage)
{
    assert_rejected("{\"workflow_id\": \"w\"} xyz", "", "invalid JSON");
}

Test(record, rejects_non_object)
{
    assert_rejected("[1, 2, 3]", "", "expected a JSON object");
    assert_rejected("\"text\"", "", "expected a JSON object");
}

Test(record, rejects_missing_id)
{
    assert_rejected("{\"nl_input\": \"x\"}", "workflow_id", "no usable id");
    assert_rejected("{\"workflow_id\": null, \"id\": \"\"}", "workflow_id", "no usable id");
}

Test(record, rejects_id_longer_than_256_bytes)
{
    char line[600];
    char id[300];
    memset(id, 'a', 257);
    id[257] = '\0';
    snprintf(line, sizeof(line), "{\"workflow_id\": \"%s\"}", id);
    assert_rejected(line, "workflow_id", "longer than 256 bytes");
    id[256] = '\0';
    snprintf(line, sizeof(line), "{\"workflow_id\": \"%s\"}", id);
    pd_record_t rec;
    pd_error_t err;
    cr_assert_eq(parse(line, &rec, &err), PD_OK, "256 bytes must be accepted");
    pd_record_close(&rec);
}

Test(record, rejects_wrong_types)
{
    assert_rejected("{\"id\": \"w\", \"duration_seconds\": \"12\"}", "duration_seconds",
                    "expected a number");
    assert_rejected("{\"id\": \"w\", \"nl_input\": 5}", "nl_input", "expected a string");
    assert_rejected("{\"id\": \"w\", \"total_tokens\": 2.5}", "total_tokens",
                    "expected an integer");
    assert_rejected("{\"id\": \"w\", \"retry_count\": true}", "retry_count", "expected an integer");
    assert_rejected("{\"workflow_id\": 1.5}", "workflow_id", "expected a string or integer");
    assert_rejected("{\"id\": \"w\", \"tenant_id\": 3}", "tenant_id", "expected a string");
}

Test(record, rejects_negative_numbers)
{
    assert_rejected("{\"id\": \"w\", \"total_tokens\": -1}", "total_tokens", "negative");
    assert_rejected("{\"id\": \"w\", \"actual_cost_total\": -0.5}", "actual_cost_total",
                    "negative");
    assert_rejected("{\"id\": \"w\", \"duration_seconds\": -3}", "duration_seconds", "negative");
}

Test(record, rejects_numbers_beyond_64_bits)
{
    assert_rejected("{\"id\": \"w\", \"total_tokens\": 9223372036854775808}", "total_tokens",
                    "out of range");
    assert_rejected("{\"id\": \"w\", \"actual_cost_total\": 1e400}", "actual_cost_total",
                    "out of range");
}

Test(record, rejects_duration_over_one_year)
{
    assert_rejected("{\"id\": \"w\", \"duration_seconds\": 31536000.5}", "duration_seconds",
                    "one year");
}

Test(record, rejects_unparseable_start_time)
{
    assert_rejected("{\"id\": \"w\", \"start_time\": \"yesterday\"}", "start_time", "ISO-8601");
    assert_rejected("{\"id\": \"w\", \"start_time\": \"2026-02-30T00:00:00Z\"}", "start_time",
                    "ISO-8601");
    assert_rejected("{\"id\": \"w\", \"start_time\": \"2026-10-21T25:00:00Z\"}", "start_time",
                    "ISO-8601");
}

Test(record, rejects_invalid_tenant)
{
    assert_rejected("{\"id\": \"w\", \"tenant_id\": \"a b\"}", "tenant_id", "1-64 characters");
    assert_rejected("{\"id\": \"w\", \"tenant_id\": \"\"}", "tenant_id", "1-64 characters");
    char line[200], tenant[70];
    memset(tenant, 't', 65);
    tenant[65] = '\0';
    snprintf(line, sizeof(line), "{\"id\": \"w\", \"tenant_id\": \"%s\"}", tenant);
    assert_rejected(line, "tenant_id", "1-64 characters");
}

Test(record, rejects_invalid_utf8)
{
    assert_rejected("{\"id\": \"w\", \"nl_input\": \"caf\xc3\"}", "", "invalid JSON");
    assert_rejected("{\"id\": \"w\", \"nl_input\": \"\xff\xfe\"}", "", "invalid JSON");
}

Test(record, rejects_utf8_that_yajl_lets_through)
{
    /* An overlong '/', a UTF-16 surrogate, a code point past U+10FFFF. */
    assert_rejected("{\"id\": \"w\", \"nl_input\": \"a\xc0\xaf"
                    "b\"}",
                    "nl_input", "UTF-8");
    assert_rejected("{\"id\": \"w\", \"error_message\": \"\xed\xa0\x80\"}", "error_message",
                    "UTF-8");
    assert_rejected("{\"id\": \"w\", \"extra\": \"\xf4\x90\x80\x80\"}", "extra", "UTF-8");
}

Test(record, rejects_nul_bytes)
{
    pd_record_t rec;
    pd_error_t err;
    const char raw[] = "{\"id\": \"w\", \"nl_input\": \"a\0b\"}";
    cr_assert_eq(pd_record_parse(raw, sizeof(raw) - 1, 3, NULL, &rec, &err), PD_EINVAL);
    cr_assert_eq(err.line, 3);
    assert_rejected("{\"id\": \"w\", \"nl_input\": \"a\\u0000b\"}", "nl_input", "NUL");
}

Test(timestamp, accepts_rfc3339_variants)
{
    int64_t us;
    cr_assert_eq(pd_timestamp_parse("1970-01-01T00:00:00Z", 20, &us), 0);
    cr_assert_eq(us, 0);
    cr_assert_eq(pd_timestamp_parse("1970-01-01T01:00:00+01:00", 25, &us), 0);
    cr_assert_eq(us, 0);
    cr_assert_eq(pd_timestamp_parse("1970-01-01 00:00:01.5", 21, &us), 0);
    cr_assert_eq(us, 1500000);
    cr_assert_eq(pd_timestamp_parse("2024-02-29", 10, &us), 0);
    cr_assert_eq(us, 1709164800LL * 1000000);
    cr_assert_eq(pd_timestamp_parse("2023-02-29", 10, &us), PD_EINVAL);
}

/* --- bounded numbers and safe messages --------------------------------------------------- */

static void assert_accepted(const char *line)
{
    pd_record_t rec;
    pd_error_t err;
    cr_assert_eq(parse(line, &rec, &err), PD_OK, "%s: %s", line, err.message);
    pd_record_close(&rec);
}

Test(record, rejects_numbers_past_their_bounds)
{
    /* Each bound itself is accepted ... */
    assert_accepted("{\"id\": \"w\", \"total_tokens\": 1000000000000, \"actual_cost_total\": 1e9,"
                    " \"retry_count\": 1000000000, \"error_count\": 1000000000}");
    assert_accepted("{\"id\": \"w\", \"total_tokens\": 1e12, \"retry_count\": 1000000000.0}");
    /* ... and one past it is rejected, naming the field and the bound. */
    assert_rejected("{\"id\": \"w\", \"total_tokens\": 1000000000001}", "total_tokens",
                    "out of range: at most 1000000000000, got 1000000000001");
    assert_rejected("{\"id\": \"w\", \"total_tokens\": 1.5e12}", "total_tokens", "out of range");
    assert_rejected("{\"id\": \"w\", \"actual_cost_total\": 1000000000.01}", "actual_cost_total",
                    "out of range: at most 1000000000, got 1000000000.01");
    assert_rejected("{\"id\": \"w\", \"actual_cost_total\": 1e308}", "actual_cost_total",
                    "out of range");
    assert_rejected("{\"id\": \"w\", \"retry_count\": 1000000001}", "retry_count",
                    "out of range: at most 1000000000");
    assert_rejected("{\"id\": \"w\", \"error_count\": 4e9}", "error_count",
                    "out of range: at most 1000000000");
    assert_rejected("{\"id\": \"w\", \"error_count\": 9223372036854775807}", "error_count",
                    "out of range");
}

Test(record, bad_start_time_message_is_cut_on_a_character_boundary)
{
    /* 63 ASCII bytes and an 'é': a cut at 64 bytes would split the 'é'. */
    char line[256];
    snprintf(line, sizeof(line), "{\"id\": \"w\", \"start_time\": \"%s\xc3\xa9\"}",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    pd_record_t rec;
    pd_error_t err;
    cr_assert_eq(parse(line, &rec, &err), PD_EINVAL);
    cr_assert_str_eq(err.field, "start_time");
    cr_assert(pd_utf8_valid(err.message, strlen(err.message)), "%s", err.message);
    cr_assert_not_null(strstr(err.message, "not an ISO-8601 timestamp"), "%s", err.message);

    /* Longer input is cut on a boundary too, and says so. */
    char longer[512];
    snprintf(longer, sizeof(longer), "{\"id\": \"w\", \"start_time\": \"");
    for (int i = 0; i < 100; i++)
        strcat(longer, "\xc3\xa9");
    strcat(longer, "\"}");
    cr_assert_eq(parse(longer, &rec, &err), PD_EINVAL);
    cr_assert(pd_utf8_valid(err.message, strlen(err.message)), "%s", err.message);
    cr_assert_not_null(strstr(err.message, "\"..."), "%s", err.message);
}

Test(record, quoted_input_has_control_characters_escaped)
{
    pd_record_t rec;
    pd_error_t err;
    cr_assert_eq(
        parse("{\"id\": \"w\", \"start_time\": \"\\u001b]0;owned\\u0007\\\"x\\n\"}", &rec, &err),
        PD_EINVAL);
    cr_assert_str_eq(err.field, "start_time");
    cr_assert_not_null(strstr(err.message, "\"\\u001b]0;owned\\u0007\\\"x\\n\""), "%s",
                       err.message);
    for (const char *p = err.message; *p; p++)
        cr_assert((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte in '%s'", err.message);

    /* A key with control characters whose value is not UTF-8: the key is named, escaped. */
    cr_assert_eq(parse("{\"id\": \"w\", \"k\\u001b\": \"\xc0\xaf\"}", &rec, &err), PD_EINVAL);
    cr_assert_str_eq(err.field, "k\\u001b");
}

Test(error, set_cuts_on_a_character_boundary_and_replaces_bad_bytes)
{
    char big[2048] = "";
    for (int i = 0; i < 600; i++)
        strcat(big, i % 2 ? "\xc3\xa9" : "a"); /* misaligns 'é' with every possible cut */
    for (int shift = 0; shift < 4; shift++) {
        pd_error_t err;
        cr_assert_eq(pd_error_set(&err, PD_EINVAL, 3, big + shift, "%.*s%s", shift, "xyz", big),
                     PD_EINVAL);
        size_t n = strlen(err.message);
        cr_assert(n < PD_MESSAGE_MAX && n >= PD_MESSAGE_MAX - 4, "%zu", n);
        cr_assert(pd_utf8_valid(err.message, n), "shift %d", shift);
        cr_assert(pd_utf8_valid(err.field, strlen(err.field)), "shift %d", shift);
        cr_assert_eq(err.line, 3);
    }
    pd_error_t err;
    pd_error_set(&err, PD_EINVAL, 1, "f\xff", "bad \xc3 byte \xed\xa0\x80");
    cr_assert_str_eq(err.field, "f\xef\xbf\xbd");
    cr_assert_str_eq(err.message, "bad \xef\xbf\xbd byte \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}

Test(error, escape_makes_any_bytes_printable_and_stops_on_a_boundary)
{
    char out[64];
    const char in[] = "a\"b\\c\n\x1b\x7f\xc2\x85\xff\xc3\xa9";
    cr_assert_eq(pd_error_escape(out, sizeof(out), in, sizeof(in) - 1, true), sizeof(in) - 1);
    cr_assert_str_eq(out, "a\\\"b\\\\c\\n\\u001b\\u007f\\u0085\\xff\xc3\xa9");
    cr_assert_eq(pd_error_escape(out, sizeof(out), in, sizeof(in) - 1, false), sizeof(in) - 1);
    cr_assert_str_eq(out, "a\"b\\c\\n\\u001b\\u007f\\u0085\\xff\xc3\xa9");
    /* Room for "ab" and half an 'é': the 'é' is left out whole. */
    cr_assert_eq(pd_error_escape(out, 4, "ab\xc3\xa9", 4, true), 2);
    cr_assert_str_eq(out, "ab");
}
