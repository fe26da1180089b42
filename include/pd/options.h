/*
 * Command-line options as data: each command declares one table of its
 * options (name, argument, parser, where the value goes, default, help),
 * and this module turns the table into getopt_long parsing, the defaults
 * and the --help text.  A default is written once, as text, and parsed by
 * the option's own parser before argv is read, so the help text and the
 * value a command starts with cannot disagree.
 *
 * Called on the main thread before anything else starts.
 */
#ifndef PD_OPTIONS_H
#define PD_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct pd_option pd_option_t;

/*
 * Parses arg into the field at dst.  On a bad value it says so on stderr,
 * naming the option, and returns false.
 */
typedef bool (*pd_option_parse_fn)(const pd_option_t *opt, const char *arg, void *dst);

struct pd_option {
    const char *name;         /* long name without "--"; NULL ends a table */
    const char *metavar;      /* "N", "URL"; NULL for a flag (no argument) */
    pd_option_parse_fn parse; /* one of pd_opt_* below, or the command's own */
    size_t offset;            /* offsetof() the field in the command's options struct */
    const char *def;          /* the default as an argument text; NULL: the field stays zero */
    const char *help;         /* may hold '\n'; "(default: def)" is appended when def is set */
    long min, max;            /* bounds for the numeric parsers */
};

typedef struct pd_command {
    const char *synopsis;       /* after "usage: ", e.g. "patternd ingest [options] [FILE...|-]" */
    const char *about;          /* the paragraphs between the synopsis and the options */
    const pd_option_t *options; /* ended by an entry whose name is NULL */
    int max_args;               /* positional arguments accepted; -1: any number */
} pd_command_t;

/* pd_options_parse(): run the command (anything else is the exit status). */
#define PD_OPTIONS_RUN (-1)

/*
 * Applies the defaults to out, then parses argv (argv[0] is the command's
 * name).  *first_arg gets the index of the first positional argument.
 * Returns PD_OPTIONS_RUN, or the status to exit with: 0 after printing
 * --help, PD_EXIT_USAGE after saying on stderr what was wrong.
 */
int pd_options_parse(const pd_command_t *cmd, int argc, char **argv, void *out, int *first_arg);

/* The options several commands share, as table entries of their options struct. */
#define PD_OPTION_DB(type, field)                                                                  \
    {                                                                                              \
        "db", "URL", pd_opt_string, offsetof(type, field), NULL,                                   \
            "database (default: $DATABASE_URL, else libpq's PG* variables)", 0, 0                  \
    }
#define PD_OPTION_TENANT(type, field, help)                                                        \
    {                                                                                              \
        "tenant", "T", pd_opt_tenant, offsetof(type, field), "default", help, 0, 0                 \
    }
#define PD_OPTION_MAX_RECORD(type, field, help)                                                    \
    {                                                                                              \
        "max-record-bytes", "N", pd_opt_size, offsetof(type, field), "1048576", help, 64, 1L << 30 \
    }
#define PD_OPTION_END                                                                              \
    {                                                                                              \
        NULL, NULL, NULL, 0, NULL, NULL, 0, 0                                                      \
    }

/* Writes the command's help text. */
void pd_options_help(const pd_command_t *cmd, FILE *to);

/* Parsers for the common kinds of value, each for the field type it names. */
bool pd_opt_flag(const pd_option_t *opt, const char *arg, void *dst);   /* bool */
bool pd_opt_string(const pd_option_t *opt, const char *arg, void *dst); /* const char * */
bool pd_opt_tenant(const pd_option_t *opt, const char *arg, void *dst); /* const char * */
/* A pattern's automation status (pd_pattern_statuses, include/pd/patterns.h). */
bool pd_opt_status(const pd_option_t *opt, const char *arg, void *dst); /* const char * */
bool pd_opt_long(const pd_option_t *opt, const char *arg, void *dst);   /* long, min..max */
bool pd_opt_int(const pd_option_t *opt, const char *arg, void *dst);    /* int, min..max */
bool pd_opt_size(const pd_option_t *opt, const char *arg, void *dst);   /* size_t, min..max */
/* Seconds (a decimal, min..max) into an int of milliseconds. */
bool pd_opt_seconds_ms(const pd_option_t *opt, const char *arg, void *dst);

#endif
