/*
 * Pattern detection (docs/spec.md §2): the signatures and characteristics of one
 * workflow record, the stage between a parsed record and its output (a
 * `patternd detect` line, or the row a worker writes).
 *
 * Threads: none of its own.  Detection is pure; it runs on whichever thread
 * holds the record (main for `patternd detect`, a worker for ingest and the
 * service), each with its own pd_detection_t, which owns the scratch buffers
 * and the needle index and shares nothing.
 *
 * The reference is a few lines of Python: substring tests on
 * nl_input.lower(), one re.search(r'\ball\b'), six re.findall()s on the
 * original text, len() and str.split().  Matching it exactly in C comes down
 * to three things, each in a file of its own: this one holds the rules,
 * text.c the text machinery, files.c the file regexes.
 *
 * Unicode semantics.  Python lower-cases with the full case mapping, which
 * differs from the simple mapping utf8proc offers in one unconditional case:
 * U+0130 becomes "i" + U+0307 (final sigma is contextual in Python, but both
 * sigmas are letters that no rule looks for, so it cannot change a result).
 * len() counts code points; \w is a letter or number of any script, or '_';
 * str.split() splits on Unicode whitespace.  Those properties come from
 * utf8proc, not from tables of our own.
 *
 * Speed.  `patternd detect` must stay above 250,000 records a second on one
 * core, JSON included, so detection has a small part of a microsecond.
 * ASCII text (nearly all of it) never reaches utf8proc: it is lower-cased
 * and its words counted eight bytes at a time (pd__lower_ascii()), and \w
 * and whitespace have exact ASCII shortcuts.  The rules ask some 60
 * questions of the lower-cased nl_input and 24 of the template and error
 * message; asked one by one they cost microseconds, so pd__find_needles()
 * answers all the questions about one text in one pass, and the rules, which
 * read like docs/spec.md, only test bits.  Nothing is allocated per call: the
 * lower-cased texts and the file spans live in buffers of the
 * pd_detection_t that grow to the largest record seen.
 *
 * The file regexes: a literal search and a greedy walk each (files.c).
 */
#include "pd/detect.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "text.h"
#include "pd/error.h"

const char *const pd_detect_keywords[PD_KEYWORD_COUNT] = {
    "test",     "pytest", "vitest", "jest",    "build",  "typecheck", "compile",
    "format",   "lint",   "update", "install", "deploy", "run",       "backend",
    "frontend", "server", "client", "api",     "ui"};

/* ---- Needles: the substrings the rules look for ---------------------------- */

/*
 * Each list is written once: the enum names a needle, the table holds its
 * text.  In the lower-cased nl_input (§2.1, §2.5); the last five only tell
 * pd__find_files() which regexes can match at all.
 */
#define NL_NEEDLES(X)                                                                              \
    X(N_TEST, "test")                                                                              \
    X(N_PYTEST, "pytest")                                                                          \
    X(N_VITEST, "vitest")                                                                          \
    X(N_JEST, "jest")                                                                              \
    X(N_RUN_TESTS, "run tests")                                                                    \
    X(N_PY_TEST, "py.test")                                                                        \
    X(N_MOCHA, "mocha")                                                                            \
    X(N_BUILD, "build")                                                                            \
    X(N_COMPILE, "compile")                                                                        \
    X(N_TYPECHECK, "typecheck")                                                                    \
    X(N_TSC, "tsc")                                                                                \
    X(N_BUNDLE, "bundle")                                                                          \
    X(N_TYPE_CHECK, "type check")                                                                  \
    X(N_WEBPACK, "webpack")                                                                        \
    X(N_VITE, "vite")                                                                              \
    X(N_FORMAT, "format")                                                                          \
    X(N_PRETTIER, "prettier")                                                                      \
    X(N_BLACK, "black")                                                                            \
    X(N_LINT, "lint")                                                                              \
    X(N_ESLINT, "eslint")                                                                          \
    X(N_RUFF, "ruff")                                                                              \
    X(N_GIT_DIFF, "git diff")                                                                      \
    X(N_GIT_STATUS, "git status")                                                                  \
    X(N_GIT_LOG, "git log")                                                                        \
    X(N_DIFF, "diff")                                                                              \
    X(N_STATUS, "status")                                                                          \
    X(N_LOG, "log")                                                                                \
    X(N_UPDATE_DEPENDENCIES, "update dependencies")                                                \
    X(N_NPM_UPDATE, "npm update")                                                                  \
    X(N_NPM, "npm")                                                                                \
    X(N_PIP_INSTALL, "pip install")                                                                \
    X(N_PIP, "pip")                                                                                \
    X(N_INSTALL_PYTHON, "install python")                                                          \
    X(N_UPDATE_NPM, "update npm")                                                                  \
    X(N_PYTHON, "python")                                                                          \
    X(N_BUN, "bun")                                                                                \
    X(N_YARN, "yarn")                                                                              \
    X(N_GENERATE_DOCS, "generate docs")                                                            \
    X(N_UPDATE_README, "update readme")                                                            \
    X(N_DOCUMENTATION, "documentation")                                                            \
    X(N_README, "readme")                                                                          \
    X(N_BOTH, "both")                                                                              \
    X(N_TESTS, "tests")                                                                            \
    X(N_CODE, "code")                                                                              \
    X(N_FILES, "files")                                                                            \
    X(N_BACKEND, "backend")                                                                        \
    X(N_SERVER, "server")                                                                          \
    X(N_API, "api")                                                                                \
    X(N_FRONTEND, "frontend")                                                                      \
    X(N_CLIENT, "client")                                                                          \
    X(N_UI, "ui")                                                                                  \
    X(N_UPDATE, "update")                                                                          \
    X(N_INSTALL, "install")                                                                        \
    X(N_DEPLOY, "deploy")                                                                          \
    X(N_RUN, "run")                                                                                \
    X(N_APP_DIR, "app/")                                                                           \
    X(N_SRC_DIR, "src/")                                                                           \
    X(N_DOT_PY, ".py")                                                                             \
    X(N_DOT_TS, ".ts")                                                                             \
    X(N_DOT_JS, ".js")

