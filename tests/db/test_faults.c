/*
 * Stages: db and worker.  Faults during an ingest: backends killed again and
 * again (also while most records revise recorded workflows), and a restart
 * of the PostgreSQL server.  Every batch hit by a fault
 * is retried on a fresh connection, and the final tables must equal those of
 * an undisturbed run: nothing lost, nothing counted twice.
 *
 * Each fault happens at a known point of the ingest, whatever the speed of
 * the machine: the ingest runs with the store's pause point
 * (include/pd/hold.h), so that a chosen batch stops inside its transaction
 * (its rows written, nothing committed) and the test strikes while it is
 * held.  Holding a batch, the ingest cannot end, and the held transaction
 * is open until the fault ends it.  The hold points are fractions of the
 * number of batches the input makes at least, the last at half of it, so the
 * ingest always reaches them with work still to do.
 *
 * The same tests run behind PgBouncer (the server connections behind the
 * pooler are killed, the server behind it restarts) and on Citus (the
 * coordinator's backends are killed, the coordinator restarts), where one
 * more test restarts the worker nodes in turn, each while a batch is held:
 * Citus passes those errors on from the workers, and they must be retried
 * like a lost connection.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

/* The input, and how ingest writes it: 4 workers, batches of BATCH_SIZE records. */
enum { RECORDS = 20000, BATCH_SIZE = 200, WORKERS = 4 };

/*
 * The batches of the process count from 1 across all workers, a retried
 * batch once.  A batch holds at most BATCH_SIZE records of one tenant, so the
 * ingest runs at least RECORDS / BATCH_SIZE of them: a hold point up to half
 * of that is reached, with half of the work still to come.
 */
enum { MIN_BATCHES = RECORDS / BATCH_SIZE };

/* How long a wait below may take before the test fails: it only turns a hang into a failure. */
static const double DEADLINE_S = 300;

static char input[64];
/* The input holds three versions of each of RECORDS / 3 workflows (pd_gen --versions). */
static bool versions;

/*
 * The ingest under test.  Static so that the suite's .fini can end one that
 * a failed test left held; a test process that dies takes it along
 * (PR_SET_PDEATHSIG), so no held ingest outlives its test.
 */
static struct {
    pid_t pid;         /* 0 once waited for */
    int status;        /* its exit status once waited for */
    char out_path[64]; /* its stdout */
    char *hold;        /* its PATTERND_HOLD_DIR, or NULL */
} ingest;

static bool on_citus(void)
{
    return strcmp(pdt_deployment(), "citus") == 0;
}

/* RECORDS records, or with_versions three versions each of RECORDS / 3 workflows, shuffled. */
static void make_input(bool with_versions)
{
    versions = with_versions;
    snprintf(input, sizeof(input), "/tmp/pd-faults-%d.ndjson", (int)getpid());
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' --count %d --tenants 8 --seed 11 %s > '%s'", PD_GEN_BINARY,
             versions ? RECORDS / 3 : RECORDS, versions ? "--versions" : "", input);
    cr_assert_eq(system(cmd), 0);
}

/* Every workflow was recorded once, every record settled, none failed. */
static void assert_complete(const char *summary)
{
    cr_assert_eq(pdt_summary_value(summary, "processed"), versions ? RECORDS / 3 : RECORDS, "%s",
                 summary);
    cr_assert_eq(pdt_summary_value(summary, "errors"), 0, "%s", summary);
    long settled = 0;
    static const char *const parts[] = {"processed", "duplicates", "revised", "stale", "conflicts"};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        settled += pdt_summary_value(summary, parts[i]);
    cr_assert_eq(settled, pdt_summary_value(summary, "total_workflows"), "%s", summary);
}

/* Ends an ingest the test left running (after a failed assertion), and removes the files. */
static void clean_up(void)
{
    if (ingest.pid > 0) {
        kill(ingest.pid, SIGKILL);
        waitpid(ingest.pid, NULL, 0);
        ingest.pid = 0;
    }
    if (ingest.hold != NULL) {
        pdt_hold_remove(ingest.hold);
        ingest.hold = NULL;
    }
    if (ingest.out_path[0] != '\0')
        unlink(ingest.out_path);
    if (input[0] != '\0')
        unlink(input);
}

/* Each test makes the input first (a skipped test makes none: its .fini does not run). */
TestSuite(faults, .fini = clean_up, .timeout = 600);

/*
 * Starts an ingest of the input into url whose batches numbered in holds (n
 * of them, comma-separated in PATTERND_HOLD_BATCHES) stop in their
 * transaction until the test releases them.
 */
