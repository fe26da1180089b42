/*
 * Stage: http (`patternd serve` end to end: body -> records -> batch -> pool
 * -> worker -> response).  Against a live server and the throwaway
 * PostgreSQL: keys at the door, per-record results, tenant isolation in the
 * service, limits, malformed and slow clients, overload refusals and a
 * graceful drain that loses no acknowledged record.  How keys are stored and
 * row-level security in PostgreSQL itself are in tests/db/test_tenancy.c.
 *
 * The server, its database and the requests are the fixture's
 * (serve_fixture.h).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "serve_fixture.h"
#include "support.h"

TestSuite(serve, .fini = serve_release);

/* --- authentication ---------------------------------------------------------- */

/* No fixture: the point is that serve does not start. */
Test(serve, refuses_to_run_as_a_role_that_bypasses_row_level_security)
{
    char *url = pdt_new_migrated_database();
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' serve --db '%s' --listen 127.0.0.1:0 2>&1", pdt_binary(), url);
    int status;
    char *out = pdt_run(cmd, &status);
    cr_assert_eq(status, 1, "%s", out);
    cr_assert_not_null(strstr(out, "bypasses row-level security"), "%s", out);
    cr_assert_not_null(strstr(out, "patternd_service"), "%s", out);
    free(out);
    free(url);
}

/* --- records ------------------------------------------------------------------ */

/* A rejected record's result names its workflow when the id itself parsed, as the input gave it. */
Test(serve, a_rejected_record_names_its_workflow_when_its_id_parsed)
{
    const serve_env_t *e = serve_up(NULL);
    static const char records[] = "{\"workflow_id\": \"neg\", \"total_tokens\": -1}\n"
                                  "{\"workflow_id\": 42, \"duration_seconds\": \"x\"}\n"
                                  "{\"nl_input\": \"no id\"}\n"
                                  "{\"workflow_id\": \"ok\", \"nl_input\": \"run pytest\"}\n";
    const char *body = temp_file(records, sizeof(records) - 1);
    int status;
    char *r = http(e->server, "POST", "/v1/workflows", e->key, "application/x-ndjson", body,
                   &status, NULL);
    cr_assert_eq(status, 207, "%s", r);
    cr_assert_eq(json_long(r, "rejected"), 3, "%s", r);
    cr_assert_not_null(strstr(r,
                              "{\"index\": 0, \"line\": 1, \"workflow_id\": \"neg\", \"status\": "
                              "\"rejected\", \"field\": \"total_tokens\""),
                       "%s", r);
    cr_assert_not_null(strstr(r, "{\"index\": 1, \"line\": 2, \"workflow_id\": 42, \"status\": "
                                 "\"rejected\", \"field\": \"duration_seconds\""),
                       "%s", r);
    cr_assert_not_null(strstr(r, "{\"index\": 2, \"line\": 3, \"workflow_id\": null, \"status\": "
                                 "\"rejected\", \"field\": \"workflow_id\""),
                       "%s", r);
    cr_assert_not_null(
        strstr(r, "{\"index\": 3, \"line\": 4, \"workflow_id\": \"ok\", \"status\": \"processed\""),
        "%s", r);
    free(r);
}

