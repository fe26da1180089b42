/*
 * Text for the detector (private to src/detect/, defined by text.c): the
 * character classes and substring search, lower-casing and counting, and
 * the needle index that answers all of a text's substring questions in one
 * pass.  See detect.c for the design.
 *
 * The small character tests are inline here: the file scanner (files.c)
 * asks them of every character of a path, and a call each would show in
 * the benchmark.
 */
#ifndef PD_DETECT_TEXT_H
#define PD_DETECT_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <utf8proc.h>

#include "pd/detect.h"
#include "pd/utf8.h"

#define NOT_FOUND SIZE_MAX

/* ---- Character classes (inline) ---------------------------------------------- */

/* \w among ASCII: [A-Za-z0-9_]. */
static inline bool pd__ascii_word(unsigned char c)
{
    return (unsigned)((c | 0x20) - 'a') < 26 || (unsigned)(c - '0') < 10 || c == '_';
}

/* Python's \w: Unicode letters and numbers (L*, Nd, Nl, No) and '_'; -1 is not. */
static inline bool pd__is_word(int32_t cp)
{
    if (cp < 0)
        return false;
    if (cp < 0x80)
        return pd__ascii_word((unsigned char)cp);
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

/*
 * The start of the code point that ends at s[i - 1], not before lo (< i).
 * Records hold valid UTF-8; should a byte be invalid anyway, pd_utf8_decode()
 * takes it alone as the code point -1, which is neither \w nor whitespace.
 */
static inline size_t pd__prev_start(const char *s, size_t lo, size_t i)
{
    size_t j = i - 1;
    while (j > lo && ((unsigned char)s[j] & 0xc0) == 0x80)
        j--;
    return j;
}

/* Is the code point at s[i] (i < len) a \w? */
static inline bool pd__word_at(const char *s, size_t len, size_t i)
{
    int32_t cp;
    pd_utf8_decode(s + i, len - i, &cp);
    return pd__is_word(cp);
}

/* Is the code point that ends at s[i - 1] (lo < i) a \w? */
static inline bool pd__word_before(const char *s, size_t len, size_t lo, size_t i)
{
    int32_t cp;
    size_t j = pd__prev_start(s, lo, i);
    return pd_utf8_decode(s + j, len - j, &cp) == i - j && pd__is_word(cp);
}

/* ---- Lower-casing and counting (text.c) --------------------------------------- */

bool pd__is_ascii(const char *s, size_t len);

/* Writes s.lower() of the ASCII text s to out (len bytes); returns len(s.split()). */
int64_t pd__lower_ascii(const char *s, size_t len, char *out);

/* Bytes of s.lower() of a text that is not all ASCII. */
size_t pd__lowered_size(const char *s, size_t len);

/* Writes s.lower() to out (pd__lowered_size() bytes) and returns its length. */
size_t pd__lower_unicode(const char *s, size_t len, char *out);

/* len(s) and len(s.split()) of a text that is not all ASCII. */
void pd__count_unicode(const char *s, size_t len, int64_t *code_points, int64_t *words);

/* ---- Substrings (text.c) ------------------------------------------------------ */

/* The offset of the first needle (n > 0 bytes) in s at or after from, or NOT_FOUND. */
size_t pd__find(const char *s, size_t len, size_t from, const char *needle, size_t n);

struct needle {
    const char *text;
    size_t len;
};

/*
 * A list of at most 64 needles filed by a hash of their first three bytes,
 * so that one pass over a text finds them all.  A bucket holds the needles
 * whose first three bytes hash to it, and those bytes.
 */
#define NEEDLE_BUCKETS 256
struct needle_bucket {
    uint32_t key;      /* the bytes */
    uint32_t key_mask; /* the bits of key to compare: none when needles of several share it */
    uint64_t needles;  /* a bit per needle */
};

struct needle_index {
    const struct needle *needles; /* the list (static storage) */
    uint64_t short_ones;          /* the needles of fewer than three bytes, in no bucket */
    struct needle_bucket buckets[NEEDLE_BUCKETS];
};

/* Files count (<= 64) needles of the list. */
void pd__needle_index_init(struct needle_index *index, const struct needle *needles, int count);

/* The needles of the index that occur in s (NUL-terminated), as a set: bit n for needle n. */
uint64_t pd__find_needles(const struct needle_index *index, const char *s, size_t len);

/*
 * Grows the array *buf of *cap elements of elem bytes to hold need.
 * Returns 0 or PD_ENOMEM (*buf is then unchanged).
 */
int pd__reserve(void **buf, size_t *cap, size_t need, size_t elem);

#endif
