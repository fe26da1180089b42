/*
 * Pattern detection (docs/spec.md §2): signatures and characteristics of one record.
 *
 * Pure: no I/O, no globals, nothing shared, so any thread may call it with
 * its own pd_detection_t.  A detection is reused from record to record; its
 * buffers grow to the largest record seen and are released by
 * pd_detection_close().  It owns them, so it is embedded or passed by
 * pointer, never copied.
 */
#ifndef PD_DETECT_H
#define PD_DETECT_H

#include <stddef.h>
#include <stdint.h>

#include "pd/record.h"

#define PD_MAX_PATTERNS 8
#define PD_SIGNATURE_MAX 32

/*
 * The keywords of docs/spec.md §2.5, in their output order; bit i of
 * pd_detection_t.keywords is pd_detect_keywords[i].  (docs/spec.md lists 19.)
 */
#define PD_KEYWORD_COUNT 19
extern const char *const pd_detect_keywords[PD_KEYWORD_COUNT];

typedef enum pd_duration_range {
    PD_DURATION_SHORT,
    PD_DURATION_MEDIUM,
    PD_DURATION_LONG
} pd_duration_range_t;

typedef enum pd_complexity {
    PD_COMPLEXITY_SIMPLE,
    PD_COMPLEXITY_MEDIUM,
    PD_COMPLEXITY_COMPLEX
} pd_complexity_t;

/* A file mention: a byte range of the record's original nl_input. */
typedef struct pd_span {
    size_t off;
    size_t len;
} pd_span_t;

typedef struct pd_detection {
    /* Signatures in detection order, e.g. "test:pytest:backend". */
    int n_patterns;
    char patterns[PD_MAX_PATTERNS][PD_SIGNATURE_MAX];

    /* Characteristics. */
    int64_t input_length; /* code points of nl_input */
    uint32_t keywords;    /* bit i set when pd_detect_keywords[i] occurs */
    size_t n_files;       /* files_mentioned, sorted by code point, no duplicates */
    pd_span_t *files;     /* ranges of the nl_input the detection was made from */
    pd_duration_range_t duration_range;
    pd_complexity_t complexity;
    int64_t error_count;

    /* Scratch space reused across calls. */
    size_t files_cap;
    char *lower; /* lower-cased text */
    size_t lower_cap;

    /* Private to src/detect/: the needle index, allocated on first use. */
    struct pd_detect_index *index;
} pd_detection_t;

/* An empty detection: no memory until the first pd_detect_record(). */
void pd_detection_init(pd_detection_t *det);
/* Frees what det holds (the spans in det->files go with it); det is left empty. */
void pd_detection_close(pd_detection_t *det);

/*
 * Detects the signatures and characteristics of rec into det (replacing what
 * det held).  The spans in det->files point into rec->nl_input, so rec must
 * outlive their use.  Returns 0 or PD_ENOMEM.
 */
int pd_detect_record(const pd_record_t *rec, pd_detection_t *det);

/* The text of an enum value, as in the JSON output ("short", "simple", ...). */
const char *pd_duration_range_name(pd_duration_range_t r);
const char *pd_complexity_name(pd_complexity_t c);

#endif
