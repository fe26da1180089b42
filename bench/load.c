/*
 * pd_load: a bounded HTTP load generator for `patternd serve`, on loopback.
 *
 *   pd_load --port P --keys FILE --input FILE [--batch N] [--connections C]
 *           [--rate R] [--duration S] [--warmup S] [--retry-refused MS]
 *   pd_load --port P --keys FILE --flood BYTES [--connections C]
 *   pd_load --port P --keys FILE --get PATH [--connections C] [--rate R] ...
 *
 * Reads NDJSON records (from pd_gen) and turns them, tenant by tenant, into
 * POST /v1/workflows bodies of --batch records, each with its tenant's key
 * (--keys: lines "TENANT KEY").  Every record is sent once, so nothing is a
 * duplicate.  C connections (threads with blocking keep-alive sockets) send
 * them:
 *   --rate 0   closed loop: each connection sends its next request as soon
 *              as the last is answered; measures the maximum rate;
 *   --rate R   open loop at R requests/s: request k is due at start + k/R,
 *              and its latency counts from that due time, not from when a
 *              connection got free, so a stall is not hidden by the
 *              generator waiting for it ("coordinated omission").
 * Requests answered within the first --warmup seconds are not measured.
 * With --flood BYTES it attacks instead: each connection sends one POST,
 * with the first key, whose body is BYTES bytes of "1\n" (a bad record a
 * line), as fast as the server takes it, and stops sending once the answer
 * arrives; it prints the statuses and the largest answer.
 * With --get PATH it reads instead: GET PATH requests, each key of --keys
 * in turn (a key file may hold made-up or stale keys: an attacker's), as
 * many as --duration allows.
 * With --retry-refused MS a request refused with 429 or 503 is counted and
 * sent again MS milliseconds later (as a client honouring Retry-After
 * would), its latency still counted from its first due time.
 * The load is bounded: at most C requests in flight, at most --duration
 * seconds, at most the records of the input.  Prints one JSON line:
 * requests, records acknowledged per second, latency p50/p99/max in ms,
 * and the count of each status.
 */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct request {
    char *data; /* the whole HTTP request */
    size_t len;
    long records;
} request_t;

typedef struct tenant {
    char name[72];
    char key[256];
    char *body; /* the body being filled */
    size_t len, cap;
    long count;
} tenant_t;

static request_t *requests;
static size_t n_requests, cap_requests;
static size_t total_requests; /* requests to send: requests[k % n_requests] is the kth */
static tenant_t tenants[256];
static int n_tenants;
static int port = 0, batch = 1000, connections = 8;
static double rate = 0, duration = 10, warmup = 2, retry_refused_ms = 0, flood = 0;
static size_t flood_max_answer;
static long flood_status[600];

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static size_t next_request;
static double start;
static double *latencies; /* ms, measured requests only */
static size_t latency_cap;
static size_t n_latencies;
static long measured_records, status_200, status_207, status_401, status_429, status_503,
    status_other, failures;
static double first_measured = -1, last_measured;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "pd_load: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void flush_tenant(tenant_t *t)
{
    if (t->count == 0)
        return;
    if (n_requests == cap_requests) {
        cap_requests = cap_requests ? cap_requests * 2 : 1024;
        requests = realloc(requests, cap_requests * sizeof(*requests));
        if (requests == NULL)
            die("realloc");
    }
    request_t *r = &requests[n_requests++];
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "POST /v1/workflows HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Authorization: Bearer %s\r\nContent-Type: application/x-ndjson\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     t->key, t->len);
    r->data = malloc((size_t)n + t->len);
    if (r->data == NULL)
        die("malloc");
    memcpy(r->data, head, (size_t)n);
    memcpy(r->data + n, t->body, t->len);
    r->len = (size_t)n + t->len;
    r->records = t->count;
    t->len = 0;
    t->count = 0;
}

static tenant_t *tenant_named(const char *name, size_t len)
{
    for (int i = 0; i < n_tenants; i++) {
        if (strlen(tenants[i].name) == len && memcmp(tenants[i].name, name, len) == 0)
            return &tenants[i];
    }
    return NULL;
}

