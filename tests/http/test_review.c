/*
 * Stage: service (the review API, docs/spec.md §5-§7).  Through `patternd
 * serve`: every move of the status graph allowed (200, the pattern in its
 * new state, one audit row) and every other refused (409 with the current
 * status, nothing written); a missing reason (400); each scope a request
 * lacks (403, nothing written); two concurrent reviews of one pattern (one
 * 200, one 409), raced at a known point: both wait on a row lock the test
 * holds; thresholds moving patterns both ways with audit rows; another
 * tenant's ids (404); the weekly series and examples of a pattern; the
 * list's filters and cursor paging; every bound of a request; HEAD, 405s
 * with Allow, the access log, and numbers as their shortest decimals; with
 * the database down, an anonymous /readyz and libpq's messages on one log
 * line each.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve_fixture.h"
#include "support.h"

TestSuite(review, .fini = serve_release);

/* A new key of tenant with the scopes (e.g. "review"); malloc'd. */
static char *key_with(const char *tenant, const char *scopes)
{
    return pdt_create_key_scoped(env.url, tenant, scopes);
}

/*
 * Records of tenant acme (through the fixture's key): n workflows "run the
 * backend tests" of cost 0.1, one a week back from 2026-11-30, and m "build
 * the frontend" ones.
 */
static void post_records(int n, int m)
{
    size_t cap = (size_t)(n + m) * 256 + 1, len = 0;
    char *body = malloc(cap);
    for (int i = 0; i < n; i++)
        len +=
            (size_t)snprintf(body + len, cap - len,
                             "{\"workflow_id\": \"t-%d\", \"nl_input\": \"run the backend tests\","
                             " \"total_tokens\": 1000, \"actual_cost_total\": 0.1,"
                             " \"start_time\": \"2026-%02d-%02dT10:00:00Z\"}\n",
                             i, 11 - i / 4, 30 - 7 * (i % 4));
    for (int i = 0; i < m; i++)
        len += (size_t)snprintf(body + len, cap - len,
                                "{\"workflow_id\": \"b-%d\", \"nl_input\": \"build the frontend\","
                                " \"total_tokens\": 500, \"actual_cost_total\": 0.3}\n",
                                i);
    int status;
    char *r = http(env.server, "POST", "/v1/workflows", env.key, NULL, temp_file(body, len),
                   &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    free(r);
    free(body);
}

/* The id of acme's pattern whose signature starts with prefix. */
static long pattern_id(const char *prefix)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT id FROM operation_patterns WHERE tenant_id = 'acme'"
             " AND pattern_signature LIKE '%s%%' ORDER BY id LIMIT 1",
             prefix);
    long id = pdt_sql_long(env.url, sql);
    cr_assert_gt(id, 0, "no pattern %s", prefix);
    return id;
}

static char *status_of(long id)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT automation_status FROM operation_patterns WHERE id = %ld",
             id);
    return pdt_sql_value(env.url, sql);
}

static long audit_rows(long id)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM pattern_reviews WHERE pattern_id = %ld", id);
    return pdt_sql_long(env.url, sql);
}

/* A review body; reason and notes may be NULL. Returns the body file. */
static const char *review_body(const char *action, const char *expected, const char *reason)
{
    char body[1024];
    int n = snprintf(body, sizeof(body),
                     "{\"action\": \"%s\", \"expected_status\": \"%s\", \"reviewer\": \"Ana\""
                     "%s%s%s}",
                     action, expected, reason ? ", \"reason\": \"" : "", reason ? reason : "",
                     reason ? "\"" : "");
    return temp_file(body, (size_t)n);
}

static char *post_review(const char *key, long id, const char *body_file, int *status)
{
    char path[96];
    snprintf(path, sizeof(path), "/v1/patterns/%ld/review", id);
    return http(env.server, "POST", path, key, "application/json", body_file, status, NULL);
}

/* The string member name of the JSON object text (malloc'd), or NULL. */
static char *json_str(const char *text, const char *name)
{
    json_t *o = json_loads(text, 0, NULL);
    cr_assert_not_null(o, "not JSON: %s", text);
    json_t *v = json_object_get(o, name);
    char *s = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
    json_decref(o);
    return s;
}

static const char *const STATUSES[] = {"detected", "candidate",   "approved",
                                       "rejected", "implemented", "deprecated"};
static const char *const ACTIONS[] = {"approve", "reject", "implement", "deprecate", "reopen"};

/* The graph of docs/spec.md §5, written out here on its own: the status action leads to, or NULL.
 */
