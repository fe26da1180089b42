/*
 * The review lifecycle's statements; see include/pd/review.h.
 *
 * The status graph lives in one place, the SQL function patternd_review()
 * (migrations/0009): it locks the pattern's row (SELECT ... FOR UPDATE),
 * compares the status with the one the reviewer saw, moves it and writes
 * the audit row.  Two reviewers at once are thereby serialised on the row:
 * the second waits for the first's COMMIT, then finds a status it did not
 * expect and is answered conflict, with that status.  Nothing here decides
 * a move; C only names the action and reads the answer.
 *
 * A threshold change and the re-evaluation of the tenant's patterns that
 * it implies (patternd_move_candidates(tenant, NULL)) commit together, so
 * no reader sees new thresholds with patterns placed by the old ones.
 *
 * Runs on the thread owning the pd_db_t; owns nothing between calls.
 */
#include "pd/review.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/db.h"
#include "pd/json.h"
#include "pd/patterns.h"

/* $1 tenant, $2 id, $3 action, $4 expected, $5 actor, $6 reviewer, $7 notes, $8 reason. */
static const char SQL_REVIEW[] =
    "SELECT status, result FROM patternd_review($1, $2::bigint, $3, $4, $5, $6, $7, $8)";

/* $1 the tenant, or NULL for every tenant the role sees. */
static const char SQL_SUMMARY[] =
    "SELECT automation_status, count(*) FROM operation_patterns"
    " WHERE ($1::text IS NULL OR tenant_id = $1) AND occurrence_count > 0"
    " GROUP BY automation_status";

static const char SQL_THRESHOLDS[] =
    "SELECT min_occurrences, min_confidence, min_savings FROM review_thresholds"
    " WHERE tenant_id = $1";

/*
 * $1 tenant, $2 min_occurrences, $3 min_confidence, $4 min_savings (each
 * NULL to keep the stored one), $5 who, $6-$8 the defaults of $2-$4 for a
 * tenant without a row.  The conflict's row lock makes the keeping exact
 * under concurrent sets.  (now() in the VALUES: Citus evaluates it once, on
 * the coordinator.)
 */
static const char SQL_SET_THRESHOLDS[] =
    "INSERT INTO review_thresholds AS t (tenant_id, min_occurrences, min_confidence,"
    " min_savings, updated_at, updated_by)"
    " VALUES ($1, coalesce($2::bigint, $6::bigint), coalesce($3::float8, $7::float8),"
    " coalesce($4::numeric, $8::numeric), now(), $5)"
    " ON CONFLICT (tenant_id) DO UPDATE SET"
    " min_occurrences = coalesce($2::bigint, t.min_occurrences),"
    " min_confidence = coalesce($3::float8, t.min_confidence),"
    " min_savings = coalesce($4::numeric, t.min_savings),"
    " updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by"
    " RETURNING min_occurrences, min_confidence, min_savings";

static const char SQL_MOVE_ALL[] = "SELECT patternd_move_candidates($1, NULL)";

const char *const pd_review_actions[] = {
    [PD_REVIEW_APPROVE] = "approve",     [PD_REVIEW_REJECT] = "reject",
    [PD_REVIEW_IMPLEMENT] = "implement", [PD_REVIEW_DEPRECATE] = "deprecate",
    [PD_REVIEW_REOPEN] = "reopen",       NULL};

int pd_review_action_parse(const char *name, pd_review_action_t *out)
{
    for (int i = 0; pd_review_actions[i] != NULL; i++) {
        if (strcmp(name, pd_review_actions[i]) == 0) {
            *out = (pd_review_action_t)i;
            return PD_OK;
        }
    }
    return PD_EINVAL;
}

bool pd_review_action_needs_reason(pd_review_action_t action)
{
    return action == PD_REVIEW_REJECT || action == PD_REVIEW_DEPRECATE;
}

