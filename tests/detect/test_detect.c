/*
 * Stage: detect (src/detect/detect.c).  Detection (docs/spec.md §2) on hand-built records: the
 * branches and quirks of the reference that the vector files exercise only in passing — rule order,
 * substring matches, \ball\b next to non-ASCII text, the file regexes' findall semantics, and
 * Python's idea of lower case, length and whitespace. Every expected value was computed with the
 * reference's Python semantics.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "pd/detect.h"
#include "pd/jsonw.h"

#define LIST_MAX 1024

static pd_text_t text_of(const char *s)
{
    return (pd_text_t){s, s != NULL ? strlen(s) : 0};
}

static pd_record_t record_of(const char *nl, const char *tmpl, const char *err)
{
    pd_record_t rec;
    memset(&rec, 0, sizeof(rec));
    rec.nl_input = text_of(nl);
    rec.workflow_template = text_of(tmpl);
    rec.error_message = text_of(err);
    return rec;
}

/* Runs detection on rec into a fresh det, which the caller closes. */
static void detect(const pd_record_t *rec, pd_detection_t *det)
{
    pd_detection_init(det);
    cr_assert_eq(pd_detect_record(rec, det), 0);
}

/* The detected signatures joined by ',' ("" when none). */
static const char *patterns_of(const char *nl, const char *tmpl, const char *err,
                               char out[LIST_MAX])
{
    pd_record_t rec = record_of(nl, tmpl, err);
    pd_detection_t det;
    detect(&rec, &det);
    out[0] = '\0';
    for (int i = 0; i < det.n_patterns; i++) {
        if (i > 0)
            strcat(out, ",");
        strcat(out, det.patterns[i]);
    }
    pd_detection_close(&det);
    return out;
}

/* files_mentioned joined by '|'; nl is n bytes (it may hold a NUL). */
static const char *files_of_n(const char *nl, size_t n, char out[LIST_MAX])
{
    pd_record_t rec = record_of(NULL, NULL, NULL);
    rec.nl_input = (pd_text_t){nl, n};
    pd_detection_t det;
    detect(&rec, &det);
    out[0] = '\0';
    for (size_t i = 0; i < det.n_files; i++) {
        if (i > 0)
            strcat(out, "|");
        strncat(out, nl + det.files[i].off, det.files[i].len);
    }
    pd_detection_close(&det);
    return out;
}

static const char *files_of(const char *nl, char out[LIST_MAX])
{
    return files_of_n(nl, strlen(nl), out);
}

/* The keywords found, joined by ','. */
static const char *keywords_of(const char *nl, char out[LIST_MAX])
{
    pd_record_t rec = record_of(nl, NULL, NULL);
    pd_detection_t det;
    detect(&rec, &det);
    out[0] = '\0';
    for (int i = 0; i < PD_KEYWORD_COUNT; i++) {
        if (!(det.keywords & (UINT32_C(1) << i)))
            continue;
        if (out[0] != '\0')
            strcat(out, ",");
        strcat(out, pd_detect_keywords[i]);
    }
    pd_detection_close(&det);
    return out;
}

static const char *complexity_of_n(const char *nl, size_t n, int64_t error_count)
{
    pd_record_t rec = record_of(NULL, NULL, NULL);
    rec.nl_input = (pd_text_t){nl, n};
    rec.error_count = error_count;
    pd_detection_t det;
    detect(&rec, &det);
    const char *name = pd_complexity_name(det.complexity);
    pd_detection_close(&det);
    return name;
}

static const char *complexity_of(const char *nl, int64_t error_count)
{
    return complexity_of_n(nl, strlen(nl), error_count);
}

static int64_t input_length_of(const char *nl)
{
    pd_record_t rec = record_of(nl, NULL, NULL);
    pd_detection_t det;
    detect(&rec, &det);
    int64_t n = det.input_length;
    pd_detection_close(&det);
    return n;
}

/* count copies of word separated by sep (both UTF-8), into out. */
static char *repeat_words(const char *word, const char *sep, int count, char *out)
{
    out[0] = '\0';
    for (int i = 0; i < count; i++) {
        if (i > 0)
            strcat(out, sep);
        strcat(out, word);
    }
    return out;
}

