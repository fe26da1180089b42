/*
 * PostgreSQL connection handling; see include/pd/db.h.
 *
 * Every statement's result goes through check(), the one place that tells
 * success from failure and classifies the failure (retry, connection lost,
 * other), and every transaction ends in pd_db_end().  Runs on the thread
 * that owns the pd_db_t.
 *
 * Nothing here leaves state on the server session beyond a transaction: no
 * named prepared statements, no session SET.  That is what makes patternd
 * safe behind PgBouncer in transaction pooling, where each transaction may
 * run on another server connection (and the next client inherits whatever
 * a session left there).
 */
#include "pd/db.h"

#include "pd/buf.h"
#include "pd/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Does the connection's role escape row-level security: a superuser, a role
 * with BYPASSRLS, a member of the role owning one of patternd's tables
 * (the FORCEd policies bind an owner, but an owner may drop them), or a
 * member of patternd_admin (its policies see every tenant, migration
 * 0008)?  And that role's name.
 */
static const char SQL_BYPASS[] =
    "SELECT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)"
    " OR EXISTS (SELECT 1 FROM pg_class WHERE oid IN ('workflows'::regclass,"
    " 'operation_patterns'::regclass, 'pattern_occurrences'::regclass, 'api_keys'::regclass)"
    " AND pg_has_role(current_user, relowner, 'MEMBER'))"
    " OR EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'patternd_admin'"
    " AND pg_has_role(current_user, oid, 'MEMBER')),"
    " current_user";

struct pd_db {
    PGconn *conn;
    bool async_commit; /* SET LOCAL synchronous_commit = off in each transaction */
    char sqlstate[6];  /* of the last statement's server error, "" when none */
};

const char *pd_db_conninfo(const char *flag_value)
{
    if (flag_value != NULL)
        return flag_value;
    const char *env = getenv("DATABASE_URL");
    return env != NULL ? env : "";
}

/*
 * libpq messages end with a newline and may hold several lines (one per
 * address tried); error messages here are single lines, for logs that
 * promise one line per event: inner line breaks become "; ".
 */
static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    char line[PD_MESSAGE_MAX];
    size_t out = 0;
    for (const char *in = s; *in != '\0' && out + 2 < sizeof(line); in++) {
        if (*in != '\n') {
            line[out++] = *in;
            continue;
        }
        while (out > 0 && line[out - 1] == ' ')
            out--;
        line[out++] = ';';
        line[out++] = ' ';
        while (in[1] == ' ' || in[1] == '\t')
            in++;
    }
    line[out] = '\0';
    memcpy(s, line, out + 1);
}

/*
 * Seconds a connection attempt may take when neither the URL nor
 * PGCONNECT_TIMEOUT says: without one, libpq waits for ever on an address
 * that accepts and never answers.
 */
#define CONNECT_TIMEOUT_DEFAULT "10"

/*
 * Server notices ("relation ... already exists, skipping", or the FATAL that
 * a terminated backend sends before it closes) are not a command's output:
 * libpq would print them on stderr.  They go to the debug log.
 */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    char line[PD_MESSAGE_MAX];
    snprintf(line, sizeof(line), "%s", message);
    chomp(line);
    pd_log(PD_LOG_DEBUG, "db", "%s", line);
}

int pd_db_connect(const char *conninfo, pd_db_t **out, pd_error_t *err)
{
    pd_db_t *db = calloc(1, sizeof(*db));
    if (db == NULL)
        return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    /*
     * The default comes before the conninfo (expanded as "dbname"), so that a
     * connect_timeout in the URL overrides it; with PGCONNECT_TIMEOUT set,
     * none is passed, so that libpq reads the variable.
     */
    const char *timeout = getenv("PGCONNECT_TIMEOUT") == NULL ? CONNECT_TIMEOUT_DEFAULT : NULL;
    const char *const keywords[] = {"connect_timeout", "dbname", NULL};
    const char *const values[] = {timeout, conninfo, NULL};
    db->conn = PQconnectdbParams(timeout != NULL ? keywords : keywords + 1,
                                 timeout != NULL ? values : values + 1, 1);
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
        int rc = pd_error_set(err, PD_ECONN, 0, "", "cannot connect to PostgreSQL: %s",
                              db->conn ? PQerrorMessage(db->conn) : "out of memory");
        if (err)
            chomp(err->message);
        pd_db_destroy(db);
        return rc;
    }
    PQsetNoticeProcessor(db->conn, on_notice, NULL);
    *out = db;
    return PD_OK;
}

