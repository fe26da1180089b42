/*
 * Test helpers; see support.h.  Not tied to Criterion: tests/pool/pool_race.c
 * uses them too, in a plain program that runs under ThreadSanitizer.  A
 * helper that cannot do its job stops the test process with a message.
 */
#define _GNU_SOURCE /* accept4 */
#include "support.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, #cond);                             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

const char *pdt_data(const char *name)
{
    static char path[4096];
    snprintf(path, sizeof(path), "%s/%s", PD_TEST_DATA, name);
    return path;
}

char *pdt_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = (size_t)n;
    return buf;
}

char *pdt_run(const char *cmdline, int *status)
{
    FILE *p = popen(cmdline, "r");
    REQUIRE(p != NULL, "cannot run %s", cmdline);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[len] = '\0';
    int st = pclose(p);
    if (status)
        *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return buf;
}

const char *pdt_binary(void)
{
    return PD_BINARY;
}

static const char *base_url(void)
{
    const char *url = getenv("PD_TEST_DATABASE_URL");
    REQUIRE(url != NULL, "PD_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh, "
                         "which starts a throwaway PostgreSQL");
    return url;
}

const char *pdt_deployment(void)
{
    const char *d = getenv("PD_TEST_DEPLOYMENT");
    if (d == NULL || *d == '\0')
        return "direct";
    REQUIRE(strcmp(d, "direct") == 0 || strcmp(d, "pgbouncer") == 0 || strcmp(d, "citus") == 0,
            "PD_TEST_DEPLOYMENT=%s: expected direct, pgbouncer or citus", d);
    return d;
}

static const char *citus_dir(void)
{
    const char *dir = getenv("PD_TEST_CITUS_DIR");
    REQUIRE(dir != NULL, "PD_TEST_DEPLOYMENT=citus needs PD_TEST_CITUS_DIR (scripts/citus.sh's "
                         "folder)");
    return dir;
}

/* url with its database name (after the last '/') replaced by name; malloc'd. */
static char *with_database(const char *url, const char *name)
{
    const char *slash = strrchr(url, '/');
    REQUIRE(slash != NULL, "%s is not a URL", url);
    size_t prefix = (size_t)(slash - url) + 1;
    char *out = malloc(prefix + strlen(name) + 1);
    memcpy(out, url, prefix);
    strcpy(out + prefix, name);
    return out;
}

char *pdt_new_database(void)
{
    static int counter;
    const char *base = base_url();
    char name[64], sql[128];
    /* The clock too: a cluster reused across runs may hold a database of a pid seen before. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(name, sizeof(name), "pdt_%d_%d_%ld", (int)getpid(), counter++,
             (long)(ts.tv_sec % 100000) * 1000 + ts.tv_nsec / 1000000);
    if (strcmp(pdt_deployment(), "citus") == 0) {
        /* A database of its own on each node, with the extension and the nodes registered. */
        char cmd[4096];
        snprintf(cmd, sizeof(cmd), "'%s/scripts/citus.sh' createdb '%s' %s", PD_SOURCE_DIR,
                 citus_dir(), name);
        int status;
        free(pdt_run(cmd, &status));
        REQUIRE(status == 0, "%s failed", cmd);
    } else {
        /* Through PgBouncer too: it passes every database name on to the cluster. */
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
        pdt_sql_exec(base, sql);
    }
    return with_database(base, name);
}

char *pdt_worker_url(const char *url, int n)
{
    REQUIRE(strcmp(pdt_deployment(), "citus") == 0, "worker nodes exist only on Citus");
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s/scripts/citus.sh' worker-url '%s' %d", PD_SOURCE_DIR,
             citus_dir(), n);
    int status;
    char *worker = pdt_run(cmd, &status);
    REQUIRE(status == 0 && strncmp(worker, "postgresql://", 13) == 0, "%s: %s", cmd, worker);
    worker[strcspn(worker, "\n")] = '\0';
    /* The worker's URL names postgres@; keep url's user and database. */
    const char *at = strchr(url + 13, '@'), *host = strchr(worker + 13, '@');
    REQUIRE(at != NULL && host != NULL, "unexpected URLs %s, %s", url, worker);
    const char *dbname = strrchr(url, '/') + 1;
    size_t user = (size_t)(at - url);
    char *host_port = strndup(host, strcspn(host, "/"));
    char *out = malloc(user + strlen(host_port) + strlen(dbname) + 2);
    sprintf(out, "%.*s%s/%s", (int)user, url, host_port, dbname);
    free(host_port);
    free(worker);
    return out;
}

