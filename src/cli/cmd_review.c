/*
 * `patternd review list|show|approve|reject|implement|deprecate|reopen|
 * thresholds`: the review lifecycle (docs/spec.md §5) for operators, with
 * the rules of the HTTP API (include/pd/review.h holds them; the status
 * graph itself is the database's, patternd_review()).
 *
 * The command connects as the operator, the role that ran `patternd
 * migrate` or another member of patternd_admin, which sees every tenant:
 * `list` reads across tenants unless --tenant narrows it.  Whatever changes
 * a tenant's rows names the tenant (--tenant) and runs in a transaction
 * scoped to it, so the audit rows carry it as the service's do.  A move's
 * actor is "cli:<OS user>" and its reviewer --reviewer, by default the OS
 * user.
 *
 * Exit status: 0 done, 1 failure (the database), 2 bad usage (a missing
 * reason included), 3 conflict (the pattern is not in the --expected
 * status, or the graph has no such move; nothing changed), 4 no such
 * pattern.  One thread, one connection.
 */
#include <errno.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pd/cli.h"
#include "pd/db.h"
#include "pd/json.h"
#include "pd/options.h"
#include "pd/patterns.h"
#include "pd/review.h"
#include "pd/utf8.h"

#define EXIT_CONFLICT 3
#define EXIT_NOT_FOUND 4

typedef struct number_option {
    double v;
    bool given;
} number_option_t;

typedef struct count_option {
    long v;
    bool given;
} count_option_t;

typedef struct review_options {
    const char *db, *tenant, *status, *type, *expected, *reviewer, *notes, *reason;
    number_option_t min_confidence, min_savings;
    count_option_t min_occurrences;
    long top, weeks;
    bool json;
} review_options_t;

/* A number from opt->min to opt->max (as doubles). */
static bool parse_number(const pd_option_t *opt, const char *arg, void *dst)
{
    number_option_t *out = dst;
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno != 0 || end == arg || *end != '\0' || !(v >= (double)opt->min) ||
        !(v <= (double)opt->max)) {
        pd_cli_fail("--%s: expected a number from %ld to %ld, got '%s'", opt->name, opt->min,
                    opt->max, arg);
        return false;
    }
    *out = (number_option_t){v, true};
    return true;
}

/* A threshold: any number here, for its range is pd_review_thresholds_check()'s, as in the API. */
static bool parse_threshold(const pd_option_t *opt, const char *arg, void *dst)
{
    number_option_t *out = dst;
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno != 0 || end == arg || *end != '\0') {
        pd_cli_fail("--%s: expected a number, got '%s'", opt->name, arg);
        return false;
    }
    *out = (number_option_t){v, true};
    return true;
}

static bool parse_count(const pd_option_t *opt, const char *arg, void *dst)
{
    count_option_t *out = dst;
    out->given = pd_opt_long(opt, arg, &out->v);
    return out->given;
}

static bool parse_format(const pd_option_t *opt, const char *arg, void *dst)
{
    if (strcmp(arg, "table") == 0 || strcmp(arg, "json") == 0) {
        *(bool *)dst = strcmp(arg, "json") == 0;
        return true;
    }
    pd_cli_fail("--%s: expected table or json, got '%s'", opt->name, arg);
    return false;
}

/* A text option that goes into the database: valid UTF-8, within its bounds. */
static bool parse_text(const pd_option_t *opt, const char *arg, void *dst)
{
    size_t len = strlen(arg);
    if (!pd_utf8_valid(arg, len) || len > (size_t)opt->max || len < (size_t)opt->min) {
        pd_cli_fail("--%s: expected %ld to %ld bytes of UTF-8 text", opt->name, opt->min, opt->max);
        return false;
    }
    *(const char **)dst = arg;
    return true;
}

#define OPT(field) offsetof(review_options_t, field)
#define O_TENANT_REQUIRED                                                                          \
    {                                                                                              \
        "tenant", "T", pd_opt_tenant, OPT(tenant), NULL, "the pattern's tenant (required)", 0, 0   \
    }
#define O_WEEKS                                                                                    \
    {                                                                                              \
        "weeks", "N", pd_opt_long, OPT(weeks), "26",                                               \
            "ISO weeks of the weekly series, up to the current one", 1, PD_PATTERN_WEEKS_MAX       \
    }

