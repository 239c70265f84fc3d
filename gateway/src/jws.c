/* jws.c: JWS compact serialisation, signing and strict verification (see jws.h). */
#include "gateway/jws.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"

#define COMPONENT "wa"

enum { KID_MAX = 128, THUMB_LEN = 43, ES256_COORD = 32, MIN_RSA_BITS = 2048 };

static const char *const alg_names[GATEWAY_JWS_ALG_COUNT] = {"RS256", "PS256", "ES256"};

const char *gateway_jws_alg_name(gateway_jws_alg alg)
{
    if ((unsigned)alg >= GATEWAY_JWS_ALG_COUNT)
        return "?";
    return alg_names[alg];
}

int gateway_jws_alg_parse(const char *name, gateway_jws_alg *out)
{
    if (name == NULL)
        return ANM_EINVAL;
    for (int i = 0; i < GATEWAY_JWS_ALG_COUNT; i++) {
        if (strcmp(name, alg_names[i]) == 0) {
            *out = (gateway_jws_alg)i;
            return ANM_OK;
        }
    }
    return ANM_EINVAL;
}

const char *gateway_jws_reason_code(gateway_jws_reason reason)
{
    switch (reason) {
    case GATEWAY_JWS_OK: return "ok";
    case GATEWAY_JWS_OVERSIZED: return "oversized";
    case GATEWAY_JWS_SEGMENT_COUNT: return "segment_count";
    case GATEWAY_JWS_BAD_BASE64URL: return "bad_base64url";
    case GATEWAY_JWS_BAD_HEADER: return "bad_header";
    case GATEWAY_JWS_UNSIGNED: return "unsigned";
    case GATEWAY_JWS_UNKNOWN_ALG: return "unknown_alg";
    case GATEWAY_JWS_ALG_NOT_ALLOWED: return "alg_not_allowed";
    case GATEWAY_JWS_UNKNOWN_KEY: return "unknown_key";
    case GATEWAY_JWS_ALG_KEY_MISMATCH: return "alg_key_mismatch";
    case GATEWAY_JWS_BAD_SIGNATURE_LENGTH: return "bad_signature_length";
    case GATEWAY_JWS_BAD_SIGNATURE: return "bad_signature";
    }
    return "unknown";
}

/* ---- base64url ------------------------------------------------------------ */

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *gateway_base64url_encode(const void *data, size_t n)
{
    const unsigned char *in = data;
    if (n > (SIZE_MAX - 4) / 4 * 3)
        return NULL;
    size_t out_len = n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
    char *out = malloc(out_len + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned long v = ((unsigned long)in[i] << 16) | ((unsigned long)in[i + 1] << 8) | in[i + 2];
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (n - i == 1) {
        unsigned long v = (unsigned long)in[i] << 16;
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned long v = ((unsigned long)in[i] << 16) | ((unsigned long)in[i + 1] << 8);
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
    return out;
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int gateway_base64url_decode(const char *text, size_t len, unsigned char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (len % 4 == 1)
        return ANM_EPARSE;
    size_t n = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
    unsigned char *buf = malloc(n + 1);
    if (buf == NULL)
        return ANM_ENOMEM;
    size_t o = 0;
    unsigned long acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)text[i]);
        if (v < 0) {
            free(buf);
            return ANM_EPARSE;
        }
        acc = (acc << 6) | (unsigned long)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)((acc >> bits) & 0xFF);
        }
    }
    /* non-canonical: the unused low bits of the last character must be zero */
    if (bits > 0 && (acc & ((1ul << bits) - 1)) != 0) {
        free(buf);
        return ANM_EPARSE;
    }
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return ANM_OK;
}

/* ---- OpenSSL helpers -------------------------------------------------------- */

static void openssl_reason(char *buf, size_t size)
{
    unsigned long e = ERR_get_error();
    if (e == 0)
        snprintf(buf, size, "unknown openssl error");
    else
        ERR_error_string_n(e, buf, size);
    ERR_clear_error();
}

