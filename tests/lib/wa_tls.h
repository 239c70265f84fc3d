/*
 * wa_tls.h: key material for the Wider Access tests, made with the openssl
 * CLI in a fresh temporary directory:
 *   ca.pem/ca.key          a self-signed EC P-256 test CA
 *   server.pem/server.key  a TLS server certificate from that CA for
 *                          127.0.0.1 and localhost
 *   rsa.pem/rsa.key        self-signed RSA-2048 signing certificate (RS256, PS256)
 *   ec.pem/ec.key          self-signed EC P-256 signing certificate (ES256)
 *   neso.pem/neso.key      a second EC P-256 signing identity ("NESO")
 *   rsa1024.pem/.key       a too-small RSA key, for rejection tests
 * Each <name> is available as a path (wa_tls_path) and as PEM text
 * (wa_tls_pem, loaded on demand).
 */
#ifndef ANM_TESTS_WA_TLS_H
#define ANM_TESTS_WA_TLS_H

#include <stddef.h>

typedef struct wa_tls wa_tls;

/* Generates everything; NULL if openssl failed (the reason is printed). */
wa_tls *wa_tls_new(void);
/* Removes the directory and frees. Idempotent; nulls *tls. */
void wa_tls_destroy(wa_tls **tls);

/* Path of file (e.g. "ca.pem") in the fixture's directory (borrowed until the next call). */
const char *wa_tls_path(wa_tls *tls, const char *file);
/* Contents of file (borrowed until destroy); NULL if missing. */
const char *wa_tls_pem(wa_tls *tls, const char *file);
/* The temporary directory. */
const char *wa_tls_dir(const wa_tls *tls);

#endif
