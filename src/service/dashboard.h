/*
 * Private to src/service/: the review dashboard, a page and its assets
 * (web/) compiled into the binary by cmake/embed_web.cmake and answered
 * from memory on the service address, beside the API it calls.
 *
 * GET / is the page (index.html); its assets are under /assets/, each named
 * by a hash of its content, so they are cached for good and the page,
 * fetched whole on every load (it is small), names the ones it needs.  Every answer
 * carries a strict Content-Security-Policy (default-src 'self', no inline
 * script or style), X-Content-Type-Options: nosniff and Referrer-Policy:
 * no-referrer.  The page asks no key of the server; it sends the user's to
 * the /v1 API itself.  Loop thread.
 */
#ifndef PD_SERVICE_DASHBOARD_H
#define PD_SERVICE_DASHBOARD_H

#include <stdbool.h>
#include <stddef.h>

#include "call.h"

/* One file of the dashboard, as cmake/embed_web.cmake writes it; static storage. */
typedef struct pd__web_asset {
    const char *path;         /* "/" or "/assets/<name>.<hash>.<ext>" */
    const char *content_type; /* e.g. "text/javascript; charset=utf-8" */
    const char *data;         /* len bytes, then a NUL */
    size_t len;
    const char *etag; /* a quoted hash of the bytes */
    bool immutable;   /* named by its hash: cacheable for good */
} pd__web_asset_t;

extern const pd__web_asset_t pd__web_assets[]; /* the page first */
extern const size_t pd__web_assets_count;

/* The dashboard's file at path, or NULL. */
const pd__web_asset_t *pd__dashboard_asset(const char *path);

/*
 * Answers call when its path is the dashboard's ("/" or under "/assets/"):
 * the file for GET and HEAD, 404 for a file it does not have, 405 for
 * another method; returns true then, having answered (the call is freed).
 * False, touching nothing, for every other path.
 */
bool pd__dashboard_answer(pd__call_t *call);

#endif
