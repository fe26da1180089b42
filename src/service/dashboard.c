/*
 * The review dashboard's files; see dashboard.h.
 *
 * The page is small and fixed at build time, so it is answered from the
 * table cmake/embed_web.cmake compiled in: no file is read at run time and
 * nothing depends on the working directory.  The page itself is sent with
 * Cache-Control: no-cache and an ETag, and answered whole on every load (it
 * is small: If-None-Match is not answered with 304); an asset, whose name
 * changes whenever its bytes do, is cached for a year and marked immutable.
 */
#include "dashboard.h"

#include <stdio.h>
#include <string.h>

#include "pd/http.h"

/* The routes, as metric labels. */
static const char R_PAGE[] = "/";
static const char R_ASSETS[] = "/assets/{file}";

/*
 * What every dashboard answer carries.  The page loads its script and
 * style from /assets/ only; it is never framed, has no <base> and posts no
 * form anywhere but here.
 */
#define SECURITY_HEADERS                                                                           \
    "Content-Security-Policy: default-src 'self'; base-uri 'none'; form-action 'self'; "           \
    "frame-ancestors 'none'\r\n"                                                                   \
    "X-Content-Type-Options: nosniff\r\n"                                                          \
    "Referrer-Policy: no-referrer\r\n"

const pd__web_asset_t *pd__dashboard_asset(const char *path)
{
    for (size_t i = 0; i < pd__web_assets_count; i++) {
        if (strcmp(pd__web_assets[i].path, path) == 0)
            return &pd__web_assets[i];
    }
    return NULL;
}

bool pd__dashboard_answer(pd__call_t *call)
{
    static const char assets[] = "/assets/";
    const char *path = pd_http_path(call->req);
    bool page = strcmp(path, "/") == 0;
    if (!page && strncmp(path, assets, sizeof(assets) - 1) != 0)
        return false;
    call->route = page ? R_PAGE : R_ASSETS;
    const char *method = pd_http_method(call->req);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        pd__call_fail_with(call, 405, "Allow: GET, HEAD\r\n", "method not allowed");
        return true;
    }
    const pd__web_asset_t *a = pd__dashboard_asset(path);
    if (a == NULL) {
        pd__call_fail_with(call, 404, SECURITY_HEADERS, "no such file");
        return true;
    }
    char extra[512];
    snprintf(extra, sizeof(extra), SECURITY_HEADERS "Cache-Control: %s\r\nETag: %s\r\n",
             a->immutable ? "public, max-age=31536000, immutable" : "no-cache", a->etag);
    pd__call_respond(call, 200, a->content_type, extra, a->data, a->len);
    return true;
}
