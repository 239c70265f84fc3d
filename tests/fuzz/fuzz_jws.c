/*
 * fuzz_jws.c: arbitrary bytes as a compact JWS to the strict verifier
 * (gateway/jws.h), holding one EC P-256 and one RSA-2048 public key; what
 * verifies is parsed and validated as a Wider Access message
 * (gateway/wa_messages.h). The seeds in corpus/jws/ were signed with the
 * matching private keys (discarded; only the public halves are here), so
 * mutations reach the signature check and, for the unmutated seeds, the
 * schema validator.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "gateway/jws.h"
#include "gateway/wa_messages.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char ec_public_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE52q+nMbsonj7tlEiY84fpCqOgHyy\n"
    "6pwYAsstO5SAIQSSTdxli/VzVy0eSqNY0fnxXF/RXOJ9jyczvvzY0mehZg==\n"
    "-----END PUBLIC KEY-----\n";

static const char rsa_public_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAnOyhcPvtmXbOAcW8DZMH\n"
    "YMzGw3rlsfuDxU6YwirBXopK0lO9jsIiJYOAB5A15Uj1QwCivhN0HJ4DB+BcAcO2\n"
    "B4s9NVHUkhlXcK/jaCnbwdITYgZ2xu6/KoXvdNQh45G303C8CVDRHtegT9ht4eYK\n"
    "K2cMVJbh14a/zNbUOSTY9+jKU7Zr8lAGsFJze2qeJWE1xQmxnCCfycuCknKfR87e\n"
    "Nk9BS+CNjcB/FWOyeAdaRqCnK/JD7DV+9p7hh6Fm198DbT36GyRvSX1DBBJuX6an\n"
    "SDMroU4BGNZqOZNAFMFcWmW9MkTHNG6lC2Y6FaAsGfByRmeS/57HJgQvcJ9RHBCB\n"
    "0wIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

/* Built once per process: a fuzz harness, not library state. */
static gateway_jws_verifier *verifier;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (verifier == NULL) {
        anm_log_set_level(ANM_LOG_OFF);
        verifier = gateway_jws_verifier_new();
        if (verifier == NULL ||
            gateway_jws_verifier_add_public_key(verifier, "fuzz-ec", ec_public_pem, NULL) != ANM_OK ||
            gateway_jws_verifier_add_public_key(verifier, "fuzz-rsa", rsa_public_pem, NULL) != ANM_OK)
            abort();
        gateway_jws_verifier_set_max_bytes(verifier, 64 * 1024);
    }
    unsigned char *payload = NULL;
    size_t payload_len = 0;
    char kid[64];
    gateway_jws_reject why;
    int rc = gateway_jws_verify(verifier, (const char *)data, size, &payload, &payload_len, kid,
                                sizeof kid, &why);
    if (rc == ANM_OK) {
        if (payload == NULL || why.reason != GATEWAY_JWS_OK)
            abort();
        json_t *msg = NULL;
        gateway_wa_reject wa_why;
        if (gateway_wa_parse(payload, payload_len, &msg, NULL, &wa_why) == ANM_OK && msg == NULL)
            abort();
        json_decref(msg);
        free(payload);
    } else if (payload != NULL || why.reason == GATEWAY_JWS_OK) {
        abort(); /* a refusal must say why and hand back nothing */
    }
    /* the decoder on its own, over the whole input */
    unsigned char *decoded = NULL;
    size_t decoded_len = 0;
    if (gateway_base64url_decode((const char *)data, size, &decoded, &decoded_len) == ANM_OK) {
        char *again = gateway_base64url_encode(decoded, decoded_len);
        /* canonical decoding: re-encoding gives the input back */
        if (again == NULL || decoded_len * 4 / 3 + 3 < size ||
            memcmp(again, data, size) != 0 || again[size] != '\0')
            abort();
        free(again);
        free(decoded);
    }
    return 0;
}
