/* pg_harness.c: PostgreSQL clusters for integration tests, through scripts/pg. */
#include "pg_harness.h"

#include "engine/clock.h"
#include "engine/error.h"
#include "engine/db.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <criterion/stats.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SHARED_DIR_ENV "ANM_TEST_PG_SHARED_DIR"

struct anm_pg_cluster {
    char *dir;
    char conninfo[512];
};

/* Runs scripts/pg COMMAND DIR; 0 on success (output on stderr otherwise). */
static int run_pg(const char *command, const char *dir)
{
    char script[1024];
    anm_test_source_path(script, sizeof script, "scripts/pg");
    char *const argv[] = {script, (char *)(uintptr_t)command, (char *)(uintptr_t)dir, NULL};
    char *out = NULL, *err = NULL;
    int status = anm_test_run(argv, &out, &err);
    if (status != 0)
        fprintf(stderr, "pg_harness: scripts/pg %s %s failed (%d): %s%s\n", command, dir, status,
                out ? out : "", err ? err : "");
    free(out);
    free(err);
    return status == 0 ? 0 : -1;
}

/* Reads DIR/conninfo (one line) into buf. */
static int read_conninfo(const char *dir, char *buf, size_t size)
{
    char path[1024];
    int n = snprintf(path, sizeof path, "%s/conninfo", dir);
    if (n < 0 || (size_t)n >= sizeof path)
        return -1;
    size_t length = 0;
    char *text = anm_test_read_file(path, &length);
    if (text == NULL)
        return -1;
    while (length > 0 && (text[length - 1] == '\n' || text[length - 1] == '\r'))
        text[--length] = '\0';
    n = snprintf(buf, size, "%s", text);
    free(text);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

int anm_pg_cluster_start(anm_pg_cluster **out)
{
    *out = NULL;
    anm_pg_cluster *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -1;
    c->dir = anm_test_tmpdir("anm-pg");
    if (c->dir == NULL || run_pg("start", c->dir) != 0 ||
        read_conninfo(c->dir, c->conninfo, sizeof c->conninfo) != 0) {
        anm_pg_cluster_destroy(&c);
        return -1;
    }
    *out = c;
    return 0;
}

const char *anm_pg_cluster_conninfo(const anm_pg_cluster *c)
{
    return c ? c->conninfo : "";
}

const char *anm_pg_cluster_dir(const anm_pg_cluster *c)
{
    return c ? c->dir : "";
}

int anm_pg_cluster_stop(anm_pg_cluster *c)
{
    return c ? run_pg("stop", c->dir) : -1;
}

int anm_pg_cluster_restart(anm_pg_cluster *c)
{
    if (c == NULL || run_pg("start", c->dir) != 0)
        return -1;
    return read_conninfo(c->dir, c->conninfo, sizeof c->conninfo);
}

void anm_pg_cluster_destroy(anm_pg_cluster **c)
{
    if (c == NULL || *c == NULL)
        return;
    if ((*c)->dir != NULL) {
        char pg_version[1024];
        int n = snprintf(pg_version, sizeof pg_version, "%s/data/PG_VERSION", (*c)->dir);
        if (n > 0 && (size_t)n < sizeof pg_version && access(pg_version, F_OK) == 0)
            (void)run_pg("destroy", (*c)->dir);
        anm_test_rmtree((*c)->dir);
        free((*c)->dir);
    }
    free(*c);
    *c = NULL;
}

/* ---- the shared cluster ---- */

/* In the runner, before any worker: choose the directory (no cluster yet). */
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    if (getenv(SHARED_DIR_ENV) != NULL)
        return;
    char *dir = anm_test_tmpdir("anm-pg-shared");
    if (dir != NULL)
        setenv(SHARED_DIR_ENV, dir, 1);
    free(dir);
}

/* In the runner, after the last test: stop and remove it if a test started it. */
ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    const char *dir = getenv(SHARED_DIR_ENV);
    if (dir == NULL)
        return;
    char pg_version[1024];
    int n = snprintf(pg_version, sizeof pg_version, "%s/data/PG_VERSION", dir);
    if (n > 0 && (size_t)n < sizeof pg_version && access(pg_version, F_OK) == 0)
        (void)run_pg("destroy", dir);
    anm_test_rmtree(dir);
    char lock_path[1024];
    n = snprintf(lock_path, sizeof lock_path, "%s.lock", dir);
    if (n > 0 && (size_t)n < sizeof lock_path)
        unlink(lock_path);
}

int anm_pg_test_database(char *conninfo, size_t size)
{
    const char *dir = getenv(SHARED_DIR_ENV);
    if (dir == NULL) {
        fprintf(stderr, "pg_harness: %s is not set (the runner hook did not run)\n", SHARED_DIR_ENV);
        return -1;
    }
    char lock_path[1024], base[512];
    int n = snprintf(lock_path, sizeof lock_path, "%s.lock", dir);
    if (n < 0 || (size_t)n >= sizeof lock_path)
        return -1;
    int fd = open(lock_path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* scripts/pg start is idempotent: it starts the cluster only once */
    int rc = run_pg("start", dir) == 0 && read_conninfo(dir, base, sizeof base) == 0 ? 0 : -1;
    flock(fd, LOCK_UN);
    close(fd);
    if (rc != 0)
        return -1;

    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    char name[64], create[128];
    n = snprintf(name, sizeof name, "t_%ld_%lld_%ld", (long)getpid(), (long long)now.tv_sec, now.tv_nsec);
    if (n < 0 || (size_t)n >= sizeof name)
        return -1;
    /* an identifier cannot be a parameter; name is digits and '_' only */
    n = snprintf(create, sizeof create, "CREATE DATABASE %s", name);
    if (n < 0 || (size_t)n >= sizeof create)
        return -1;
    anm_db *db = NULL;
    rc = anm_db_connect(base, NULL, &db);
    if (rc == 0)
        rc = anm_db_exec_script(db, create);
    if (rc != 0)
        fprintf(stderr, "pg_harness: %s failed: %s\n", create, anm_db_error_message(db));
    anm_db_destroy(&db);
    if (rc != 0)
        return -1;
    /* a keyword repeated in a conninfo string: the last one wins */
    n = snprintf(conninfo, size, "%s dbname=%s", base, name);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

long long anm_pg_query_count(const char *conninfo, const char *sql)
{
    anm_db *db = NULL;
    anm_db_result *r = NULL;
    long long v = -1;
    anm_db_options o = {.max_attempts = 1};
    if (anm_db_connect(conninfo, &o, &db) == ANM_OK &&
        anm_db_exec(db, sql, 0, NULL, &r, NULL) == ANM_OK && anm_db_result_rows(r) == 1)
        v = strtoll(anm_db_result_value(r, 0, 0), NULL, 10);
    anm_db_result_destroy(&r);
    anm_db_destroy(&db);
    return v;
}

long long anm_pg_wait_count(const char *conninfo, const char *sql, long long want,
                            long timeout_ms)
{
    int64_t deadline = anm_monotonic_ns() + timeout_ms * 1000000L;
    long long v;
    while ((v = anm_pg_query_count(conninfo, sql)) != want && anm_monotonic_ns() < deadline)
        anm_test_sleep_ms(50);
    return v;
}
