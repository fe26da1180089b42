/*
 * Stage: service (docs/openapi.json).  GET /v1/openapi.json serves the
 * document of the repository byte for byte, and the real answers of every
 * route, for each status a test can bring about (200, 207, 400, 401, 403,
 * 404, 405, 409, 413), match it: each is recorded (method, route, status,
 * headers, body) and checked by tests/openapi/validate.js with ajv (JSON
 * Schema 2020-12, as OpenAPI 3.1 uses), which also fails when an operation
 * of the document was never answered.  ajv comes from npm: scripts/setup.sh
 * installs it in .tmp/openapi.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "serve_fixture.h"
#include "support.h"

TestSuite(openapi, .fini = serve_release);

static json_t *recorded;

/* The headers of a curl -D file as an object of lower-case names; *type gets Content-Type. */
static json_t *header_object(const char *headers, char type[128])
{
    json_t *o = json_object();
    type[0] = '\0';
    for (const char *line = headers; line != NULL && *line != '\0';) {
        size_t n = strcspn(line, "\r\n");
        const char *colon = memchr(line, ':', n);
        if (colon != NULL && strncmp(line, "HTTP/", 5) != 0) {
            char name[64];
            size_t len = (size_t)(colon - line) < sizeof(name) - 1 ? (size_t)(colon - line) : 0;
            for (size_t i = 0; i < len; i++)
                name[i] = (char)tolower((unsigned char)line[i]);
            name[len] = '\0';
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            json_object_set_new(o, name, json_stringn(v, (size_t)(line + n - v)));
            if (strcmp(name, "content-type") == 0)
                snprintf(type, 128, "%.*s", (int)(line + n - v), v);
        }
        line += n;
        while (*line == '\r' || *line == '\n')
            line++;
    }
    return o;
}

/* One request, its answer recorded under route; asserts its status. Returns the body. */
static char *record(const char *method, const char *route, const char *path, const char *key,
                    const char *content_type, const char *body_file, int want)
{
    int status;
    char *headers = NULL;
    char *r = http(env.server, method, path, key, content_type, body_file, &status, &headers);
    cr_assert_eq(status, want, "%s %s: %s", method, path, r);
    char type[128];
    json_t *h = header_object(headers, type);
    json_array_append_new(recorded, json_pack("{s:s, s:s, s:i, s:s, s:o, s:s}", "method", method,
                                              "route", route, "status", status, "content_type",
                                              type, "headers", h, "body", r));
    free(headers);
    return r;
}

static void recorded_only(const char *method, const char *route, const char *path, const char *key,
                          const char *content_type, const char *body_file, int want)
{
    free(record(method, route, path, key, content_type, body_file, want));
}

static char *key_with(const char *tenant, const char *scopes)
{
    return pdt_create_key_scoped(env.url, tenant, scopes);
}

static const char *text_file(const char *text)
{
    return temp_file(text, strlen(text));
}

static int ready(void *arg)
{
    (void)arg;
    int status;
    free(http(env.server, "GET", "/readyz", NULL, NULL, NULL, &status, NULL));
    return status == 200;
}