/* ---- §2.1 primary signature ---------------------------------------------- */

Test(detect, test_category_wins_over_build)
{
    char got[LIST_MAX];
    cr_assert_str_eq(patterns_of("build and test", NULL, NULL, got), "test:generic:frontend");
}

Test(detect, build_wins_over_format)
{
    char got[LIST_MAX];
    cr_assert_str_eq(patterns_of("lint the build", NULL, NULL, got), "build:build:frontend");
}

Test(detect, format_wins_over_git_and_git_over_deps_and_deps_over_docs)
{
    char got[LIST_MAX];
    cr_assert_str_eq(patterns_of("format the git diff", NULL, NULL, got), "format:generic:all");
    cr_assert_str_eq(patterns_of("git status after npm install", NULL, NULL, got),
                     "git:status:summary");
    cr_assert_str_eq(patterns_of("npm readme", NULL, NULL, got), "deps:npm:update");
}

Test(detect, ui_substring_inside_build_selects_frontend)
{
    char got[LIST_MAX];
    cr_assert_str_eq(patterns_of("Build it", NULL, NULL, got), "build:build:frontend");
    cr_assert_str_eq(keywords_of("Build it", got), "build,ui");
}

Test(detect, pip_inside_pipeline_counts_as_deps)
{
    char got[LIST_MAX];
    cr_assert_str_eq(patterns_of("update the pipeline", NULL, NULL, got), "deps:pip:update");
}

Test(detect, test_sub_category_follows_spec_order)
{
    char got[LIST_MAX];
    cr_assert_str_eq(patterns_of("pytest with vitest", NULL, NULL, got), "test:pytest:all");
    cr_assert_str_eq(patterns_of("py.test it", NULL, NULL, got), "test:pytest:all");
    cr_assert_str_eq(patterns_of("mocha tests", NULL, NULL, got), "test:mocha:all");
    cr_assert_str_eq(patterns_of("run jest", NULL, NULL, got), "test:jest:all");
}

Test(detect, build_sub_category_follows_spec_order)
{
    char got[LIST_MAX];
    cr_assert_str_eq(patterns_of("tsc compile", NULL, NULL, got), "build:typecheck:all");
    cr_assert_str_eq(patterns_of("compile with webpack", NULL, NULL, got), "build:compile:all");
    cr_assert_str_eq(patterns_of("webpack build", NULL, NULL, got), "build:bundle:frontend");
}

Test(detect, format_git_and_deps_sub_categories_follow_spec_order)
{
    char got[LIST_MAX];
    cr_assert_str_eq(patterns_of("prettier and black", NULL, NULL, got), "format:prettier:all");
    cr_assert_str_eq(patterns_of("eslint", NULL, NULL, got), "format:eslint:all");
    cr_assert_str_eq(patterns_of("ruff format", NULL, NULL, got), "format:ruff:all");
    cr_assert_str_eq(patterns_of("lint everything", NULL, NULL, got), "format:generic:all");
    cr_assert_str_eq(patterns_of("git log diff", NULL, NULL, got), "git:diff:summary");
    cr_assert_str_eq(patterns_of("install python via npm", NULL, NULL, got), "deps:npm:update");
    cr_assert_str_eq(patterns_of("update dependencies with bun", NULL, NULL, got),
                     "deps:bun:update");
    cr_assert_str_eq(patterns_of("yarn: update dependencies", NULL, NULL, got), "deps:yarn:update");
    cr_assert_str_eq(patterns_of("update dependencies", NULL, NULL, got), "deps:generic:update");
}

Test(detect, no_category_gives_no_pattern)
{
    char got[LIST_MAX];
    cr_assert_str_eq(patterns_of("Implement OAuth", NULL, NULL, got), "");
    cr_assert_str_eq(patterns_of(NULL, NULL, NULL, got), "");
}

/* ---- §2.1 target rule -------------------------------------------------------- */

Test(detect, both_beats_all_and_all_beats_server)
{
    char got[LIST_MAX];
    cr_assert_str_eq(patterns_of("run all tests on both", NULL, NULL, got), "test:generic:both");
    cr_assert_str_eq(patterns_of("run all tests on the server", NULL, NULL, got),
                     "test:generic:all");
}

