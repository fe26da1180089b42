/*
 * Stage: http.  `patternd serve` and a database that stops answering: the
 * server reaches its database through a relay (tests/support) that the test
 * switches between forwarding and holding every connection without an
 * answer.  While the database is away /readyz answers 503 and nothing
 * hangs; when it is back, the readers and writers serve again.  Every wait
 * here polls for an outcome, its deadline only a hang guard.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_fixture.h"
#include "support.h"

TestSuite(outage, .fini = serve_release);

static pdt_relay_t *relay;

/*
 * A migrated database and its key, with the service role reaching it
 * through the relay (forwarding or not); the connect timeout is 1 s
 * (PGCONNECT_TIMEOUT, inherited by the server).
 */
static void outage_env(int forwarding)
{
    env.url = pdt_new_migrated_database();
    char *svc = pdt_service_url(env.url);
    relay = pdt_relay_start(pdt_url_port(svc), forwarding);
    char *colon = strrchr(svc, ':');
    const char *slash = strchr(colon, '/');
    size_t n = strlen(svc) + 16;
    env.svc = malloc(n);
    snprintf(env.svc, n, "%.*s:%d%s", (int)(colon - svc), svc, pdt_relay_port(relay), slash);
    free(svc);
    env.key = pdt_create_key(env.url, "acme");
    setenv("PGCONNECT_TIMEOUT", "1", 1);
}

typedef struct probe {
    const server_t *server;
    const char *method, *path, *key, *body;
    int want;
} probe_t;

/* True once the request gets the wanted status. */
static int answers(void *arg)
{
    const probe_t *p = arg;
    int status;
    free(http(p->server, p->method, p->path, p->key, NULL, p->body, &status, NULL));
    return status == p->want;
}

static void wait_for(const server_t *s, const char *method, const char *path, const char *key,
                     const char *body, int want)
{
    probe_t p = {s, method, path, key, body, want};
    char what[128];
    snprintf(what, sizeof(what), "%s %s to answer %d", method, path, want);
    serve_poll_until(answers, &p, what);
}

Test(outage, serve_started_while_the_database_is_away_answers_503_then_serves)
{
    outage_env(0);
    env.server = serve_start(NULL);
    int status;
    char *r = http(env.server, "GET", "/readyz", NULL, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 503, "%s", r);
    cr_assert_null(strstr(r, "127.0.0.1"), "an anonymous answer names the database: %s", r);
    free(r);
    r = http(env.server, "POST", "/v1/workflows", env.key, NULL, records_file("early", 2), &status,
             NULL);
    cr_assert_eq(status, 503, "%s", r);
    free(r);
    cr_assert_eq(pdt_sql_long(env.url, "SELECT count(*) FROM workflows"), 0);

    pdt_relay_forward(relay, 1);
    wait_for(env.server, "GET", "/readyz", NULL, NULL, 200);
    r = http(env.server, "POST", "/v1/workflows", env.key, NULL, records_file("late", 3), &status,
             NULL);
    cr_assert_eq(status, 200, "%s", r);
    free(r);
    cr_assert_eq(pdt_sql_long(env.url, "SELECT count(*) FROM workflows"), 3);
    serve_down();
    pdt_relay_stop(relay);
}

Test(outage, a_database_that_stops_answering_gives_503_and_serving_resumes_after)
{
    outage_env(1);
    env.server = serve_start(NULL);
    int status;
    char *r = http(env.server, "POST", "/v1/workflows", env.key, NULL, records_file("before", 2),
                   &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    free(r);

    /* New connections are held unanswered; the server's present ones are cut. */
    pdt_relay_forward(relay, 0);
    pdt_sql_exec(env.url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE usename <> current_user AND backend_type = 'client backend'");
    wait_for(env.server, "GET", "/readyz", NULL, NULL, 503);

    pdt_relay_forward(relay, 1);
    wait_for(env.server, "GET", "/readyz", NULL, NULL, 200);
    r = http(env.server, "POST", "/v1/workflows", env.key, NULL, records_file("after", 3), &status,
             NULL);
    cr_assert_eq(status, 200, "%s", r);
    free(r);
    r = http(env.server, "GET", "/v1/patterns", env.key, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    free(r);
    cr_assert_eq(pdt_sql_long(env.url, "SELECT count(*) FROM workflows"), 5);
    serve_down();
    pdt_relay_stop(relay);
}
