/* The serve tests' fixture; see serve_fixture.h. */
#include "serve_fixture.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

serve_env_t env;

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* After a hang: whether each server still runs, and the end of its log, on stderr. */
static void report_servers(void)
{
    for (int i = 0; i < env.n_servers; i++) {
        server_t *s = &env.servers[i];
        int status = 0;
        if (s->pid > 0 && waitpid(s->pid, &status, WNOHANG) == s->pid) {
            fprintf(stderr, "server %d has exited: wait status %d\n", i, status);
            s->pid = 0;
        }
        size_t len = 0;
        char *log = pdt_read_file(s->log, &len);
        const size_t tail = 6000;
        fprintf(stderr, "server %d's log (%s), last %zu bytes:\n%s\n", i, s->log,
                len < tail ? len : tail, log == NULL ? "" : log + (len < tail ? 0 : len - tail));
        free(log);
    }
}

void serve_poll_until(int (*cond)(void *arg), void *arg, const char *what)
{
    double t0 = now_s();
    const struct timespec tick = {.tv_nsec = 10 * 1000 * 1000};
    while (!cond(arg)) {
        double waited = now_s() - t0;
        if (waited >= SERVE_HANG_GUARD_S)
            report_servers();
        cr_assert_lt(waited, SERVE_HANG_GUARD_S, "still waiting after %d s for %s",
                     SERVE_HANG_GUARD_S, what);
        nanosleep(&tick, NULL); /* a poll: the deadline above ends it */
    }
}

typedef struct held_batch {
    const char *dir;
    long n;
} held_batch_t;

static int batch_held(void *arg)
{
    const held_batch_t *h = arg;
    return pdt_hold_is_held(h->dir, h->n);
}

const char *serve_hold(const char *batches)
{
    cr_assert_null(env.hold_dir, "one hold directory per test");
    env.hold_dir = pdt_hold_dir();
    cr_assert_eq(setenv("PATTERND_HOLD_DIR", env.hold_dir, 1), 0);
    cr_assert_eq(setenv("PATTERND_HOLD_BATCHES", batches, 1), 0);
    return env.hold_dir;
}

void serve_hold_wait(const char *dir, long n)
{
    held_batch_t h = {dir, n};
    char what[64];
    snprintf(what, sizeof(what), "batch %ld to be held", n);
    serve_poll_until(batch_held, &h, what);
}

/*
 * Starts one more `patternd serve --db <env.svc> --listen 127.0.0.1:0
 * <extra_args...>` (a NULL-terminated list, or NULL) and waits for the port
 * it prints.  The server belongs to the fixture.
 */
