/*
 * Stages: db and worker.  Faults during an ingest: backends killed again and
 * again, and a restart of the PostgreSQL server.  Every batch hit by a fault
 * is retried on a fresh connection, and the final tables must equal those of
 * an undisturbed run: nothing lost, nothing counted twice.
 *
 * The same tests run behind PgBouncer (the server connections behind the
 * pooler are killed, the server behind it restarts) and on Citus (the
 * coordinator's backends are killed, the coordinator restarts), where one
 * more test restarts the worker nodes in turn: Citus passes those errors on
 * from the workers, and they must be retried like a lost connection.  On
 * Citus the input is 30,000 records rather than 60,000: three nodes share
 * the two cores.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

static int records = 60000;

static char input[64];

static bool on_citus(void)
{
    return strcmp(pdt_deployment(), "citus") == 0;
}

static void make_input(void)
{
    if (on_citus())
        records = 30000;
    snprintf(input, sizeof(input), "/tmp/pd-faults-%d.ndjson", (int)getpid());
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' --count %d --tenants 8 --seed 11 > '%s'", PD_GEN_BINARY,
             records, input);
    cr_assert_eq(system(cmd), 0);
}

static void remove_input(void)
{
    unlink(input);
}

/* Starts an ingest of the input into url; its stdout goes to out_path. */
static pid_t start_ingest(const char *url, const char *out_path)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, STDOUT_FILENO);
        execl(pdt_binary(), "patternd", "ingest", "--quiet", "--db", url, "--workers", "4",
              "--batch", "200", input, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static long workflows_in(const char *url)
{
    char *n = pdt_sql_value(url, "SELECT count(*) FROM workflows");
    long v = strtol(n, NULL, 10);
    free(n);
    return v;
}

static void nap_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Waits until the ingest has committed something, so the fault hits it mid-run. */
static void wait_for_progress(const char *url, pid_t pid)
{
    for (int i = 0; i < 3000 && workflows_in(url) == 0; i++) {
        cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "ingest ended before committing anything");
        nap_ms(10);
    }
}

/* Reaps the ingest unless `status` already holds its exit status (reaped == true). */
static char *finish_ingest(pid_t pid, const char *out_path, bool reaped, int status)
{
    if (!reaped)
        cr_assert_eq(waitpid(pid, &status, 0), pid);
    char *out = pdt_read_file(out_path, NULL);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "ingest failed (%d): %s", status, out);
    unlink(out_path);
    return out;
}

static char *clean_digest(void)
{
    char *url = pdt_new_migrated_database();
    char args[256];
    snprintf(args, sizeof(args), "--workers 4 --batch 200 '%s'", input);
    int status;
    char *out = pdt_ingest(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "processed"), records);
    char *digest = pdt_tables_digest(url);
    free(out);
    free(url);
    return digest;
}

/*
 * The tables once Citus has settled its transactions in doubt.  A batch
 * whose COMMIT PREPARED did not reach a restarting worker is committed (the
 * coordinator decided, and patternd was told so), but its rows show on that
 * worker only when the coordinator's recovery commits them there, every
 * citus.recover_2pc_interval; recover_prepared_transactions() does it now.
 * Elsewhere there is nothing to settle.
 */
static char *settled_digest(const char *url)
{
    if (on_citus())
        free(pdt_sql_value(url, "SELECT recover_prepared_transactions()"));
    return pdt_tables_digest(url);
}

static const char *database_name(const char *url)
{
    return strrchr(url, '/') + 1;
}

