/*
 * wa_client.h: the participant's Wider Access client. Validates a message
 * against its schema (wa_messages.h), signs it (jws.h) and POSTs the compact
 * JWS over HTTPS (libcurl) to the endpoint path configured for its kind.
 *
 *   POST <base_url><path>   Content-Type: application/jose
 *   body: BASE64URL(header).BASE64URL(payload).BASE64URL(signature)
 *
 * TLS 1.2 or later, the server certificate verified against ca_file (or the
 * system store when ca_file is NULL) including its host name, optional
 * client certificate. A 2xx answer is success; when a verifier is given the
 * answer body must be a JWS acknowledgement signed by a trusted key (it is
 * returned to the caller). 5xx, 408, 429, timeouts and connection failures
 * are retried with exponential back-off up to max_attempts; other 4xx, TLS
 * verification failures and a bad acknowledgement are permanent and
 * reported at once (logged, component "wa").
 *
 * One client is used by one thread at a time (it owns a curl handle that
 * keeps the TLS connection alive between sends).
 */
#ifndef GATEWAY_WA_CLIENT_H
#define GATEWAY_WA_CLIENT_H

#include <jansson.h>

#include "engine/error.h"
#include "gateway/jws.h"
#include "gateway/wa_messages.h"

typedef struct gateway_wa_client gateway_wa_client;

/*
 * Configuration (strings borrowed for the call; copied). Zero or NULL
 * entries take the defaults in brackets.
 *   base_url           "https://host:port" (required; https only)
 *   paths[kind]        endpoint path per kind ["/wa/v1/<kind>"]
 *   ca_file            PEM CA bundle [system store]
 *   client_cert_file, client_key_file  PEM, both or neither
 *   connect_timeout_ms [5000], request_timeout_ms [10000]
 *   max_attempts       [5], backoff_initial_ms [500] doubling up to backoff_max_ms [30000]
 *   signer             signs every request (required, borrowed)
 *   verifier           verifies signed acknowledgements (NULL: answers are
 *                      not checked beyond the status code; borrowed)
 */
typedef struct gateway_wa_client_config {
    const char *base_url;
    const char *paths[GATEWAY_WA_KIND_COUNT];
    const char *ca_file;
    const char *client_cert_file;
    const char *client_key_file;
    long connect_timeout_ms;
    long request_timeout_ms;
    int max_attempts;
    long backoff_initial_ms;
    long backoff_max_ms;
    const gateway_jws_signer *signer;
    const gateway_jws_verifier *verifier;
} gateway_wa_client_config;

/* ANM_OK, ANM_ECONFIG (detail names the entry) or ANM_ENOMEM. */
int gateway_wa_client_new(const gateway_wa_client_config *config, gateway_wa_client **out,
                          anm_error_detail *detail);
void gateway_wa_client_destroy(gateway_wa_client **client);

/* What happened to one send. */
typedef struct gateway_wa_result {
    long http_status; /* last status received (0: none) */
    int attempts;     /* requests made */
    json_t *ack;      /* the verified acknowledgement (new reference; NULL when none) */
    char error[512];  /* why it failed ("" on success) */
} gateway_wa_result;

/* Releases result->ack. */
void gateway_wa_result_clear(gateway_wa_result *result);

/*
 * Validates, signs and sends message (borrowed; its "kind" picks the path).
 * A participant sends health, redeclaration and submission; the other kinds
 * are allowed so that tests and the demo can play NESO's part. Returns
 *   ANM_OK        2xx (and a valid signed ack when a verifier is set)
 *   ANM_ECONFIG   the message fails its schema (nothing sent)
 *   ANM_EPROTO    permanent refusal: 4xx other than 401/403/404/408/429,
 *                 or an acknowledgement that does not verify or validate
 *   ANM_EAUTH     401/403 or TLS verification failed
 *   ANM_ENOTFOUND 404
 *   ANM_EAGAIN    retries exhausted on 5xx/408/429/timeouts/connection errors
 * result may be NULL.
 */
int gateway_wa_client_send(gateway_wa_client *client, const json_t *message,
                           gateway_wa_result *result);

#endif