Test(serve, records_of_another_tenant_are_rejected_and_nothing_of_them_written)
{
    const serve_env_t *e = serve_up(NULL);
    static const char records[] =
        "{\"workflow_id\": \"a1\", \"tenant_id\": \"acme\", \"nl_input\": \"run pytest\"}\n"
        "{\"workflow_id\": \"b1\", \"tenant_id\": \"globex\", \"nl_input\": \"run pytest\"}\n"
        "{\"workflow_id\": \"a2\", \"nl_input\": \"npm update\"}\n";
    const char *body = temp_file(records, sizeof(records) - 1);
    int status;
    char *r = http(e->server, "POST", "/v1/workflows", e->key, "application/x-ndjson", body,
                   &status, NULL);
    cr_assert_eq(status, 207, "%s", r);
    cr_assert_eq(json_long(r, "processed"), 2, "%s", r);
    cr_assert_eq(json_long(r, "rejected"), 1, "%s", r);
    cr_assert_not_null(strstr(r, "{\"index\": 1, \"line\": 2, \"workflow_id\": \"b1\", \"status\": "
                                 "\"rejected\", \"field\": \"tenant_id\""),
                       "%s", r);
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows WHERE tenant_id = 'acme'"),
                 2);
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows WHERE tenant_id <> 'acme'"),
                 0);
    cr_assert_eq(
        pdt_sql_long(e->url, "SELECT count(*) FROM operation_patterns WHERE tenant_id <> 'acme'"),
        0);
    cr_assert_eq(
        pdt_sql_long(e->url, "SELECT count(*) FROM pattern_occurrences WHERE tenant_id <> 'acme'"),
        0);
    free(r);

    /* The other tenant's own key reads nothing of acme's patterns. */
    char *globex = pdt_create_key(e->url, "globex");
    r = http(e->server, "GET", "/v1/patterns?top=50", globex, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    cr_assert_str_eq(r, "{\"tenant_id\": \"globex\", \"patterns\": [], \"next_cursor\": null}\n");
    free(r);
    r = http(e->server, "GET", "/v1/patterns?top=50", e->key, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    cr_assert_eq(count_of(r, "\"pattern_signature\""),
                 (size_t)pdt_sql_long(e->url, "SELECT count(*) FROM operation_patterns"), "%s", r);
    cr_assert_null(strstr(r, "globex"), "%s", r);
    free(r);
    free(globex);
    serve_down();
}

Test(serve, mixed_batch_gets_207_with_one_result_per_record_in_order)
{
    const char *extra[] = {"--max-record-bytes", "200", NULL};
    const serve_env_t *e = serve_up(extra);
    char big[400];
    snprintf(big, sizeof(big), "{\"workflow_id\": \"big\", \"nl_input\": \"%0300d\"}", 0);
    char records[2048];
    int n = snprintf(records, sizeof(records),
                     "{\"workflow_id\": \"ok1\", \"nl_input\": \"run the backend tests\"}\n"
                     "{\"workflow_id\": \"neg\", \"total_tokens\": -5}\n"
                     "\n"
                     "{broken\n"
                     "{\"workflow_id\": \"ok1\", \"nl_input\": \"again\"}\n"
                     "%s\n"
                     "{\"id\": 42, \"nl_input\": \"build the frontend\"}",
                     big);
    const char *body = temp_file(records, (size_t)n);
    int status;
    char *r = http(e->server, "POST", "/v1/workflows", e->key, NULL, body, &status, NULL);
    cr_assert_eq(status, 207, "%s", r);
    cr_assert_eq(json_long(r, "total_workflows"), 6, "%s", r);
    cr_assert_eq(json_long(r, "processed"), 2, "%s", r);
    cr_assert_eq(json_long(r, "conflicts"), 1, "%s", r);
    cr_assert_eq(json_long(r, "rejected"), 3, "%s", r);
    cr_assert_eq(json_long(r, "errors"), 0, "%s", r);
    json_error_t jerr;
    json_t *o = json_loads(r, 0, &jerr);
    json_t *results = json_object_get(o, "results");
    cr_assert_eq(json_array_size(results), 6, "%s", r);
    /* The second ok1 is the same version (none) with other content: a conflict, not applied. */
    static const char *const statuses[] = {"processed", "rejected", "rejected",
                                           "conflict",  "rejected", "processed"};
    static const long lines[] = {1, 2, 4, 5, 6, 7};
    for (size_t i = 0; i < 6; i++) {
        json_t *e = json_array_get(results, i);
        cr_assert_eq(json_integer_value(json_object_get(e, "index")), (json_int_t)i);
        cr_assert_eq(json_integer_value(json_object_get(e, "line")), lines[i], "%s", r);
        cr_assert_str_eq(json_string_value(json_object_get(e, "status")), statuses[i], "%s", r);
        if (strcmp(statuses[i], "rejected") == 0)
            cr_assert(json_is_string(json_object_get(e, "error")), "%s", r);
    }
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(results, 1), "field")),
                     "total_tokens");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(results, 3), "field")),
                     "updated_at");
    cr_assert_not_null(
        strstr(json_string_value(json_object_get(json_array_get(results, 3), "error")),
               "later updated_at"));
    cr_assert_not_null(
        strstr(json_string_value(json_object_get(json_array_get(results, 4), "error")),
               "exceeds the maximum"));
    /* An integer id is echoed as an integer, as given. */
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(results, 5), "workflow_id")),
                 42);
    json_decref(o);
    free(r);
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows"), 2);

    /* The same good records again: all duplicates, 200, nothing changes. */
    char *digest = pdt_tables_digest(e->url);
    static const char again[] = "[{\"workflow_id\": \"ok1\", \"nl_input\": \"run the backend "
                                "tests\"}, {\"id\": 42, \"nl_input\": \"build the frontend\"}]";
    const char *body2 = temp_file(again, sizeof(again) - 1);
    r = http(e->server, "POST", "/v1/workflows", e->key, "application/json", body2, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    cr_assert_eq(json_long(r, "duplicates"), 2, "%s", r);
    char *after = pdt_tables_digest(e->url);
    cr_assert_str_eq(digest, after);
    free(r);
    free(after);
    free(digest);
    serve_down();
}

/*
 * The records of `file`, posted by tenant in bodies of 50 records
 * alternately to two servers on one database; asserts every answer is 200
 * and returns how many records were processed.
 */
static long post_alternately(const char *file, const char *const *tenants, int n_tenants)
{
    const char *extra[] = {"--workers", "2", NULL};
    const serve_env_t *e = serve_up(extra);
    const server_t *servers[2] = {e->server, serve_start(extra)};
    char *keys[8];
    for (int t = 0; t < n_tenants; t++)
        keys[t] = pdt_create_key(e->url, tenants[t]);

    char *all = pdt_read_file(pdt_data(file), NULL);
    long processed = 0;
    int request = 0;
    for (int t = 0; t < n_tenants; t++) {
        char needle[64];
        snprintf(needle, sizeof(needle), "\"tenant_id\": \"%s\"", tenants[t]);
        char *copy = strdup(all);
        char *buf = NULL;
        size_t len = 0, in_body = 0;
        for (char *line = strtok(copy, "\n");; line = strtok(NULL, "\n")) {
            if (line != NULL && strstr(line, needle) != NULL) {
                size_t n = strlen(line);
                buf = realloc(buf, len + n + 2);
                memcpy(buf + len, line, n);
                len += n;
                buf[len++] = '\n';
                in_body++;
            }
            if ((line == NULL && in_body > 0) || in_body == 50) {
                const char *body = temp_file(buf, len);
                int status;
                char *r = http(servers[request++ % 2], "POST", "/v1/workflows", keys[t],
                               "application/x-ndjson", body, &status, NULL);
                cr_assert_eq(status, 200, "%s", r);
                processed += json_long(r, "processed");
                free(r);
                len = in_body = 0;
            }
            if (line == NULL)
                break;
        }
        free(buf);
        free(copy);
    }
    for (int t = 0; t < n_tenants; t++)
        free(keys[t]);
    free(all);
    return processed;
}