static const pd_option_t LIST_OPTIONS[] = {
    PD_OPTION_DB(review_options_t, db),
    {"tenant", "T", pd_opt_tenant, OPT(tenant), NULL, "only this tenant's patterns (default: all)",
     0, 0},
    {"status", "S", pd_opt_status, OPT(status), NULL, "only patterns in status S", 0, 0},
    {"type", "X", pd_opt_string, OPT(type), NULL, "only patterns of type X (test, build, ...)", 0,
     0},
    {"min-confidence", "C", parse_number, OPT(min_confidence), NULL,
     "only patterns with confidence_score >= C", 0, 100},
    {"top", "N", pd_opt_long, OPT(top), "50", "at most N patterns; 0 for all", 0, 1000000000},
    {"format", "F", parse_format, OPT(json), "table", "table or json", 0, 0},
    PD_OPTION_END,
};

static const pd_option_t SHOW_OPTIONS[] = {
    PD_OPTION_DB(review_options_t, db),
    O_TENANT_REQUIRED,
    O_WEEKS,
    PD_OPTION_END,
};

static const pd_option_t MOVE_OPTIONS[] = {
    PD_OPTION_DB(review_options_t, db),
    O_TENANT_REQUIRED,
    {"expected", "S", pd_opt_status, OPT(expected), NULL,
     "the status you saw (required): the move is made only\n"
     "if the pattern still has it",
     0, 0},
    {"reviewer", "NAME", parse_text, OPT(reviewer), NULL,
     "who decides, recorded in the history (default: the OS user)", 1, PD_REVIEW_REVIEWER_MAX},
    {"notes", "TEXT", parse_text, OPT(notes), NULL, "notes for the history, e.g. the tool's URL", 0,
     PD_REVIEW_TEXT_MAX},
    {"reason", "TEXT", parse_text, OPT(reason), NULL, "why (required to reject or deprecate)", 1,
     PD_REVIEW_TEXT_MAX},
    PD_OPTION_END,
};

static const pd_option_t THRESHOLD_OPTIONS[] = {
    PD_OPTION_DB(review_options_t, db),
    {"tenant", "T", pd_opt_tenant, OPT(tenant), NULL, "the tenant (required)", 0, 0},
    {"min-occurrences", "N", parse_count, OPT(min_occurrences), NULL,
     "set: a candidate has at least N occurrences (0 to 2^53 - 1)", 0,
     PD_REVIEW_MIN_OCCURRENCES_MAX},
    {"min-confidence", "C", parse_threshold, OPT(min_confidence), NULL,
     "set: ... a confidence_score of at least C (0 to 100)", 0, 0},
    {"min-savings", "D", parse_threshold, OPT(min_savings), NULL,
     "set: ... potential monthly savings of at least D dollars (0 to 1e28)", 0, 0},
    PD_OPTION_END,
};

/* Ends the help of each action that changes something. */
#define EXIT_HELP                                                                                  \
    "\nExit status: 0 done, 1 failure, 2 bad usage, 3 conflict (the pattern is not\n"              \
    "in the --expected status, or has no such move; nothing changed), 4 no such\n"                 \
    "pattern.\n"

static const pd_command_t LIST = {
    "patternd review list [--tenant T] [--status S] [--type X] [--min-confidence C]\n"
    "       [--top N] [--format table|json] [--db URL]",
    "Lists patterns with their id and automation_status, most potential monthly\n"
    "savings first (patterns without occurrences left out), across every tenant\n"
    "unless --tenant is given.\n",
    LIST_OPTIONS,
    0,
};

static const pd_command_t SHOW = {
    "patternd review show --tenant T [--weeks N] [--db URL] ID",
    "Prints pattern ID of tenant T as GET /v1/patterns/{id} answers it: its\n"
    "statistics and status, its 20 most recent occurrences (examples), its\n"
    "weekly series, its review history and, once implemented, the occurrences\n"
    "since.\n",
    SHOW_OPTIONS,
    1,
};

#define MOVE_SYNOPSIS(action)                                                                      \
    "patternd review " action " --tenant T --expected S [--reviewer NAME]\n"                       \
    "       [--notes TEXT] [--reason TEXT] [--db URL] ID"