void pdt_nodes_of(const char *url, pdt_nodes_t *out)
{
    if (strcmp(pdt_deployment(), "citus") == 0)
        *out = (pdt_nodes_t){{pdt_worker_url(url, 1), pdt_worker_url(url, 2)}, 2};
    else
        *out = (pdt_nodes_t){{strdup(url), NULL}, 1};
}

long pdt_lock_waiters(const pdt_nodes_t *nodes)
{
    long n = 0;
    for (int i = 0; i < nodes->n; i++)
        n += pdt_sql_long(nodes->urls[i], "SELECT count(*) FROM pg_stat_activity"
                                          " WHERE datname = current_database()"
                                          " AND wait_event_type = 'Lock'");
    return n;
}

void pdt_nodes_free(pdt_nodes_t *nodes)
{
    for (int i = 0; i < nodes->n; i++)
        free(nodes->urls[i]);
    *nodes = (pdt_nodes_t){{NULL, NULL}, 0};
}

static PGconn *connect_or_fail(const char *url)
{
    PGconn *c = PQconnectdb(url);
    REQUIRE(PQstatus(c) == CONNECTION_OK, "cannot connect to %s: %s", url, PQerrorMessage(c));
    return c;
}

char *pdt_sql_value(const char *url, const char *sql)
{
    PGconn *c = connect_or_fail(url);
    PGresult *r = PQexec(c, sql);
    REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    char *v = NULL;
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

void pdt_sql_exec(const char *url, const char *sql)
{
    PGconn *c = connect_or_fail(url);
    PGresult *r = PQexec(c, sql);
    REQUIRE(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s",
            sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

size_t pdt_count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

char *pdt_new_migrated_database(void)
{
    char *url = pdt_new_database();
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' migrate --db '%s' 2>&1", pdt_binary(), url);
    int status;
    char *out = pdt_run(cmd, &status);
    REQUIRE(status == 0, "migrate failed: %s", out);
    free(out);
    return url;
}

char *pdt_ingest(const char *url, const char *args, int *status)
{
    size_t n = strlen(url) + strlen(args) + 4096;
    char *cmd = malloc(n);
    snprintf(cmd, n, "'%s' ingest --quiet --db '%s' %s", pdt_binary(), url, args);
    char *out = pdt_run(cmd, status);
    free(cmd);
    return out;
}

long pdt_summary_value(const char *output, const char *key)
{
    const char *last = output, *p;
    size_t len = strlen(output);
    while (len > 0 && output[len - 1] == '\n')
        len--;
    for (p = output; p < output + len; p++) {
        if (*p == '\n')
            last = p + 1;
    }
    json_error_t jerr;
    json_t *o = json_loadb(last, (size_t)(output + len - last), 0, &jerr);
    REQUIRE(o != NULL, "the last line of ingest's output is not JSON: %s", output);
    json_t *v = json_object_get(o, key);
    REQUIRE(json_is_integer(v), "summary has no integer %s: %s", key, output);
    long r = (long)json_integer_value(v);
    json_decref(o);
    return r;
}

static bool close_enough(double got, double want)
{
    double scale = fabs(want) > 1e-12 ? fabs(want) : 1.0;
    return fabs(got - want) / scale <= 1e-6;
}

void pdt_assert_patterns_match(const char *url, const char *expected_path)
{
    PGconn *c = connect_or_fail(url);
    PGresult *r = PQexec(c, "SELECT tenant_id, pattern_signature, pattern_type, occurrence_count,"
                            " avg_tokens_with_llm, avg_cost_with_llm, avg_tokens_with_tool,"
                            " avg_cost_with_tool, confidence_score, potential_monthly_savings"
                            " FROM operation_patterns WHERE occurrence_count > 0"
                            " ORDER BY tenant_id COLLATE \"C\", pattern_signature COLLATE \"C\"");
    REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQerrorMessage(c));

    char *want = pdt_read_file(expected_path, NULL);
    REQUIRE(want != NULL, "cannot read %s", expected_path);
    int row = 0;
    for (char *line = strtok(want, "\n"); line != NULL; line = strtok(NULL, "\n"), row++) {
        json_error_t jerr;
        json_t *e = json_loads(line, 0, &jerr);
        REQUIRE(e != NULL, "bad expected line: %s", line);
        REQUIRE(row < PQntuples(r), "only %d pattern rows, expected more (next: %s)", PQntuples(r),
                line);
        const char *tenant = json_string_value(json_object_get(e, "tenant_id"));
        const char *sig = json_string_value(json_object_get(e, "pattern_signature"));
        REQUIRE(strcmp(PQgetvalue(r, row, 0), tenant) == 0, "row %d: %s", row, tenant);
        REQUIRE(strcmp(PQgetvalue(r, row, 1), sig) == 0, "row %d: got %s, expected %s", row,
                PQgetvalue(r, row, 1), sig);
        REQUIRE(strcmp(PQgetvalue(r, row, 2),
                       json_string_value(json_object_get(e, "pattern_type"))) == 0,
                "%s", sig);
        static const struct {
            int col;
            const char *key;
            bool exact;
        } checks[] = {
            {3, "occurrence_count", true},           {4, "avg_tokens_with_llm", true},
            {5, "avg_cost_with_llm", false},         {6, "avg_tokens_with_tool", true},
            {7, "avg_cost_with_tool", false},        {8, "confidence_score", true},
            {9, "potential_monthly_savings", false},
        };
        for (size_t k = 0; k < sizeof(checks) / sizeof(checks[0]); k++) {
            double got = strtod(PQgetvalue(r, row, checks[k].col), NULL);
            double exp = json_number_value(json_object_get(e, checks[k].key));
            if (checks[k].exact)
                REQUIRE(got == exp, "%s %s %s: got %s, expected %g", tenant, sig, checks[k].key,
                        PQgetvalue(r, row, checks[k].col), exp);
            else
                REQUIRE(close_enough(got, exp), "%s %s %s: got %s, expected %.9g", tenant, sig,
                        checks[k].key, PQgetvalue(r, row, checks[k].col), exp);
        }
        json_decref(e);
    }
    REQUIRE(PQntuples(r) == row, "%d pattern rows, expected %d", PQntuples(r), row);
    free(want);
    PQclear(r);
    PQfinish(c);
}

char *pdt_tables_digest(const char *url)
{
    return pdt_sql_value(
        url,
        "SELECT concat_ws(' ',"
        " (SELECT md5(string_agg(concat_ws('|', tenant_id, pattern_signature, pattern_type,"
        "   occurrence_count, sum_tokens, sum_cost, duration_n, sum_duration_ms,"
        "   sum_duration_ms_sq, error_n, sum_retry, first_event_at, last_event_at,"
        "   avg_tokens_with_llm, avg_cost_with_llm, potential_monthly_savings, confidence_score),"
        "   E'\\n' ORDER BY tenant_id COLLATE \"C\", pattern_signature COLLATE \"C\"))"
        "  FROM operation_patterns),"
        " (SELECT md5(string_agg(concat_ws('|', o.tenant_id, p.pattern_signature, o.workflow_id,"
        "   o.matched_characteristics::text), E'\\n' ORDER BY o.tenant_id COLLATE \"C\","
        "   p.pattern_signature COLLATE \"C\", o.workflow_id COLLATE \"C\"))"
        "  FROM pattern_occurrences o JOIN operation_patterns p"
        "  ON p.tenant_id = o.tenant_id AND p.id = o.pattern_id),"
        " (SELECT count(*) FROM pattern_occurrences),"
        " (SELECT md5(string_agg(concat_ws('|', tenant_id, workflow_id, version, counted,"
        "   signatures, tokens, cost), E'\\n' ORDER BY"
        "   tenant_id COLLATE \"C\", workflow_id COLLATE \"C\")) FROM workflows),"
        " (SELECT count(*) FROM workflows))");
}

void pdt_write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f != NULL, "cannot write %s", path);
    REQUIRE(fwrite(data, 1, len, f) == len, "writing %s", path);
    REQUIRE(fclose(f) == 0, "closing %s", path);
}