/* Runs the move in the open transaction; see pd_review_apply(). */
static int apply_in(pd_db_t *db, const char *tenant, const pd_review_request_t *rq,
                    pd_review_result_t *result, char status[PD_REVIEW_STATUS_MAX], pd_error_t *err)
{
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)rq->id);
    const char *params[] = {tenant,       id,        pd_review_actions[rq->action],
                            rq->expected, rq->actor, rq->reviewer,
                            rq->notes,    rq->reason};
    PGresult *res = NULL;
    int rc = pd_db_query(db, SQL_REVIEW, 8, params, &res, err);
    if (rc < 0)
        return rc;
    const char *what = PQgetvalue(res, 0, 1);
    snprintf(status, PD_REVIEW_STATUS_MAX, "%s", PQgetvalue(res, 0, 0));
    *result = strcmp(what, "ok") == 0                ? PD_REVIEW_OK
              : strcmp(what, "not_found") == 0       ? PD_REVIEW_NOT_FOUND
              : strcmp(what, "reason_required") == 0 ? PD_REVIEW_REASON_REQUIRED
                                                     : PD_REVIEW_CONFLICT;
    pd_db_result_free(res);
    return PD_OK;
}

int pd_review_apply(pd_db_t *db, const char *tenant, const pd_review_request_t *rq,
                    pd_review_result_t *result, char status[PD_REVIEW_STATUS_MAX], json_t **doc,
                    pd_error_t *err)
{
    if (doc != NULL)
        *doc = NULL;
    int rc = pd_db_begin_tenant(db, tenant, err);
    if (rc < 0)
        return rc;
    rc = pd_db_end(db, apply_in(db, tenant, rq, result, status, err), err);
    if (rc < 0 || *result != PD_REVIEW_OK || doc == NULL)
        return rc;
    /* Read after the COMMIT, so that the row lock is not held while the document's reads run. */
    rc = pd_patterns_detail_json(db, tenant, rq->id, rq->weeks, doc, err);
    if (rc == PD_OK && *doc == NULL) /* patterns are never deleted */
        rc = pd_error_set(err, PD_EDB, 0, "", "the pattern moved but cannot be read back");
    return rc;
}

int pd_review_summary(pd_db_t *db, const char *tenant, int64_t counts[6], pd_error_t *err)
{
    PGresult *res = NULL;
    memset(counts, 0, 6 * sizeof(counts[0]));
    int rc = tenant != NULL ? pd_db_begin_tenant(db, tenant, err) : pd_db_begin(db, err);
    if (rc < 0)
        return rc;
    rc = pd_db_end(db, pd_db_query(db, SQL_SUMMARY, 1, &tenant, &res, err), err);
    for (int i = 0; rc == PD_OK && i < PQntuples(res); i++) {
        for (int s = 0; s < 6; s++) {
            if (strcmp(PQgetvalue(res, i, 0), pd_pattern_statuses[s]) == 0)
                counts[s] = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        }
    }
    pd_db_result_free(res);
    return rc;
}

int pd_review_thresholds_check(const pd_review_thresholds_t *t, unsigned fields, pd_error_t *err)
{
    if ((fields & PD_REVIEW_SET_MIN_OCCURRENCES) &&
        (t->min_occurrences < 0 || t->min_occurrences > PD_REVIEW_MIN_OCCURRENCES_MAX))
        return pd_error_set(err, PD_EINVAL, 0, "min_occurrences",
                            "min_occurrences: expected an integer from 0 to %lld",
                            (long long)PD_REVIEW_MIN_OCCURRENCES_MAX);
    if ((fields & PD_REVIEW_SET_MIN_CONFIDENCE) &&
        !(t->min_confidence >= 0 && t->min_confidence <= 100))
        return pd_error_set(err, PD_EINVAL, 0, "min_confidence",
                            "min_confidence: expected a number from 0 to 100");
    if ((fields & PD_REVIEW_SET_MIN_SAVINGS) &&
        !(t->min_savings >= 0 && t->min_savings <= PD_REVIEW_MIN_SAVINGS_MAX))
        return pd_error_set(err, PD_EINVAL, 0, "min_savings",
                            "min_savings: expected a number from 0 to 1e28");
    return PD_OK;
}

