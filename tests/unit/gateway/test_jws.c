/*
 * test_jws.c: JWS compact serialisation (gateway/jws.h): base64url against
 * RFC 4648 vectors, the RFC 7515 appendix A.2 (RS256) and A.3 (ES256)
 * published examples with their published keys, sign/verify round trips
 * for RS256, PS256 and ES256 with keys made by the openssl CLI, the
 * certificate thumbprint against `openssl x509 | openssl dgst`, and every
 * rejection reason.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "gateway/jws.h"
#include "testlib.h"
#include "wa_tls.h"

/* ---- RFC 7515 appendix A material ---------------------------------------- */

static const char a2_jws[] =
    "eyJhbGciOiJSUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5"
    "jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L"
    "07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUi"
    "pUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
static const char a2_n[] =
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4Q"
    "lL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbB"
    "YUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DW"
    "NmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
static const char a2_e[] = "AQAB";
static const char a2_p[] =
    "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJ"
    "NPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc";
static const char a2_q[] =
    "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_Yw"
    "D66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc";
static const char a2_d[] =
    "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJ"
    "e46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRL"
    "I9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD"
    "9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ";
/* The payload of A.2 and A.3, byte for byte (CR LF line breaks). */
static const char a_payload[] =
    "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";

static const char a3_jws[] =
    "eyJhbGciOiJFUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
static const char a3_x[] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
static const char a3_y[] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

static BIGNUM *bn_b64(const char *text)
{
    unsigned char *raw = NULL;
    size_t len = 0;
    cr_assert_eq(gateway_base64url_decode(text, strlen(text), &raw, &len), ANM_OK);
    BIGNUM *bn = BN_bin2bn(raw, (int)len, NULL);
    free(raw);
    return bn;
}

static char *bio_text(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *copy = malloc((size_t)n + 1);
    memcpy(copy, data, (size_t)n);
    copy[n] = '\0';
    return copy;
}

/* PEM of the A.2 RSA key: private (n, e, d) when private_key, else public. */
static char *a2_key_pem(int private_key)
{
    BIGNUM *n = bn_b64(a2_n), *e = bn_b64(a2_e), *d = bn_b64(a2_d);
    BIGNUM *p = bn_b64(a2_p), *q = bn_b64(a2_q);
    /* the CRT values (A.2 publishes them too; derived here from p, q, d) */
    BIGNUM *dp = BN_new(), *dq = BN_new(), *qi = BN_new(), *p1 = BN_dup(p), *q1 = BN_dup(q);
    BN_CTX *bn_ctx = BN_CTX_new();
    BN_sub_word(p1, 1);
    BN_sub_word(q1, 1);
    cr_assert_eq(BN_mod(dp, d, p1, bn_ctx), 1);
    cr_assert_eq(BN_mod(dq, d, q1, bn_ctx), 1);
    cr_assert_not_null(BN_mod_inverse(qi, q, p, bn_ctx));
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
    if (private_key) {
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d);
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, p);
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, q);
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, dp);
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, dq);
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, qi);
    }
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pkey = NULL;
    cr_assert_eq(EVP_PKEY_fromdata_init(ctx), 1);
    cr_assert_eq(EVP_PKEY_fromdata(ctx, &pkey, private_key ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                                   params),
                 1);
    BIO *bio = BIO_new(BIO_s_mem());
    if (private_key)
        cr_assert_eq(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
    else
        cr_assert_eq(PEM_write_bio_PUBKEY(bio, pkey), 1);
    char *pem = bio_text(bio);
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    BN_free(d);
    BN_free(p);
    BN_free(q);
    BN_free(dp);
    BN_free(dq);
    BN_free(qi);
    BN_free(p1);
    BN_free(q1);
    BN_CTX_free(bn_ctx);
    return pem;
}

static char *a3_public_pem(void)
{
    unsigned char point[65];
    unsigned char *x = NULL, *y = NULL;
    size_t x_len = 0, y_len = 0;
    cr_assert_eq(gateway_base64url_decode(a3_x, strlen(a3_x), &x, &x_len), ANM_OK);
    cr_assert_eq(gateway_base64url_decode(a3_y, strlen(a3_y), &y, &y_len), ANM_OK);
    cr_assert_eq(x_len, 32);
    cr_assert_eq(y_len, 32);
    point[0] = 0x04;
    memcpy(point + 1, x, 32);
    memcpy(point + 33, y, 32);
    free(x);
    free(y);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)(uintptr_t)"P-256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pkey = NULL;
    cr_assert_eq(EVP_PKEY_fromdata_init(ctx), 1);
    cr_assert_eq(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params), 1);
    BIO *bio = BIO_new(BIO_s_mem());
    cr_assert_eq(PEM_write_bio_PUBKEY(bio, pkey), 1);
    char *pem = bio_text(bio);
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    return pem;
}