void pd_db_destroy(pd_db_t *db)
{
    if (db == NULL)
        return;
    PQfinish(db->conn);
    free(db);
}

/*
 * Connection losses that Citus reports as internal errors (XX000): its own,
 * when a connection to a worker node broke inside a transaction or during
 * its COMMIT (remote_transaction.c, transaction_management.c), and a
 * worker's own FATAL (a restart, a crash, a shutdown) relayed with XX000 by
 * some of its executor's paths (seen: INSERT ... SELECT through the
 * coordinator while a worker restarts).  The message is the only way to
 * tell them from a real internal error.
 */
static bool relayed_connection_loss(const PGresult *res)
{
    static const char *const prefixes[] = {
        "failure on connection marked as essential",
        "terminating connection ", /* due to administrator command, because of crash ... */
        "connection to the remote node",
        "the database system is ", /* shutting down, starting up, in recovery mode */
        "connection not open",
    };
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (msg == NULL)
        return false;
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (strncmp(msg, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    }
    return (strncmp(msg, "could not commit transaction", 28) == 0 &&
            strstr(msg, " active node") != NULL) ||
           strstr(msg, "server closed the connection unexpectedly") != NULL;
}

int pd_db_classify(pd_db_t *db, const PGresult *res)
{
    if (PQstatus(db->conn) != CONNECTION_OK)
        return PD_ECONN;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state == NULL)
        return PD_ECONN; /* no answer at all: the connection broke */
    if (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0)
        return PD_ERETRY;
    /*
     * Class 08 (connection exception) and 57P01-57P03 (admin shutdown, crash,
     * cannot connect now), whether about this connection or passed through by
     * a Citus coordinator from a worker node.
     */
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
        return PD_ECONN;
    if (strcmp(state, "XX000") == 0 && relayed_connection_loss(res))
        return PD_ECONN;
    return PD_EDB;
}

/*
 * The one place a result is checked: passes a successful one to *out (or
 * drops it), else classifies the failure and puts the server's message in
 * err, after "<what>: " when what is not NULL.
 */
static int check(pd_db_t *db, PGresult *res, PGresult **out, const char *what, pd_error_t *err)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", state != NULL ? state : "");
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (out != NULL)
            *out = res;
        else
            PQclear(res);
        return PD_OK;
    }
    int rc = pd_db_classify(db, res);
    const char *msg = res ? PQresultErrorMessage(res) : "";
    if (msg == NULL || *msg == '\0')
        msg = PQerrorMessage(db->conn);
    pd_error_set(err, rc, 0, "", "%s%s%s", what ? what : "", what ? ": " : "", msg);
    if (err) {
        chomp(err->message);
        /* The SQLSTATE tells an operator (and us) how the failure was classified. */
        size_t len = strlen(err->message);
        if (state != NULL && len < sizeof(err->message))
            snprintf(err->message + len, sizeof(err->message) - len, " (SQLSTATE %s)", state);
    }
    PQclear(res);
    return rc;
}

int pd_db_query(pd_db_t *db, const char *sql, int nparams, const char *const *params,
                PGresult **out, pd_error_t *err)
{
    return check(db, PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0), out, NULL,
                 err);
}

int pd_db_exec(pd_db_t *db, const char *sql, pd_error_t *err)
{
    return check(db, PQexec(db->conn, sql), NULL, NULL, err);
}

int pd_db_run(pd_db_t *db, const pd_db_statement_t *st, const char *const *params, PGresult **out,
              pd_error_t *err)
{
    return pd_db_run_formats(db, st, params, NULL, NULL, out, err);
}

int pd_db_run_formats(pd_db_t *db, const pd_db_statement_t *st, const char *const *params,
                      const int *lengths, const int *formats, PGresult **out, pd_error_t *err)
{
    return check(db,
                 PQexecParams(db->conn, st->sql, st->nparams, NULL, params, lengths, formats, 0),
                 out, st->name, err);
}

