/*
 * Schema migrations: numbered SQL files applied in name order, each in its
 * own transaction, recorded with a SHA-256 checksum in schema_migrations.
 *
 * The files are compiled into the binary (see cmake/embed.cmake); an
 * operator may also point at a folder of them.  Every transaction of a
 * migrator takes a transaction-scoped advisory lock, so two started at once
 * apply each file once, and migrate works through a pooler in transaction
 * mode (PgBouncer) as well as directly.
 */
#ifndef PD_MIGRATE_H
#define PD_MIGRATE_H

#include <stddef.h>
#include <stdio.h>

#include "pd/db.h"
#include "pd/error.h"

typedef struct pd_migration {
    const char *name; /* file name, e.g. "0001_schema.sql" */
    const char *sql;  /* its text, NUL-terminated */
    size_t len;
} pd_migration_t;

/* The migrations built into this binary, in order. */
extern const pd_migration_t pd_migrations[];
extern const size_t pd_migrations_count;

typedef struct pd_migration_set {
    const pd_migration_t *items;
    size_t count;
    void *owned; /* storage when loaded from a folder */
} pd_migration_set_t;

/* The built-in set; nothing to release. */
void pd_migration_set_builtin(pd_migration_set_t *set);

/*
 * Loads every "*.sql" file of dir, sorted by name.  The caller releases the
 * set with pd_migration_set_close().  Returns 0, PD_EIO or PD_ENOMEM.
 */
int pd_migration_set_load(pd_migration_set_t *set, const char *dir, pd_error_t *err);
void pd_migration_set_close(pd_migration_set_t *set);

/*
 * Applies the pending migrations of set, logging one line per file to log
 * (may be NULL).  Refuses with PD_ECONFLICT, before applying anything, when
 * an applied file's checksum differs from its recorded one.
 */
int pd_migrate_apply(pd_db_t *db, const pd_migration_set_t *set, FILE *log, pd_error_t *err);

/*
 * Writes one line per migration to out: applied (with its time), pending,
 * or changed since it was applied.  *pending (when not NULL) receives the
 * number of pending or changed files.
 */
int pd_migrate_status(pd_db_t *db, const pd_migration_set_t *set, FILE *out, size_t *pending,
                      pd_error_t *err);

#endif
