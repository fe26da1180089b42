/*
 * Helpers shared by the tests of every stage (and tests/pool/pool_race.c): running the patternd
 * binary, creating a fresh database on the throwaway cluster that scripts/test.sh started (its URL
 * is in $PD_TEST_DATABASE_URL), and reading results back.
 *
 * The same tests run on three deployments, chosen by $PD_TEST_DEPLOYMENT:
 *   direct (or unset)  $PD_TEST_DATABASE_URL is a PostgreSQL (scripts/pg.sh), $PD_TEST_PGDIR its
 *                      folder;
 *   pgbouncer          $PD_TEST_DATABASE_URL is a PgBouncer in transaction pooling
 *                      (scripts/pgbouncer.sh) that every connection of the tests and of patternd
 *                      goes through, $PD_TEST_PGDIR the cluster behind it;
 *   citus              $PD_TEST_DATABASE_URL is a Citus coordinator and $PD_TEST_CITUS_DIR the
 *                      folder of scripts/citus.sh; a new database is made on every node with the
 *                      citus extension and the workers registered ($PD_TEST_PGDIR: the
 *                      coordinator's folder).
 */
#ifndef PD_TEST_SUPPORT_H
#define PD_TEST_SUPPORT_H

#include <stddef.h>

/* Path of a file under tests/data; static storage, valid until the next call. */
const char *pdt_data(const char *name);

/* Reads a whole file; malloc'd, NUL-terminated; NULL when unreadable. */
char *pdt_read_file(const char *path, size_t *len);

/*
 * Runs a shell command line and captures its standard output (malloc'd).
 * *status receives the exit status (or 128+signal).  stderr is left alone.
 */
char *pdt_run(const char *cmdline, int *status);

/* The patternd binary under test. */
const char *pdt_binary(void);

/*
 * Creates a new, empty database on the test cluster and returns its URL
 * (malloc'd).  Fails the test when the cluster is not there.
 */
char *pdt_new_database(void);

/* The deployment under test: "direct", "pgbouncer" or "citus" (see the top of this file). */
const char *pdt_deployment(void);

/*
 * On Citus: the URL of url's database on worker node n (1 or 2), as url's
 * user (malloc'd).  Fails the test on other deployments.
 */
char *pdt_worker_url(const char *url, int n);

/*
 * The nodes that run the statements on url's database: url itself, or on
 * Citus its two workers (pdt_worker_url, looked up once).  pdt_lock_waiters()
 * counts the backends of the database waiting on a lock there, to poll for
 * a statement that waits on a lock the test holds.
 */
typedef struct pdt_nodes {
    char *urls[2];
    int n;
} pdt_nodes_t;
void pdt_nodes_of(const char *url, pdt_nodes_t *out);
long pdt_lock_waiters(const pdt_nodes_t *nodes);
void pdt_nodes_free(pdt_nodes_t *nodes);

/* First column of the first row of sql, or NULL; malloc'd. Fails the test on error. */
char *pdt_sql_value(const char *url, const char *sql);

/* Runs sql (any number of statements); fails the test on error. */
void pdt_sql_exec(const char *url, const char *sql);

/* Number of lines in s. */
size_t pdt_count_lines(const char *s);

/* A new database with the schema migrated; URL malloc'd. */
char *pdt_new_migrated_database(void);

/*
 * Runs `patternd ingest --quiet --db URL <args>` and returns its standard
 * output (malloc'd); *status gets the exit status.
 */
char *pdt_ingest(const char *url, const char *args, int *status);

/* The JSON summary (the last line of ingest's output): the integer under key, or -1. */
long pdt_summary_value(const char *output, const char *key);

/*
 * Fails the test unless operation_patterns holds exactly the rows of the
 * expected NDJSON file among those with occurrences (counts, signatures,
 * types, token averages and confidence exactly; costs and savings to a
 * relative 1e-6).
 */
void pdt_assert_patterns_match(const char *url, const char *expected_path);

/*
 * A digest of everything ingest writes that must not depend on timing: the
 * pattern statistics and running sums, the occurrences, the workflows and
 * the version of each that counts.
 * Two databases that ingested the same records agree on it.  malloc'd.
 */
char *pdt_tables_digest(const char *url);

/*
 * The URL of the same database as a login role that is a member of
 * patternd_service: under row-level security, unlike the superuser the tests
 * otherwise connect as.  malloc'd.
 */
char *pdt_service_url(const char *url);

/* Writes a file; fails the test on error. */
void pdt_write_file(const char *path, const char *data, size_t len);

/* First column of the first row of sql as an integer, or -1 when NULL. Fails the test on error. */
long pdt_sql_long(const char *url, const char *sql);

/*
 * Runs `patternd keys create --tenant tenant` and returns the key it prints
 * last (malloc'd).  Fails the test unless it exits 0 with a pdk_ key.
 */
char *pdt_create_key(const char *url, const char *tenant);

/* The same with --scope scopes (e.g. "review", "ingest,read"). */
char *pdt_create_key_scoped(const char *url, const char *tenant, const char *scopes);

/*
 * Writes count tenant-less NDJSON records with workflow ids prefix-0,
 * prefix-1, ... to a new file under /tmp and returns its path (malloc'd; the
 * caller unlinks and frees it).
 */
char *pdt_records_file(const char *prefix, int count);

/*
 * Polls cond(arg) every 10 ms until it holds; fails the test with `what` if
 * it has not held after deadline_s seconds.  The deadline only turns a hang
 * into a failure: no test relies on how soon cond holds.
 */
void pdt_poll_until(int (*cond)(void *arg), void *arg, double deadline_s, const char *what);

/*
 * The test-only pause point of the store (include/pd/hold.h).  pdt_hold_dir()
 * makes a new directory for PATTERND_HOLD_DIR (malloc'd; pdt_hold_remove()
 * removes it and frees it).  pdt_hold_wait() waits (deadline 120 s) until
 * batch n of the process is held, i.e. inside its transaction before COMMIT;
 * pdt_hold_release() lets it go on.  pdt_hold_is_held() says whether batch
 * n is held now.
 */
char *pdt_hold_dir(void);
void pdt_hold_wait(const char *dir, long n);
int pdt_hold_is_held(const char *dir, long n);
void pdt_hold_release(const char *dir, long n);
void pdt_hold_remove(char *dir);

/*
 * A TCP relay on 127.0.0.1 for outage tests.  It listens on a free port
 * (pdt_relay_port) and, while forwarding, relays each connection to
 * 127.0.0.1:target_port; while holding, it accepts connections and never
 * answers (a database that accepts and says nothing).  Connections held
 * stay held when it switches to forwarding.  Threads of its own; stopped and
 * freed by pdt_relay_stop().
 */
typedef struct pdt_relay pdt_relay_t;
pdt_relay_t *pdt_relay_start(int target_port, int forwarding);
int pdt_relay_port(const pdt_relay_t *relay);
void pdt_relay_forward(pdt_relay_t *relay, int forwarding);
void pdt_relay_stop(pdt_relay_t *relay);

/* The port of a postgresql:// URL ("...@host:PORT/db"); fails the test when it has none. */
int pdt_url_port(const char *url);

#endif
