/* PostgreSQL connection handling; see include/pd/db.h. */
#include "pd/db.h"

#include <stdlib.h>
#include <string.h>

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

static int check(pd_db_t *db, PGresult *res, PGresult **out, pd_error_t *err)
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
    pd_error_set(err, rc, 0, "", "%s", msg);
    if (err)
        chomp(err->message);
    PQclear(res);
    return rc;
}

int pd_db_query(pd_db_t *db, const char *sql, int nparams, const char *const *params,
                PGresult **out, pd_error_t *err)
{
    return check(db, PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0), out, err);
}

int pd_db_exec(pd_db_t *db, const char *sql, pd_error_t *err)
{
    return check(db, PQexec(db->conn, sql), NULL, err);
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
    if ((rc = pd_db_query(db, PD_SQL_SET_TENANT, 1, &tenant, NULL, err)) < 0)
        pd_db_exec(db, "ROLLBACK", NULL);
    return rc;
}
