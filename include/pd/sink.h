/*
 * Where `patternd ingest` puts what it has to say: rejected records (to a
 * dead-letter file or standard error), the progress line on a terminal and
 * the closing JSON summary (docs/spec.md §4).  Loop thread only.
 */
#ifndef PD_SINK_H
#define PD_SINK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "pd/batch.h"
#include "pd/error.h"
#include "pd/latency.h"
#include "pd/record.h"

typedef struct pd_rejects pd_rejects_t;

/*
 * Opens the rejects sink: the NDJSON file path, the same NDJSON on standard
 * output when path is "-", or one message per line on standard error when
 * path is NULL (tty: erase the progress line first).  *out is released by
 * pd_rejects_close(), which flushes standard output but leaves it open.
 * Returns 0, or PD_EIO with the reason in err.
 */
int pd_rejects_open(const char *path, bool tty, pd_rejects_t **out, pd_error_t *err);

/*
 * Writes one rejected record: input names the file, err the line, field and
 * reason; data/len is the line itself (for an oversize line data is NULL and
 * len its size).  rec, when not NULL, is the record as far as it parsed:
 * its workflow_id, when set, goes into the file's line as "workflow_id"
 * (an integer when the input's id was one).  Returns 0, or PD_EIO when the
 * file cannot be written.
 */
int pd_rejects_write(pd_rejects_t *r, const char *input, const pd_record_t *rec, const char *data,
                     size_t len, bool oversize, const pd_error_t *err);

/* Closes the sink; PD_EIO when the file (or standard output) could not be written to the end. */
int pd_rejects_close(pd_rejects_t *r);

/* The progress line, drawn over itself on a terminal. */
void pd_progress_draw(FILE *to, const pd_tally_t *t, double seconds, int64_t bytes_read,
                      int64_t bytes_total);

/*
 * The summary line of docs/spec.md §4 with throughput and commit latencies, as one
 * JSON line.  stopped, when not NULL, says why reading stopped before the
 * end of the input (e.g. "max-rejects") and goes in as "stopped".
 */
void pd_summary_print(FILE *to, const pd_tally_t *t, double seconds, const pd_latency_t *commits,
                      const char *stopped);

#endif
