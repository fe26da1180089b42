/*
 * Where records come from: files or standard input read by the libuv loop
 * (pd_file_source_t), and HTTP request bodies parsed as their bytes arrive
 * (pd_body_parser_t, NDJSON or JSON through yajl).  Both hand each record's text to a pd_lines_cb,
 * so every route validates records the same way.
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

/*
 * on_line of a file source may return this to stop reading after the line,
 * as pd_file_source_stop() does: the lines after it are not delivered, and
 * on_end follows with rc 0 unless something failed.
 */
#define PD_SOURCE_STOP 1

/*
 * An input that begins with gzip's magic bytes (1f 8b) is inflated as it is
 * read, whatever its name, standard input too; concatenated members are one
 * stream.  A corrupt or cut-short gzip input fails reading (PD_EIO).  The
 * inflated bytes go through the same line splitter, one chunk at a time, so
 * memory stays bounded however far an input inflates.
 */
typedef struct pd_file_source_config {
    char **paths; /* read in order; "-" is standard input */
    int n_paths;
    size_t max_record;   /* longest line delivered; longer ones arrive as oversize */
    pd_lines_cb on_line; /* may return PD_SOURCE_STOP, or an error that stops reading */
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

/*
 * Bytes read so far, and the inputs' total size (-1 when one is a pipe);
 * both count a gzip input's compressed bytes.
 */
int64_t pd_file_source_bytes_read(const pd_file_source_t *src);
int64_t pd_file_source_bytes_total(const pd_file_source_t *src);

void pd_file_source_destroy(pd_file_source_t *src);

/*
 * An HTTP body into records, as its bytes arrive: NDJSON lines, or a JSON
 * body, which is a top-level array of records or one object that is the
 * only record.  The mode comes from the Content-Type (application/x-ndjson,
 * application/json), else from the body's first non-space byte: '[' is a
 * JSON array, anything else NDJSON (so a lone object without a
 * Content-Type is a one-line NDJSON body, the same record).
 *
 * A JSON body is parsed by yajl as it arrives.  yajl cannot resume after a
 * syntax error, so JSON that is not well-formed anywhere, inside an element
 * too, fails the whole body; beyond that only the body's structure is
 * judged here.  Each element (object or not) is written back out as compact
 * JSON text, numbers as written and strings escaped again, without checking
 * UTF-8, and goes to on_line as an NDJSON line does (line_no 0), so
 * pd_record_parse() validates it the same way.  An element whose text is
 * longer than max_record arrives as oversize, with no text.
 *
 * Memory: the element's text, max_record bytes at most, plus what yajl
 * holds, which is small except for one token (a string, a number) split
 * across chunks: yajl keeps such a token whole until it ends (and a string
 * with escapes once more, decoded), so one huge string can use memory up
 * to about twice the body's size, whatever max_record is.  The server
 * bounds the body (--max-body-bytes).
 */
typedef enum pd_body_mode { PD_BODY_AUTO, PD_BODY_NDJSON, PD_BODY_JSON } pd_body_mode_t;

typedef struct pd_body_parser {
    pd_body_mode_t mode;
    size_t max_record;
    pd_lines_cb on_line;
    void *ctx;
    long newlines;    /* AUTO: newlines before the first byte that decides */
    pd_lines_t lines; /* NDJSON */
    /* JSON: yajl's parser, the generator writing the element, where in the body. */
    struct yajl_handle_t *json;
    struct yajl_gen_t *gen;
    int depth;     /* containers open in the body, the top-level array included */
    bool in_array; /* the body is an array: its elements are the records */
    int rc;        /* the first error, returned from then on */
    /* The element's text so far: elem_len counts it all, at most max_record bytes are kept. */
    char *elem;
    size_t elem_len, elem_cap;
    bool elem_oversize;
} pd_body_parser_t;

/* content_type may be NULL.  Returns 0 or PD_ENOMEM. */
int pd_body_parser_init(pd_body_parser_t *p, const char *content_type, size_t max_record,
                        pd_lines_cb on_line, void *ctx);

/*
 * Feeds the next bytes (writable: NDJSON lines are NUL-terminated in
 * place).  Returns 0, PD_EINVAL when a JSON body is not a well-formed
 * array or object (or is a bare scalar, or nests an element more than 127
 * deep), PD_ENOMEM, or on_line's non-zero return.  For a JSON body, the
 * first error is returned again by every later push and finish.
 */
int pd_body_parser_push(pd_body_parser_t *p, char *data, size_t len);

/* The body ended: delivers a last line; PD_EINVAL for a JSON body cut short. */
int pd_body_parser_finish(pd_body_parser_t *p);

/* Frees what the parser holds; safe after a failed init. */
void pd_body_parser_close(pd_body_parser_t *p);

#endif
