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

/* Writes "patternd: <message>" to stderr. */
void pd_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
