/*
 * The read and review endpoints' requests and answers; see api.h.
 *
 * Parsing refuses what would only fail later: every parameter and field is
 * checked here, on the loop thread, and named in the 400 that refuses it,
 * before a reader thread or the database sees the request.  Text fields
 * are bounded (include/pd/review.h) and, being JSON strings jansson
 * accepted, are UTF-8 without NUL, as PostgreSQL text must be.
 *
 * Answers are decided on a reader thread: what the database said (no such
 * pattern, a conflict, the document) becomes an HTTP status and a JSON
 * body there, so the loop thread only sends them.
 */
#include "api.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/json.h"

void pd__api_init(pd__api_request_t *rq, pd__api_op_t op, const char *tenant, const char *actor)
{
    *rq = (pd__api_request_t){.op = op, .weeks = PD_PATTERN_WEEKS};
    snprintf(rq->tenant, sizeof(rq->tenant), "%s", tenant);
    snprintf(rq->actor, sizeof(rq->actor), "%s", actor);
    rq->filter = (pd_patterns_filter_t){.tenant = rq->tenant, .limit = PD__API_TOP_DEFAULT};
}

void pd__api_close(pd__api_request_t *rq)
{
    json_decref(rq->body);
    rq->body = NULL;
}

/* --- query strings ---------------------------------------------------------------------- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * Decodes n bytes of a percent-encoded query component into out (cap
 * bytes): '+' is a space.  False when it does not fit, holds a malformed
 * escape or decodes to a NUL.
 */
static bool decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n)
                return false;
            int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

static bool parse_long(const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* A pattern type as patternd makes them: the signature's category, e.g. "test". */
static bool type_valid(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_' || *s == '-'))
            return false;
    }
    return true;
}

/* One parameter of the query. */
static int take_param(pd__api_request_t *rq, const char *name, const char *value, pd_error_t *err)
{
    long v;
    if (rq->op == PD__API_LIST && strcmp(name, "top") == 0) {
        if (!parse_long(value, 1, PD__API_TOP_MAX, &v))
            return pd_error_set(err, PD_EINVAL, 0, "top", "top: expected a number from 1 to %d",
                                PD__API_TOP_MAX);
        rq->filter.limit = v;
    } else if (rq->op == PD__API_LIST && strcmp(name, "cursor") == 0) {
        if (strlen(value) >= sizeof(rq->cursor) || value[0] == '\0')
            return pd_error_set(err, PD_EINVAL, 0, "cursor",
                                "cursor: not a cursor that a list gave");
        snprintf(rq->cursor, sizeof(rq->cursor), "%s", value);
        rq->filter.cursor = rq->cursor;
    } else if (rq->op == PD__API_LIST && strcmp(name, "status") == 0) {
        if (!pd_pattern_status_valid(value))
            return pd_error_set(err, PD_EINVAL, 0, "status",
                                "status: expected detected, candidate, approved, rejected, "
                                "implemented or deprecated");
        snprintf(rq->status, sizeof(rq->status), "%s", value);
        rq->filter.status = rq->status;
    } else if (rq->op == PD__API_LIST && strcmp(name, "type") == 0) {
        if (strlen(value) >= sizeof(rq->type) || !type_valid(value))
            return pd_error_set(err, PD_EINVAL, 0, "type",
                                "type: expected a pattern type such as test or build");
        snprintf(rq->type, sizeof(rq->type), "%s", value);
        rq->filter.type = rq->type;
    } else if (rq->op == PD__API_LIST && strcmp(name, "min_confidence") == 0) {
        char *end;
        double d = strtod(value, &end);
        if (end == value || *end != '\0' || !(d >= 0 && d <= 100))
            return pd_error_set(err, PD_EINVAL, 0, "min_confidence",
                                "min_confidence: expected a number from 0 to 100");
        rq->filter.has_min_confidence = true;
        rq->filter.min_confidence = d;
    } else if ((rq->op == PD__API_PATTERN || rq->op == PD__API_REVIEW) &&
               strcmp(name, "weeks") == 0) {
        if (!parse_long(value, 1, PD_PATTERN_WEEKS_MAX, &v))
            return pd_error_set(err, PD_EINVAL, 0, "weeks", "weeks: expected a number from 1 to %d",
                                PD_PATTERN_WEEKS_MAX);
        rq->weeks = v;
    }
    return PD_OK;
}

