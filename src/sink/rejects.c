/*
 * The dead-letter sink of `patternd ingest`: every rejected record, with
 * its file, line, field and reason and the input itself, one JSON object
 * per line (or one message per line on standard error).
 *
 * Thread: the loop thread.  A line that is not valid UTF-8 is kept as
 * base64, an oversize one by its size only, so nothing rejected is lost.
 */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "pd/sink.h"

struct pd_rejects {
    FILE *file; /* NULL: standard error */
    bool tty;
};

int pd_rejects_open(const char *path, bool tty, pd_rejects_t **out, pd_error_t *err)
{
    pd_rejects_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    r->tty = tty;
    if (path != NULL && (r->file = fopen(path, "w")) == NULL) {
        int rc = pd_error_set(err, PD_EIO, 0, "", "cannot write %s: %s", path, strerror(errno));
        free(r);
        return rc;
    }
    *out = r;
    return PD_OK;
}

/* The line as "input", or as "input_base64" when it is not UTF-8 (or holds a NUL). */
static void set_input(json_t *o, const char *data, size_t len)
{
    json_t *text = json_stringn(data, len);
    if (text != NULL) {
        json_object_set_new(o, "input", text);
        return;
    }
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(cap);
    if (b64 != NULL) {
        sodium_bin2base64(b64, cap, (const unsigned char *)data, len,
                          sodium_base64_VARIANT_ORIGINAL);
        json_object_set_new(o, "input_base64", json_string(b64));
        free(b64);
    }
}

int pd_rejects_write(pd_rejects_t *r, const char *input, const char *data, size_t len,
                     bool oversize, const pd_error_t *err)
{
    if (r->file == NULL) {
        fprintf(stderr, "%spatternd: %s:%ld: %s%s%s\n", r->tty ? "\r\033[K" : "", input, err->line,
                err->field, err->field[0] ? ": " : "", err->message);
        return PD_OK;
    }
    json_t *o = json_pack("{s:s, s:I, s:s, s:s}", "file", input, "line", (json_int_t)err->line,
                          "field", err->field, "error", err->message);
    if (o == NULL)
        return PD_ENOMEM;
    if (oversize)
        json_object_set_new(o, "input_bytes", json_integer((json_int_t)len));
    else
        set_input(o, data, len);
    int rc = json_dumpf(o, r->file, 0) == 0 && fputc('\n', r->file) != EOF ? PD_OK : PD_EIO;
    json_decref(o);
    return rc;
}

int pd_rejects_close(pd_rejects_t *r)
{
    if (r == NULL)
        return PD_OK;
    int rc = r->file != NULL && fclose(r->file) != 0 ? PD_EIO : PD_OK;
    free(r);
    return rc;
}
