/*
 * HTTP bodies into records, streamed: NDJSON through the line splitter, or
 * the elements of a top-level JSON array found by a small state machine
 * that follows strings (with their escapes) and nesting to find the commas
 * between elements.  Each element's text then goes to the same callback
 * as an NDJSON line, so it is validated exactly as one by
 * pd_record_parse().
 *
 * Thread: the loop thread, chunk by chunk as the body arrives, so a large
 * body never stalls the loop for longer than one chunk takes.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pd/error.h"
#include "pd/source.h"

/* Where an array body's parser is. */
enum {
    A_OPEN,  /* before the '[' */
    A_FIRST, /* after the '[': an element or ']' */
    A_ELEM,  /* inside an element */
    A_NEXT,  /* after a ',': an element */
    A_DONE   /* after the ']': only white space */
};

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

int pd_body_parser_init(pd_body_parser_t *p, const char *content_type, size_t max_record,
                        pd_lines_cb on_line, void *ctx)
{
    *p = (pd_body_parser_t){.max_record = max_record, .on_line = on_line, .ctx = ctx};
    if (content_type != NULL && strncasecmp(content_type, "application/json", 16) == 0)
        p->mode = PD_BODY_ARRAY;
    else if (content_type != NULL && strncasecmp(content_type, "application/x-ndjson", 20) == 0)
        return start_ndjson(p);
    return PD_OK;
}

static int elem_put(pd_body_parser_t *p, char ch)
{
    if (p->elem_oversize || p->elem_len + 1 > p->max_record) {
        p->elem_oversize = true;
        p->elem_len++; /* counted, not kept */
        return PD_OK;
    }
    if (p->elem_len + 2 > p->elem_cap) {
        size_t cap = p->elem_cap ? p->elem_cap * 2 : 4096;
        char *grown = realloc(p->elem, cap);
        if (grown == NULL)
            return PD_ENOMEM;
        p->elem = grown;
        p->elem_cap = cap;
    }
    p->elem[p->elem_len++] = ch;
    return PD_OK;
}

static int elem_end(pd_body_parser_t *p)
{
    size_t len = p->elem_len;
    while (!p->elem_oversize && len > 0 && is_space(p->elem[len - 1]))
        len--;
    if (!p->elem_oversize)
        p->elem[len] = '\0';
    int rc = p->on_line(p->ctx, 0, p->elem_oversize ? NULL : p->elem, len, p->elem_oversize);
    p->elem_len = 0;
    p->elem_oversize = false;
    p->depth = 0;
    return rc;
}

/* One byte inside an element: keeps it, or ends the element at a ',' or the final ']'. */
static int elem_byte(pd_body_parser_t *p, char ch)
{
    if (p->in_string) {
        if (p->escaped)
            p->escaped = false;
        else if (ch == '\\')
            p->escaped = true;
        else if (ch == '"')
            p->in_string = false;
        return elem_put(p, ch);
    }
    if (ch == '"') {
        p->in_string = true;
    } else if (ch == '{' || ch == '[') {
        p->depth++;
    } else if ((ch == '}' || ch == ']') && p->depth == 0) {
        if (ch == '}')
            return PD_EINVAL; /* a stray '}' */
        p->state = A_DONE;
        return elem_end(p);
    } else if (ch == '}' || ch == ']') {
        p->depth--;
    } else if (ch == ',' && p->depth == 0) {
        p->state = A_NEXT;
        return elem_end(p);
    }
    return elem_put(p, ch);
}

static int array_byte(pd_body_parser_t *p, char ch)
{
    switch (p->state) {
    case A_OPEN:
        if (is_space(ch))
            return PD_OK;
        p->state = A_FIRST;
        return ch == '[' ? PD_OK : PD_EINVAL;
    case A_FIRST:
    case A_NEXT:
        if (is_space(ch))
            return PD_OK;
        if (ch == ']' && p->state == A_FIRST) {
            p->state = A_DONE;
            return PD_OK;
        }
        if (ch == ']' || ch == ',')
            return PD_EINVAL; /* "[,", "[1,]" */
        p->state = A_ELEM;
        return elem_byte(p, ch);
    case A_ELEM:
        return elem_byte(p, ch);
    default:
        return is_space(ch) ? PD_OK : PD_EINVAL; /* after the ']' */
    }
}

int pd_body_parser_push(pd_body_parser_t *p, char *data, size_t len)
{
    size_t i = 0;
    for (; p->mode == PD_BODY_AUTO && i < len; i++) {
        if (data[i] == '\n')
            p->newlines++;
        else if (!is_space(data[i]))
            break;
    }
    if (p->mode == PD_BODY_AUTO && i < len) {
        if (data[i] == '[')
            p->mode = PD_BODY_ARRAY;
        else if (start_ndjson(p) < 0)
            return PD_ENOMEM;
    }
    if (p->mode == PD_BODY_NDJSON)
        return pd_lines_push(&p->lines, data + i, len - i);
    for (; p->mode == PD_BODY_ARRAY && i < len; i++) {
        int rc = array_byte(p, data[i]);
        if (rc != 0)
            return rc;
    }
    return PD_OK;
}

int pd_body_parser_finish(pd_body_parser_t *p)
{
    if (p->mode == PD_BODY_NDJSON)
        return pd_lines_finish(&p->lines);
    if (p->mode == PD_BODY_ARRAY)
        return p->state == A_DONE ? PD_OK : PD_EINVAL;
    return PD_OK; /* empty, or only white space */
}

void pd_body_parser_close(pd_body_parser_t *p)
{
    if (p->mode == PD_BODY_NDJSON)
        pd_lines_close(&p->lines);
    free(p->elem);
    p->elem = NULL;
}
