/*
 * Pattern detection (SPEC §2): the signatures and characteristics of one
 * workflow record.
 *
 * The reference is a few lines of Python: substring tests on
 * nl_input.lower(), one re.search(r'\ball\b'), six re.findall()s on the
 * original text, len() and str.split().  Matching it exactly in C comes down
 * to three things.
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
 * and its words counted eight bytes at a time (lower_ascii()), and \w and
 * whitespace have exact ASCII shortcuts.  The rules ask some 60 questions of
 * the lower-cased nl_input and 24 of the template and error message; asked
 * one by one they cost microseconds, so find_needles() answers all the
 * questions about one text in one pass, and the rules, which read like the
 * SPEC, only test bits.  Nothing is allocated per call: the lower-cased
 * texts and the file spans live in buffers of the pd_detection_t that grow
 * to the largest record seen.
 *
 * The file regexes.  In each of them \w can never match the literal that
 * follows it ('/' or '.'), so Python's backtracking has at most one way to
 * match from a given start.  Each regex is therefore a literal search
 * followed by a greedy walk (scan_prefixed(), scan_extension()), with
 * re.findall's resumption at the end of every match.
 */
#define _GNU_SOURCE /* qsort_r */
#include "pd/detect.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "pd/error.h"

#define NOT_FOUND SIZE_MAX

const char *const pd_detect_keywords[PD_KEYWORD_COUNT] = {
    "test",     "pytest", "vitest", "jest",    "build",  "typecheck", "compile",
    "format",   "lint",   "update", "install", "deploy", "run",       "backend",
    "frontend", "server", "client", "api",     "ui"};

/* ---- Needles: the substrings the rules look for ---------------------------- */

/*
 * Each list is written once: the enum names a needle, the table holds its
 * text.  In the lower-cased nl_input (§2.1, §2.5); the last five only tell
 * find_files() which regexes can match at all.
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
#define NEEDLE_IF_SHORT(name, text) (sizeof(text) - 1 < 3 ? UINT64_C(1) << name : 0) |

enum nl_needle { NL_NEEDLES(NEEDLE_ENUM) NL_NEEDLE_COUNT };
enum te_needle { TE_NEEDLES(NEEDLE_ENUM) TE_NEEDLE_COUNT };

_Static_assert(NL_NEEDLE_COUNT <= 64 && TE_NEEDLE_COUNT <= 64, "a found set is a uint64_t");

struct needle {
    const char *text;
    size_t len;
};

static const struct needle nl_needles[NL_NEEDLE_COUNT] = {NL_NEEDLES(NEEDLE_TEXT)};
static const struct needle te_needles[TE_NEEDLE_COUNT] = {TE_NEEDLES(NEEDLE_TEXT)};

/* The two lists, in the order of pd_detection_t.needle_index. */
enum { NL_LIST, TE_LIST };
static const struct {
    const struct needle *needles;
    int count;
    uint64_t short_ones; /* the needles of fewer than three bytes */
} needle_lists[2] = {
    [NL_LIST] = {nl_needles, NL_NEEDLE_COUNT, NL_NEEDLES(NEEDLE_IF_SHORT) 0},
    [TE_LIST] = {te_needles, TE_NEEDLE_COUNT, TE_NEEDLES(NEEDLE_IF_SHORT) 0},
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

/* ---- Bytes and code points --------------------------------------------------- */

/* \w among ASCII: [A-Za-z0-9_]. */
static bool ascii_word(unsigned char c)
{
    return (unsigned)((c | 0x20) - 'a') < 26 || (unsigned)(c - '0') < 10 || c == '_';
}

/*
 * Python's str.split() whitespace among ASCII: \t \n \v \f \r, the four
 * separators U+001C-U+001F and the space (what utf8proc says of them too;
 * tests/test_detect.c checks that).
 */
static bool ascii_space(unsigned char c)
{
    return c == ' ' || (unsigned)(c - '\t') < 5 || (unsigned)(c - 0x1c) < 4;
}

/* Python's \w: Unicode letters and numbers (L*, Nd, Nl, No) and '_'. */
static bool is_word(int32_t cp)
{
    if (cp < 0)
        return false;
    if (cp < 0x80)
        return ascii_word((unsigned char)cp);
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return true;
    default:
        return false;
    }
}

