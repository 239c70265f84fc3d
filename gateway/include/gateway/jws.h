/*
 * jws.h: JSON Web Signature (RFC 7515), compact serialisation only, for the
 * Wider Access API's signed JSON (see docs/wider-access.md).
 *
 *   BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature)
 *
 * base64url without padding (RFC 7515 section 2). Algorithms (RFC 7518):
 *   RS256  RSASSA-PKCS1-v1_5 with SHA-256, RSA key of at least 2048 bits
 *   PS256  RSASSA-PSS with SHA-256, MGF1-SHA-256, 32-byte salt
 *   ES256  ECDSA P-256 with SHA-256, signature R || S (64 bytes)
 * HMAC algorithms and "none" are never accepted.
 *
 * A signer holds a private key (PEM) and, optionally, the matching
 * certificate; its protected header is
 *   {"alg":"RS256","kid":"...","x5t#S256":"..."}
 * where kid is configured or, by default, the certificate's x5t#S256 (the
 * base64url SHA-256 of its DER), and x5t#S256 is included when asked.
 *
 * A verifier holds the trusted certificates (or bare public keys), each
 * under a kid, and the set of algorithms it accepts. Verification is strict
 * and every failure has its own reason (gateway_jws_reason): the caller logs
 * why->text with the code. Keys carried in the message (jwk, x5c, jku, x5u)
 * are never used; a "crit" header is refused since no extension is
 * understood.
 *
 * Signers and verifiers are immutable after set-up and may be shared by
 * threads (OpenSSL 3 EVP_PKEY is safe for concurrent use).
 */
#ifndef GATEWAY_JWS_H
#define GATEWAY_JWS_H

#include <stddef.h>

#include "engine/error.h"

typedef enum gateway_jws_alg {
    GATEWAY_JWS_RS256 = 0,
    GATEWAY_JWS_PS256 = 1,
    GATEWAY_JWS_ES256 = 2
} gateway_jws_alg;

enum { GATEWAY_JWS_ALG_COUNT = 3 };

/* Bit of alg in an accepted-algorithm mask. */
#define GATEWAY_JWS_ALG_BIT(alg) (1u << (unsigned)(alg))
#define GATEWAY_JWS_ALG_ALL 0x7u

/* "RS256", "PS256", "ES256". */
const char *gateway_jws_alg_name(gateway_jws_alg alg);

/* Parses an algorithm name (exact, case-sensitive). ANM_OK or ANM_EINVAL. */
int gateway_jws_alg_parse(const char *name, gateway_jws_alg *out);

/* Why a JWS was refused. gateway_jws_reason_code gives the logged code. */
typedef enum gateway_jws_reason {
    GATEWAY_JWS_OK = 0,
    GATEWAY_JWS_OVERSIZED,            /* "oversized": longer than the verifier's limit */
    GATEWAY_JWS_SEGMENT_COUNT,        /* "segment_count": not three '.'-separated parts */
    GATEWAY_JWS_BAD_BASE64URL,        /* "bad_base64url": a byte outside the alphabet, padding, bad length or trailing bits */
    GATEWAY_JWS_BAD_HEADER,           /* "bad_header": not a JSON object, duplicate keys, alg missing, crit, wrong types */
    GATEWAY_JWS_UNSIGNED,             /* "unsigned": alg "none" or an empty signature */
    GATEWAY_JWS_UNKNOWN_ALG,          /* "unknown_alg": an algorithm this code does not implement (HS256, ...) */
    GATEWAY_JWS_ALG_NOT_ALLOWED,      /* "alg_not_allowed": implemented but not accepted by configuration */
    GATEWAY_JWS_UNKNOWN_KEY,          /* "unknown_key": kid / x5t#S256 match no trusted key */
    GATEWAY_JWS_ALG_KEY_MISMATCH,     /* "alg_key_mismatch": e.g. ES256 claimed for an RSA key */
    GATEWAY_JWS_BAD_SIGNATURE_LENGTH, /* "bad_signature_length": not the size the algorithm and key give */
    GATEWAY_JWS_BAD_SIGNATURE         /* "bad_signature": does not verify (tampered header or payload, wrong key) */
} gateway_jws_reason;

const char *gateway_jws_reason_code(gateway_jws_reason reason);

typedef struct gateway_jws_reject {
    gateway_jws_reason reason;
    char text[256]; /* e.g. "signature is 255 bytes, RS256 with this key needs 256" */
} gateway_jws_reject;

/* ---- base64url (exposed for tests and the Wider Access layer) ------------ */

/*
 * Encodes n bytes as base64url without padding into a new NUL-terminated
 * string (free()). NULL on ENOMEM.
 */
char *gateway_base64url_encode(const void *data, size_t n);

/*
 * Decodes strictly: alphabet [A-Za-z0-9_-] only, no '=', length mod 4 != 1,
 * unused trailing bits zero (so each byte string has one encoding). *out is
 * new (free(), NUL-terminated for convenience), *out_len its length.
 * ANM_OK, ANM_EPARSE or ANM_ENOMEM.
 */
int gateway_base64url_decode(const char *text, size_t len, unsigned char **out, size_t *out_len);

/* ---- signing ------------------------------------------------------------ */

typedef struct gateway_jws_signer gateway_jws_signer;

/*
 * Signer options. key_pem is required; cert_pem may be NULL (then kid is
 * required and include_x5t must be 0). kid NULL: the certificate's
 * x5t#S256. The key must suit alg (RSA >= 2048 bits for RS256/PS256, P-256
 * for ES256) and match the certificate.
 */