char *pdt_service_url(const char *url)
{
    /* Roles are cluster-wide and tests run concurrently: tolerate another's creation. */
    pdt_sql_exec(url, "DO $$ BEGIN CREATE ROLE pdt_service LOGIN IN ROLE patternd_service;"
                      " EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$");
    const char *at = strstr(url, "postgres@");
    REQUIRE(at != NULL, "unexpected test URL %s", url);
    char *out = malloc(strlen(url) + 16);
    size_t head = (size_t)(at - url);
    memcpy(out, url, head);
    strcpy(out + head, "pdt_service@");
    strcat(out, at + strlen("postgres@"));
    return out;
}

long pdt_sql_long(const char *url, const char *sql)
{
    char *v = pdt_sql_value(url, sql);
    long r = v ? strtol(v, NULL, 10) : -1;
    free(v);
    return r;
}

char *pdt_create_key(const char *url, const char *tenant)
{
    return pdt_create_key_scoped(url, tenant, NULL);
}

char *pdt_create_key_scoped(const char *url, const char *tenant, const char *scopes)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' keys create --tenant %s%s%s --db '%s'", pdt_binary(), tenant,
             scopes ? " --scope " : "", scopes ? scopes : "", url);
    int status;
    char *out = pdt_run(cmd, &status);
    REQUIRE(status == 0, "keys create: %s", out);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '\n')
        out[--n] = '\0';
    char *last = strrchr(out, '\n');
    char *key = strdup(last ? last + 1 : out);
    free(out);
    REQUIRE(strncmp(key, "pdk_", 4) == 0, "not a key: %s", key);
    return key;
}