static void load_keys(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        die(path);
    char name[72], key[256];
    while (n_tenants < 256 && fscanf(f, "%71s %255s", name, key) == 2) {
        snprintf(tenants[n_tenants].name, sizeof(tenants[n_tenants].name), "%s", name);
        snprintf(tenants[n_tenants].key, sizeof(tenants[n_tenants].key), "%s", key);
        n_tenants++;
    }
    fclose(f);
}

static void load_input(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        die(path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    static const char marker[] = "\"tenant_id\": \"";
    while ((n = getline(&line, &cap, f)) > 0) {
        const char *p = strstr(line, marker);
        if (p == NULL)
            continue;
        p += sizeof(marker) - 1;
        const char *end = strchr(p, '"');
        tenant_t *t = end ? tenant_named(p, (size_t)(end - p)) : NULL;
        if (t == NULL) {
            fprintf(stderr, "pd_load: no key for the tenant of: %.80s\n", line);
            exit(1);
        }
        if (t->len + (size_t)n > t->cap) {
            t->cap = (t->len + (size_t)n) * 2;
            t->body = realloc(t->body, t->cap);
            if (t->body == NULL)
                die("realloc");
        }
        memcpy(t->body + t->len, line, (size_t)n);
        t->len += (size_t)n;
        if (++t->count == batch)
            flush_tenant(t);
    }
    for (int i = 0; i < n_tenants; i++) {
        flush_tenant(&tenants[i]);
        free(tenants[i].body);
    }
    free(line);
    fclose(f);
}

static int connect_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
        die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Sends one request and reads its answer; returns the status, or -1 when the connection failed. */
static int exchange(int fd, const request_t *r, long *acknowledged, char *buf, size_t cap)
{
    size_t sent = 0;
    while (sent < r->len) {
        ssize_t n = send(fd, r->data + sent, r->len - sent, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        sent += (size_t)n;
    }
    size_t got = 0;
    char *body = NULL;
    size_t need = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + got, cap - got - 1, 0);
        if (n <= 0)
            return -1;
        got += (size_t)n;
        buf[got] = '\0';
        if (body == NULL) {
            char *end = strstr(buf, "\r\n\r\n");
            if (end == NULL)
                continue;
            body = end + 4;
            char *cl = strcasestr(buf, "Content-Length:");
            need = (size_t)(body - buf) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
            if (need >= cap)
                return -1;
        }
        if (got >= need)
            break;
    }
    int status = atoi(buf + 9);
    const char *p = strstr(body, "\"processed\": ");
    const char *d = strstr(body, "\"duplicates\": ");
    *acknowledged = (p ? atol(p + 13) : 0) + (d ? atol(d + 14) : 0);
    return status;
}