server_t *serve_start(const char *const *extra_args)
{
    cr_assert_lt(env.n_servers, MAX_SERVERS);
    server_t *s = &env.servers[env.n_servers++];
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    snprintf(s->log, sizeof(s->log), "/tmp/pdt-serve-%d-%ld.log", (int)getpid(), random() % 100000);
    s->pid = fork();
    cr_assert_geq(s->pid, 0);
    if (s->pid == 0) {
        const char *argv[40] = {"patternd", "serve", "--db", env.svc, "--listen", "127.0.0.1:0"};
        int n = 6;
        for (int i = 0; extra_args != NULL && extra_args[i] != NULL && n < 38; i++)
            argv[n++] = extra_args[i];
        argv[n] = NULL;
        dup2(fds[1], STDOUT_FILENO);
        int log = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(log, STDERR_FILENO);
        close(fds[0]);
        execv(pdt_binary(), (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[256] = "";
    if (fgets(line, sizeof(line), f) == NULL) {
        char *log = pdt_read_file(s->log, NULL);
        cr_assert_fail("serve printed no address; its log:\n%s", log ? log : "");
    }
    char *colon = strrchr(line, ':');
    cr_assert_not_null(colon, "%s", line);
    s->port = atoi(colon + 1);
    cr_assert_gt(s->port, 0, "%s", line);
    for (int i = 0; extra_args != NULL && extra_args[i] != NULL; i++) {
        if (strcmp(extra_args[i], "--metrics-listen") == 0 && fgets(line, sizeof(line), f) &&
            strncmp(line, "metrics on ", 11) == 0)
            s->metrics_port = atoi(strrchr(line, ':') + 1);
    }
    fclose(f);
    return s;
}

/*
 * A new migrated database, its service URL, a key of tenant acme and one
 * server started with extra_args (NULL-terminated, or NULL).
 */
const serve_env_t *serve_up(const char *const *extra_args)
{
    env.url = pdt_new_migrated_database();
    env.svc = pdt_service_url(env.url);
    env.key = pdt_create_key(env.url, "acme");
    env.server = serve_start(extra_args);
    return &env;
}

/* A child process to reap: its pid, and its status once it has exited. */
typedef struct reap {
    pid_t pid;
    int status;
} reap_t;

static int exited(void *arg)
{
    reap_t *r = arg;
    pid_t got = waitpid(r->pid, &r->status, WNOHANG);
    cr_assert_geq(got, 0, "waitpid %d failed", (int)r->pid);
    return got == r->pid;
}

/* Waits for a server that was told to stop; returns waitpid's status. */
int server_wait(server_t *s)
{
    reap_t r = {.pid = s->pid};
    serve_poll_until(exited, &r, "the server to exit");
    s->pid = 0;
    return r.status;
}

typedef struct log_needle {
    const server_t *s;
    const char *needle;
} log_needle_t;

static int log_holds(void *arg)
{
    const log_needle_t *l = arg;
    char *log = pdt_read_file(l->s->log, NULL);
    int found = log != NULL && strstr(log, l->needle) != NULL;
    free(log);
    return found;
}

void server_log_wait(const server_t *s, const char *needle)
{
    log_needle_t l = {s, needle};
    char what[160];
    snprintf(what, sizeof(what), "the server's log to say \"%.100s\"", needle);
    serve_poll_until(log_holds, &l, what);
}

/* Keeps path (malloc'd) until serve_down and returns it. */
const char *keep_temp(char *path)
{
    env.temps = realloc(env.temps, (env.n_temps + 1) * sizeof(*env.temps));
    env.temps[env.n_temps++] = path;
    return path;
}

/* A request body file holding data; removed by serve_down. */
const char *temp_file(const char *data, size_t len)
{
    char *path = malloc(64);
    snprintf(path, 64, "/tmp/pdt-body-%d-%ld", (int)getpid(), random());
    pdt_write_file(path, data, len);
    return keep_temp(path);
}

/* count tenant-less records with ids prefix-0.. in a body file; removed by serve_down. */
const char *records_file(const char *prefix, int count)
{
    return keep_temp(pdt_records_file(prefix, count));
}

/*
 * Ends whatever serve_up() left: kills servers still running (after a test
 * that failed half-way), removes logs and temporary files, frees the rest.
 * The suite's .fini, so that a failing test leaves no server behind; after
 * serve_down() there is nothing left for it to do.
 */
void serve_release(void)
{
    for (int i = 0; i < env.n_pending; i++) {
        pending_http_t *p = &env.pending[i];
        if (!p->reaped) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
        }
        unlink(p->out);
        unlink(p->hdr);
        unlink(p->code);
    }
    for (int i = 0; i < env.n_servers; i++) {
        server_t *s = &env.servers[i];
        if (s->pid > 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
        }
        if (getenv("PDT_KEEP_LOGS") == NULL) /* set it to read the servers' logs after a run */
            unlink(s->log);
    }
    for (size_t i = 0; i < env.n_temps; i++) {
        unlink(env.temps[i]);
        free(env.temps[i]);
    }
    free(env.temps);
    if (env.hold_dir != NULL)
        pdt_hold_remove(env.hold_dir);
    free(env.key);
    free(env.svc);
    free(env.url);
    memset(&env, 0, sizeof(env));
}

/* Stops every server still running with SIGTERM, asserts each exits 0, and releases the rest. */
void serve_down(void)
{
    for (int i = 0; i < env.n_servers; i++) {
        server_t *s = &env.servers[i];
        if (s->pid == 0)
            continue;
        kill(s->pid, SIGTERM);
        int status = server_wait(s);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "server %d: status %d", i, status);
    }
    serve_release();
}

/*
 * One request with curl.  body_file may be NULL (no body); key NULL (no
 * Authorization).  Returns the response body (malloc'd); *status gets the
 * HTTP status, and the headers go to *headers when not NULL (malloc'd).
 */
char *http_with(const server_t *s, const char *method, const char *path, const char *key,
                const char *content_type, const char *body_file, const char *curl_args, int *status,
                char **headers)
{
    char out[64], hdr[64];
    snprintf(out, sizeof(out), "/tmp/pdt-out-%d-%ld", (int)getpid(), random());
    snprintf(hdr, sizeof(hdr), "/tmp/pdt-hdr-%d-%ld", (int)getpid(), random());
    char cmd[8192];
    int n = snprintf(cmd, sizeof(cmd),
                     "curl -s -S --max-time %d -X %s -o '%s' -D '%s' -w '%%{http_code}'",
                     SERVE_HANG_GUARD_S, method, out, hdr);
    if (key != NULL)
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " -H 'Authorization: Bearer %s'", key);
    if (content_type != NULL)
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " -H 'Content-Type: %s'", content_type);
    if (body_file != NULL)
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " --data-binary @'%s'", body_file);
    if (curl_args != NULL)
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " %s", curl_args);
    snprintf(cmd + n, sizeof(cmd) - (size_t)n, " 'http://127.0.0.1:%d%s'", s->port, path);
    int exit_status;
    char *code = pdt_run(cmd, &exit_status);
    cr_assert_eq(exit_status, 0, "curl failed: %s", cmd);
    *status = atoi(code);
    free(code);
    char *body = pdt_read_file(out, NULL);
    if (body == NULL)
        body = strdup("");
    if (headers != NULL)
        *headers = pdt_read_file(hdr, NULL);
    unlink(out);
    unlink(hdr);
    return body;
}

