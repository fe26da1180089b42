/*
 * Writing patternd's own JSON lines fast, in the reference's exact bytes.
 *
 * The reference wrote its results with Python's json.dumps(ensure_ascii=
 * False): ", " and ": " separators, UTF-8 as is, control characters escaped.
 * `patternd detect` must reproduce those bytes, and on its hot path building
 * a jansson tree per record cost more than parsing and detection together,
 * so the few fixed shapes patternd emits per record are written here into a
 * growable buffer.  Anything else (summaries, reports, HTTP bodies) is built
 * with jansson.
 */
#ifndef PD_JSONW_H
#define PD_JSONW_H

#include <stddef.h>
#include <stdint.h>

#include "pd/detect.h"
#include "pd/record.h"

/* A growable byte buffer; zero-initialise, release with pd_buf_close(). */
typedef struct pd_buf {
    char *data;
    size_t len;
    size_t cap;
    int failed; /* set when an allocation failed; later writes are dropped */
} pd_buf_t;

void pd_buf_close(pd_buf_t *buf);
void pd_buf_reset(pd_buf_t *buf);
void pd_buf_put(pd_buf_t *buf, const char *s, size_t n);
void pd_buf_puts(pd_buf_t *buf, const char *s);
/* Appends a string literal without measuring it at run time. */
#define PD_BUF_LIT(buf, lit) pd_buf_put((buf), "" lit, sizeof(lit) - 1)
void pd_buf_int(pd_buf_t *buf, int64_t v);

/* Appends s (n bytes of valid UTF-8) as a JSON string literal. */
void pd_buf_json_string(pd_buf_t *buf, const char *s, size_t n);

/* Appends the characteristics object of SPEC §2.5, in the reference's key order. */
void pd_jsonw_characteristics(pd_buf_t *buf, const pd_detection_t *det, const pd_record_t *rec);

/*
 * Appends the `patternd detect` line of a record (without the newline):
 * {"tenant_id": ..., "workflow_id": ..., "patterns": [...], "characteristics": {...}}
 */
void pd_jsonw_detection(pd_buf_t *buf, const pd_detection_t *det, const pd_record_t *rec);

#endif
