/* Fixed-shape JSON output in the reference's bytes; see include/pd/jsonw.h. */
#include "pd/jsonw.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pd_buf_close(pd_buf_t *buf)
{
    free(buf->data);
    memset(buf, 0, sizeof(*buf));
}

void pd_buf_reset(pd_buf_t *buf)
{
    buf->len = 0;
}

static int reserve(pd_buf_t *buf, size_t n)
{
    if (buf->len + n <= buf->cap)
        return 1;
    if (buf->failed)
        return 0;
    size_t cap = buf->cap ? buf->cap : 512;
    while (cap < buf->len + n)
        cap *= 2;
    char *grown = realloc(buf->data, cap);
    if (grown == NULL) {
        buf->failed = 1;
        return 0;
    }
    buf->data = grown;
    buf->cap = cap;
    return 1;
}

void pd_buf_put(pd_buf_t *buf, const char *s, size_t n)
{
    if (!reserve(buf, n))
        return;
    memcpy(buf->data + buf->len, s, n);
    buf->len += n;
}

void pd_buf_puts(pd_buf_t *buf, const char *s)
{
    pd_buf_put(buf, s, strlen(s));
}

void pd_buf_int(pd_buf_t *buf, int64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    pd_buf_put(buf, p, (size_t)(tmp + sizeof(tmp) - p));
}

void pd_buf_json_string(pd_buf_t *buf, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (!reserve(buf, n + 2))
        return;
    buf->data[buf->len++] = '"';
    size_t run = 0; /* start of the pending run of bytes that need no escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        pd_buf_put(buf, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0};
        size_t len = 2;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            len = 6;
        }
        pd_buf_put(buf, esc, len);
    }
    pd_buf_put(buf, s + run, n - run);
    pd_buf_put(buf, "\"", 1);
}

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