/* Python's str.isspace(): bidi class WS, B or S, or category Zs. */
static bool is_space(int32_t cp)
{
    if (cp < 0)
        return false;
    if (cp < 0x80)
        return ascii_space((unsigned char)cp);
    const utf8proc_property_t *p = utf8proc_get_property(cp);
    return p->bidi_class == UTF8PROC_BIDI_CLASS_WS || p->bidi_class == UTF8PROC_BIDI_CLASS_B ||
           p->bidi_class == UTF8PROC_BIDI_CLASS_S || p->category == UTF8PROC_CATEGORY_ZS;
}

/*
 * Decodes the code point at s[i] (i < len) into *cp and returns its length in
 * bytes.  Records hold valid UTF-8; should a byte be invalid anyway, it is
 * taken alone as the code point -1, which is neither \w nor whitespace.
 */
static size_t decode(const char *s, size_t len, size_t i, int32_t *cp)
{
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    utf8proc_ssize_t n =
        utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), cp);
    if (n < 1) {
        *cp = -1;
        return 1;
    }
    return (size_t)n;
}

/* The start of the code point that ends at s[i - 1], not before lo (< i). */
static size_t prev_start(const char *s, size_t lo, size_t i)
{
    size_t j = i - 1;
    while (j > lo && ((unsigned char)s[j] & 0xc0) == 0x80)
        j--;
    return j;
}

/* Is the code point at s[i] (i < len) a \w? */
static bool word_at(const char *s, size_t len, size_t i)
{
    int32_t cp;
    decode(s, len, i, &cp);
    return is_word(cp);
}

/* Is the code point that ends at s[i - 1] (lo < i) a \w? */
static bool word_before(const char *s, size_t len, size_t lo, size_t i)
{
    int32_t cp;
    size_t j = prev_start(s, lo, i);
    return decode(s, len, j, &cp) == i - j && is_word(cp);
}

/* ---- Lower-casing and counting --------------------------------------------- */

/*
 * Eight bytes at a time ("SWAR"): a uint64_t holds eight bytes of text, and
 * a flag set is a uint64_t with 0x80 in the bytes flagged.
 */
#define ONES UINT64_C(0x0101010101010101)
#define HIGH_BITS (ONES * 0x80)

/* The bytes of w (all ASCII) within [lo, hi]: no sum below carries into the next byte. */
static uint64_t bytes_between(uint64_t w, unsigned lo, unsigned hi)
{
    return (w + ONES * (0x80 - lo)) & ~(w + ONES * (0x7f - hi)) & HIGH_BITS;
}

/* Each flag moved to the byte after it in the text; the first byte gets the last of prev. */
static uint64_t flags_of_previous_bytes(uint64_t flags, uint64_t prev)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return flags >> 8 | prev << 56;
#else
    return flags << 8 | prev >> 56;
#endif
}

static bool is_ascii(const char *s, size_t len)
{
    uint64_t any = 0;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        any |= w;
    }
    for (; i < len; i++)
        any |= (unsigned char)s[i];
    return (any & HIGH_BITS) == 0;
}

/* How many flags are set: each becomes a 1 in its byte, and the product sums the bytes. */
static int count_flags(uint64_t flags)
{
    return (int)(((flags >> 7) * ONES) >> 56);
}

/*
 * Lower-cases eight ASCII bytes in place and returns how many words start
 * among them: a byte that is not whitespace and follows whitespace.
 * *prev_space holds the whitespace flags of the previous eight.
 */
static int lower_group(uint64_t *w, uint64_t *prev_space)
{
    uint64_t space = bytes_between(*w, '\t', '\r') | bytes_between(*w, 0x1c, ' ');
    uint64_t starts = ~space & HIGH_BITS & flags_of_previous_bytes(space, *prev_space);
    *prev_space = space;
    *w |= bytes_between(*w, 'A', 'Z') >> 2; /* 0x80 >> 2 is the case bit */
    return count_flags(starts);
}

