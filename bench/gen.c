/*
 * pd_gen: a seeded generator of realistic multi-tenant workflow records,
 * streamed as NDJSON to stdout in constant memory.
 *
 *   pd_gen [--count N] [--tenants T] [--seed S] [--days D] [--versions]
 *
 * With --versions every workflow is written three times, as its source
 * table would be exported while it runs (docs/spec.md §3.4): pending (no
 * numbers yet), running (a third of its tokens and cost), then completed
 * or failed, each with a later updated_at; the 3N records are shuffled
 * within a window of a few thousand, so later versions often arrive first.
 * The same arguments always produce the same bytes.  Requests mix the
 * recurring operations patternd looks for (tests, builds, linting, git,
 * dependencies, docs) with one-off work, in English and a few other
 * languages; templates, error messages, durations, token counts and costs
 * vary the way agent workflows do.  Workflow ids are unique per seed.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const REQUESTS[] = {
    "Run the backend tests",
    "Run all tests and fix failures",
    "Run pytest for the api module",
    "Run the vitest suite for the UI",
    "Run the jest tests for the client",
    "Run mocha tests on the server",
    "Typecheck the frontend with tsc",
    "Build the frontend bundle",
    "Compile the server and fix warnings",
    "Rebuild the webpack bundle",
    "Format the code with prettier",
    "Run black on the python files",
    "Lint everything with eslint",
    "Run ruff and fix lint errors",
    "Show git status and summarise",
    "Summarise the git diff of this branch",
    "Show git log for the last week",
    "Update dependencies and run the tests",
    "npm update and check for breaking changes",
    "pip install the new requirements",
    "Update readme with the new flags",
    "Generate docs for the public API",
    "Write documentation for app/server/core/auth.py",
    "Fix the flaky test in tests/test_orders.py",
    "Refactor src/components/Table.ts to use hooks",
    "Add retry logic to the github client then commit",
    "Implement OAuth login for the dashboard",
    "Investigate the memory leak in worker.js",
    "Add pagination to the orders endpoint",
    "Migrate the settings page to the new design system",
    "Führe die Tests für das Backend aus",
    "修复 app/client/src/ 里的 vitest 测试",
    "テストを実行して app/server/テスト.py を直す",
    "Ejecuta las pruebas del módulo de pagos",
    "Corrige le build du client après la mise à jour",
    "Запусти линтер и исправь ошибки",
};
static const char *const TEMPLATES[] = {
    "adw_test_iso",  "adw_build_iso",       "adw_plan_iso",   "adw_sdlc_iso",
    "adw_patch_iso", "adw_ship_iso",        "adw_review_iso", "server_build",
    "client_test",   "adw_lightweight_iso", "adw_zte_iso",    "frontend_review",
};
static const char *const ERRORS[] = {
    "pytest failed: 3 tests failed",
    "vitest: 2 failed, 40 passed",
    "Type error: Property 'id' does not exist on type 'Order'",
    "tsc exited with code 2",
    "compilation terminated",
    "eslint found 12 problems",
    "Timeout waiting for the dev server",
    "Rate limited by the model provider, retried",
    "ModuleNotFoundError: No module named 'requests'",
    "Fehler: Verbindung abgelehnt",
};

static uint64_t rng_state;

/* splitmix64: small, fast and good enough for workload shapes. */
static uint64_t next_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double next_unit(void)
{
    return (double)(next_u64() >> 11) / 9007199254740992.0;
}

static size_t pick(size_t n)
{
    return (size_t)(next_u64() % n);
}

/* A log-normal draw around median m. */
static double lognormal(double m, double sigma)
{
    double u1 = next_unit() + 1e-12, u2 = next_unit();
    double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
    return m * exp(sigma * z);
}

static void usage(FILE *f)
{
    fputs("usage: pd_gen [--count N] [--tenants T] [--seed S] [--days D] [--versions]\n"
          "Writes N (default 10000) NDJSON workflow records for T tenants (default 8),\n"
          "with event times spread over D days (default 29), reproducibly for seed S.\n"
          "--versions: three versions of each (pending, running, final), shuffled.\n",
          f);
}

/* --versions: records wait in a window and leave it in a random order. */
#define WINDOW 3000
static char *window[WINDOW];
static size_t in_window;

static void emit(char *line)
{
    if (in_window < WINDOW) {
        window[in_window++] = line;
        return;
    }
    size_t k = pick(WINDOW);
    fputs(window[k], stdout);
    free(window[k]);
    window[k] = line;
}

static void drain(void)
{
    while (in_window > 0) {
        size_t k = pick(in_window);
        fputs(window[k], stdout);
        free(window[k]);
        window[k] = window[--in_window];
    }
}

/* An updated_at as SQLite stores it: "YYYY-MM-DD HH:MM:SS", UTC (static storage). */
static const char *version_text(long long t)
{
    static char out[32];
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, sizeof(out), "%Y-%m-%d %H:%M:%S", &tm);
    return out;
}