/* Checks that pkey suits alg; fills why (lower-case text) and returns 0 if not. */
static int key_suits_alg(EVP_PKEY *pkey, gateway_jws_alg alg, char *why, size_t why_size)
{
    int id = EVP_PKEY_get_base_id(pkey);
    switch (alg) {
    case GATEWAY_JWS_RS256:
    case GATEWAY_JWS_PS256:
        if (id != EVP_PKEY_RSA && !(alg == GATEWAY_JWS_PS256 && id == EVP_PKEY_RSA_PSS)) {
            snprintf(why, why_size, "%s needs an RSA key, the key is %s", alg_names[alg],
                     OBJ_nid2sn(id));
            return 0;
        }
        if (EVP_PKEY_get_bits(pkey) < MIN_RSA_BITS) {
            snprintf(why, why_size, "%s needs an RSA key of at least %d bits, the key has %d",
                     alg_names[alg], MIN_RSA_BITS, EVP_PKEY_get_bits(pkey));
            return 0;
        }
        return 1;
    case GATEWAY_JWS_ES256: {
        if (id != EVP_PKEY_EC) {
            snprintf(why, why_size, "ES256 needs an EC P-256 key, the key is %s", OBJ_nid2sn(id));
            return 0;
        }
        char group[64] = "";
        size_t group_len = 0;
        if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &group_len) != 1 ||
            (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)) {
            snprintf(why, why_size, "ES256 needs an EC P-256 key, the key's curve is %s",
                     group[0] ? group : "unknown");
            return 0;
        }
        return 1;
    }
    }
    snprintf(why, why_size, "unknown algorithm");
    return 0;
}

static int thumbprint_of(X509 *cert, char *buf, size_t size)
{
    unsigned char digest[32];
    unsigned int digest_len = 0;
    if (size < THUMB_LEN + 1)
        return ANM_ERANGE;
    if (X509_digest(cert, EVP_sha256(), digest, &digest_len) != 1 || digest_len != 32)
        return ANM_EINTERNAL;
    char *encoded = gateway_base64url_encode(digest, digest_len);
    if (encoded == NULL)
        return ANM_ENOMEM;
    memcpy(buf, encoded, THUMB_LEN + 1);
    free(encoded);
    return ANM_OK;
}

int gateway_jws_cert_thumbprint(const char *cert_pem, char *buf, size_t size)
{
    if (cert_pem == NULL)
        return ANM_ECONFIG;
    BIO *bio = BIO_new_mem_buf(cert_pem, -1);
    if (bio == NULL)
        return ANM_ENOMEM;
    X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (cert == NULL) {
        ERR_clear_error();
        return ANM_ECONFIG;
    }
    int rc = thumbprint_of(cert, buf, size);
    X509_free(cert);
    return rc;
}

static char *read_text_file(const char *path, anm_error_detail *detail)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        anm_error_detail_set(detail, path, 0, 0, NULL, "could not open \"%s\": %s", path,
                             strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            if (cap > (1u << 24)) {
                anm_error_detail_set(detail, path, 0, 0, NULL, "\"%s\" is larger than 16 MiB", path);
                goto fail;
            }
            cap = cap ? cap * 2 : 8192;
            char *grown = realloc(buf, cap);
            if (grown == NULL) {
                anm_error_detail_set(detail, path, 0, 0, NULL, "out of memory reading \"%s\"", path);
                goto fail;
            }
            buf = grown;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        anm_error_detail_set(detail, path, 0, 0, NULL, "could not read \"%s\"", path);
        goto fail;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

/* Converts a DER ECDSA signature to the JWS R || S form (64 bytes). */
static int ecdsa_der_to_raw(const unsigned char *der, size_t der_len, unsigned char raw[64])
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (sig == NULL)
        return ANM_EINTERNAL;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG_get0(sig, &r, &s);
    int ok = BN_bn2binpad(r, raw, ES256_COORD) == ES256_COORD &&
             BN_bn2binpad(s, raw + ES256_COORD, ES256_COORD) == ES256_COORD;
    ECDSA_SIG_free(sig);
    return ok ? ANM_OK : ANM_EINTERNAL;
}

/* Converts R || S to DER; *der new (OPENSSL_free). */
static int ecdsa_raw_to_der(const unsigned char raw[64], unsigned char **der, size_t *der_len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, ES256_COORD, NULL);
    BIGNUM *s = BN_bin2bn(raw + ES256_COORD, ES256_COORD, NULL);
    int rc = ANM_ENOMEM;
    if (sig == NULL || r == NULL || s == NULL)
        goto free_all;
    if (ECDSA_SIG_set0(sig, r, s) != 1)
        goto free_all;
    r = s = NULL; /* owned by sig */
    *der = NULL;
    int n = i2d_ECDSA_SIG(sig, der);
    if (n <= 0) {
        rc = ANM_EINTERNAL;
        goto free_all;
    }
    *der_len = (size_t)n;
    rc = ANM_OK;