/* ---- base64url -------------------------------------------------------------- */

Test(jws_base64url, rfc4648_vectors_without_padding)
{
    /* RFC 4648 section 10, padding removed as RFC 7515 section 2 requires */
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *coded[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char *enc = gateway_base64url_encode(plain[i], strlen(plain[i]));
        cr_assert_str_eq(enc, coded[i]);
        unsigned char *dec = NULL;
        size_t len = 0;
        cr_assert_eq(gateway_base64url_decode(enc, strlen(enc), &dec, &len), ANM_OK);
        cr_assert_eq(len, strlen(plain[i]));
        cr_assert_str_eq((char *)dec, plain[i]);
        free(dec);
        free(enc);
    }
    /* the two characters that differ from base64: 62 is '-', 63 is '_' */
    const unsigned char bytes[] = {0xfb, 0xff, 0xbf};
    char *enc = gateway_base64url_encode(bytes, 3);
    cr_assert_str_eq(enc, "-_-_");
    free(enc);
}

Test(jws_base64url, refuses_padding_foreign_bytes_bad_length_and_trailing_bits)
{
    static const char *bad[] = {"Zg==", "Zm9v=", "Zm+v", "Zm/v", "Zm9 v", "Z", "Zm9vY", "Zh",
                                "Zm9"};
    /* "Zh": 'h' leaves 4 unused bits 0001 (the canonical form is "Zg");
     * "Zm9" decodes 2 bytes with 2 unused bits 01 ("Zm8" is canonical) */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        static unsigned char sentinel[] = "x";
        unsigned char *dec = sentinel;
        size_t len = 7;
        cr_assert_eq(gateway_base64url_decode(bad[i], strlen(bad[i]), &dec, &len), ANM_EPARSE,
                     "\"%s\" should be refused", bad[i]);
        cr_assert_null(dec);
        cr_assert_eq(len, 0);
    }
}

/* ---- RFC 7515 appendix A ------------------------------------------------------ */

Test(jws_rfc7515, a2_rs256_example_verifies_with_published_key)
{
    gateway_jws_verifier *v = gateway_jws_verifier_new();
    char *pub = a2_key_pem(0);
    cr_assert_eq(gateway_jws_verifier_add_public_key(v, "rfc7515-a2", pub, NULL), ANM_OK);
    unsigned char *payload = NULL;
    size_t len = 0;
    char kid[64];
    gateway_jws_reject why;
    cr_assert_eq(gateway_jws_verify(v, a2_jws, strlen(a2_jws), &payload, &len, kid, sizeof kid,
                                    &why),
                 ANM_OK, "%s", why.text);
    cr_assert_eq(len, strlen(a_payload));
    cr_assert_eq(memcmp(payload, a_payload, len), 0);
    cr_assert_str_eq(kid, "rfc7515-a2");
    free(payload);
    free(pub);
    gateway_jws_verifier_destroy(&v);
}

Test(jws_rfc7515, a2_rs256_signature_reproduced_byte_for_byte)
{
    /* RSASSA-PKCS1-v1_5 is deterministic: signing A.2's header and payload
     * with A.2's private key must give A.2's signature exactly */
    char *key = a2_key_pem(1);
    gateway_jws_signer_config config = {GATEWAY_JWS_RS256, key, NULL, "rfc7515-a2", 0};
    gateway_jws_signer *signer = NULL;
    anm_error_detail detail;
    cr_assert_eq(gateway_jws_signer_new(&config, &signer, &detail), ANM_OK, "%s", detail.message);
    char *jws = NULL;
    size_t jws_len = 0;
    const char header[] = "{\"alg\":\"RS256\"}";
    cr_assert_eq(gateway_jws_sign_with_header(signer, header, strlen(header), a_payload,
                                              strlen(a_payload), &jws, &jws_len),
                 ANM_OK);
    cr_assert_str_eq(jws, a2_jws);
    cr_assert_eq(jws_len, strlen(a2_jws));
    /* a header naming another alg is refused */
    char *other = NULL;
    cr_assert_eq(gateway_jws_sign_with_header(signer, "{\"alg\":\"ES256\"}", 15, "x", 1, &other,
                                              NULL),
                 ANM_EINVAL);
    cr_assert_null(other);
    free(jws);
    free(key);
    gateway_jws_signer_destroy(&signer);
    gateway_jws_signer_destroy(&signer); /* idempotent */
}

