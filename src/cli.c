/* Helpers shared by the subcommands. */
#include <stdarg.h>
#include <stdio.h>

#include "pd/cli.h"

void pd_cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("patternd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
