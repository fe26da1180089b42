/*
 * The `patternd` subcommands.  Each takes the arguments after its name
 * (argv[0] is the subcommand) and returns the process exit status:
 * 0 success, 1 failure, 2 bad usage.
 */
#ifndef PD_CLI_H
#define PD_CLI_H

#include <stdbool.h>
#include <uv.h>

#define PD_EXIT_OK 0
#define PD_EXIT_FAIL 1
#define PD_EXIT_USAGE 2
/*
 * Or'ed into a command's status when the process must end at once, without
 * waiting for threads that may be blocked in the database (a second signal,
 * a drain that timed out): main() then leaves with _exit().
 */
#define PD_EXIT_NOW 0x100

int pd_cmd_detect(int argc, char **argv);
int pd_cmd_migrate(int argc, char **argv);
int pd_cmd_ingest(int argc, char **argv);
int pd_cmd_report(int argc, char **argv);
int pd_cmd_serve(int argc, char **argv);
int pd_cmd_keys(int argc, char **argv);
int pd_cmd_review(int argc, char **argv);

/* Writes "patternd: <message>" to stderr. */
void pd_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Option parsing helpers: each checks one option's value and, when it is
 * bad, says so on stderr naming the option; the caller then exits with
 * PD_EXIT_USAGE.
 */
bool pd_cli_tenant(const char *opt, const char *arg);
bool pd_cli_count(const char *opt, const char *arg, long min, long max, long *out);

/*
 * Connects once before a command starts its threads, so that a wrong URL
 * or a schema that is not current fails at once with a clear message.
 * With check_rls, also refuses (unless allow_bypass) a role that bypasses
 * row-level security.  Returns 0, or -1 having said why on stderr; with
 * unreachable_ok, a database that cannot be reached is only logged as a
 * warning, and the return is 1 (the service checks it once it answers).
 */
int pd_cli_preflight(const char *conninfo, bool check_rls, bool allow_bypass, bool unreachable_ok);

/*
 * SIGINT and SIGTERM on the loop: cb runs on the loop thread with the
 * signal and how many have arrived so far (1 for the first).
 */
typedef struct pd_cli_signals {
    uv_signal_t sigint, sigterm;
    void (*cb)(void *ctx, int signum, int count);
    void *ctx;
    int count;
} pd_cli_signals_t;

/* Returns 0 or a libuv error. */
int pd_cli_signals_start(uv_loop_t *loop, pd_cli_signals_t *s,
                         void (*cb)(void *ctx, int signum, int count), void *ctx);
void pd_cli_signals_close(pd_cli_signals_t *s);

#endif
