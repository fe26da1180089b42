/*
 * Log lines on stderr for the long-running service: one line per event,
 *   2026-11-26T10:00:00.123Z level=info worker=loop message
 * with the level and the thread ("loop", "writer-2", "reader-1").  Any
 * thread may log: each line is written with one call, so lines from
 * different threads do not interleave.  Set the level before starting
 * threads.
 */
#ifndef PD_LOG_H
#define PD_LOG_H

typedef enum pd_log_level { PD_LOG_DEBUG, PD_LOG_INFO, PD_LOG_WARN, PD_LOG_ERROR } pd_log_level_t;

void pd_log_set_level(pd_log_level_t level);

/* "debug", "info", "warn", "error" -> level; PD_EINVAL otherwise. */
int pd_log_parse_level(const char *name, pd_log_level_t *out);

/* who: the thread, e.g. "loop" or "writer-2". */
void pd_log(pd_log_level_t level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
