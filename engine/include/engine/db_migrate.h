/*
 * db_migrate.h: numbered, forward-only schema migrations.
 *
 * A migration is a file NNNN_name.sql in the SQL directory (four or more
 * digits, an underscore, a name; other files are ignored). anm_db_migrate
 * applies the pending ones in version order, each in its own transaction
 * together with its row in schema_migrations (version, name, SHA-256 of the
 * file, applied_at), so a failed migration leaves nothing behind. Migrating
 * twice is a no-op. A file whose checksum differs from the one recorded when
 * it was applied is an error (applied migrations are never edited: add a new
 * one). Concurrent migrators are serialised by an advisory lock.
 */
#ifndef ANM_ENGINE_DB_MIGRATE_H
#define ANM_ENGINE_DB_MIGRATE_H

#include "engine/db.h"
#include "engine/error.h"

#include <stddef.h>

typedef enum anm_migration_state {
    ANM_MIGRATION_PENDING = 0, /* file present, not applied */
    ANM_MIGRATION_APPLIED = 1, /* applied, file unchanged */
    ANM_MIGRATION_CHANGED = 2, /* applied, but the file changed since */
    ANM_MIGRATION_MISSING = 3  /* applied, but no file for it (a newer schema) */
} anm_migration_state;

typedef struct anm_migration {
    long version;
    char name[128];        /* "registry" for 0001_registry.sql */
    char file[64];         /* "0001_registry.sql" ("" when MISSING) */
    anm_migration_state state;
    char applied_at[40];   /* ISO 8601 UTC, "" when pending */
} anm_migration;

/* "pending", "applied", "changed", "missing" */
const char *anm_migration_state_name(anm_migration_state state);

/*
 * The default SQL directory into buf: $ANM_SQL_DIR if set, else the first of
 * <exe dir>/../../sql (a build tree: build/bin/anm) and
 * <exe dir>/../share/anm/sql (an install) that exists. ANM_ENOTFOUND when
 * none does, ANM_ERANGE when buf is too small.
 */
int anm_db_default_sql_dir(char *buf, size_t size);

/*
 * Applies pending migrations from sql_dir. *applied (may be NULL) gets how
 * many were applied. On failure err names the file and carries the server's
 * message; returns ANM_EIO (unreadable directory or file), ANM_ECONFIG
 * (two files with one version, or a changed applied file), ANM_EDB or
 * ANM_EAGAIN (connection lost).
 */
int anm_db_migrate(anm_db *db, const char *sql_dir, int *applied, anm_error_detail *err);

/*
 * Lists every migration known from sql_dir and the database, in version
 * order, into *out (new array of *count entries; free()). Does not change
 * the database (schema_migrations may not exist yet: all pending).
 */
int anm_db_migration_status(anm_db *db, const char *sql_dir, anm_migration **out, size_t *count,
                            anm_error_detail *err);

#endif