/*
 * Writes s.lower() of the ASCII text s to out (len bytes) and returns
 * len(s.split()), eight bytes at a time.  The last, short group is padded
 * with spaces, which start no word.
 */
static int64_t lower_ascii(const char *s, size_t len, char *out)
{
    int64_t words = 0;
    uint64_t prev_space = HIGH_BITS; /* the start counts as whitespace */
    uint64_t w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, s + i, 8);
        words += lower_group(&w, &prev_space);
        memcpy(out + i, &w, 8);
    }
    if (i < len) {
        char group[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
        memcpy(group, s + i, len - i);
        memcpy(&w, group, 8);
        words += lower_group(&w, &prev_space);
        memcpy(group, &w, 8);
        memcpy(out + i, group, len - i);
    }
    return words;
}

static size_t utf8_size(int32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/* Python's lower() of one code point other than U+0130, which becomes two. */
static int32_t lower_code_point(int32_t cp)
{
    if (cp < 0x80)
        return cp + ((unsigned)(cp - 'A') < 26 ? 'a' - 'A' : 0);
    return utf8proc_tolower(cp);
}

/* Bytes of s.lower() of a text that is not all ASCII. */
static size_t lowered_size(const char *s, size_t len)
{
    size_t size = 0;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        i += decode(s, len, i, &cp);
        if (cp < 0)
            size += 1;
        else if (cp == 0x130)
            size += 3;
        else
            size += utf8_size(lower_code_point(cp));
    }
    return size;
}

/* Writes s.lower() to out (lowered_size() bytes) and returns its length. */
static size_t lower_unicode(const char *s, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        size_t step = decode(s, len, i, &cp);
        if (cp < 0) {
            out[n++] = s[i];
        } else if (cp == 0x130) {
            /* LATIN CAPITAL LETTER I WITH DOT ABOVE: "i" + COMBINING DOT ABOVE. */
            memcpy(out + n, "i\xcc\x87", 3);
            n += 3;
        } else if (cp < 0x80) {
            out[n++] = (char)lower_code_point(cp);
        } else {
            n += (size_t)utf8proc_encode_char(lower_code_point(cp), (utf8proc_uint8_t *)out + n);
        }
        i += step;
    }
    return n;
}

/* len(s) and len(s.split()) of a text that is not all ASCII. */
static void count_unicode(const char *s, size_t len, int64_t *code_points, int64_t *words)
{
    int64_t cps = 0, n = 0;
    bool in_space = true;
    for (size_t i = 0; i < len; cps++) {
        int32_t cp;
        i += decode(s, len, i, &cp);
        bool space = is_space(cp);
        n += in_space && !space;
        in_space = space;
    }
    *code_points = cps;
    *words = n;
}

/* ---- Finding needles --------------------------------------------------------- */

/*
 * Is the needle (n bytes) at the start of s (len bytes)?  Needles are short:
 * a loop costs less than a call to memcmp.
 */
static bool starts_with(const char *s, size_t len, const char *needle, size_t n)
{
    if (n > len)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] != needle[i])
            return false;
    return true;
}

/* The offset of the first needle (n > 0 bytes) in s at or after from, or NOT_FOUND. */
static size_t find(const char *s, size_t len, size_t from, const char *needle, size_t n)
{
    if (from > len || len - from < n)
        return NOT_FOUND;
    const char *p = s + from;
    const char *last = s + (len - n); /* the last place the needle could start */
    while (p <= last) {
        p = memchr(p, needle[0], (size_t)(last - p) + 1);
        if (p == NULL)
            return NOT_FOUND;
        if (starts_with(p + 1, n - 1, needle + 1, n - 1))
            return (size_t)(p - s);
        p++;
    }
    return NOT_FOUND;
}

/* The three bytes at p as one number; p[3] must be readable (a NUL will do). */
static uint32_t trigram(const char *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return w >> 8;
#else
    return w & 0xffffff;
#endif
}