static const char *const SAMPLE_TENANTS[] = {"tenant-00", "tenant-01", "tenant-02"};

/* Several instances produce the same tables as one: the reference statistics. */
Test(serve, sample_through_two_servers_matches_reference)
{
    cr_assert_eq(post_alternately("sample-600.ndjson", SAMPLE_TENANTS, 3), 600);
    pdt_assert_patterns_match(env.url, pdt_data("sample-600.patterns.ndjson"));
    serve_down();
}

/* Every version of each workflow, shuffled, through two servers: the latest final ones count. */
Test(serve, revisions_through_two_servers_match_reference)
{
    cr_assert_eq(post_alternately("revisions-600.ndjson", SAMPLE_TENANTS, 3), 600);
    pdt_assert_patterns_match(env.url, pdt_data("revisions-600.patterns.ndjson"));
    serve_down();
}

/* --- limits, malformed and slow clients -------------------------------------- */

Test(serve, oversize_body_gets_413_and_writes_nothing)
{
    const char *extra[] = {"--max-body-bytes", "100000", NULL};
    const serve_env_t *e = serve_up(extra);
    size_t len = 0;
    char *buf = malloc(300000);
    for (int i = 0; len < 200000; i++)
        len += (size_t)sprintf(buf + len,
                               "{\"workflow_id\": \"w%d\", \"nl_input\": \"run tests\"}\n", i);
    const char *body = temp_file(buf, len);
    free(buf);
    int status;
    char *r = http(e->server, "POST", "/v1/workflows", e->key, NULL, body, &status, NULL);
    cr_assert_eq(status, 413, "%s", r);
    free(r);

    /* Chunked, so the size is only known while reading. */
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "curl -s -o /dev/null -w '%%{http_code}' -H 'Authorization: Bearer %s' "
             "-H 'Transfer-Encoding: chunked' --data-binary @'%s' "
             "'http://127.0.0.1:%d/v1/workflows'",
             e->key, body, e->server->port);
    int exit_status;
    char *code = pdt_run(cmd, &exit_status);
    cr_assert_str_eq(code, "413");
    free(code);
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows"), 0);

    /* The server is still fine afterwards. */
    r = http(e->server, "GET", "/healthz", NULL, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 200);
    free(r);
    serve_down();
}

Test(serve, malformed_http_gets_400_and_headers_too_large_431)
{
    const serve_env_t *e = serve_up(NULL);
    int port = e->server->port;
    static const char garbage[] = "GARBAGE\r\n\r\n";
    char *r = raw_exchange(port, garbage, sizeof(garbage) - 1, SERVE_HANG_GUARD_S, NULL);
    cr_assert(strncmp(r, "HTTP/1.1 400 ", 13) == 0, "%s", r);
    cr_assert_not_null(strstr(r, "Connection: close"), "%s", r);
    free(r);

    static const char bad_length[] = "POST /v1/workflows HTTP/1.1\r\nHost: x\r\n"
                                     "Content-Length: 12abc\r\n\r\n";
    r = raw_exchange(port, bad_length, sizeof(bad_length) - 1, SERVE_HANG_GUARD_S, NULL);
    cr_assert(strncmp(r, "HTTP/1.1 400 ", 13) == 0, "%s", r);
    free(r);

    size_t big = 100 * 1024;
    char *huge = malloc(big + 128);
    int n = sprintf(huge, "GET /healthz HTTP/1.1\r\nX-Filler: ");
    memset(huge + n, 'x', big);
    memcpy(huge + n + big, "\r\n\r\n", 4);
    r = raw_exchange(port, huge, (size_t)n + big + 4, SERVE_HANG_GUARD_S, NULL);
    cr_assert(strncmp(r, "HTTP/1.1 431 ", 13) == 0, "%.200s", r);
    free(r);
    free(huge);

    static const char nowhere[] = "GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    r = raw_exchange(port, nowhere, sizeof(nowhere) - 1, SERVE_HANG_GUARD_S, NULL);
    cr_assert(strncmp(r, "HTTP/1.1 404 ", 13) == 0, "%s", r);
    free(r);
    serve_down();
}

