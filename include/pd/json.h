/*
 * jansson strings of text that did not come through record validation
 * (error messages, file names, a rejected line): every JSON document that
 * quotes such text builds its strings here, so that none can be refused
 * for bytes that are not UTF-8.  Any thread.
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

#endif
