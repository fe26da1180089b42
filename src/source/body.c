/*
 * HTTP bodies into records, streamed: NDJSON through the line splitter, or
 * a JSON body (a top-level array of records, or one object that is the
 * only record) through yajl's event parser.
 *
 * A JSON body is parsed with yajl rather than by hand because finding where
 * an element ends means following strings, escapes and nesting exactly as
 * JSON does, and yajl already does that, chunk by chunk as the bytes
 * arrive.  Each top-level element's events are written back out by a
 * yajl_gen generator into a buffer of at most max_record bytes, and the
 * text goes to the same callback as an NDJSON line (line_no 0), so
 * pd_record_parse() validates it as it validates a line.  The text is the
 * element without white space between tokens: numbers keep their text as
 * written ("1.50" stays "1.50"), and strings are decoded and escaped again.
 *
 * Neither side checks UTF-8 (yajl_dont_validate_strings, and the
 * generator's yajl_gen_validate_utf8 left off): a string that is not UTF-8
 * passes through byte for byte, so the record parser rejects that record
 * with its reason instead of the whole body failing.  Escapes are decoded
 * by the same yajl code as the record parser's, and the generator escapes
 * again every control character (a NUL becomes \u0000), so an element
 * decodes to the same strings in the record parser as it would as an
 * NDJSON line, and is accepted or rejected the same way.
 *
 * What is handed on: every element, object or not ("1", "[2]"), so that a
 * non-object is rejected per record.  What fails the whole body with
 * PD_EINVAL: a top-level scalar, anything that is not well-formed JSON
 * (inside an element too: yajl cannot resume after an error), bytes after
 * the top-level value, and an element nested more than YAJL_MAX_DEPTH - 1
 * (127) deep, which the generator cannot write.
 *
 * Thread: the loop thread, chunk by chunk as the body arrives, so a large
 * body never stalls the loop for longer than one chunk takes.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "pd/error.h"
#include "pd/source.h"

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int start_ndjson(pd_body_parser_t *p)
{
    p->mode = PD_BODY_NDJSON;
    int rc = pd_lines_init(&p->lines, p->max_record, p->on_line, p->ctx);
    p->lines.line_no += p->newlines; /* blank lines before the first record still count */
    return rc;
}

/* The generator's output: kept up to max_record bytes, counted beyond. */
static void gen_print(void *ctx, const char *s, size_t n)
{
    pd_body_parser_t *p = ctx;
    size_t len = p->elem_len;
    p->elem_len += n;
    if (p->elem_oversize)
        return;
    if (p->elem_len > p->max_record) {
        p->elem_oversize = true; /* what was kept stays unused until the next element */
        return;
    }
    if (p->elem_len + 1 > p->elem_cap) {
        size_t cap = p->elem_cap ? p->elem_cap : 4096;
        while (cap < p->elem_len + 1)
            cap *= 2;
        if (cap > p->max_record + 1)
            cap = p->max_record + 1;
        char *grown = realloc(p->elem, cap);
        if (grown == NULL) {
            p->rc = PD_ENOMEM; /* seen by the event callback, which stops the parse */
            p->elem_oversize = true;
            return;
        }
        p->elem = grown;
        p->elem_cap = cap;
    }
    memcpy(p->elem + len, s, n);
}

/* The depth at which records are: inside the top-level array, or the top-level object itself. */
static int record_depth(const pd_body_parser_t *p)
{
    return p->in_array ? 1 : 0;
}

/* Hands the element just generated to on_line; false stops the parse. */
static int element_end(pd_body_parser_t *p)
{
    if (p->rc != 0)
        return 0;
    if (!p->elem_oversize)
        p->elem[p->elem_len] = '\0';
    p->rc = p->on_line(p->ctx, 0, p->elem_oversize ? NULL : p->elem, p->elem_len, p->elem_oversize);
    return p->rc == 0;
}

/*
 * Before a value (scalar or container start) is generated: decides what it
 * is at the top level, and starts a new element where one begins.  Returns
 * 1 to generate it, 0 to stop the parse (p->rc says why), -1 when it is the
 * top-level array itself, which is not generated.
 */
static int value_begin(pd_body_parser_t *p, bool is_array, bool is_container)
{
    if (p->depth == 0 && !p->in_array) {
        if (is_array) {
            p->in_array = true;
            p->depth = 1;
            return -1;
        }
        if (!is_container) {
            p->rc = PD_EINVAL; /* a bare scalar is not a body of records */
            return 0;
        }
    }
    if (p->depth == record_depth(p)) {
        yajl_gen_reset(p->gen, NULL);
        p->elem_len = 0;
        p->elem_oversize = false;
    }
    return 1;
}

/* After a yajl_gen call: stops on its error (only too deep a nesting) or on ours. */
static int generated(pd_body_parser_t *p, yajl_gen_status st)
{
    if (st != yajl_gen_status_ok && p->rc == 0)
        p->rc = PD_EINVAL;
    return p->rc == 0;
}

/* A scalar: generated, and the whole element when it is one. */
static int scalar_end(pd_body_parser_t *p, yajl_gen_status st)
{
    if (!generated(p, st))
        return 0;
    return p->depth == record_depth(p) ? element_end(p) : 1;
}

static int cb_null(void *ctx)
{
    pd_body_parser_t *p = ctx;
    int go = value_begin(p, false, false);
    return go > 0 ? scalar_end(p, yajl_gen_null(p->gen)) : go;
}

