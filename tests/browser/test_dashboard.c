/*
 * Stage: browser (the review dashboard that `patternd serve` answers at
 * GET /).  A real server on a real database with the sample data, two keys
 * of one tenant (review, and read only), and Debian's chromium driven by
 * playwright-core (tests/browser/dashboard.mjs, installed by
 * scripts/setup.sh with `npm ci`).  The script walks through a review in
 * one run and writes down what it did; this test gives it what the
 * database says the page must show, and afterwards checks that the
 * database holds what the page did: the approval with its reviewer and
 * notes, and nothing for the rejection the service refused nor for the
 * approval another reviewer's rejection beat (409).  A first test
 * checks the page's and the assets' headers with curl alone.
 *
 * The screenshots of docs/ (docs/dashboard-list.png, -detail.png) are the
 * ones this test takes: it writes them to PD_DASHBOARD_SCREENSHOTS when set
 * (e.g. to the source tree's docs/), else to a temporary folder, and checks
 * that they are 1280x800 PNGs either way.
 */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../http/serve_fixture.h"
#include "support.h"

TestSuite(dashboard, .fini = serve_release);

/* `patternd keys create --tenant tenant --scope scopes`: the key it prints last (malloc'd). */
static char *create_key(const char *tenant, const char *scopes)
{
    return pdt_create_key_scoped(env.url, tenant, scopes);
}

/* The width and height of a PNG file, from its IHDR chunk; fails the test when it is no PNG. */
static void png_size(const char *path, uint32_t *w, uint32_t *h)
{
    size_t len = 0;
    unsigned char *png = (unsigned char *)pdt_read_file(path, &len);
    cr_assert(png != NULL && len > 24 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0 &&
                  memcmp(png + 12, "IHDR", 4) == 0,
              "%s: not a PNG", path);
    *w = (uint32_t)png[16] << 24 | (uint32_t)png[17] << 16 | (uint32_t)png[18] << 8 | png[19];
    *h = (uint32_t)png[20] << 24 | (uint32_t)png[21] << 16 | (uint32_t)png[22] << 8 | png[23];
    free(png);
}

/* The value of header name (as the server spells it) in headers, malloc'd; NULL when absent. */
static char *header_value(const char *headers, const char *name)
{
    const char *h = strstr(headers, name);
    if (h == NULL || h[strlen(name)] != ':')
        return NULL;
    h += strlen(name) + 1;
    h += strspn(h, " ");
    return strndup(h, strcspn(h, "\r\n"));
}

/* Fails the test unless headers carry the dashboard's security headers. */
static void assert_security_headers(const char *headers, const char *what)
{
    char *csp = header_value(headers, "Content-Security-Policy");
    cr_assert(csp != NULL, "%s: no Content-Security-Policy:\n%s", what, headers);
    cr_assert(strstr(csp, "default-src 'self'") != NULL, "%s: %s", what, csp);
    cr_assert(strstr(csp, "frame-ancestors 'none'") != NULL, "%s: %s", what, csp);
    cr_assert(strstr(csp, "unsafe-") == NULL, "%s: %s", what, csp);
    char *nosniff = header_value(headers, "X-Content-Type-Options");
    char *referrer = header_value(headers, "Referrer-Policy");
    cr_assert(nosniff != NULL && strcmp(nosniff, "nosniff") == 0, "%s:\n%s", what, headers);
    cr_assert(referrer != NULL && strcmp(referrer, "no-referrer") == 0, "%s:\n%s", what, headers);
    free(referrer);
    free(nosniff);
    free(csp);
}

/*
 * Without a key or a browser: the page and each asset it names, with the
 * security headers; the page revalidated, the assets cached for good under
 * the hash their ETag gives; HEAD as GET without the body; 405 and 404.
 */