Test(detect, all_rule_needs_the_word_and_tests_code_or_files)
{
    char got[LIST_MAX];
    cr_assert_str_eq(patterns_of("tests for all", "server_x", NULL, got), "test:generic:all");
    cr_assert_str_eq(patterns_of("ALL TESTS", "server_x", NULL, got), "test:generic:all");
    /* "test" is not "tests": the rule fails and the template decides. */
    cr_assert_str_eq(patterns_of("test all", "server_x", NULL, got), "test:generic:backend");
    cr_assert_str_eq(patterns_of("overall tests", "server_x", NULL, got), "test:generic:backend");
    cr_assert_str_eq(patterns_of("all_tests", "server_x", NULL, got), "test:generic:backend");
    cr_assert_str_eq(patterns_of("all2 tests", "server_x", NULL, got), "test:generic:backend");
}

Test(detect, word_all_uses_unicode_word_boundaries)
{
    char got[LIST_MAX];
    /* Letters and digits of any script are \w: no boundary. */
    cr_assert_str_eq(patterns_of("\u00e9all tests", "server_x", NULL, got), "test:generic:backend");
    cr_assert_str_eq(patterns_of("\u5168all tests", "server_x", NULL, got), "test:generic:backend");
    cr_assert_str_eq(patterns_of("\u0663all tests", "server_x", NULL, got), "test:generic:backend");
    /* Punctuation and combining marks are not. */
    cr_assert_str_eq(patterns_of("\u2014all tests", "server_x", NULL, got), "test:generic:all");
    cr_assert_str_eq(patterns_of("all\u0301 tests", "server_x", NULL, got), "test:generic:all");
}

Test(detect, capital_dotted_i_lowercases_to_i_and_combining_dot)
{
    char got[LIST_MAX];
    /* Python: "İall".lower() == "i\u0307all", and U+0307 is not \w. */
    cr_assert_str_eq(patterns_of("\u0130all tests", "server_x", NULL, got), "test:generic:all");
    cr_assert_str_eq(patterns_of("iall tests", "server_x", NULL, got), "test:generic:backend");
    cr_assert_str_eq(keywords_of("U\u0130", got), "ui");
    cr_assert_eq(input_length_of("\u0130"), 1);
}

Test(detect, kelvin_sign_lowercases_to_ascii_k)
{
    char got[LIST_MAX];
    cr_assert_str_eq(patterns_of("typechec\u212a", NULL, NULL, got), "build:typecheck:all");
}

Test(detect, nl_input_target_words_beat_the_template)
{
    char got[LIST_MAX];
    cr_assert_str_eq(patterns_of("test the api", "client_x", NULL, got), "test:generic:backend");
    cr_assert_str_eq(patterns_of("test", "client_x", NULL, got), "test:generic:frontend");
    cr_assert_str_eq(patterns_of("test", "Frontend", NULL, got), "test:generic:frontend");
    cr_assert_str_eq(patterns_of("test", "x", NULL, got), "test:generic:all");
}

/* ---- §2.2 error message, §2.3 template, §2.4 order ----------------------------- */

Test(detect, error_signatures_come_in_spec_order_not_text_order)
{
    char got[LIST_MAX];
    cr_assert_str_eq(
        patterns_of("Update README", "adw_test_iso", "eslint, then tsc, then vitest", got),
        "docs:generate:all,test:vitest:frontend,build:typecheck:backend,"
        "format:eslint:all,test:generic:all");
    cr_assert_str_eq(patterns_of("x", NULL, "TEST FAILED; Type Error; compilation", got),
                     "test:pytest:backend,build:typecheck:backend,build:compile:backend");
}

Test(detect, error_signature_equal_to_primary_is_not_repeated)
{
    char got[LIST_MAX];
    cr_assert_str_eq(patterns_of("Run pytest on the api", NULL, "pytest", got),
                     "test:pytest:backend");
    /* Same category, other target: both stay. */
    cr_assert_str_eq(patterns_of("Run pytest", NULL, "PYTEST: 3 tests failed", got),
                     "test:pytest:all,test:pytest:backend");
}

