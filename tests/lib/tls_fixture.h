/*
 * tls_fixture.h: throw-away TLS material for integration tests, made with
 * the openssl command-line tool in a temporary directory: a self-signed CA,
 * a server certificate for "localhost" and 127.0.0.1 signed by it (RSA
 * 2048, so ECDHE-RSA suites work) and a client certificate signed by it.
 */
#ifndef ANM_TLS_FIXTURE_H
#define ANM_TLS_FIXTURE_H

typedef struct anm_tls_fixture {
    char *dir;             /* the temporary directory (owned) */
    char ca_cert[512];     /* ca.pem */
    char ca_key[512];
    char server_cert[512]; /* server.pem */
    char server_key[512];
    char client_cert[512]; /* client.pem */
    char client_key[512];
    char other_ca_cert[512]; /* a second, unrelated CA (for "wrong CA" tests) */
} anm_tls_fixture;

/* Creates the material under a new temporary directory. 0 on success. */
int anm_tls_fixture_make(anm_tls_fixture *fx);

/* Removes the directory. Idempotent. */
void anm_tls_fixture_free(anm_tls_fixture *fx);

#endif