Test(dashboard, page_and_assets_are_served_with_their_headers)
{
    const serve_env_t *e = serve_up(NULL);
    int status;
    char *headers;
    char *page = http(e->server, "GET", "/", NULL, NULL, NULL, &status, &headers);
    cr_assert_eq(status, 200);
    cr_assert(strstr(headers, "Content-Type: text/html; charset=utf-8") != NULL, "%s", headers);
    assert_security_headers(headers, "GET /");
    char *cache = header_value(headers, "Cache-Control"), *etag = header_value(headers, "ETag");
    cr_assert(cache != NULL && strcmp(cache, "no-cache") == 0, "%s", headers);
    cr_assert(etag != NULL && etag[0] == '"', "%s", headers);
    cr_assert(strstr(page, "<script") != NULL && strstr(page, "data-testid=\"key-input\"") != NULL);
    free(etag);
    free(cache);
    free(headers);

    /* Every asset the page names: app.<hash>.js, app.<hash>.css, favicon.<hash>.svg. */
    int assets = 0;
    for (const char *p = strstr(page, "\"/assets/"); p != NULL; p = strstr(p + 1, "\"/assets/")) {
        char *path = strndup(p + 1, strcspn(p + 1, "\""));
        char *body = http(e->server, "GET", path, NULL, NULL, NULL, &status, &headers);
        cr_assert_eq(status, 200, "%s", path);
        cr_assert(body[0] != '\0', "%s is empty", path);
        assert_security_headers(headers, path);
        cache = header_value(headers, "Cache-Control");
        etag = header_value(headers, "ETag");
        cr_assert(cache != NULL && strstr(cache, "immutable") != NULL, "%s:\n%s", path, headers);
        cr_assert(etag != NULL && strlen(etag) > 2, "%s:\n%s", path, headers);
        char *hash = strndup(etag + 1, strlen(etag) - 2);
        cr_assert(strstr(path, hash) != NULL, "%s is not named by its ETag %s", path, etag);
        assets++;
        free(hash);
        free(etag);
        free(cache);
        free(headers);
        free(body);
        free(path);
    }
    cr_assert_eq(assets, 3, "the page names its script, style and icon under /assets/");
    free(page);

    /* HEAD: the same headers, and not a byte after them (the server closes when asked). */
    static const char head[] = "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    bool closed = false;
    char *raw = raw_exchange(e->server->port, head, sizeof(head) - 1, SERVE_HANG_GUARD_S, &closed);
    cr_assert(closed && strncmp(raw, "HTTP/1.1 200", 12) == 0, "%s", raw);
    cr_assert(strstr(raw, "Content-Security-Policy:") != NULL, "%s", raw);
    const char *end = strstr(raw, "\r\n\r\n");
    cr_assert(end != NULL && end[4] == '\0', "HEAD / sent a body: %s", raw);
    free(raw);
    char *body = http(e->server, "POST", "/", NULL, NULL, NULL, &status, &headers);
    cr_assert_eq(status, 405);
    cr_assert(strstr(headers, "Allow: GET, HEAD") != NULL, "%s", headers);
    free(headers);
    free(body);
    body = http(e->server, "GET", "/assets/app.js", NULL, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 404, "an asset is served only under its hashed name");
    free(body);
    body = http(e->server, "GET", "/index.html", NULL, NULL, NULL, &status, NULL);
    cr_assert_eq(status, 404);
    free(body);
    serve_down();
}

