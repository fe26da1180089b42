/*
 * The dead-letter sink of `patternd ingest`: every rejected record, with
 * its file, line, workflow id (when the id itself was valid), field and
 * reason and the input itself, one JSON object per line, to a file or to
 * standard output ("-"); or one message per line on standard error.
 *
 * Thread: the loop thread.  A line that is not valid UTF-8 is kept as
 * base64, an oversize one by its size only, so nothing rejected is lost.
 *
 * A reject must never stop the run (docs/spec.md §1: a rejected record never stops
 * the rest), so nothing here trusts the text it is given: every string is
 * made valid UTF-8 (pd_json_text()) before it goes into the JSON line, so
 * jansson cannot refuse it, and when even that line cannot be built for
 * want of memory a fixed line still records the reject.  Only a failed
 * write to the file is an error.  On standard error, control
 * characters are escaped, so that input cannot drive a terminal or forge
 * log lines.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "pd/json.h"
#include "pd/sink.h"
#include "pd/utf8.h"

struct pd_rejects {
    FILE *file; /* NULL: standard error */
    bool is_stdout;
    bool tty;
};

int pd_rejects_open(const char *path, bool tty, pd_rejects_t **out, pd_error_t *err)
{
    pd_rejects_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    r->tty = tty;
    if (path != NULL && strcmp(path, "-") == 0) {
        r->file = stdout;
        r->is_stdout = true;
    } else if (path != NULL && (r->file = fopen(path, "w")) == NULL) {
        int rc = pd_error_set(err, PD_EIO, 0, "", "cannot write %s: %s", path, strerror(errno));
        free(r);
        return rc;
    }
    *out = r;
    return PD_OK;
}

/* The line as "input", or as "input_base64" when it is not UTF-8; false when out of memory. */
static bool set_input(json_t *o, const char *data, size_t len)
{
    if (pd_utf8_valid(data, len))
        return json_object_set_new(o, "input", json_stringn(data, len)) == 0;
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(cap);
    if (b64 == NULL)
        return false;
    sodium_bin2base64(b64, cap, (const unsigned char *)data, len, sodium_base64_VARIANT_ORIGINAL);
    bool ok = json_object_set_new(o, "input_base64", json_string(b64)) == 0;
    free(b64);
    return ok;
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

/* Sets key to value, a new reference; false when value is NULL or memory ran out. */
static bool put(json_t *o, const char *key, json_t *value)
{
    return json_object_set_new(o, key, value) == 0;
}

/* The workflow's id as the input gave it: an integer or a string (new reference). */
static json_t *workflow_id(const pd_record_t *rec)
{
    if (rec->workflow_id_is_int)
        return json_integer((json_int_t)strtoll(rec->workflow_id, NULL, 10));
    return pd_json_text(rec->workflow_id, strlen(rec->workflow_id));
}

int pd_rejects_write(pd_rejects_t *r, const char *input, const pd_record_t *rec, const char *data,
                     size_t len, bool oversize, const pd_error_t *err)
{
    if (input == NULL)
        input = "";
    if (r->file == NULL)
        return write_stderr(r, input, err);

    json_t *o = json_object();
    bool built =
        o != NULL && put(o, "file", pd_json_text(input, strlen(input))) &&
        put(o, "line", json_integer((json_int_t)err->line)) &&
        (rec == NULL || rec->workflow_id[0] == '\0' || put(o, "workflow_id", workflow_id(rec))) &&
        put(o, "field", pd_json_text(err->field, strnlen(err->field, PD_FIELD_MAX))) &&
        put(o, "error", pd_json_text(err->message, strnlen(err->message, PD_MESSAGE_MAX)));
    if (built && oversize)
        built = json_object_set_new(o, "input_bytes", json_integer((json_int_t)len)) == 0;
    else if (built && data != NULL)
        built = set_input(o, data, len);
    if (built) {
        int rc = json_dumpf(o, r->file, 0) == 0 && fputc('\n', r->file) != EOF ? PD_OK : PD_EIO;
        json_decref(o);
        return rc;
    }
    json_decref(o);
    /* Out of memory for this line: record at least where the reject was. */
    char fallback[128];
    int n = snprintf(fallback, sizeof(fallback),
                     "{\"line\": %ld, \"error\": \"out of memory while recording this reject\"}\n",
                     err->line);
    return fwrite(fallback, 1, (size_t)n, r->file) == (size_t)n ? PD_OK : PD_EIO;
}

int pd_rejects_close(pd_rejects_t *r)
{
    if (r == NULL)
        return PD_OK;
    int rc = PD_OK;
    if (r->is_stdout)
        rc = fflush(stdout) != 0 || ferror(stdout) ? PD_EIO : PD_OK;
    else if (r->file != NULL && fclose(r->file) != 0)
        rc = PD_EIO;
    free(r);
    return rc;
}