/* In the lower-cased workflow_template (§2.1 target, §2.3) and error_message (§2.2). */
#define TE_NEEDLES(X)                                                                              \
    X(T_SERVER, "server")                                                                          \
    X(T_BACKEND, "backend")                                                                        \
    X(T_CLIENT, "client")                                                                          \
    X(T_FRONTEND, "frontend")                                                                      \
    X(T_TEST, "test")                                                                              \
    X(T_BUILD, "build")                                                                            \
    X(T_PLAN, "plan")                                                                              \
    X(T_SDLC, "sdlc")                                                                              \
    X(T_ZTE, "zte")                                                                                \
    X(T_PATCH, "patch")                                                                            \
    X(T_LIGHTWEIGHT, "lightweight")                                                                \
    X(T_SHIP, "ship")                                                                              \
    X(T_REVIEW, "review")                                                                          \
    X(E_TEST_FAILED, "test failed")                                                                \
    X(E_PYTEST, "pytest")                                                                          \
    X(E_TESTS_FAILED, "tests failed")                                                              \
    X(E_VITEST, "vitest")                                                                          \
    X(E_TYPE_ERROR, "type error")                                                                  \
    X(E_TYPECHECK, "typecheck")                                                                    \
    X(E_TSC, "tsc")                                                                                \
    X(E_COMPILATION, "compilation")                                                                \
    X(E_COMPILE_ERROR, "compile error")                                                            \
    X(E_ESLINT, "eslint")                                                                          \
    X(E_LINT, "lint")

#define NEEDLE_ENUM(name, text) name,
#define NEEDLE_TEXT(name, text) {text, sizeof(text) - 1},

enum nl_needle { NL_NEEDLES(NEEDLE_ENUM) NL_NEEDLE_COUNT };
enum te_needle { TE_NEEDLES(NEEDLE_ENUM) TE_NEEDLE_COUNT };

_Static_assert(NL_NEEDLE_COUNT <= 64 && TE_NEEDLE_COUNT <= 64, "a found set is a uint64_t");

static const struct needle nl_needles[NL_NEEDLE_COUNT] = {NL_NEEDLES(NEEDLE_TEXT)};
static const struct needle te_needles[TE_NEEDLE_COUNT] = {TE_NEEDLES(NEEDLE_TEXT)};

/*
 * The needle index of each list (8 KiB, more than the rest of a
 * pd_detection_t): allocated on a detection's first record, so that the
 * public struct need not show it.  A pointer costs nothing measurable:
 * pd__find_needles() reads the buckets through one either way.
 */
struct pd_detect_index {
    struct needle_index nl; /* in the lower-cased nl_input */
    struct needle_index te; /* in the lower-cased template and error message */
};