char *pdt_records_file(const char *prefix, int count)
{
    size_t cap = (size_t)count * 160 + 1, len = 0;
    char *buf = malloc(cap);
    for (int i = 0; i < count; i++)
        len += (size_t)snprintf(buf + len, cap - len,
                                "{\"workflow_id\": \"%s-%d\", \"nl_input\": \"run the backend "
                                "tests %d\", \"total_tokens\": %d, \"actual_cost_total\": 0.5}\n",
                                prefix, i, i % 7, 1000 + i);
    char *path = malloc(64);
    snprintf(path, 64, "/tmp/pdt-records-%d-%ld", (int)getpid(), random());
    pdt_write_file(path, buf, len);
    free(buf);
    return path;
}

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void pdt_poll_until(int (*cond)(void *arg), void *arg, double deadline_s, const char *what)
{
    double t0 = monotonic_s();
    const struct timespec tick = {.tv_nsec = 10 * 1000 * 1000};
    while (!cond(arg)) {
        REQUIRE(monotonic_s() - t0 < deadline_s, "still waiting after %.0f s for %s", deadline_s,
                what);
        nanosleep(&tick, NULL); /* a poll: the deadline above ends it */
    }
}

char *pdt_hold_dir(void)
{
    char *dir = strdup("/tmp/pdt-hold-XXXXXX");
    REQUIRE(mkdtemp(dir) != NULL, "mkdtemp failed");
    return dir;
}

static void hold_path(char *out, size_t size, const char *dir, const char *what, long n)
{
    snprintf(out, size, "%s/%s-%ld", dir, what, n);
}

int pdt_hold_is_held(const char *dir, long n)
{
    char path[4096];
    hold_path(path, sizeof(path), dir, "held", n);
    return access(path, F_OK) == 0;
}

typedef struct hold_arg {
    const char *dir;
    long n;
} hold_arg_t;