Test(serve, keep_alive_connection_answers_pipelined_requests_in_order)
{
    const char *extra[] = {"--idle-timeout", "1", NULL};
    const serve_env_t *e = serve_up(extra);
    static const char two[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    bool closed = false;
    char *r = raw_exchange(e->server->port, two, sizeof(two) - 1, SERVE_HANG_GUARD_S, &closed);
    cr_assert_eq(count_of(r, "HTTP/1.1 "), 3, "%s", r);
    char *first = strstr(r, "HTTP/1.1 200"), *second = strstr(r, "HTTP/1.1 404");
    cr_assert(first != NULL && second != NULL && first < second, "%s", r);
    cr_assert(strstr(second, "HTTP/1.1 200") != NULL, "%s", r);
    /* Then the idle connection is closed by the server (--idle-timeout), not left open. */
    cr_assert(closed, "the idle connection was still open after %d s", SERVE_HANG_GUARD_S);
    free(r);
    serve_down();
}

Test(serve, slow_client_is_timed_out_with_408)
{
    const char *extra[] = {"--read-timeout", "1", NULL};
    const serve_env_t *e = serve_up(extra);
    /* Headers begun, never finished: the server answers 408 (--read-timeout) and closes. */
    static const char partial[] = "POST /v1/workflows HTTP/1.1\r\nHost: x\r\nContent-Le";
    bool closed = false;
    char *r =
        raw_exchange(e->server->port, partial, sizeof(partial) - 1, SERVE_HANG_GUARD_S, &closed);
    cr_assert(strncmp(r, "HTTP/1.1 408 ", 13) == 0, "%s", r);
    cr_assert(closed, "the connection was still open after %d s", SERVE_HANG_GUARD_S);
    free(r);
    /* A body that trickles in too slowly, likewise (the key is good, so the body is read). */
    char slow_body[1024];
    int n = snprintf(slow_body, sizeof(slow_body),
                     "POST /v1/workflows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Length: 1000\r\n\r\n{\"workflow_id\"",
                     e->key);
    closed = false;
    r = raw_exchange(e->server->port, slow_body, (size_t)n, SERVE_HANG_GUARD_S, &closed);
    cr_assert(strncmp(r, "HTTP/1.1 408 ", 13) == 0, "%s", r);
    cr_assert(closed, "the connection was still open after %d s", SERVE_HANG_GUARD_S);
    free(r);
    serve_down();
}

/* --- overload -------------------------------------------------------------------- */

typedef struct metric_line {
    const server_t *s;
    const char *line;
} metric_line_t;

static int metrics_show(void *arg)
{
    const metric_line_t *m = arg;
    int status;
    char *r = http(m->s, "GET", "/metrics", NULL, NULL, NULL, &status, NULL);
    int found = status == 200 && strstr(r, m->line) != NULL;
    free(r);
    return found;
}

/* Waits (a hang guard only) until the server's /metrics holds line, e.g. a gauge's value. */
static void metrics_wait(const server_t *s, const char *line)
{
    metric_line_t m = {s, line};
    serve_poll_until(metrics_show, &m, line);
}

/* Fails the test unless /metrics counts `count` answers of `code` to POST /v1/workflows. */
static void assert_workflow_answers(const server_t *s, int code, int count)
{
    int status;
    char *metrics = http(s, "GET", "/metrics", NULL, NULL, NULL, &status, NULL);
    char needle[128];
    snprintf(needle, sizeof(needle),
             "patternd_http_requests_total{route=\"/v1/workflows\",code=\"%d\"} %d\n", code, count);
    cr_assert_not_null(strstr(metrics, needle), "no %s in %s", needle, metrics);
    free(metrics);
}

Test(serve, full_write_queue_refuses_with_503_and_retry_after)
{
    /* One writer and no queue: one request in flight fills the write path. */
    const char *hold = serve_hold("1");
    const char *extra[] = {"--workers", "1", "--queue", "0", NULL};
    const serve_env_t *e = serve_up(extra);
    /* The first request is in flight: its batch is held in the writer, inside its transaction. */
    pending_http_t *first =
        http_start(e->server, "POST", "/v1/workflows", e->key, records_file("first", 3000));
    serve_hold_wait(hold, 1);
    enum { REFUSED = 3 };
    for (int i = 0; i < REFUSED; i++) {
        char prefix[16];
        snprintf(prefix, sizeof(prefix), "late%d", i);
        int status;
        char *headers = NULL;
        char *r = http(e->server, "POST", "/v1/workflows", e->key, NULL, records_file(prefix, 100),
                       &status, &headers);
        cr_assert_eq(status, 503, "request %d: %s", i, r);
        cr_assert_not_null(strstr(headers, "Retry-After: "), "%s", headers);
        free(r);
        free(headers);
    }
    cr_assert(!http_done(first), "answered while its batch was held");
    pdt_hold_release(hold, 1);
    int status;
    char *r = http_finish(first, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    cr_assert_eq(json_long(r, "processed"), 3000, "%s", r);
    free(r);
    /* Refused requests wrote nothing; the accepted one all of its records. */
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows"), 3000);
    cr_assert_eq(
        pdt_sql_long(e->url, "SELECT count(*) FROM workflows WHERE workflow_id LIKE 'first-%'"),
        3000);
    assert_workflow_answers(e->server, 503, REFUSED);
    assert_workflow_answers(e->server, 200, 1);
    serve_down();
}

/* --- shutdown ------------------------------------------------------------------ */

Test(serve, sigterm_with_requests_in_flight_loses_no_acknowledged_record)
{
    /* Two writers and a queue of two: four requests fill the write path, two per tenant. */
    const char *hold = serve_hold("1,2");
    const char *extra[] = {"--workers", "2", "--queue", "2", NULL};
    const serve_env_t *e = serve_up(extra);
    /* Two tenants, so that the two batches held at once share no row lock. */
    char *globex = pdt_create_key(e->url, "globex");
    const char *keys[] = {e->key, globex};
    enum { N = 4, RECORDS = 2000 };
    pending_http_t *posts[N];
    for (int i = 0; i < N; i++) {
        char prefix[16];
        snprintf(prefix, sizeof(prefix), "t%d", i);
        posts[i] = http_start(e->server, "POST", "/v1/workflows", keys[i % 2],
                              records_file(prefix, RECORDS));
        /*
         * The first two are held by the writers inside their transactions
         * (rows written, nothing committed); the other two wait in the queue.
         */
        if (i == 1) {
            serve_hold_wait(hold, 1);
            serve_hold_wait(hold, 2);
        }
    }
    metrics_wait(e->server, "patternd_queue_depth 2\n");
    /* The write path is full: one more is refused and writes nothing. */
    int status;
    char *r = http(e->server, "POST", "/v1/workflows", e->key, NULL, records_file("refused", 10),
                   &status, NULL);
    cr_assert_eq(status, 503, "%s", r);
    free(r);

    /* SIGTERM with all four in flight: serve stops accepting and answers them. */
    kill(e->server->pid, SIGTERM);
    server_log_wait(e->server, "no longer accepting");
    pdt_hold_release(hold, 1);
    pdt_hold_release(hold, 2);
    for (int i = 0; i < N; i++) {
        r = http_finish(posts[i], &status, NULL);
        cr_assert_eq(status, 200, "request %d: %s", i, r);
        cr_assert_eq(json_long(r, "processed"), RECORDS, "request %d: %s", i, r);
        free(r);
        /* Every record this answer acknowledged is in the database. */
        char sql[256];
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM workflows WHERE workflow_id LIKE 't%d-%%'",
                 i);
        cr_assert_eq(pdt_sql_long(e->url, sql), RECORDS, "request %d", i);
    }
    status = server_wait(e->server);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "serve exited with %d", status);
    char *log = pdt_read_file(e->server->log, NULL);
    cr_assert_not_null(strstr(log, "every request answered"), "%s", log);
    free(log);
    /* Nothing else was written: not the refused request, nothing half-written. */
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows"), N * RECORDS);
    free(globex);
    serve_down();
}

