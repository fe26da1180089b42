/*
 * Private to src/service/: the OpenAPI 3.1 document of the HTTP API
 * (docs/openapi.json), compiled into the binary by cmake/embed.cmake and
 * served as it is at GET /v1/openapi.json.  Static storage, read only;
 * any thread.
 */
#ifndef PD_SERVICE_OPENAPI_H
#define PD_SERVICE_OPENAPI_H

#include <stddef.h>

extern const char pd__openapi_json[]; /* pd__openapi_json_len bytes, then a NUL */
extern const size_t pd__openapi_json_len;

#endif