Test(jws_rfc7515, a3_es256_example_verifies_with_published_key)
{
    gateway_jws_verifier *v = gateway_jws_verifier_new();
    char *pub = a3_public_pem();
    cr_assert_eq(gateway_jws_verifier_add_public_key(v, "rfc7515-a3", pub, NULL), ANM_OK);
    unsigned char *payload = NULL;
    size_t len = 0;
    gateway_jws_reject why;
    cr_assert_eq(gateway_jws_verify(v, a3_jws, strlen(a3_jws), &payload, &len, NULL, 0, &why),
                 ANM_OK, "%s", why.text);
    cr_assert_eq(len, strlen(a_payload));
    cr_assert_eq(memcmp(payload, a_payload, len), 0);
    free(payload);
    /* flipping one bit of S breaks it */
    char tampered[sizeof a3_jws];
    memcpy(tampered, a3_jws, sizeof a3_jws);
    tampered[sizeof a3_jws - 3] = tampered[sizeof a3_jws - 3] == 'U' ? 'V' : 'U';
    cr_assert_eq(gateway_jws_verify(v, tampered, strlen(tampered), &payload, &len, NULL, 0, &why),
                 ANM_EAUTH);
    cr_assert_eq(why.reason, GATEWAY_JWS_BAD_SIGNATURE);
    free(pub);
    gateway_jws_verifier_destroy(&v);
}

/* ---- round trips with generated keys ---------------------------------------- */

static wa_tls *tls;

static void setup(void)
{
    anm_log_set_level(ANM_LOG_OFF);
    tls = wa_tls_new();
    cr_assert_not_null(tls, "openssl could not make the test keys");
}

static void teardown(void)
{
    wa_tls_destroy(&tls);
}

static gateway_jws_signer *make_signer(gateway_jws_alg alg, const char *name, const char *kid,
                                       int x5t)
{
    char key[64], cert[64];
    snprintf(key, sizeof key, "%s.key", name);
    snprintf(cert, sizeof cert, "%s.pem", name);
    gateway_jws_signer_config config = {alg, wa_tls_pem(tls, key), wa_tls_pem(tls, cert), kid, x5t};
    gateway_jws_signer *s = NULL;
    anm_error_detail detail;
    cr_assert_eq(gateway_jws_signer_new(&config, &s, &detail), ANM_OK, "%s", detail.message);
    return s;
}

static json_t *decode_header(const char *jws)
{
    const char *dot = strchr(jws, '.');
    unsigned char *raw = NULL;
    size_t len = 0;
    cr_assert_eq(gateway_base64url_decode(jws, (size_t)(dot - jws), &raw, &len), ANM_OK);
    json_t *h = json_loadb((const char *)raw, len, 0, NULL);
    free(raw);
    cr_assert_not_null(h);
    return h;
}

/* The independent reference: openssl x509 -outform DER | openssl dgst -sha256 -binary | basenc. */
static char *cli_thumbprint(const char *cert_path)
{
    char script[1200];
    snprintf(script, sizeof script,
             "openssl x509 -in '%s' -outform DER | openssl dgst -sha256 -binary | basenc "
             "--base64url | tr -d '=\\n'",
             cert_path);
    char *argv[] = {(char[]){"sh"}, (char[]){"-c"}, script, NULL};
    char *out = NULL;
    cr_assert_eq(anm_test_run(argv, &out, NULL), 0);
    return out;
}

