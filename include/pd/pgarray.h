/*
 * One-dimensional PostgreSQL arrays built as statement parameters.
 *
 * The store sends a batch as a handful of array parameters, one element per
 * record (src/db/store.c).  An array of text, bigint or integer elements is
 * built in PostgreSQL's binary format (the one array_recv reads), so the
 * server copies each element instead of scanning, unquoting and parsing
 * text; other element types (numeric) are built as an array literal, e.g.
 * {1.5,NULL}, sent as text.
 *
 * Like pd_buf, an array remembers a failed allocation: pd_pgarray_end()
 * reports it once the array is complete.
 */
#ifndef PD_PGARRAY_H
#define PD_PGARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pd/buf.h"

/* Element types: the binary ones by their PostgreSQL type OID. */
typedef enum pd_pgarray_kind {
    PD_PGARRAY_LITERAL = 0, /* a text literal; elements written as their text */
    PD_PGARRAY_BOOL = 16,   /* boolean */
    PD_PGARRAY_INT8 = 20,   /* bigint */
    PD_PGARRAY_INT4 = 23,   /* integer */
    PD_PGARRAY_TEXT = 25    /* text */
} pd_pgarray_kind_t;

/* Zero-initialise, then pd_pgarray_begin() for each new array; release with pd_pgarray_close(). */
typedef struct pd_pgarray {
    pd_buf_t buf;
    pd_pgarray_kind_t kind;
    uint32_t n; /* elements so far */
    bool has_null;
} pd_pgarray_t;

/* Starts an empty array of the given kind (keeping the memory of the last). */
void pd_pgarray_begin(pd_pgarray_t *a, pd_pgarray_kind_t kind);

/* Appends an element: len bytes of text (TEXT or LITERAL arrays). */
void pd_pgarray_text(pd_pgarray_t *a, const char *s, size_t len);

/* Appends an element: an integer (INT8, INT4 within its range, or LITERAL arrays). */
void pd_pgarray_int(pd_pgarray_t *a, int64_t v);

/* Appends an element: a boolean (BOOL or LITERAL arrays). */
void pd_pgarray_bool(pd_pgarray_t *a, bool v);

/* Appends an element: the shortest decimal text that reads back as d (LITERAL arrays). */
void pd_pgarray_double(pd_pgarray_t *a, double d);

/*
 * Writes into buf (at least PD_SHORTEST_MAX bytes) the shortest decimal
 * text that reads back as d, as pd_pgarray_double() appends it.
 */
#define PD_SHORTEST_MAX 40
void pd_shortest_decimal(double d, char *buf);

/* Appends a NULL element. */
void pd_pgarray_null(pd_pgarray_t *a);

/*
 * Completes the array.  Returns PD_OK, or PD_ENOMEM when an allocation
 * failed along the way.  Then pass pd_pgarray_value(), pd_pgarray_length()
 * and pd_pgarray_format() as the parameter's value, length and format.
 */
int pd_pgarray_end(pd_pgarray_t *a);
const char *pd_pgarray_value(const pd_pgarray_t *a);
int pd_pgarray_length(const pd_pgarray_t *a);
int pd_pgarray_format(const pd_pgarray_t *a); /* 1: binary, 0: text */

void pd_pgarray_close(pd_pgarray_t *a);

#endif
