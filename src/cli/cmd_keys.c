/*
 * `patternd keys create|list|revoke`: the API keys of the HTTP service,
 * each with its scopes (docs/spec.md §7).
 *
 * Runs on one thread, with one connection.  A new key's secret is printed
 * once, as the last line of standard output, and never stored: the table
 * keeps a salted hash (see include/pd/keys.h).
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "pd/cli.h"
#include "pd/db.h"
#include "pd/keys.h"
#include "pd/options.h"
#include "pd/record.h"

typedef struct keys_options {
    const char *db, *tenant;
    unsigned scopes;
} keys_options_t;

static bool parse_scopes(const pd_option_t *opt, const char *arg, void *dst)
{
    if (pd_key_scopes_parse(arg, dst) == PD_OK)
        return true;
    pd_cli_fail("--%s: expected a comma-separated list of ingest, read and review, got '%s'",
                opt->name, arg);
    return false;
}

static const pd_option_t OPTIONS[] = {
    PD_OPTION_DB(keys_options_t, db),
    {"tenant", "T", pd_opt_tenant, offsetof(keys_options_t, tenant), NULL,
     "the tenant; required for create, and for list and revoke when\n"
     "the role is subject to row-level security (patternd_service)",
     0, 0},
    {"scope", "S[,S...]", parse_scopes, offsetof(keys_options_t, scopes), "ingest,read",
     "create: what the key may do: ingest (POST /v1/workflows), read\n"
     "(the tenant's patterns, weeks, examples, history), review\n"
     "(review moves and thresholds; includes read)",
     0, 0},
    PD_OPTION_END,
};

static const pd_command_t COMMAND = {
    "patternd keys create --tenant T [--scope S[,S...]] [--db URL]\n"
    "       patternd keys list [--tenant T] [--db URL]\n"
    "       patternd keys revoke [--tenant T] [--db URL] KEY_ID",
    "Manages the API keys of `patternd serve`.  A key acts for its tenant only.\n"
    "\n"
    "  create   makes a new key for tenant T with the scopes --scope names and prints\n"
    "           it once, as the last line; only a salted hash of its secret is stored\n"
    "  list     the keys (of tenant T): tenant, key id, scopes, created, revoked\n"
    "  revoke   revokes the key KEY_ID (from `list`, or the part of the key between\n"
    "           the two '~'); a running `patternd serve` refuses it within its\n"
    "           --key-cache-seconds (2 s by default), when it reloads its keys\n",
    OPTIONS,
    1,
};

/* Each action returns the exit code. */
static int key_create(pd_db_t *db, const char *tenant, unsigned scopes)
{
    pd_error_t err;
    pd_key_t key;
    char text[PD_KEY_TEXT_MAX], scope_text[PD_SCOPES_TEXT_MAX];
    pd_key_generate(tenant, &key);
    if (pd_keys_create(db, &key, scopes, &err) < 0) {
        pd_cli_fail("%s", err.message);
        return PD_EXIT_FAIL;
    }
    pd_key_format(&key, text);
    pd_key_scopes_format(scopes, scope_text);
    printf("created key %s for tenant %s with scopes %s; it is shown only now, keep it secret:"
           "\n%s\n",
           key.key_id, tenant, scope_text, text);
    return PD_EXIT_OK;
}

static int key_list(pd_db_t *db, const char *tenant)
{
    pd_error_t err;
    pd_key_row_t *rows = NULL;
    size_t n = 0;
    if (pd_keys_list(db, tenant, &rows, &n, &err) < 0) {
        pd_cli_fail("%s", err.message);
        return PD_EXIT_FAIL;
    }
    if (n == 0) {
        puts(tenant ? "no keys for this tenant" : "no keys (or none visible to this role)");
    } else {
        int width = (int)strlen("tenant");
        for (size_t i = 0; i < n; i++) {
            if ((int)strlen(rows[i].tenant_id) > width)
                width = (int)strlen(rows[i].tenant_id);
        }
        printf("%-*s  %-16s  %-18s  %-20s  %s\n", width, "tenant", "key_id", "scopes", "created",
               "revoked");
        for (size_t i = 0; i < n; i++)
            printf("%-*s  %-16s  %-18s  %-20s  %s\n", width, rows[i].tenant_id, rows[i].key_id,
                   rows[i].scopes, rows[i].created_at,
                   rows[i].revoked_at ? rows[i].revoked_at : "-");
    }
    pd_keys_list_free(rows);
    return PD_EXIT_OK;
}

static int key_revoke(pd_db_t *db, const char *tenant, const char *key_id)
{
    pd_error_t err;
    long revoked = 0;
    if (pd_keys_revoke(db, tenant, key_id, &revoked, &err) < 0) {
        pd_cli_fail("%s", err.message);
        return PD_EXIT_FAIL;
    }
    if (revoked == 0) {
        pd_cli_fail("no active key %s%s%s", key_id, tenant ? " of tenant " : "",
                    tenant ? tenant : "");
        return PD_EXIT_FAIL;
    }
    printf("revoked key %s\n", key_id);
    return PD_EXIT_OK;
}

int pd_cmd_keys(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        pd_options_help(&COMMAND, argc < 2 ? stderr : stdout);
        return argc < 2 ? PD_EXIT_USAGE : PD_EXIT_OK;
    }
    const char *action = argv[1];
    bool create = strcmp(action, "create") == 0, list = strcmp(action, "list") == 0,
         revoke = strcmp(action, "revoke") == 0;
    if (!create && !list && !revoke) {
        pd_cli_fail("keys: unknown action '%s'", action);
        pd_options_help(&COMMAND, stderr);
        return PD_EXIT_USAGE;
    }
    keys_options_t opt = {0};
    int first;
    int status = pd_options_parse(&COMMAND, argc - 1, argv + 1, &opt, &first);
    if (status != PD_OPTIONS_RUN)
        return status;
    int rest = argc - 1 - first;
    if (create && opt.tenant == NULL) {
        pd_cli_fail("keys create: --tenant is required");
        return PD_EXIT_USAGE;
    }
    if ((revoke && rest != 1) || (!revoke && rest != 0)) {
        pd_cli_fail(revoke ? "keys revoke: expected one KEY_ID" : "keys %s takes no arguments",
                    action);
        return PD_EXIT_USAGE;
    }

    pd_db_t *db = NULL;
    pd_error_t err;
    if (pd_db_connect(pd_db_conninfo(opt.db), &db, &err) < 0) {
        pd_cli_fail("%s", err.message);
        return PD_EXIT_FAIL;
    }
    int exit_code = create ? key_create(db, opt.tenant, opt.scopes)
                    : list ? key_list(db, opt.tenant)
                           : key_revoke(db, opt.tenant, argv[1 + first]);
    pd_db_destroy(db);
    return exit_code;
}
