/*
 * Reading files and standard input on the libuv loop, with backpressure.
 *
 * Thread: the loop thread, except for the reads themselves.  The inputs are
 * read in order, one step in flight at a time, and each step's bytes are
 * split into lines that go to the caller's callback on the loop thread.
 * Before each step the source asks can_read(): when the caller's queue is
 * full it stops and waits for pd_file_source_resume(), so memory is bounded
 * by the chunk, the longest line and what the caller holds, whatever the
 * input's size.
 *
 * gzip: an input whose first two bytes are gzip's magic (1f 8b), whatever
 * its name, standard input included, is inflated.  Its steps run on libuv's
 * thread pool (uv_queue_work): read compressed bytes when none are left,
 * inflate until one chunk of output is full, and hand that chunk to the
 * loop thread, which splits it as it would a chunk of a plain file.  So a
 * compressed chunk that inflates a thousandfold (a gzip bomb) still arrives
 * one chunk at a time, each behind can_read(), and the longest line is
 * bounded as in a plain file.  Members written one after another (cat a.gz
 * b.gz, pigz) are read as one stream, as gzip -d does; a stream that stops
 * inside a member, or bytes that are not gzip, fail the input.  Progress
 * counts the compressed bytes, so it compares with the files' sizes.
 * A plain input is read with uv_fs_read, on the same thread pool.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "pd/error.h"
#include "pd/source.h"

enum { CHUNK_SIZE = 256 * 1024 };

/* What a gzip step did, written by the thread-pool thread, read by the loop after it. */
typedef struct gzip_step {
    size_t out;     /* inflated bytes in chunk */
    int64_t read;   /* compressed bytes read */
    int read_errno; /* a failed read, else 0 */
    int zrc;        /* zlib's error, else Z_OK */
    char zmsg[128]; /* zlib's message for it */
} gzip_step_t;

struct pd_file_source {
    pd_file_source_config_t cfg;
    uv_loop_t *loop;
    int current;      /* index of the input being read */
    const char *name; /* its name for messages */
    uv_file fd;
    uv_fs_t read_req;
    char *chunk;
    bool reading; /* a read (or a gzip step) is in flight */
    bool paused;  /* waiting for pd_file_source_resume() */
    bool stop;    /* stop at the next chance */
    bool ended;   /* on_end ran */
    int rc;       /* why reading stopped, when it failed */
    char message[512];
    pd_lines_t lines;
    int64_t bytes_read, bytes_total;
    /* The input's first bytes, kept in chunk until they say whether it is gzip. */
    bool sniffing;
    size_t head;
    /* gzip: the stream (set up on the first gzip input), its compressed bytes, the step. */
    bool gzip;     /* the current input is gzip */
    bool z_ready;  /* inflateInit2() was done */
    bool z_member; /* inside a member whose end was not read yet */
    bool z_eof;    /* the compressed input ended */
    z_stream z;
    char *zin; /* CHUNK_SIZE compressed bytes */
    uv_work_t work;
    gzip_step_t step;
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

/* Fails the source with "<what> <input name>: detail". */
static void fail_input(pd_file_source_t *src, const char *what, const char *detail)
{
    char head[300];
    snprintf(head, sizeof(head), "%s%s", what, src->name);
    fail(src, PD_EIO, head, detail);
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
    src->sniffing = true;
    src->head = 0;
    src->gzip = false;
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
        fail_input(src, "cannot open ", uv_strerror(fd));
        return false;
    }
    src->fd = fd;
    return true;
}

/* on_line's non-zero return: PD_SOURCE_STOP ends reading quietly, an error fails it. */
static void report_line_error(pd_file_source_t *src, int rc)
{
    if (rc > 0)
        src->stop = true;
    else
        fail(src, rc, rc == PD_EIO ? "writing the rejects file failed" : pd_strerror(rc), NULL);
}

/*
 * The current input ended: delivers its last line, unless reading stopped,
 * and opens the next input.  True when there is one to read.
 */
static bool next_input(pd_file_source_t *src)
{
    int rc = src->stop ? 0 : pd_lines_finish(&src->lines);
    close_input(src);
    if (rc != 0)
        report_line_error(src, rc);
    return !src->stop && ++src->current < src->cfg.n_paths && open_input(src);
}

/* After a step: hands its bytes on, then reads on, goes to the next input, or ends. */
static void after_step(pd_file_source_t *src, char *data, size_t n, bool input_ended)
{
    int rc = n > 0 ? pd_lines_push(&src->lines, data, n) : 0;
    if (rc != 0)
        report_line_error(src, rc);
    if (input_ended ? !next_input(src) : src->stop) {
        end(src);
        return;
    }
    read_more(src);
}