char *http(const server_t *s, const char *method, const char *path, const char *key,
           const char *content_type, const char *body_file, int *status, char **headers)
{
    return http_with(s, method, path, key, content_type, body_file, NULL, status, headers);
}

pending_http_t *http_start(const server_t *s, const char *method, const char *path, const char *key,
                           const char *body_file)
{
    cr_assert_lt(env.n_pending, MAX_PENDING);
    pending_http_t *p = &env.pending[env.n_pending++];
    *p = (pending_http_t){0};
    long tag = random();
    snprintf(p->out, sizeof(p->out), "/tmp/pdt-bg-out-%d-%ld", (int)getpid(), tag);
    snprintf(p->hdr, sizeof(p->hdr), "/tmp/pdt-bg-hdr-%d-%ld", (int)getpid(), tag);
    snprintf(p->code, sizeof(p->code), "/tmp/pdt-bg-code-%d-%ld", (int)getpid(), tag);
    char auth[1024], data[4200], url[2200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key != NULL ? key : "");
    snprintf(data, sizeof(data), "@%s", body_file != NULL ? body_file : "");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->port, path);
    const char *argv[20] = {"curl", "-s", "-S",   "-X", method,        "-o",
                            p->out, "-D", p->hdr, "-w", "%{http_code}"};
    int n = 11;
    if (key != NULL) {
        argv[n++] = "-H";
        argv[n++] = auth;
    }
    if (body_file != NULL) {
        argv[n++] = "--data-binary";
        argv[n++] = data;
    }
    argv[n++] = url;
    argv[n] = NULL;
    p->pid = fork();
    cr_assert_geq(p->pid, 0);
    if (p->pid == 0) {
        int code = open(p->code, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (code < 0 || dup2(code, STDOUT_FILENO) < 0)
            _exit(127);
        execvp("curl", (char *const *)argv);
        _exit(127);
    }
    return p;
}

bool http_done(pending_http_t *p)
{
    if (!p->reaped) {
        reap_t r = {.pid = p->pid};
        if (exited(&r)) {
            p->reaped = true;
            p->wait_status = r.status;
        }
    }
    return p->reaped;
}

static int pending_done(void *arg)
{
    return http_done(arg);
}

