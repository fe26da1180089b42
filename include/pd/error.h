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

typedef struct pd_error {
    long line;                /* 1-based input line or batch index; 0 when not about a line */
    char field[PD_FIELD_MAX]; /* the offending field, "" when not about one field */
    char message[PD_MESSAGE_MAX];
} pd_error_t;

/* Fills err (when not NULL) and returns code. */
int pd_error_set(pd_error_t *err, int code, long line, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* A static description of a PD_E* code. */
const char *pd_strerror(int code);

#endif
