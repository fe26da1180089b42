/*
 * Stage: cli (src/cli/cmd_migrate.c).  What `patternd migrate` prints: its report on standard
 * output, and nothing on standard error when all went well, PostgreSQL's notices included (they
 * go to the debug log).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

/* `patternd migrate --db url`: its standard output; its standard error in *err (malloc'd). */
static char *migrate(const char *url, int *status, char **err)
{
    char err_path[] = "/tmp/pd-migrate-err-XXXXXX";
    int fd = mkstemp(err_path);
    cr_assert_geq(fd, 0);
    close(fd);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' migrate --db '%s' 2>'%s'", pdt_binary(), url, err_path);
    char *out = pdt_run(cmd, status);
    *err = pdt_read_file(err_path, NULL);
    cr_assert_not_null(*err);
    unlink(err_path);
    return out;
}

Test(migrate_cli, second_migrate_prints_nothing_on_stderr_and_says_the_schema_is_up_to_date)
{
    char *url = pdt_new_database();
    int status;
    char *err;
    char *out = migrate(url, &status, &err);
    cr_assert_eq(status, 0, "%s%s", out, err);
    cr_assert_not_null(strstr(out, "applied 0001_schema.sql"), "%s", out);
    free(out);
    free(err);

    /*
     * The second run meets everything the first made: schema_migrations and the roles exist
     * (CREATE ... IF NOT EXISTS would have PostgreSQL say so in a NOTICE).
     */
    out = migrate(url, &status, &err);
    cr_assert_eq(status, 0, "%s%s", out, err);
    cr_assert_str_empty(err, "standard error: %s", err);
    cr_assert_not_null(strstr(out, "schema is up to date: 0 applied now"), "%s", out);
    cr_assert_eq(pdt_count_lines(out), 1, "%s", out);
    cr_assert_null(strstr(out, "NOTICE"), "%s", out);
    free(out);
    free(err);
    free(url);
}
