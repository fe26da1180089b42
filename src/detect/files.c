/*
 * files_mentioned (docs/spec.md §2.5): the reference's six re.findall()s on the
 * original nl_input, without a regex engine.
 *
 * In each of the regexes \w can never match the literal that follows it
 * ('/' or '.'), so Python's backtracking has at most one way to match from a
 * given start.  Each regex is therefore a literal search followed by a
 * greedy walk (scan_prefixed(), scan_extension()), with re.findall's
 * resumption at the end of every match.  The matches are byte ranges of the
 * text, kept in det->files, sorted and without duplicates as sorted(set())
 * would leave them.
 */
#define _GNU_SOURCE /* qsort_r */
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "text.h"
#include "pd/error.h"

static int add_file(pd_detection_t *det, size_t off, size_t len)
{
    if (pd__reserve((void **)&det->files, &det->files_cap, det->n_files + 1, sizeof(pd_span_t)) !=
        0)
        return PD_ENOMEM;
    det->files[det->n_files++] = (pd_span_t){off, len};
    return 0;
}

/* Past the run of \w (and '/' when slash) that starts at s[i]. */
static size_t skip_word(const char *s, size_t len, size_t i, bool slash)
{
    while (i < len) {
        int32_t cp;
        size_t n = pd_utf8_decode(s + i, len - i, &cp);
        if (!pd__is_word(cp) && !(slash && cp == '/'))
            break;
        i += n;
    }
    return i;
}

/* app/\w+/[\w/]* past its "app/" (which ends at s[i - 1]): the match's end or NOT_FOUND. */
static size_t app_tail(const char *s, size_t len, size_t i)
{
    size_t j = skip_word(s, len, i, false);
    if (j == i || j == len || s[j] != '/')
        return NOT_FOUND;
    return skip_word(s, len, j + 1, true);
}

/* tests?/[\w/]* past its "test". */
static size_t tests_tail(const char *s, size_t len, size_t i)
{
    if (len - i >= 2 && s[i] == 's' && s[i + 1] == '/')
        return skip_word(s, len, i + 2, true);
    if (len - i >= 1 && s[i] == '/')
        return skip_word(s, len, i + 1, true);
    return NOT_FOUND;
}

/* src/[\w/]* past its "src/". */
static size_t src_tail(const char *s, size_t len, size_t i)
{
    return skip_word(s, len, i, true);
}

/*
 * re.findall for a regex that starts with a 4-byte literal: every occurrence
 * of the literal is a candidate start, tail() says where a match from it
 * ends, and the search resumes after a match or one byte after a failed
 * candidate (the literal is ASCII, so it never starts inside a code point).
 */
static int scan_prefixed(pd_detection_t *det, const char *s, size_t len, const char literal[4],
                         size_t (*tail)(const char *, size_t, size_t))
{
    size_t pos = 0, at;
    while ((at = pd__find(s, len, pos, literal, 4)) != NOT_FOUND) {
        size_t end = tail(s, len, at + 4);
        if (end == NOT_FOUND) {
            pos = at + 1;
            continue;
        }
        if (add_file(det, at, end - at) != 0)
            return PD_ENOMEM;
        pos = end;
    }
    return 0;
}

/*
 * re.findall(r'\w+\.ext'): a match is the run of \w that ends right before an
 * occurrence of ".ext", cut at where the search resumed.  Runs before
 * successive occurrences cannot overlap ('.' is not \w), so the first
 * occurrence with a non-empty run gives the leftmost match.
 */
static int scan_extension(pd_detection_t *det, const char *s, size_t len, const char ext[3])
{
    size_t pos = 0, dot;
    while ((dot = pd__find(s, len, pos, ext, 3)) != NOT_FOUND) {
        size_t start = dot;
        while (start > pos && pd__word_before(s, len, pos, start))
            start = pd__prev_start(s, pos, start);
        if (start == dot) {
            pos = dot + 1;
            continue;
        }
        if (add_file(det, start, dot + 3 - start) != 0)
            return PD_ENOMEM;
        pos = dot + 3;
    }
    return 0;
}

/* Orders spans of one text by content: UTF-8 byte order is code point order. */
static int compare_spans(const void *a, const void *b, void *text)
{
    const pd_span_t *x = a, *y = b;
    const char *s = text;
    int c = memcmp(s + x->off, s + y->off, x->len < y->len ? x->len : y->len);
    if (c != 0)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* sorted(set(files)) over the spans found. */
static void sort_unique_files(pd_detection_t *det, const char *s)
{
    if (det->n_files < 2)
        return;
    qsort_r(det->files, det->n_files, sizeof(pd_span_t), compare_spans, (void *)s);
    size_t n = 1;
    for (size_t i = 1; i < det->n_files; i++)
        if (compare_spans(&det->files[n - 1], &det->files[i], (void *)s) != 0)
            det->files[n++] = det->files[i];
    det->n_files = n;
}

/*
 * The six regexes, on the original text s.  Each needs its literal in s,
 * and a lower-case ASCII literal in s is also in the lower-cased text, whose
 * needles the caller knows already: most records mention no file and skip
 * them all.
 */
int pd__find_files(pd_detection_t *det, const char *s, size_t len, unsigned candidates)
{
    det->n_files = 0;
    if (((candidates & FILES_APP_DIR) && scan_prefixed(det, s, len, "app/", app_tail) != 0) ||
        ((candidates & FILES_TEST) && scan_prefixed(det, s, len, "test", tests_tail) != 0) ||
        ((candidates & FILES_SRC_DIR) && scan_prefixed(det, s, len, "src/", src_tail) != 0) ||
        ((candidates & FILES_DOT_PY) && scan_extension(det, s, len, ".py") != 0) ||
        ((candidates & FILES_DOT_TS) && scan_extension(det, s, len, ".ts") != 0) ||
        ((candidates & FILES_DOT_JS) && scan_extension(det, s, len, ".js") != 0))
        return PD_ENOMEM;
    sort_unique_files(det, s);
    return 0;
}