static void round_trip(gateway_jws_alg alg, const char *name, size_t sig_bytes, int deterministic)
{
    gateway_jws_signer *signer = make_signer(alg, name, NULL, 1);
    char cert[64];
    snprintf(cert, sizeof cert, "%s.pem", name);
    gateway_jws_verifier *v = gateway_jws_verifier_new();
    cr_assert_eq(gateway_jws_verifier_add_cert(v, NULL, wa_tls_pem(tls, cert), NULL), ANM_OK);

    const char payload[] = "{\"v\":1,\"kind\":\"health\",\"status\":\"ok\"}";
    char *jws = NULL, *again = NULL;
    size_t jws_len = 0;
    cr_assert_eq(gateway_jws_sign(signer, payload, strlen(payload), &jws, &jws_len), ANM_OK);
    cr_assert_eq(strlen(jws), jws_len);

    /* header: alg, kid = x5t#S256 = SHA-256 of the certificate's DER */
    char *thumb = cli_thumbprint(wa_tls_path(tls, cert));
    cr_assert_eq(strlen(thumb), 43);
    json_t *h = decode_header(jws);
    cr_assert_str_eq(json_string_value(json_object_get(h, "alg")), gateway_jws_alg_name(alg));
    cr_assert_str_eq(json_string_value(json_object_get(h, "kid")), thumb);
    cr_assert_str_eq(json_string_value(json_object_get(h, "x5t#S256")), thumb);
    cr_assert_eq(json_object_size(h), 3);
    char api_thumb[64];
    cr_assert_eq(gateway_jws_cert_thumbprint(wa_tls_pem(tls, cert), api_thumb, sizeof api_thumb),
                 ANM_OK);
    cr_assert_str_eq(api_thumb, thumb);
    json_decref(h);

    /* signature length */
    const char *sig = strrchr(jws, '.') + 1;
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    cr_assert_eq(gateway_base64url_decode(sig, strlen(sig), &raw, &raw_len), ANM_OK);
    cr_assert_eq(raw_len, sig_bytes);
    free(raw);

    unsigned char *out = NULL;
    size_t out_len = 0;
    char kid[64];
    gateway_jws_reject why;
    cr_assert_eq(gateway_jws_verify(v, jws, jws_len, &out, &out_len, kid, sizeof kid, &why),
                 ANM_OK, "%s: %s", gateway_jws_reason_code(why.reason), why.text);
    cr_assert_eq(out_len, strlen(payload));
    cr_assert_str_eq((char *)out, payload);
    cr_assert_str_eq(kid, thumb);
    free(out);

    /* RS256 is deterministic; PS256 and ES256 are randomised yet both verify */
    cr_assert_eq(gateway_jws_sign(signer, payload, strlen(payload), &again, NULL), ANM_OK);
    if (deterministic)
        cr_assert_str_eq(again, jws);
    else
        cr_assert_str_neq(again, jws);
    cr_assert_eq(gateway_jws_verify(v, again, strlen(again), &out, &out_len, NULL, 0, &why), ANM_OK);
    free(out);

    free(thumb);
    free(again);
    free(jws);
    gateway_jws_verifier_destroy(&v);
    gateway_jws_signer_destroy(&signer);
}

Test(jws_round_trip, rs256, .init = setup, .fini = teardown)
{
    round_trip(GATEWAY_JWS_RS256, "rsa", 256, 1);
}

Test(jws_round_trip, ps256, .init = setup, .fini = teardown)
{
    round_trip(GATEWAY_JWS_PS256, "rsa", 256, 0);
}

Test(jws_round_trip, es256, .init = setup, .fini = teardown)
{
    round_trip(GATEWAY_JWS_ES256, "ec", 64, 0);
}

Test(jws_round_trip, configured_kid_and_files, .init = setup, .fini = teardown)
{
    gateway_jws_signer *signer = NULL;
    anm_error_detail detail;
    cr_assert_eq(gateway_jws_signer_new_files(GATEWAY_JWS_ES256, wa_tls_path(tls, "ec.key"), NULL,
                                              "participant-2026", 0, &signer, &detail),
                 ANM_OK, "%s", detail.message);
    cr_assert_str_eq(gateway_jws_signer_kid(signer), "participant-2026");
    gateway_jws_verifier *v = gateway_jws_verifier_new();
    cr_assert_eq(gateway_jws_verifier_add_cert_file(v, "participant-2026",
                                                    wa_tls_path(tls, "ec.pem"), &detail),
                 ANM_OK, "%s", detail.message);
    cr_assert_eq(gateway_jws_verifier_add_cert_file(v, NULL, wa_tls_path(tls, "rsa.pem"), &detail),
                 ANM_OK);
    cr_assert_eq(gateway_jws_verifier_key_count(v), 2);
    char *jws = NULL;
    cr_assert_eq(gateway_jws_sign(signer, "{}", 2, &jws, NULL), ANM_OK);
    json_t *h = decode_header(jws);
    cr_assert_null(json_object_get(h, "x5t#S256"));
    json_decref(h);
    unsigned char *out = NULL;
    size_t out_len = 0;
    char kid[64];
    cr_assert_eq(gateway_jws_verify(v, jws, strlen(jws), &out, &out_len, kid, sizeof kid, NULL),
                 ANM_OK);
    cr_assert_str_eq(kid, "participant-2026");
    free(out);
    free(jws);
    gateway_jws_verifier_destroy(&v);
    gateway_jws_signer_destroy(&signer);
}

