/*
 * market_harness.h: what the anm-market integration tests share: the path
 * of a built executable, CURVE keys made with `anm market keys generate`,
 * and the readiness of a started `anm-market serve` (its ready file).
 */
#ifndef ANM_TEST_MARKET_HARNESS_H
#define ANM_TEST_MARKET_HARNESS_H

#include "testlib.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

static inline void market_test_bin(char *buf, size_t size, const char *name)
{
    cr_assert_lt(snprintf(buf, size, "%s/%s", anm_test_bin_dir(), name), (int)size);
}

/* Generates the key pair `name` in dir (a server key if server). */
static inline void market_test_keygen(const char *dir, const char *name, int server)
{
    char anm[1024];
    market_test_bin(anm, sizeof anm, "anm");
    const char *argv[] = {anm, "market", "keys", "generate", "--dir", dir, name,
                          server ? "--server" : NULL, NULL};
    char *err = NULL;
    int status = anm_test_run_args(argv, NULL, &err);
    cr_assert_eq(status, 0, "keys generate %s: %s", name, err ? err : "");
    free(err);
}

/*
 * Waits up to 10 s for the ready file of the anm-market started as pid
 * (logging to log) and copies its router= endpoint to router. Fails the
 * test with the service's log if it exited first; *pid is then 0.
 */
static inline void market_test_wait_ready(const char *ready, pid_t *pid, const char *log,
                                          char *router, size_t router_size)
{
    int exited = 0;
    char *text = anm_test_wait_for_file(ready, *pid, 10000, &exited);
    if (text == NULL && exited) {
        char *log_text = anm_test_read_file(log, NULL);
        *pid = 0;
        cr_assert_fail("anm-market exited before it was ready: %s", log_text ? log_text : "");
    }
    cr_assert_not_null(text, "anm-market not ready within 10 s");
    const char *r = strstr(text, "router=");
    cr_assert_not_null(r);
    size_t n = strcspn(r + 7, "\n");
    cr_assert_lt(n, router_size);
    memcpy(router, r + 7, n);
    router[n] = '\0';
    free(text);
}

#endif