/* Thread pool: reads and inflates until one chunk of output is full or the input ends. */
static void gzip_work(uv_work_t *work)
{
    pd_file_source_t *src = work->data;
    z_stream *z = &src->z;
    gzip_step_t *step = &src->step;
    *step = (gzip_step_t){.zrc = Z_OK};
    z->next_out = (unsigned char *)src->chunk;
    z->avail_out = CHUNK_SIZE;
    while (z->avail_out > 0) {
        if (z->avail_in == 0) {
            /* Output first: a read may block on a pipe. */
            if (z->avail_out < CHUNK_SIZE || src->z_eof)
                break;
            ssize_t n;
            do
                n = read(src->fd, src->zin, CHUNK_SIZE);
            while (n < 0 && errno == EINTR);
            if (n < 0) {
                step->read_errno = errno;
                break;
            }
            if (n == 0) {
                src->z_eof = true;
                break;
            }
            step->read += n;
            z->next_in = (unsigned char *)src->zin;
            z->avail_in = (unsigned)n;
        }
        int zrc = inflate(z, Z_NO_FLUSH);
        if (zrc == Z_STREAM_END) {
            /* A member ended; what follows, if anything, is the next member. */
            src->z_member = false;
            inflateReset(z);
        } else if (zrc == Z_OK) {
            src->z_member = true;
        } else {
            /* Z_BUF_ERROR too: with input and room for output, no progress means no gzip. */
            step->zrc = zrc;
            snprintf(step->zmsg, sizeof(step->zmsg), "%s", z->msg ? z->msg : zError(zrc));
            break;
        }
    }
    step->out = CHUNK_SIZE - z->avail_out;
}

/* Loop thread: a gzip step is back. */
static void on_gzip_step(uv_work_t *work, int status)
{
    pd_file_source_t *src = work->data;
    const gzip_step_t *step = &src->step;
    src->reading = false;
    src->bytes_read += step->read;
    bool input_ended = false;
    if (status < 0) {
        fail_input(src, "reading ", uv_strerror(status));
    } else if (step->read_errno != 0) {
        fail_input(src, "reading ", strerror(step->read_errno));
    } else if (step->zrc != Z_OK) {
        char why[200];
        snprintf(why, sizeof(why), "not valid gzip data (%s)", step->zmsg);
        fail_input(src, "reading ", why);
    } else if (step->out == 0 && src->z_eof) {
        if (src->z_member)
            fail_input(src, "reading ", "the gzip data is cut short");
        else
            input_ended = true;
    }
    /* What was inflated before a failure is read, as a plain file's bytes before an error. */
    after_step(src, src->chunk, step->out, input_ended);
}

/* The current input turned out to be gzip: its head (in chunk) becomes the first input. */
static bool start_gzip(pd_file_source_t *src, size_t head)
{
    if (src->zin == NULL && (src->zin = malloc(CHUNK_SIZE)) == NULL) {
        fail(src, PD_ENOMEM, "out of memory", NULL);
        return false;
    }
    if (!src->z_ready) {
        if (inflateInit2(&src->z, 16 + MAX_WBITS) != Z_OK) {
            fail(src, PD_ENOMEM, "out of memory", NULL);
            return false;
        }
        src->z_ready = true;
    } else {
        inflateReset(&src->z);
    }
    memcpy(src->zin, src->chunk, head);
    src->z.next_in = (unsigned char *)src->zin;
    src->z.avail_in = (unsigned)head;
    src->z_member = false;
    src->z_eof = false;
    src->gzip = true;
    return true;
}

/* Loop thread: a plain read (or one of the first bytes of an input) is back. */
static void on_read(uv_fs_t *req)
{
    pd_file_source_t *src = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    src->reading = false;

    if (n < 0) {
        fail_input(src, "reading ", uv_strerror((int)n));
        end(src);
        return;
    }
    src->bytes_read += n;
    size_t have = src->head + (size_t)n;
    if (src->sniffing && n > 0) {
        if (have < 2 && (unsigned char)src->chunk[0] == 0x1f) {
            src->head = have; /* one byte that may begin the magic: read on */
            read_more(src);
            return;
        }
        src->sniffing = false;
        src->head = 0;
        if ((unsigned char)src->chunk[0] == 0x1f && (unsigned char)src->chunk[1] == 0x8b) {
            if (start_gzip(src, have))
                read_more(src);
            else
                end(src);
            return;
        }
    }
    src->head = 0;
    after_step(src, src->chunk, have, n == 0);
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
    int rc;
    if (src->gzip) {
        src->work.data = src;
        rc = uv_queue_work(src->loop, &src->work, gzip_work, on_gzip_step);
    } else {
        uv_buf_t buf = uv_buf_init(src->chunk + src->head, (unsigned)(CHUNK_SIZE - src->head));
        src->read_req.data = src;
        rc = uv_fs_read(src->loop, &src->read_req, src->fd, &buf, 1, -1, on_read);
    }
    if (rc < 0) {
        fail_input(src, "reading ", uv_strerror(rc));
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
    if (src->z_ready)
        inflateEnd(&src->z);
    free(src->zin);
    free(src->chunk);
    free(src);
}