int pd__api_parse_query(pd__api_request_t *rq, const char *query, pd_error_t *err)
{
    for (const char *q = query; *q != '\0';) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        size_t name_len = eq != NULL ? (size_t)(eq - q) : n;
        char name[32], value[512];
        if (name_len > 0 && decode(q, name_len, name, sizeof(name))) {
            const char *v = eq != NULL ? eq + 1 : q + n;
            if (!decode(v, (size_t)(q + n - v), value, sizeof(value)))
                return pd_error_set(err, PD_EINVAL, 0, name, "%s: malformed or too long", name);
            int rc = take_param(rq, name, value, err);
            if (rc < 0)
                return rc;
        }
        q += n + (q[n] == '&');
    }
    return PD_OK;
}

/* --- bodies ----------------------------------------------------------------------------- */

/*
 * The string member `name` of o into *out: NULL when absent or null and
 * not required.  Bytes of text at most max; min: at least this many bytes
 * besides spaces.
 */
static int text_member(json_t *o, const char *name, bool required, size_t min, size_t max,
                       const char **out, pd_error_t *err)
{
    json_t *v = json_object_get(o, name);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        if (required)
            return pd_error_set(err, PD_EINVAL, 0, name, "%s: required", name);
        return PD_OK;
    }
    if (!json_is_string(v))
        return pd_error_set(err, PD_EINVAL, 0, name, "%s: expected a string", name);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v), content = 0;
    for (size_t i = 0; i < len; i++)
        content += !isspace((unsigned char)s[i]);
    if (len > max)
        return pd_error_set(err, PD_EINVAL, 0, name, "%s: longer than %zu bytes", name, max);
    if (content < min)
        return pd_error_set(err, PD_EINVAL, 0, name, "%s: must not be empty", name);
    *out = s;
    return PD_OK;
}

static int review_body(pd__api_request_t *rq, json_t *o, pd_error_t *err)
{
    pd_review_request_t *r = &rq->review;
    const char *action, *expected;
    int rc;
    *r = (pd_review_request_t){.id = rq->id, .actor = rq->actor, .weeks = rq->weeks};
    if ((rc = text_member(o, "action", true, 1, 32, &action, err)) < 0)
        return rc;
    if (pd_review_action_parse(action, &r->action) < 0)
        return pd_error_set(err, PD_EINVAL, 0, "action",
                            "action: expected approve, reject, implement, deprecate or reopen");
    if ((rc = text_member(o, "expected_status", true, 1, 32, &expected, err)) < 0)
        return rc;
    if (!pd_pattern_status_valid(expected))
        return pd_error_set(err, PD_EINVAL, 0, "expected_status",
                            "expected_status: expected detected, candidate, approved, rejected, "
                            "implemented or deprecated");
    r->expected = expected;
    if ((rc = text_member(o, "reviewer", true, 1, PD_REVIEW_REVIEWER_MAX, &r->reviewer, err)) < 0 ||
        (rc = text_member(o, "notes", false, 0, PD_REVIEW_TEXT_MAX, &r->notes, err)) < 0 ||
        (rc = text_member(o, "reason", false, 0, PD_REVIEW_TEXT_MAX, &r->reason, err)) < 0)
        return rc;
    if (pd_review_action_needs_reason(r->action) &&
        (rc = text_member(o, "reason", true, 1, PD_REVIEW_TEXT_MAX, &r->reason, err)) < 0)
        return pd_error_set(err, PD_EINVAL, 0, "reason", "reason: required to %s a pattern",
                            action);
    return PD_OK;
}