static const pd_command_t MOVES[] = {
    [PD_REVIEW_APPROVE] = {MOVE_SYNOPSIS("approve"),
                           "Approves pattern ID (detected or candidate -> approved).\n" EXIT_HELP,
                           MOVE_OPTIONS, 1},
    [PD_REVIEW_REJECT] = {MOVE_SYNOPSIS("reject"),
                          "Rejects pattern ID (detected or candidate -> rejected); --reason is\n"
                          "required.\n" EXIT_HELP,
                          MOVE_OPTIONS, 1},
    [PD_REVIEW_IMPLEMENT] = {MOVE_SYNOPSIS("implement"),
                             "Marks pattern ID implemented (approved -> implemented): a tool has\n"
                             "taken the work over; --notes can name it.\n" EXIT_HELP,
                             MOVE_OPTIONS, 1},
    [PD_REVIEW_DEPRECATE] = {MOVE_SYNOPSIS("deprecate"),
                             "Deprecates pattern ID (approved or implemented -> deprecated);\n"
                             "--reason is required.\n" EXIT_HELP,
                             MOVE_OPTIONS, 1},
    [PD_REVIEW_REOPEN] = {MOVE_SYNOPSIS("reopen"),
                          "Reopens pattern ID (rejected or deprecated -> detected).\n" EXIT_HELP,
                          MOVE_OPTIONS, 1},
};

static const pd_command_t THRESHOLDS = {
    "patternd review thresholds --tenant T [--min-occurrences N] [--min-confidence C]\n"
    "       [--min-savings D] [--db URL]",
    "Shows tenant T's thresholds (defaults: 5 occurrences, confidence 70, savings\n"
    "1.00).  With any of the --min-* options, sets those (the others stay) and\n"
    "at once moves every detected or candidate pattern of T to where they put\n"
    "it, in the same transaction, each move recorded in the history.\n",
    THRESHOLD_OPTIONS,
    0,
};

static const char USAGE[] =
    "usage: patternd review <action> [options]\n"
    "\n"
    "The review lifecycle of patterns (docs/spec.md §5), for operators:\n"
    "\n"
    "  list        patterns with their ids and statuses\n"
    "  show        one pattern, its examples, weekly series and history\n"
    "  approve     detected or candidate -> approved\n"
    "  reject      detected or candidate -> rejected (a reason is required)\n"
    "  implement   approved -> implemented\n"
    "  deprecate   approved or implemented -> deprecated (a reason is required)\n"
    "  reopen      rejected or deprecated -> detected\n"
    "  thresholds  show or set a tenant's candidate thresholds\n"
    "\n"
    "`patternd review <action> --help` describes an action.  Moves are recorded\n"
    "with the actor cli:<OS user> and the reviewer --reviewer (default: the OS\n"
    "user).  Connect as the operator (the role that ran `patternd migrate`, or\n"
    "another member of patternd_admin).\n"
    "\n"
    "Exit status: 0 done, 1 failure, 2 bad usage, 3 conflict (not in the --expected\n"
    "status, or no such move; nothing changed), 4 no such pattern.\n";

/* The OS user's name: the password database's, else $USER, else "unknown". */
static const char *os_user(void)
{
    const struct passwd *pw = getpwuid(geteuid());
    if (pw != NULL && pw->pw_name != NULL && pw->pw_name[0] != '\0')
        return pw->pw_name;
    const char *user = getenv("USER");
    return user != NULL && user[0] != '\0' ? user : "unknown";
}

/* Connects after the preflight (reachable, schema current); NULL having said why. */
static pd_db_t *connect_db(const review_options_t *opt)
{
    const char *conninfo = pd_db_conninfo(opt->db);
    pd_db_t *db = NULL;
    pd_error_t err;
    if (pd_cli_preflight(conninfo, false, false, false) < 0)
        return NULL;
    if (pd_db_connect(conninfo, &db, &err) < 0) {
        pd_cli_fail("%s", err.message);
        return NULL;
    }
    return db;
}

/* Prints doc (stolen) as indented JSON; the exit status. */
static int print_json(json_t *doc)
{
    char *text = pd_json_dumps(doc, JSON_INDENT(2));
    json_decref(doc);
    if (text == NULL || puts(text) == EOF || fflush(stdout) != 0) {
        free(text);
        pd_cli_fail("writing the output failed");
        return PD_EXIT_FAIL;
    }
    free(text);
    return PD_EXIT_OK;
}