/* --- operations ------------------------------------------------------------------ */

Test(serve, healthz_readyz_and_metrics)
{
    const char *extra[] = {"--metrics-listen", "127.0.0.1:0", NULL};
    const serve_env_t *e = serve_up(extra);
    int status;
    char *r = http(e->server, "GET", "/healthz", NULL, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 200);
    free(r);
    r = http(e->server, "GET", "/readyz", NULL, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    free(r);

    const char *body = records_file("m", 10);
    r = http(e->server, "POST", "/v1/workflows", e->key, NULL, body, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    free(r);
    /*
     * The service address tells strangers nothing about the tenants: records
     * are counted by outcome only.  The operator's address has the series per
     * tenant.
     */
    char *headers = NULL;
    r = http(e->server, "GET", "/metrics", NULL, NULL, NULL, &status, &headers);
    cr_assert_eq(status, 200);
    cr_assert_not_null(strstr(headers, "Content-Type: text/plain; version=0.0.4"), "%s", headers);
    cr_assert_null(strstr(r, "acme"), "a tenant's name on the public address: %s", r);
    cr_assert_null(strstr(r, "tenant="), "%s", r);
    cr_assert_not_null(strstr(r, "patternd_records_total{outcome=\"processed\"} 10\n"), "%s", r);
    cr_assert_not_null(strstr(r, "patternd_batch_commit_seconds_count 1\n"), "%s", r);
    cr_assert_not_null(strstr(r, "patternd_batch_commit_seconds_bucket{le=\"+Inf\"} 1\n"), "%s", r);
    cr_assert_not_null(strstr(r, "patternd_queue_depth 0\n"), "%s", r);
    cr_assert_not_null(strstr(r, "patternd_db_errors_total 0\n"), "%s", r);
    cr_assert_not_null(strstr(r, "patternd_db_reconnects_total 0\n"), "%s", r);
    free(r);
    free(headers);
    cr_assert_gt(e->server->metrics_port, 0);
    server_t operator_side = {.port = e->server->metrics_port};
    r = http(&operator_side, "GET", "/metrics", NULL, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 200);
    cr_assert_not_null(
        strstr(r, "patternd_records_total{tenant=\"acme\",outcome=\"processed\"} 10\n"), "%s", r);
    free(r);
    r = http(&operator_side, "GET", "/v1/patterns", e->key, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 404, "the operator's address serves metrics only: %s", r);
    free(r);

    /* Migrations no longer current (as after deploying a binary with a new one): not ready. */
    pdt_sql_exec(e->url, "DELETE FROM schema_migrations WHERE version LIKE '0002%'");
    r = http(e->server, "GET", "/readyz", NULL, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 503, "%s", r);
    free(r);
    serve_down();
}

/*
 * Reads from fd until what was read holds needle (a hang guard only);
 * returns what was read (malloc'd).
 */
static char *read_until(int fd, const char *needle)
{
    size_t cap = 1 << 16, got = 0;
    char *buf = malloc(cap);
    buf[0] = '\0';
    while (strstr(buf, needle) == NULL) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert_eq(poll(&p, 1, SERVE_HANG_GUARD_S * 1000), 1, "waiting for %s; read: %s", needle,
                     buf);
        ssize_t n = recv(fd, buf + got, cap - got - 1, 0);
        cr_assert_gt(n, 0, "closed before %s; read: %s", needle, buf);
        got += (size_t)n;
        buf[got] = '\0';
        cr_assert_lt(got, cap - 1, "no %s in %s", needle, buf);
    }
    return buf;
}

/* Whether a new connection to the port is refused (one that is not is closed again). */
static int connection_refused(void *arg)
{
    const int *port = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int refused = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0;
    close(fd);
    return refused;
}

Test(serve, drain_waits_for_a_begun_request_and_a_second_signal_exits_at_once)
{
    /* Timeouts beyond any test's run: only the request and the signals end the drain. */
    const char *extra[] = {"--read-timeout", "3600", "--drain-timeout", "3600", NULL};
    const serve_env_t *e = serve_up(extra);
    server_t *s = e->server;
    /*
     * A request begun but not finished: the server has read its headers and
     * verified its key, and waits for its body (it said 100 Continue).
     */
    int fd = connect_from("127.0.0.1", s->port);
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "POST /v1/workflows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Length: 100\r\nExpect: 100-continue\r\n\r\n",
                     e->key);
    cr_assert_eq(send(fd, head, (size_t)n, MSG_NOSIGNAL), n);
    free(read_until(fd, "HTTP/1.1 100 Continue\r\n\r\n"));

    kill(s->pid, SIGTERM);
    server_log_wait(s, "no longer accepting");
    /* No new connection is accepted while draining: the listener closes as the drain begins. */
    serve_poll_until(connection_refused, &s->port, "the listener to close");
    /* The begun request keeps the drain waiting: serve runs on, not yet drained. */
    int status;
    cr_assert_eq(waitpid(s->pid, &status, WNOHANG), 0, "serve did not wait for the request");
    char *log = pdt_read_file(s->log, NULL);
    cr_assert_null(strstr(log, "every request answered"), "%s", log);
    free(log);

    /* A second signal ends serve without waiting for the request. */
    kill(s->pid, SIGTERM);
    status = server_wait(s);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %d", status);
    log = pdt_read_file(s->log, NULL);
    cr_assert_not_null(strstr(log, "exiting without draining"), "%s", log);
    free(log);
    close(fd);
    serve_down();
}