/* The number member `name` of o (an integer when integer), required. */
static int number_member(json_t *o, const char *name, bool integer, double *out, pd_error_t *err)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL || json_is_null(v))
        return pd_error_set(err, PD_EINVAL, 0, name, "%s: required", name);
    if (integer ? !json_is_integer(v) : !json_is_number(v))
        return pd_error_set(err, PD_EINVAL, 0, name, "%s: expected %s", name,
                            integer ? "an integer" : "a number");
    *out = json_number_value(v);
    return PD_OK;
}

static int thresholds_body(pd__api_request_t *rq, json_t *o, pd_error_t *err)
{
    double n, conf, savings;
    int rc;
    if ((rc = number_member(o, "min_occurrences", true, &n, err)) < 0 ||
        (rc = number_member(o, "min_confidence", false, &conf, err)) < 0 ||
        (rc = number_member(o, "min_savings", false, &savings, err)) < 0)
        return rc;
    json_int_t exact = json_integer_value(json_object_get(o, "min_occurrences"));
    rq->thresholds = (pd_review_thresholds_t){
        .min_occurrences = (int64_t)exact, .min_confidence = conf, .min_savings = savings};
    return pd_review_thresholds_check(&rq->thresholds, PD_REVIEW_SET_ALL, err);
}

int pd__api_parse_body(pd__api_request_t *rq, const char *body, size_t len, pd_error_t *err)
{
    json_error_t jerr;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL)
        return pd_error_set(err, PD_EINVAL, 0, "", "the body is not JSON: %s (at byte %d)",
                            jerr.text, jerr.position);
    rq->body = o;
    if (!json_is_object(o))
        return pd_error_set(err, PD_EINVAL, 0, "", "the body must be a JSON object");
    return rq->op == PD__API_REVIEW ? review_body(rq, o, err) : thresholds_body(rq, o, err);
}

/* --- answers (reader thread) ------------------------------------------------------------ */

/* Renders doc (stolen) as the answer with status; PD_ENOMEM. */
static int render(json_t *doc, int status, int *out_status, char **body, size_t *len,
                  pd_error_t *err)
{
    char *text = pd_json_dumps(doc, 0);
    json_decref(doc);
    char *line = text != NULL ? realloc(text, strlen(text) + 2) : NULL;
    if (line == NULL) {
        free(text);
        return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    }
    *len = strlen(line);
    line[(*len)++] = '\n';
    line[*len] = '\0';
    *body = line;
    *out_status = status;
    return PD_OK;
}

/* {"error": message, "field": field} (field left out when ""). New reference. */
static json_t *error_doc(const char *message, const char *field)
{
    json_t *doc = json_pack("{s:o}", "error", pd_json_text(message, strlen(message)));
    if (doc != NULL && field != NULL && field[0] != '\0')
        json_object_set_new(doc, "field", json_string(field));
    return doc;
}

static json_t *not_found(int64_t id)
{
    char message[96];
    snprintf(message, sizeof(message), "this tenant has no pattern %lld", (long long)id);
    return error_doc(message, "");
}

