/* Helpers shared by the subcommands. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "pd/cli.h"
#include "pd/record.h"

void pd_cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("patternd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

bool pd_cli_tenant(const char *opt, const char *arg)
{
    if (pd_tenant_valid(arg))
        return true;
    pd_cli_fail("%s: '%s' is not 1-64 characters of A-Z a-z 0-9 . _ -", opt, arg);
    return false;
}

bool pd_cli_count(const char *opt, const char *arg, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || v < min || v > max) {
        pd_cli_fail("%s: expected a number from %ld to %ld, got '%s'", opt, min, max, arg);
        return false;
    }
    *out = v;
    return true;
}
