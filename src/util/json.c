/* jansson strings of untrusted text; see include/pd/json.h. */
#include "pd/json.h"

#include "pd/buf.h"
#include "pd/utf8.h"

json_t *pd_json_text(const char *s, size_t n)
{
    if (pd_utf8_valid(s, n))
        return json_stringn(s, n);
    pd_buf_t clean = {0};
    pd_utf8_sanitize(&clean, s, n);
    json_t *j = clean.failed ? NULL : json_stringn(clean.data ? clean.data : "", clean.len);
    pd_buf_close(&clean);
    return j;
}
