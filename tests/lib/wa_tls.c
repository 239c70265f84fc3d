/* wa_tls.c: Wider Access test key material via the openssl CLI (see wa_tls.h). */
#include "wa_tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

enum { MAX_FILES = 16 };

struct wa_tls {
    char *dir;
    char path[1024];
    struct {
        char name[32];
        char *text;
    } files[MAX_FILES];
    size_t n_files;
};

static const char openssl_config[] =
    "[req]\n"
    "distinguished_name = dn\n"
    "prompt = no\n"
    "[dn]\n"
    "CN = anm-test\n"
    "[v3_ca]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "[v3_server]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage = serverAuth,clientAuth\n"
    "subjectAltName = IP:127.0.0.1,DNS:localhost\n";

/* Runs args (NULL-terminated), logging a failure with its stderr. */
static int run(const char *const *args)
{
    char *err = NULL;
    int status = anm_test_run_args(args, NULL, &err);
    if (status != 0)
        fprintf(stderr, "wa_tls: %s %s failed (%d): %s\n", args[0], args[1], status,
                err ? err : "");
    free(err);
    return status;
}

static char *join(const wa_tls *tls, const char *file)
{
    size_t n = strlen(tls->dir) + strlen(file) + 2;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", tls->dir, file);
    return p;
}

/* Self-signed certificate with a new key of keyspec ("rsa:2048" or "ec"). */
static int self_signed(wa_tls *tls, const char *cnf, const char *name, const char *keyspec,
                       const char *extensions)
{
    char key_file[64], cert_file[64], subject[64];
    snprintf(key_file, sizeof key_file, "%s.key", name);
    snprintf(cert_file, sizeof cert_file, "%s.pem", name);
    snprintf(subject, sizeof subject, "/CN=anm-test-%s", name);
    char *key = join(tls, key_file), *cert = join(tls, cert_file);
    int is_ec = strcmp(keyspec, "ec") == 0;
    const char *argv[24];
    int i = 0;
    argv[i++] = "openssl";
    argv[i++] = "req";
    argv[i++] = "-x509";
    argv[i++] = "-config";
    argv[i++] = cnf;
    if (extensions != NULL) {
        argv[i++] = "-extensions";
        argv[i++] = extensions;
    }
    argv[i++] = "-newkey";
    argv[i++] = keyspec;
    if (is_ec) {
        argv[i++] = "-pkeyopt";
        argv[i++] = "ec_paramgen_curve:P-256";
    }
    argv[i++] = "-nodes";
    argv[i++] = "-keyout";
    argv[i++] = key;
    argv[i++] = "-out";
    argv[i++] = cert;
    argv[i++] = "-days";
    argv[i++] = "2";
    argv[i++] = "-subj";
    argv[i++] = subject;
    argv[i] = NULL;
    int rc = run(argv);
    free(key);
    free(cert);
    return rc;
}

wa_tls *wa_tls_new(void)
{
    wa_tls *tls = calloc(1, sizeof *tls);
    if (tls == NULL)
        return NULL;
    tls->dir = anm_test_tmpdir("wa-tls");
    char *cnf = join(tls, "openssl.cnf");
    char *csr = join(tls, "server.csr");
    char *server_key = join(tls, "server.key");
    char *server_pem = join(tls, "server.pem");
    char *ca_pem = join(tls, "ca.pem");
    char *ca_key = join(tls, "ca.key");
    int ok = cnf && csr && server_key && server_pem && ca_pem && ca_key &&
             anm_test_write_file(cnf, openssl_config) == 0;
    ok = ok && self_signed(tls, cnf, "ca", "ec", "v3_ca") == 0;
    if (ok) {
        const char *req[] = {"openssl", "req", "-new", "-config", cnf, "-newkey", "ec", "-pkeyopt",
                       "ec_paramgen_curve:P-256", "-nodes", "-keyout", server_key, "-out", csr,
                       "-subj", "/CN=localhost", NULL};
        ok = run(req) == 0;
    }
    if (ok) {
        const char *sign[] = {"openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
                        "-set_serial", "2", "-out", server_pem, "-days", "2", "-extfile", cnf,
                        "-extensions", "v3_server", NULL};
        ok = run(sign) == 0;
    }
    ok = ok && self_signed(tls, cnf, "rsa", "rsa:2048", NULL) == 0;
    ok = ok && self_signed(tls, cnf, "ec", "ec", NULL) == 0;
    ok = ok && self_signed(tls, cnf, "neso", "ec", NULL) == 0;
    ok = ok && self_signed(tls, cnf, "rsa1024", "rsa:1024", NULL) == 0;
    free(cnf);
    free(csr);
    free(server_key);
    free(server_pem);
    free(ca_pem);
    free(ca_key);
    if (!ok)
        wa_tls_destroy(&tls);
    return tls;
}

void wa_tls_destroy(wa_tls **tls)
{
    if (tls == NULL || *tls == NULL)
        return;
    if ((*tls)->dir != NULL)
        anm_test_rmtree((*tls)->dir);
    free((*tls)->dir);
    for (size_t i = 0; i < (*tls)->n_files; i++)
        free((*tls)->files[i].text);
    free(*tls);
    *tls = NULL;
}

const char *wa_tls_path(wa_tls *tls, const char *file)
{
    snprintf(tls->path, sizeof tls->path, "%s/%s", tls->dir, file);
    return tls->path;
}

const char *wa_tls_pem(wa_tls *tls, const char *file)
{
    for (size_t i = 0; i < tls->n_files; i++)
        if (strcmp(tls->files[i].name, file) == 0)
            return tls->files[i].text;
    if (tls->n_files == MAX_FILES)
        return NULL;
    char *text = anm_test_read_file(wa_tls_path(tls, file), NULL);
    if (text == NULL)
        return NULL;
    snprintf(tls->files[tls->n_files].name, sizeof tls->files[0].name, "%s", file);
    tls->files[tls->n_files].text = text;
    return tls->files[tls->n_files++].text;
}

const char *wa_tls_dir(const wa_tls *tls)
{
    return tls->dir;
}
