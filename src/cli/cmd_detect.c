/*
 * `patternd detect [FILE|-]`: NDJSON records in, one NDJSON result per
 * record out, in input order.  No database; constant memory (one line, one
 * record and one detection at a time).
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pd/cli.h"
#include "pd/detect.h"
#include "pd/jsonw.h"
#include "pd/lines.h"
#include "pd/options.h"
#include "pd/record.h"

typedef struct detect_options {
    const char *tenant;
    size_t max_record;
} detect_options_t;

static const pd_option_t OPTIONS[] = {
    PD_OPTION_TENANT(detect_options_t, tenant, "tenant of records without tenant_id"),
    PD_OPTION_MAX_RECORD(detect_options_t, max_record, "longest accepted line"),
    PD_OPTION_END,
};

static const pd_command_t COMMAND = {
    "patternd detect [--tenant T] [--max-record-bytes N] [FILE|-]",
    "Reads workflow records (NDJSON, one object per line) from FILE or standard\n"
    "input and writes, for each record in order, one line:\n"
    "  {\"tenant_id\", \"workflow_id\", \"patterns\", \"characteristics\"}\n"
    "or, for a rejected record,\n"
    "  {\"line\": N, \"field\": F, \"error\": \"...\"}\n"
    "Exits 0 when the whole input was read, rejected records included.\n",
    OPTIONS,
    1,
};

typedef struct detect_ctx {
    const char *tenant;
    size_t max_record;
    pd_detection_t det;
    pd_buf_t out; /* the current output line */
} detect_ctx_t;

/* Writes the buffered line and a newline to stdout. */
static int flush_line(detect_ctx_t *ctx)
{
    pd_buf_put(&ctx->out, "\n", 1);
    if (ctx->out.failed)
        return PD_ENOMEM;
    if (fwrite(ctx->out.data, 1, ctx->out.len, stdout) != ctx->out.len)
        return PD_EIO;
    pd_buf_reset(&ctx->out);
    return PD_OK;
}

static int emit_rejection(detect_ctx_t *ctx, const pd_error_t *err)
{
    char message[PD_FIELD_MAX + PD_MESSAGE_MAX + 4];
    int n;
    if (err->field[0] != '\0')
        n = snprintf(message, sizeof(message), "%s: %s", err->field, err->message);
    else
        n = snprintf(message, sizeof(message), "%s", err->message);
    pd_buf_puts(&ctx->out, "{\"line\": ");
    pd_buf_int(&ctx->out, err->line);
    pd_buf_puts(&ctx->out, ", \"field\": ");
    pd_buf_json_string(&ctx->out, err->field, strlen(err->field));
    pd_buf_puts(&ctx->out, ", \"error\": ");
    pd_buf_json_string(&ctx->out, message,
                       (size_t)n < sizeof(message) ? (size_t)n : sizeof(message) - 1);
    pd_buf_puts(&ctx->out, "}");
    return flush_line(ctx);
}

static int on_line(void *arg, long line_no, const char *data, size_t len, bool oversize)
{
    detect_ctx_t *ctx = arg;
    pd_error_t err;
    pd_record_t rec;
    int rc;

    if (oversize) {
        pd_error_set(&err, PD_EINVAL, line_no, "", "record of %zu bytes exceeds the maximum of %zu",
                     len, ctx->max_record);
        return emit_rejection(ctx, &err);
    }
    rc = pd_record_parse(data, len, line_no, ctx->tenant, &rec, &err);
    if (rc == PD_EINVAL)
        return emit_rejection(ctx, &err);
    if (rc < 0)
        return rc;
    rc = pd_detect_record(&rec, &ctx->det);
    if (rc == PD_OK) {
        pd_jsonw_detection(&ctx->out, &ctx->det, &rec);
        rc = flush_line(ctx);
    }
    pd_record_close(&rec);
    return rc;
}

int pd_cmd_detect(int argc, char **argv)
{
    detect_options_t opt = {0};
    detect_ctx_t ctx = {0};
    int first;
    int status = pd_options_parse(&COMMAND, argc, argv, &opt, &first);
    if (status != PD_OPTIONS_RUN)
        return status;
    ctx.tenant = opt.tenant;
    size_t max_record = opt.max_record;
    const char *path = first < argc ? argv[first] : "-";
    int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY);
    if (fd < 0) {
        pd_cli_fail("cannot open %s: %s", path, strerror(errno));
        return PD_EXIT_FAIL;
    }

    enum { CHUNK = 1 << 20 };
    static char stdout_buf[1 << 16];
    setvbuf(stdout, stdout_buf, _IOFBF, sizeof(stdout_buf));
    char *chunk = malloc(CHUNK);
    pd_lines_t lines = {0};
    pd_detection_init(&ctx.det);
    ctx.max_record = max_record;
    int rc = chunk ? pd_lines_init(&lines, max_record, on_line, &ctx) : PD_ENOMEM;
    while (rc == PD_OK) {
        ssize_t n = read(fd, chunk, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            pd_cli_fail("reading %s: %s", path, strerror(errno));
            rc = PD_EIO;
            break;
        }
        rc = n == 0 ? pd_lines_finish(&lines) : pd_lines_push(&lines, chunk, (size_t)n);
        if (n == 0)
            break;
    }
    if (fflush(stdout) != 0 && rc == PD_OK) {
        pd_cli_fail("writing the output: %s", strerror(errno));
        rc = PD_EIO;
    }
    if (rc < 0 && rc != PD_EIO)
        pd_cli_fail("%s", pd_strerror(rc));
    pd_lines_close(&lines);
    pd_detection_close(&ctx.det);
    free(chunk);
    pd_buf_close(&ctx.out);
    if (fd != STDIN_FILENO)
        close(fd);
    return rc == PD_OK ? PD_EXIT_OK : PD_EXIT_FAIL;
}
