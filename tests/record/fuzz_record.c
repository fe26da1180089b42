/*
 * Stages: record and detect.  libFuzzer target: any bytes as one input line through parsing,
 * detection and the detect output writer.  Finds crashes, leaks and undefined behaviour (built with
 * ASan and UBSan), and checks two invariants: an accepted record's output line is valid JSON, and a
 * rejection names a line.
 *
 *   cmake -B build-fuzz -DCMAKE_C_COMPILER=clang -DPD_FUZZ=ON && cmake --build build-fuzz
 *   build-fuzz/fuzz_record -max_total_time=60 CORPUS_DIR
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pd/detect.h"
#include "pd/jsonw.h"
#include "pd/record.h"
#include "pd/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pd_record_t rec;
    pd_error_t err;
    int rc = pd_record_parse((const char *)data, size, 1, NULL, &rec, &err);
    if (rc == PD_EINVAL) {
        if (err.line != 1)
            abort();
        /* A rejection can always be written as JSON: its field and message are UTF-8. */
        if (!pd_utf8_valid(err.field, strlen(err.field)) ||
            !pd_utf8_valid(err.message, strlen(err.message)))
            abort();
        return 0;
    }
    if (rc < 0)
        return 0;

    pd_detection_t det;
    pd_buf_t out = {0};
    pd_detection_init(&det);
    if (pd_detect_record(&rec, &det) == PD_OK) {
        pd_jsonw_detection(&out, &det, &rec);
        json_error_t jerr;
        json_t *back = out.failed ? NULL : json_loadb(out.data, out.len, 0, &jerr);
        if (!out.failed && back == NULL)
            abort(); /* the writer produced invalid JSON */
        json_decref(back);
    }
    pd_buf_close(&out);
    pd_detection_close(&det);
    pd_record_close(&rec);
    return 0;
}
