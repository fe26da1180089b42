/*
 * Where records come from: files or standard input read by the libuv loop
 * (pd_file_source_t), and HTTP request bodies (pd_body_split()).  Both hand
 * each record's text to a pd_lines_cb, so every route validates records the
 * same way.
 *
 * Threads: a pd_file_source_t lives on the loop thread; pd_body_split() is
 * pure and runs wherever the body is.
 */
#ifndef PD_SOURCE_H
#define PD_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pd/lines.h"

typedef struct pd_file_source pd_file_source_t;

typedef struct pd_file_source_config {
    char **paths; /* read in order; "-" is standard input */
    int n_paths;
    size_t max_record; /* longest line delivered; longer ones arrive as oversize */
    pd_lines_cb on_line;
    /* Backpressure: asked before each read; false pauses until pd_file_source_resume(). */
    bool (*can_read)(void *ctx);
    /*
     * Called once, when every input was read or reading stopped: rc is 0, or
     * the error (on_line's, or PD_EIO) with message saying what failed.
     */
    void (*on_end)(void *ctx, int rc, const char *message);
    void *ctx;
} pd_file_source_config_t;

/*
 * Starts reading on loop; the first callback comes from the loop.  *out is
 * released with pd_file_source_destroy() after on_end ran.  Returns 0 or
 * PD_ENOMEM.
 */
int pd_file_source_start(uv_loop_t *loop, const pd_file_source_config_t *cfg,
                         pd_file_source_t **out);

/* Reads on after can_read() said no (no-op when not paused). */
void pd_file_source_resume(pd_file_source_t *src);

/* Stops at the next chance: on_end follows with rc 0 unless something failed. */
void pd_file_source_stop(pd_file_source_t *src);

/* The input being read, for messages ("<stdin>" for "-"); borrowed. */
const char *pd_file_source_name(const pd_file_source_t *src);

/* Bytes read so far, and the inputs' total size (-1 when one is a pipe). */
int64_t pd_file_source_bytes_read(const pd_file_source_t *src);
int64_t pd_file_source_bytes_total(const pd_file_source_t *src);

void pd_file_source_destroy(pd_file_source_t *src);

/*
 * Counts the records of an HTTP body without delivering them, to size the
 * batch: a JSON array's elements when as_array (PD_EINVAL when the body is
 * not a well-formed array), else an upper bound on NDJSON lines.
 */
int pd_body_count(const char *body, size_t len, bool as_array, size_t *count);

/*
 * Splits an HTTP body into records: the elements of a JSON array when
 * as_array, else NDJSON lines.  Calls on_line for each with line_no the
 * NDJSON line, or 0 for an array element; oversize past max_record.  The
 * body must be writable (lines are NUL-terminated in place).  Returns 0,
 * PD_EINVAL for a malformed array, PD_ENOMEM, or on_line's non-zero return.
 */
int pd_body_split(char *body, size_t len, bool as_array, size_t max_record, pd_lines_cb on_line,
                  void *ctx);

/* Whether a body is a JSON array: by Content-Type, else by its first non-space byte. */
bool pd_body_is_array(const char *content_type, const char *body, size_t len);

#endif
