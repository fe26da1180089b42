/*
 * Files mentioned (private to src/detect/, defined by files.c): the six
 * regexes of docs/spec.md §2.5 over a request's text.
 */
#ifndef PD_DETECT_FILES_H
#define PD_DETECT_FILES_H

#include <stddef.h>

#include "pd/detect.h"

/* Which of the six file regexes can match: the lower-cased text holds their literal. */
enum {
    FILES_APP_DIR = 1 << 0,
    FILES_TEST = 1 << 1,
    FILES_SRC_DIR = 1 << 2,
    FILES_DOT_PY = 1 << 3,
    FILES_DOT_TS = 1 << 4,
    FILES_DOT_JS = 1 << 5
};

/*
 * docs/spec.md §2.5 files_mentioned of the nl_input s (original case) into
 * det->files, trying only the regexes in candidates.  Returns 0 or PD_ENOMEM.
 */
int pd__find_files(pd_detection_t *det, const char *s, size_t len, unsigned candidates);

#endif