static const char *graph(const char *from, const char *action)
{
    bool fresh = strcmp(from, "detected") == 0 || strcmp(from, "candidate") == 0;
    if (strcmp(action, "approve") == 0)
        return fresh ? "approved" : NULL;
    if (strcmp(action, "reject") == 0)
        return fresh ? "rejected" : NULL;
    if (strcmp(action, "implement") == 0)
        return strcmp(from, "approved") == 0 ? "implemented" : NULL;
    if (strcmp(action, "deprecate") == 0)
        return strcmp(from, "approved") == 0 || strcmp(from, "implemented") == 0 ? "deprecated"
                                                                                 : NULL;
    return strcmp(from, "rejected") == 0 || strcmp(from, "deprecated") == 0 ? "detected" : NULL;
}

Test(review, every_transition_is_allowed_or_refused_as_the_graph_says)
{
    serve_up(NULL);
    post_records(6, 0);
    char *reviewer = key_with("acme", "review");
    long id = pattern_id("test:");
    char key_id[17];
    snprintf(key_id, sizeof(key_id), "%.16s", strchr(reviewer, '~') + 1);
    int allowed = 0;
    for (int s = 0; s < 6; s++) {
        for (int a = 0; a < 5; a++) {
            char sql[256];
            snprintf(sql, sizeof(sql),
                     "UPDATE operation_patterns SET automation_status = '%s' WHERE id = %ld",
                     STATUSES[s], id);
            pdt_sql_exec(env.url, sql);
            long before = audit_rows(id);
            int status;
            char *r =
                post_review(reviewer, id, review_body(ACTIONS[a], STATUSES[s], "no use"), &status);
            const char *to = graph(STATUSES[s], ACTIONS[a]);
            char *now = status_of(id);
            if (to != NULL) {
                allowed++;
                cr_assert_eq(status, 200, "%s from %s: %s", ACTIONS[a], STATUSES[s], r);
                char *answered = json_str(r, "automation_status");
                cr_assert_str_eq(answered, to, "%s", r);
                cr_assert_str_eq(now, to);
                cr_assert_eq(audit_rows(id), before + 1);
                snprintf(sql, sizeof(sql),
                         "SELECT from_status || '>' || to_status || ' ' || actor || ' ' || reviewer"
                         " FROM pattern_reviews WHERE pattern_id = %ld ORDER BY id DESC LIMIT 1",
                         id);
                char *row = pdt_sql_value(env.url, sql), want[128];
                snprintf(want, sizeof(want), "%s>%s %s Ana", STATUSES[s], to, key_id);
                cr_assert_str_eq(row, want);
                /* The answer is the pattern's document, with the move in its history. */
                cr_assert_not_null(strstr(r, "\"history\": ["), "%s", r);
                cr_assert_not_null(strstr(r, "\"weekly\": ["), "%s", r);
                free(row);
                free(answered);
            } else {
                cr_assert_eq(status, 409, "%s from %s: %s", ACTIONS[a], STATUSES[s], r);
                char *answered = json_str(r, "automation_status");
                cr_assert_str_eq(answered, STATUSES[s], "%s", r);
                cr_assert_str_eq(now, STATUSES[s]);
                cr_assert_eq(audit_rows(id), before);
                free(answered);
            }
            free(now);
            free(r);
        }
    }
    cr_assert_eq(allowed, 9); /* the graph's nine edges a reviewer makes */

    /* A stale expected_status: 409 with the status the pattern has, nothing changed. */
    pdt_sql_exec(env.url, "UPDATE operation_patterns SET automation_status = 'approved'");
    long before = audit_rows(id);
    int status;
    char *r = post_review(reviewer, id, review_body("approve", "candidate", NULL), &status);
    cr_assert_eq(status, 409, "%s", r);
    cr_assert_not_null(strstr(r, "\"automation_status\": \"approved\""), "%s", r);
    cr_assert_eq(audit_rows(id), before);
    free(r);

    /* Reject and deprecate without a reason (absent, or blank): 400, nothing changed. */
    const char *no_reason[][3] = {{"reject", "candidate", NULL},
                                  {"reject", "candidate", "   "},
                                  {"deprecate", "approved", NULL}};
    for (int i = 0; i < 3; i++) {
        char sql[128];
        snprintf(sql, sizeof(sql), "UPDATE operation_patterns SET automation_status = '%s'",
                 no_reason[i][1]);
        pdt_sql_exec(env.url, sql);
        r = post_review(reviewer, id,
                        review_body(no_reason[i][0], no_reason[i][1], no_reason[i][2]), &status);
        cr_assert_eq(status, 400, "%s", r);
        cr_assert_not_null(strstr(r, "\"field\": \"reason\""), "%s", r);
        char *now = status_of(id);
        cr_assert_str_eq(now, no_reason[i][1]);
        free(now);
        free(r);
    }
    cr_assert_eq(audit_rows(id), before);
    free(reviewer);
    serve_down();
}

