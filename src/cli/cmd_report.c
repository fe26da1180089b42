/* `patternd report`: the automation candidates, ranked by potential monthly savings. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pd/cli.h"
#include "pd/db.h"
#include "pd/record.h"

static const char USAGE[] =
    "usage: patternd report [--db URL] [--tenant T] [--top N] [--format table|json|csv]\n"
    "\n"
    "Lists the detected patterns, most promising automation candidates first\n"
    "(by potential monthly savings): signature, occurrences, average cost with\n"
    "the LLM and with a deterministic tool, savings and confidence.\n"
    "\n"
    "  --db URL         database (default: $DATABASE_URL, else libpq's PG* variables)\n"
    "  --tenant T       only this tenant's patterns (default: every tenant)\n"
    "  --top N          at most N patterns (default: 20; 0 for all)\n"
    "  --format F       table (default), json (an array of objects) or csv\n"
    "  -h, --help       show this help\n";

static const char SQL_REPORT[] =
    "SELECT tenant_id, pattern_signature, pattern_type, occurrence_count,"
    " avg_tokens_with_llm, avg_cost_with_llm::float8, avg_tokens_with_tool,"
    " avg_cost_with_tool::float8, confidence_score, potential_monthly_savings::float8,"
    " automation_status, to_char(last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    " FROM operation_patterns"
    " WHERE $1::text IS NULL OR tenant_id = $1"
    " ORDER BY potential_monthly_savings DESC, tenant_id COLLATE \"C\","
    " pattern_signature COLLATE \"C\""
    " LIMIT $2::bigint";

enum {
    C_TENANT,
    C_SIG,
    C_TYPE,
    C_COUNT,
    C_TOK_LLM,
    C_COST_LLM,
    C_TOK_TOOL,
    C_COST_TOOL,
    C_CONF,
    C_SAVINGS,
    C_STATUS,
    C_LAST_SEEN
};

typedef enum format { F_TABLE, F_JSON, F_CSV } format_t;

static void print_table(const PGresult *res, bool all_tenants)
{
    int n = PQntuples(res);
    if (n == 0) {
        puts("no patterns yet: ingest some workflows with `patternd ingest`");
        if (all_tenants)
            puts("(or none visible: across tenants, row-level security shows rows only to a role "
                 "that bypasses it; try --tenant T)");
        return;
    }
    printf("%4s  %-16s %-28s %8s %12s %12s %14s %10s\n", "rank", "tenant", "signature", "count",
           "avg $ LLM", "avg $ tool", "savings $/mo", "confidence");
    for (int i = 0; i < n; i++) {
        printf("%4d  %-16.16s %-28.28s %8s %12.4f %12.4f %14.2f %10.0f\n", i + 1,
               PQgetvalue(res, i, C_TENANT), PQgetvalue(res, i, C_SIG), PQgetvalue(res, i, C_COUNT),
               strtod(PQgetvalue(res, i, C_COST_LLM), NULL),
               strtod(PQgetvalue(res, i, C_COST_TOOL), NULL),
               strtod(PQgetvalue(res, i, C_SAVINGS), NULL),
               strtod(PQgetvalue(res, i, C_CONF), NULL));
    }
}

static void print_csv(const PGresult *res)
{
    puts("tenant_id,pattern_signature,pattern_type,occurrence_count,avg_tokens_with_llm,"
         "avg_cost_with_llm,avg_tokens_with_tool,avg_cost_with_tool,confidence_score,"
         "potential_monthly_savings,automation_status,last_seen");
    for (int i = 0; i < PQntuples(res); i++) {
        for (int c = 0; c <= C_LAST_SEEN; c++) {
            /* Tenants and signatures hold no commas or quotes (SPEC §1, §2). */
            printf("%s%s", c ? "," : "", PQgetvalue(res, i, c));
        }
        putchar('\n');
    }
}

