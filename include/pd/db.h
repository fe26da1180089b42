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

/* The underlying connection, borrowed: for the statement modules only. */
PGconn *pd_db_conn(pd_db_t *db);

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
 * Prepares sql as the statement name on this connection (it lasts as long as
 * the connection).  Same returns as pd_db_query(); err reads "preparing
 * <name>: <server message>".
 */
int pd_db_prepare(pd_db_t *db, const char *name, const char *sql, int nparams, pd_error_t *err);

/*
 * Runs the prepared statement name with text parameters; the result and the
 * returns are those of pd_db_query(), err reads "<name>: <server message>".
 */
int pd_db_query_prepared(pd_db_t *db, const char *name, int nparams, const char *const *params,
                         PGresult **out, pd_error_t *err);

/* Classifies a failed result (NULL when none came back) into PD_ERETRY, PD_ECONN or PD_EDB. */
int pd_db_classify(pd_db_t *db, const PGresult *res);

void pd_db_result_free(PGresult *res);

/*
 * The statement that scopes a transaction to one tenant: the row-level
 * security policies (migrations/0002) compare every row's tenant_id with
 * patternd.tenant, which this sets until the transaction ends (SET LOCAL).
 * Parameter $1 is the tenant.
 */
#define PD_SQL_SET_TENANT "SELECT set_config('patternd.tenant', $1, true)"

/*
 * Begins a transaction scoped to tenant (see PD_SQL_SET_TENANT).  The
 * caller ends it with pd_db_end().  Same returns as pd_db_query().
 */
int pd_db_begin_tenant(pd_db_t *db, const char *tenant, pd_error_t *err);

/*
 * Ends the open transaction: COMMITs when rc is 0, else ROLLBACKs (skipped
 * when rc is PD_ECONN: the server has already dropped the transaction with
 * the connection) and returns rc unchanged, leaving err as it was.  Returns
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