/* ---- configuration errors ------------------------------------------------------ */

Test(jws_config, key_must_suit_alg_and_certificate, .init = setup, .fini = teardown)
{
    gateway_jws_signer *s = NULL;
    anm_error_detail detail;
    gateway_jws_signer_config small = {GATEWAY_JWS_RS256, wa_tls_pem(tls, "rsa1024.key"), NULL,
                                       "k", 0};
    cr_assert_eq(gateway_jws_signer_new(&small, &s, &detail), ANM_ECONFIG);
    cr_assert_str_eq(detail.message,
                     "RS256 needs an RSA key of at least 2048 bits, the key has 1024");
    cr_assert_null(s);

    gateway_jws_signer_config ec_for_rsa = {GATEWAY_JWS_ES256, wa_tls_pem(tls, "rsa.key"), NULL,
                                            "k", 0};
    cr_assert_eq(gateway_jws_signer_new(&ec_for_rsa, &s, &detail), ANM_ECONFIG);
    cr_assert_str_eq(detail.message, "ES256 needs an EC P-256 key, the key is rsaEncryption");

    gateway_jws_signer_config mismatch = {GATEWAY_JWS_ES256, wa_tls_pem(tls, "ec.key"),
                                          wa_tls_pem(tls, "neso.pem"), NULL, 1};
    cr_assert_eq(gateway_jws_signer_new(&mismatch, &s, &detail), ANM_ECONFIG);
    cr_assert_str_eq(detail.message, "the certificate does not match the private key");

    gateway_jws_signer_config no_kid = {GATEWAY_JWS_ES256, wa_tls_pem(tls, "ec.key"), NULL, NULL, 0};
    cr_assert_eq(gateway_jws_signer_new(&no_kid, &s, &detail), ANM_ECONFIG);
    cr_assert_str_eq(detail.message, "without a certificate the signer needs a kid and no x5t#S256");

    gateway_jws_signer_config not_pem = {GATEWAY_JWS_ES256, "hello", NULL, "k", 0};
    cr_assert_eq(gateway_jws_signer_new(&not_pem, &s, &detail), ANM_ECONFIG);
    cr_assert_str_eq(detail.path, "key");

    gateway_jws_verifier *v = gateway_jws_verifier_new();
    cr_assert_eq(gateway_jws_verifier_add_cert(v, NULL, wa_tls_pem(tls, "rsa1024.pem"), &detail),
                 ANM_ECONFIG);
    cr_assert_str_eq(detail.message, "key type rsaEncryption is not RSA >= 2048 bits or EC P-256");
    cr_assert_eq(gateway_jws_verifier_add_cert(v, "a", wa_tls_pem(tls, "ec.pem"), NULL), ANM_OK);
    cr_assert_eq(gateway_jws_verifier_add_cert(v, "a", wa_tls_pem(tls, "neso.pem"), &detail),
                 ANM_EDUP);
    cr_assert_str_eq(detail.message, "kid \"a\" is already trusted");
    cr_assert_eq(gateway_jws_verifier_add_cert(v, NULL, "no certificate here", &detail),
                 ANM_ECONFIG);
    cr_assert_str_eq(detail.message, "no certificate in the PEM");
    cr_assert_eq(gateway_jws_verifier_set_algs(v, 0), ANM_EINVAL);
    cr_assert_eq(gateway_jws_verifier_key_count(v), 1);
    gateway_jws_verifier_destroy(&v);
    gateway_jws_verifier_destroy(&v);
}

/* ---- every rejection reason --------------------------------------------------- */

typedef struct fixture {
    gateway_jws_signer *rsa;
    gateway_jws_signer *ec;
    gateway_jws_verifier *v;
} fixture;

static fixture fx;

static void setup_fixture(void)
{
    setup();
    fx.rsa = make_signer(GATEWAY_JWS_RS256, "rsa", "rsa-key", 0);
    fx.ec = make_signer(GATEWAY_JWS_ES256, "ec", "ec-key", 1);
    fx.v = gateway_jws_verifier_new();
    cr_assert_eq(gateway_jws_verifier_add_cert(fx.v, "rsa-key", wa_tls_pem(tls, "rsa.pem"), NULL),
                 ANM_OK);
    cr_assert_eq(gateway_jws_verifier_add_cert(fx.v, "ec-key", wa_tls_pem(tls, "ec.pem"), NULL),
                 ANM_OK);
}

static void teardown_fixture(void)
{
    gateway_jws_signer_destroy(&fx.rsa);
    gateway_jws_signer_destroy(&fx.ec);
    gateway_jws_verifier_destroy(&fx.v);
    teardown();
}

