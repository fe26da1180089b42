/*
 * Error codes and the optional error detail that callers may pass down.
 *
 * Every function of patternd returns 0 on success or a negative PD_E* code;
 * where the caller needs to know more (which line, which field, what SQL
 * said), it passes a pd_error_t that the callee fills.  Passing NULL is
 * always allowed.
 */
#ifndef PD_ERROR_H
#define PD_ERROR_H

#include <stdbool.h>
#include <stddef.h>

enum {
    PD_OK = 0,
    PD_EINVAL = -1,   /* bad input: a rejected record, a bad argument */
    PD_ENOMEM = -2,   /* allocation failed */
    PD_EIO = -3,      /* reading or writing a file failed */
    PD_EDB = -4,      /* PostgreSQL reported an error */
    PD_ECONN = -5,    /* the database connection failed or was lost */
    PD_ERETRY = -6,   /* a transient database error: the batch may be retried */
    PD_ECONFLICT = -7 /* a state that must not be overwritten (e.g. edited migration) */
};

#define PD_FIELD_MAX 48
#define PD_MESSAGE_MAX 512

/*
 * field and message are always valid UTF-8 (pd_error_set() sees to it), so
 * they can go into a JSON document as they are: messages quote input, and a
 * fixed buffer must not cut a character in two.
 */
typedef struct pd_error {
    long line;                /* 1-based input line or batch index; 0 when not about a line */
    char field[PD_FIELD_MAX]; /* the offending field, "" when not about one field */
    char message[PD_MESSAGE_MAX];
} pd_error_t;

/*
 * Fills err (when not NULL) and returns code.  A field or message longer
 * than its buffer is cut on a character boundary, and any byte of either
 * that is not UTF-8 becomes U+FFFD, whatever the arguments held.
 */
int pd_error_set(pd_error_t *err, int code, long line, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/*
 * Writes the n bytes at s into dst (cap > 0 bytes, always NUL-terminated) as
 * text that is safe to print anywhere: control characters (C0, DEL, C1)
 * become \u00XX (\n, \t and \r as such), bytes that are not UTF-8 \xNN,
 * and with quote also '"' and '\\' are escaped, so that the result can sit
 * between quotes in a message.  Stops before a character whose text would
 * not fit, so the result never ends inside a character.  Returns how many
 * bytes of s were written (n when all of them were).
 */
size_t pd_error_escape(char *dst, size_t cap, const char *s, size_t n, bool quote);

/* A static description of a PD_E* code. */
const char *pd_strerror(int code);

#endif
