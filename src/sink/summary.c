/*
 * What `patternd ingest` shows while and after it runs: a progress line on
 * a terminal, and the summary of docs/spec.md §4 as the last line of its output.
 * Loop thread.
 */
#include <jansson.h>

#include "pd/sink.h"

void pd_progress_draw(FILE *to, const pd_tally_t *t, double seconds, int64_t bytes_read,
                      int64_t bytes_total)
{
    long done = pd_tally_settled(t) + t->errors;
    fprintf(to, "\r\033[K%ld records read, %ld committed or duplicate, %.0f records/s", t->total,
            done, seconds > 0 ? (double)done / seconds : 0.0);
    if (bytes_total > 0)
        fprintf(to, ", %.0f%% of input", 100.0 * (double)bytes_read / (double)bytes_total);
    fprintf(to, ", %ld rejected", t->rejected);
}

void pd_summary_print(FILE *to, const pd_tally_t *t, double seconds, const pd_latency_t *commits,
                      const char *stopped)
{
    json_t *summary = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:{s:f, s:f, s:f}}",
        "total_workflows", (json_int_t)t->total, "processed", (json_int_t)t->processed,
        "duplicates", (json_int_t)t->duplicates, "revised", (json_int_t)t->revised, "stale",
        (json_int_t)t->stale, "conflicts", (json_int_t)t->conflicts, "rejected",
        (json_int_t)t->rejected, "total_patterns", (json_int_t)t->total_patterns, "new_patterns",
        (json_int_t)t->new_patterns, "errors", (json_int_t)t->errors, "elapsed_seconds", seconds,
        "workflows_per_second", seconds > 0 ? (double)pd_tally_settled(t) / seconds : 0.0,
        "batches", (json_int_t)t->batches, "commit_ms", "p50", pd_latency_quantile(commits, 0.5),
        "p99", pd_latency_quantile(commits, 0.99), "max", commits->max_ms);
    if (summary != NULL && stopped != NULL &&
        json_object_set_new(summary, "stopped", json_string(stopped)) < 0) {
        json_decref(summary);
        summary = NULL;
    }
    if (summary != NULL) {
        json_dumpf(summary, to, JSON_REAL_PRECISION(6));
        fputc('\n', to);
        json_decref(summary);
    }
}