free_all:
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return rc;
}

static int set_padding(EVP_PKEY_CTX *pctx, gateway_jws_alg alg)
{
    if (alg == GATEWAY_JWS_PS256) {
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1)
            return 0;
    } else if (alg == GATEWAY_JWS_RS256) {
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
            return 0;
    }
    return 1;
}

/* ---- signer ---------------------------------------------------------------- */

struct gateway_jws_signer {
    gateway_jws_alg alg;
    EVP_PKEY *key;
    char kid[KID_MAX + 1];
    char *header_b64; /* BASE64URL(protected header), fixed per signer */
};

void gateway_jws_signer_destroy(gateway_jws_signer **signer)
{
    if (signer == NULL || *signer == NULL)
        return;
    EVP_PKEY_free((*signer)->key);
    free((*signer)->header_b64);
    free(*signer);
    *signer = NULL;
}

gateway_jws_alg gateway_jws_signer_alg(const gateway_jws_signer *signer)
{
    return signer->alg;
}

const char *gateway_jws_signer_kid(const gateway_jws_signer *signer)
{
    return signer->kid;
}

static int kid_valid(const char *kid)
{
    size_t n = strlen(kid);
    if (n == 0 || n > KID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)kid[i];
        if (c < 0x20 || c > 0x7e)
            return 0;
    }
    return 1;
}

int gateway_jws_signer_new(const gateway_jws_signer_config *config, gateway_jws_signer **out,
                           anm_error_detail *detail)
{
    *out = NULL;
    int rc = ANM_ECONFIG;
    X509 *cert = NULL;
    json_t *header = NULL;
    char *header_text = NULL;
    char why[256];
    if ((unsigned)config->alg >= GATEWAY_JWS_ALG_COUNT || config->key_pem == NULL) {
        anm_error_detail_set(detail, NULL, 0, 0, "alg", "signer needs a known alg and a private key");
        return ANM_ECONFIG;
    }
    gateway_jws_signer *s = calloc(1, sizeof *s);
    if (s == NULL)
        return ANM_ENOMEM;
    s->alg = config->alg;
    BIO *bio = BIO_new_mem_buf(config->key_pem, -1);
    if (bio == NULL) {
        rc = ANM_ENOMEM;
        goto fail;
    }
    s->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (s->key == NULL) {
        openssl_reason(why, sizeof why);
        anm_error_detail_set(detail, NULL, 0, 0, "key", "could not read the private key: %s", why);
        goto fail;
    }
    if (!key_suits_alg(s->key, s->alg, why, sizeof why)) {
        anm_error_detail_set(detail, NULL, 0, 0, "key", "%s", why);
        goto fail;
    }
    char thumb[THUMB_LEN + 1] = "";
    if (config->cert_pem != NULL) {
        bio = BIO_new_mem_buf(config->cert_pem, -1);
        if (bio == NULL) {
            rc = ANM_ENOMEM;
            goto fail;
        }
        cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        BIO_free(bio);
        if (cert == NULL) {
            openssl_reason(why, sizeof why);
            anm_error_detail_set(detail, NULL, 0, 0, "cert", "could not read the certificate: %s", why);
            goto fail;
        }
        EVP_PKEY *cert_key = X509_get0_pubkey(cert);
        if (cert_key == NULL || EVP_PKEY_eq(cert_key, s->key) != 1) {
            ERR_clear_error();
            anm_error_detail_set(detail, NULL, 0, 0, "cert",
                                 "the certificate does not match the private key");
            goto fail;
        }
        rc = thumbprint_of(cert, thumb, sizeof thumb);
        if (rc != ANM_OK)
            goto fail;
        rc = ANM_ECONFIG;
    } else if (config->include_x5t || config->kid == NULL) {
        anm_error_detail_set(detail, NULL, 0, 0, "cert",
                             "without a certificate the signer needs a kid and no x5t#S256");
        goto fail;
    }
    const char *kid = config->kid != NULL ? config->kid : thumb;
    if (!kid_valid(kid)) {
        anm_error_detail_set(detail, NULL, 0, 0, "kid",
                             "kid must be 1 to %d printable ASCII characters", KID_MAX);
        goto fail;
    }
    memcpy(s->kid, kid, strlen(kid) + 1);
    rc = ANM_ENOMEM;
    header = json_pack("{s:s, s:s}", "alg", alg_names[s->alg], "kid", s->kid);
    if (header == NULL)
        goto fail;
    if (config->include_x5t && json_object_set_new(header, "x5t#S256", json_string(thumb)) != 0)
        goto fail;
    header_text = json_dumps(header, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (header_text == NULL)
        goto fail;
    s->header_b64 = gateway_base64url_encode(header_text, strlen(header_text));
    if (s->header_b64 == NULL)
        goto fail;
    free(header_text);
    json_decref(header);
    X509_free(cert);
    *out = s;
    return ANM_OK;
fail:
    free(header_text);
    json_decref(header);
    X509_free(cert);
    gateway_jws_signer_destroy(&s);
    return rc;
}

int gateway_jws_signer_new_files(gateway_jws_alg alg, const char *key_path, const char *cert_path,
                                 const char *kid, int include_x5t, gateway_jws_signer **out,
                                 anm_error_detail *detail)
{
    *out = NULL;
    char *key_pem = read_text_file(key_path, detail);
    if (key_pem == NULL)
        return ANM_ECONFIG;
    char *cert_pem = NULL;
    int rc = ANM_ECONFIG;
    if (cert_path != NULL && (cert_pem = read_text_file(cert_path, detail)) == NULL)
        goto free_key;
    gateway_jws_signer_config config = {alg, key_pem, cert_pem, kid, include_x5t};
    rc = gateway_jws_signer_new(&config, out, detail);
    if (rc == ANM_ECONFIG && detail != NULL && detail->file[0] == '\0')
        snprintf(detail->file, sizeof detail->file, "%s",
                 strcmp(detail->path, "cert") == 0 && cert_path ? cert_path : key_path);
    free(cert_pem);
free_key:
    OPENSSL_cleanse(key_pem, strlen(key_pem));
    free(key_pem);
    return rc;
}

/* Signs input (the JWS signing input) into a new raw JWS signature. */
static int sign_input(const gateway_jws_signer *s, const char *input, size_t input_len,
                      unsigned char **sig_out, size_t *sig_len_out)
{
    int rc = ANM_EINTERNAL;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL)
        return ANM_ENOMEM;
    if (EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, s->key) != 1 || !set_padding(pctx, s->alg))
        goto fail;
    if (EVP_DigestSign(md, NULL, &sig_len, (const unsigned char *)input, input_len) != 1)
        goto fail;
    sig = malloc(sig_len);
    if (sig == NULL) {
        rc = ANM_ENOMEM;
        goto fail;
    }
    if (EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)input, input_len) != 1)
        goto fail;
    if (s->alg == GATEWAY_JWS_ES256) {
        unsigned char *raw = malloc(64);
        if (raw == NULL) {
            rc = ANM_ENOMEM;
            goto fail;
        }
        rc = ecdsa_der_to_raw(sig, sig_len, raw);
        free(sig);
        sig = raw;
        sig_len = 64;
        if (rc != ANM_OK)
            goto fail;
    }
    EVP_MD_CTX_free(md);
    *sig_out = sig;
    *sig_len_out = sig_len;
    return ANM_OK;
