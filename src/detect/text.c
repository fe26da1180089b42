/*
 * The detector's text machinery: Python's lower() and split() counted the
 * way the reference counts them, and the substring search, one needle at a
 * time (pd__find()) or a whole list in one pass (the needle index).  Pure
 * functions; see detect.c for why they look the way they do.
 */
#include <stdlib.h>
#include <string.h>

#include "text.h"
#include "pd/error.h"

/* ---- Whitespace ---------------------------------------------------------------- */

/*
 * Python's str.split() whitespace among ASCII: \t \n \v \f \r, the four
 * separators U+001C-U+001F and the space (what utf8proc says of them too;
 * tests/detect/test_detect.c checks that).
 */
static bool ascii_space(unsigned char c)
{
    return c == ' ' || (unsigned)(c - '\t') < 5 || (unsigned)(c - 0x1c) < 4;
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

bool pd__is_ascii(const char *s, size_t len)
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
int64_t pd__lower_ascii(const char *s, size_t len, char *out)
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
size_t pd__lowered_size(const char *s, size_t len)
{
    size_t size = 0;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        i += pd_utf8_decode(s + i, len - i, &cp);
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
size_t pd__lower_unicode(const char *s, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        size_t step = pd_utf8_decode(s + i, len - i, &cp);
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
void pd__count_unicode(const char *s, size_t len, int64_t *code_points, int64_t *words)
{
    int64_t cps = 0, n = 0;
    bool in_space = true;
    for (size_t i = 0; i < len; cps++) {
        int32_t cp;
        i += pd_utf8_decode(s + i, len - i, &cp);
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
size_t pd__find(const char *s, size_t len, size_t from, const char *needle, size_t n)
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
    _Static_assert(NEEDLE_BUCKETS == 256, "the shift below keeps 8 bits");
    return (key * UINT32_C(0x9e3779b1)) >> 24;
}

/*
 * Files each needle of three bytes or more under the hash of its first
 * three.  A bucket remembers those bytes, so that at a position of a text
 * whose bytes differ there is nothing more to do.  When needles that start
 * differently share a bucket, it compares no bits and all of them are tried;
 * an empty bucket's key is no three bytes at all.
 */
void pd__needle_index_init(struct needle_index *index, const struct needle *needles, int count)
{
    index->needles = needles;
    index->short_ones = 0;
    for (int b = 0; b < NEEDLE_BUCKETS; b++)
        index->buckets[b] = (struct needle_bucket){UINT32_MAX, UINT32_MAX, 0};
    for (int n = 0; n < count; n++) {
        if (needles[n].len < 3) {
            index->short_ones |= UINT64_C(1) << n;
            continue;
        }
        uint32_t key = trigram(needles[n].text);
        struct needle_bucket *b = &index->buckets[trigram_bucket(key)];
        if (b->needles == 0)
            b->key = key;
        else if (b->key != key)
            b->key_mask = 0;
        b->needles |= UINT64_C(1) << n;
    }
}

/*
 * One pass finds the long needles: at each position of s, only the needles
 * filed under its next three bytes are compared.  The short ones ("ui")
 * would need every bucket, so each gets a search of its own.
 */
uint64_t pd__find_needles(const struct needle_index *index, const char *s, size_t len)
{
    const struct needle *needles = index->needles;
    uint64_t found = 0;
    for (size_t i = 0; i + 2 < len; i++) {
        uint32_t key = trigram(s + i);
        const struct needle_bucket *b = &index->buckets[trigram_bucket(key)];
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
    for (uint64_t short_ones = index->short_ones; short_ones != 0; short_ones &= short_ones - 1) {
        int n = __builtin_ctzll(short_ones);
        if (pd__find(s, len, 0, needles[n].text, needles[n].len) != NOT_FOUND)
            found |= UINT64_C(1) << n;
    }
    return found;
}

/* ---- Scratch arrays ---------------------------------------------------------- */

int pd__reserve(void **buf, size_t *cap, size_t need, size_t elem)
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
