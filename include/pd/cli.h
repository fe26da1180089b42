/*
 * The `patternd` subcommands.  Each takes the arguments after its name
 * (argv[0] is the subcommand) and returns the process exit status:
 * 0 success, 1 failure, 2 bad usage.
 */
#ifndef PD_CLI_H
#define PD_CLI_H

#define PD_EXIT_OK 0
#define PD_EXIT_FAIL 1
#define PD_EXIT_USAGE 2

int pd_cmd_detect(int argc, char **argv);
int pd_cmd_migrate(int argc, char **argv);
int pd_cmd_ingest(int argc, char **argv);
int pd_cmd_report(int argc, char **argv);
int pd_cmd_serve(int argc, char **argv);
int pd_cmd_keys(int argc, char **argv);

/* Writes "patternd: <message>" to stderr. */
void pd_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Option parsing helpers: each checks one option's value and, when it is
 * bad, says so on stderr naming the option; the caller then exits with
 * PD_EXIT_USAGE.
 */
#include <stdbool.h>
bool pd_cli_tenant(const char *opt, const char *arg);
bool pd_cli_count(const char *opt, const char *arg, long min, long max, long *out);

#endif
