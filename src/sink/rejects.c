/*
 * The dead-letter sink of `patternd ingest`: every rejected record, with
 * its file, line, field and reason and the input itself, one JSON object
 * per line (or one message per line on standard error).
 *
 * Thread: the loop thread.  A line that is not valid UTF-8 is kept as
 * base64, an oversize one by its size only, so nothing rejected is lost.
 *
 * A reject must never stop the run (SPEC §1: a rejected record never stops
 * the rest), so nothing here trusts the text it is given: every string is
 * made valid UTF-8 before it goes into the JSON line, which is written by
 * hand into a buffer (no encoder that could refuse it), and when even that
 * buffer cannot be allocated a fixed line still records the reject.  Only a
 * failed write to the file is an error.  On standard error, control
 * characters are escaped, so that input cannot drive a terminal or forge
 * log lines.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "pd/buf.h"
#include "pd/sink.h"
#include "pd/utf8.h"

struct pd_rejects {
    FILE *file; /* NULL: standard error */
    bool tty;
    pd_buf_t line; /* the JSON line being written, reused */
    pd_buf_t text; /* scratch for pd_utf8_sanitize() */
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

/* Appends ", \"key\": " and s (any bytes) as a JSON string, invalid bytes as U+FFFD. */
static void put_string(pd_rejects_t *r, const char *key, const char *s, size_t n)
{
    pd_buf_puts(&r->line, key);
    if (pd_utf8_valid(s, n)) {
        pd_buf_json_string(&r->line, s, n);
        return;
    }
    pd_buf_reset(&r->text);
    pd_utf8_sanitize(&r->text, s, n);
    pd_buf_json_string(&r->line, r->text.data, r->text.len);
}

/* The line as "input", or as "input_base64" when it is not UTF-8. */
static void put_input(pd_rejects_t *r, const char *data, size_t len)
{
    if (pd_utf8_valid(data, len)) {
        PD_BUF_LIT(&r->line, ", \"input\": ");
        pd_buf_json_string(&r->line, data, len);
        return;
    }
    PD_BUF_LIT(&r->line, ", \"input_base64\": \"");
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    if (pd_buf_reserve(&r->line, cap) == 0) {
        sodium_bin2base64(r->line.data + r->line.len, cap, (const unsigned char *)data, len,
                          sodium_base64_VARIANT_ORIGINAL);
        r->line.len += cap - 1; /* without the NUL */
    }
    PD_BUF_LIT(&r->line, "\"");
}

/* Standard error: one line, each part escaped (see the note at the top). */
static int write_stderr(const pd_rejects_t *r, const char *input, const pd_error_t *err)
{
    char file[1024], field[PD_FIELD_MAX * 4], message[PD_MESSAGE_MAX * 4];
    pd_error_escape(file, sizeof(file), input, strlen(input), false);
    pd_error_escape(field, sizeof(field), err->field, strnlen(err->field, PD_FIELD_MAX), false);
    pd_error_escape(message, sizeof(message), err->message, strnlen(err->message, PD_MESSAGE_MAX),
                    false);
    fprintf(stderr, "%spatternd: %s:%ld: %s%s%s\n", r->tty ? "\r\033[K" : "", file, err->line,
            field, field[0] ? ": " : "", message);
    return PD_OK;
}

int pd_rejects_write(pd_rejects_t *r, const char *input, const char *data, size_t len,
                     bool oversize, const pd_error_t *err)
{
    if (input == NULL)
        input = "";
    if (r->file == NULL)
        return write_stderr(r, input, err);

    pd_buf_t *b = &r->line;
    b->failed = 0;
    r->text.failed = 0;
    pd_buf_reset(b);
    put_string(r, "{\"file\": ", input, strlen(input));
    PD_BUF_LIT(b, ", \"line\": ");
    pd_buf_int(b, err->line);
    put_string(r, ", \"field\": ", err->field, strnlen(err->field, PD_FIELD_MAX));
    put_string(r, ", \"error\": ", err->message, strnlen(err->message, PD_MESSAGE_MAX));
    if (oversize) {
        PD_BUF_LIT(b, ", \"input_bytes\": ");
        pd_buf_int(b, (int64_t)len);
    } else if (data != NULL) {
        put_input(r, data, len);
    }
    PD_BUF_LIT(b, "}\n");

    size_t written;
    if (!b->failed && !r->text.failed) {
        written = fwrite(b->data, 1, b->len, r->file);
        return written == b->len ? PD_OK : PD_EIO;
    }
    /* Out of memory for this line: record at least where the reject was. */
    char fallback[128];
    int n = snprintf(fallback, sizeof(fallback),
                     "{\"line\": %ld, \"error\": \"out of memory while recording this reject\"}\n",
                     err->line);
    written = fwrite(fallback, 1, (size_t)n, r->file);
    return written == (size_t)n ? PD_OK : PD_EIO;
}

int pd_rejects_close(pd_rejects_t *r)
{
    if (r == NULL)
        return PD_OK;
    int rc = r->file != NULL && fclose(r->file) != 0 ? PD_EIO : PD_OK;
    pd_buf_close(&r->line);
    pd_buf_close(&r->text);
    free(r);
    return rc;
}
