/*
 * testlib.h: helpers shared by the Criterion tests: where the source tree
 * and built binaries are, temporary directories, running a command and
 * capturing its output.
 */
#ifndef ANM_TESTLIB_H
#define ANM_TESTLIB_H

#include <stddef.h>
#include <sys/types.h>

/* $ANM_SOURCE_DIR (set by CTest), or "." */
const char *anm_test_source_dir(void);
/* $ANM_BIN_DIR (build/bin, set by CTest), or "build/bin" */
const char *anm_test_bin_dir(void);

/* Writes "<source dir>/<relative>" into buf; returns buf. */
char *anm_test_source_path(char *buf, size_t size, const char *relative);

/* Makes a fresh directory under $TMPDIR (or /tmp); returns a new string. */
char *anm_test_tmpdir(const char *prefix);

/* Removes a directory tree (rm -rf semantics, no shell). */
void anm_test_rmtree(const char *path);

/*
 * Runs argv (argv[0] looked up on PATH unless it contains '/'), capturing
 * stdout and stderr into new strings (either pointer may be NULL to
 * discard). Returns the exit status (0-255), or -1 if it could not run or was
 * killed by a signal.
 */
int anm_test_run(char *const argv[], char **out, char **err);

/*
 * anm_test_run over a const argv (string literals, as -Wwrite-strings makes
 * them): runs a copy.
 */
int anm_test_run_args(const char *const argv[], char **out, char **err);

/* A NULL-terminated copy of argv that execv may take; NULL on ENOMEM. */
char **anm_test_argv_dup(const char *const argv[]);
void anm_test_argv_free(char **argv);

/* Sleeps ms milliseconds (polling loops with a deadline only). */
void anm_test_sleep_ms(long ms);

/*
 * Waits until path exists, polling every 5 ms, and returns its contents (a
 * new string). Returns NULL if the child pid exited first (*exited = 1;
 * the child is reaped) or after timeout_ms (*exited = 0). This is how
 * tests wait for a service's --ready-file without a bare sleep.
 */
char *anm_test_wait_for_file(const char *path, pid_t pid, long timeout_ms, int *exited);

/* Reads a whole file into a new NUL-terminated string; NULL on failure. */
char *anm_test_read_file(const char *path, size_t *length);

/* Writes text to path (created or truncated); 0 on success. */
int anm_test_write_file(const char *path, const char *text);

#endif
