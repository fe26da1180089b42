/*
 * Reading files and standard input on the libuv loop, with backpressure.
 *
 * Thread: the loop thread only.  The inputs are read in order, one chunk in
 * flight at a time (uv_fs_read, which libuv runs on its own threads), and
 * each chunk is split into lines that go to the caller's callback.  Before
 * each read the source asks can_read(): when the caller's queue is full it
 * stops and waits for pd_file_source_resume(), so memory is bounded by the
 * chunk, the longest line and what the caller holds, whatever the input's
 * size.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pd/error.h"
#include "pd/source.h"

enum { CHUNK_SIZE = 256 * 1024 };

struct pd_file_source {
    pd_file_source_config_t cfg;
    uv_loop_t *loop;
    int current;      /* index of the input being read */
    const char *name; /* its name for messages */
    uv_file fd;
    uv_fs_t read_req;
    char *chunk;
    bool reading; /* a read is in flight */
    bool paused;  /* waiting for pd_file_source_resume() */
    bool stop;    /* stop at the next chance */
    bool ended;   /* on_end ran */
    int rc;       /* why reading stopped, when it failed */
    char message[512];
    pd_lines_t lines;
    int64_t bytes_read, bytes_total;
};

static void read_more(pd_file_source_t *src);

static void fail(pd_file_source_t *src, int rc, const char *what, const char *detail)
{
    if (src->rc == 0) {
        src->rc = rc;
        snprintf(src->message, sizeof(src->message), "%s%s%s", what, detail ? ": " : "",
                 detail ? detail : "");
    }
    src->stop = true;
}

static void close_input(pd_file_source_t *src)
{
    if (src->fd >= 0 && src->fd != STDIN_FILENO) {
        uv_fs_t req;
        uv_fs_close(src->loop, &req, src->fd, NULL);
        uv_fs_req_cleanup(&req);
    }
    src->fd = -1;
}

static void end(pd_file_source_t *src)
{
    close_input(src);
    if (!src->ended) {
        src->ended = true;
        src->cfg.on_end(src->cfg.ctx, src->rc, src->message);
    }
}

/* Opens paths[current]; false (with the source failed) when it cannot. */
static bool open_input(pd_file_source_t *src)
{
    const char *path = src->cfg.paths[src->current];
    pd_lines_close(&src->lines);
    if (pd_lines_init(&src->lines, src->cfg.max_record, src->cfg.on_line, src->cfg.ctx) < 0) {
        fail(src, PD_ENOMEM, "out of memory", NULL);
        return false;
    }
    if (strcmp(path, "-") == 0) {
        src->name = "<stdin>";
        src->fd = STDIN_FILENO;
        return true;
    }
    src->name = path;
    uv_fs_t req;
    int fd = uv_fs_open(src->loop, &req, path, O_RDONLY, 0, NULL);
    uv_fs_req_cleanup(&req);
    if (fd < 0) {
        char what[300];
        snprintf(what, sizeof(what), "cannot open %s", path);
        fail(src, PD_EIO, what, uv_strerror(fd));
        return false;
    }
    src->fd = fd;
    return true;
}

static void report_line_error(pd_file_source_t *src, int rc)
{
    fail(src, rc, rc == PD_EIO ? "writing the rejects file failed" : pd_strerror(rc), NULL);
}

static void on_read(uv_fs_t *req)
{
    pd_file_source_t *src = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    src->reading = false;

    int rc = PD_OK;
    if (n < 0) {
        char what[300];
        snprintf(what, sizeof(what), "reading %s", src->name);
        fail(src, PD_EIO, what, uv_strerror((int)n));
    } else if (n == 0) {
        rc = pd_lines_finish(&src->lines);
        close_input(src);
        if (rc == PD_OK && !src->stop && ++src->current < src->cfg.n_paths && open_input(src)) {
            read_more(src);
            return;
        }
    } else {
        src->bytes_read += n;
        rc = pd_lines_push(&src->lines, src->chunk, (size_t)n);
    }
    if (rc != 0)
        report_line_error(src, rc);
    if (n <= 0 || src->stop) {
        end(src);
        return;
    }
    read_more(src);
}

static void read_more(pd_file_source_t *src)
{
    if (src->reading || src->ended)
        return;
    if (src->stop) {
        end(src);
        return;
    }
    if (!src->cfg.can_read(src->cfg.ctx)) {
        src->paused = true;
        return;
    }
    uv_buf_t buf = uv_buf_init(src->chunk, CHUNK_SIZE);
    src->read_req.data = src;
    int rc = uv_fs_read(src->loop, &src->read_req, src->fd, &buf, 1, -1, on_read);
    if (rc < 0) {
        char what[300];
        snprintf(what, sizeof(what), "reading %s", src->name);
        fail(src, PD_EIO, what, uv_strerror(rc));
        end(src);
        return;
    }
    src->reading = true;
}

/* The inputs' total size, for the share-of-input progress; -1 when any is a pipe. */
static int64_t total_size(const pd_file_source_config_t *cfg)
{
    int64_t total = 0;
    for (int i = 0; i < cfg->n_paths; i++) {
        struct stat st;
        bool is_stdin = strcmp(cfg->paths[i], "-") == 0;
        int ok = is_stdin ? fstat(STDIN_FILENO, &st) : stat(cfg->paths[i], &st);
        if (ok != 0 || !S_ISREG(st.st_mode))
            return -1;
        total += st.st_size;
    }
    return total;
}

static void free_handle(uv_handle_t *handle)
{
    free(handle);
}

/* Idle callback: the first read starts from the loop, as every later one does. */
static void on_start(uv_idle_t *idle)
{
    pd_file_source_t *src = idle->data;
    uv_idle_stop(idle);
    uv_close((uv_handle_t *)idle, free_handle);
    if (open_input(src))
        read_more(src);
    else
        end(src);
}

int pd_file_source_start(uv_loop_t *loop, const pd_file_source_config_t *cfg,
                         pd_file_source_t **out)
{
    pd_file_source_t *src = calloc(1, sizeof(*src));
    uv_idle_t *idle = malloc(sizeof(*idle));
    if (src == NULL || idle == NULL || (src->chunk = malloc(CHUNK_SIZE)) == NULL) {
        free(idle);
        pd_file_source_destroy(src);
        return PD_ENOMEM;
    }
    src->cfg = *cfg;
    src->loop = loop;
    src->fd = -1;
    src->bytes_total = total_size(cfg);
    idle->data = src;
    if (uv_idle_init(loop, idle) != 0 || uv_idle_start(idle, on_start) != 0) {
        free(idle);
        pd_file_source_destroy(src);
        return PD_ENOMEM;
    }
    *out = src;
    return PD_OK;
}

void pd_file_source_resume(pd_file_source_t *src)
{
    if (src->paused) {
        src->paused = false;
        read_more(src);
    }
}

void pd_file_source_stop(pd_file_source_t *src)
{
    src->stop = true;
    if (src->paused) {
        src->paused = false;
        end(src);
    }
}

const char *pd_file_source_name(const pd_file_source_t *src)
{
    return src->name != NULL ? src->name : "";
}

int64_t pd_file_source_bytes_read(const pd_file_source_t *src)
{
    return src->bytes_read;
}

int64_t pd_file_source_bytes_total(const pd_file_source_t *src)
{
    return src->bytes_total;
}

void pd_file_source_destroy(pd_file_source_t *src)
{
    if (src == NULL)
        return;
    pd_lines_close(&src->lines);
    free(src->chunk);
    free(src);
}
