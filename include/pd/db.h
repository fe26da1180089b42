/*
 * A PostgreSQL connection and the results it returns.
 *
 * pd_db_t owns one PGconn; a pd_db_t is used by one thread at a time (each
 * worker creates its own).  Every PGresult handed out by this module is
 * released with pd_db_result_free() and nothing else.
 */
#ifndef PD_DB_H
#define PD_DB_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "pd/error.h"

typedef struct pd_db pd_db_t;

/*
 * The connection string to use: the --db value when given, else
 * $DATABASE_URL, else "" (libpq then reads PGHOST, PGPORT, PGUSER, ...).
 * Returns a borrowed string.
 */
const char *pd_db_conninfo(const char *flag_value);

/*
 * Connects.  On success *out is a new handle, released with pd_db_destroy().
 * Returns 0, PD_ECONN (with libpq's message in err) or PD_ENOMEM.
 */
int pd_db_connect(const char *conninfo, pd_db_t **out, pd_error_t *err);
void pd_db_destroy(pd_db_t *db);

/*
 * Runs sql with text parameters.  On success returns 0 and, when out is not
 * NULL, the result (caller frees with pd_db_result_free); without out the
 * result is dropped.  On failure returns PD_ERETRY (deadlock, serialization
 * failure), PD_ECONN (connection lost) or PD_EDB, with the server's message
 * in err.
 */
int pd_db_query(pd_db_t *db, const char *sql, int nparams, const char *const *params,
                PGresult **out, pd_error_t *err);

/* Runs one or more statements without parameters; same returns. */
int pd_db_exec(pd_db_t *db, const char *sql, pd_error_t *err);

/*
 * A statement of a module's write or read path: its name (for error
 * messages only: nothing is prepared on the server under it), its text and
 * its number of parameters.
 */
typedef struct pd_db_statement {
    const char *name;
    const char *sql;
    int nparams;
} pd_db_statement_t;

/*
 * Runs st with text parameters as an unnamed statement (parse, bind and
 * execute in one round trip).  Named prepared statements are never used:
 * behind a pooler in transaction mode (PgBouncer) consecutive transactions
 * of one client may run on different server connections, where a statement
 * prepared on another is missing or already exists.  The result and the
 * returns are those of pd_db_query(); err reads "<name>: <server message>".
 */
int pd_db_run(pd_db_t *db, const pd_db_statement_t *st, const char *const *params, PGresult **out,
              pd_error_t *err);

/*
 * pd_db_run() with parameters of given lengths and formats (1 for binary,
 * 0 for text), as PQexecParams takes them; NULL for all-text.
 */
int pd_db_run_formats(pd_db_t *db, const pd_db_statement_t *st, const char *const *params,
                      const int *lengths, const int *formats, PGresult **out, pd_error_t *err);

/*
 * Classifies a failed result (NULL when none came back) into PD_ERETRY
 * (40P01 deadlock, 40001 serialization failure), PD_ECONN or PD_EDB.
 * PD_ECONN is a lost connection, or an outcome that cannot be known: class
 * 08 and 57P01-57P03, also when Citus passes them through from a worker
 * node, and the internal errors (XX000) by which Citus reports a
 * connection between nodes that broke during a transaction ("failure on
 * connection marked as essential"), during its COMMIT ("could not commit
 * transaction for shard ... on at least one active node"), or a worker's
 * FATAL it relays ("terminating connection due to administrator command").
 * A caller retries those with the lost-commit check of src/db/store.c.
 */
int pd_db_classify(pd_db_t *db, const PGresult *res);

/*
 * The SQLSTATE of the last statement run on db when it failed with a
 * server error, else "" (e.g. "23505" when an INSERT met an existing key).
 */
const char *pd_db_sqlstate(const pd_db_t *db);

void pd_db_result_free(PGresult *res);

/*
 * With on, every transaction this handle begins (pd_db_begin_tenant(),
 * pd_db_begin()) runs with SET LOCAL synchronous_commit = off: its COMMIT
 * returns before the WAL is flushed.  Transaction-scoped, never a session
 * SET, which a pooler would hand on to whichever client next gets the
 * server connection.
 */
void pd_db_set_async_commit(pd_db_t *db, bool on);

/*
 * Begins a transaction scoped to tenant: the row-level security policies
 * (migrations/0002) compare every row's tenant_id with the setting
 * patternd.tenant, which this sets until the transaction ends.  BEGIN,
 * then one round trip of simple-protocol statements:
 *
 *   SET LOCAL citus.propagate_set_commands = 'local';
 *   SET LOCAL patternd.tenant = '<tenant, quoted by libpq>';
 *
 * SET LOCAL rather than set_config(): on Citus only SET commands reach the
 * worker nodes, where the policies of the shards are evaluated, and only
 * those that follow propagate_set_commands = 'local' in the transaction.
 * On plain PostgreSQL and behind PgBouncer the first SET only sets a
 * placeholder setting; both end with the transaction, so no session state
 * is left on a pooled connection.  The caller ends it with pd_db_end().
 * Same returns as pd_db_query().
 */
int pd_db_begin_tenant(pd_db_t *db, const char *tenant, pd_error_t *err);

/* Begins a transaction with no tenant (administration: every tenant, as the owner). */
int pd_db_begin(pd_db_t *db, pd_error_t *err);

/*
 * Ends the open transaction: COMMITs when rc is 0, else ROLLBACKs (skipped
 * when the connection is gone: the server dropped the transaction with it;
 * on Citus a connection lost between nodes is PD_ECONN while the client's
 * own connection is still up, in an aborted transaction) and returns rc
 * unchanged, leaving err as it was.  Returns
 * COMMIT's result otherwise.  Meant as `return pd_db_end(db, rc, err);`.
 */
int pd_db_end(pd_db_t *db, int rc, pd_error_t *err);

/* True when the connection is up (a lost one must be destroyed and made again). */
bool pd_db_connected(pd_db_t *db);

/*
 * For the statement modules that turn a result into typed rows outliving
 * it.  pd_db_rows_alloc() allocates one block: an array of PQntuples(res)
 * structs of row_size bytes, followed by room for every value of res as a
 * string; *strings points at that room.  pd_db_text_copy() copies the value
 * at (row, col) to *strings, advances it, and returns the copy, or NULL for
 * SQL NULL.  The block (the array) is released with free(): the rows'
 * strings live in it.  NULL when out of memory.
 */
void *pd_db_rows_alloc(const PGresult *res, size_t row_size, char **strings);
const char *pd_db_text_copy(const PGresult *res, int row, int col, char **strings);

/*
 * Whether the connection's role bypasses row-level security (a superuser,
 * a role with BYPASSRLS, or a member of the role owning patternd's tables)
 * and that role's name, copied into role (role_cap bytes, truncated).
 * Same returns as pd_db_query().
 */
int pd_db_role_bypasses_rls(pd_db_t *db, bool *bypass, char *role, size_t role_cap,
                            pd_error_t *err);

#endif