fail:
    if (rc == ANM_EINTERNAL) {
        char why[256];
        openssl_reason(why, sizeof why);
        anm_log_error(COMPONENT, "could not sign with %s key \"%s\": %s", alg_names[s->alg],
                      s->kid, why);
    }
    free(sig);
    EVP_MD_CTX_free(md);
    return rc;
}

static int sign_compact(const gateway_jws_signer *s, const char *header_b64, const void *payload,
                        size_t payload_len, char **out, size_t *out_len)
{
    *out = NULL;
    char *payload_b64 = gateway_base64url_encode(payload, payload_len);
    if (payload_b64 == NULL)
        return ANM_ENOMEM;
    size_t h = strlen(header_b64), p = strlen(payload_b64);
    int rc = ANM_ENOMEM;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    char *sig_b64 = NULL;
    char *compact = malloc(h + 1 + p + 1);
    if (compact == NULL)
        goto free_all;
    memcpy(compact, header_b64, h);
    compact[h] = '.';
    memcpy(compact + h + 1, payload_b64, p);
    compact[h + 1 + p] = '\0';
    rc = sign_input(s, compact, h + 1 + p, &sig, &sig_len);
    if (rc != ANM_OK)
        goto free_all;
    rc = ANM_ENOMEM;
    sig_b64 = gateway_base64url_encode(sig, sig_len);
    if (sig_b64 == NULL)
        goto free_all;
    size_t sl = strlen(sig_b64);
    char *grown = realloc(compact, h + 1 + p + 1 + sl + 1);
    if (grown == NULL)
        goto free_all;
    compact = grown;
    compact[h + 1 + p] = '.';
    memcpy(compact + h + 1 + p + 1, sig_b64, sl + 1);
    if (out_len != NULL)
        *out_len = h + 1 + p + 1 + sl;
    *out = compact;
    compact = NULL;
    rc = ANM_OK;
free_all:
    free(compact);
    free(sig);
    free(sig_b64);
    free(payload_b64);
    return rc;
}

