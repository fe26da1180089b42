/*
 * Writing patternd's own JSON lines fast, in the reference's exact bytes.
 *
 * The reference wrote its results with Python's json.dumps(ensure_ascii=
 * False): ", " and ": " separators, UTF-8 as is, control characters escaped.
 * `patternd detect` must reproduce those bytes, and on its hot path building
 * a jansson tree per record cost more than parsing and detection together,
 * so the few fixed shapes patternd emits per record are written here into a
 * pd_buf_t (pd/buf.h).  Every other JSON document (summaries, reports,
 * rejects, HTTP answers) is built with jansson.
 */
#ifndef PD_JSONW_H
#define PD_JSONW_H

#include "pd/buf.h"
#include "pd/detect.h"
#include "pd/record.h"

/* Appends the characteristics object of docs/spec.md §2.5, in the reference's key order. */
void pd_jsonw_characteristics(pd_buf_t *buf, const pd_detection_t *det, const pd_record_t *rec);

/*
 * Appends the `patternd detect` line of a record (without the newline):
 * {"tenant_id": ..., "workflow_id": ..., "patterns": [...], "characteristics": {...}}
 */
void pd_jsonw_detection(pd_buf_t *buf, const pd_detection_t *det, const pd_record_t *rec);

#endif
