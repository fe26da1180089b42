/*
 * Stage: db.  A database address that accepts connections and never
 * answers (a relay that holds every connection, tests/support) must not
 * hang a command: every connection has a connect timeout, 10 s unless the
 * URL or PGCONNECT_TIMEOUT says otherwise, and the command fails with a
 * message naming the address.  The waits below are hang guards: no test
 * bounds how long a command takes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* Runs `patternd <args>` (with its stderr) under env_prefix; returns the output, *status. */
static char *run_patternd(const char *env_prefix, const char *args, int *status)
{
    char cmd[4096];
    /* timeout(1) turns a hang into a failure (status 124); it bounds nothing that passes. */
    snprintf(cmd, sizeof(cmd), "%s timeout 120 '%s' %s 2>&1", env_prefix, pdt_binary(), args);
    return pdt_run(cmd, status);
}

static void assert_names_the_address(const char *out, int port)
{
    char address[64];
    snprintf(address, sizeof(address), "\"127.0.0.1\", port %d", port);
    cr_assert_not_null(strstr(out, address), "the message does not name the address: %s", out);
    cr_assert_not_null(strstr(out, "timeout expired"), "%s", out);
}

Test(timeouts, report_on_a_database_that_never_answers_fails_naming_it)
{
    pdt_relay_t *hole = pdt_relay_start(0, 0);
    char args[256];
    snprintf(args, sizeof(args), "report --db postgresql://nobody@127.0.0.1:%d/x",
             pdt_relay_port(hole));
    int status;
    /* The default timeout (10 s): no PGCONNECT_TIMEOUT in the command's environment. */
    char *out = run_patternd("env -u PGCONNECT_TIMEOUT", args, &status);
    cr_assert_eq(status, 1, "status %d: %s", status, out);
    assert_names_the_address(out, pdt_relay_port(hole));
    free(out);
    pdt_relay_stop(hole);
}

Test(timeouts, every_command_honours_pgconnect_timeout_and_the_url)
{
    pdt_relay_t *hole = pdt_relay_start(0, 0);
    int port = pdt_relay_port(hole);
    const char *commands[] = {"report", "migrate", "keys list", "ingest -"};
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        char args[256];
        snprintf(args, sizeof(args), "%s --db postgresql://nobody@127.0.0.1:%d/x < /dev/null",
                 commands[i], port);
        int status;
        char *out = run_patternd("PGCONNECT_TIMEOUT=1", args, &status);
        cr_assert_eq(status, 1, "%s: status %d: %s", commands[i], status, out);
        assert_names_the_address(out, port);
        free(out);
    }
    /* connect_timeout in the URL wins over the default. */
    char args[256];
    snprintf(args, sizeof(args),
             "report --db 'postgresql://nobody@127.0.0.1:%d/x?connect_timeout=1'", port);
    int status;
    char *out = run_patternd("env -u PGCONNECT_TIMEOUT", args, &status);
    cr_assert_eq(status, 1, "status %d: %s", status, out);
    assert_names_the_address(out, port);
    free(out);
    pdt_relay_stop(hole);
}

Test(timeouts, a_relay_that_forwards_reaches_the_database)
{
    /* The relay itself works, so the failures above are the hole's and not the relay's. */
    const char *url = getenv("PD_TEST_DATABASE_URL");
    cr_assert_not_null(url);
    pdt_relay_t *relay = pdt_relay_start(pdt_url_port(url), 1);
    char *db = pdt_new_migrated_database();
    char via[512];
    const char *colon = strrchr(db, ':');
    const char *slash = strchr(colon, '/');
    snprintf(via, sizeof(via), "%.*s:%d%s", (int)(colon - db), db, pdt_relay_port(relay), slash);
    char args[1024];
    snprintf(args, sizeof(args), "report --db '%s' --format json", via);
    int status;
    char *out = run_patternd("", args, &status);
    cr_assert_eq(status, 0, "%s", out);
    free(out);
    free(db);
    pdt_relay_stop(relay);
}
