/*
 * Private to src/service/: POST /v1/workflows once its key is verified.
 * The request is admitted (a place in the write path, within its tenant's
 * share), its body read and parsed as it arrives into one batch of the
 * key's tenant, the batch written by the writers, and the request answered
 * after the commit.  Loop thread.
 */
#ifndef PD_SERVICE_INGEST_H
#define PD_SERVICE_INGEST_H

#include <stddef.h>

#include "call.h"
#include "pd/admission.h"
#include "pd/metrics.h"
#include "pd/pool.h"

/* The endpoint: what it writes through (borrowed) and its limits. */
typedef struct pd__ingest {
    pd_pool_t *writers;        /* whose done callback is pd__ingest_on_batch_done */
    pd_admission_t *admission; /* requests in the write path, in all and per tenant */
    pd_metrics_t *metrics;     /* records and commits are counted here */
    size_t max_record;         /* longest record accepted */
    size_t max_records;        /* records in one request */
    size_t max_body;           /* bytes of one body, after decompression */
} pd__ingest_t;

/* The key of call (call->key) is valid: takes the request on, and answers it in the end. */
void pd__ingest_start(const pd__ingest_t *ingest, pd__call_t *call);

/* The writers' pd_pool_config_t done callback: answers the request whose batch finished. */
void pd__ingest_on_batch_done(void *ctx, pd_job_t *job);

#endif
