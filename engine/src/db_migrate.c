/* db_migrate.c: numbered, forward-only migrations recorded in schema_migrations. */
#include "engine/db_migrate.h"

#include "engine/cli.h"
#include "engine/log.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COMPONENT "db"

/* pg_advisory_xact_lock key shared by every migrator ("anm_migrate" in ASCII) */
#define MIGRATE_LOCK_SQL "SELECT pg_advisory_xact_lock(7308895159049072229)"

static const char create_table_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL,"
    " checksum text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

static const char checksum_sql[] = "SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex')";

typedef struct migration_file {
    long version;
    char name[128];
    char file[64];
} migration_file;

const char *anm_migration_state_name(anm_migration_state state)
{
    switch (state) {
    case ANM_MIGRATION_PENDING:
        return "pending";
    case ANM_MIGRATION_APPLIED:
        return "applied";
    case ANM_MIGRATION_CHANGED:
        return "changed";
    case ANM_MIGRATION_MISSING:
        return "missing";
    }
    return "unknown";
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int anm_db_default_sql_dir(char *buf, size_t size)
{
    const char *env = getenv("ANM_SQL_DIR");
    int n;
    if (env != NULL && env[0] != '\0') {
        n = snprintf(buf, size, "%s", env);
        return n < 0 || (size_t)n >= size ? ANM_ERANGE : ANM_OK;
    }
    char exe[PATH_MAX];
    ssize_t length = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (length <= 0)
        return ANM_ENOTFOUND;
    exe[length] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
        return ANM_ENOTFOUND;
    *slash = '\0';
    static const char *const relative[] = {"../../sql", "../share/anm/sql"};
    for (size_t i = 0; i < sizeof relative / sizeof relative[0]; i++) {
        n = snprintf(buf, size, "%s/%s", exe, relative[i]);
        if (n < 0 || (size_t)n >= size)
            return ANM_ERANGE;
        if (is_dir(buf))
            return ANM_OK;
    }
    buf[0] = '\0';
    return ANM_ENOTFOUND;
}

/* Parses "0001_registry.sql": 1 if it is a migration file name. */
static int parse_file_name(const char *file, migration_file *out)
{
    size_t length = strlen(file);
    size_t digits = strspn(file, "0123456789");
    if (digits < 4 || digits > 9 || file[digits] != '_' || length < digits + 6 ||
        strcmp(file + length - 4, ".sql") != 0 || length >= sizeof out->file)
        return 0;
    char number[16];
    memcpy(number, file, digits);
    number[digits] = '\0';
    if (anm_parse_long(number, 1, 999999999L, &out->version) != ANM_OK)
        return 0;
    size_t name_length = length - digits - 1 - 4;
    if (name_length == 0 || name_length >= sizeof out->name)
        return 0;
    memcpy(out->name, file + digits + 1, name_length);
    out->name[name_length] = '\0';
    memcpy(out->file, file, length + 1);
    return 1;
}

static int compare_files(const void *a, const void *b)
{
    const migration_file *x = a, *y = b;
    if (x->version != y->version)
        return (x->version > y->version) - (x->version < y->version);
    return strcmp(x->file, y->file);
}

/* The migration files of dir in version order (new array). */
static int list_files(const char *dir, migration_file **out, size_t *count, anm_error_detail *err)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        anm_error_detail_set(err, dir, 0, 0, NULL, "could not open sql directory: %s", strerror(errno));
        return ANM_EIO;
    }
    int rc = ANM_OK;
    migration_file *files = NULL;
    size_t n = 0, capacity = 0;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        migration_file file;
        if (!parse_file_name(entry->d_name, &file))
            continue;
        if (n == capacity) {
            size_t grown_capacity = capacity ? capacity * 2 : 16;
            migration_file *grown = realloc(files, grown_capacity * sizeof *grown);
            if (grown == NULL) {
                rc = ANM_ENOMEM;
                goto fail;
            }
            files = grown;
            capacity = grown_capacity;
        }
        files[n++] = file;
    }
    if (n > 1)
        qsort(files, n, sizeof *files, compare_files);
    for (size_t i = 1; i < n; i++) {
        if (files[i].version == files[i - 1].version) {
            anm_error_detail_set(err, dir, 0, 0, NULL, "two migrations with version %ld: %s and %s",
                                 files[i].version, files[i - 1].file, files[i].file);
            rc = ANM_ECONFIG;
            goto fail;
        }
    }
    closedir(d);
    *out = files;
    *count = n;
    return ANM_OK;
fail:
    closedir(d);
    free(files);
    return rc;
}