Test(review, a_request_outside_its_keys_scopes_is_refused_and_writes_nothing)
{
    serve_up(NULL);
    post_records(6, 0);
    long id = pattern_id("test:");
    char *ingest = key_with("acme", "ingest"), *read = key_with("acme", "read"),
         *review = key_with("acme", "review");
    char one[64], rev[96];
    snprintf(one, sizeof(one), "/v1/patterns/%ld", id);
    snprintf(rev, sizeof(rev), "/v1/patterns/%ld/review", id);
    static const char th[] = "{\"min_occurrences\": 1, \"min_confidence\": 0, \"min_savings\": 0}";
    const char *thresholds = temp_file(th, strlen(th));
    const char *records = records_file("scoped", 3);
    struct {
        const char *key, *method, *path, *body, *scope;
    } refused[] = {
        {ingest, "GET", "/v1/patterns", NULL, "read"},
        {ingest, "GET", one, NULL, "read"},
        {ingest, "GET", "/v1/review/summary", NULL, "read"},
        {ingest, "GET", "/v1/review/thresholds", NULL, "read"},
        {ingest, "POST", rev, review_body("approve", "detected", NULL), "review"},
        {read, "POST", rev, review_body("approve", "detected", NULL), "review"},
        {read, "PUT", "/v1/review/thresholds", thresholds, "review"},
        {read, "POST", "/v1/workflows", records, "ingest"},
        {review, "POST", "/v1/workflows", records, "ingest"},
    };
    long workflows = pdt_sql_long(env.url, "SELECT count(*) FROM workflows");
    char *status_before = status_of(id);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        int status;
        char *r = http(env.server, refused[i].method, refused[i].path, refused[i].key, NULL,
                       refused[i].body, &status, NULL);
        cr_assert_eq(status, 403, "%s %s: %s", refused[i].method, refused[i].path, r);
        char want[64];
        snprintf(want, sizeof(want), "lacks the %s scope", refused[i].scope);
        cr_assert_not_null(strstr(r, want), "%s", r);
        free(r);
    }
    cr_assert_eq(pdt_sql_long(env.url, "SELECT count(*) FROM workflows"), workflows);
    cr_assert_eq(pdt_sql_long(env.url, "SELECT count(*) FROM pattern_reviews"
                                       " WHERE actor <> 'patternd'"),
                 0);
    cr_assert_eq(pdt_sql_long(env.url, "SELECT count(*) FROM review_thresholds"), 0);
    char *status_after = status_of(id);
    cr_assert_str_eq(status_after, status_before);

    /* What each scope allows: review reads too, read reads, ingest posts. */
    int status;
    char *r = http(env.server, "GET", one, review, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    free(r);
    r = http(env.server, "GET", "/v1/review/summary", read, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    free(r);
    r = http(env.server, "POST", "/v1/workflows", ingest, NULL, records, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    free(r);
    char *now = status_of(id); /* the posts may have made it a candidate */
    r = http(env.server, "POST", rev, review, NULL, review_body("approve", now, NULL), &status,
             NULL);
    free(now);
    cr_assert_eq(status, 200, "%s", r);
    free(r);
    free(status_before);
    free(status_after);
    free(ingest);
    free(read);
    free(review);
    serve_down();
}

/* The backends waiting on a lock in the test's database: at least want of them. */
typedef struct waiters {
    pdt_nodes_t nodes;
    long want;
} waiters_t;

static int enough_waiters(void *arg)
{
    waiters_t *w = arg;
    return pdt_lock_waiters(&w->nodes) >= w->want;
}

Test(review, two_concurrent_reviews_one_wins_and_the_other_gets_409)
{
    serve_up(NULL);
    post_records(6, 0);
    long id = pattern_id("test:");
    pdt_sql_exec(env.url, "UPDATE operation_patterns SET automation_status = 'candidate'");
    char *review = key_with("acme", "review");

    /* The test holds the pattern's row, so both reviews wait for it at the same point. */
    PGconn *holder = PQconnectdb(env.url);
    cr_assert_eq(PQstatus(holder), CONNECTION_OK, "%s", PQerrorMessage(holder));
    char sql[160];
    snprintf(sql, sizeof(sql),
             "BEGIN; SELECT 1 FROM operation_patterns WHERE tenant_id = 'acme' AND id = %ld"
             " FOR UPDATE",
             id);
    PGresult *res = PQexec(holder, sql);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(holder));
    PQclear(res);

    char path[96];
    snprintf(path, sizeof(path), "/v1/patterns/%ld/review", id);
    pending_http_t *ana =
        http_start(env.server, "POST", path, review, review_body("approve", "candidate", NULL));
    pending_http_t *ben = http_start(env.server, "POST", path, review,
                                     review_body("reject", "candidate", "duplicate of another"));
    waiters_t w = {.want = 2};
    pdt_nodes_of(env.url, &w.nodes);
    serve_poll_until(enough_waiters, &w, "both reviews to wait on the held row");
    cr_assert(!http_done(ana) && !http_done(ben));
    res = PQexec(holder, "COMMIT");
    PQclear(res);
    PQfinish(holder);

    int sa, sb;
    char *ra = http_finish(ana, &sa, NULL), *rb = http_finish(ben, &sb, NULL);
    cr_assert((sa == 200 && sb == 409) || (sa == 409 && sb == 200), "%d %s / %d %s", sa, ra, sb,
              rb);
    char *now = status_of(id);
    const char *loser = sa == 409 ? ra : rb;
    char want[64];
    snprintf(want, sizeof(want), "\"automation_status\": \"%s\"", now);
    cr_assert_not_null(strstr(loser, want), "the 409 reports the winner's status %s: %s", now,
                       loser);
    cr_assert_str_eq(now, sa == 200 ? "approved" : "rejected");
    cr_assert_eq(pdt_sql_long(env.url, "SELECT count(*) FROM pattern_reviews"
                                       " WHERE actor <> 'patternd'"),
                 1);
    free(now);
    free(ra);
    free(rb);
    pdt_nodes_free(&w.nodes);
    free(review);
    serve_down();
}

static const char *thresholds_file(const char *n, const char *c, const char *s)
{
    char body[256];
    int len =
        snprintf(body, sizeof(body),
                 "{\"min_occurrences\": %s, \"min_confidence\": %s, \"min_savings\": %s}", n, c, s);
    return temp_file(body, (size_t)len);
}

Test(review, thresholds_move_patterns_both_ways_with_audit_rows)
{
    serve_up(NULL);
    post_records(6, 3);
    char *review = key_with("acme", "review");
    int status;
    char *r = http(env.server, "GET", "/v1/review/thresholds", review, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    cr_assert_str_eq(r, "{\"tenant_id\": \"acme\", \"min_occurrences\": 5, \"min_confidence\":"
                        " 70.0, \"min_savings\": 1.0}\n");
    free(r);
    long patterns = pdt_sql_long(env.url, "SELECT count(*) FROM operation_patterns");
    cr_assert_geq(patterns, 2);
    /* One pattern a reviewer decided on: thresholds never move it. */
    long build = pattern_id("build:");
    pdt_sql_exec(env.url, "UPDATE operation_patterns SET automation_status = 'approved'"
                          " WHERE pattern_signature LIKE 'build:%'");
    long already = pdt_sql_long(env.url, "SELECT count(*) FROM operation_patterns"
                                         " WHERE automation_status = 'candidate'");
    long audit = pdt_sql_long(env.url, "SELECT count(*) FROM pattern_reviews");
    long ups_before = pdt_sql_long(env.url, "SELECT count(*) FROM pattern_reviews WHERE actor ="
                                            " 'patternd' AND to_status = 'candidate'");

    /* Thresholds every pattern meets: each detected one becomes a candidate. */
    r = http(env.server, "PUT", "/v1/review/thresholds", review, "application/json",
             thresholds_file("0", "0", "0"), &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    long approved = pdt_sql_long(env.url, "SELECT count(*) FROM operation_patterns"
                                          " WHERE automation_status = 'approved'");
    long up = patterns - approved - already;
    cr_assert_gt(up, 0);
    cr_assert_eq(json_long(r, "moved"), up, "%s", r);
    free(r);
    cr_assert_eq(pdt_sql_long(env.url, "SELECT count(*) FROM operation_patterns"
                                       " WHERE automation_status = 'candidate'"),
                 patterns - approved);
    cr_assert_eq(pdt_sql_long(env.url, "SELECT count(*) FROM pattern_reviews WHERE actor ="
                                       " 'patternd' AND from_status = 'detected'"
                                       " AND to_status = 'candidate'"),
                 ups_before + up);
    long audit_up = pdt_sql_long(env.url, "SELECT count(*) FROM pattern_reviews");
    cr_assert_eq(audit_up, audit + up);

    /* Thresholds none meets: every candidate goes back to detected; the approved one stays. */
    r = http(env.server, "PUT", "/v1/review/thresholds", review, "application/json",
             thresholds_file("1000000", "100", "1e6"), &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    cr_assert_eq(json_long(r, "moved"), patterns - approved, "%s", r);
    free(r);
    cr_assert_eq(pdt_sql_long(env.url, "SELECT count(*) FROM operation_patterns"
                                       " WHERE automation_status = 'detected'"),
                 patterns - approved);
    cr_assert_eq(pdt_sql_long(env.url, "SELECT count(*) FROM pattern_reviews WHERE actor ="
                                       " 'patternd' AND from_status = 'candidate'"
                                       " AND to_status = 'detected'"),
                 patterns - approved);
    cr_assert_eq(pdt_sql_long(env.url, "SELECT count(*) FROM pattern_reviews"),
                 audit_up + patterns - approved);
    char *still = status_of(build);
    cr_assert_str_eq(still, "approved");
    free(still);
    cr_assert_eq(pdt_sql_long(env.url, "SELECT count(*) FROM review_thresholds WHERE tenant_id ="
                                       " 'acme' AND min_occurrences = 1000000"
                                       " AND min_confidence = 100 AND min_savings = 1000000"),
                 1);

    /* Out of range: 400 naming the field, nothing changed. */
    const char *bad[][4] = {
        {"-1", "0", "0", "min_occurrences"},   {"1.5", "0", "0", "min_occurrences"},
        {"1", "100.5", "0", "min_confidence"}, {"1", "0", "-0.01", "min_savings"},
        {"1", "0", "1e29", "min_savings"},     {"1", "\"70\"", "0", "min_confidence"}};
    for (int i = 0; i < 6; i++) {
        r = http(env.server, "PUT", "/v1/review/thresholds", review, "application/json",
                 thresholds_file(bad[i][0], bad[i][1], bad[i][2]), &status, NULL);
        cr_assert_eq(status, 400, "%s", r);
        char want[64];
        snprintf(want, sizeof(want), "\"field\": \"%s\"", bad[i][3]);
        cr_assert_not_null(strstr(r, want), "%s", r);
        free(r);
    }
    char *stored = pdt_sql_value(env.url, "SELECT min_occurrences FROM review_thresholds");
    cr_assert_str_eq(stored, "1000000");
    free(stored);
    free(review);
    serve_down();
}

Test(review, another_tenants_ids_answer_404)
{
    serve_up(NULL);
    post_records(6, 0);
    long id = pattern_id("test:");
    char *globex = key_with("globex", "review");
    char one[64], rev[96];
    snprintf(one, sizeof(one), "/v1/patterns/%ld", id);
    snprintf(rev, sizeof(rev), "/v1/patterns/%ld/review", id);
    int status;
    char *r = http(env.server, "GET", one, globex, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 404, "%s", r);
    cr_assert_null(strstr(r, "test:"), "%s", r);
    free(r);
    char *before = status_of(id);
    r = http(env.server, "POST", rev, globex, NULL, review_body("approve", before, NULL), &status,
             NULL);
    cr_assert_eq(status, 404, "%s", r);
    free(r);
    char *after = status_of(id);
    cr_assert_str_eq(after, before);
    cr_assert_eq(audit_rows(id), pdt_sql_long(env.url, "SELECT count(*) FROM pattern_reviews"
                                                       " WHERE actor = 'patternd'"));
    /* An id no tenant has, and the tenant's own lists. */
    r = http(env.server, "GET", "/v1/patterns/999999999", env.key, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 404, "%s", r);
    free(r);
    r = http(env.server, "GET", "/v1/review/summary", globex, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    cr_assert_eq(json_long(r, "detected") + json_long(r, "candidate"), 0, "%s", r);
    free(r);
    free(before);
    free(after);
    free(globex);
    serve_down();
}

Test(review, weekly_occurrences_sum_to_the_count_and_examples_are_the_patterns_own)
{
    serve_up(NULL);
    post_records(24, 3);
    long id = pattern_id("test:");
    char path[96];
    snprintf(path, sizeof(path), "/v1/patterns/%ld?weeks=520", id);
    int status;
    char *r = http(env.server, "GET", path, env.key, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    json_t *doc = json_loads(r, 0, NULL);
    cr_assert_not_null(doc, "%s", r);
    long count = (long)json_integer_value(json_object_get(doc, "occurrence_count"));
    cr_assert_eq(count, 24);
    json_t *weekly = json_object_get(doc, "weekly");
    cr_assert_eq(json_array_size(weekly), 520);
    long sum = 0, weeks_with = 0;
    double cost = 0;
    size_t i;
    json_t *w;
    json_array_foreach(weekly, i, w)
    {
        long n = (long)json_integer_value(json_object_get(w, "occurrences"));
        sum += n;
        weeks_with += n > 0;
        cost += json_number_value(json_object_get(w, "cost"));
    }
    cr_assert_eq(sum, count, "%s", r);
    cr_assert_eq(weeks_with, 24, "one occurrence a week: %s", r);
    cr_assert_float_eq(cost, 2.4, 1e-9);
    /* Monday 2026-11-30 is 2026-W49 (docs/spec.md §6), with one occurrence that day. */
    cr_assert_not_null(strstr(r, "{\"week\": \"2026-W49\", \"week_start\": \"2026-11-30\","
                                 " \"occurrences\": 1, \"cost\": 0.1}"),
                       "%s", r);
    json_t *examples = json_object_get(doc, "examples");
    cr_assert_eq(json_array_size(examples), 20);
    json_t *e;
    const char *previous = NULL;
    json_array_foreach(examples, i, e)
    {
        const char *wid = json_string_value(json_object_get(e, "workflow_id"));
        cr_assert_eq(strncmp(wid, "t-", 2), 0, "an example of another pattern: %s", wid);
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM workflows w JOIN operation_patterns p"
                 " ON p.tenant_id = w.tenant_id AND p.id = %ld"
                 " WHERE w.workflow_id = '%s' AND w.signatures @> ARRAY[p.pattern_signature]",
                 id, wid);
        cr_assert_eq(pdt_sql_long(env.url, sql), 1, "%s", wid);
        const char *at = json_string_value(json_object_get(e, "event_at"));
        if (previous != NULL)
            cr_assert_leq(strcmp(at, previous), 0, "most recent first: %s after %s", at, previous);
        previous = at;
    }
    json_decref(doc);
    free(r);

    /* The weeks' bound: 1 to 520. */
    const char *bad[] = {"?weeks=0", "?weeks=521", "?weeks=x", "?weeks=-1"};
    for (int b = 0; b < 4; b++) {
        snprintf(path, sizeof(path), "/v1/patterns/%ld%s", id, bad[b]);
        r = http(env.server, "GET", path, env.key, NULL, NULL, &status, NULL);
        cr_assert_eq(status, 400, "%s: %s", path, r);
        cr_assert_not_null(strstr(r, "\"field\": \"weeks\""), "%s", r);
        free(r);
    }
    snprintf(path, sizeof(path), "/v1/patterns/%ld", id);
    r = http(env.server, "GET", path, env.key, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    cr_assert_eq(count_of(r, "\"week_start\""), 26, "the default is 26 weeks");
    free(r);
    serve_down();
}

/* Every id of the list's pages, following next_cursor, with query extra. */
static size_t page_through(const char *key, const char *extra, long ids[64])
{
    char cursor[256] = "";
    size_t n = 0;
    for (int pages = 0; pages < 64; pages++) {
        char path[512];
        snprintf(path, sizeof(path), "/v1/patterns?top=1%s%s%s", extra, cursor[0] ? "&cursor=" : "",
                 cursor);
        int status;
        char *r = http(env.server, "GET", path, key, NULL, NULL, &status, NULL);
        cr_assert_eq(status, 200, "%s", r);
        json_t *doc = json_loads(r, 0, NULL);
        json_t *rows = json_object_get(doc, "patterns");
        cr_assert_leq(json_array_size(rows), 1);
        if (json_array_size(rows) == 1)
            ids[n++] = (long)json_integer_value(json_object_get(json_array_get(rows, 0), "id"));
        json_t *next = json_object_get(doc, "next_cursor");
        bool more = json_is_string(next);
        if (more)
            snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        json_decref(doc);
        free(r);
        if (!more)
            return n;
    }
    cr_assert_fail("the cursor never ended");
    return n;
}

Test(review, list_filters_and_cursor_paging)
{
    serve_up(NULL);
    post_records(6, 3);
    long patterns = pdt_sql_long(env.url, "SELECT count(*) FROM operation_patterns");
    long ids[64];
    size_t n = page_through(env.key, "", ids);
    cr_assert_eq((long)n, patterns);
    for (size_t i = 0; i < n; i++) {
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT id FROM operation_patterns ORDER BY potential_monthly_savings DESC, id"
                 " OFFSET %zu LIMIT 1",
                 i);
        cr_assert_eq(ids[i], pdt_sql_long(env.url, sql), "page %zu", i);
    }
    /* Filters: status, type, min_confidence. */
    long build = pattern_id("build:");
    char sql[160];
    snprintf(sql, sizeof(sql),
             "UPDATE operation_patterns SET automation_status = 'approved' WHERE id = %ld", build);
    pdt_sql_exec(env.url, sql);
    n = page_through(env.key, "&status=approved", ids);
    cr_assert_eq(n, 1);
    cr_assert_eq(ids[0], build);
    n = page_through(env.key, "&type=build", ids);
    cr_assert_eq((long)n, pdt_sql_long(env.url, "SELECT count(*) FROM operation_patterns"
                                                " WHERE pattern_type = 'build'"));
    n = page_through(env.key, "&min_confidence=100", ids);
    cr_assert_eq((long)n, pdt_sql_long(env.url, "SELECT count(*) FROM operation_patterns"
                                                " WHERE confidence_score >= 100"));
    /* Each answer's pattern carries id, status and its event-time span. */
    int status;
    char *r = http(env.server, "GET", "/v1/patterns?type=test", env.key, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    cr_assert_not_null(strstr(r, "\"first_occurrence_at\": \"2026-10-"), "%s", r);
    cr_assert_not_null(strstr(r, "\"last_occurrence_at\": \"2026-11-30T10:00:00.000000Z\""), "%s",
                       r);
    free(r);
    /* Bad parameters: 400 naming the parameter. */
    const char *bad[][2] = {{"?top=0", "top"},
                            {"?top=10001", "top"},
                            {"?status=done", "status"},
                            {"?type=Test%20X", "type"},
                            {"?min_confidence=101", "min_confidence"},
                            {"?cursor=bm90IGEgY3Vyc29y", "cursor"},
                            {"?cursor=%%%", "cursor"}};
    for (int i = 0; i < 7; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/v1/patterns%s", bad[i][0]);
        r = http(env.server, "GET", path, env.key, NULL, NULL, &status, NULL);
        cr_assert_eq(status, 400, "%s: %s", path, r);
        char want[64];
        snprintf(want, sizeof(want), "\"field\": \"%s\"", bad[i][1]);
        cr_assert_not_null(strstr(r, want), "%s: %s", path, r);
        free(r);
    }
    r = http(env.server, "GET", "/v1/review/summary", env.key, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    cr_assert_eq(json_long(r, "approved"), 1, "%s", r);
    cr_assert_eq(json_long(r, "detected") + json_long(r, "candidate"), patterns - 1, "%s", r);
    free(r);
    serve_down();
}

Test(review, every_bound_of_a_review_is_enforced)
{
    serve_up(NULL);
    post_records(6, 0);
    long id = pattern_id("test:");
    char *review = key_with("acme", "review");
    char *before = status_of(id);
    size_t big = 70 * 1024;
    char *body = malloc(big + 512);
    /* A reviewer of 257 bytes, notes and a reason of 16385, a body past 64 KiB. */
    struct {
        const char *field, *filler;
        size_t len;
        int status;
    } cases[] = {{"reviewer", "reviewer", 257, 400},
                 {"notes", "notes", 16385, 400},
                 {"reason", "reason", 16385, 400},
                 {"", "notes", 66000, 413}};
    for (int c = 0; c < 4; c++) {
        int n = snprintf(body, 256,
                         "{\"action\": \"approve\", \"expected_status\": \"%s\", %s\"%s\": \"",
                         before, strcmp(cases[c].filler, "reviewer") ? "\"reviewer\": \"x\", " : "",
                         cases[c].filler);
        memset(body + n, 'a', cases[c].len);
        n += (int)cases[c].len;
        n += snprintf(body + n, 8, "\"}");
        int status;
        char *r = post_review(review, id, temp_file(body, (size_t)n), &status);
        cr_assert_eq(status, cases[c].status, "%s: %s", cases[c].filler, r);
        if (cases[c].field[0] != '\0') {
            char want[64];
            snprintf(want, sizeof(want), "\"field\": \"%s\"", cases[c].field);
            cr_assert_not_null(strstr(r, want), "%s", r);
        }
        free(r);
    }
    /* At the bounds: accepted. */
    int n =
        snprintf(body, 256,
                 "{\"action\": \"approve\", \"expected_status\": \"%s\", \"reviewer\": \"", before);
    memset(body + n, 'r', 256);
    n += 256;
    n += snprintf(body + n, 32, "\", \"notes\": \"");
    memset(body + n, 'n', 16384);
    n += 16384;
    n += snprintf(body + n, 8, "\"}");
    int status;
    char path[96];
    snprintf(path, sizeof(path), "/v1/patterns/%ld/review?weeks=3", id);
    char *r = http(env.server, "POST", path, review, "application/json", temp_file(body, (size_t)n),
                   &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    cr_assert_eq(count_of(r, "\"week_start\""), 3, "the answer's series has ?weeks=3");
    free(r);
    snprintf(path, sizeof(path), "/v1/patterns/%ld/review?weeks=521", id);
    r = http(env.server, "POST", path, review, "application/json", temp_file(body, (size_t)n),
             &status, NULL);
    cr_assert_eq(status, 400, "%s", r);
    cr_assert_not_null(strstr(r, "\"field\": \"weeks\""), "%s", r);
    free(r);
    /* Malformed: not JSON, not an object, an unknown action, no expected_status, no reviewer. */
    const char *malformed[][2] = {
        {"{", ""},
        {"[1]", ""},
        {"{\"action\": \"ship\", \"expected_status\": \"approved\","
         " \"reviewer\": \"x\"}",
         "action"},
        {"{\"action\": \"implement\", \"reviewer\": \"x\"}", "expected_status"},
        {"{\"action\": \"implement\", \"expected_status\": \"approved\"}", "reviewer"},
        {"{\"action\": \"implement\", \"expected_status\": \"done\","
         " \"reviewer\": \"x\"}",
         "expected_status"}};
    for (int i = 0; i < 6; i++) {
        r = post_review(review, id, temp_file(malformed[i][0], strlen(malformed[i][0])), &status);
        cr_assert_eq(status, 400, "%s: %s", malformed[i][0], r);
        if (malformed[i][1][0] != '\0') {
            char want[64];
            snprintf(want, sizeof(want), "\"field\": \"%s\"", malformed[i][1]);
            cr_assert_not_null(strstr(r, want), "%s", r);
        }
        free(r);
    }
    cr_assert_eq(pdt_sql_long(env.url, "SELECT count(*) FROM pattern_reviews"
                                       " WHERE actor <> 'patternd'"),
                 1);
    free(body);
    free(before);
    free(review);
    serve_down();
}

Test(review, head_405_allow_access_log_and_shortest_numbers)
{
    serve_up(NULL);
    post_records(6, 0);
    int status;
    char *headers = NULL;
    char *r = http_with(env.server, "HEAD", "/healthz", NULL, NULL, NULL, "-I", &status, &headers);
    cr_assert_eq(status, 200, "%s", headers);
    free(r);
    free(headers);
    struct {
        const char *method, *path, *allow;
    } wrong[] = {{"POST", "/healthz", "Allow: GET, HEAD\r\n"},
                 {"DELETE", "/v1/patterns", "Allow: GET, HEAD\r\n"},
                 {"GET", "/v1/workflows", "Allow: POST\r\n"},
                 {"GET", "/v1/patterns/1/review", "Allow: POST\r\n"},
                 {"POST", "/v1/review/thresholds", "Allow: GET, HEAD, PUT\r\n"}};
    for (int i = 0; i < 5; i++) {
        r = http(env.server, wrong[i].method, wrong[i].path, env.key, NULL, NULL, &status,
                 &headers);
        cr_assert_eq(status, 405, "%s %s: %s", wrong[i].method, wrong[i].path, r);
        cr_assert_not_null(strstr(headers, wrong[i].allow), "%s", headers);
        free(r);
        free(headers);
    }
    /* Shortest decimals: a cost of 0.1 averages to 0.1, not 0.10000000000000001. */
    r = http(env.server, "GET", "/v1/patterns?type=test", env.key, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 200, "%s", r);
    cr_assert_not_null(strstr(r, "\"avg_cost_with_llm\": 0.1,"), "%s", r);
    cr_assert_null(strstr(r, "00000000"), "%s", r);
    free(r);
    /* The access log: one line per request at the default level, without the query. */
    r = http(env.server, "GET", "/v1/patterns?top=3&cursor=secretcursor", env.key, NULL, NULL,
             &status, NULL);
    free(r);
    server_log_wait(env.server, "method=GET path=\"/v1/patterns\" status=400");
    server_log_wait(env.server, "method=HEAD path=\"/healthz\" status=200");
    server_log_wait(env.server, "method=POST path=\"/v1/workflows\" status=200");
    char *log = pdt_read_file(env.server->log, NULL);
    cr_assert_null(strstr(log, "secretcursor"), "%s", log);
    cr_assert_null(strstr(log, "pdk_"), "the log shows a key: %s", log);
    free(log);
    serve_down();
}

/*
 * A TCP port of 127.0.0.1 that nothing listens on: *fd holds it bound and
 * not listening (connections to it are refused, and nothing else can take
 * it) until the caller closes it.
 */
static int closed_port(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

Test(review, database_down_readyz_is_anonymous_and_the_log_keeps_one_line_per_event)
{
    env.url = pdt_new_migrated_database();
    env.key = pdt_create_key(env.url, "acme");
    int held;
    int port = closed_port(&held);
    env.svc = malloc(128);
    snprintf(env.svc, 128, "postgresql://patternd@127.0.0.1:%d/patternd", port);
    env.server = serve_start(NULL);
    /* libpq says "Connection refused", then "Is the server running ..." on a line of its own. */
    server_log_wait(env.server, "Connection refused");
    int status;
    char *r = http(env.server, "GET", "/readyz", NULL, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 503, "%s", r);
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%d", port);
    cr_assert_null(strstr(r, "127.0.0.1"), "%s", r);
    cr_assert_null(strstr(r, port_text), "%s", r);
    cr_assert_null(strstr(r, "refused"), "%s", r);
    free(r);
    char *log = pdt_read_file(env.server->log, NULL);
    for (char *line = strtok(log, "\n"); line != NULL; line = strtok(NULL, "\n"))
        cr_assert(strncmp(line, "20", 2) == 0 && strstr(line, " level=") != NULL,
                  "a log line that is not an event of its own: '%s'", line);
    free(log);
    serve_down();
    close(held);
}