Test(detect, empty_error_message_adds_nothing)
{
    char got[LIST_MAX];
    cr_assert_str_eq(patterns_of("Update README", NULL, "", got), "docs:generate:all");
}

Test(detect, template_rule_takes_the_first_that_holds)
{
    char got[LIST_MAX];
    cr_assert_str_eq(patterns_of("x", "adw_plan_build_test", NULL, got), "test:generic:all");
    cr_assert_str_eq(patterns_of("x", "adw_ship_plan", NULL, got), "");
    cr_assert_str_eq(patterns_of("x", "adw_sdlc_ship", NULL, got), "");
    cr_assert_str_eq(patterns_of("x", "lightweight_review", NULL, got), "");
    cr_assert_str_eq(patterns_of("x", "ADW_SHIP", NULL, got), "deploy:ship:all");
    cr_assert_str_eq(patterns_of("x", "adw_review_iso", NULL, got), "review:code:all");
    cr_assert_str_eq(patterns_of("x", "", NULL, got), "");
}

Test(detect, template_signature_equal_to_primary_is_not_repeated)
{
    char got[LIST_MAX];
    cr_assert_str_eq(patterns_of("run tests", "adw_test", NULL, got), "test:generic:all");
    cr_assert_str_eq(patterns_of("run tests", "server_test", NULL, got),
                     "test:generic:backend,test:generic:all");
}

/* ---- §2.5 files_mentioned ------------------------------------------------------ */

Test(detect, extension_regexes_match_inside_longer_extensions)
{
    char got[LIST_MAX];
    cr_assert_str_eq(files_of("see settings.json and worker.tsx", got), "settings.js|worker.ts");
    cr_assert_str_eq(files_of("X.PY x.pyc", got), "x.py");
}

Test(detect, app_path_and_its_file_are_both_mentioned)
{
    char got[LIST_MAX];
    cr_assert_str_eq(files_of("fix app/server/x.py", got), "app/server/x|x.py");
    cr_assert_str_eq(files_of("app/tests/src/a.py", got), "a.py|app/tests/src/a|src/a|tests/src/a");
}

Test(detect, word_run_before_extension_starts_after_last_dot)
{
    char got[LIST_MAX];
    cr_assert_str_eq(files_of("a.b.py", got), "b.py");
}

Test(detect, findall_resumes_after_each_match)
{
    char got[LIST_MAX];
    cr_assert_str_eq(files_of("x.py.py", got), "x.py");
    cr_assert_str_eq(files_of("x.pyz.py", got), "x.py|z.py");
}

Test(detect, directory_regexes_need_their_slashes)
{
    char got[LIST_MAX];
    cr_assert_str_eq(files_of("tests/unit test/ tests contest/x", got), "test/|test/x|tests/unit");
    cr_assert_str_eq(files_of("app/x app//y src/", got), "src/");
    cr_assert_str_eq(files_of("mytest/a/b.js", got), "b.js|test/a/b");
}

Test(detect, files_are_sorted_by_code_point_without_duplicates)
{
    char got[LIST_MAX];
    cr_assert_str_eq(files_of("b.py a.py b.py", got), "a.py|b.py");
    cr_assert_str_eq(files_of("Z.py a.py", got), "Z.py|a.py");
    cr_assert_str_eq(files_of("\u00e9.py z.py", got), "z.py|\u00e9.py");
}

Test(detect, non_ascii_letters_and_digits_are_word_characters)
{
    char got[LIST_MAX];
    cr_assert_str_eq(files_of("app/server/\u30c6\u30b9\u30c8.py \u3092\u76f4\u3059", got),
                     "app/server/\u30c6\u30b9\u30c8|\u30c6\u30b9\u30c8.py");
    cr_assert_str_eq(files_of("caf\u00e9.py app/s\u00e9rver/x", got),
                     "app/s\u00e9rver/x|caf\u00e9.py");
    cr_assert_str_eq(files_of("\u0661\u0662.js", got), "\u0661\u0662.js");
}

Test(detect, combining_marks_are_not_word_characters)
{
    char got[LIST_MAX];
    cr_assert_str_eq(files_of("cafe\u0301.py", got), "");
    cr_assert_str_eq(files_of("src/a\u0301b", got), "src/a");
}

