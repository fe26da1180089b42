/*
 * Declarative command-line options; see include/pd/options.h.  Main thread,
 * before any other starts; getopt_long is not reentrant.
 */
#include "pd/options.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pd/cli.h"
#include "pd/patterns.h"
#include "pd/record.h"

#define MAX_OPTIONS 40
#define HELP_COLUMN 25 /* where an option's description starts */

static void *field_of(const pd_option_t *opt, void *out)
{
    return (char *)out + opt->offset;
}

bool pd_opt_flag(const pd_option_t *opt, const char *arg, void *dst)
{
    (void)opt;
    (void)arg;
    *(bool *)dst = true;
    return true;
}

bool pd_opt_string(const pd_option_t *opt, const char *arg, void *dst)
{
    (void)opt;
    *(const char **)dst = arg;
    return true;
}

bool pd_opt_tenant(const pd_option_t *opt, const char *arg, void *dst)
{
    char name[64];
    snprintf(name, sizeof(name), "--%s", opt->name);
    if (!pd_cli_tenant(name, arg))
        return false;
    *(const char **)dst = arg;
    return true;
}

bool pd_opt_status(const pd_option_t *opt, const char *arg, void *dst)
{
    if (pd_pattern_status_valid(arg)) {
        *(const char **)dst = arg;
        return true;
    }
    pd_cli_fail("--%s: expected detected, candidate, approved, rejected, implemented or "
                "deprecated, got '%s'",
                opt->name, arg);
    return false;
}

static bool read_long(const pd_option_t *opt, const char *arg, long *out)
{
    char name[64];
    snprintf(name, sizeof(name), "--%s", opt->name);
    return pd_cli_count(name, arg, opt->min, opt->max, out);
}

bool pd_opt_long(const pd_option_t *opt, const char *arg, void *dst)
{
    return read_long(opt, arg, (long *)dst);
}

bool pd_opt_int(const pd_option_t *opt, const char *arg, void *dst)
{
    long v;
    if (!read_long(opt, arg, &v))
        return false;
    *(int *)dst = (int)v;
    return true;
}

bool pd_opt_size(const pd_option_t *opt, const char *arg, void *dst)
{
    long v;
    if (!read_long(opt, arg, &v))
        return false;
    *(size_t *)dst = (size_t)v;
    return true;
}

bool pd_opt_seconds_ms(const pd_option_t *opt, const char *arg, void *dst)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno != 0 || end == arg || *end != '\0' || !(v >= 0.01 && v <= (double)opt->max)) {
        pd_cli_fail("--%s: expected seconds from 0.01 to %ld, got '%s'", opt->name, opt->max, arg);
        return false;
    }
    *(int *)dst = (int)(v * 1000 + 0.5);
    return true;
}

/* Writes text with every line after the first indented to the description column. */
static void put_indented(FILE *to, const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        fputc(*p, to);
        if (*p == '\n' && p[1] != '\0')
            fprintf(to, "%*s", HELP_COLUMN, "");
    }
}

void pd_options_help(const pd_command_t *cmd, FILE *to)
{
    fprintf(to, "usage: %s\n\n%s\n", cmd->synopsis, cmd->about);
    for (const pd_option_t *o = cmd->options; o->name != NULL; o++) {
        char head[64];
        int n = snprintf(head, sizeof(head), "  --%s%s%s", o->name, o->metavar ? " " : "",
                         o->metavar ? o->metavar : "");
        fprintf(to, "%s%*s", head, n < HELP_COLUMN - 1 ? HELP_COLUMN - n : 1, "");
        put_indented(to, o->help);
        if (o->def != NULL && o->parse != pd_opt_flag)
            fprintf(to, " (default: %s)", o->def);
        fputc('\n', to);
    }
    fprintf(to, "  -h, --help%*sshow this help\n", HELP_COLUMN - 12, "");
}

static int usage_error(const pd_command_t *cmd)
{
    /* The command's name is the synopsis up to its second word, "patternd ingest". */
    const char *syn = cmd->synopsis;
    size_t len = strcspn(syn, " ");
    if (syn[len] == ' ')
        len += 1 + strcspn(syn + len + 1, " ");
    fprintf(stderr, "usage: %s\n(%.*s --help describes every option)\n", syn, (int)len, syn);
    return PD_EXIT_USAGE;
}

int pd_options_parse(const pd_command_t *cmd, int argc, char **argv, void *out, int *first_arg)
{
    struct option longopts[MAX_OPTIONS + 2];
    int n = 0;
    for (const pd_option_t *o = cmd->options; o->name != NULL; o++, n++) {
        if (n == MAX_OPTIONS)
            abort(); /* a table this long is a programming error */
        if (o->def != NULL && !o->parse(o, o->def, field_of(o, out)))
            abort(); /* so is a default its own parser refuses */
        longopts[n] =
            (struct option){o->name, o->metavar ? required_argument : no_argument, NULL, 256 + n};
    }
    longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[n] = (struct option){NULL, 0, NULL, 0};

    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            pd_options_help(cmd, stdout);
            return PD_EXIT_OK;
        }
        if (opt < 256)
            return usage_error(cmd); /* getopt said what was wrong */
        const pd_option_t *o = &cmd->options[opt - 256];
        if (!o->parse(o, optarg, field_of(o, out)))
            return PD_EXIT_USAGE;
    }
    if (cmd->max_args >= 0 && argc - optind > cmd->max_args) {
        pd_cli_fail("unexpected argument '%s'", argv[optind + cmd->max_args]);
        return usage_error(cmd);
    }
    *first_arg = optind;
    return PD_OPTIONS_RUN;
}