int gateway_jws_sign(const gateway_jws_signer *signer, const void *payload, size_t payload_len,
                     char **out, size_t *out_len)
{
    return sign_compact(signer, signer->header_b64, payload, payload_len, out, out_len);
}

int gateway_jws_sign_with_header(const gateway_jws_signer *signer, const void *header,
                                 size_t header_len, const void *payload, size_t payload_len,
                                 char **out, size_t *out_len)
{
    *out = NULL;
    json_t *parsed = json_loadb(header, header_len, JSON_REJECT_DUPLICATES, NULL);
    const char *alg = json_string_value(json_object_get(parsed, "alg"));
    int ok = alg != NULL && strcmp(alg, alg_names[signer->alg]) == 0;
    json_decref(parsed);
    if (!ok)
        return ANM_EINVAL;
    char *header_b64 = gateway_base64url_encode(header, header_len);
    if (header_b64 == NULL)
        return ANM_ENOMEM;
    int rc = sign_compact(signer, header_b64, payload, payload_len, out, out_len);
    free(header_b64);
    return rc;
}

/* ---- verifier ---------------------------------------------------------------- */

typedef struct trusted_key {
    char kid[KID_MAX + 1];
    char thumb[THUMB_LEN + 1]; /* "" for a bare public key */
    EVP_PKEY *key;
} trusted_key;

struct gateway_jws_verifier {
    unsigned alg_mask;
    size_t max_bytes;
    trusted_key *keys;
    size_t n_keys;
    size_t cap_keys;
};

gateway_jws_verifier *gateway_jws_verifier_new(void)
{
    gateway_jws_verifier *v = calloc(1, sizeof *v);
    if (v == NULL)
        return NULL;
    v->alg_mask = GATEWAY_JWS_ALG_ALL;
    v->max_bytes = GATEWAY_JWS_DEFAULT_MAX_BYTES;
    return v;
}

void gateway_jws_verifier_destroy(gateway_jws_verifier **verifier)
{
    if (verifier == NULL || *verifier == NULL)
        return;
    for (size_t i = 0; i < (*verifier)->n_keys; i++)
        EVP_PKEY_free((*verifier)->keys[i].key);
    free((*verifier)->keys);
    free(*verifier);
    *verifier = NULL;
}

int gateway_jws_verifier_set_algs(gateway_jws_verifier *verifier, unsigned mask)
{
    if ((mask & GATEWAY_JWS_ALG_ALL) == 0 || (mask & ~GATEWAY_JWS_ALG_ALL) != 0)
        return ANM_EINVAL;
    verifier->alg_mask = mask;
    return ANM_OK;
}

int gateway_jws_verifier_set_max_bytes(gateway_jws_verifier *verifier, size_t max_bytes)
{
    if (max_bytes == 0)
        return ANM_EINVAL;
    verifier->max_bytes = max_bytes;
    return ANM_OK;
}

size_t gateway_jws_verifier_key_count(const gateway_jws_verifier *verifier)
{
    return verifier->n_keys;
}

static const trusted_key *find_kid(const gateway_jws_verifier *v, const char *kid)
{
    for (size_t i = 0; i < v->n_keys; i++)
        if (strcmp(v->keys[i].kid, kid) == 0)
            return &v->keys[i];
    return NULL;
}

static int key_usable(EVP_PKEY *key, char *why, size_t size)
{
    for (int alg = 0; alg < GATEWAY_JWS_ALG_COUNT; alg++)
        if (key_suits_alg(key, (gateway_jws_alg)alg, why, size))
            return 1;
    snprintf(why, size, "key type %s is not RSA >= 2048 bits or EC P-256",
             OBJ_nid2sn(EVP_PKEY_get_base_id(key)));
    return 0;
}

