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
 * caller ends it with COMMIT or ROLLBACK.  Same returns as pd_db_query().
 */
int pd_db_begin_tenant(pd_db_t *db, const char *tenant, pd_error_t *err);

#endif
