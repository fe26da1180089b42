/*
 * Stage: http (`patternd serve`'s door).  API keys are checked against the
 * service's table of active keys (src/http/auth.c, src/http/keyring.c):
 * missing, unknown, wrong and revoked keys get 401 and write nothing; a key
 * created after the server started works on first use; failed checks cost
 * the failing client (429 past its limit) and never a valid key, whether it
 * shares the address or a proxy; X-Forwarded-For counts only from trusted
 * proxies.  Every test asserts answers and rows, never a time.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve_fixture.h"
#include "support.h"

TestSuite(auth, .fini = serve_release);

/* A made-up key of tenant acme with key id i (no such key exists). */
static void bogus_key(char out[128], int i)
{
    snprintf(out, 128, "pdk_acme~%016x~AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", i);
}

/*
 * A stale key: the fixture's key id with a wrong secret (number i), as an
 * agent holding an old secret sends it.  The server knows the id, so it
 * refuses it without waiting for a reload of its key table.
 */
static void stale_key(char out[128], int i)
{
    snprintf(out, 128, "%.*sAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%05d",
             (int)(strrchr(env.key, '~') + 1 - env.key), env.key, i);
}

/* A GET /v1/patterns with key, and X-Forwarded-For when xff is not NULL, appended to buf. */
static size_t add_get(char *buf, size_t len, const char *key, const char *xff)
{
    len += (size_t)sprintf(buf + len, "GET /v1/patterns HTTP/1.1\r\nHost: x\r\n");
    if (xff != NULL)
        len += (size_t)sprintf(buf + len, "X-Forwarded-For: %s\r\n", xff);
    len += (size_t)sprintf(buf + len, "Authorization: Bearer %s\r\n\r\n", key);
    return len;
}

/*
 * Sends requests (n of them, back to back on one keep-alive connection
 * from the loopback address src) and returns the n status codes in order.
 * The server answers a connection's requests one at a time, in order.
 */
static int *pipelined(const char *src, const char *requests, size_t len, int n)
{
    int fd = connect_from(src, env.server->port);
    cr_assert_eq(send(fd, requests, len, MSG_NOSIGNAL), (ssize_t)len);
    size_t cap = 1 << 20, got = 0;
    char *answers = calloc(1, cap);
    while ((int)count_of(answers, "HTTP/1.1 ") < n) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        /* A deadline against a hang only. */
        cr_assert_eq(poll(&p, 1, 60000), 1, "answers so far: %s", answers);
        ssize_t r = recv(fd, answers + got, cap - got - 1, 0);
        cr_assert_gt(r, 0, "closed after: %s", answers);
        got += (size_t)r;
        answers[got] = '\0';
    }
    close(fd);
    int *codes = calloc((size_t)n, sizeof(int));
    const char *p = answers;
    for (int i = 0; i < n; i++) {
        p = strstr(p, "HTTP/1.1 ");
        codes[i] = atoi(p + 9);
        p += 9;
    }
    free(answers);
    return codes;
}

/*
 * POSTs files[i] with keys[i], all at once from 127.0.0.2 (one curl process
 * each), and waits for every answer: codes[i] and bodies[i] (malloc'd).
 */
static void concurrent_posts_as(const server_t *s, const char *const *keys,
                                const char *const *files, int n, int *codes, char **bodies)
{
    char *cmd = malloc(65536);
    size_t len = 0;
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "/tmp/pdt-auth-%d", (int)getpid());
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(cmd + len, 65536 - len,
                                "(curl -s --interface 127.0.0.2 -o %s-%d.body -w '%%{http_code}' "
                                "-H 'Authorization: Bearer %s' --data-binary @'%s' "
                                "'http://127.0.0.1:%d/v1/workflows' > %s-%d.code) & ",
                                prefix, i, keys[i], files[i], s->port, prefix, i);
    snprintf(cmd + len, 65536 - len, "wait");
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
    }
}

static int count_status(const int *codes, int n, int status)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += codes[i] == status;
    return k;
}

