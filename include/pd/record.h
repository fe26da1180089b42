/*
 * One workflow record (docs/spec.md §1): parsing and validation of one NDJSON line.
 *
 * Shared by `patternd detect`, `patternd ingest` and the HTTP service, so a
 * record is accepted or rejected for the same reason whatever its route.
 * A parsed record owns a copy of its strings in one heap block, so it can be
 * handed to another thread and outlive the line it came from.
 */
#ifndef PD_RECORD_H
#define PD_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pd/error.h"

#define PD_TENANT_MAX 64       /* bytes of a tenant id */
#define PD_WORKFLOW_ID_MAX 256 /* bytes of a workflow id */
#define PD_RECORD_MAX_DEFAULT (1024 * 1024)
#define PD_DURATION_MAX_MS (31536000LL * 1000) /* one year */

/*
 * Bounds on a record's numbers, far beyond any real workflow, so
 * that whatever is stored, the statistics read back fit their types for any
 * number n of occurrences a pattern can have (occurrence_count is a bigint,
 * n < 2^63):
 *
 * - total_tokens <= 10^12 (a million times a 1M-token context window).
 *   avg_tokens_with_llm <= the largest value, so it fits its bigint column;
 *   and 10^12 < 2^53, so the averages are exact even for a JSON reader that
 *   holds every number as a double (JavaScript).
 * - actual_cost_total <= 10^9 US dollars.  avg_cost_with_llm <= 10^9, and
 *   potential_monthly_savings <= 0.95 * 10^9 * n < 10^28: far inside a
 *   double (10^308), which is what readers convert to.
 * - retry_count and error_count <= 10^9 each (a retry a second for 31
 *   years).  sum_retry is a numeric, exact at any n; error_count is only
 *   kept in the characteristics JSON, exact as a double.
 *
 * The sums are PostgreSQL numeric (no overflow); the variance test is
 * numeric too (durations are bounded to a year above).
 */
#define PD_TOTAL_TOKENS_MAX 1000000000000LL
#define PD_COST_MAX 1e9
#define PD_COST_MAX_TEXT "1000000000" /* PD_COST_MAX as rejection messages print it */
#define PD_RETRY_COUNT_MAX 1000000000LL
#define PD_ERROR_COUNT_MAX 1000000000LL

/* Bytes of input a rejection message quotes, escaped (e.g. a bad start_time). */
#define PD_QUOTE_MAX 96

/* A text field: ptr is NULL when the field was absent or null. */
typedef struct pd_text {
    const char *ptr; /* NUL-terminated, valid UTF-8, owned by the record */
    size_t len;      /* bytes, without the NUL */
} pd_text_t;

typedef struct pd_record {
    long line; /* input line (or batch index), 1-based */
    char tenant_id[PD_TENANT_MAX + 1];
    char workflow_id[PD_WORKFLOW_ID_MAX + 1];
    bool workflow_id_is_int; /* the id was a JSON integer; echoed as one by detect */
    pd_text_t nl_input;
    pd_text_t workflow_template;
    pd_text_t error_message;
    int64_t error_count;
    int64_t duration_ms; /* duration_seconds rounded to the millisecond */
    int64_t retry_count;
    int64_t total_tokens;
    double cost; /* actual_cost_total, US dollars */
    bool has_start_time;
    int64_t start_time_us; /* event time, microseconds since the Unix epoch, UTC */
    bool has_version;      /* updated_at was given */
    int64_t version_us; /* updated_at, as start_time_us: the record's version (docs/spec.md §3.4) */
    bool unfinished;    /* status is "pending" or "running": counts nowhere yet */
    int64_t digest;     /* a hash of the content patternd reads (same version: same content?) */
    char *strings;      /* the one heap block behind every pointer above */
} pd_record_t;

/*
 * Parses and validates one line (without its newline; it need not be
 * NUL-terminated).  default_tenant is used when the record has no tenant_id
 * (NULL means "default").  On success fills out, which the caller releases
 * with pd_record_close().  On rejection returns PD_EINVAL and fills err with
 * the line, the field and the reason; out then holds nothing to release,
 * but its workflow_id (and workflow_id_is_int) is set when the id itself was
 * valid, so that the rejection can name the workflow (workflow_id[0] is
 * '\0' otherwise: the line is not a JSON object, or its id is absent or
 * bad).  Returns PD_ENOMEM when memory ran out (out then holds nothing).
 */
int pd_record_parse(const char *line, size_t len, long line_no, const char *default_tenant,
                    pd_record_t *out, pd_error_t *err);

/* Releases what pd_record_parse() put in rec; safe on a zeroed record. */
void pd_record_close(pd_record_t *rec);

/* Moves src into dst (dst takes ownership); src is left empty. */
void pd_record_move(pd_record_t *dst, pd_record_t *src);

/*
 * True when tenant is 1-64 characters of [A-Za-z0-9._-].
 */
bool pd_record_tenant_valid(const char *tenant);

/*
 * Parses an ISO-8601 / RFC 3339 timestamp ("2026-10-21T13:06:23Z",
 * "2026-10-21 13:06:23.5+02:00", "2026-10-21"); a time without an offset is
 * UTC, so SQLite's "2026-10-21 13:06:23" reads as UTC.  Returns 0 and the
 * microseconds since the Unix epoch, or PD_EINVAL.
 */
int pd_timestamp_parse(const char *s, size_t len, int64_t *out_us);

#endif
