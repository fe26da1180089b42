/*
 * Admission of POST requests; see include/pd/admission.h.
 *
 * Loop thread.  At most `capacity` requests are in flight, so at most that
 * many tenants: the per-tenant counts live in an array of that size,
 * searched linearly (capacity is the writers plus their queue, tens).
 */
#include "pd/admission.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/error.h"

typedef struct slot {
    char tenant[PD_TENANT_MAX + 1];
    size_t n; /* 0: free */
} slot_t;

struct pd_admission {
    size_t capacity, per_tenant, in_flight;
    slot_t *slots; /* capacity of them */
};

int pd_admission_create(size_t capacity, double share, pd_admission_t **out)
{
    pd_admission_t *a = calloc(1, sizeof(*a));
    if (a == NULL || (a->slots = calloc(capacity ? capacity : 1, sizeof(slot_t))) == NULL) {
        free(a);
        return PD_ENOMEM;
    }
    a->capacity = capacity;
    a->per_tenant = (size_t)floor(share * (double)capacity);
    if (a->per_tenant < 1)
        a->per_tenant = 1;
    *out = a;
    return PD_OK;
}

void pd_admission_destroy(pd_admission_t *a)
{
    if (a == NULL)
        return;
    free(a->slots);
    free(a);
}

static slot_t *find(const pd_admission_t *a, const char *tenant)
{
    for (size_t i = 0; i < a->capacity; i++) {
        if (a->slots[i].n > 0 && strcmp(a->slots[i].tenant, tenant) == 0)
            return (slot_t *)&a->slots[i];
    }
    return NULL;
}

int pd_admission_enter(pd_admission_t *a, const char *tenant)
{
    if (a->in_flight >= a->capacity)
        return 503;
    slot_t *s = find(a, tenant);
    if (s != NULL && s->n >= a->per_tenant)
        return 429;
    for (size_t i = 0; s == NULL && i < a->capacity; i++) {
        if (a->slots[i].n == 0) {
            s = &a->slots[i];
            snprintf(s->tenant, sizeof(s->tenant), "%s", tenant);
        }
    }
    s->n++; /* a free slot exists: fewer than capacity are in flight */
    a->in_flight++;
    return 0;
}

void pd_admission_leave(pd_admission_t *a, const char *tenant)
{
    slot_t *s = find(a, tenant);
    if (s == NULL)
        return;
    s->n--;
    a->in_flight--;
}

size_t pd_admission_count(const pd_admission_t *a, const char *tenant)
{
    const slot_t *s = find(a, tenant);
    return s != NULL ? s->n : 0;
}

size_t pd_admission_tenant_limit(const pd_admission_t *a)
{
    return a->per_tenant;
}
