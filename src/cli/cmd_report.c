/*
 * `patternd report`: the automation candidates, ranked by potential monthly
 * savings, read through db/patterns.c and printed as a table (its columns
 * as wide as their widest value), JSON (reals as their shortest decimals,
 * pd_json_dumps) or CSV.  One thread, one connection (and the preflight's,
 * which turns a database without the schema into "run patternd migrate").
 */
#include <errno.h>
#include <stddef.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/cli.h"
#include "pd/db.h"
#include "pd/json.h"
#include "pd/options.h"
#include "pd/patterns.h"
#include "pd/record.h"

typedef enum format { F_TABLE, F_JSON, F_CSV } format_t;

/* Times print to the second: "2024-05-01T12:00:00Z". */
static void to_seconds(const char *iso, char out[32])
{
    size_t n = strcspn(iso, ".Z");
    snprintf(out, 32, "%.*sZ", (int)(n < 30 ? n : 30), iso);
}

#define FLOAT8_TEXT 48 /* room for the longest float8 text, as the compiler reckons it */

/*
 * The significant digits of a number printed by "%e" (a sign, d.ddd, 'e',
 * the exponent), without trailing zeros, into digits (cap bytes); returns
 * the decimal exponent.
 */
static int decimal_digits(const char *sci, char *digits, size_t cap)
{
    const char *e = strchr(sci, 'e');
    size_t n = 0;
    for (const char *p = sci; p < e && n + 1 < cap; p++)
        if (*p >= '0' && *p <= '9')
            digits[n++] = *p;
    while (n > 1 && digits[n - 1] == '0')
        n--;
    digits[n] = '\0';
    return atoi(e + 1);
}

/*
 * Is the decimal sci exactly halfway between d and a neighbouring double?
 * Such a decimal reads back as d when d is even, but PostgreSQL's shortest
 * digits (Ryu) never take it.  Below 2^52 a midpoint has more than 17
 * significant digits, so only larger numbers are checked; there the
 * midpoint is exact in a long double, and "%.330Le" prints it exactly.
 */
static bool is_midpoint(const char *sci, double d)
{
    if (fabs(d) < 0x1p52)
        return false;
    char digits[20], mid_digits[400], exact[400];
    int exp = decimal_digits(sci, digits, sizeof(digits));
    for (int dir = -1; dir <= 1; dir += 2) {
        long double mid = ((long double)d + nextafter(d, dir * INFINITY)) / 2;
        if (isinf(mid))
            continue;
        snprintf(exact, sizeof(exact), "%.330Le", mid);
        int mid_exp = decimal_digits(exact, mid_digits, sizeof(mid_digits));
        if (mid_exp == exp && strcmp(mid_digits, digits) == 0)
            return true;
    }
    return false;
}

/*
 * d as PostgreSQL prints a float8 (extra_float_digits 1, the default since
 * PostgreSQL 12), so that the CSV reads as the database's own text: the
 * shortest digits that read back as d, in fixed notation when the decimal
 * exponent is in [-4, 15), else as in 1.5e+20.
 */
static void float8_text(double d, char out[FLOAT8_TEXT])
{
    static const char zeros[] = "000000000000000";
    if (isnan(d) || isinf(d)) {
        snprintf(out, FLOAT8_TEXT, "%s", isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity");
        return;
    }
    char sci[40], digits[20];
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(sci, sizeof(sci), "%.*e", precision - 1, d);
        if (strtod(sci, NULL) == d && !is_midpoint(sci, d))
            break;
    }
    int exp = decimal_digits(sci, digits, sizeof(digits)), n = (int)strlen(digits);
    const char *sign = signbit(d) ? "-" : "";
    if (exp < -4 || exp >= 15)
        snprintf(out, FLOAT8_TEXT, "%s%c%s%se%c%02d", sign, digits[0], n > 1 ? "." : "", digits + 1,
                 exp < 0 ? '-' : '+', abs(exp));
    else if (exp < 0)
        snprintf(out, FLOAT8_TEXT, "%s0.%.*s%s", sign, -exp - 1, zeros, digits);
    else if (n <= exp + 1)
        snprintf(out, FLOAT8_TEXT, "%s%s%.*s", sign, digits, exp + 1 - n, zeros);
    else
        snprintf(out, FLOAT8_TEXT, "%s%.*s.%s", sign, exp + 1, digits, digits + exp + 1);
}

/*
 * A money column of the table, width characters: fixed with decimals, or
 * in exponent form past 10^11, so that a huge stored value (see
 * db/patterns.c) keeps the table readable instead of printing 309 digits.
 */