static char *read_text(const char *dir, const char *file, anm_error_detail *err, int *rc)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", dir, file);
    char *text = NULL;
    FILE *f = NULL;
    if (n < 0 || (size_t)n >= sizeof path) {
        *rc = ANM_ERANGE;
        anm_error_detail_set(err, file, 0, 0, NULL, "path too long");
        return NULL;
    }
    f = fopen(path, "rb");
    if (f == NULL)
        goto io_error;
    if (fseek(f, 0, SEEK_END) != 0)
        goto io_error;
    long length = ftell(f);
    if (length < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto io_error;
    text = malloc((size_t)length + 1);
    if (text == NULL) {
        *rc = ANM_ENOMEM;
        fclose(f);
        return NULL;
    }
    if (fread(text, 1, (size_t)length, f) != (size_t)length)
        goto io_error;
    text[length] = '\0';
    if (strlen(text) != (size_t)length) {
        anm_error_detail_set(err, path, 0, 0, NULL, "migration contains a NUL byte");
        *rc = ANM_EPARSE;
        fclose(f);
        free(text);
        return NULL;
    }
    fclose(f);
    return text;
io_error:
    anm_error_detail_set(err, path, 0, 0, NULL, "could not read migration: %s", strerror(errno));
    *rc = ANM_EIO;
    if (f != NULL)
        fclose(f);
    free(text);
    return NULL;
}

static int db_failure(anm_db *db, int rc, const char *file, const char *what, anm_error_detail *err)
{
    anm_error_detail_set(err, file, 0, 0, NULL, "%s: %s", what, anm_db_error_message(db));
    return rc;
}

/* The server's SHA-256 of text, hex, into out[65]. */
static int checksum(anm_db *db, const char *text, char out[65])
{
    anm_db_result *r = NULL;
    const char *params[] = {text};
    int rc = anm_db_exec(db, checksum_sql, 1, params, &r, NULL);
    if (rc != ANM_OK)
        return rc;
    int n = snprintf(out, 65, "%s", anm_db_result_value(r, 0, 0));
    anm_db_result_destroy(&r);
    return n == 64 ? ANM_OK : ANM_EINTERNAL;
}

/* Applies one migration unless it already is; *applied_now set to 1 if applied. */
static int apply_one(anm_db *db, const char *dir, const migration_file *file, int *applied_now,
                     anm_error_detail *err)
{
    int rc;
    char version[24], sum[65];
    anm_db_result *r = NULL;
    *applied_now = 0;
    char *text = read_text(dir, file->file, err, &rc);
    if (text == NULL)
        return rc;
    int n = snprintf(version, sizeof version, "%ld", file->version);
    if (n < 0 || (size_t)n >= sizeof version) {
        rc = ANM_EINTERNAL;
        goto out;
    }
    rc = anm_db_begin(db);
    if (rc != ANM_OK) {
        db_failure(db, rc, file->file, "could not begin", err);
        goto out;
    }
    rc = anm_db_exec(db, MIGRATE_LOCK_SQL, 0, NULL, NULL, NULL);
    if (rc == ANM_OK)
        rc = checksum(db, text, sum);
    const char *params[] = {version};
    if (rc == ANM_OK)
        rc = anm_db_exec(db, "SELECT checksum FROM schema_migrations WHERE version = $1", 1, params, &r,
                         NULL);
    if (rc != ANM_OK) {
        db_failure(db, rc, file->file, "could not read schema_migrations", err);
        goto rollback;
    }
    if (anm_db_result_rows(r) == 1) {
        const char *recorded = anm_db_result_value(r, 0, 0);
        if (strcmp(recorded, sum) != 0) {
            anm_error_detail_set(err, file->file, 0, 0, NULL,
                                 "migration %ld was changed after it was applied "
                                 "(checksum %.12s... recorded, %.12s... on disk)",
                                 file->version, recorded, sum);
            rc = ANM_ECONFIG;
        }
        goto rollback; /* applied already: nothing to do */
    }
    rc = anm_db_exec_script(db, text);
    if (rc != ANM_OK) {
        db_failure(db, rc, file->file, "migration failed", err);
        goto rollback;
    }
    const char *insert_params[] = {version, file->name, sum};
    rc = anm_db_exec(db, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", 3,
                     insert_params, NULL, NULL);
    if (rc == ANM_OK)
        rc = anm_db_commit(db);
    if (rc != ANM_OK) {
        db_failure(db, rc, file->file, "could not record migration", err);
        goto rollback;
    }
    *applied_now = 1;
    anm_log_info(COMPONENT, "applied migration %s", file->file);
    goto out;
rollback:
    (void)anm_db_rollback(db);
out:
    anm_db_result_destroy(&r);
    free(text);
    return rc;
}