Test(faults, killed_backends_change_nothing, .init = make_input, .fini = remove_input,
     .timeout = 600)
{
    char *expected = clean_digest();
    char *url = pdt_new_migrated_database();
    char out_path[64];
    snprintf(out_path, sizeof(out_path), "/tmp/pd-faults-%d.out", (int)getpid());
    pid_t pid = start_ingest(url, out_path);
    wait_for_progress(url, pid);

    char kill_sql[256];
    snprintf(kill_sql, sizeof(kill_sql),
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
             " WHERE datname = '%s' AND pid <> pg_backend_pid()",
             database_name(url));
    const char *base = getenv("PD_TEST_DATABASE_URL");
    long killed = 0, rounds = 0;
    int status = 0;
    bool reaped = false;
    while (rounds < 20 && !(reaped = waitpid(pid, &status, WNOHANG) == pid)) {
        char *n = pdt_sql_value(base, kill_sql);
        killed += strtol(n, NULL, 10);
        free(n);
        rounds++;
        nap_ms(150);
    }
    char *out = finish_ingest(pid, out_path, reaped, status);
    cr_assert_gt(killed, 0, "no backend was terminated: the test proved nothing");
    cr_assert_eq(pdt_summary_value(out, "processed"), records, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "errors"), 0, "%s", out);
    char *got = settled_digest(url);
    cr_assert_str_eq(got, expected, "tables differ from a clean run after %ld kills", killed);
    free(got);
    free(out);
    free(url);
    free(expected);
}

Test(faults, server_restart_changes_nothing, .init = make_input, .fini = remove_input,
     .timeout = 600)
{
    const char *pgdir = getenv("PD_TEST_PGDIR");
    cr_assert_not_null(pgdir, "PD_TEST_PGDIR is not set: run the tests with scripts/test.sh");
    char *expected = clean_digest();
    char *url = pdt_new_migrated_database();
    char out_path[64];
    snprintf(out_path, sizeof(out_path), "/tmp/pd-restart-%d.out", (int)getpid());
    pid_t pid = start_ingest(url, out_path);
    wait_for_progress(url, pid);

    long before = workflows_in(url);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s/scripts/pg.sh' restart '%s'", PD_SOURCE_DIR, pgdir);
    cr_assert_eq(system(cmd), 0, "restarting PostgreSQL failed");

    char *out = finish_ingest(pid, out_path, false, 0);
    cr_assert_lt(before, records, "the ingest had finished before the restart");
    cr_assert_eq(pdt_summary_value(out, "processed"), records, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "errors"), 0, "%s", out);
    char *got = pdt_tables_digest(url);
    cr_assert_str_eq(got, expected);
    free(got);
    free(out);
    free(url);
    free(expected);
}

Test(faults, citus_worker_restarts_change_nothing, .init = make_input, .fini = remove_input,
     .timeout = 600)
{
    if (!on_citus())
        cr_skip_test("needs Citus (PD_TEST_DEPLOYMENT=citus)");
    char *expected = clean_digest();
    char *url = pdt_new_migrated_database();
    char out_path[64];
    snprintf(out_path, sizeof(out_path), "/tmp/pd-workers-%d.out", (int)getpid());
    pid_t pid = start_ingest(url, out_path);
    wait_for_progress(url, pid);

    /*
     * The two workers restart in turn, each a fast shutdown, until the ingest
     * ends or each has restarted twice.  A restart takes seconds (a shutdown
     * checkpoint), and a batch gives up after 120 s of failed retries.
     */
    long before = workflows_in(url), restarts = 0;
    int status = 0;
    bool reaped = false;
    while (restarts < 4 && !(reaped = waitpid(pid, &status, WNOHANG) == pid)) {
        char cmd[4096];
        snprintf(cmd, sizeof(cmd), "'%s/scripts/citus.sh' restart-worker '%s' %ld", PD_SOURCE_DIR,
                 getenv("PD_TEST_CITUS_DIR"), 1 + restarts % 2);
        cr_assert_eq(system(cmd), 0, "restarting worker %ld failed", 1 + restarts % 2);
        restarts++;
        nap_ms(1000);
    }
    char *out = finish_ingest(pid, out_path, reaped, status);
    cr_assert_lt(before, records, "the ingest had finished before the first restart");
    cr_assert_geq(restarts, 2, "only %ld restart: both workers must have restarted", restarts);
    cr_assert_eq(pdt_summary_value(out, "processed"), records, "%s", out);
    cr_assert_eq(pdt_summary_value(out, "errors"), 0, "%s", out);
    char *got = settled_digest(url);
    cr_assert_str_eq(got, expected,
                     "tables differ from a clean run after %ld worker restarts: %s against %s",
                     restarts, got, expected);
    free(got);
    free(out);
    free(url);
    free(expected);
}