const char *pd_db_sqlstate(const pd_db_t *db)
{
    return db->sqlstate;
}

void pd_db_result_free(PGresult *res)
{
    PQclear(res);
}

void pd_db_set_async_commit(pd_db_t *db, bool on)
{
    db->async_commit = on;
}

static const char SQL_ASYNC[] = "; SET LOCAL synchronous_commit = off";

int pd_db_begin_tenant(pd_db_t *db, const char *tenant, pd_error_t *err)
{
    /*
     * SET takes no bind parameter, so the tenant goes in as a literal quoted
     * by libpq for this connection's encoding and settings.  The order
     * matters on Citus: only SETs after propagate_set_commands = 'local'
     * reach the worker nodes.
     */
    char *literal = PQescapeLiteral(db->conn, tenant, strlen(tenant));
    if (literal == NULL) {
        int rc = pd_db_connected(db) ? PD_EINVAL : PD_ECONN;
        pd_error_set(err, rc, 0, "tenant_id", "cannot quote the tenant: %s",
                     PQerrorMessage(db->conn));
        if (err)
            chomp(err->message);
        return rc;
    }
    /*
     * BEGIN goes alone: Citus hands the text of the query that held a SET
     * on to the worker nodes, and a BEGIN in it makes each worker warn
     * "there is already a transaction in progress".
     */
    int rc = pd_db_exec(db, "BEGIN", err);
    if (rc < 0) {
        PQfreemem(literal);
        return rc;
    }
    pd_buf_t sql = {0};
    PD_BUF_LIT(&sql, "SET LOCAL citus.propagate_set_commands = 'local';"
                     " SET LOCAL patternd.tenant = ");
    pd_buf_puts(&sql, literal);
    PQfreemem(literal);
    if (db->async_commit)
        pd_buf_put(&sql, SQL_ASYNC, sizeof(SQL_ASYNC) - 1);
    pd_buf_put(&sql, "", 1);
    rc = sql.failed ? pd_error_set(err, PD_ENOMEM, 0, "", "out of memory")
                    : check(db, PQexec(db->conn, sql.data), NULL, "setting the tenant", err);
    pd_buf_close(&sql);
    /* A failure after BEGIN leaves an aborted transaction open: end it. */
    return rc < 0 ? pd_db_end(db, rc, err) : PD_OK;
}

int pd_db_begin(pd_db_t *db, pd_error_t *err)
{
    return pd_db_exec(db, db->async_commit ? "BEGIN; SET LOCAL synchronous_commit = off" : "BEGIN",
                      err);
}

int pd_db_end(pd_db_t *db, int rc, pd_error_t *err)
{
    if (rc < 0) {
        if (pd_db_connected(db))
            pd_db_exec(db, "ROLLBACK", NULL);
        return rc;
    }
    return pd_db_exec(db, "COMMIT", err);
}

bool pd_db_connected(pd_db_t *db)
{
    return PQstatus(db->conn) == CONNECTION_OK;
}

void *pd_db_rows_alloc(const PGresult *res, size_t row_size, char **strings)
{
    size_t rows = (size_t)PQntuples(res), text = 0;
    int cols = PQnfields(res);
    for (size_t i = 0; i < rows; i++) {
        for (int c = 0; c < cols; c++)
            text += (size_t)PQgetlength(res, (int)i, c) + 1;
    }
    char *block = malloc(rows * row_size + text + 1); /* + 1: never malloc(0) */
    if (block != NULL)
        *strings = block + rows * row_size;
    return block;
}

const char *pd_db_text_copy(const PGresult *res, int row, int col, char **strings)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    char *copy = *strings;
    size_t len = (size_t)PQgetlength(res, row, col);
    memcpy(copy, PQgetvalue(res, row, col), len + 1);
    *strings += len + 1;
    return copy;
}

int pd_db_role_bypasses_rls(pd_db_t *db, bool *bypass, char *role, size_t role_cap, pd_error_t *err)
{
    PGresult *res = NULL;
    int rc = pd_db_query(db, SQL_BYPASS, 0, NULL, &res, err);
    if (rc < 0)
        return rc;
    *bypass = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    if (role_cap > 0)
        snprintf(role, role_cap, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    return PD_OK;
}
