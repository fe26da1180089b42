/*
 * Private to src/service/: what became of each record of one POST
 * /v1/workflows body, in body order, and the answer that reports it (the
 * docs/spec.md §4 summary plus "results").
 *
 * A rejection keeps its field and reason for the first
 * PD__RESULTS_DETAILED rejections of a request and is only counted past
 * them, so an answer stays under about 2 MB whatever the body.  Loop thread.
 */
#ifndef PD_SERVICE_RESULTS_H
#define PD_SERVICE_RESULTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "pd/batch.h"
#include "pd/record.h"

#define PD__RESULTS_DETAILED 1000

typedef struct pd__result {
    long line;   /* NDJSON line; 0 in a JSON array */
    long record; /* index in the batch, or -1 when rejected */
    char field[PD_FIELD_MAX];
    char *error; /* why it was rejected (malloc'd); NULL past PD__RESULTS_DETAILED */
    /* A rejected record's id when it parsed (malloc'd); NULL otherwise or past the detailed. */
    char *workflow_id;
    bool workflow_id_is_int;
} pd__result_t;

typedef struct pd__results {
    pd__result_t *items;
    size_t n, cap;
    long rejected;
} pd__results_t;

/*
 * The result of the next record, found at NDJSON line `line` (0 in an
 * array), rejected until its record is set; NULL when out of memory.
 * Valid until the next call.
 */
pd__result_t *pd__results_add(pd__results_t *rs, long line);

/*
 * Rejects r for field (may be "") and message; rec, when not NULL, is the
 * record as far as it parsed (pd_record_parse() keeps a valid id on a
 * rejection), whose workflow_id, when set, the answer then names.
 * 0 or PD_ENOMEM.
 */
int pd__results_reject(pd__results_t *rs, pd__result_t *r, const pd_record_t *rec,
                       const char *field, const char *message);

/*
 * The answer's document: the summary of tally t and one entry per record,
 * their outcomes read from batch.  A new reference, or NULL when out of
 * memory.
 */
json_t *pd__results_json(const pd__results_t *rs, const pd_batch_t *batch, const pd_tally_t *t);

/* Releases the results; the struct may be reused empty. */
void pd__results_close(pd__results_t *rs);

#endif