static void money_text(double v, int width, int decimals, char out[FLOAT8_TEXT])
{
    if (fabs(v) < 1e11)
        snprintf(out, FLOAT8_TEXT, "%*.*f", width, decimals, v);
    else
        snprintf(out, FLOAT8_TEXT, "%*.*e", width, width > 12 ? 6 : 4, v);
}

/* The widest of the header and each row's text of a column. */
static int column_width(const char *header, const pd_pattern_t *rows, size_t n, bool tenant)
{
    size_t width = strlen(header);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(tenant ? rows[i].tenant_id : rows[i].pattern_signature);
        if (len > width)
            width = len;
    }
    return (int)width;
}

static void print_table(const pd_pattern_t *rows, size_t n, bool all_tenants)
{
    if (n == 0) {
        puts("no patterns yet: ingest some workflows with `patternd ingest`");
        if (all_tenants)
            puts("(or none visible: across tenants, row-level security shows rows only to a role "
                 "that bypasses it; try --tenant T)");
        return;
    }
    int tw = column_width("tenant", rows, n, true), sw = column_width("signature", rows, n, false);
    printf("%4s  %-*s  %-*s  %-11s %8s %12s %12s %14s %10s\n", "rank", tw, "tenant", sw,
           "signature", "status", "count", "avg $ LLM", "avg $ tool", "savings $/mo", "confidence");
    for (size_t i = 0; i < n; i++) {
        const pd_pattern_t *p = &rows[i];
        char llm[FLOAT8_TEXT], tool[FLOAT8_TEXT], savings[FLOAT8_TEXT];
        money_text(p->avg_cost_with_llm, 12, 4, llm);
        money_text(p->avg_cost_with_tool, 12, 4, tool);
        money_text(p->potential_monthly_savings, 14, 2, savings);
        printf("%4zu  %-*s  %-*s  %-11s %8lld %s %s %s %10.0f\n", i + 1, tw, p->tenant_id, sw,
               p->pattern_signature, p->automation_status, (long long)p->occurrence_count, llm,
               tool, savings, p->confidence_score);
    }
}

static void print_csv(const pd_pattern_t *rows, size_t n)
{
    puts("tenant_id,pattern_signature,pattern_type,occurrence_count,avg_tokens_with_llm,"
         "avg_cost_with_llm,avg_tokens_with_tool,avg_cost_with_tool,confidence_score,"
         "potential_monthly_savings,automation_status,last_seen");
    for (size_t i = 0; i < n; i++) {
        const pd_pattern_t *p = &rows[i];
        char cost_llm[FLOAT8_TEXT], cost_tool[FLOAT8_TEXT], conf[FLOAT8_TEXT], savings[FLOAT8_TEXT];
        char last_seen[32];
        float8_text(p->avg_cost_with_llm, cost_llm);
        float8_text(p->avg_cost_with_tool, cost_tool);
        float8_text(p->confidence_score, conf);
        float8_text(p->potential_monthly_savings, savings);
        to_seconds(p->last_seen, last_seen);
        /* Tenants and signatures hold no commas or quotes (docs/spec.md §1, §2). */
        printf("%s,%s,%s,%lld,%lld,%s,%lld,%s,%s,%s,%s,%s\n", p->tenant_id, p->pattern_signature,
               p->pattern_type, (long long)p->occurrence_count, (long long)p->avg_tokens_with_llm,
               cost_llm, (long long)p->avg_tokens_with_tool, cost_tool, conf, savings,
               p->automation_status, last_seen);
    }
}

static int print_json(const pd_pattern_t *rows, size_t n)
{
    json_t *list = json_array();
    if (list == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const pd_pattern_t *p = &rows[i];
        char last_seen[32];
        to_seconds(p->last_seen, last_seen);
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:I, s:I, s:f, s:I, s:f, s:f, s:f, s:s, s:s}", "tenant_id",
            p->tenant_id, "pattern_signature", p->pattern_signature, "pattern_type",
            p->pattern_type, "occurrence_count", (json_int_t)p->occurrence_count,
            "avg_tokens_with_llm", (json_int_t)p->avg_tokens_with_llm, "avg_cost_with_llm",
            p->avg_cost_with_llm, "avg_tokens_with_tool", (json_int_t)p->avg_tokens_with_tool,
            "avg_cost_with_tool", p->avg_cost_with_tool, "confidence_score", p->confidence_score,
            "potential_monthly_savings", p->potential_monthly_savings, "automation_status",
            p->automation_status, "last_seen", last_seen);
        if (o == NULL || json_array_append_new(list, o) < 0) {
            json_decref(list);
            return -1;
        }
    }
    char *text = pd_json_dumps(list, JSON_INDENT(2));
    json_decref(list);
    if (text == NULL)
        return -1;
    int rc = fputs(text, stdout) < 0 || putchar('\n') == EOF ? -1 : 0;
    free(text);
    return rc;
}

