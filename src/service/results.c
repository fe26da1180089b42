/* The results of a POST /v1/workflows body and its answer; see results.h.  Loop thread. */
#include "results.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/error.h"
#include "pd/json.h"

static json_t *text(const char *s)
{
    return pd_json_text(s, strlen(s));
}

pd__result_t *pd__results_add(pd__results_t *rs, long line)
{
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 64;
        pd__result_t *grown = realloc(rs->items, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        rs->items = grown;
        rs->cap = cap;
    }
    pd__result_t *r = &rs->items[rs->n++];
    *r = (pd__result_t){.line = line, .record = -1};
    return r;
}

int pd__results_reject(pd__results_t *rs, pd__result_t *r, const pd_record_t *rec,
                       const char *field, const char *message)
{
    if (rs->rejected++ >= PD__RESULTS_DETAILED)
        return PD_OK;
    snprintf(r->field, sizeof(r->field), "%s", field);
    r->error = strdup(message);
    if (r->error == NULL)
        return PD_ENOMEM;
    if (rec != NULL && rec->workflow_id[0] != '\0') {
        if ((r->workflow_id = strdup(rec->workflow_id)) == NULL)
            return PD_ENOMEM;
        r->workflow_id_is_int = rec->workflow_id_is_int;
    }
    return PD_OK;
}

void pd__results_close(pd__results_t *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->items[i].error);
        free(rs->items[i].workflow_id);
    }
    free(rs->items);
    *rs = (pd__results_t){0};
}

/* A workflow id as the input gave it, an integer or a string; JSON null for NULL. */
static json_t *workflow_id(const char *id, bool is_int)
{
    if (id == NULL)
        return json_null();
    if (is_int)
        return json_integer((json_int_t)strtoll(id, NULL, 10));
    return json_string(id);
}

/* One record's entry of "results". New reference. */
static json_t *result_json(const pd__results_t *rs, const pd_batch_t *batch, size_t i)
{
    const pd__result_t *r = &rs->items[i];
    json_t *o = json_pack("{s:I}", "index", (json_int_t)i);
    if (o == NULL)
        return NULL;
    if (r->line > 0)
        json_object_set_new(o, "line", json_integer(r->line));
    if (r->record < 0) {
        json_object_set_new(o, "workflow_id", workflow_id(r->workflow_id, r->workflow_id_is_int));
        json_object_set_new(o, "status", json_string("rejected"));
        if (r->error == NULL)
            return o; /* past PD__RESULTS_DETAILED: counted, not spelled out */
        if (r->field[0] != '\0')
            json_object_set_new(o, "field", text(r->field));
        json_object_set_new(o, "error", text(r->error));
        return o;
    }
    const pd_record_t *rec = &batch->records[r->record];
    json_object_set_new(o, "workflow_id", workflow_id(rec->workflow_id, rec->workflow_id_is_int));
    pd_outcome_t outcome = batch->outcomes[r->record];
    json_object_set_new(o, "status", json_string(pd_outcome_name(outcome)));
    if (outcome == PD_OUTCOME_CONFLICT) {
        json_object_set_new(o, "field", json_string("updated_at"));
        json_object_set_new(o, "error", json_string(PD_CONFLICT_MESSAGE));
    } else if (outcome == PD_OUTCOME_ERROR || outcome == PD_OUTCOME_PENDING) {
        json_object_set_new(o, "status", json_string("error"));
        json_object_set_new(o, "error",
                            text(batch->err.message[0] ? batch->err.message : "not committed"));
    }
    return o;
}

json_t *pd__results_json(const pd__results_t *rs, const pd_batch_t *batch, const pd_tally_t *t)
{
    json_t *results = json_array();
    for (size_t i = 0; results != NULL && i < rs->n; i++) {
        if (json_array_append_new(results, result_json(rs, batch, i)) < 0) {
            json_decref(results);
            results = NULL;
        }
    }
    if (results == NULL)
        return NULL;
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "total_workflows",
                     (json_int_t)rs->n, "processed", (json_int_t)t->processed, "duplicates",
                     (json_int_t)t->duplicates, "revised", (json_int_t)t->revised, "stale",
                     (json_int_t)t->stale, "conflicts", (json_int_t)t->conflicts, "rejected",
                     (json_int_t)t->rejected, "total_patterns", (json_int_t)t->total_patterns,
                     "new_patterns", (json_int_t)t->new_patterns, "errors", (json_int_t)t->errors,
                     "results", results);
}
