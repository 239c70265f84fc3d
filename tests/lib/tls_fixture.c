/* tls_fixture.c: see tls_fixture.h. */
#include "tls_fixture.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#define ARG(s) ((char *)(uintptr_t)(s))

static int run(char *const argv[])
{
    char *err = NULL;
    int rc = anm_test_run(argv, NULL, &err);
    if (rc != 0)
        fprintf(stderr, "tls_fixture: %s failed (%d): %s\n", argv[1], rc, err ? err : "");
    free(err);
    return rc;
}

static int make_ca(const char *cert, const char *key, const char *cn)
{
    char subject[128];
    snprintf(subject, sizeof subject, "/CN=%s", cn);
    char *argv[] = {ARG("openssl"), ARG("req"), ARG("-x509"), ARG("-newkey"), ARG("rsa:2048"), ARG("-nodes"), ARG("-days"), ARG("2"),
                    ARG("-keyout"), ARG(key), ARG("-out"), ARG(cert), ARG("-subj"),
                    subject, ARG("-addext"), ARG("basicConstraints=critical,CA:TRUE"),
                    ARG("-addext"), ARG("keyUsage=critical,keyCertSign,cRLSign"), NULL};
    return run(argv);
}

static int make_leaf(anm_tls_fixture *fx, const char *name, const char *cert, const char *key,
                     const char *ext_text)
{
    char csr[600], ext[600];
    snprintf(csr, sizeof csr, "%s/%s.csr", fx->dir, name);
    snprintf(ext, sizeof ext, "%s/%s.ext", fx->dir, name);
    if (anm_test_write_file(ext, ext_text) != 0)
        return -1;
    char subject[128];
    snprintf(subject, sizeof subject, "/CN=%s", name);
    char *req[] = {ARG("openssl"), ARG("req"), ARG("-newkey"), ARG("rsa:2048"), ARG("-nodes"), ARG("-keyout"),
                   ARG(key), ARG("-out"), csr, ARG("-subj"), subject, NULL};
    if (run(req) != 0)
        return -1;
    char *sign[] = {ARG("openssl"), ARG("x509"), ARG("-req"), ARG("-in"), csr, ARG("-CA"), fx->ca_cert, ARG("-CAkey"),
                    fx->ca_key, ARG("-CAcreateserial"), ARG("-days"), ARG("2"), ARG("-out"), ARG(cert),
                    ARG("-extfile"), ext, NULL};
    return run(sign);
}

int anm_tls_fixture_make(anm_tls_fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    fx->dir = anm_test_tmpdir("anm-tls");
    if (fx->dir == NULL)
        return -1;
    snprintf(fx->ca_cert, sizeof fx->ca_cert, "%s/ca.pem", fx->dir);
    snprintf(fx->ca_key, sizeof fx->ca_key, "%s/ca.key", fx->dir);
    snprintf(fx->server_cert, sizeof fx->server_cert, "%s/server.pem", fx->dir);
    snprintf(fx->server_key, sizeof fx->server_key, "%s/server.key", fx->dir);
    snprintf(fx->client_cert, sizeof fx->client_cert, "%s/client.pem", fx->dir);
    snprintf(fx->client_key, sizeof fx->client_key, "%s/client.key", fx->dir);
    snprintf(fx->other_ca_cert, sizeof fx->other_ca_cert, "%s/other-ca.pem", fx->dir);
    char other_key[600];
    snprintf(other_key, sizeof other_key, "%s/other-ca.key", fx->dir);
    if (make_ca(fx->ca_cert, fx->ca_key, "anm test ca") != 0 ||
        make_ca(fx->other_ca_cert, other_key, "unrelated ca") != 0 ||
        make_leaf(fx, "localhost", fx->server_cert, fx->server_key,
                  "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                  "extendedKeyUsage=serverAuth\n") != 0 ||
        make_leaf(fx, "anm-client", fx->client_cert, fx->client_key,
                  "extendedKeyUsage=clientAuth\n") != 0) {
        anm_tls_fixture_free(fx);
        return -1;
    }
    return 0;
}

void anm_tls_fixture_free(anm_tls_fixture *fx)
{
    if (fx->dir != NULL) {
        anm_test_rmtree(fx->dir);
        free(fx->dir);
        fx->dir = NULL;
    }
}