static void *connection_main(void *arg)
{
    (void)arg;
    size_t cap = 64 << 20;
    char *buf = malloc(cap);
    int fd = connect_server();
    for (;;) {
        pthread_mutex_lock(&lock);
        size_t k = next_request++;
        pthread_mutex_unlock(&lock);
        if (k >= total_requests)
            break;
        double due = rate > 0 ? start + (double)k / rate : now();
        if (due - start > duration)
            break;
        double wait = due - now();
        if (wait > 0) {
            struct timespec ts = {.tv_sec = (time_t)wait,
                                  .tv_nsec = (long)((wait - floor(wait)) * 1e9)};
            nanosleep(&ts, NULL);
        }
        long acknowledged = 0;
        int status;
        double done;
        for (;;) {
            status = exchange(fd, &requests[k % n_requests], &acknowledged, buf, cap);
            done = now();
            /* A refusal before the body was read ends the connection: open the next one now. */
            if (status < 0 || strcasestr(buf, "Connection: close") != NULL) {
                close(fd);
                fd = connect_server();
            }
            if (retry_refused_ms <= 0 || (status != 429 && status != 503) ||
                done - start > duration)
                break;
            pthread_mutex_lock(&lock);
            if (done - start >= warmup)
                status == 429 ? status_429++ : status_503++;
            pthread_mutex_unlock(&lock);
            struct timespec ts = {.tv_sec = (time_t)(retry_refused_ms / 1000),
                                  .tv_nsec = (long)fmod(retry_refused_ms, 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&lock);
        if (done - start > duration) {
            pthread_mutex_unlock(&lock);
            break;
        }
        if (done - start >= warmup) {
            if (first_measured < 0)
                first_measured = due;
            last_measured = done;
            if (n_latencies < latency_cap)
                latencies[n_latencies++] = (done - due) * 1000;
            measured_records += acknowledged;
            if (status == 200)
                status_200++;
            else if (status == 207)
                status_207++;
            else if (status == 401)
                status_401++;
            else if (status == 429)
                status_429++;
            else if (status == 503)
                status_503++;
            else if (status < 0)
                failures++;
            else
                status_other++;
        }
        pthread_mutex_unlock(&lock);
    }
    close(fd);
    free(buf);
    return NULL;
}

/* --flood: one POST of a body of bad one-byte records; keeps the status and answer size. */
static void *flood_main(void *arg)
{
    (void)arg;
    int fd = connect_server();
    char head[512];
    size_t bytes = (size_t)flood, sent = 0, got = 0;
    int n = snprintf(head, sizeof(head),
                     "POST /v1/workflows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/x-ndjson\r\nContent-Length: %zu\r\n\r\n",
                     tenants[0].key, bytes);
    if (send(fd, head, (size_t)n, MSG_NOSIGNAL) != n)
        die("send");
    static char chunk[64 * 1024];
    for (size_t i = 0; i < sizeof(chunk); i += 2)
        memcpy(chunk + i, "1\n", 2);
    char *answer = malloc(64 << 20);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < bytes ? POLLOUT : 0)};
        if (poll(&p, 1, (int)(duration * 1000)) <= 0)
            break;
        if (p.revents & POLLIN) {
            ssize_t r = recv(fd, answer + got, (64 << 20) - got, 0);
            if (r <= 0 || got + (size_t)r == (64 << 20))
                break;
            got += (size_t)r;
        } else if (p.revents & POLLOUT) {
            size_t want = bytes - sent < sizeof(chunk) ? bytes - sent : sizeof(chunk);
            ssize_t w = send(fd, chunk, want, MSG_NOSIGNAL);
            sent = w <= 0 ? bytes : sent + (size_t)w;
        } else {
            break;
        }
    }
    int status = got > 12 ? atoi(answer + 9) : 0;
    pthread_mutex_lock(&lock);
    flood_status[status >= 0 && status < 600 ? status : 0]++;
    if (got > flood_max_answer)
        flood_max_answer = got;
    pthread_mutex_unlock(&lock);
    free(answer);
    close(fd);
    return NULL;
}

static int run_flood(void)
{
    pthread_t threads[1024];
    double t0 = now();
    for (int i = 0; i < connections; i++)
        pthread_create(&threads[i], NULL, flood_main, NULL);
    for (int i = 0; i < connections; i++)
        pthread_join(threads[i], NULL);
    printf("{\"flood_bytes\": %.0f, \"connections\": %d, \"seconds\": %.2f, \"status_413\": %ld, "
           "\"status_other\": %ld, \"max_answer_bytes\": %zu}\n",
           flood, connections, now() - t0, flood_status[413], (long)connections - flood_status[413],
           flood_max_answer);
    return 0;
}

