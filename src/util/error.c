/* Filling pd_error_t; see include/pd/error.h.  Any thread, nothing shared. */
#include "pd/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int pd_error_set(pd_error_t *err, int code, long line, const char *field, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->line = line;
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return code;
}

const char *pd_strerror(int code)
{
    switch (code) {
    case PD_OK:
        return "success";
    case PD_EINVAL:
        return "invalid input";
    case PD_ENOMEM:
        return "out of memory";
    case PD_EIO:
        return "input/output error";
    case PD_EDB:
        return "database error";
    case PD_ECONN:
        return "database connection failed";
    case PD_ERETRY:
        return "transient database error";
    case PD_ECONFLICT:
        return "conflicting state";
    default:
        return "unknown error";
    }
}