Test(auth, missing_unknown_wrong_and_revoked_keys_get_401_and_write_nothing)
{
    const serve_env_t *e = serve_up(NULL);
    static const char record[] = "{\"workflow_id\": \"w1\", \"nl_input\": \"run the tests\"}\n";
    const char *body = temp_file(record, sizeof(record) - 1);
    int status;
    char *headers = NULL;

    char *r = http(e->server, "POST", "/v1/workflows", NULL, NULL, body, &status, &headers);
    cr_assert_eq(status, 401, "no key: %s", r);
    cr_assert_not_null(strstr(headers, "WWW-Authenticate: Bearer"), "%s", headers);
    free(r);
    free(headers);

    /* Well-formed, but the secret is wrong; a made-up key id; and not a key at all. */
    char forged[512], made_up[128];
    snprintf(forged, sizeof(forged), "%.*sAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
             (int)(strrchr(e->key, '~') + 1 - e->key), e->key);
    bogus_key(made_up, 1);
    const char *bad[] = {forged, made_up, "hunter2"};
    for (size_t i = 0; i < 3; i++) {
        r = http(e->server, "POST", "/v1/workflows", bad[i], NULL, body, &status, NULL);
        cr_assert_eq(status, 401, "%s: %s", bad[i], r);
        free(r);
    }
    r = http(e->server, "GET", "/v1/patterns", forged, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 401, "%s", r);
    free(r);
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows"), 0);

    /* The real key works, until it is revoked (by the owner: the service role only reads keys). */
    r = http(e->server, "POST", "/v1/workflows", e->key, NULL, body, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    free(r);
    char key_id[17];
    memcpy(key_id, strchr(e->key, '~') + 1, 16);
    key_id[16] = '\0';
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' keys revoke --db '%s' --tenant acme %s", pdt_binary(), e->url,
             key_id);
    int exit_status;
    free(pdt_run(cmd, &exit_status));
    cr_assert_eq(exit_status, 0);
    /*
     * The server's key table is reloaded every --key-cache-seconds: the
     * revoked key is refused from the first reload after the revocation.
     * Requests go on until one is refused (the deadline is a hang guard);
     * each accepted one wrote its record, each refused one nothing.
     */
    int accepted = 0;
    bool refused = false;
    for (int i = 0; !refused; i++) {
        cr_assert_lt(i, 6000, "the revoked key was never refused");
        char late[128];
        int n = snprintf(late, sizeof(late),
                         "{\"workflow_id\": \"late-%d\", \"nl_input\": \"run the tests\"}\n", i);
        r = http(e->server, "POST", "/v1/workflows", e->key, NULL, temp_file(late, (size_t)n),
                 &status, NULL);
        cr_assert(status == 200 || status == 401, "%d: %s", status, r);
        free(r);
        refused = status == 401;
        accepted += !refused;
    }
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows"), 1 + accepted);
    /* Once refused, refused for good: nothing more is written. */
    for (int i = 0; i < 3; i++) {
        r = http(e->server, "POST", "/v1/workflows", e->key, NULL, body, &status, NULL);
        cr_assert_eq(status, 401, "revoked: %s", r);
        free(r);
    }
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows"), 1 + accepted);
    serve_down();
}

Test(auth, a_key_created_while_serving_works_on_first_use)
{
    const serve_env_t *e = serve_up(NULL);
    char *late = pdt_create_key(e->url, "latecomer");
    int status;
    char *r = http(e->server, "POST", "/v1/workflows", late, NULL, records_file("late", 3), &status,
                   NULL);
    cr_assert_eq(status, 200, "%s", r);
    free(r);
    cr_assert_eq(
        pdt_sql_long(e->url, "SELECT count(*) FROM workflows WHERE tenant_id = 'latecomer'"), 3);
    free(late);
    serve_down();
}

/*
 * 48 stale keys from one address, then the real tenant's key from the same
 * address, then 48 more, all pipelined on one connection: past the limit the
 * stale ones get 429, and the real key is served in their midst.
 */