/* Adds key (ownership taken, also on failure). */
static int add_key(gateway_jws_verifier *v, const char *kid, const char *thumb, EVP_PKEY *key,
                   anm_error_detail *detail)
{
    char why[256];
    if (!kid_valid(kid)) {
        EVP_PKEY_free(key);
        anm_error_detail_set(detail, NULL, 0, 0, "kid",
                             "kid must be 1 to %d printable ASCII characters", KID_MAX);
        return ANM_ECONFIG;
    }
    if (!key_usable(key, why, sizeof why)) {
        EVP_PKEY_free(key);
        anm_error_detail_set(detail, NULL, 0, 0, kid, "%s", why);
        return ANM_ECONFIG;
    }
    if (find_kid(v, kid) != NULL) {
        EVP_PKEY_free(key);
        anm_error_detail_set(detail, NULL, 0, 0, kid, "kid \"%s\" is already trusted", kid);
        return ANM_EDUP;
    }
    if (v->n_keys == v->cap_keys) {
        size_t cap = v->cap_keys ? v->cap_keys * 2 : 4;
        trusted_key *grown = realloc(v->keys, cap * sizeof *grown);
        if (grown == NULL) {
            EVP_PKEY_free(key);
            return ANM_ENOMEM;
        }
        v->keys = grown;
        v->cap_keys = cap;
    }
    trusted_key *t = &v->keys[v->n_keys++];
    memset(t, 0, sizeof *t);
    memcpy(t->kid, kid, strlen(kid) + 1);
    if (thumb != NULL)
        memcpy(t->thumb, thumb, strlen(thumb) + 1);
    t->key = key;
    return ANM_OK;
}

int gateway_jws_verifier_add_cert(gateway_jws_verifier *verifier, const char *kid,
                                  const char *cert_pem, anm_error_detail *detail)
{
    BIO *bio = BIO_new_mem_buf(cert_pem, -1);
    if (bio == NULL)
        return ANM_ENOMEM;
    int rc = ANM_OK;
    size_t added = 0;
    for (;;) {
        X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (cert == NULL) {
            ERR_clear_error();
            break;
        }
        char thumb[THUMB_LEN + 1];
        rc = thumbprint_of(cert, thumb, sizeof thumb);
        EVP_PKEY *key = X509_get_pubkey(cert);
        X509_free(cert);
        if (rc != ANM_OK || key == NULL) {
            EVP_PKEY_free(key);
            rc = rc != ANM_OK ? rc : ANM_ECONFIG;
            anm_error_detail_set(detail, NULL, 0, 0, kid, "could not read a certificate's key");
            break;
        }
        if (kid != NULL && added > 0) {
            EVP_PKEY_free(key);
            anm_error_detail_set(detail, NULL, 0, 0, kid,
                                 "a kid names one certificate, the PEM holds several");
            rc = ANM_ECONFIG;
            break;
        }
        rc = add_key(verifier, kid != NULL ? kid : thumb, thumb, key, detail);
        if (rc != ANM_OK)
            break;
        added++;
    }
    BIO_free(bio);
    if (rc == ANM_OK && added == 0) {
        anm_error_detail_set(detail, NULL, 0, 0, kid, "no certificate in the PEM");
        rc = ANM_ECONFIG;
    }
    return rc;
}

int gateway_jws_verifier_add_cert_file(gateway_jws_verifier *verifier, const char *kid,
                                       const char *path, anm_error_detail *detail)
{
    char *pem = read_text_file(path, detail);
    if (pem == NULL)
        return ANM_ECONFIG;
    int rc = gateway_jws_verifier_add_cert(verifier, kid, pem, detail);
    if (rc != ANM_OK && detail != NULL && detail->file[0] == '\0')
        snprintf(detail->file, sizeof detail->file, "%s", path);
    free(pem);
    return rc;
}

int gateway_jws_verifier_add_public_key(gateway_jws_verifier *verifier, const char *kid,
                                        const char *key_pem, anm_error_detail *detail)
{
    if (kid == NULL) {
        anm_error_detail_set(detail, NULL, 0, 0, "kid", "a bare public key needs a kid");
        return ANM_ECONFIG;
    }
    BIO *bio = BIO_new_mem_buf(key_pem, -1);
    if (bio == NULL)
        return ANM_ENOMEM;
    EVP_PKEY *key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (key == NULL) {
        char why[256];
        openssl_reason(why, sizeof why);
        anm_error_detail_set(detail, NULL, 0, 0, kid, "could not read the public key: %s", why);
        return ANM_ECONFIG;
    }
    return add_key(verifier, kid, NULL, key, detail);
}