Test(detect, ascii_word_characters_match_unicode_properties)
{
    for (int c = 0; c < 128; c++) {
        char nl[] = {'x', (char)c, 'y', '.', 'p', 'y'};
        utf8proc_category_t cat = utf8proc_category(c);
        bool word = c == '_' || cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
                    cat == UTF8PROC_CATEGORY_LT || cat == UTF8PROC_CATEGORY_LM ||
                    cat == UTF8PROC_CATEGORY_LO || cat == UTF8PROC_CATEGORY_ND ||
                    cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
        char want[8];
        snprintf(want, sizeof(want), "%s", word ? "x?y.py" : "y.py");
        if (word)
            want[1] = (char)c;
        char got[LIST_MAX];
        cr_assert_str_eq(files_of_n(nl, sizeof(nl), got), want, "character 0x%02x", c);
    }
}

/* ---- §2.5 other characteristics -------------------------------------------------- */

Test(detect, input_length_counts_code_points)
{
    cr_assert_eq(input_length_of(NULL), 0);
    cr_assert_eq(input_length_of(""), 0);
    cr_assert_eq(input_length_of("h\u00e9llo"), 5);
    cr_assert_eq(input_length_of("\U0001F44D"), 1);
    cr_assert_eq(input_length_of("e\u0301"), 2);
    cr_assert_eq(input_length_of("\u30c6\u30b9\u30c8"), 3);
}

Test(detect, keywords_are_substrings_in_spec_order)
{
    char got[LIST_MAX];
    cr_assert_str_eq(keywords_of("Run the API tests via pytest", got), "test,pytest,run,api");
    cr_assert_str_eq(keywords_of("guide the UI server", got), "server,ui");
}

Test(detect, each_keyword_alone_sets_its_bit)
{
    for (int i = 0; i < PD_KEYWORD_COUNT; i++) {
        pd_record_t rec = record_of(pd_detect_keywords[i], NULL, NULL);
        pd_detection_t det;
        detect(&rec, &det);
        cr_assert(det.keywords & (UINT32_C(1) << i), "keyword %s", pd_detect_keywords[i]);
        pd_detection_close(&det);
    }
}

Test(detect, needles_split_across_eight_byte_groups_or_at_the_end_are_found)
{
    char got[LIST_MAX];
    cr_assert_str_eq(keywords_of("1234567TEST", got), "test");
    cr_assert_str_eq(keywords_of("go ui", got), "ui");
    cr_assert_str_eq(keywords_of("please run", got), "run");
    cr_assert_str_eq(files_of("look at a.js", got), "a.js");
}

Test(detect, unicode_whitespace_separates_words)
{
    /* A non-ASCII word makes ASCII separators go through the Unicode path too. */
    static const struct {
        const char *word, *sep;
    } cases[] = {{"a", "\u00a0"},   {"a", "\u3000"}, {"a", "\xc2\x85" /* U+0085 */},
                 {"a", "\u2028"},   {"a", "\u1680"}, {"\u00e9", "\x1f"},
                 {"\u00e9", "\t\n"}};
    char nl[1024];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        repeat_words(cases[i].word, cases[i].sep, 49, nl);
        cr_assert_str_eq(complexity_of(nl, 0), "simple", "case %zu", i);
        repeat_words(cases[i].word, cases[i].sep, 50, nl);
        cr_assert_str_eq(complexity_of(nl, 0), "medium", "case %zu", i);
    }
    /* Zero-width and format characters separate nothing. */
    repeat_words("a", "\u200b", 60, nl);
    cr_assert_str_eq(complexity_of(nl, 0), "simple");
    repeat_words("a", "\u180e", 60, nl);
    cr_assert_str_eq(complexity_of(nl, 0), "simple");
}