/* The thresholds of a row of res (min_occurrences, min_confidence, min_savings). */
static pd_review_thresholds_t thresholds_of(const PGresult *res, int row)
{
    return (pd_review_thresholds_t){
        .min_occurrences = strtoll(PQgetvalue(res, row, 0), NULL, 10),
        .min_confidence = pd_patterns_number(PQgetvalue(res, row, 1)),
        .min_savings = pd_patterns_number(PQgetvalue(res, row, 2)),
    };
}

static int thresholds_in(pd_db_t *db, const char *tenant, pd_review_thresholds_t *out,
                         pd_error_t *err)
{
    PGresult *res = NULL;
    int rc = pd_db_query(db, SQL_THRESHOLDS, 1, &tenant, &res, err);
    if (rc < 0)
        return rc;
    *out = (pd_review_thresholds_t)PD_REVIEW_THRESHOLDS_DEFAULT;
    if (PQntuples(res) > 0)
        *out = thresholds_of(res, 0);
    pd_db_result_free(res);
    return PD_OK;
}

int pd_review_thresholds_get(pd_db_t *db, const char *tenant, pd_review_thresholds_t *out,
                             pd_error_t *err)
{
    int rc = pd_db_begin_tenant(db, tenant, err);
    if (rc < 0)
        return rc;
    return pd_db_end(db, thresholds_in(db, tenant, out, err), err);
}

/* The text of t's members as parameters, in PD_REVIEW_SET_* order: NULL for one not in fields. */
static void thresholds_params(const pd_review_thresholds_t *t, unsigned fields,
                              char text[3][PD_JSON_NUMBER_MAX], const char *params[3])
{
    snprintf(text[0], PD_JSON_NUMBER_MAX, "%lld", (long long)t->min_occurrences);
    /* The shortest decimals that read back as the doubles: 1.1 is stored as 1.1. */
    pd_json_number(t->min_confidence, text[1]);
    pd_json_number(t->min_savings, text[2]);
    for (int i = 0; i < 3; i++)
        params[i] = fields & (1u << i) ? text[i] : NULL;
}

static int set_in(pd_db_t *db, const char *tenant, unsigned fields, pd_review_thresholds_t *t,
                  const char *actor, int64_t *moved, pd_error_t *err)
{
    static const pd_review_thresholds_t defaults = PD_REVIEW_THRESHOLDS_DEFAULT;
    char given[3][PD_JSON_NUMBER_MAX], fallback[3][PD_JSON_NUMBER_MAX];
    const char *params[8] = {tenant};
    thresholds_params(t, fields, given, params + 1);
    params[4] = actor;
    thresholds_params(&defaults, PD_REVIEW_SET_ALL, fallback, params + 5);
    PGresult *res = NULL;
    int rc = pd_db_query(db, SQL_SET_THRESHOLDS, 8, params, &res, err);
    if (rc < 0)
        return rc;
    *t = thresholds_of(res, 0);
    pd_db_result_free(res);
    if ((rc = pd_db_query(db, SQL_MOVE_ALL, 1, &tenant, &res, err)) < 0)
        return rc;
    *moved = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    pd_db_result_free(res);
    return PD_OK;
}

int pd_review_thresholds_set(pd_db_t *db, const char *tenant, unsigned fields,
                             pd_review_thresholds_t *t, const char *actor, int64_t *moved,
                             pd_error_t *err)
{
    int rc = pd_review_thresholds_check(t, fields, err);
    if (rc < 0)
        return rc;
    if ((rc = pd_db_begin_tenant(db, tenant, err)) < 0)
        return rc;
    return pd_db_end(db, set_in(db, tenant, fields, t, actor, moved, err), err);
}
