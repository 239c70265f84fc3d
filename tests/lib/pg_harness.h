/*
 * pg_harness.h: real PostgreSQL clusters for integration tests, started
 * through scripts/pg (initdb in a temporary directory, Unix socket there, a
 * free TCP port, readiness checked with pg_isready).
 *
 * Two ways to get a database:
 *
 * - anm_pg_test_database(): a fresh, empty database in the cluster shared by
 *   every test of this test binary. The cluster is started by the first
 *   test that asks (under a file lock, since Criterion runs each test in its
 *   own worker process) and stopped and removed by a Criterion hook in the
 *   runner after the last test. Cost: about 1.5 s for the first test, then
 *   about 0.2 s (CREATE DATABASE with fsync on) per call.
 *
 * - anm_pg_cluster_start(): a private cluster the test owns and may stop and
 *   restart (outage tests). Cost: about 1.5 s each; free it with
 *   anm_pg_cluster_destroy.
 */
#ifndef ANM_PG_HARNESS_H
#define ANM_PG_HARNESS_H

#include <stddef.h>

typedef struct anm_pg_cluster anm_pg_cluster;

/* Starts a private cluster in a new temporary directory. 0 or -1. */
int anm_pg_cluster_start(anm_pg_cluster **out);
/* The libpq connection string (socket in the cluster's directory); borrowed. */
const char *anm_pg_cluster_conninfo(const anm_pg_cluster *c);
const char *anm_pg_cluster_dir(const anm_pg_cluster *c);
/* Fast shutdown, keeping the data. 0 or -1. */
int anm_pg_cluster_stop(anm_pg_cluster *c);
/* Starts a stopped cluster again (same port when still free; the
   connection string is re-read). 0 or -1. */
int anm_pg_cluster_restart(anm_pg_cluster *c);
/* Stops the cluster and removes its directory; sets *c to NULL. */
void anm_pg_cluster_destroy(anm_pg_cluster **c);

/*
 * Creates a new empty database in the shared cluster and writes its
 * connection string into conninfo. 0, or -1 (with a reason on stderr).
 */
int anm_pg_test_database(char *conninfo, size_t size);

/*
 * The first column of the one row sql returns, as a number, on a fresh
 * connection to conninfo; -1 if the query fails or returns no single row.
 */
long long anm_pg_query_count(const char *conninfo, const char *sql);

/* Polls anm_pg_query_count until it equals want or timeout_ms passes; returns the last value. */
long long anm_pg_wait_count(const char *conninfo, const char *sql, long long want,
                            long timeout_ms);

#endif