/* Fibonacci hashing: the top bits of the product are well mixed. */
static unsigned trigram_bucket(uint32_t key)
{
    _Static_assert(PD_NEEDLE_BUCKETS == 256, "the shift below keeps 8 bits");
    return (key * UINT32_C(0x9e3779b1)) >> 24;
}

/*
 * Files each needle of three bytes or more under the hash of its first
 * three.  A bucket remembers those bytes, so that at a position of a text
 * whose bytes differ there is nothing more to do.  When needles that start
 * differently share a bucket, it compares no bits and all of them are tried;
 * an empty bucket's key is no three bytes at all.
 */
static void build_needle_index(pd_detection_t *det)
{
    for (int list = 0; list < 2; list++) {
        pd_needle_bucket_t *index = det->needle_index[list];
        for (int b = 0; b < PD_NEEDLE_BUCKETS; b++)
            index[b] = (pd_needle_bucket_t){UINT32_MAX, UINT32_MAX, 0};
        for (int n = 0; n < needle_lists[list].count; n++) {
            const struct needle *needle = &needle_lists[list].needles[n];
            if (needle_lists[list].short_ones & (UINT64_C(1) << n))
                continue;
            uint32_t key = trigram(needle->text);
            pd_needle_bucket_t *b = &index[trigram_bucket(key)];
            if (b->needles == 0)
                b->key = key;
            else if (b->key != key)
                b->key_mask = 0;
            b->needles |= UINT64_C(1) << n;
        }
    }
    det->needle_index_built = 1;
}

/*
 * The needles of a list that occur in s (NUL-terminated), as a set.  One
 * pass finds the long ones: at each position of s, only the needles filed
 * under its next three bytes are compared.  The short ones ("ui") would need
 * every bucket, so each gets a search of its own.
 */
static uint64_t find_needles(const pd_detection_t *det, int list, const char *s, size_t len)
{
    const pd_needle_bucket_t *index = det->needle_index[list];
    const struct needle *needles = needle_lists[list].needles;
    uint64_t found = 0;
    for (size_t i = 0; i + 2 < len; i++) {
        uint32_t key = trigram(s + i);
        const pd_needle_bucket_t *b = &index[trigram_bucket(key)];
        if (((key ^ b->key) & b->key_mask) != 0)
            continue;
        size_t known = b->key_mask != 0 ? 3 : 0; /* bytes already compared */
        for (uint64_t candidates = b->needles & ~found; candidates != 0;
             candidates &= candidates - 1) {
            int n = __builtin_ctzll(candidates);
            if (starts_with(s + i + known, len - i - known, needles[n].text + known,
                            needles[n].len - known))
                found |= UINT64_C(1) << n;
        }
    }
    for (uint64_t short_ones = needle_lists[list].short_ones; short_ones != 0;
         short_ones &= short_ones - 1) {
        int n = __builtin_ctzll(short_ones);
        if (find(s, len, 0, needles[n].text, needles[n].len) != NOT_FOUND)
            found |= UINT64_C(1) << n;
    }
    return found;
}

/* re.search(r'\ball\b', L): "all" with no \w on either side. */
static bool has_word_all(const struct haystack *h)
{
    for (size_t i = 0; (i = find(h->s, h->len, i, "all", 3)) != NOT_FOUND; i++) {
        bool open = i == 0 || !word_before(h->s, h->len, 0, i);
        bool close = i + 3 == h->len || !word_at(h->s, h->len, i + 3);
        if (open && close)
            return true;
    }
    return false;
}

/* ---- Signatures (SPEC §2.1-2.4) ---------------------------------------------- */

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

/* out = "category:sub:target" (at most 24 bytes with the SPEC's words). */
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

/* ---- Files mentioned (SPEC §2.5) --------------------------------------------- */

static int reserve(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap < 32 ? 32 : *cap;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    if (n > SIZE_MAX / elem)
        return PD_ENOMEM;
    void *p = realloc(*buf, n * elem);
    if (p == NULL)
        return PD_ENOMEM;
    *buf = p;
    *cap = n;
    return 0;
}

