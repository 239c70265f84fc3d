/*
 * mosquitto_fixture.h: a real mosquitto broker for integration tests,
 * started in a temporary directory with a TLS listener on 127.0.0.1 (an
 * ephemeral port chosen at start and kept across restarts), a password file
 * made with mosquitto_passwd and anonymous access refused. Readiness: the
 * broker's TCP port accepts connections (checked for up to 10 s).
 */
#ifndef ANM_MOSQUITTO_FIXTURE_H
#define ANM_MOSQUITTO_FIXTURE_H

#include <sys/types.h>

#include "tls_fixture.h"

typedef struct anm_mosquitto_fixture {
    char *dir;
    int port;
    pid_t pid;        /* 0 when stopped */
    char conf[512];
    char password_file[512]; /* mosquitto's hashed password file */
    char log[512];
} anm_mosquitto_fixture;

/*
 * Writes the config (TLS with tls's CA and server certificate, TLS 1.2
 * minimum, password file with user/password) and starts the broker.
 * 0 on success.
 */
int anm_mosquitto_start(anm_mosquitto_fixture *fx, const anm_tls_fixture *tls, const char *user,
                        const char *password);

/* Stops the broker (SIGTERM, then waits). Idempotent. */
void anm_mosquitto_stop(anm_mosquitto_fixture *fx);

/* Starts it again on the same port. 0 on success. */
int anm_mosquitto_restart(anm_mosquitto_fixture *fx);

/* Stops the broker and removes its directory. */
void anm_mosquitto_free(anm_mosquitto_fixture *fx);

/* Finds a free TCP port on 127.0.0.1 (bind to 0, read it, close). */
int anm_test_free_port(void);

/* Waits until 127.0.0.1:port accepts a TCP connection; 0 if it did within timeout_ms. */
int anm_test_wait_port(int port, int timeout_ms);

#endif
