/*
 * Splitting a byte stream into NDJSON lines without ever buffering more than
 * the maximum record size.
 *
 * The caller pushes chunks as they arrive (from fread, uv_fs_read or an HTTP
 * body); each complete line is handed to the callback with its 1-based line
 * number.  A line longer than the maximum is not kept: the splitter discards
 * its bytes up to the next newline and reports it once as oversize, so a
 * 5 GiB line costs no more memory than a short one.  A trailing "\r" is
 * removed; blank lines (only spaces, tabs or "\r") are counted but not
 * delivered.
 */
#ifndef PD_LINES_H
#define PD_LINES_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Called for each non-blank line.  data is valid only during the call; it is
 * NUL-terminated at data[len] (the NUL is not part of the line).  When oversize
 * is true, data is NULL and len is the number of bytes the line had.
 * A non-zero return stops the splitter and is returned by pd_lines_push().
 */
typedef int (*pd_lines_cb)(void *ctx, long line_no, const char *data, size_t len, bool oversize);

typedef struct pd_lines {
    char *buf; /* the partial line so far */
    size_t len;
    size_t cap;
    size_t max;       /* longest line delivered, in bytes */
    long line_no;     /* number of lines completed so far */
    bool discarding;  /* inside an oversize line */
    size_t discarded; /* bytes of the oversize line so far */
    pd_lines_cb cb;
    void *ctx;
} pd_lines_t;

/* max is the longest line accepted, in bytes.  Returns 0 or PD_ENOMEM. */
int pd_lines_init(pd_lines_t *lines, size_t max, pd_lines_cb cb, void *ctx);

/*
 * Feeds a chunk.  The chunk must be writable: a line is NUL-terminated in
 * place for the callback and restored before the call returns.  Returns 0,
 * PD_ENOMEM, or the callback's non-zero return.
 */
int pd_lines_push(pd_lines_t *lines, char *data, size_t len);

/* Delivers a last line that had no final newline.  Same returns as push. */
int pd_lines_finish(pd_lines_t *lines);

void pd_lines_close(pd_lines_t *lines);

#endif
