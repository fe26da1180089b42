/*
 * patternd's JSON documents with jansson: strings of text that did not
 * come through record validation (error messages, file names, a rejected
 * line), so that none can be refused for bytes that are not UTF-8; and
 * the one way documents are written out, with every real number as the
 * shortest decimal that reads back as the same double (0.1, not jansson's
 * 0.10000000000000001).  Any thread.
 */
#ifndef PD_JSON_H
#define PD_JSON_H

#include <jansson.h>
#include <stddef.h>

/*
 * The n bytes at s as a JSON string, each byte that is not UTF-8 replaced
 * by U+FFFD.  Returns a new reference (json_decref), or NULL when out of
 * memory.
 */
json_t *pd_json_text(const char *s, size_t n);

/* Room for the text of any double written by pd_json_number(). */
#define PD_JSON_NUMBER_MAX 64

/*
 * d (finite) as JSON: the fewest significant digits that read back as d,
 * written as Python's repr() writes a float (fixed from 1e-4 to below
 * 1e16, else with an exponent), always with a '.' or an exponent so that a
 * reader sees a real: "70.0", "0.1", "1e-05", "1.7976931348623157e+308".
 * Pure.
 */
void pd_json_number(double d, char out[PD_JSON_NUMBER_MAX]);

/*
 * doc as JSON text, NUL-terminated, as json_dumps() writes it (", " and
 * ": " separators, or JSON_INDENT(n) among flags for one member per line,
 * object members in insertion order, UTF-8 as is) but with reals written
 * by pd_json_number().  Other jansson flags are ignored.  Returns a new
 * string, released with free(), or NULL when out of memory (or doc is
 * NULL).
 */
char *pd_json_dumps(const json_t *doc, size_t flags);

#endif
