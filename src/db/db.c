/*
 * PostgreSQL connection handling; see include/pd/db.h.
 *
 * Every statement's result goes through check(), the one place that tells
 * success from failure and classifies the failure (retry, connection lost,
 * other), and every transaction ends in pd_db_end().  Runs on the thread
 * that owns the pd_db_t.
 */
#include "pd/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Does the connection's role escape row-level security: a superuser, a role
 * with BYPASSRLS, or a member of the role owning one of patternd's tables
 * (the FORCEd policies bind an owner, but an owner may drop them)?  And
 * that role's name.
 */
static const char SQL_BYPASS[] =
    "SELECT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)"
    " OR EXISTS (SELECT 1 FROM pg_class WHERE oid IN ('workflows'::regclass,"
    " 'operation_patterns'::regclass, 'pattern_occurrences'::regclass, 'api_keys'::regclass)"
    " AND pg_has_role(current_user, relowner, 'MEMBER')),"
    " current_user";

struct pd_db {
    PGconn *conn;
};

const char *pd_db_conninfo(const char *flag_value)
{
    if (flag_value != NULL)
        return flag_value;
    const char *env = getenv("DATABASE_URL");
    return env != NULL ? env : "";
}

/* libpq messages end with a newline; error messages here are single lines. */
static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

int pd_db_connect(const char *conninfo, pd_db_t **out, pd_error_t *err)
{
    pd_db_t *db = calloc(1, sizeof(*db));
    if (db == NULL)
        return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    db->conn = PQconnectdb(conninfo);
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
        int rc = pd_error_set(err, PD_ECONN, 0, "", "cannot connect to PostgreSQL: %s",
                              db->conn ? PQerrorMessage(db->conn) : "out of memory");
        if (err)
            chomp(err->message);
        pd_db_destroy(db);
        return rc;
    }
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

PGconn *pd_db_conn(pd_db_t *db)
{
    return db->conn;
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
    /* Class 08 (connection exception) and 57P01-57P03 (admin shutdown, crash, cannot connect now).
     */
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
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
    if (err)
        chomp(err->message);
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

int pd_db_prepare(pd_db_t *db, const char *name, const char *sql, int nparams, pd_error_t *err)
{
    char what[128];
    snprintf(what, sizeof(what), "preparing %s", name);
    return check(db, PQprepare(db->conn, name, sql, nparams, NULL), NULL, what, err);
}

int pd_db_query_prepared(pd_db_t *db, const char *name, int nparams, const char *const *params,
                         PGresult **out, pd_error_t *err)
{
    return check(db, PQexecPrepared(db->conn, name, nparams, params, NULL, NULL, 0), out, name,
                 err);
}

void pd_db_result_free(PGresult *res)
{
    PQclear(res);
}

int pd_db_begin_tenant(pd_db_t *db, const char *tenant, pd_error_t *err)
{
    int rc = pd_db_exec(db, "BEGIN", err);
    if (rc < 0)
        return rc;
    rc = pd_db_query(db, PD_SQL_SET_TENANT, 1, &tenant, NULL, err);
    return rc < 0 ? pd_db_end(db, rc, err) : PD_OK;
}

int pd_db_end(pd_db_t *db, int rc, pd_error_t *err)
{
    if (rc < 0) {
        if (rc != PD_ECONN)
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