static void start_ingest(const char *url, const long *holds, int n)
{
    char list[256] = "";
    for (int i = 0; i < n; i++) {
        size_t len = strlen(list);
        snprintf(list + len, sizeof(list) - len, "%s%ld", i > 0 ? "," : "", holds[i]);
    }
    ingest.hold = pdt_hold_dir();
    snprintf(ingest.out_path, sizeof(ingest.out_path), "/tmp/pd-faults-%d.out", (int)getpid());
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127); /* the test is gone already */
        int fd = open(ingest.out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, STDOUT_FILENO);
        setenv("PATTERND_HOLD_DIR", ingest.hold, 1);
        setenv("PATTERND_HOLD_BATCHES", list, 1);
        char workers[16], batch[16];
        snprintf(workers, sizeof(workers), "%d", WORKERS);
        snprintf(batch, sizeof(batch), "%d", BATCH_SIZE);
        execl(pdt_binary(), "patternd", "ingest", "--quiet", "--db", url, "--workers", workers,
              "--batch", batch, input, (char *)NULL);
        _exit(127);
    }
    ingest.pid = pid;
}

/* True once batch *arg is held, or once the ingest has ended (then waited for). */
static int held_or_ended(void *arg)
{
    if (pdt_hold_is_held(ingest.hold, *(const long *)arg))
        return 1;
    if (waitpid(ingest.pid, &ingest.status, WNOHANG) == ingest.pid) {
        ingest.pid = 0;
        return 1;
    }
    return 0;
}

/*
 * Waits until batch n of the ingest is held inside its transaction.  Fails
 * the test, with the ingest's output, if the ingest ends first; once the
 * batch is held, the ingest cannot end, and the test checks that it has not.
 */
static void wait_held(long n)
{
    /* Polls for DIR/held-n, or for the ingest's end. */
    pdt_poll_until(held_or_ended, &n, DEADLINE_S, "the ingest to hold its batch");
    if (ingest.pid == 0) {
        char *out = pdt_read_file(ingest.out_path, NULL);
        cr_assert_fail("the ingest ended (status %d) before batch %ld was held: %s", ingest.status,
                       n, out != NULL ? out : "");
    }
    cr_assert_eq(waitpid(ingest.pid, NULL, WNOHANG), 0,
                 "batch %ld is held, yet the ingest has ended", n);
}

/* Waits for the ingest to end; asserts it exited 0 and returns its output (malloc'd). */
static char *finish_ingest(void)
{
    int status = ingest.status;
    if (ingest.pid > 0) {
        cr_assert_eq(waitpid(ingest.pid, &status, 0), ingest.pid);
        ingest.pid = 0;
    }
    char *out = pdt_read_file(ingest.out_path, NULL);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "ingest failed (%d): %s", status,
              out != NULL ? out : "");
    return out;
}

static char *clean_digest(void)
{
    char *url = pdt_new_migrated_database();
    char args[256];
    snprintf(args, sizeof(args), "--workers %d --batch %d '%s'", WORKERS, BATCH_SIZE, input);
    int status;
    char *out = pdt_ingest(url, args, &status);
    cr_assert_eq(status, 0, "%s", out);
    assert_complete(out);
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

/* The cluster's own database (PD_TEST_DATABASE_URL), from where the tests watch and kill. */
static const char *base_url(void)
{
    return getenv("PD_TEST_DATABASE_URL");
}

/*
 * How many backends of url's database are inside a transaction, between two
 * of its statements: a held batch's backend is, for as long as it is held
 * and alive.
 */
static long open_transactions(const char *url)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_stat_activity"
             " WHERE datname = '%s' AND state = 'idle in transaction'",
             database_name(url));
    return pdt_sql_long(base_url(), sql);
}

typedef struct backends {
    const char *pids; /* comma-separated */
} backends_t;

/* True once none of the backends is left. */
static int backends_gone(void *arg)
{
    const backends_t *b = arg;
    size_t size = strlen(b->pids) + 128;
    char *sql = malloc(size);
    cr_assert_not_null(sql);
    snprintf(sql, size, "SELECT count(*) FROM pg_stat_activity WHERE pid IN (%s)", b->pids);
    long left = pdt_sql_long(base_url(), sql);
    free(sql);
    return left == 0;
}

/*
 * Terminates every backend of url's database (from the base database, whose
 * own backend is spared) and waits until they have exited, so that the fault
 * is over before the test goes on.  Returns how many were terminated;
 * *in_transaction gets how many of them were inside a transaction between
 * two statements, as the backend of a held batch is.  The list of backends
 * is read once, before any is terminated (MATERIALIZED), and states are
 * those of that reading.
 */
static long terminate_backends(const char *url, long *in_transaction)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "WITH b AS MATERIALIZED (SELECT pid, state FROM pg_stat_activity"
             "  WHERE datname = '%s' AND pid <> pg_backend_pid())"
             " SELECT count(*) || ' ' || count(*) FILTER (WHERE state = 'idle in transaction')"
             "  || ' ' || coalesce(string_agg(pid::text, ','), '0')"
             " FROM b WHERE pg_terminate_backend(pid)",
             database_name(url));
    char *row = pdt_sql_value(base_url(), sql);
    long killed = 0;
    int used = 0;
    cr_assert_eq(sscanf(row, "%ld %ld %n", &killed, in_transaction, &used), 2, "%s", row);
    backends_t b = {row + used};
    /* Polls pg_stat_activity until the terminated backends have exited. */
    pdt_poll_until(backends_gone, &b, DEADLINE_S, "the terminated backends to exit");
    free(row);
    return killed;
}