static void print_record(FILE *to, unsigned long long seed, long long n, int tenant,
                         const char *request, const char *tmpl, const char *error, double duration,
                         int retries, int error_count, long long tokens, double cost,
                         const char *start, const char *updated, const char *status)
{
    fprintf(to,
            "{\"workflow_id\": \"wf-%llu-%09lld\", \"tenant_id\": \"tenant-%02d\", "
            "\"nl_input\": \"%s\", \"workflow_template\": \"%s\", ",
            seed, n, tenant, request, tmpl);
    if (error)
        fprintf(to, "\"error_message\": \"%s\", ", error);
    else
        fputs("\"error_message\": null, ", to);
    fprintf(to,
            "\"duration_seconds\": %.3f, \"retry_count\": %d, \"error_count\": %d, "
            "\"total_tokens\": %lld, \"actual_cost_total\": %.6f, \"start_time\": \"%s\"",
            duration, retries, error_count, tokens, cost, start);
    if (updated != NULL)
        fprintf(to, ", \"updated_at\": \"%s\", \"status\": \"%s\"", updated, status);
    fputs("}\n", to);
}

int main(int argc, char **argv)
{
    long long count = 10000;
    int tenants = 8, days = 29;
    bool versions = false;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (v && strcmp(a, "--count") == 0) {
            count = atoll(v);
        } else if (v && strcmp(a, "--tenants") == 0) {
            tenants = atoi(v);
        } else if (v && strcmp(a, "--seed") == 0) {
            seed = strtoull(v, NULL, 10);
        } else if (v && strcmp(a, "--days") == 0) {
            days = atoi(v);
        } else if (strcmp(a, "--versions") == 0) {
            versions = true;
            continue;
        } else {
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (count < 0 || tenants < 1 || tenants > 1000 || days < 1) {
        usage(stderr);
        return 2;
    }
    rng_state = seed * 0x2545f4914f6cdd1dULL + 1;
    static char buf[1 << 16];
    setvbuf(stdout, buf, _IOFBF, sizeof(buf));

    const long long base = 1790812800; /* 2026-10-01T00:00:00Z */
    for (long long n = 0; n < count; n++) {
        int tenant = (int)pick((size_t)tenants);
        const char *request = REQUESTS[pick(sizeof(REQUESTS) / sizeof(REQUESTS[0]))];
        const char *tmpl = TEMPLATES[pick(sizeof(TEMPLATES) / sizeof(TEMPLATES[0]))];
        bool failed = next_unit() < 0.2;
        const char *error = failed ? ERRORS[pick(sizeof(ERRORS) / sizeof(ERRORS[0]))] : NULL;
        int error_count = failed ? 1 + (int)pick(4) : 0;
        int retries = failed ? (int)pick(3) : (next_unit() < 0.05 ? 1 : 0);
        double duration = fmin(lognormal(240.0, 0.9), 30000.0);
        long long tokens = (long long)lognormal(60000.0, 1.0);
        double cost = (double)tokens * (0.000015 + 0.00003 * next_unit());
        long long t = base + (long long)pick((size_t)days * 86400);
        long long h = t % 86400;
        long long d = t / 86400; /* civil_from_days */
        d += 719468;
        long long era = (d >= 0 ? d : d - 146096) / 146097;
        long long doe = d - era * 146097;
        long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        long long mp = (5 * doy + 2) / 153;
        int day = (int)(doy - (153 * mp + 2) / 5 + 1);
        int month = (int)(mp < 10 ? mp + 3 : mp - 9);
        long long year = yoe + era * 400 + (month <= 2);

        char start[48];
        snprintf(start, sizeof(start), "%04lld-%02d-%02dT%02lld:%02lld:%02lldZ", year, month, day,
                 h / 3600, h / 60 % 60, h % 60);
        if (!versions) {
            print_record(stdout, seed, n, tenant, request, tmpl, error, duration, retries,
                         error_count, tokens, cost, start, NULL, NULL);
            continue;
        }
        /* pending, running, then final: updated_at 1 s, 60 s, then the duration after start */
        static const char *const STATUS[] = {"pending", "running", NULL};
        long long after[] = {1, 60, 60 + (long long)duration};
        for (int k = 0; k < 3; k++) {
            char *line = NULL;
            size_t len = 0;
            FILE *mem = open_memstream(&line, &len);
            const char *status = STATUS[k] != NULL ? STATUS[k] : (error ? "failed" : "completed");
            double share = k == 0 ? 0 : k == 1 ? 1.0 / 3 : 1;
            print_record(mem, seed, n, tenant, request, tmpl, k == 2 ? error : NULL,
                         k == 2 ? duration : 0, k == 2 ? retries : 0, k == 2 ? error_count : 0,
                         (long long)((double)tokens * share), cost * share, start,
                         version_text(t + after[k]), status);
            fclose(mem);
            emit(line);
        }
    }
    drain();
    return fflush(stdout) == 0 ? 0 : 1;
}
