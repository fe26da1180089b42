/*
 * Where records come from: files or standard input read by the libuv loop
 * (pd_file_source_t), and HTTP request bodies parsed as their bytes arrive
 * (pd_body_parser_t).  Both hand each record's text to a pd_lines_cb, so
 * every route validates records the same way.
 *
 * Threads: a pd_file_source_t lives on the loop thread; a pd_body_parser_t
 * on whichever thread feeds it (the loop thread, for serve).
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
 * An HTTP body into records, as its bytes arrive: NDJSON lines, or the
 * elements of a top-level JSON array (by Content-Type, else by the body's
 * first non-space byte).  Only the array's structure is looked at here; an
 * element's text goes to on_line as an NDJSON line's does (line_no 0), so
 * it is validated the same way.  Memory: one record (max_record bytes) at
 * most, whatever the body's size.
 */
typedef enum pd_body_mode { PD_BODY_AUTO, PD_BODY_NDJSON, PD_BODY_ARRAY } pd_body_mode_t;

typedef struct pd_body_parser {
    pd_body_mode_t mode;
    size_t max_record;
    pd_lines_cb on_line;
    void *ctx;
    long newlines;    /* AUTO: newlines before the first byte that decides */
    pd_lines_t lines; /* NDJSON */
    /* ARRAY: where in the array, and the element being collected. */
    int state;
    int depth;
    bool in_string, escaped;
    char *elem;
    size_t elem_len, elem_cap;
    bool elem_oversize;
} pd_body_parser_t;

/* content_type may be NULL.  Returns 0 or PD_ENOMEM. */
int pd_body_parser_init(pd_body_parser_t *p, const char *content_type, size_t max_record,
                        pd_lines_cb on_line, void *ctx);

/*
 * Feeds the next bytes (writable: lines are NUL-terminated in place).
 * Returns 0, PD_EINVAL when an array body is not a well-formed array,
 * PD_ENOMEM, or on_line's non-zero return.
 */
int pd_body_parser_push(pd_body_parser_t *p, char *data, size_t len);

/* The body ended: delivers a last line; PD_EINVAL for an unterminated array. */
int pd_body_parser_finish(pd_body_parser_t *p);

void pd_body_parser_close(pd_body_parser_t *p);

#endif
