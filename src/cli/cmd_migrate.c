/*
 * `patternd migrate`: applies or lists the schema migrations (db/migrate.c).
 * One thread, one connection.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "pd/cli.h"
#include "pd/db.h"
#include "pd/migrate.h"
#include "pd/options.h"

typedef struct migrate_options {
    const char *db, *dir;
    bool status;
} migrate_options_t;

static const pd_option_t OPTIONS[] = {
    PD_OPTION_DB(migrate_options_t, db),
    {"status", NULL, pd_opt_flag, offsetof(migrate_options_t, status), NULL,
     "list applied, pending and changed migrations; change nothing\n"
     "(exit 0 when the schema is current, 3 when any is pending)",
     0, 0},
    {"dir", "DIR", pd_opt_string, offsetof(migrate_options_t, dir), NULL,
     "use the *.sql files of DIR instead of the built-in migrations", 0, 0},
    PD_OPTION_END,
};

static const pd_command_t COMMAND = {
    "patternd migrate [--db URL] [--status] [--dir DIR]",
    "Applies the pending schema migrations in order, each in its own\n"
    "transaction, and records each with its checksum in schema_migrations.\n"
    "Safe to run again and to run concurrently.  Refuses to run when a file\n"
    "that was already applied has been edited since.  Prints each migration it\n"
    "applies, then a line saying the schema is up to date, on standard output;\n"
    "PostgreSQL's notices (\"already exists, skipping\") are not printed.\n",
    OPTIONS,
    0,
};

int pd_cmd_migrate(int argc, char **argv)
{
    migrate_options_t opt = {0};
    int first;
    int status = pd_options_parse(&COMMAND, argc, argv, &opt, &first);
    if (status != PD_OPTIONS_RUN)
        return status;
    const char *url = opt.db, *dir = opt.dir;

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
    if (opt.status) {
        size_t pending = 0;
        if (pd_migrate_status(db, &set, stdout, &pending, &err) < 0) {
            pd_cli_fail("%s", err.message);
            goto done;
        }
        exit_code = pending == 0 ? PD_EXIT_OK : 3;
    } else {
        if (pd_migrate_apply(db, &set, stdout, &err) < 0) {
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