static int do_list(pd_db_t *db, const review_options_t *opt)
{
    pd_patterns_filter_t f = {.tenant = opt->tenant,
                              .status = opt->status,
                              .type = opt->type,
                              .has_min_confidence = opt->min_confidence.given,
                              .min_confidence = opt->min_confidence.v,
                              .limit = opt->top};
    pd_pattern_t *rows = NULL;
    size_t n = 0;
    pd_error_t err;
    if (pd_patterns_read(db, &f, &rows, &n, NULL, &err) < 0) {
        pd_cli_fail("%s", err.message);
        return PD_EXIT_FAIL;
    }
    int rc = PD_EXIT_OK;
    if (opt->json) {
        json_t *list = json_array();
        for (size_t i = 0; list != NULL && i < n; i++)
            json_array_append_new(list, pd_pattern_json(&rows[i]));
        rc = print_json(list);
    } else if (n == 0) {
        puts("no patterns match");
    } else {
        int tw = (int)strlen("tenant"), sw = (int)strlen("signature");
        for (size_t i = 0; i < n; i++) {
            if ((int)strlen(rows[i].tenant_id) > tw)
                tw = (int)strlen(rows[i].tenant_id);
            if ((int)strlen(rows[i].pattern_signature) > sw)
                sw = (int)strlen(rows[i].pattern_signature);
        }
        printf("%8s  %-*s  %-*s  %-11s  %8s  %10s  %14s\n", "id", tw, "tenant", sw, "signature",
               "status", "count", "confidence", "savings $/mo");
        for (size_t i = 0; i < n; i++) {
            const pd_pattern_t *p = &rows[i];
            printf("%8lld  %-*s  %-*s  %-11s  %8lld  %10.0f  %14.2f\n", (long long)p->id, tw,
                   p->tenant_id, sw, p->pattern_signature, p->automation_status,
                   (long long)p->occurrence_count, p->confidence_score,
                   p->potential_monthly_savings);
        }
    }
    pd_patterns_free(rows);
    return rc;
}

static int do_show(pd_db_t *db, const review_options_t *opt, int64_t id)
{
    json_t *doc = NULL;
    pd_error_t err;
    if (pd_patterns_detail_json(db, opt->tenant, id, opt->weeks, &doc, &err) < 0) {
        pd_cli_fail("%s", err.message);
        return PD_EXIT_FAIL;
    }
    if (doc == NULL) {
        pd_cli_fail("tenant %s has no pattern %lld", opt->tenant, (long long)id);
        return EXIT_NOT_FOUND;
    }
    return print_json(doc);
}

static int do_move(pd_db_t *db, const review_options_t *opt, pd_review_action_t action, int64_t id)
{
    char actor[300];
    snprintf(actor, sizeof(actor), "cli:%s", os_user());
    pd_review_request_t rq = {
        .id = id,
        .action = action,
        .expected = opt->expected,
        .actor = actor,
        .reviewer = opt->reviewer != NULL ? opt->reviewer : os_user(),
        .notes = opt->notes,
        .reason = opt->reason,
        .weeks = PD_PATTERN_WEEKS,
    };
    pd_review_result_t result;
    char status[PD_REVIEW_STATUS_MAX];
    pd_error_t err;
    if (pd_review_apply(db, opt->tenant, &rq, &result, status, NULL, &err) < 0) {
        pd_cli_fail("%s", err.message);
        return PD_EXIT_FAIL;
    }
    switch (result) {
    case PD_REVIEW_OK:
        printf("pattern %lld of tenant %s: %s -> %s\n", (long long)id, opt->tenant, opt->expected,
               status);
        return PD_EXIT_OK;
    case PD_REVIEW_NOT_FOUND:
        pd_cli_fail("tenant %s has no pattern %lld", opt->tenant, (long long)id);
        return EXIT_NOT_FOUND;
    case PD_REVIEW_REASON_REQUIRED:
        pd_cli_fail("%s: --reason is required", pd_review_actions[action]);
        return PD_EXIT_USAGE;
    case PD_REVIEW_CONFLICT:
        break;
    }
    if (strcmp(status, opt->expected) != 0)
        pd_cli_fail("conflict: pattern %lld is %s, not %s; nothing changed", (long long)id, status,
                    opt->expected);
    else
        pd_cli_fail("conflict: a %s pattern cannot be moved by %s (docs/spec.md §5); nothing "
                    "changed",
                    status, pd_review_actions[action]);
    return EXIT_CONFLICT;
}

/* The thresholds the options give, and which of them they give (PD_REVIEW_SET_*). */
static unsigned thresholds_given(const review_options_t *opt, pd_review_thresholds_t *t)
{
    *t = (pd_review_thresholds_t){.min_occurrences = opt->min_occurrences.v,
                                  .min_confidence = opt->min_confidence.v,
                                  .min_savings = opt->min_savings.v};
    return (opt->min_occurrences.given ? PD_REVIEW_SET_MIN_OCCURRENCES : 0) |
           (opt->min_confidence.given ? PD_REVIEW_SET_MIN_CONFIDENCE : 0) |
           (opt->min_savings.given ? PD_REVIEW_SET_MIN_SAVINGS : 0);
}

/*
 * Whether the thresholds given are within the API's ranges; false having
 * said why, naming the option ("min_savings: ..." as "--min-savings: ...").
 */