Test(openapi, every_routes_answers_match_the_document)
{
    serve_up(NULL);
    recorded = json_array();
    char *review = key_with("acme", "review"), *ingest = key_with("acme", "ingest");

    /* The document itself, as the repository has it. */
    char path[4096];
    snprintf(path, sizeof(path), "%s/docs/openapi.json", PD_SOURCE_DIR);
    size_t doc_len = 0;
    char *doc = pdt_read_file(path, &doc_len);
    cr_assert_not_null(doc);
    char *served = record("GET", "/v1/openapi.json", "/v1/openapi.json", NULL, NULL, NULL, 200);
    cr_assert_eq(strlen(served), doc_len);
    cr_assert_eq(memcmp(served, doc, doc_len), 0, "the served document differs from %s", path);
    free(served);
    free(doc);

    /* Health, readiness, metrics, and a 405. */
    recorded_only("GET", "/healthz", "/healthz", NULL, NULL, NULL, 200);
    recorded_only("POST", "/healthz", "/healthz", NULL, NULL, NULL, 405);
    serve_poll_until(ready, NULL, "/readyz to answer 200");
    recorded_only("GET", "/readyz", "/readyz", NULL, NULL, NULL, 200);
    recorded_only("GET", "/metrics", "/metrics", NULL, NULL, NULL, 200);

    /* Ingestion: 200, 207, 400, 401, 403. */
    const char *records = records_file("oa", 8);
    recorded_only("POST", "/v1/workflows", "/v1/workflows", env.key, NULL, records, 200);
    recorded_only("POST", "/v1/workflows", "/v1/workflows", env.key, NULL,
                  text_file("{\"workflow_id\": \"x\", \"total_tokens\": -1}\n"), 207);
    recorded_only("POST", "/v1/workflows", "/v1/workflows", env.key, "application/json",
                  text_file("[{"), 400);
    recorded_only("POST", "/v1/workflows", "/v1/workflows", NULL, NULL, records, 401);
    recorded_only("POST", "/v1/workflows", "/v1/workflows", review, NULL, records, 403);

    /* The list: 200 (with a next page), 400, 401, 403, 405. */
    recorded_only("GET", "/v1/patterns", "/v1/patterns?top=1", env.key, NULL, NULL, 200);
    recorded_only("GET", "/v1/patterns", "/v1/patterns", env.key, NULL, NULL, 200);
    recorded_only("GET", "/v1/patterns", "/v1/patterns?top=0", env.key, NULL, NULL, 400);
    recorded_only("GET", "/v1/patterns", "/v1/patterns", "pdk_acme~0000000000000000~x", NULL, NULL,
                  401);
    recorded_only("GET", "/v1/patterns", "/v1/patterns", ingest, NULL, NULL, 403);
    recorded_only("PUT", "/v1/patterns", "/v1/patterns", env.key, NULL, NULL, 405);

    long id = pdt_sql_long(env.url, "SELECT min(id) FROM operation_patterns");
    char one[64], rev[96];
    snprintf(one, sizeof(one), "/v1/patterns/%ld", id);
    snprintf(rev, sizeof(rev), "/v1/patterns/%ld/review", id);
    char *status = pdt_sql_value(env.url, "SELECT automation_status FROM operation_patterns"
                                          " WHERE id = (SELECT min(id) FROM operation_patterns)");

    /* One pattern: 200, 400, 404, 403. */
    recorded_only("GET", "/v1/patterns/{id}", one, env.key, NULL, NULL, 200);
    char weeks[96];
    snprintf(weeks, sizeof(weeks), "%s?weeks=521", one);
    recorded_only("GET", "/v1/patterns/{id}", weeks, env.key, NULL, NULL, 400);
    recorded_only("GET", "/v1/patterns/{id}", "/v1/patterns/999999999", env.key, NULL, NULL, 404);
    recorded_only("GET", "/v1/patterns/{id}", one, ingest, NULL, NULL, 403);

    /* Reviews: 200 (approve, then implement: occurrences_since_implemented), 409, 400, 403, 404,
     * 413. */
    char body[256];
    snprintf(body, sizeof(body),
             "{\"action\": \"approve\", \"expected_status\": \"%s\", \"reviewer\": \"Ana\","
             " \"notes\": \"worth a tool\"}",
             status);
    recorded_only("POST", "/v1/patterns/{id}/review", rev, review, "application/json",
                  text_file(body), 200);
    recorded_only("POST", "/v1/patterns/{id}/review", rev, review, "application/json",
                  text_file("{\"action\": \"implement\", \"expected_status\": \"approved\","
                            " \"reviewer\": \"Ana\", \"notes\": \"tools/run-tests\"}"),
                  200);
    recorded_only("POST", "/v1/patterns/{id}/review", rev, review, "application/json",
                  text_file("{\"action\": \"approve\", \"expected_status\": \"approved\","
                            " \"reviewer\": \"Ben\"}"),
                  409);
    recorded_only("POST", "/v1/patterns/{id}/review", rev, review, "application/json",
                  text_file("{\"action\": \"deprecate\", \"expected_status\": \"implemented\","
                            " \"reviewer\": \"Ben\"}"),
                  400);
    recorded_only("POST", "/v1/patterns/{id}/review", rev, env.key, "application/json",
                  text_file("{\"action\": \"deprecate\", \"expected_status\": \"implemented\","
                            " \"reviewer\": \"Ben\", \"reason\": \"x\"}"),
                  403);
    recorded_only("POST", "/v1/patterns/{id}/review", "/v1/patterns/999999999/review", review,
                  "application/json",
                  text_file("{\"action\": \"approve\", \"expected_status\": \"detected\","
                            " \"reviewer\": \"Ben\"}"),
                  404);
    size_t big = 70000;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[big] = '\0';
    recorded_only("POST", "/v1/patterns/{id}/review", rev, review, "application/json",
                  temp_file(huge, big), 413);
    free(huge);
    char *detail = record("GET", "/v1/patterns/{id}", one, env.key, NULL, NULL, 200);
    cr_assert_not_null(strstr(detail, "\"occurrences_since_implemented\": "), "%s", detail);
    cr_assert_not_null(strstr(detail, "\"reviewer\": \"Ana\""), "%s", detail);
    free(detail);

    /* The key's own tenant and scopes. */
    char *me = record("GET", "/v1/me", "/v1/me", ingest, NULL, NULL, 200);
    cr_assert_not_null(strstr(me, "\"scopes\": [\"ingest\"]"), "%s", me);
    free(me);
    me = record("GET", "/v1/me", "/v1/me", review, NULL, NULL, 200);
    cr_assert_not_null(strstr(me, "\"scopes\": [\"read\", \"review\"]"), "%s", me);
    free(me);

    /* The summary and the thresholds. */
    recorded_only("GET", "/v1/review/summary", "/v1/review/summary", env.key, NULL, NULL, 200);
    recorded_only("GET", "/v1/review/summary", "/v1/review/summary", ingest, NULL, NULL, 403);
    recorded_only("GET", "/v1/review/thresholds", "/v1/review/thresholds", env.key, NULL, NULL,
                  200);
    recorded_only("PUT", "/v1/review/thresholds", "/v1/review/thresholds", review,
                  "application/json",
                  text_file("{\"min_occurrences\": 3, \"min_confidence\": 50.5,"
                            " \"min_savings\": 0.25}"),
                  200);
    recorded_only("PUT", "/v1/review/thresholds", "/v1/review/thresholds", review,
                  "application/json", text_file("{\"min_occurrences\": 3}"), 400);
    recorded_only("PUT", "/v1/review/thresholds", "/v1/review/thresholds", env.key,
                  "application/json",
                  text_file("{\"min_occurrences\": 3, \"min_confidence\": 50,"
                            " \"min_savings\": 0}"),
                  403);

    /* The answers to the validator. */
    char answers[64];
    snprintf(answers, sizeof(answers), "/tmp/pdt-openapi-%d.ndjson", (int)getpid());
    FILE *f = fopen(answers, "w");
    cr_assert_not_null(f);
    size_t i;
    json_t *a;
    json_array_foreach(recorded, i, a)
    {
        json_dumpf(a, f, JSON_COMPACT);
        fputc('\n', f);
    }
    fclose(f);
    keep_temp(strdup(answers));
    char modules[4096];
    snprintf(modules, sizeof(modules), "%s/.tmp/openapi/node_modules", PD_SOURCE_DIR);
    cr_assert_eq(access(modules, R_OK), 0,
                 "%s is missing: scripts/setup.sh installs the validator (npm ci)", modules);
    char cmd[8192];
    snprintf(cmd, sizeof(cmd),
             "NODE_PATH='%s' node '%s/tests/openapi/validate.js' '%s/docs/openapi.json' '%s' 2>&1",
             modules, PD_SOURCE_DIR, PD_SOURCE_DIR, answers);
    int exit_status;
    char *out = pdt_run(cmd, &exit_status);
    cr_assert_eq(exit_status, 0, "%s", out);
    char want[64];
    snprintf(want, sizeof(want), "%zu answers checked, 0 problems", json_array_size(recorded));
    cr_assert_not_null(strstr(out, want), "%s", out);
    free(out);
    json_decref(recorded);
    free(status);
    free(review);
    free(ingest);
    serve_down();
}