static int held(void *arg)
{
    const hold_arg_t *h = arg;
    return pdt_hold_is_held(h->dir, h->n);
}

void pdt_hold_wait(const char *dir, long n)
{
    hold_arg_t h = {dir, n};
    char what[64];
    snprintf(what, sizeof(what), "batch %ld to be held", n);
    pdt_poll_until(held, &h, 120, what);
}

void pdt_hold_release(const char *dir, long n)
{
    char path[4096];
    hold_path(path, sizeof(path), dir, "release", n);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL, "cannot create %s", path);
    fclose(f);
}

void pdt_hold_remove(char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    REQUIRE(system(cmd) == 0, "%s failed", cmd);
    free(dir);
}

struct pdt_relay {
    int listener, port, target_port;
    atomic_int forwarding, stop;
    pthread_t thread;
};

/* Copies both ways between a and b until either side closes (it outlives the relay). */
typedef struct pipe_pair {
    int a, b;
} pipe_pair_t;

static void *pipe_main(void *arg)
{
    pipe_pair_t *p = arg;
    char buf[65536];
    for (;;) {
        struct pollfd fds[2] = {{.fd = p->a, .events = POLLIN}, {.fd = p->b, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0)
            break;
        int done = 0;
        for (int i = 0; i < 2 && !done; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = recv(fds[i].fd, buf, sizeof(buf), 0);
            if (n <= 0 || send(fds[1 - i].fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
                done = 1;
        }
        if (done)
            break;
    }
    close(p->a);
    close(p->b);
    free(p);
    return NULL;
}

static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&to, sizeof(to)) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

static void *relay_main(void *arg)
{
    pdt_relay_t *r = arg;
    int held[1024], n_held = 0;
    while (!atomic_load(&r->stop)) {
        struct pollfd p = {.fd = r->listener, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        /* CLOEXEC: a process the test forks must not keep a relayed connection open. */
        int fd = accept4(r->listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        if (!atomic_load(&r->forwarding)) {
            if (n_held < 1024)
                held[n_held++] = fd; /* accepted, never answered */
            else
                close(fd);
            continue;
        }
        int up = connect_local(r->target_port);
        if (up < 0) {
            close(fd);
            continue;
        }
        pipe_pair_t *pp = malloc(sizeof(*pp));
        *pp = (pipe_pair_t){.a = fd, .b = up};
        pthread_t t;
        pthread_create(&t, NULL, pipe_main, pp);
        pthread_detach(t);
    }
    for (int i = 0; i < n_held; i++)
        close(held[i]);
    return NULL;
}

pdt_relay_t *pdt_relay_start(int target_port, int forwarding)
{
    pdt_relay_t *r = calloc(1, sizeof(*r));
    r->target_port = target_port;
    atomic_store(&r->forwarding, forwarding);
    r->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    REQUIRE(bind(r->listener, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
                listen(r->listener, 128) == 0 &&
                getsockname(r->listener, (struct sockaddr *)&addr, &len) == 0,
            "relay: cannot listen");
    r->port = ntohs(addr.sin_port);
    REQUIRE(pthread_create(&r->thread, NULL, relay_main, r) == 0, "relay: no thread");
    return r;
}

int pdt_relay_port(const pdt_relay_t *relay)
{
    return relay->port;
}

void pdt_relay_forward(pdt_relay_t *relay, int forwarding)
{
    atomic_store(&relay->forwarding, forwarding);
}

void pdt_relay_stop(pdt_relay_t *relay)
{
    atomic_store(&relay->stop, 1);
    pthread_join(relay->thread, NULL);
    close(relay->listener);
    free(relay); /* the pipes own only their sockets, and end when a side closes */
}

int pdt_url_port(const char *url)
{
    const char *at = strrchr(url, '@');
    const char *colon = strchr(at != NULL ? at : url, ':');
    if (at == NULL)
        colon = strrchr(url, ':');
    REQUIRE(colon != NULL && atoi(colon + 1) > 0, "no port in %s", url);
    return atoi(colon + 1);
}