/* --- hostile and noisy clients --------------------------------------------------- */

/* Latencies under floods and beside a noisy tenant are measured by bench/abuse.sh, not here. */

/* The peak resident memory of a process, in MiB (VmHWM). */
static double peak_rss_mib(pid_t pid)
{
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "grep VmHWM: /proc/%d/status", (int)pid);
    int status;
    char *line = pdt_run(cmd, &status);
    cr_assert_eq(status, 0, "%s", line);
    double kib = atof(line + 6);
    free(line);
    return kib / 1024;
}

/* One POST whose body is `bytes` bytes of "1\n" (each line a bad record), sent as fast as the
 * server takes it; stops sending once the answer arrives. */
typedef struct flood {
    int port;
    const char *key;
    size_t bytes;
    int status;        /* the answer's */
    size_t answer_len; /* bytes of the whole answer */
} flood_t;

static void *flood_main(void *arg)
{
    flood_t *f = arg;
    int fd = connect_from("127.0.0.1", f->port);
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "POST /v1/workflows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/x-ndjson\r\nContent-Length: %zu\r\n\r\n",
                     f->key, f->bytes);
    send(fd, head, (size_t)n, MSG_NOSIGNAL);
    static char chunk[64 * 1024];
    for (size_t i = 0; i < sizeof(chunk); i += 2)
        memcpy(chunk + i, "1\n", 2);
    size_t sent = 0, got = 0, cap = 1 << 16;
    char *answer = malloc(cap);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < f->bytes ? POLLOUT : 0)};
        if (poll(&p, 1, SERVE_HANG_GUARD_S * 1000) <= 0)
            break; /* a hang: the status stays 0 */
        if (p.revents & POLLIN) {
            ssize_t r = recv(fd, answer + got, cap - got, 0);
            if (r <= 0)
                break;
            got += (size_t)r;
            if (got == cap)
                answer = realloc(answer, cap *= 2);
            continue;
        }
        if (p.revents & POLLOUT) {
            size_t want = f->bytes - sent < sizeof(chunk) ? f->bytes - sent : sizeof(chunk);
            ssize_t w = send(fd, chunk, want, MSG_NOSIGNAL);
            if (w <= 0)
                sent = f->bytes; /* closed on us: only the answer is left to read */
            else
                sent += (size_t)w;
        } else if (p.revents & (POLLERR | POLLHUP)) {
            break;
        }
    }
    f->status = got > 12 ? atoi(answer + 9) : 0;
    f->answer_len = got;
    free(answer);
    close(fd);
    return NULL;
}

/* /healthz, asked again and again on one keep-alive connection while the floods run. */
typedef struct probe {
    int port;
    atomic_int stop;
    int probes;
    int failures;
    char failure[256]; /* the last one */
} probe_t;

/*
 * Sends /healthz and reads its whole answer (headers and Content-Length
 * bytes of body) into buf; false when the connection fails or the answer
 * does not come within the hang guard.
 */
static bool probe_once(int fd, char *buf, size_t cap)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t got = 0;
    buf[0] = '\0';
    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1))
        return false;
    for (;;) {
        const char *end = strstr(buf, "\r\n\r\n");
        const char *length = strstr(buf, "Content-Length: ");
        if (end != NULL && length != NULL &&
            got >= (size_t)(end + 4 - buf) + (size_t)atol(length + 16))
            return true;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (got + 1 >= cap || poll(&p, 1, SERVE_HANG_GUARD_S * 1000) != 1)
            return false;
        ssize_t n = recv(fd, buf + got, cap - got - 1, 0);
        if (n <= 0)
            return false;
        got += (size_t)n;
        buf[got] = '\0';
    }
}

