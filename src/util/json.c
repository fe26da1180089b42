/*
 * jansson strings of untrusted text, and documents written with the
 * shortest reals; see include/pd/json.h.
 *
 * jansson prints a real with "%.17g", which turns 0.1 into
 * 0.10000000000000001: true to the double, but not what anyone wrote.  So
 * documents are written here, walking the tree: objects, arrays, strings
 * and integers as jansson would, reals with the fewest digits that read
 * back exactly (tried from 1 to 17 significant digits).  Any thread.
 */
#include "pd/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void pd_json_number(double d, char out[PD_JSON_NUMBER_MAX])
{
    static const char zeros[] = "0000";
    char sci[40], digits[20];
    if (!isfinite(d)) { /* jansson holds no such real; never written as invalid JSON */
        snprintf(out, PD_JSON_NUMBER_MAX, "0.0");
        return;
    }
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(sci, sizeof(sci), "%.*e", precision - 1, d);
        if (strtod(sci, NULL) == d)
            break;
    }
    /* sci is [-]d[.ddd]e[+-]XX: its digits without trailing zeros, and the exponent. */
    const char *e = strchr(sci, 'e');
    int n = 0;
    for (const char *p = sci; p < e; p++) {
        if (*p >= '0' && *p <= '9')
            digits[n++] = *p;
    }
    while (n > 1 && digits[n - 1] == '0')
        n--;
    digits[n] = '\0';
    int exp = atoi(e + 1);
    const char *sign = d < 0 ? "-" : "";
    /* As Python's repr() writes a float: fixed from 1e-4 to below 1e16, else with an exponent. */
    if (exp < -4 || exp >= 16)
        snprintf(out, PD_JSON_NUMBER_MAX, "%s%c%s%se%c%02d", sign, digits[0], n > 1 ? "." : "",
                 digits + 1, exp < 0 ? '-' : '+', abs(exp));
    else if (exp < 0)
        snprintf(out, PD_JSON_NUMBER_MAX, "%s0.%.*s%s", sign, -exp - 1, zeros, digits);
    else if (n <= exp + 1)
        snprintf(out, PD_JSON_NUMBER_MAX, "%s%s%.*s.0", sign, digits, exp + 1 - n,
                 "0000000000000000");
    else
        snprintf(out, PD_JSON_NUMBER_MAX, "%s%.*s.%s", sign, exp + 1, digits, digits + exp + 1);
}

static void newline(pd_buf_t *b, size_t indent, int depth)
{
    pd_buf_put(b, "\n", 1);
    for (size_t i = 0; i < indent * (size_t)depth; i++)
        pd_buf_put(b, " ", 1);
}

static void dump(pd_buf_t *b, const json_t *v, size_t indent, int depth)
{
    char num[PD_JSON_NUMBER_MAX];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *member;
        int first = 1;
        pd_buf_put(b, "{", 1);
        json_object_foreach((json_t *)v, key, member)
        {
            if (!first)
                pd_buf_put(b, ",", 1);
            if (indent > 0)
                newline(b, indent, depth + 1);
            else if (!first)
                pd_buf_put(b, " ", 1);
            first = 0;
            pd_buf_json_string(b, key, strlen(key));
            PD_BUF_LIT(b, ": ");
            dump(b, member, indent, depth + 1);
        }
        if (!first && indent > 0)
            newline(b, indent, depth);
        pd_buf_put(b, "}", 1);
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        pd_buf_put(b, "[", 1);
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                pd_buf_put(b, ",", 1);
            if (indent > 0)
                newline(b, indent, depth + 1);
            else if (i > 0)
                pd_buf_put(b, " ", 1);
            dump(b, json_array_get(v, i), indent, depth + 1);
        }
        if (n > 0 && indent > 0)
            newline(b, indent, depth);
        pd_buf_put(b, "]", 1);
        break;
    }
    case JSON_STRING:
        pd_buf_json_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        pd_buf_int(b, (int64_t)json_integer_value(v));
        break;
    case JSON_REAL:
        pd_json_number(json_real_value(v), num);
        pd_buf_puts(b, num);
        break;
    case JSON_TRUE:
        PD_BUF_LIT(b, "true");
        break;
    case JSON_FALSE:
        PD_BUF_LIT(b, "false");
        break;
    case JSON_NULL:
        PD_BUF_LIT(b, "null");
        break;
    }
}

char *pd_json_dumps(const json_t *doc, size_t flags)
{
    if (doc == NULL)
        return NULL;
    pd_buf_t b = {0};
    dump(&b, doc, flags & JSON_MAX_INDENT, 0);
    pd_buf_put(&b, "", 1);
    if (b.failed) {
        pd_buf_close(&b);
        return NULL;
    }
    return b.data; /* the buffer's memory, NUL-terminated: the caller frees it */
}