/* --get: one GET request per key, sent in turn. */
static void build_gets(const char *path)
{
    requests = calloc((size_t)n_tenants, sizeof(*requests));
    if (requests == NULL)
        die("calloc");
    for (int i = 0; i < n_tenants; i++) {
        char head[1024];
        int n = snprintf(head, sizeof(head),
                         "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n",
                         path, tenants[i].key);
        requests[i] = (request_t){.data = strdup(head), .len = (size_t)n};
    }
    n_requests = (size_t)n_tenants;
    total_requests = (size_t)100 * 1000 * 1000;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double quantile(double q)
{
    if (n_latencies == 0)
        return 0;
    size_t i = (size_t)ceil(q * (double)n_latencies);
    return latencies[i > 0 ? i - 1 : 0];
}

int main(int argc, char **argv)
{
    const char *keys = NULL, *input = NULL, *get = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            fprintf(stderr, "pd_load: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--port") == 0)
            port = atoi(v);
        else if (strcmp(a, "--keys") == 0)
            keys = v;
        else if (strcmp(a, "--input") == 0)
            input = v;
        else if (strcmp(a, "--batch") == 0)
            batch = atoi(v);
        else if (strcmp(a, "--connections") == 0)
            connections = atoi(v);
        else if (strcmp(a, "--rate") == 0)
            rate = atof(v);
        else if (strcmp(a, "--duration") == 0)
            duration = atof(v);
        else if (strcmp(a, "--warmup") == 0)
            warmup = atof(v);
        else if (strcmp(a, "--retry-refused") == 0)
            retry_refused_ms = atof(v);
        else if (strcmp(a, "--flood") == 0)
            flood = atof(v);
        else if (strcmp(a, "--get") == 0)
            get = v;
        else {
            fprintf(stderr, "pd_load: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (flood > 0 && port > 0 && keys != NULL && connections >= 1 && connections <= 1024) {
        load_keys(keys);
        return n_tenants > 0 ? run_flood() : 2;
    }
    if (port <= 0 || keys == NULL || (input == NULL) == (get == NULL) || batch < 1 ||
        connections < 1 || connections > 1024 || duration <= warmup) {
        fprintf(stderr, "usage: pd_load --port P --keys FILE --input FILE [--batch N] "
                        "[--connections C] [--rate R] [--duration S] [--warmup S] "
                        "[--retry-refused MS] [--flood BYTES] [--get PATH]\n");
        return 2;
    }
    load_keys(keys);
    if (n_tenants == 0) {
        fprintf(stderr, "pd_load: no key in %s\n", keys);
        return 2;
    }
    if (get != NULL) {
        build_gets(get);
    } else {
        load_input(input);
        total_requests = n_requests;
    }
    /* At most one latency per request, and a closed loop cannot answer faster than 1 per 10 us. */
    size_t most =
        total_requests < (size_t)(duration * 1e5) ? total_requests : (size_t)(duration * 1e5);
    latency_cap = most + 1;
    latencies = malloc(latency_cap * sizeof(double));
    pthread_t threads[1024];
    start = now();
    for (int i = 0; i < connections; i++)
        pthread_create(&threads[i], NULL, connection_main, NULL);
    for (int i = 0; i < connections; i++)
        pthread_join(threads[i], NULL);
    if (next_request >= total_requests)
        fprintf(stderr, "pd_load: warning: the input ran out before --duration\n");
    qsort(latencies, n_latencies, sizeof(double), compare_double);
    double window = last_measured - first_measured;
    printf("{\"rate_target_rps\": %.2f, \"connections\": %d, \"batch\": %d, \"requests\": %zu, "
           "\"window_s\": %.2f, \"requests_per_s\": %.2f, \"records_per_s\": %.0f, "
           "\"p50_ms\": %.1f, \"p99_ms\": %.1f, \"max_ms\": %.1f, \"status_200\": %ld, "
           "\"status_207\": %ld, \"status_401\": %ld, \"status_429\": %ld, \"status_503\": %ld, "
           "\"status_other\": %ld, \"failures\": %ld}\n",
           rate, connections, batch, n_latencies, window,
           window > 0 ? (double)n_latencies / window : 0,
           window > 0 ? (double)measured_records / window : 0, quantile(0.5), quantile(0.99),
           n_latencies ? latencies[n_latencies - 1] : 0, status_200, status_207, status_401,
           status_429, status_503, status_other, failures);
    return 0;
}