char *http_finish(pending_http_t *p, int *status, char **headers)
{
    serve_poll_until(pending_done, p, "a background request to end");
    cr_assert(WIFEXITED(p->wait_status) && WEXITSTATUS(p->wait_status) == 0,
              "curl failed (status %d)", p->wait_status);
    char *code = pdt_read_file(p->code, NULL);
    cr_assert_not_null(code);
    *status = atoi(code);
    free(code);
    char *body = pdt_read_file(p->out, NULL);
    if (body == NULL)
        body = strdup("");
    if (headers != NULL)
        *headers = pdt_read_file(p->hdr, NULL);
    return body;
}

long json_long(const char *json, const char *key)
{
    json_error_t jerr;
    json_t *o = json_loads(json, 0, &jerr);
    cr_assert_not_null(o, "not JSON: %.500s", json);
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_integer(v), "no integer %s in %.500s", key, json);
    long r = (long)json_integer_value(v);
    json_decref(o);
    return r;
}

/* A raw TCP exchange: sends data (may be NULL), then reads until the peer closes or timeout. */
char *raw_exchange(int port, const char *data, size_t len, double timeout_s, bool *closed)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    double t0 = now_s();
    if (data != NULL)
        cr_assert_eq(send(fd, data, len, MSG_NOSIGNAL), (ssize_t)len);
    size_t cap = 1 << 16, got = 0;
    char *buf = malloc(cap);
    bool peer_closed = false;
    for (;;) {
        double left = timeout_s - (now_s() - t0);
        if (left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
            break;
        ssize_t n = recv(fd, buf + got, cap - got - 1, 0);
        if (n <= 0) {
            peer_closed = true; /* closed (or reset) */
            break;
        }
        got += (size_t)n;
        if (cap - got < 1024)
            buf = realloc(buf, cap *= 2);
    }
    if (closed)
        *closed = peer_closed;
    buf[got] = '\0';
    close(fd);
    return buf;
}

size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/*
 * Fires n concurrent POSTs of files[i] with curl and waits; codes[i] and
 * bodies[i] (malloc'd) get each answer ("000" when the connection failed).
 */
void concurrent_posts(const server_t *s, const char *key, const char *const *files, int n,
                      int *codes, char **bodies, const char *after_start_cmd)
{
    char *cmd = malloc(65536);
    size_t len = 0;
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "/tmp/pdt-conc-%d", (int)getpid());
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(cmd + len, 65536 - len,
                                "(curl -s -o %s-%d.body -D %s-%d.hdr -w '%%{http_code}' "
                                "-H 'Authorization: Bearer %s' --data-binary @'%s' "
                                "'http://127.0.0.1:%d/v1/workflows' > %s-%d.code) & ",
                                prefix, i, prefix, i, key, files[i], s->port, prefix, i);
    snprintf(cmd + len, 65536 - len, "%s; wait", after_start_cmd ? after_start_cmd : "true");
    int status;
    free(pdt_run(cmd, &status));
    free(cmd);
    for (int i = 0; i < n; i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s-%d.code", prefix, i);
        char *code = pdt_read_file(path, NULL);
        codes[i] = code ? atoi(code) : 0;
        free(code);
        unlink(path);
        snprintf(path, sizeof(path), "%s-%d.body", prefix, i);
        bodies[i] = pdt_read_file(path, NULL);
        if (bodies[i] == NULL)
            bodies[i] = strdup("");
        unlink(path);
        snprintf(path, sizeof(path), "%s-%d.hdr", prefix, i);
        if (codes[i] == 503) {
            char *h = pdt_read_file(path, NULL);
            cr_assert(h != NULL && strstr(h, "Retry-After: ") != NULL, "503 without Retry-After");
            free(h);
        }
        unlink(path);
    }
}

/* A TCP connection to the server on 127.0.0.1 from the loopback address src. */
int connect_from(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in from = {.sin_family = AF_INET};
    cr_assert_eq(inet_pton(AF_INET, src, &from.sin_addr), 1);
    cr_assert_eq(bind(fd, (struct sockaddr *)&from, sizeof(from)), 0, "bind %s", src);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
    return fd;
}