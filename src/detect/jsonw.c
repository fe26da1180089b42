/*
 * Fixed-shape JSON output in the reference's bytes; see include/pd/jsonw.h.
 * Pure: the caller's thread, the caller's buffer.
 */
#include "pd/jsonw.h"

#include <string.h>

void pd_jsonw_characteristics(pd_buf_t *buf, const pd_detection_t *det, const pd_record_t *rec)
{
    PD_BUF_LIT(buf, "{\"input_length\": ");
    pd_buf_int(buf, det->input_length);
    PD_BUF_LIT(buf, ", \"keywords\": [");
    int first = 1;
    for (int i = 0; i < PD_KEYWORD_COUNT; i++) {
        if (!(det->keywords & (UINT32_C(1) << i)))
            continue;
        if (!first)
            pd_buf_put(buf, ", ", 2);
        first = 0;
        pd_buf_put(buf, "\"", 1);
        pd_buf_puts(buf, pd_detect_keywords[i]);
        pd_buf_put(buf, "\"", 1);
    }
    PD_BUF_LIT(buf, "], \"files_mentioned\": [");
    for (size_t i = 0; i < det->n_files; i++) {
        if (i > 0)
            pd_buf_put(buf, ", ", 2);
        pd_buf_json_string(buf, rec->nl_input.ptr + det->files[i].off, det->files[i].len);
    }
    PD_BUF_LIT(buf, "], \"duration_range\": \"");
    pd_buf_puts(buf, pd_duration_range_name(det->duration_range));
    PD_BUF_LIT(buf, "\", \"complexity\": \"");
    pd_buf_puts(buf, pd_complexity_name(det->complexity));
    PD_BUF_LIT(buf, "\", \"error_count\": ");
    pd_buf_int(buf, det->error_count);
    pd_buf_put(buf, "}", 1);
}

void pd_jsonw_detection(pd_buf_t *buf, const pd_detection_t *det, const pd_record_t *rec)
{
    PD_BUF_LIT(buf, "{\"tenant_id\": ");
    pd_buf_json_string(buf, rec->tenant_id, strlen(rec->tenant_id));
    PD_BUF_LIT(buf, ", \"workflow_id\": ");
    if (rec->workflow_id_is_int)
        pd_buf_puts(buf, rec->workflow_id);
    else
        pd_buf_json_string(buf, rec->workflow_id, strlen(rec->workflow_id));
    PD_BUF_LIT(buf, ", \"patterns\": [");
    for (int i = 0; i < det->n_patterns; i++) {
        if (i > 0)
            pd_buf_put(buf, ", ", 2);
        pd_buf_json_string(buf, det->patterns[i], strlen(det->patterns[i]));
    }
    PD_BUF_LIT(buf, "], \"characteristics\": ");
    pd_jsonw_characteristics(buf, det, rec);
    pd_buf_put(buf, "}", 1);
}