/* Verifies text and checks the result code, reason and message text. */
static void expect(const char *text, int rc, gateway_jws_reason reason, const char *message)
{
    static unsigned char sentinel[] = "x";
    unsigned char *payload = sentinel;
    size_t len = 9;
    gateway_jws_reject why;
    int got = gateway_jws_verify(fx.v, text, strlen(text), &payload, &len, NULL, 0, &why);
    cr_assert_eq(got, rc, "\"%.60s\": rc %d, expected %d (%s)", text, got, rc, why.text);
    cr_assert_eq(why.reason, reason, "\"%.60s\": reason %s, expected %s (%s)", text,
                 gateway_jws_reason_code(why.reason), gateway_jws_reason_code(reason), why.text);
    cr_assert_str_eq(why.text, message);
    cr_assert_null(payload);
    cr_assert_eq(len, 0);
}

/* header.payload.signature from raw parts (signature given as base64url). */
static char *compose(const char *header, const char *payload, const char *sig_b64)
{
    char *h = gateway_base64url_encode(header, strlen(header));
    char *p = gateway_base64url_encode(payload, strlen(payload));
    size_t n = strlen(h) + strlen(p) + strlen(sig_b64) + 3;
    char *out = malloc(n);
    snprintf(out, n, "%s.%s.%s", h, p, sig_b64);
    free(h);
    free(p);
    return out;
}

static char *sign(gateway_jws_signer *s, const char *payload)
{
    char *jws = NULL;
    cr_assert_eq(gateway_jws_sign(s, payload, strlen(payload), &jws, NULL), ANM_OK);
    return jws;
}

Test(jws_reject, oversized, .init = setup_fixture, .fini = teardown_fixture)
{
    char *jws = sign(fx.ec, "{\"a\":1}");
    cr_assert_eq(gateway_jws_verifier_set_max_bytes(fx.v, strlen(jws) - 1), ANM_OK);
    char message[128];
    snprintf(message, sizeof message, "jws is %zu bytes, the limit is %zu", strlen(jws),
             strlen(jws) - 1);
    expect(jws, ANM_EPROTO, GATEWAY_JWS_OVERSIZED, message);
    cr_assert_eq(gateway_jws_verifier_set_max_bytes(fx.v, strlen(jws)), ANM_OK);
    unsigned char *payload = NULL;
    size_t len = 0;
    cr_assert_eq(gateway_jws_verify(fx.v, jws, strlen(jws), &payload, &len, NULL, 0, NULL), ANM_OK);
    free(payload);
    free(jws);
}

Test(jws_reject, segment_count, .init = setup_fixture, .fini = teardown_fixture)
{
    expect("eyJhbGciOiJFUzI1NiJ9.e30", ANM_EPROTO, GATEWAY_JWS_SEGMENT_COUNT,
           "jws has 2 segments, compact form needs 3");
    expect("a.b.c.d", ANM_EPROTO, GATEWAY_JWS_SEGMENT_COUNT,
           "jws has 4 segments, compact form needs 3");
    expect("", ANM_EPROTO, GATEWAY_JWS_SEGMENT_COUNT, "jws has 1 segments, compact form needs 3");
}

Test(jws_reject, bad_base64url, .init = setup_fixture, .fini = teardown_fixture)
{
    char *jws = sign(fx.ec, "{\"a\":1}");
    char *dot = strchr(jws, '.');
    /* padding on the header */
    char padded[1024];
    snprintf(padded, sizeof padded, "%.*s==%s", (int)(dot - jws), jws, dot);
    expect(padded, ANM_EPROTO, GATEWAY_JWS_BAD_BASE64URL, "header is not valid base64url");
    /* '+' (plain base64) in the payload */
    char plus[1024];
    snprintf(plus, sizeof plus, "%.*s.+%s", (int)(dot - jws), jws, dot + 1);
    expect(plus, ANM_EPROTO, GATEWAY_JWS_BAD_BASE64URL, "payload is not valid base64url");
    /* a space in the signature */
    char spaced[1024];
    snprintf(spaced, sizeof spaced, "%s ", jws);
    expect(spaced, ANM_EPROTO, GATEWAY_JWS_BAD_BASE64URL, "signature is not valid base64url");
    free(jws);
}