Test(dashboard, reviewer_approves_and_is_refused_in_chromium)
{
    const char *node_modules = PD_SOURCE_DIR "/tests/browser/node_modules/playwright-core";
    cr_assert(access(node_modules, R_OK) == 0,
              "%s is missing: run scripts/setup.sh (npm ci in tests/browser)", node_modules);
    cr_assert(access("/usr/bin/chromium", X_OK) == 0,
              "/usr/bin/chromium is missing: run scripts/setup.sh");

    const serve_env_t *e = serve_up(NULL);
    char args[4096];
    snprintf(args, sizeof(args), "'%s'", pdt_data("sample-600.ndjson"));
    int status;
    char *out = pdt_ingest(e->url, args, &status);
    cr_assert_eq(status, 0, "ingest: %s", out);
    free(out);

    /* The sample's tenant with the most candidates; the page must show two at least. */
    char *tenant = pdt_sql_value(
        e->url,
        "SELECT tenant_id FROM operation_patterns WHERE occurrence_count > 0"
        " AND automation_status = 'candidate' GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1");
    cr_assert(tenant != NULL, "the sample made no candidate");
    char *review_key = create_key(tenant, "read,review");
    char *read_key = create_key(tenant, "read");

    /* What the page must show, from the database: the counters, the first page, the candidates. */
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "WITH p AS (SELECT * FROM operation_patterns WHERE tenant_id = '%s'"
             " AND occurrence_count > 0)"
             " SELECT json_build_object("
             "  'counts', (SELECT json_object_agg(s, (SELECT count(*) FROM p"
             "             WHERE automation_status = s)) FROM unnest(ARRAY['detected', 'candidate',"
             "             'approved', 'rejected', 'implemented', 'deprecated']) s),"
             "  'first_page', (SELECT json_agg(id ORDER BY potential_monthly_savings DESC, id)"
             "                 FROM (SELECT id, potential_monthly_savings FROM p"
             "                 ORDER BY potential_monthly_savings DESC, id LIMIT 20) f),"
             "  'candidates', (SELECT count(*) FROM p WHERE automation_status = 'candidate'))",
             tenant);
    char *expect = pdt_sql_value(e->url, sql);
    char expect_path[] = "/tmp/pd-dashboard-expect-XXXXXX";
    int fd = mkstemp(expect_path);
    cr_assert(fd >= 0);
    close(fd);
    pdt_write_file(keep_temp(strdup(expect_path)), expect, strlen(expect));
    char result_path[] = "/tmp/pd-dashboard-result-XXXXXX";
    fd = mkstemp(result_path);
    cr_assert(fd >= 0);
    close(fd);
    keep_temp(strdup(result_path));

    const char *shots = getenv("PD_DASHBOARD_SCREENSHOTS");
    char shots_tmp[] = "/tmp/pd-dashboard-shots-XXXXXX";
    if (shots == NULL || shots[0] == '\0') {
        cr_assert(mkdtemp(shots_tmp) != NULL);
        shots = shots_tmp;
    }

    char cmd[8192];
    snprintf(cmd, sizeof(cmd),
             "cd '%s/tests/browser' && PD_BASE_URL=http://127.0.0.1:%d PD_REVIEW_KEY='%s'"
             " PD_READ_KEY='%s' PD_EXPECT='%s' PD_RESULT='%s' PD_SCREENSHOTS='%s'"
             " node dashboard.mjs 2>&1",
             PD_SOURCE_DIR, e->server->port, review_key, read_key, expect_path, result_path, shots);
    out = pdt_run(cmd, &status);
    cr_assert_eq(status, 0, "the browser test failed:\n%s\nexpected: %s", out, expect);
    free(out);

    /* The screenshots: 1280x800 each. */
    const char *const names[] = {"dashboard-list.png", "dashboard-detail.png"};
    for (size_t i = 0; i < 2; i++) {
        char path[4096];
        uint32_t w, h;
        snprintf(path, sizeof(path), "%s/%s", shots, names[i]);
        png_size(path, &w, &h);
        cr_assert(w == 1280 && h == 800, "%s is %ux%u, not 1280x800", path, w, h);
        if (shots == shots_tmp)
            unlink(path);
    }
    if (shots == shots_tmp)
        rmdir(shots_tmp);

    /* What the page did is in the database. */
    char *result = pdt_read_file(result_path, NULL);
    long approved = json_long(result, "approved"), rejected = json_long(result, "rejected");
    snprintf(sql, sizeof(sql),
             "SELECT automation_status FROM operation_patterns WHERE tenant_id = '%s' AND id = %ld",
             tenant, approved);
    char *now = pdt_sql_value(e->url, sql);
    cr_assert_str_eq(now, "approved", "pattern %ld is %s", approved, now);
    snprintf(
        sql, sizeof(sql),
        "SELECT count(*) FROM pattern_reviews WHERE tenant_id = '%s' AND pattern_id = %ld"
        " AND from_status = 'candidate' AND to_status = 'approved' AND reviewer = 'Ada Reviewer'"
        " AND notes = 'Saves an hour a day: build it (browser test %ld)' AND reason IS NULL"
        " AND actor <> 'patternd'",
        tenant, approved, approved);
    cr_assert_eq(pdt_sql_long(e->url, sql), 1, "the audit row of the approval: %s", result);
    snprintf(sql, sizeof(sql),
             "SELECT automation_status FROM operation_patterns WHERE tenant_id = '%s' AND id = %ld",
             tenant, rejected);
    char *still = pdt_sql_value(e->url, sql);
    cr_assert_str_eq(still, "candidate", "the refused rejection moved pattern %ld to %s", rejected,
                     still);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pattern_reviews WHERE tenant_id = '%s' AND pattern_id = %ld"
             " AND actor <> 'patternd'",
             tenant, rejected);
    cr_assert_eq(pdt_sql_long(e->url, sql), 0, "the refused rejection wrote an audit row");
    /* The pattern another reviewer rejected first: that rejection only, not the page's approval. */
    long contested = json_long(result, "contested");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pattern_reviews WHERE tenant_id = '%s' AND pattern_id = %ld"
             " AND actor <> 'patternd' AND to_status = 'rejected' AND reviewer = 'Other Reviewer'",
             tenant, contested);
    cr_assert_eq(pdt_sql_long(e->url, sql), 1, "the other reviewer's rejection");
    /* No reviewer's row but those two. */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM pattern_reviews WHERE actor <> 'patternd'");
    cr_assert_eq(pdt_sql_long(e->url, sql), 2);

    free(still);
    free(now);
    free(result);
    free(expect);
    free(read_key);
    free(review_key);
    free(tenant);
    serve_down();
}
