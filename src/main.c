/* patternd: finds the recurring operations in coding-agent workflows. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pd/cli.h"

static const char USAGE[] =
    "usage: patternd <command> [options]\n"
    "\n"
    "Finds the operations that coding-agent workflows keep repeating and keeps\n"
    "per-pattern statistics in PostgreSQL.\n"
    "\n"
    "commands:\n"
    "  detect   print the patterns of each NDJSON record (no database)\n"
    "  migrate  create or update the database schema\n"
    "  ingest   record workflows in PostgreSQL, exactly once\n"
    "  report   list the automation candidates by potential savings\n"
    "  serve    multi-tenant ingestion over HTTP\n"
    "  keys     create, list and revoke the API keys of serve\n"
    "  review   approve, reject, implement, deprecate patterns; thresholds\n"
    "\n"
    "`patternd <command> --help` describes a command.  The database is --db URL,\n"
    "else $DATABASE_URL, else libpq's PGHOST, PGPORT, PGUSER, PGDATABASE, ...\n";

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } commands[] = {
        {"detect", pd_cmd_detect}, {"migrate", pd_cmd_migrate}, {"ingest", pd_cmd_ingest},
        {"report", pd_cmd_report}, {"serve", pd_cmd_serve},     {"keys", pd_cmd_keys},
        {"review", pd_cmd_review},
    };

    if (sodium_init() < 0) {
        fputs("patternd: cannot initialise libsodium\n", stderr);
        return PD_EXIT_FAIL;
    }
    if (argc < 2) {
        fputs(USAGE, stderr);
        return PD_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(USAGE, stdout);
        return PD_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        puts("patternd " PD_VERSION);
        return PD_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        int status = commands[i].run(argc - 1, argv + 1);
        if (status & PD_EXIT_NOW) {
            /* Threads may still be blocked in the database: end without waiting for them. */
            fflush(stdout);
            fflush(stderr);
            _exit(status & 0xff);
        }
        return status;
    }
    fprintf(stderr, "patternd: unknown command '%s'\n\n%s", argv[1], USAGE);
    return PD_EXIT_USAGE;
}