/* The needle behind each of pd_detect_keywords, in the same order. */
static const enum nl_needle keyword_needles[PD_KEYWORD_COUNT] = {
    N_TEST,     N_PYTEST, N_VITEST, N_JEST,    N_BUILD,  N_TYPECHECK, N_COMPILE,
    N_FORMAT,   N_LINT,   N_UPDATE, N_INSTALL, N_DEPLOY, N_RUN,       N_BACKEND,
    N_FRONTEND, N_SERVER, N_CLIENT, N_API,     N_UI};

/* A lower-cased text and the needles of its list that it contains. */
struct haystack {
    const char *s;
    size_t len;
    uint64_t found; /* bit n: needle n occurs */
};

static bool has(const struct haystack *h, int needle)
{
    return (h->found >> needle) & 1;
}

/* re.search(r'\ball\b', L): "all" with no \w on either side. */
static bool has_word_all(const struct haystack *h)
{
    for (size_t i = 0; (i = pd__find(h->s, h->len, i, "all", 3)) != NOT_FOUND; i++) {
        bool open = i == 0 || !pd__word_before(h->s, h->len, 0, i);
        bool close = i + 3 == h->len || !pd__word_at(h->s, h->len, i + 3);
        if (open && close)
            return true;
    }
    return false;
}

/* ---- Signatures (docs/spec.md §2.1-2.4) ---------------------------------------------- */

/* The target rule of §2.1; t is the lower-cased workflow_template. */
static const char *target_of(const struct haystack *l, const struct haystack *t)
{
    if (has(l, N_BOTH))
        return "both";
    if ((has(l, N_TESTS) || has(l, N_CODE) || has(l, N_FILES)) && has_word_all(l))
        return "all";
    if (has(l, N_BACKEND) || has(l, N_SERVER) || has(l, N_API))
        return "backend";
    if (has(l, N_FRONTEND) || has(l, N_CLIENT) || has(l, N_UI))
        return "frontend";
    if (has(t, T_SERVER) || has(t, T_BACKEND))
        return "backend";
    if (has(t, T_CLIENT) || has(t, T_FRONTEND))
        return "frontend";
    return "all";
}

/* out = "category:sub:target" (at most 24 bytes with docs/spec.md's words). */
static void signature(char out[PD_SIGNATURE_MAX], const char *category, const char *sub,
                      const char *target)
{
    const char *parts[3] = {category, sub, target};
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(parts[i]);
        if (i > 0)
            out[n++] = ':';
        memcpy(out + n, parts[i], len);
        n += len;
    }
    out[n] = '\0';
}

/* §2.1: the primary signature into out, or false when no category matches. */
static bool primary_signature(const struct haystack *l, const struct haystack *t,
                              char out[PD_SIGNATURE_MAX])
{
    const char *sub;
    if (has(l, N_TEST) || has(l, N_PYTEST) || has(l, N_VITEST) || has(l, N_JEST) ||
        has(l, N_RUN_TESTS)) {
        if (has(l, N_PYTEST) || has(l, N_PY_TEST))
            sub = "pytest";
        else if (has(l, N_VITEST))
            sub = "vitest";
        else if (has(l, N_JEST))
            sub = "jest";
        else if (has(l, N_MOCHA))
            sub = "mocha";
        else
            sub = "generic";
        signature(out, "test", sub, target_of(l, t));
        return true;
    }
    if (has(l, N_BUILD) || has(l, N_COMPILE) || has(l, N_TYPECHECK) || has(l, N_TSC) ||
        has(l, N_BUNDLE)) {
        if (has(l, N_TYPECHECK) || has(l, N_TSC) || has(l, N_TYPE_CHECK))
            sub = "typecheck";
        else if (has(l, N_COMPILE))
            sub = "compile";
        else if (has(l, N_BUNDLE) || has(l, N_WEBPACK) || has(l, N_VITE))
            sub = "bundle";
        else
            sub = "build";
        signature(out, "build", sub, target_of(l, t));
        return true;
    }
    if (has(l, N_FORMAT) || has(l, N_PRETTIER) || has(l, N_BLACK) || has(l, N_LINT)) {
        if (has(l, N_PRETTIER))
            sub = "prettier";
        else if (has(l, N_BLACK))
            sub = "black";
        else if (has(l, N_ESLINT))
            sub = "eslint";
        else if (has(l, N_RUFF))
            sub = "ruff";
        else
            sub = "generic";
        signature(out, "format", sub, "all");
        return true;
    }
    if (has(l, N_GIT_DIFF) || has(l, N_GIT_STATUS) || has(l, N_GIT_LOG)) {
        if (has(l, N_DIFF))
            sub = "diff";
        else if (has(l, N_STATUS))
            sub = "status";
        else if (has(l, N_LOG))
            sub = "log";
        else
            sub = "generic";
        signature(out, "git", sub, "summary");
        return true;
    }
    if (has(l, N_UPDATE_DEPENDENCIES) || has(l, N_NPM_UPDATE) || has(l, N_NPM) ||
        has(l, N_PIP_INSTALL) || has(l, N_PIP) || has(l, N_INSTALL_PYTHON) ||
        has(l, N_UPDATE_NPM)) {
        if (has(l, N_NPM))
            sub = "npm";
        else if (has(l, N_PIP) || has(l, N_PYTHON))
            sub = "pip";
        else if (has(l, N_BUN))
            sub = "bun";
        else if (has(l, N_YARN))
            sub = "yarn";
        else
            sub = "generic";
        signature(out, "deps", sub, "update");
        return true;
    }
    if (has(l, N_GENERATE_DOCS) || has(l, N_UPDATE_README) || has(l, N_DOCUMENTATION) ||
        has(l, N_README)) {
        signature(out, "docs", "generate", "all");
        return true;
    }
    return false;
}