Test(jws_reject, bad_header, .init = setup_fixture, .fini = teardown_fixture)
{
    char *a = compose("not json", "{}", "AAAA");
    expect(a, ANM_EPROTO, GATEWAY_JWS_BAD_HEADER,
           "header is not a json object: '[' or '{' expected near 'not'");
    char *b = compose("{\"kid\":\"ec-key\"}", "{}", "AAAA");
    expect(b, ANM_EPROTO, GATEWAY_JWS_BAD_HEADER, "header \"alg\" is missing or not a string");
    char *c = compose("{\"alg\":\"ES256\",\"alg\":\"none\"}", "{}", "AAAA");
    expect(c, ANM_EPROTO, GATEWAY_JWS_BAD_HEADER,
           "header is not a json object: duplicate object key near '\"alg\"'");
    char *d = compose("{\"alg\":\"ES256\",\"kid\":\"ec-key\",\"crit\":[\"b64\"],\"b64\":false}", "{}",
                      "AAAA");
    expect(d, ANM_EPROTO, GATEWAY_JWS_BAD_HEADER,
           "header \"crit\" names extensions not supported");
    char *e = compose("{\"alg\":\"ES256\",\"kid\":7}", "{}", "AAAA");
    expect(e, ANM_EPROTO, GATEWAY_JWS_BAD_HEADER, "header \"kid\" or \"x5t#S256\" is not a string");
    char *f = compose("[\"alg\"]", "{}", "AAAA");
    expect(f, ANM_EPROTO, GATEWAY_JWS_BAD_HEADER,
           "header is not a json object: other json type");
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
    free(f);
}

Test(jws_reject, unsigned_payloads, .init = setup_fixture, .fini = teardown_fixture)
{
    char *none = compose("{\"alg\":\"none\"}", "{\"kind\":\"instruction\"}", "");
    expect(none, ANM_EAUTH, GATEWAY_JWS_UNSIGNED, "alg \"none\": unsigned payloads are refused");
    /* "none" with a signature attached is still refused */
    char *none_sig = compose("{\"alg\":\"none\",\"kid\":\"ec-key\"}", "{}", "AAAA");
    expect(none_sig, ANM_EAUTH, GATEWAY_JWS_UNSIGNED, "alg \"none\": unsigned payloads are refused");
    /* a real alg with the signature stripped */
    char *jws = sign(fx.ec, "{\"a\":1}");
    *(strrchr(jws, '.') + 1) = '\0';
    expect(jws, ANM_EAUTH, GATEWAY_JWS_UNSIGNED, "signature is empty");
    free(none);
    free(none_sig);
    free(jws);
}

Test(jws_reject, unknown_alg, .init = setup_fixture, .fini = teardown_fixture)
{
    /* HS256 keyed with a public key is the classic confusion attack */
    char *hs = compose("{\"alg\":\"HS256\",\"kid\":\"rsa-key\"}", "{}", "AAAA");
    expect(hs, ANM_EPROTO, GATEWAY_JWS_UNKNOWN_ALG, "alg \"HS256\" is not supported");
    char *lower = compose("{\"alg\":\"es256\",\"kid\":\"ec-key\"}", "{}", "AAAA");
    expect(lower, ANM_EPROTO, GATEWAY_JWS_UNKNOWN_ALG, "alg \"es256\" is not supported");
    free(hs);
    free(lower);
}

Test(jws_reject, alg_not_allowed, .init = setup_fixture, .fini = teardown_fixture)
{
    cr_assert_eq(gateway_jws_verifier_set_algs(fx.v, GATEWAY_JWS_ALG_BIT(GATEWAY_JWS_RS256)), ANM_OK);
    char *jws = sign(fx.ec, "{\"a\":1}");
    expect(jws, ANM_EAUTH, GATEWAY_JWS_ALG_NOT_ALLOWED,
           "alg \"ES256\" is not accepted by configuration");
    free(jws);
}

Test(jws_reject, unknown_key, .init = setup_fixture, .fini = teardown_fixture)
{
    gateway_jws_signer *stranger = make_signer(GATEWAY_JWS_ES256, "neso", "stranger", 0);
    char *a = sign(stranger, "{\"a\":1}");
    expect(a, ANM_EAUTH, GATEWAY_JWS_UNKNOWN_KEY, "kid \"stranger\" is not a trusted key");
    /* kid of a trusted key but the thumbprint of another certificate */
    char header[256];
    char thumb[64];
    cr_assert_eq(gateway_jws_cert_thumbprint(wa_tls_pem(tls, "neso.pem"), thumb, sizeof thumb),
                 ANM_OK);
    snprintf(header, sizeof header, "{\"alg\":\"ES256\",\"kid\":\"ec-key\",\"x5t#S256\":\"%s\"}",
             thumb);
    char *b = compose(header, "{}", "AAAA");
    expect(b, ANM_EAUTH, GATEWAY_JWS_UNKNOWN_KEY,
           "x5t#S256 does not match the certificate trusted as kid \"ec-key\"");
    /* no kid, no thumbprint, two trusted keys */
    char *c = compose("{\"alg\":\"ES256\"}", "{}", "AAAA");
    expect(c, ANM_EAUTH, GATEWAY_JWS_UNKNOWN_KEY, "no kid or x5t#S256 and 2 trusted keys");
    free(a);
    free(b);
    free(c);
    gateway_jws_signer_destroy(&stranger);
}