static bool thresholds_usable(const review_options_t *opt)
{
    pd_review_thresholds_t t;
    pd_error_t err;
    unsigned fields = thresholds_given(opt, &t);
    if (pd_review_thresholds_check(&t, fields, &err) == PD_OK)
        return true;
    char flag[PD_FIELD_MAX];
    size_t n = strlen(err.field);
    for (size_t i = 0; i <= n; i++)
        flag[i] = err.field[i] == '_' ? '-' : err.field[i];
    pd_cli_fail("--%s%s", flag, err.message + n);
    return false;
}

/* Checked by thresholds_usable() before connecting. */
static int do_thresholds(pd_db_t *db, const review_options_t *opt)
{
    pd_review_thresholds_t t;
    unsigned fields = thresholds_given(opt, &t);
    pd_error_t err;
    int64_t moved = 0;
    if (fields != 0) {
        char actor[300];
        snprintf(actor, sizeof(actor), "cli:%s", os_user());
        if (pd_review_thresholds_set(db, opt->tenant, fields, &t, actor, &moved, &err) < 0) {
            pd_cli_fail("%s", err.message);
            return PD_EXIT_FAIL;
        }
    } else if (pd_review_thresholds_get(db, opt->tenant, &t, &err) < 0) {
        pd_cli_fail("%s", err.message);
        return PD_EXIT_FAIL;
    }
    char conf[PD_JSON_NUMBER_MAX], savings[PD_JSON_NUMBER_MAX];
    pd_json_number(t.min_confidence, conf);
    pd_json_number(t.min_savings, savings);
    printf("tenant %s: min_occurrences %lld, min_confidence %s, min_savings %s\n", opt->tenant,
           (long long)t.min_occurrences, conf, savings);
    if (fields != 0)
        printf("moved %lld patterns between detected and candidate\n", (long long)moved);
    return PD_EXIT_OK;
}

/* The pattern's id, a positive integer; false having said why. */
static bool parse_id(const char *arg, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || v < 1) {
        pd_cli_fail("expected a pattern id (a positive integer, from `review list`), got '%s'",
                    arg);
        return false;
    }
    *out = v;
    return true;
}

int pd_cmd_review(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? PD_EXIT_USAGE : PD_EXIT_OK;
    }
    const char *action = argv[1];
    pd_review_action_t move = PD_REVIEW_APPROVE;
    bool is_move = pd_review_action_parse(action, &move) == PD_OK;
    const pd_command_t *cmd = is_move                             ? &MOVES[move]
                              : strcmp(action, "list") == 0       ? &LIST
                              : strcmp(action, "show") == 0       ? &SHOW
                              : strcmp(action, "thresholds") == 0 ? &THRESHOLDS
                                                                  : NULL;
    if (cmd == NULL) {
        pd_cli_fail("review: unknown action '%s'", action);
        fputs(USAGE, stderr);
        return PD_EXIT_USAGE;
    }
    review_options_t opt = {0};
    int first;
    int status = pd_options_parse(cmd, argc - 1, argv + 1, &opt, &first);
    if (status != PD_OPTIONS_RUN)
        return status;
    int rest = argc - 1 - first;
    int64_t id = 0;
    if (cmd->max_args == 1 && (rest != 1 || !parse_id(argv[1 + first], &id))) {
        if (rest != 1)
            pd_cli_fail("review %s: expected one pattern ID", action);
        return PD_EXIT_USAGE;
    }
    if (cmd != &LIST && opt.tenant == NULL) {
        pd_cli_fail("review %s: --tenant is required", action);
        return PD_EXIT_USAGE;
    }
    if (is_move && opt.expected == NULL) {
        pd_cli_fail("review %s: --expected is required (the status you saw)", action);
        return PD_EXIT_USAGE;
    }
    if (is_move && pd_review_action_needs_reason(move) && opt.reason == NULL) {
        pd_cli_fail("review %s: --reason is required", action);
        return PD_EXIT_USAGE;
    }
    if (cmd == &THRESHOLDS && !thresholds_usable(&opt))
        return PD_EXIT_USAGE;
    pd_db_t *db = connect_db(&opt);
    if (db == NULL)
        return PD_EXIT_FAIL;
    int exit_code = is_move        ? do_move(db, &opt, move, id)
                    : cmd == &LIST ? do_list(db, &opt)
                    : cmd == &SHOW ? do_show(db, &opt, id)
                                   : do_thresholds(db, &opt);
    pd_db_destroy(db);
    return exit_code;
}