/* §2.3: the signature of the lower-cased, non-empty template t, or NULL. */
static const char *template_signature(const struct haystack *t)
{
    if (has(t, T_TEST))
        return "test:generic:all";
    if (has(t, T_BUILD))
        return "build:generic:all";
    if (has(t, T_PLAN) || has(t, T_SDLC) || has(t, T_ZTE) || has(t, T_PATCH) ||
        has(t, T_LIGHTWEIGHT))
        return NULL;
    if (has(t, T_SHIP))
        return "deploy:ship:all";
    if (has(t, T_REVIEW))
        return "review:code:all";
    return NULL;
}

/* §2.4: appends sig unless the list holds it already. */
static void add_pattern(pd_detection_t *det, const char *sig)
{
    for (int i = 0; i < det->n_patterns; i++)
        if (strcmp(det->patterns[i], sig) == 0)
            return;
    /* One primary, five error and one template signature fit by construction. */
    if (det->n_patterns < PD_MAX_PATTERNS)
        strcpy(det->patterns[det->n_patterns++], sig);
}

/* §2.1-2.4 from the lower-cased nl_input l, template t and error message e. */
static void detect_signatures(pd_detection_t *det, const struct haystack *l,
                              const struct haystack *t, const struct haystack *e)
{
    char primary[PD_SIGNATURE_MAX];
    det->n_patterns = 0;
    if (primary_signature(l, t, primary))
        add_pattern(det, primary);
    if (e->len > 0) {
        if (has(e, E_TEST_FAILED) || has(e, E_PYTEST) || has(e, E_TESTS_FAILED))
            add_pattern(det, "test:pytest:backend");
        if (has(e, E_VITEST))
            add_pattern(det, "test:vitest:frontend");
        if (has(e, E_TYPE_ERROR) || has(e, E_TYPECHECK) || has(e, E_TSC))
            add_pattern(det, "build:typecheck:backend");
        if (has(e, E_COMPILATION) || has(e, E_COMPILE_ERROR))
            add_pattern(det, "build:compile:backend");
        if (has(e, E_ESLINT) || has(e, E_LINT))
            add_pattern(det, "format:eslint:all");
    }
    if (t->len > 0) {
        const char *sig = template_signature(t);
        if (sig != NULL)
            add_pattern(det, sig);
    }
}

/* ---- Lower-casing the three texts ------------------------------------------ */

/* The index, built on a detection's first record; NULL when memory ran out. */
static struct pd_detect_index *index_create(void)
{
    struct pd_detect_index *index = malloc(sizeof(*index));
    if (index == NULL)
        return NULL;
    pd__needle_index_init(&index->nl, nl_needles, NL_NEEDLE_COUNT);
    pd__needle_index_init(&index->te, te_needles, TE_NEEDLE_COUNT);
    return index;
}

/*
 * Lower-cases nl_input, workflow_template and error_message (null reads as
 * "", as in the reference) side by side into det->lower, each NUL-terminated,
 * and finds their needles.  Also counts nl_input's code points into
 * det->input_length and its words into *words.  Returns 0 or PD_ENOMEM.
 */