Test(auth, failed_checks_from_an_address_never_refuse_a_valid_key_from_it)
{
    const char *extra[] = {"--max-auth-failures", "20", NULL};
    const serve_env_t *e = serve_up(extra);
    enum { BOGUS = 48, N = 2 * BOGUS + 1 };
    char *requests = malloc(N * 512);
    size_t len = 0;
    for (int i = 0; i < N; i++) {
        char key[128];
        stale_key(key, i);
        len = add_get(requests, len, i == BOGUS ? e->key : key, NULL);
    }
    int *codes = pipelined("127.0.0.2", requests, len, N);
    cr_assert_eq(codes[BOGUS], 200, "the valid key got %d", codes[BOGUS]);
    /* The bucket holds 20 failures (refilled at 20 a minute): the first 20 are 401. */
    for (int i = 0; i < 20; i++)
        cr_assert_eq(codes[i], 401, "bogus key %d got %d", i, codes[i]);
    cr_assert_eq(count_status(codes, N, 401) + count_status(codes, N, 429), N - 1);
    cr_assert_eq(codes[N - 1], 429, "the flood was never limited");

    /* Right after, the valid key from the same address still reads, posts, and gets 413s. */
    int fd = connect_from("127.0.0.2", e->server->port); /* the limited address, kept busy */
    int status;
    char *r = http_with(e->server, "POST", "/v1/workflows", e->key, NULL, records_file("ok", 5),
                        "--interface 127.0.0.2", &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    free(r);
    r = http_with(e->server, "GET", "/v1/patterns", e->key, NULL, NULL, "--interface 127.0.0.2",
                  &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    free(r);
    close(fd);
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows"), 5);
    free(codes);
    free(requests);
    serve_down();
}

/*
 * Made-up key ids wait for a reload of the key table (they may be new keys),
 * so a flood of them costs the database at most a load a second: 24 at once
 * from one address, beside the valid key, which is served.
 */
Test(auth, made_up_keys_are_limited_too_and_cost_at_most_a_load_a_second)
{
    const char *extra[] = {"--max-auth-failures", "10", NULL};
    const serve_env_t *e = serve_up(extra);
    enum { N = 24 };
    const char *keys[N + 1];
    char bogus[N][128];
    for (int i = 0; i < N; i++) {
        bogus_key(bogus[i], i);
        keys[i] = bogus[i];
    }
    keys[N] = e->key;
    int codes[N + 1];
    char *bodies[N + 1];
    const char *files[N + 1];
    for (int i = 0; i <= N; i++)
        files[i] = records_file(i == N ? "real" : "fake", 1);
    concurrent_posts_as(e->server, keys, files, N + 1, codes, bodies);
    cr_assert_eq(codes[N], 200, "the valid key: %d %s", codes[N], bodies[N]);
    int refused = 0, limited = 0;
    for (int i = 0; i < N; i++) {
        cr_assert(codes[i] == 401 || codes[i] == 429, "%d: %s", codes[i], bodies[i]);
        refused += codes[i] == 401;
        limited += codes[i] == 429;
    }
    cr_assert_geq(refused, 10, "%d refused, %d limited", refused, limited);
    cr_assert_gt(limited, 0, "%d refused, %d limited", refused, limited);
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows"), 1);
    for (int i = 0; i <= N; i++)
        free(bodies[i]);
    serve_down();
}

/* With --trusted-proxies, the failures of one forwarded client limit that client only. */
Test(auth, behind_a_trusted_proxy_a_flood_limits_its_client_and_no_other)
{
    const char *extra[] = {"--max-auth-failures", "5", "--trusted-proxies", "127.0.0.1/32", NULL};
    const serve_env_t *e = serve_up(extra);
    enum { N = 12 };
    char *requests = malloc((N + 3) * 512);
    size_t len = 0;
    for (int i = 0; i < N; i++) {
        char key[128];
        stale_key(key, i);
        len = add_get(requests, len, key, "203.0.113.7, 10.0.0.1");
    }
    /* Then another client's stale key, and the valid key for the flooding client and another. */
    char key[128];
    stale_key(key, 999);
    len = add_get(requests, len, key, "10.0.0.2");
    len = add_get(requests, len, e->key, "10.0.0.1");
    len = add_get(requests, len, e->key, "10.0.0.3");
    int *codes = pipelined("127.0.0.1", requests, len, N + 3);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(codes[i], 401, "request %d: %d", i, codes[i]);
    cr_assert_eq(codes[N - 1], 429, "the forwarded client was never limited");
    cr_assert_eq(codes[N], 401, "another forwarded client was limited: %d", codes[N]);
    cr_assert_eq(codes[N + 1], 200, "the flooding client's valid key: %d", codes[N + 1]);
    cr_assert_eq(codes[N + 2], 200, "another client's valid key: %d", codes[N + 2]);
    free(codes);
    free(requests);
    serve_down();
}

/* Without the option, X-Forwarded-For is ignored: forging a new one per request dodges nothing. */
Test(auth, a_forged_forwarded_for_neither_splits_nor_dodges_the_limit)
{
    const char *extra[] = {"--max-auth-failures", "5", NULL};
    const serve_env_t *e = serve_up(extra);
    enum { N = 12 };
    char *requests = malloc((N + 1) * 512);
    size_t len = 0;
    for (int i = 0; i < N; i++) {
        char key[128], xff[32];
        stale_key(key, i);
        snprintf(xff, sizeof(xff), "10.0.%d.%d", i / 200, i % 200 + 1);
        len = add_get(requests, len, key, xff);
    }
    len = add_get(requests, len, e->key, "10.0.0.1");
    int *codes = pipelined("127.0.0.2", requests, len, N + 1);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(codes[i], 401, "request %d: %d", i, codes[i]);
    cr_assert_eq(codes[N - 1], 429, "forged addresses dodged the limit");
    cr_assert_eq(codes[N], 200, "the valid key: %d", codes[N]);
    free(codes);
    free(requests);
    serve_down();
}

/*
 * Behind a trusted proxy, a connection counts for the client of its
 * request: a client cannot hold more than its connections through the
 * proxy, and another client is still served.
 */
Test(auth, behind_a_trusted_proxy_connections_count_for_the_forwarded_client)
{
    const char *extra[] = {"--max-connections-per-client", "2", "--trusted-proxies", "127.0.0.1/32",
                           NULL};
    const serve_env_t *e = serve_up(extra);
    static const char one[] =
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.9\r\n\r\n";
    int fds[2];
    for (int i = 0; i < 2; i++) {
        /* Each answered request shows its connection is open and counted for 10.0.0.9. */
        fds[i] = connect_from("127.0.0.1", e->server->port);
        cr_assert_eq(send(fds[i], one, sizeof(one) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(one) - 1);
        char buf[512] = "";
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        cr_assert_eq(poll(&p, 1, 60000), 1); /* a hang guard */
        cr_assert_gt(recv(fds[i], buf, sizeof(buf) - 1, 0), 12);
        cr_assert(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "%s", buf);
    }
    int status;
    char *r = http_with(e->server, "GET", "/healthz", NULL, NULL, NULL,
                        "-H 'X-Forwarded-For: 10.0.0.9'", &status, NULL);
    cr_assert_eq(status, 429, "a third connection for 10.0.0.9: %s", r);
    free(r);
    r = http_with(e->server, "GET", "/healthz", NULL, NULL, NULL, "-H 'X-Forwarded-For: 10.0.0.8'",
                  &status, NULL);
    cr_assert_eq(status, 200, "another client: %s", r);
    free(r);
    for (int i = 0; i < 2; i++)
        close(fds[i]);
    serve_down();
}

Test(auth, unauthenticated_announcements_reserve_nothing)
{
    const serve_env_t *e = serve_up(NULL);
    enum { N = 24 };
    int fds[N];
    static const char head[] = "POST /v1/workflows HTTP/1.1\r\nHost: x\r\n"
                               "Content-Length: 16777215\r\n\r\n";
    for (int i = 0; i < N; i++) {
        fds[i] = connect_from("127.0.0.2", e->server->port);
        cr_assert_eq(send(fds[i], head, sizeof(head) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(head) - 1);
    }
    /* Each gets 401 before a byte of its body is sent. */
    for (int i = 0; i < N; i++) {
        char buf[256] = "";
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        cr_assert_eq(poll(&p, 1, 60000), 1); /* a hang guard */
        cr_assert_gt(recv(fds[i], buf, sizeof(buf) - 1, 0), 12);
        cr_assert(strncmp(buf, "HTTP/1.1 401 ", 13) == 0, "%s", buf);
    }
    /* While they are all open, a real request is served: they reserved no capacity. */
    int status;
    char *r = http(e->server, "POST", "/v1/workflows", e->key, NULL, records_file("real", 1),
                   &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    free(r);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    serve_down();
}