typedef struct gateway_jws_signer_config {
    gateway_jws_alg alg;
    const char *key_pem;  /* PEM private key (PKCS#8 or traditional), NUL-terminated */
    const char *cert_pem; /* PEM X.509 certificate, or NULL */
    const char *kid;      /* or NULL */
    int include_x5t;      /* put "x5t#S256" in the header */
} gateway_jws_signer_config;

/* New signer. ANM_OK, ANM_ECONFIG (detail says why) or ANM_ENOMEM. */
int gateway_jws_signer_new(const gateway_jws_signer_config *config, gateway_jws_signer **out,
                           anm_error_detail *detail);

/* As gateway_jws_signer_new with key and certificate read from files (cert_path may be NULL). */
int gateway_jws_signer_new_files(gateway_jws_alg alg, const char *key_path, const char *cert_path,
                                 const char *kid, int include_x5t, gateway_jws_signer **out,
                                 anm_error_detail *detail);

void gateway_jws_signer_destroy(gateway_jws_signer **signer);

gateway_jws_alg gateway_jws_signer_alg(const gateway_jws_signer *signer);
/* The kid put in headers (borrowed). */
const char *gateway_jws_signer_kid(const gateway_jws_signer *signer);

/*
 * Signs payload (any bytes; the Wider Access layer passes compact JSON)
 * under the signer's header. *out is a new NUL-terminated compact JWS
 * (free()), *out_len its length (may be NULL). ANM_OK, ANM_ENOMEM or
 * ANM_EINTERNAL (OpenSSL failed; logged).
 */
int gateway_jws_sign(const gateway_jws_signer *signer, const void *payload, size_t payload_len,
                     char **out, size_t *out_len);

/*
 * Signs with a caller-supplied protected header (its exact bytes; tests and
 * interoperability checks against published examples). The header must be
 * a JSON object whose "alg" is the signer's. ANM_EINVAL otherwise.
 */
int gateway_jws_sign_with_header(const gateway_jws_signer *signer, const void *header,
                                 size_t header_len, const void *payload, size_t payload_len,
                                 char **out, size_t *out_len);

/* ---- verification ------------------------------------------------------- */

typedef struct gateway_jws_verifier gateway_jws_verifier;

/* Default limit on the compact serialisation: 1 MiB. */
enum { GATEWAY_JWS_DEFAULT_MAX_BYTES = 1 << 20 };

/* New verifier with no keys, every algorithm accepted, the default limit. NULL on ENOMEM. */
gateway_jws_verifier *gateway_jws_verifier_new(void);
void gateway_jws_verifier_destroy(gateway_jws_verifier **verifier);

/* Restricts the accepted algorithms to mask (GATEWAY_JWS_ALG_BIT ors; 0 is refused: ANM_EINVAL). */
int gateway_jws_verifier_set_algs(gateway_jws_verifier *verifier, unsigned mask);
/* Longest compact JWS accepted, in bytes (> 0). */
int gateway_jws_verifier_set_max_bytes(gateway_jws_verifier *verifier, size_t max_bytes);

/*
 * Trusts the certificate in cert_pem (PEM, one or more: each becomes a
 * trusted key) under kid (NULL: each certificate's x5t#S256). ANM_OK,
 * ANM_ECONFIG (not a certificate, unsupported key type or size, no
 * certificate in the PEM), ANM_EDUP (kid already trusted) or ANM_ENOMEM.
 * Certificate validity dates and chains are not checked here: the trust
 * list is the configuration (pinning); TLS does chain validation.
 */
int gateway_jws_verifier_add_cert(gateway_jws_verifier *verifier, const char *kid,
                                  const char *cert_pem, anm_error_detail *detail);
int gateway_jws_verifier_add_cert_file(gateway_jws_verifier *verifier, const char *kid,
                                       const char *path, anm_error_detail *detail);
/* Trusts a bare PEM public key (SubjectPublicKeyInfo) under kid (required). */
int gateway_jws_verifier_add_public_key(gateway_jws_verifier *verifier, const char *kid,
                                        const char *key_pem, anm_error_detail *detail);
size_t gateway_jws_verifier_key_count(const gateway_jws_verifier *verifier);

/*
 * Verifies a compact JWS of len bytes. Key choice: the header's kid must
 * name a trusted key, and its x5t#S256, if present, must match that key's
 * certificate; with no kid the x5t#S256 picks the key; with neither, a
 * verifier holding exactly one key uses it.
 *
 * On ANM_OK *payload is the decoded payload (new, NUL-terminated, free()),
 * *payload_len its length, and kid_out (may be NULL; size kid_size) the kid
 * of the key that verified it. On ANM_EAUTH (signature problems) or
 * ANM_EPROTO (malformed input) *payload is NULL and why (may be NULL) says
 * which check failed. ANM_ENOMEM as usual.
 */
int gateway_jws_verify(const gateway_jws_verifier *verifier, const char *jws, size_t len,
                       unsigned char **payload, size_t *payload_len, char *kid_out,
                       size_t kid_size, gateway_jws_reject *why);

/*
 * x5t#S256 of the first certificate in cert_pem: base64url(SHA-256(DER)),
 * 43 characters, into buf (size >= 44). ANM_OK, ANM_ECONFIG or ANM_ERANGE.
 */
int gateway_jws_cert_thumbprint(const char *cert_pem, char *buf, size_t size);

#endif