static int refuse(gateway_jws_reject *why, gateway_jws_reason reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(gateway_jws_reject *why, gateway_jws_reason reason, const char *fmt, ...)
{
    if (why != NULL) {
        va_list ap;
        va_start(ap, fmt);
        why->reason = reason;
        if (vsnprintf(why->text, sizeof why->text, fmt, ap) < 0)
            why->text[0] = '\0';
        va_end(ap);
    }
    switch (reason) {
    case GATEWAY_JWS_UNSIGNED:
    case GATEWAY_JWS_ALG_NOT_ALLOWED:
    case GATEWAY_JWS_UNKNOWN_KEY:
    case GATEWAY_JWS_ALG_KEY_MISMATCH:
    case GATEWAY_JWS_BAD_SIGNATURE_LENGTH:
    case GATEWAY_JWS_BAD_SIGNATURE: return ANM_EAUTH;
    default: return ANM_EPROTO;
    }
}

static int verify_signature(EVP_PKEY *key, gateway_jws_alg alg, const char *input,
                            size_t input_len, const unsigned char *sig, size_t sig_len)
{
    unsigned char *der = NULL;
    size_t der_len = 0;
    if (alg == GATEWAY_JWS_ES256) {
        int rc = ecdsa_raw_to_der(sig, &der, &der_len);
        if (rc != ANM_OK)
            return rc;
        sig = der;
        sig_len = der_len;
    }
    int result = ANM_EINTERNAL;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL) {
        result = ANM_ENOMEM;
        goto free_all;
    }
    if (EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, key) != 1 || !set_padding(pctx, alg))
        goto free_all;
    int ok = EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)input, input_len);
    result = ok == 1 ? ANM_OK : ANM_EAUTH;
free_all:
    ERR_clear_error();
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    return result;
}