/*
 * Probes back to back, each paced by its answer, until told to stop (at
 * least once).  No Criterion asserts off the test's thread: failures are
 * counted.
 */
static void *probe_main(void *arg)
{
    probe_t *p = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        p->failures++;
        snprintf(p->failure, sizeof(p->failure), "cannot connect");
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    char answer[1024];
    do {
        p->probes++;
        if (!probe_once(fd, answer, sizeof(answer)) || strncmp(answer, "HTTP/1.1 200", 12) != 0) {
            p->failures++;
            snprintf(p->failure, sizeof(p->failure), "probe %d: %.200s", p->probes, answer);
            break; /* the connection is not usable any more */
        }
    } while (!atomic_load(&p->stop));
    close(fd);
    return NULL;
}

Test(serve, tiny_record_floods_are_refused_early_with_bounded_memory_and_a_live_loop)
{
    const serve_env_t *e = serve_up(NULL);
    enum { N = 4 };
    flood_t floods[N];
    pthread_t threads[N], prober;
    probe_t probe = {.port = e->server->port};
    pthread_create(&prober, NULL, probe_main, &probe);
    for (int i = 0; i < N; i++) {
        floods[i] = (flood_t){.port = e->server->port, .key = e->key, .bytes = 16000000};
        pthread_create(&threads[i], NULL, flood_main, &floods[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(threads[i], NULL);
    atomic_store(&probe.stop, 1);
    pthread_join(prober, NULL);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(floods[i].status, 413, "flood %d: %d", i, floods[i].status);
        cr_assert_leq(floods[i].answer_len, 4u << 20, "an answer of %zu bytes",
                      floods[i].answer_len);
    }
    double rss = peak_rss_mib(e->server->pid);
    cr_assert_lt(rss, 300, "serve peaked at %.0f MiB", rss);
    cr_assert_gt(probe.probes, 0);
    cr_assert_eq(probe.failures, 0, "%d of %d /healthz probes failed, the last %s", probe.failures,
                 probe.probes, probe.failure);
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows"), 0);
    serve_down();
}

Test(serve, too_many_records_in_one_request_get_413)
{
    const char *extra[] = {"--max-records", "5", NULL};
    const serve_env_t *e = serve_up(extra);
    int status;
    char *r = http(e->server, "POST", "/v1/workflows", e->key, NULL, records_file("many", 6),
                   &status, NULL);
    cr_assert_eq(status, 413, "%s", r);
    cr_assert_not_null(strstr(r, "more than 5 records"), "%s", r);
    free(r);
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows"), 0);
    r = http(e->server, "POST", "/v1/workflows", e->key, NULL, records_file("few", 5), &status,
             NULL);
    cr_assert_eq(status, 200, "%s", r);
    free(r);
    serve_down();
}

/* Writes data gzip-compressed to a new temporary file. */
static const char *gzip_file(const char *data, size_t len, size_t repeat)
{
    char *path = malloc(64);
    snprintf(path, 64, "/tmp/pdt-gz-%d-%ld", (int)getpid(), random());
    gzFile gz = gzopen(path, "wb9");
    cr_assert_not_null(gz);
    for (size_t i = 0; i < repeat; i++)
        cr_assert_eq(gzwrite(gz, data, (unsigned)len), (int)len);
    cr_assert_eq(gzclose(gz), Z_OK);
    return keep_temp(path);
}

Test(serve, gzip_bodies_ingest_like_plain_ones_and_a_bomb_gets_413)
{
    const serve_env_t *e = serve_up(NULL);
    size_t len;
    /* Enough records that one chunk of the gzip body inflates to several output buffers. */
    char *plain = pdt_read_file(records_file("gz", 5000), &len);
    int status;
    char *r = http_with(e->server, "POST", "/v1/workflows", e->key, NULL, gzip_file(plain, len, 1),
                        "-H 'Content-Encoding: gzip'", &status, NULL);
    cr_assert_eq(status, 200, "%.300s", r);
    cr_assert_eq(json_long(r, "processed"), 5000, "%.300s", r);
    free(r);
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows"), 5000);
    /* The same records again, plain: every one a duplicate of its gzip twin. */
    r = http(e->server, "POST", "/v1/workflows", e->key, NULL, temp_file(plain, len), &status,
             NULL);
    cr_assert_eq(status, 200, "%s", r);
    cr_assert_eq(json_long(r, "duplicates"), 5000, "%.300s", r);
    free(r);
    free(plain);

    /* About 1 MB of gzip that would inflate to 1 GB. */
    static char zeros[1 << 20];
    const char *bomb = gzip_file(zeros, sizeof(zeros), 1024);
    r = http_with(e->server, "POST", "/v1/workflows", e->key, NULL, bomb,
                  "-H 'Content-Encoding: gzip'", &status, NULL);
    cr_assert_eq(status, 413, "%s", r);
    free(r);
    r = http_with(e->server, "POST", "/v1/workflows", e->key, NULL, records_file("br", 2),
                  "-H 'Content-Encoding: br'", &status, NULL);
    cr_assert_eq(status, 415, "%s", r);
    free(r);
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows"), 5000);
    double rss = peak_rss_mib(e->server->pid);
    cr_assert_lt(rss, 300, "serve peaked at %.0f MiB", rss);
    serve_down();
}

Test(serve, one_address_cannot_hold_every_connection)
{
    /* No idle connection is closed while the test runs, however long it takes. */
    const char *extra[] = {"--max-connections-per-client", "4", "--idle-timeout", "3600", NULL};
    const serve_env_t *e = serve_up(extra);
    /*
     * Four connections from one address, each accepted and counted: each
     * has had a request answered, and stays open (keep-alive).
     */
    static const char keep[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    int fds[4];
    for (int i = 0; i < 4; i++) {
        fds[i] = connect_from("127.0.0.2", e->server->port);
        cr_assert_eq(send(fds[i], keep, sizeof(keep) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(keep) - 1);
        char *answer = read_until(fds[i], "{\"status\": \"ok\"}\n");
        cr_assert(strncmp(answer, "HTTP/1.1 200 ", 13) == 0, "%s", answer);
        cr_assert_not_null(strstr(answer, "Connection: keep-alive"), "%s", answer);
        free(answer);
    }
    /* The fifth is refused. */
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    int extra_fd = connect_from("127.0.0.2", e->server->port);
    send(extra_fd, req, sizeof(req) - 1, MSG_NOSIGNAL);
    char *buf = read_until(extra_fd, "\r\n\r\n");
    cr_assert(strncmp(buf, "HTTP/1.1 429 ", 13) == 0, "%s", buf);
    cr_assert_not_null(strstr(buf, "Retry-After: "), "%s", buf);
    free(buf);
    close(extra_fd);
    /* Another address is served as usual. */
    int status;
    char *r = http(e->server, "GET", "/healthz", NULL, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    free(r);
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    serve_down();
}

/*
 * The tenant share, at known points: one writer and a queue of three make
 * four places in the write path, two of them per tenant (--tenant-share
 * 0.5).  With the writer held, a tenant with two requests in flight gets
 * 429 for a third, while another tenant is admitted, and its batch goes
 * ahead of the first tenant's waiting one.  (Throughput and latency under
 * such a load are measured by bench/abuse.sh.)
 */
Test(serve, a_tenant_over_its_share_gets_429_while_another_tenant_is_admitted_ahead)
{
    const char *hold = serve_hold("1,3");
    const char *extra[] = {"--workers", "1", "--queue", "3", "--tenant-share", "0.5", NULL};
    const serve_env_t *e = serve_up(extra);
    char *hog_key = pdt_create_key(e->url, "hog"), *quiet_key = pdt_create_key(e->url, "quiet");
    /* The hog's first request is in the writer, its batch held inside its transaction ... */
    pending_http_t *hog1 =
        http_start(e->server, "POST", "/v1/workflows", hog_key, records_file("hog1", 500));
    serve_hold_wait(hold, 1);
    /* ... and its second waits in the queue: the hog holds its share, two of the four places. */
    pending_http_t *hog2 =
        http_start(e->server, "POST", "/v1/workflows", hog_key, records_file("hog2", 500));
    metrics_wait(e->server, "patternd_queue_depth 1\n");

    /* Its third is refused, though the write path has room. */
    int status;
    char *headers = NULL;
    char *r = http(e->server, "POST", "/v1/workflows", hog_key, NULL, records_file("hog3", 500),
                   &status, &headers);
    cr_assert_eq(status, 429, "%s", r);
    cr_assert_not_null(strstr(headers, "Retry-After: "), "%s", headers);
    cr_assert_not_null(strstr(r, "already has 2 requests in flight"), "%s", r);
    free(r);
    free(headers);

    /* The quiet tenant is admitted: its batch is queued, not refused. */
    pending_http_t *quiet =
        http_start(e->server, "POST", "/v1/workflows", quiet_key, records_file("quiet", 500));
    metrics_wait(e->server, "patternd_queue_depth 2\n");

    /*
     * Released, the writer takes the quiet tenant's batch (batch 2) before
     * the hog's waiting one (batch 3, held): once batch 3 is held, the quiet
     * tenant's records are committed and the hog's second request is not.
     */
    pdt_hold_release(hold, 1);
    r = http_finish(hog1, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    cr_assert_eq(json_long(r, "processed"), 500, "%s", r);
    free(r);
    serve_hold_wait(hold, 3);
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows WHERE tenant_id = 'quiet'"),
                 500, "the quiet tenant's batch did not go ahead of the hog's");
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows WHERE tenant_id = 'hog'"),
                 500);
    r = http_finish(quiet, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    cr_assert_eq(json_long(r, "processed"), 500, "%s", r);
    free(r);
    cr_assert(!http_done(hog2), "the hog's second request was answered while held");
    pdt_hold_release(hold, 3);
    r = http_finish(hog2, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    cr_assert_eq(json_long(r, "processed"), 500, "%s", r);
    free(r);

    /* Everything acknowledged is in the database, and nothing of the refused request. */
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows WHERE tenant_id = 'hog'"),
                 1000);
    cr_assert_eq(pdt_sql_long(e->url, "SELECT count(*) FROM workflows WHERE tenant_id = 'quiet'"),
                 500);
    cr_assert_eq(
        pdt_sql_long(e->url, "SELECT count(*) FROM workflows WHERE workflow_id LIKE 'hog3-%'"), 0);
    assert_workflow_answers(e->server, 429, 1);
    assert_workflow_answers(e->server, 200, 3);
    free(quiet_key);
    free(hog_key);
    serve_down();
}