static int answer_review(pd_db_t *db, const pd__api_request_t *rq, json_t **doc, int *status,
                         pd_error_t *err)
{
    pd_review_result_t result;
    char now[PD_REVIEW_STATUS_MAX];
    int rc = pd_review_apply(db, rq->tenant, &rq->review, &result, now, doc, err);
    if (rc < 0)
        return rc;
    char message[160];
    const char *action = pd_review_actions[rq->review.action];
    switch (result) {
    case PD_REVIEW_OK:
        *status = 200;
        return PD_OK;
    case PD_REVIEW_NOT_FOUND:
        *status = 404;
        *doc = not_found(rq->id);
        return PD_OK;
    case PD_REVIEW_REASON_REQUIRED:
        *status = 400;
        snprintf(message, sizeof(message), "reason: required to %s a pattern", action);
        *doc = error_doc(message, "reason");
        return PD_OK;
    case PD_REVIEW_CONFLICT:
        break;
    }
    if (strcmp(now, rq->review.expected) != 0)
        snprintf(message, sizeof(message),
                 "the pattern is %s, not %s: it changed since it was read", now,
                 rq->review.expected);
    else
        snprintf(message, sizeof(message), "a pattern that is %s cannot be %s", now,
                 rq->review.action == PD_REVIEW_APPROVE     ? "approved"
                 : rq->review.action == PD_REVIEW_REJECT    ? "rejected"
                 : rq->review.action == PD_REVIEW_IMPLEMENT ? "implemented"
                 : rq->review.action == PD_REVIEW_DEPRECATE ? "deprecated"
                                                            : "reopened");
    *status = 409;
    *doc = error_doc(message, "");
    if (*doc != NULL)
        json_object_set_new(*doc, "automation_status", json_string(now));
    return PD_OK;
}

static json_t *thresholds_doc(const char *tenant, const pd_review_thresholds_t *t)
{
    return json_pack("{s:s, s:I, s:f, s:f}", "tenant_id", tenant, "min_occurrences",
                     (json_int_t)t->min_occurrences, "min_confidence", t->min_confidence,
                     "min_savings", t->min_savings);
}

int pd__api_answer(pd_db_t *db, const pd__api_request_t *rq, int *status, char **body, size_t *len,
                   pd_error_t *err)
{
    json_t *doc = NULL;
    int64_t counts[6], moved = 0;
    pd_review_thresholds_t t;
    int rc = PD_OK;
    *status = 200;
    *body = NULL;
    switch (rq->op) {
    case PD__API_LIST:
        rc = pd_patterns_list_json(db, &rq->filter, &doc, err);
        if (rc == PD_EINVAL) { /* a cursor no list gave */
            *status = 400;
            doc = error_doc(err->message, err->field);
            rc = PD_OK;
        }
        break;
    case PD__API_PATTERN:
        rc = pd_patterns_detail_json(db, rq->tenant, rq->id, rq->weeks, &doc, err);
        if (rc == PD_OK && doc == NULL) {
            *status = 404;
            doc = not_found(rq->id);
        }
        break;
    case PD__API_REVIEW:
        rc = answer_review(db, rq, &doc, status, err);
        break;
    case PD__API_SUMMARY:
        if ((rc = pd_review_summary(db, rq->tenant, counts, err)) == PD_OK)
            doc = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "tenant_id", rq->tenant,
                            "detected", (json_int_t)counts[0], "candidate", (json_int_t)counts[1],
                            "approved", (json_int_t)counts[2], "rejected", (json_int_t)counts[3],
                            "implemented", (json_int_t)counts[4], "deprecated",
                            (json_int_t)counts[5]);
        break;
    case PD__API_THRESHOLDS:
        if ((rc = pd_review_thresholds_get(db, rq->tenant, &t, err)) == PD_OK)
            doc = thresholds_doc(rq->tenant, &t);
        break;
    case PD__API_SET_THRESHOLDS:
        t = rq->thresholds; /* a PUT sets all three */
        rc =
            pd_review_thresholds_set(db, rq->tenant, PD_REVIEW_SET_ALL, &t, rq->actor, &moved, err);
        if (rc == PD_OK && (doc = thresholds_doc(rq->tenant, &t)) != NULL)
            json_object_set_new(doc, "moved", json_integer((json_int_t)moved));
        break;
    case PD__API_ME: /* answered by the router, on the loop thread */
        assert(!"GET /v1/me needs no reader");
        break;
    }
    if (rc < 0)
        return rc;
    if (doc == NULL)
        return pd_error_set(err, PD_ENOMEM, 0, "", "out of memory");
    return render(doc, *status, status, body, len, err);
}