int gateway_jws_verify(const gateway_jws_verifier *verifier, const char *jws, size_t len,
                       unsigned char **payload, size_t *payload_len, char *kid_out,
                       size_t kid_size, gateway_jws_reject *why)
{
    *payload = NULL;
    *payload_len = 0;
    int rc;
    unsigned char *header_raw = NULL, *body = NULL, *sig = NULL;
    size_t header_len = 0, body_len = 0, sig_len = 0;
    json_t *header = NULL;
    char why_key[256];

    if (len > verifier->max_bytes) {
        rc = refuse(why, GATEWAY_JWS_OVERSIZED, "jws is %zu bytes, the limit is %zu", len,
                    verifier->max_bytes);
        goto done;
    }
    const char *dot1 = memchr(jws, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - jws)) : NULL;
    const char *dot3 = dot2 ? memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - jws)) : NULL;
    if (dot1 == NULL || dot2 == NULL || dot3 != NULL) {
        size_t dots = 0;
        for (size_t i = 0; i < len; i++)
            dots += jws[i] == '.';
        rc = refuse(why, GATEWAY_JWS_SEGMENT_COUNT, "jws has %zu segments, compact form needs 3",
                    dots + 1);
        goto done;
    }
    size_t h_len = (size_t)(dot1 - jws), p_len = (size_t)(dot2 - dot1 - 1);
    size_t s_len = len - (size_t)(dot2 + 1 - jws);
    if (h_len == 0 || gateway_base64url_decode(jws, h_len, &header_raw, &header_len) != ANM_OK) {
        rc = refuse(why, GATEWAY_JWS_BAD_BASE64URL, "header is not valid base64url");
        goto done;
    }
    if (gateway_base64url_decode(dot1 + 1, p_len, &body, &body_len) != ANM_OK) {
        rc = refuse(why, GATEWAY_JWS_BAD_BASE64URL, "payload is not valid base64url");
        goto done;
    }
    if (gateway_base64url_decode(dot2 + 1, s_len, &sig, &sig_len) != ANM_OK) {
        rc = refuse(why, GATEWAY_JWS_BAD_BASE64URL, "signature is not valid base64url");
        goto done;
    }
    json_error_t error;
    header = json_loadb((const char *)header_raw, header_len, JSON_REJECT_DUPLICATES, &error);
    if (!json_is_object(header)) {
        rc = refuse(why, GATEWAY_JWS_BAD_HEADER, "header is not a json object: %s",
                    header == NULL ? error.text : "other json type");
        goto done;
    }
    json_t *alg_value = json_object_get(header, "alg");
    if (!json_is_string(alg_value)) {
        rc = refuse(why, GATEWAY_JWS_BAD_HEADER, "header \"alg\" is missing or not a string");
        goto done;
    }
    if (json_object_get(header, "crit") != NULL) {
        rc = refuse(why, GATEWAY_JWS_BAD_HEADER, "header \"crit\" names extensions not supported");
        goto done;
    }
    const char *alg_name = json_string_value(alg_value);
    json_t *kid_value = json_object_get(header, "kid");
    json_t *x5t_value = json_object_get(header, "x5t#S256");
    if ((kid_value != NULL && !json_is_string(kid_value)) ||
        (x5t_value != NULL && !json_is_string(x5t_value))) {
        rc = refuse(why, GATEWAY_JWS_BAD_HEADER, "header \"kid\" or \"x5t#S256\" is not a string");
        goto done;
    }
    if (strcmp(alg_name, "none") == 0) {
        rc = refuse(why, GATEWAY_JWS_UNSIGNED, "alg \"none\": unsigned payloads are refused");
        goto done;
    }
    gateway_jws_alg alg;
    if (gateway_jws_alg_parse(alg_name, &alg) != ANM_OK) {
        rc = refuse(why, GATEWAY_JWS_UNKNOWN_ALG, "alg \"%.32s\" is not supported", alg_name);
        goto done;
    }
    if ((verifier->alg_mask & GATEWAY_JWS_ALG_BIT(alg)) == 0) {
        rc = refuse(why, GATEWAY_JWS_ALG_NOT_ALLOWED, "alg \"%s\" is not accepted by configuration",
                    alg_name);
        goto done;
    }
    if (sig_len == 0) {
        rc = refuse(why, GATEWAY_JWS_UNSIGNED, "signature is empty");
        goto done;
    }
    const trusted_key *key = NULL;
    const char *kid = json_string_value(kid_value);
    const char *x5t = json_string_value(x5t_value);
    if (kid != NULL) {
        key = find_kid(verifier, kid);
        if (key == NULL) {
            rc = refuse(why, GATEWAY_JWS_UNKNOWN_KEY, "kid \"%.64s\" is not a trusted key", kid);
            goto done;
        }
        if (x5t != NULL && strcmp(key->thumb, x5t) != 0) {
            rc = refuse(why, GATEWAY_JWS_UNKNOWN_KEY,
                        "x5t#S256 does not match the certificate trusted as kid \"%.64s\"", kid);
            goto done;
        }
    } else if (x5t != NULL) {
        for (size_t i = 0; i < verifier->n_keys && key == NULL; i++)
            if (strcmp(verifier->keys[i].thumb, x5t) == 0)
                key = &verifier->keys[i];
        if (key == NULL) {
            rc = refuse(why, GATEWAY_JWS_UNKNOWN_KEY, "x5t#S256 \"%.64s\" is not a trusted certificate",
                        x5t);
            goto done;
        }
    } else if (verifier->n_keys == 1) {
        key = &verifier->keys[0];
    } else {
        rc = refuse(why, GATEWAY_JWS_UNKNOWN_KEY, "no kid or x5t#S256 and %zu trusted keys",
                    verifier->n_keys);
        goto done;
    }
    if (!key_suits_alg(key->key, alg, why_key, sizeof why_key)) {
        rc = refuse(why, GATEWAY_JWS_ALG_KEY_MISMATCH, "kid \"%.64s\": %s", key->kid, why_key);
        goto done;
    }
    size_t expected = alg == GATEWAY_JWS_ES256 ? 64 : (size_t)EVP_PKEY_get_size(key->key);
    if (sig_len != expected) {
        rc = refuse(why, GATEWAY_JWS_BAD_SIGNATURE_LENGTH,
                    "signature is %zu bytes, %s with this key needs %zu", sig_len, alg_name, expected);
        goto done;
    }
    rc = verify_signature(key->key, alg, jws, (size_t)(dot2 - jws), sig, sig_len);
    if (rc == ANM_EAUTH) {
        rc = refuse(why, GATEWAY_JWS_BAD_SIGNATURE,
                    "%s signature does not verify with kid \"%.64s\"", alg_name, key->kid);
        goto done;
    }
    if (rc != ANM_OK)
        goto done;
    if (kid_out != NULL && kid_size > 0)
        snprintf(kid_out, kid_size, "%s", key->kid);
    if (why != NULL) {
        why->reason = GATEWAY_JWS_OK;
        why->text[0] = '\0';
    }
    *payload = body;
    *payload_len = body_len;
    body = NULL;
done:
    json_decref(header);
    free(header_raw);
    free(body);
    free(sig);
    return rc;
}