Test(detect, ascii_whitespace_matches_unicode_properties)
{
    for (int c = 0; c < 128; c++) {
        /* 50 'a's separated by c: 50 words if c is whitespace, else one. */
        char nl[99];
        for (int i = 0; i < 99; i++)
            nl[i] = i % 2 == 0 ? 'a' : (char)c;
        const utf8proc_property_t *p = utf8proc_get_property(c);
        bool space = p->bidi_class == UTF8PROC_BIDI_CLASS_WS ||
                     p->bidi_class == UTF8PROC_BIDI_CLASS_B ||
                     p->bidi_class == UTF8PROC_BIDI_CLASS_S || p->category == UTF8PROC_CATEGORY_ZS;
        cr_assert_str_eq(complexity_of_n(nl, sizeof(nl), 0), space ? "medium" : "simple",
                         "character 0x%02x", c);
    }
}

Test(detect, word_count_boundaries_with_mixed_whitespace)
{
    /* Words of 1 to 9 letters and runs of several separators, across 8-byte groups. */
    static const char *const seps[] = {" ", "\t", "\n  ", "\x1f", "\r\n", "   \v"};
    char nl[8192];
    for (int words = 199; words <= 202; words++) {
        nl[0] = '\0';
        for (int i = 0; i < words; i++) {
            strcat(nl, seps[i % 6]);
            size_t end = strlen(nl), letters = (size_t)(i % 9) + 1;
            memcpy(nl + end, "abcdefghi", letters);
            nl[end + letters] = '\0';
        }
        strcat(nl, "  ");
        cr_assert_str_eq(complexity_of(nl, 0), words > 200 ? "complex" : "medium", "%d words",
                         words);
    }
}

Test(detect, complexity_follows_error_count)
{
    cr_assert_str_eq(complexity_of("Run tests", 2), "simple");
    cr_assert_str_eq(complexity_of("Run tests", 3), "medium");
    cr_assert_str_eq(complexity_of("Run tests", 5), "medium");
    cr_assert_str_eq(complexity_of("Run tests", 6), "complex");
}

Test(detect, duration_range_boundaries)
{
    static const struct {
        int64_t ms;
        const char *range;
    } cases[] = {{0, "short"},       {179999, "short"}, {180000, "medium"},
                 {599999, "medium"}, {600000, "long"},  {100000000, "long"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pd_record_t rec = record_of("Run tests", NULL, NULL);
        rec.duration_ms = cases[i].ms;
        pd_detection_t det;
        detect(&rec, &det);
        cr_assert_str_eq(pd_duration_range_name(det.duration_range), cases[i].range, "%lld ms",
                         (long long)cases[i].ms);
        pd_detection_close(&det);
    }
}

Test(detect, characteristics_json_has_reference_key_order)
{
    pd_record_t rec = record_of("see app/server/x.py", "adw_test", NULL);
    rec.error_count = 4;
    rec.duration_ms = 200000;
    pd_detection_t det;
    detect(&rec, &det);
    pd_buf_t out = {0};
    pd_jsonw_characteristics(&out, &det, &rec);
    cr_assert_eq(out.failed, 0);
    json_t *obj = json_loadb(out.data, out.len, JSON_DECODE_ANY, NULL);
    cr_assert_not_null(obj, "%.*s", (int)out.len, out.data);
    pd_buf_close(&out);
    char *s = json_dumps(obj, JSON_COMPACT);
    cr_assert_str_eq(s, "{\"input_length\":19,\"keywords\":[\"server\"],"
                        "\"files_mentioned\":[\"app/server/x\",\"x.py\"],"
                        "\"duration_range\":\"medium\",\"complexity\":\"medium\","
                        "\"error_count\":4}");
    free(s);
    json_decref(obj);
    pd_detection_close(&det);
}

Test(detect, reused_detection_forgets_the_previous_record)
{
    pd_detection_t det;
    pd_detection_init(&det);
    pd_record_t first = record_of("Run pytest on a.py b.py c.py app/x/y", "adw_ship", "eslint");
    cr_assert_eq(pd_detect_record(&first, &det), 0);
    cr_assert_eq(det.n_patterns, 3);
    cr_assert_eq(det.n_files, 4);
    pd_record_t second = record_of(NULL, NULL, NULL);
    cr_assert_eq(pd_detect_record(&second, &det), 0);
    cr_assert_eq(det.n_patterns, 0);
    cr_assert_eq(det.n_files, 0);
    cr_assert_eq(det.keywords, 0);
    cr_assert_eq(det.input_length, 0);
    pd_detection_close(&det);
}
