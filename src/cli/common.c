/*
 * What the commands share: messages, option value checks, the preflight
 * connection and signal handling.  Main thread / loop thread.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>

#include "pd/cli.h"
#include "pd/db.h"
#include "pd/log.h"
#include "pd/migrate.h"
#include "pd/record.h"

void pd_cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("patternd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

bool pd_cli_tenant(const char *opt, const char *arg)
{
    if (pd_record_tenant_valid(arg))
        return true;
    pd_cli_fail("%s: '%s' is not 1-64 characters of A-Z a-z 0-9 . _ -", opt, arg);
    return false;
}

bool pd_cli_count(const char *opt, const char *arg, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || v < min || v > max) {
        pd_cli_fail("%s: expected a number from %ld to %ld, got '%s'", opt, min, max, arg);
        return false;
    }
    *out = v;
    return true;
}

/* Refuses a role that bypasses row-level security, unless allowed (then warns). */
static int check_rls_role(pd_db_t *db, bool allow_bypass)
{
    pd_error_t err;
    bool bypass = false;
    char role[128] = "";
    if (pd_db_role_bypasses_rls(db, &bypass, role, sizeof(role), &err) < 0) {
        pd_cli_fail("%s", err.message);
        return -1;
    }
    if (bypass && !allow_bypass) {
        pd_cli_fail(
            "role %s bypasses row-level security (superuser, BYPASSRLS or owner of the "
            "tables), so tenants would not be isolated by the database: connect as a "
            "member of patternd_service (see docs/deployments.md), or pass --allow-rls-bypass",
            role);
        return -1;
    }
    if (bypass)
        pd_log(PD_LOG_WARN, "loop", "role %s bypasses row-level security (--allow-rls-bypass)",
               role);
    return 0;
}

int pd_cli_preflight(const char *conninfo, bool check_rls, bool allow_bypass, bool unreachable_ok)
{
    pd_db_t *db = NULL;
    pd_error_t err;
    pd_migration_set_t set;
    size_t pending = 0;
    int rc = -1;
    pd_migration_set_builtin(&set);
    int connected = pd_db_connect(conninfo, &db, &err);
    if (connected == PD_ECONN && unreachable_ok) {
        pd_log(PD_LOG_WARN, "loop",
               "%s; serving, with /readyz and /v1 answering 503 until it answers", err.message);
        return 1;
    }
    if (connected < 0 || pd_migrate_status(db, &set, NULL, &pending, &err) < 0) {
        pd_cli_fail("%s", err.message);
        goto done;
    }
    if (pending > 0) {
        pd_cli_fail("the database schema is not current (%zu migrations pending); run "
                    "`patternd migrate` first",
                    pending);
        goto done;
    }
    rc = check_rls ? check_rls_role(db, allow_bypass) : 0;
done:
    pd_db_destroy(db);
    return rc;
}

static void on_signal(uv_signal_t *h, int signum)
{
    pd_cli_signals_t *s = h->data;
    s->cb(s->ctx, signum, ++s->count);
}

int pd_cli_signals_start(uv_loop_t *loop, pd_cli_signals_t *s,
                         void (*cb)(void *ctx, int signum, int count), void *ctx)
{
    *s = (pd_cli_signals_t){.cb = cb, .ctx = ctx};
    int rc = uv_signal_init(loop, &s->sigint);
    if (rc < 0)
        return rc;
    s->sigint.data = s;
    if ((rc = uv_signal_init(loop, &s->sigterm)) < 0) {
        uv_close((uv_handle_t *)&s->sigint, NULL);
        return rc;
    }
    s->sigterm.data = s;
    if ((rc = uv_signal_start(&s->sigint, on_signal, SIGINT)) < 0 ||
        (rc = uv_signal_start(&s->sigterm, on_signal, SIGTERM)) < 0) {
        pd_cli_signals_close(s);
        return rc;
    }
    return 0;
}

void pd_cli_signals_close(pd_cli_signals_t *s)
{
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
}