Test(jws_reject, alg_key_mismatch, .init = setup_fixture, .fini = teardown_fixture)
{
    /* a genuine ES256 signature that claims the RSA key's kid */
    char *jws = NULL;
    const char header[] = "{\"alg\":\"ES256\",\"kid\":\"rsa-key\"}";
    cr_assert_eq(gateway_jws_sign_with_header(fx.ec, header, strlen(header), "{}", 2, &jws, NULL),
                 ANM_OK);
    expect(jws, ANM_EAUTH, GATEWAY_JWS_ALG_KEY_MISMATCH,
           "kid \"rsa-key\": ES256 needs an EC P-256 key, the key is rsaEncryption");
    char *rs = compose("{\"alg\":\"PS256\",\"kid\":\"ec-key\"}", "{}", "AAAA");
    expect(rs, ANM_EAUTH, GATEWAY_JWS_ALG_KEY_MISMATCH,
           "kid \"ec-key\": PS256 needs an RSA key, the key is id-ecPublicKey");
    free(jws);
    free(rs);
}

Test(jws_reject, bad_signature_length, .init = setup_fixture, .fini = teardown_fixture)
{
    char *jws = sign(fx.rsa, "{\"a\":1}");
    char *sig = strrchr(jws, '.') + 1;
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    cr_assert_eq(gateway_base64url_decode(sig, strlen(sig), &raw, &raw_len), ANM_OK);
    char *shorter = gateway_base64url_encode(raw, raw_len - 3); /* 3 bytes fewer */
    memcpy(sig, shorter, strlen(shorter) + 1);
    free(shorter);
    free(raw);
    expect(jws, ANM_EAUTH, GATEWAY_JWS_BAD_SIGNATURE_LENGTH,
           "signature is 253 bytes, RS256 with this key needs 256");
    char *ec = sign(fx.ec, "{\"a\":1}");
    char longer[1024];
    snprintf(longer, sizeof longer, "%sAAAA", ec); /* 3 bytes more */
    expect(longer, ANM_EAUTH, GATEWAY_JWS_BAD_SIGNATURE_LENGTH,
           "signature is 67 bytes, ES256 with this key needs 64");
    free(jws);
    free(ec);
}

Test(jws_reject, tampered_payload_and_header, .init = setup_fixture, .fini = teardown_fixture)
{
    for (int which = 0; which < 2; which++) {
        gateway_jws_signer *s = which == 0 ? fx.rsa : fx.ec;
        const char *kid = which == 0 ? "rsa-key" : "ec-key";
        const char *alg = which == 0 ? "RS256" : "ES256";
        char *jws = sign(s, "{\"level_mw\":10}");
        const char *sig = strrchr(jws, '.') + 1;
        char *dot = strchr(jws, '.');
        /* tampered payload, header and signature kept */
        char *h = gateway_base64url_encode("{\"level_mw\":99}", 15);
        char tampered[2048];
        snprintf(tampered, sizeof tampered, "%.*s.%s.%s", (int)(dot - jws), jws, h, sig);
        char message[128];
        snprintf(message, sizeof message, "%s signature does not verify with kid \"%s\"", alg, kid);
        expect(tampered, ANM_EAUTH, GATEWAY_JWS_BAD_SIGNATURE, message);
        free(h);
        /* tampered header: an extra "typ" */
        json_t *header = decode_header(jws);
        json_object_set_new(header, "typ", json_string("JOSE"));
        char *text = json_dumps(header, JSON_COMPACT);
        char *hb = gateway_base64url_encode(text, strlen(text));
        snprintf(tampered, sizeof tampered, "%s%s", hb, dot);
        expect(tampered, ANM_EAUTH, GATEWAY_JWS_BAD_SIGNATURE, message);
        free(hb);
        free(text);
        json_decref(header);
        free(jws);
    }
}
