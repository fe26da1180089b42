/* `patternd migrate`: applies or lists the schema migrations. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "pd/cli.h"
#include "pd/db.h"
#include "pd/migrate.h"

static const char USAGE[] =
    "usage: patternd migrate [--db URL] [--status] [--dir DIR]\n"
    "\n"
    "Applies the pending schema migrations in order, each in its own\n"
    "transaction, and records each with its checksum in schema_migrations.\n"
    "Safe to run again and to run concurrently.  Refuses to run when a file\n"
    "that was already applied has been edited since.\n"
    "\n"
    "  --db URL     database (default: $DATABASE_URL, else libpq's PG* variables)\n"
    "  --status     list applied, pending and changed migrations; change nothing\n"
    "               (exit 0 when the schema is current, 3 when any is pending)\n"
    "  --dir DIR    use the *.sql files of DIR instead of the built-in migrations\n"
    "  -h, --help   show this help\n";

int pd_cmd_migrate(int argc, char **argv)
{
    static const struct option options[] = {
        {"db", required_argument, NULL, 'd'},
        {"status", no_argument, NULL, 's'},
        {"dir", required_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *dir = NULL;
    bool status = false;
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'd':
            url = optarg;
            break;
        case 's':
            status = true;
            break;
        case 'D':
            dir = optarg;
            break;
        case 'h':
            fputs(USAGE, stdout);
            return PD_EXIT_OK;
        default:
            fputs(USAGE, stderr);
            return PD_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        pd_cli_fail("migrate takes no arguments; got '%s'", argv[optind]);
        return PD_EXIT_USAGE;
    }

    pd_migration_set_t set;
    pd_error_t err;
    pd_db_t *db = NULL;
    int exit_code = PD_EXIT_FAIL;
    if (dir != NULL) {
        if (pd_migration_set_load(&set, dir, &err) < 0) {
            pd_cli_fail("%s", err.message);
            return PD_EXIT_FAIL;
        }
    } else {
        pd_migration_set_builtin(&set);
    }
    if (pd_db_connect(pd_db_conninfo(url), &db, &err) < 0) {
        pd_cli_fail("%s", err.message);
        goto done;
    }
    if (status) {
        size_t pending = 0;
        if (pd_migrate_status(db, &set, stdout, &pending, &err) < 0) {
            pd_cli_fail("%s", err.message);
            goto done;
        }
        exit_code = pending == 0 ? PD_EXIT_OK : 3;
    } else {
        if (pd_migrate_apply(db, &set, stderr, &err) < 0) {
            pd_cli_fail("%s", err.message);
            goto done;
        }
        exit_code = PD_EXIT_OK;
    }
done:
    pd_db_destroy(db);
    pd_migration_set_close(&set);
    return exit_code;
}