static bool parse_format(const pd_option_t *opt, const char *arg, void *dst)
{
    format_t *out = dst;
    (void)opt;
    static const char *const names[] = {[F_TABLE] = "table", [F_JSON] = "json", [F_CSV] = "csv"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(arg, names[i]) == 0) {
            *out = (format_t)i;
            return true;
        }
    }
    pd_cli_fail("--format: expected table, json or csv, got '%s'", arg);
    return false;
}

/* Prints the rows to standard output; returns the exit code. */
static int print_report(const pd_pattern_t *rows, size_t n, format_t format, bool all_tenants)
{
    int rc = 0;
    switch (format) {
    case F_TABLE:
        print_table(rows, n, all_tenants);
        break;
    case F_CSV:
        print_csv(rows, n);
        break;
    case F_JSON:
        rc = print_json(rows, n);
        break;
    }
    if (rc < 0 || fflush(stdout) != 0) {
        pd_cli_fail("writing the report failed");
        return PD_EXIT_FAIL;
    }
    return PD_EXIT_OK;
}

typedef struct report_options {
    const char *db, *tenant, *status;
    long top;
    format_t format;
} report_options_t;

static const pd_option_t OPTIONS[] = {
    PD_OPTION_DB(report_options_t, db),
    {"tenant", "T", pd_opt_tenant, offsetof(report_options_t, tenant), NULL,
     "only this tenant's patterns (default: every tenant)", 0, 0},
    {"status", "S", pd_opt_status, offsetof(report_options_t, status), NULL,
     "only patterns whose automation_status is S (docs/spec.md §5)", 0, 0},
    {"top", "N", pd_opt_long, offsetof(report_options_t, top), "20",
     "at most N patterns; 0 for all", 0, 1000000000},
    {"format", "F", parse_format, offsetof(report_options_t, format), "table",
     "table, json (an array of objects) or csv", 0, 0},
    PD_OPTION_END,
};

static const pd_command_t COMMAND = {
    "patternd report [--db URL] [--tenant T] [--status S] [--top N] [--format table|json|csv]",
    "Lists the detected patterns, most promising automation candidates first\n"
    "(by potential monthly savings): signature, status, occurrences, average cost\n"
    "with the LLM and with a deterministic tool, savings and confidence.  Patterns\n"
    "left without occurrences by revisions are not listed.\n"
    "\n"
    "A workflow counts in every pattern its signatures name, so savings summed\n"
    "across patterns count a workflow with several signatures once per signature:\n"
    "each pattern's savings stand on their own, their sum overstates the total.\n",
    OPTIONS,
    0,
};

int pd_cmd_report(int argc, char **argv)
{
    report_options_t opt = {0};
    int first;
    int status = pd_options_parse(&COMMAND, argc, argv, &opt, &first);
    if (status != PD_OPTIONS_RUN)
        return status;
    const char *tenant = opt.tenant;

    pd_db_t *db = NULL;
    pd_error_t err;
    pd_pattern_t *rows = NULL;
    size_t n = 0;
    /*
     * With --tenant the read is scoped to that tenant, so that it works for
     * any role under row-level security; across tenants it needs a role that
     * bypasses the policies (the owner with BYPASSRLS, or a superuser).
     */
    const char *conninfo = pd_db_conninfo(opt.db);
    pd_patterns_filter_t filter = {.tenant = tenant, .status = opt.status, .limit = opt.top};
    if (pd_cli_preflight(conninfo, false, false, false) < 0)
        return PD_EXIT_FAIL; /* it said why: unreachable, or run `patternd migrate` first */
    if (pd_db_connect(conninfo, &db, &err) < 0 ||
        pd_patterns_read(db, &filter, &rows, &n, NULL, &err) < 0) {
        pd_cli_fail("%s", err.message);
        pd_db_destroy(db);
        return PD_EXIT_FAIL;
    }
    pd_db_destroy(db);
    int exit_code = print_report(rows, n, opt.format, tenant == NULL);
    pd_patterns_free(rows);
    return exit_code;
}
