/* Service log lines; see include/pd/log.h.  Any thread. */
#include "pd/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pd/error.h"

static pd_log_level_t threshold = PD_LOG_INFO;
static const char *const NAMES[] = {"debug", "info", "warn", "error"};

void pd_log_set_level(pd_log_level_t level)
{
    threshold = level;
}

int pd_log_parse_level(const char *name, pd_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, NAMES[i]) == 0) {
            *out = (pd_log_level_t)i;
            return PD_OK;
        }
    }
    return PD_EINVAL;
}

void pd_log(pd_log_level_t level, const char *who, const char *fmt, ...)
{
    if (level < threshold)
        return;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char line[2048];
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s worker=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, NAMES[level], who);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line: stdio locks the stream for the call. */
    fprintf(stderr, "%s\n", line);
}