static int cb_boolean(void *ctx, int value)
{
    pd_body_parser_t *p = ctx;
    int go = value_begin(p, false, false);
    return go > 0 ? scalar_end(p, yajl_gen_bool(p->gen, value)) : go;
}

/* Numbers arrive as their text, so an element keeps them as written. */
static int cb_number(void *ctx, const char *text, size_t len)
{
    pd_body_parser_t *p = ctx;
    int go = value_begin(p, false, false);
    return go > 0 ? scalar_end(p, yajl_gen_number(p->gen, text, len)) : go;
}

static int cb_string(void *ctx, const unsigned char *text, size_t len)
{
    pd_body_parser_t *p = ctx;
    int go = value_begin(p, false, false);
    return go > 0 ? scalar_end(p, yajl_gen_string(p->gen, text, len)) : go;
}

static int cb_map_key(void *ctx, const unsigned char *key, size_t len)
{
    pd_body_parser_t *p = ctx;
    return generated(p, yajl_gen_string(p->gen, key, len));
}

static int cb_start_map(void *ctx)
{
    pd_body_parser_t *p = ctx;
    int go = value_begin(p, false, true);
    if (go <= 0)
        return go;
    p->depth++;
    return generated(p, yajl_gen_map_open(p->gen));
}

static int cb_start_array(void *ctx)
{
    pd_body_parser_t *p = ctx;
    int go = value_begin(p, true, true);
    if (go < 0)
        return 1; /* the top-level array */
    if (go == 0)
        return 0;
    p->depth++;
    return generated(p, yajl_gen_array_open(p->gen));
}

static int container_end(pd_body_parser_t *p, bool is_array)
{
    p->depth--;
    if (p->in_array && p->depth == 0)
        return 1; /* the top-level array's ']' */
    if (!generated(p, is_array ? yajl_gen_array_close(p->gen) : yajl_gen_map_close(p->gen)))
        return 0;
    return p->depth == record_depth(p) ? element_end(p) : 1;
}

static int cb_end_map(void *ctx)
{
    return container_end(ctx, false);
}

static int cb_end_array(void *ctx)
{
    return container_end(ctx, true);
}

static const yajl_callbacks CALLBACKS = {
    .yajl_null = cb_null,
    .yajl_boolean = cb_boolean,
    .yajl_number = cb_number,
    .yajl_string = cb_string,
    .yajl_start_map = cb_start_map,
    .yajl_map_key = cb_map_key,
    .yajl_end_map = cb_end_map,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = cb_end_array,
};

static int start_json(pd_body_parser_t *p)
{
    p->mode = PD_BODY_JSON;
    p->json = yajl_alloc(&CALLBACKS, NULL, p);
    p->gen = yajl_gen_alloc(NULL);
    if (p->json == NULL || p->gen == NULL)
        return PD_ENOMEM;
    yajl_config(p->json, yajl_dont_validate_strings, 1);
    yajl_gen_config(p->gen, yajl_gen_validate_utf8, 0);
    yajl_gen_config(p->gen, yajl_gen_print_callback, gen_print, p);
    return PD_OK;
}

/* What a yajl call's status means for the caller; the first error sticks. */
static int json_status(pd_body_parser_t *p, yajl_status st)
{
    if (p->rc == 0 && st != yajl_status_ok)
        p->rc = PD_EINVAL; /* not well-formed (a cancel always set rc first) */
    return p->rc;
}

int pd_body_parser_init(pd_body_parser_t *p, const char *content_type, size_t max_record,
                        pd_lines_cb on_line, void *ctx)
{
    *p = (pd_body_parser_t){.max_record = max_record, .on_line = on_line, .ctx = ctx};
    if (content_type != NULL && strncasecmp(content_type, "application/json", 16) == 0)
        return start_json(p);
    if (content_type != NULL && strncasecmp(content_type, "application/x-ndjson", 20) == 0)
        return start_ndjson(p);
    return PD_OK;
}

int pd_body_parser_push(pd_body_parser_t *p, char *data, size_t len)
{
    if (p->rc != 0)
        return p->rc;
    size_t i = 0;
    for (; p->mode == PD_BODY_AUTO && i < len; i++) {
        if (data[i] == '\n')
            p->newlines++;
        else if (!is_space(data[i]))
            break;
    }
    if (p->mode == PD_BODY_AUTO && i < len) {
        int rc = data[i] == '[' ? start_json(p) : start_ndjson(p);
        if (rc < 0)
            return p->rc = rc;
    }
    if (p->mode == PD_BODY_NDJSON)
        return pd_lines_push(&p->lines, data + i, len - i);
    if (p->mode == PD_BODY_JSON && i < len)
        return json_status(p, yajl_parse(p->json, (const unsigned char *)data + i, len - i));
    return PD_OK;
}

int pd_body_parser_finish(pd_body_parser_t *p)
{
    if (p->rc != 0)
        return p->rc;
    if (p->mode == PD_BODY_NDJSON)
        return pd_lines_finish(&p->lines);
    if (p->mode == PD_BODY_JSON)
        return json_status(p, yajl_complete_parse(p->json));
    return PD_OK; /* empty, or only white space */
}

void pd_body_parser_close(pd_body_parser_t *p)
{
    if (p->mode == PD_BODY_NDJSON)
        pd_lines_close(&p->lines);
    if (p->json != NULL)
        yajl_free(p->json);
    if (p->gen != NULL)
        yajl_gen_free(p->gen);
    free(p->elem);
    p->json = NULL;
    p->gen = NULL;
    p->elem = NULL;
}