static int print_json(const PGresult *res)
{
    json_t *rows = json_array();
    if (rows == NULL)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:I, s:I, s:f, s:I, s:f, s:f, s:f, s:s, s:s}", "tenant_id",
            PQgetvalue(res, i, C_TENANT), "pattern_signature", PQgetvalue(res, i, C_SIG),
            "pattern_type", PQgetvalue(res, i, C_TYPE), "occurrence_count",
            (json_int_t)strtoll(PQgetvalue(res, i, C_COUNT), NULL, 10), "avg_tokens_with_llm",
            (json_int_t)strtoll(PQgetvalue(res, i, C_TOK_LLM), NULL, 10), "avg_cost_with_llm",
            strtod(PQgetvalue(res, i, C_COST_LLM), NULL), "avg_tokens_with_tool",
            (json_int_t)strtoll(PQgetvalue(res, i, C_TOK_TOOL), NULL, 10), "avg_cost_with_tool",
            strtod(PQgetvalue(res, i, C_COST_TOOL), NULL), "confidence_score",
            strtod(PQgetvalue(res, i, C_CONF), NULL), "potential_monthly_savings",
            strtod(PQgetvalue(res, i, C_SAVINGS), NULL), "automation_status",
            PQgetvalue(res, i, C_STATUS), "last_seen", PQgetvalue(res, i, C_LAST_SEEN));
        if (o == NULL || json_array_append_new(rows, o) < 0) {
            json_decref(rows);
            return -1;
        }
    }
    int rc = json_dumpf(rows, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    putchar('\n');
    json_decref(rows);
    return rc;
}

int pd_cmd_report(int argc, char **argv)
{
    static const struct option options[] = {
        {"db", required_argument, NULL, 'd'},  {"tenant", required_argument, NULL, 't'},
        {"top", required_argument, NULL, 'n'}, {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *tenant = NULL;
    long top = 20;
    format_t format = F_TABLE;
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'd':
            url = optarg;
            break;
        case 't':
            if (!pd_cli_tenant("--tenant", optarg))
                return PD_EXIT_USAGE;
            tenant = optarg;
            break;
        case 'n':
            if (!pd_cli_count("--top", optarg, 0, 1000000000, &top))
                return PD_EXIT_USAGE;
            break;
        case 'f':
            if (strcmp(optarg, "table") == 0) {
                format = F_TABLE;
            } else if (strcmp(optarg, "json") == 0) {
                format = F_JSON;
            } else if (strcmp(optarg, "csv") == 0) {
                format = F_CSV;
            } else {
                pd_cli_fail("--format: expected table, json or csv, got '%s'", optarg);
                return PD_EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(USAGE, stdout);
            return PD_EXIT_OK;
        default:
            fputs(USAGE, stderr);
            return PD_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        pd_cli_fail("report takes no arguments; got '%s'", argv[optind]);
        return PD_EXIT_USAGE;
    }

    pd_db_t *db = NULL;
    pd_error_t err;
    PGresult *res = NULL;
    char limit[32];
    snprintf(limit, sizeof(limit), "%ld", top);
    const char *params[] = {tenant, top == 0 ? NULL : limit};
    /*
     * With --tenant the query runs scoped to that tenant, so that it works for
     * any role under row-level security; across tenants it needs a role that
     * bypasses the policies (the owner with BYPASSRLS, or a superuser).
     */
    if (pd_db_connect(pd_db_conninfo(url), &db, &err) < 0 ||
        (tenant != NULL && pd_db_begin_tenant(db, tenant, &err) < 0) ||
        pd_db_query(db, SQL_REPORT, 2, params, &res, &err) < 0 ||
        (tenant != NULL && pd_db_exec(db, "COMMIT", &err) < 0)) {
        pd_cli_fail("%s", err.message);
        pd_db_result_free(res);
        pd_db_destroy(db);
        return PD_EXIT_FAIL;
    }
    int rc = 0;
    switch (format) {
    case F_TABLE:
        print_table(res, tenant == NULL);
        break;
    case F_CSV:
        print_csv(res);
        break;
    case F_JSON:
        rc = print_json(res);
        break;
    }
    pd_db_result_free(res);
    pd_db_destroy(db);
    if (rc < 0 || fflush(stdout) != 0) {
        pd_cli_fail("writing the report failed");
        return PD_EXIT_FAIL;
    }
    return PD_EXIT_OK;
}