static int lower_texts(const pd_record_t *rec, pd_detection_t *det, struct haystack lowered[3],
                       int64_t *words)
{
    const pd_text_t *fields[3] = {&rec->nl_input, &rec->workflow_template, &rec->error_message};
    const char *text[3];
    size_t len[3], size[3];
    bool ascii[3];
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        text[i] = fields[i]->ptr != NULL ? fields[i]->ptr : "";
        len[i] = fields[i]->ptr != NULL ? fields[i]->len : 0;
        ascii[i] = pd__is_ascii(text[i], len[i]);
        size[i] = ascii[i] ? len[i] : pd__lowered_size(text[i], len[i]);
        total += size[i] + 1;
    }
    if (pd__reserve((void **)&det->lower, &det->lower_cap, total, 1) != 0)
        return PD_ENOMEM;

    char *out = det->lower;
    for (int i = 0; i < 3; i++) {
        size_t n = len[i];
        if (ascii[i]) {
            int64_t w = pd__lower_ascii(text[i], len[i], out);
            if (i == 0) {
                det->input_length = (int64_t)len[0];
                *words = w;
            }
        } else {
            n = pd__lower_unicode(text[i], len[i], out);
            if (i == 0)
                pd__count_unicode(text[0], len[0], &det->input_length, words);
        }
        out[n] = '\0';
        const struct needle_index *index = i == 0 ? &det->index->nl : &det->index->te;
        lowered[i] = (struct haystack){out, n, pd__find_needles(index, out, n)};
        out += n + 1;
    }
    return 0;
}

/* ---- The module's interface -------------------------------------------------- */

void pd_detection_init(pd_detection_t *det)
{
    memset(det, 0, sizeof(*det));
}

void pd_detection_close(pd_detection_t *det)
{
    free(det->files);
    free(det->lower);
    free(det->index);
    memset(det, 0, sizeof(*det));
}

/* §2.5 but files_mentioned, from the lower-cased nl_input l and its word count. */
static void characterise(pd_detection_t *det, const pd_record_t *rec, const struct haystack *l,
                         int64_t words)
{
    det->keywords = 0;
    for (int i = 0; i < PD_KEYWORD_COUNT; i++)
        if (has(l, keyword_needles[i]))
            det->keywords |= UINT32_C(1) << i;
    det->duration_range = rec->duration_ms < 180000   ? PD_DURATION_SHORT
                          : rec->duration_ms < 600000 ? PD_DURATION_MEDIUM
                                                      : PD_DURATION_LONG;
    det->error_count = rec->error_count;
    if (words < 50 && det->error_count < 3)
        det->complexity = PD_COMPLEXITY_SIMPLE;
    else if (words > 200 || det->error_count > 5)
        det->complexity = PD_COMPLEXITY_COMPLEX;
    else
        det->complexity = PD_COMPLEXITY_MEDIUM;
}

int pd_detect_record(const pd_record_t *rec, pd_detection_t *det)
{
    if (det->index == NULL && (det->index = index_create()) == NULL)
        return PD_ENOMEM;

    struct haystack lowered[3];
    int64_t words = 0;
    if (lower_texts(rec, det, lowered, &words) != 0)
        return PD_ENOMEM;
    const struct haystack *l = &lowered[0], *t = &lowered[1], *e = &lowered[2];

    detect_signatures(det, l, t, e);
    characterise(det, rec, l, words);

    /* The file regexes whose literal the lower-cased nl_input holds. */
    unsigned candidates =
        (has(l, N_APP_DIR) ? FILES_APP_DIR : 0) | (has(l, N_TEST) ? FILES_TEST : 0) |
        (has(l, N_SRC_DIR) ? FILES_SRC_DIR : 0) | (has(l, N_DOT_PY) ? FILES_DOT_PY : 0) |
        (has(l, N_DOT_TS) ? FILES_DOT_TS : 0) | (has(l, N_DOT_JS) ? FILES_DOT_JS : 0);
    const char *nl = rec->nl_input.ptr != NULL ? rec->nl_input.ptr : "";
    return pd__find_files(det, nl, rec->nl_input.len, candidates);
}

const char *pd_duration_range_name(pd_duration_range_t r)
{
    switch (r) {
    case PD_DURATION_SHORT:
        return "short";
    case PD_DURATION_MEDIUM:
        return "medium";
    case PD_DURATION_LONG:
        return "long";
    }
    return "?";
}

const char *pd_complexity_name(pd_complexity_t c)
{
    switch (c) {
    case PD_COMPLEXITY_SIMPLE:
        return "simple";
    case PD_COMPLEXITY_MEDIUM:
        return "medium";
    case PD_COMPLEXITY_COMPLEX:
        return "complex";
    }
    return "?";
}