/*
 * Backends are terminated while each of these batches is held: early, a
 * quarter in and half-way.  The batches of the other workers go on
 * meanwhile, so a fault may find them anywhere in their work too.
 */
static void kill_backends_while_held(bool with_versions)
{
    const long holds[] = {MIN_BATCHES / 20, MIN_BATCHES / 4, MIN_BATCHES / 2};
    enum { N_HOLDS = sizeof(holds) / sizeof(holds[0]) };
    make_input(with_versions);
    char *expected = clean_digest();
    char *url = pdt_new_migrated_database();
    start_ingest(url, holds, N_HOLDS);

    /* hit[i]: batch holds[i] was held already when an earlier round ended. */
    bool hit[N_HOLDS] = {false};
    long killed = 0;
    for (int i = 0; i < N_HOLDS; i++) {
        wait_held(holds[i]);
        long in_transaction = 0;
        killed += terminate_backends(url, &in_transaction);
        /*
         * The held batch's backend is among them, unless an earlier round
         * terminated it: when the batch was held already then (the other
         * workers go on while a batch is held, and may reach the next hold
         * point before the test does).
         */
        cr_assert(in_transaction > 0 || hit[i],
                  "batch %ld was held, yet no backend inside a transaction was terminated",
                  holds[i]);
        /*
         * A later batch held by now may have been held when the backends
         * were listed: its transaction ended with them, and its own round
         * may find no backend inside a transaction.
         */
        for (int j = i + 1; j < N_HOLDS; j++)
            hit[j] = hit[j] || pdt_hold_is_held(ingest.hold, holds[j]);
        pdt_hold_release(ingest.hold, holds[i]);
    }
    char *out = finish_ingest();
    assert_complete(out);
    char *got = settled_digest(url);
    cr_assert_str_eq(got, expected, "tables differ from a clean run after %ld kills", killed);
    free(got);
    free(out);
    free(url);
    free(expected);
}

Test(faults, killed_backends_change_nothing)
{
    kill_backends_while_held(false);
}

/* The same with every workflow in three versions: revisions are hit mid-transaction too. */
Test(faults, killed_backends_during_revisions_change_nothing)
{
    kill_backends_while_held(true);
}

/* The server restarts while a batch is held a third of the way in. */
Test(faults, server_restart_changes_nothing)
{
    const char *pgdir = getenv("PD_TEST_PGDIR");
    cr_assert_not_null(pgdir, "PD_TEST_PGDIR is not set: run the tests with scripts/test.sh");
    const long hold = MIN_BATCHES / 3;
    make_input(false);
    char *expected = clean_digest();
    char *url = pdt_new_migrated_database();
    start_ingest(url, &hold, 1);

    wait_held(hold);
    cr_assert_geq(open_transactions(url), 1,
                  "batch %ld is held, yet no transaction of the ingest is open", hold);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s/scripts/pg.sh' restart '%s'", PD_SOURCE_DIR, pgdir);
    cr_assert_eq(system(cmd), 0, "restarting PostgreSQL failed");
    pdt_hold_release(ingest.hold, hold);

    char *out = finish_ingest();
    assert_complete(out);
    char *got = settled_digest(url);
    cr_assert_str_eq(got, expected);
    free(got);
    free(out);
    free(url);
    free(expected);
}

/*
 * Worker 1 restarts while a batch is held a quarter of the way in, worker 2
 * while one is held half-way, each a fast shutdown.  A restart takes seconds
 * (a shutdown checkpoint), and a batch gives up after 120 s of failed
 * retries.
 */
static void restart_workers_while_held(bool with_versions)
{
    if (!on_citus())
        cr_skip_test("needs Citus (PD_TEST_DEPLOYMENT=citus)");
    const long holds[] = {MIN_BATCHES / 4, MIN_BATCHES / 2};
    make_input(with_versions);
    char *expected = clean_digest();
    char *url = pdt_new_migrated_database();
    start_ingest(url, holds, 2);

    for (int worker = 1; worker <= 2; worker++) {
        long hold = holds[worker - 1];
        wait_held(hold);
        cr_assert_geq(open_transactions(url), 1,
                      "batch %ld is held, yet no transaction of the ingest is open", hold);
        char cmd[4096];
        snprintf(cmd, sizeof(cmd), "'%s/scripts/citus.sh' restart-worker '%s' %d", PD_SOURCE_DIR,
                 getenv("PD_TEST_CITUS_DIR"), worker);
        cr_assert_eq(system(cmd), 0, "restarting worker %d failed", worker);
        pdt_hold_release(ingest.hold, hold);
    }
    char *out = finish_ingest();
    assert_complete(out);
    char *got = settled_digest(url);
    cr_assert_str_eq(got, expected,
                     "tables differ from a clean run after both worker restarts: %s against %s",
                     got, expected);
    free(got);
    free(out);
    free(url);
    free(expected);
}

Test(faults, citus_worker_restarts_change_nothing)
{
    restart_workers_while_held(false);
}

Test(faults, citus_worker_restarts_during_revisions_change_nothing)
{
    restart_workers_while_held(true);
}