int anm_db_migrate(anm_db *db, const char *sql_dir, int *applied, anm_error_detail *err)
{
    if (applied != NULL)
        *applied = 0;
    if (db == NULL || sql_dir == NULL)
        return ANM_EINVAL;
    migration_file *files = NULL;
    size_t n = 0;
    int rc = list_files(sql_dir, &files, &n, err);
    if (rc != ANM_OK)
        return rc;
    /* the table itself, under the lock so two first migrators do not race */
    rc = anm_db_begin(db);
    if (rc == ANM_OK)
        rc = anm_db_exec(db, MIGRATE_LOCK_SQL, 0, NULL, NULL, NULL);
    if (rc == ANM_OK)
        rc = anm_db_exec(db, create_table_sql, 0, NULL, NULL, NULL);
    if (rc == ANM_OK)
        rc = anm_db_commit(db);
    if (rc != ANM_OK) {
        db_failure(db, rc, "schema_migrations", "could not create", err);
        (void)anm_db_rollback(db);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        int applied_now = 0;
        rc = apply_one(db, sql_dir, &files[i], &applied_now, err);
        if (rc != ANM_OK)
            goto out;
        if (applied != NULL)
            *applied += applied_now;
    }
out:
    free(files);
    return rc;
}

/* Copies src into dst, truncating to size - 1 bytes. */
static void copy_string(char *dst, size_t size, const char *src)
{
    size_t length = strlen(src);
    if (length >= size)
        length = size - 1;
    memcpy(dst, src, length);
    dst[length] = '\0';
}

static int compare_status(const void *a, const void *b)
{
    const anm_migration *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

int anm_db_migration_status(anm_db *db, const char *sql_dir, anm_migration **out, size_t *count,
                            anm_error_detail *err)
{
    if (out == NULL || count == NULL)
        return ANM_EINVAL;
    *out = NULL;
    *count = 0;
    if (db == NULL || sql_dir == NULL)
        return ANM_EINVAL;
    migration_file *files = NULL;
    size_t n_files = 0;
    anm_db_result *exists = NULL, *rows = NULL;
    anm_migration *list = NULL;
    int rc = list_files(sql_dir, &files, &n_files, err);
    if (rc != ANM_OK)
        return rc;
    rc = anm_db_exec(db, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL, &exists, NULL);
    if (rc != ANM_OK) {
        db_failure(db, rc, "schema_migrations", "could not query", err);
        goto out;
    }
    int has_table = strcmp(anm_db_result_value(exists, 0, 0), "t") == 0;
    int n_rows = 0;
    if (has_table) {
        rc = anm_db_exec(db,
                         "SELECT version, name, checksum,"
                         " to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
                         " FROM schema_migrations ORDER BY version",
                         0, NULL, &rows, NULL);
        if (rc != ANM_OK) {
            db_failure(db, rc, "schema_migrations", "could not query", err);
            goto out;
        }
        n_rows = anm_db_result_rows(rows);
    }
    list = calloc(n_files + (size_t)n_rows + 1, sizeof *list);
    if (list == NULL) {
        rc = ANM_ENOMEM;
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < n_files; i++) {
        anm_migration *m = &list[n++];
        m->version = files[i].version;
        memcpy(m->name, files[i].name, sizeof m->name);
        memcpy(m->file, files[i].file, sizeof m->file);
        m->state = ANM_MIGRATION_PENDING;
        for (int row = 0; row < n_rows; row++) {
            long version = 0;
            if (anm_parse_long(anm_db_result_value(rows, row, 0), 1, 999999999L, &version) != ANM_OK ||
                version != m->version)
                continue;
            char *text = read_text(sql_dir, m->file, err, &rc);
            if (text == NULL)
                goto out;
            char sum[65];
            rc = checksum(db, text, sum);
            free(text);
            if (rc != ANM_OK) {
                db_failure(db, rc, m->file, "could not compute checksum", err);
                goto out;
            }
            m->state = strcmp(sum, anm_db_result_value(rows, row, 2)) == 0 ? ANM_MIGRATION_APPLIED
                                                                            : ANM_MIGRATION_CHANGED;
            copy_string(m->applied_at, sizeof m->applied_at, anm_db_result_value(rows, row, 3));
        }
    }
    /* applied versions without a file: the database is newer than this tree */
    for (int row = 0; row < n_rows; row++) {
        long version = 0;
        if (anm_parse_long(anm_db_result_value(rows, row, 0), 1, 999999999L, &version) != ANM_OK)
            continue;
        int known = 0;
        for (size_t i = 0; i < n_files; i++)
            known |= files[i].version == version;
        if (known)
            continue;
        anm_migration *m = &list[n++];
        m->version = version;
        copy_string(m->name, sizeof m->name, anm_db_result_value(rows, row, 1));
        copy_string(m->applied_at, sizeof m->applied_at, anm_db_result_value(rows, row, 3));
        m->state = ANM_MIGRATION_MISSING;
    }
    qsort(list, n, sizeof *list, compare_status);
    *out = list;
    *count = n;
    list = NULL;
    rc = ANM_OK;
out:
    free(list);
    anm_db_result_destroy(&rows);
    anm_db_result_destroy(&exists);
    free(files);
    return rc;
}
