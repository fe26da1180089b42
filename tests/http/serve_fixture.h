/*
 * The fixture of the tests of `patternd serve` (tests/http/test_*.c): a
 * server started as a separate process, as a member of patternd_service
 * (superusers bypass row-level security), on a free port it picks and
 * prints, and requests to it.  Requests go through the curl CLI; malformed
 * and slow clients are raw sockets.  Each test begins with serve_up() and
 * ends with serve_down(); a suite that uses it declares
 * TestSuite(name, .fini = serve_release), so that a test that fails half-way
 * leaves no server behind.
 */
#ifndef PD_TEST_SERVE_FIXTURE_H
#define PD_TEST_SERVE_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct server {
    pid_t pid; /* 0 once the process has been waited for */
    int port;
    int metrics_port; /* with --metrics-listen, else 0 */
    char log[64];     /* its stderr */
} server_t;

enum { MAX_SERVERS = 2 };

/* A request under way in the background (http_start), until http_finish collects its answer. */
typedef struct pending_http {
    pid_t pid;   /* curl's */
    bool reaped; /* curl has exited, with wait_status */
    int wait_status;
    char out[64], hdr[64], code[64]; /* its body, headers and status code, as curl writes them */
} pending_http_t;

enum { MAX_PENDING = 16 };

/*
 * What a serve test starts from.  serve_up() builds it and serve_down() takes
 * it apart; each Criterion test runs in its own process, so one static
 * instance serves every test.  Everything in it is owned by the fixture.
 */
typedef struct serve_env {
    char *url;        /* a new, migrated database, as the superuser: where tests check rows */
    char *svc;        /* the same database as a member of patternd_service: what serve runs as */
    char *key;        /* an API key of tenant acme */
    server_t *server; /* the first server, started by serve_up() */
    server_t servers[MAX_SERVERS];
    int n_servers;
    char **temps; /* files to remove at the end (request bodies) */
    size_t n_temps;
    pending_http_t pending[MAX_PENDING]; /* requests started by http_start */
    int n_pending;
    char *hold_dir; /* serve_hold()'s, or NULL */
} serve_env_t;

/* A deadline that only turns a hang into a failure: no test relies on how soon things happen. */
#define SERVE_HANG_GUARD_S 120

/* The one fixture of the test process. */
extern serve_env_t env;

/* CLOCK_MONOTONIC in seconds. */
double now_s(void);

/*
 * Polls cond(arg) every 10 ms until it holds, as pdt_poll_until() does, and
 * fails the test with `what` after SERVE_HANG_GUARD_S seconds (a hang
 * guard), but through Criterion: the suite's .fini then still ends the
 * servers and background requests of the test.
 */
void serve_poll_until(int (*cond)(void *arg), void *arg, const char *what);

/*
 * Holds the listed batches (PATTERND_HOLD_BATCHES, include/pd/hold.h) of
 * the servers started after it, which inherit the environment.  Returns
 * the hold directory, for serve_hold_wait() and pdt_hold_release(); it
 * belongs to the fixture.
 */
const char *serve_hold(const char *batches);

/* pdt_hold_wait() through serve_poll_until(): batch n of the server is held. */
void serve_hold_wait(const char *dir, long n);

/*
 * Starts one more `patternd serve --db <env.svc> --listen 127.0.0.1:0
 * <extra_args...>` (a NULL-terminated list, or NULL) and waits for the port
 * it prints.  The server belongs to the fixture.  It inherits the test's
 * environment (e.g. PATTERND_HOLD_DIR).
 */
server_t *serve_start(const char *const *extra_args);

/*
 * A new migrated database, its service URL, a key of tenant acme and one
 * server started with extra_args (NULL-terminated, or NULL).
 */
const serve_env_t *serve_up(const char *const *extra_args);

/*
 * Waits for a server that was told to stop; returns waitpid's status.  Fails
 * the test if it still runs after SERVE_HANG_GUARD_S seconds (a hang guard).
 */
int server_wait(server_t *s);

/* Waits (hang guard SERVE_HANG_GUARD_S) until the server's log holds needle. */
void server_log_wait(const server_t *s, const char *needle);

/* Keeps path (malloc'd) until serve_down and returns it. */
const char *keep_temp(char *path);

/* A request body file holding data; removed by serve_down. */
const char *temp_file(const char *data, size_t len);

/* count tenant-less records with ids prefix-0.. in a body file; removed by serve_down. */
const char *records_file(const char *prefix, int count);

/* Kills servers still running, removes logs and temporary files, frees the rest (the .fini). */
void serve_release(void);

/* Stops every server still running with SIGTERM, asserts each exits 0, and releases the rest. */
void serve_down(void);

/*
 * One request with curl, which gives up after SERVE_HANG_GUARD_S seconds (a
 * hang guard: the test fails).  body_file may be NULL (no body); key NULL
 * (no Authorization); curl_args more arguments for curl, or NULL.  Returns the
 * response body (malloc'd); *status gets the HTTP status, and the headers go
 * to *headers when not NULL (malloc'd).
 */
char *http_with(const server_t *s, const char *method, const char *path, const char *key,
                const char *content_type, const char *body_file, const char *curl_args, int *status,
                char **headers);
char *http(const server_t *s, const char *method, const char *path, const char *key,
           const char *content_type, const char *body_file, int *status, char **headers);

/*
 * Starts one request with curl in the background and returns at once; the
 * request belongs to the fixture (serve_release ends it if the test does
 * not).  Arguments as for http(); the body, if any, is sent without a
 * Content-Type.
 */
pending_http_t *http_start(const server_t *s, const char *method, const char *path, const char *key,
                           const char *body_file);

/* Whether the background request has ended (its curl has exited); does not wait. */
bool http_done(pending_http_t *p);

/*
 * Waits for the background request to end (hang guard SERVE_HANG_GUARD_S)
 * and returns its answer as http() does.
 */
char *http_finish(pending_http_t *p, int *status, char **headers);

/* The integer under key in a JSON object; fails the test when there is none. */
long json_long(const char *json, const char *key);

/*
 * A raw TCP exchange: sends data (may be NULL), then reads until the peer
 * closes or timeout_s passes (a deadline against a hang).  *closed (may be
 * NULL) says whether the peer closed the connection (false: the deadline
 * passed first).  Returns what was read (malloc'd).
 */
char *raw_exchange(int port, const char *data, size_t len, double timeout_s, bool *closed);

/* Occurrences of needle in hay. */
size_t count_of(const char *hay, const char *needle);

/*
 * Fires n concurrent POSTs of files[i] with curl, runs after_start_cmd (a
 * shell command, or NULL) once they are started, and waits; codes[i] and
 * bodies[i] (malloc'd) get each answer (0 when the connection failed).
 */
void concurrent_posts(const server_t *s, const char *key, const char *const *files, int n,
                      int *codes, char **bodies, const char *after_start_cmd);

/* A TCP connection to the server on 127.0.0.1 from the loopback address src. */
int connect_from(const char *src, int port);

#endif