static int add_file(pd_detection_t *det, size_t off, size_t len)
{
    if (reserve((void **)&det->files, &det->files_cap, det->n_files + 1, sizeof(pd_span_t)) != 0)
        return PD_ENOMEM;
    det->files[det->n_files++] = (pd_span_t){off, len};
    return 0;
}

/* Past the run of \w (and '/' when slash) that starts at s[i]. */
static size_t skip_word(const char *s, size_t len, size_t i, bool slash)
{
    while (i < len) {
        int32_t cp;
        size_t n = decode(s, len, i, &cp);
        if (!is_word(cp) && !(slash && cp == '/'))
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
    while ((at = find(s, len, pos, literal, 4)) != NOT_FOUND) {
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
    while ((dot = find(s, len, pos, ext, 3)) != NOT_FOUND) {
        size_t start = dot;
        while (start > pos && word_before(s, len, pos, start))
            start = prev_start(s, pos, start);
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
 * and a lower-case ASCII literal in s is also in the lower-cased l, whose
 * needles are known already: most records mention no file and skip them all.
 */
static int find_files(pd_detection_t *det, const char *s, size_t len, const struct haystack *l)
{
    det->n_files = 0;
    if ((has(l, N_APP_DIR) && scan_prefixed(det, s, len, "app/", app_tail) != 0) ||
        (has(l, N_TEST) && scan_prefixed(det, s, len, "test", tests_tail) != 0) ||
        (has(l, N_SRC_DIR) && scan_prefixed(det, s, len, "src/", src_tail) != 0) ||
        (has(l, N_DOT_PY) && scan_extension(det, s, len, ".py") != 0) ||
        (has(l, N_DOT_TS) && scan_extension(det, s, len, ".ts") != 0) ||
        (has(l, N_DOT_JS) && scan_extension(det, s, len, ".js") != 0))
        return PD_ENOMEM;
    sort_unique_files(det, s);
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
    memset(det, 0, sizeof(*det));
}

int pd_detect_record(const pd_record_t *rec, pd_detection_t *det)
{
    if (!det->needle_index_built)
        build_needle_index(det);

    /* nl_input, workflow_template, error_message; null reads as "", as in the reference. */
    const pd_text_t *fields[3] = {&rec->nl_input, &rec->workflow_template, &rec->error_message};
    const char *text[3];
    size_t len[3], size[3];
    bool ascii[3];
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        text[i] = fields[i]->ptr != NULL ? fields[i]->ptr : "";
        len[i] = fields[i]->ptr != NULL ? fields[i]->len : 0;
        ascii[i] = is_ascii(text[i], len[i]);
        size[i] = ascii[i] ? len[i] : lowered_size(text[i], len[i]);
        total += size[i] + 1;
    }
    if (reserve((void **)&det->lower, &det->lower_cap, total, 1) != 0)
        return PD_ENOMEM;

    /* The three lower-cased texts side by side in det->lower, each NUL-terminated. */
    struct haystack lowered[3];
    int64_t words = 0;
    char *out = det->lower;
    for (int i = 0; i < 3; i++) {
        size_t n = len[i];
        if (ascii[i]) {
            int64_t w = lower_ascii(text[i], len[i], out);
            if (i == 0) {
                det->input_length = (int64_t)len[0];
                words = w;
            }
        } else {
            n = lower_unicode(text[i], len[i], out);
            if (i == 0)
                count_unicode(text[0], len[0], &det->input_length, &words);
        }
        out[n] = '\0';
        lowered[i] =
            (struct haystack){out, n, find_needles(det, i == 0 ? NL_LIST : TE_LIST, out, n)};
        out += n + 1;
    }
    const struct haystack *l = &lowered[0], *t = &lowered[1], *e = &lowered[2];

    detect_signatures(det, l, t, e);

    det->keywords = 0;
    for (int i = 0; i < PD_KEYWORD_COUNT; i++)
        if (has(l, keyword_needles[i]))
            det->keywords |= UINT32_C(1) << i;
    if (find_files(det, text[0], len[0], l) != 0)
        return PD_ENOMEM;
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
    return 0;
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
