/*
 * Admission of POST requests to the writers: how many may be in flight at
 * once (reading their body, queued or being written), in all and per
 * tenant, so that one tenant cannot take the whole write path.
 *
 * capacity = queue + writers.  A tenant may hold at most
 * max(1, floor(share x capacity)) of it: past that its requests get 429
 * (with Retry-After) while other tenants are still admitted; when the
 * whole capacity is taken every request gets 503.  And in the writers'
 * queue, a batch of a tenant with nothing else in flight goes first (see
 * src/service/ingest.c), so a quiet tenant waits for a free writer, not
 * behind a busy tenant's backlog.  Loop thread only.
 */
#ifndef PD_ADMISSION_H
#define PD_ADMISSION_H

#include <stddef.h>

#include "pd/record.h"

typedef struct pd_admission pd_admission_t;

/* share in (0, 1].  Returns 0 or PD_ENOMEM; release with pd_admission_destroy(). */
int pd_admission_create(size_t capacity, double share, pd_admission_t **out);
void pd_admission_destroy(pd_admission_t *a);

/* Admits one request of tenant: 0, or 503 (all taken) or 429 (the tenant's share taken). */
int pd_admission_enter(pd_admission_t *a, const char *tenant);

/* The request of tenant that pd_admission_enter() admitted is done. */
void pd_admission_leave(pd_admission_t *a, const char *tenant);

/* Requests of tenant in flight. */
size_t pd_admission_count(const pd_admission_t *a, const char *tenant);

/* The most requests one tenant may have in flight (for answers and logs). */
size_t pd_admission_tenant_limit(const pd_admission_t *a);

#endif
