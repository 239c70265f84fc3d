/*
 * wa_server.h: the participant's Wider Access endpoint, where NESO delivers
 * instructions and normalisation. libmicrohttpd over TLS (key and
 * certificate PEM in memory, TLS 1.2 or 1.3 only), one internal thread.
 *
 *   POST <path of kind>   Content-Type: application/jose   body: compact JWS
 *
 * For each request, in order (the first failure answers and is logged as
 * a warning, component "wa", with the reason code; the handler is not
 * called):
 *   413 oversized            body longer than max_body_bytes
 *   404 not_found            path is not a configured endpoint
 *   405 method_not_allowed   not POST
 *   415 unsupported_media_type  Content-Type is not application/jose
 *   401 <jws reason>         unsigned, unknown key, bad signature, ... (jws.h)
 *   400 <jws reason>         malformed JWS (segments, base64url, header)
 *   400 <schema reason>      payload fails its schema (wa_messages.h)
 *   400 wrong_kind           payload kind differs from the endpoint's
 *   503 unavailable          the handler failed (NESO should retry)
 *   200                      accepted: handler called once per message_id
 * Every answer (accepted or not) is a signed "ack" message (application/jose)
 * with ref = the message_id when it could be read, status, reason and text.
 * A message_id seen recently (last 1024) is acknowledged again without
 * calling the handler, so NESO's retries after a lost answer are harmless.
 */
#ifndef GATEWAY_WA_SERVER_H
#define GATEWAY_WA_SERVER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/bus.h"
#include "engine/clock.h"
#include "engine/error.h"
#include "gateway/jws.h"
#include "gateway/wa_messages.h"

/*
 * Called on the server thread for each new valid message. message is
 * borrowed (valid during the call), kid names the key that signed it.
 * Return ANM_OK to acknowledge; anything else answers 503.
 */
typedef int (*gateway_wa_handler)(void *user, gateway_wa_kind kind, const json_t *message,
                                  const char *kid, int64_t received_at_ms);

/*
 * Configuration (strings copied). Zero/NULL take the defaults in brackets.
 *   bind_address    IPv4 address to listen on ["127.0.0.1"]
 *   port            [0: ephemeral, read it back with gateway_wa_server_port]
 *   tls_key_pem, tls_cert_pem  the server's TLS key and certificate chain (required)
 *   paths[kind]     endpoint per accepted kind; a kind without a path is
 *                   not accepted. All NULL: "/wa/v1/instruction" and
 *                   "/wa/v1/normalisation" (what NESO sends). Giving paths
 *                   for health/redeclaration/submission turns the server
 *                   into a NESO-side emulator (tests, demo). Acks: never.
 *   sender          "sender" of our acknowledgements ["participant"]
 *   max_body_bytes  [GATEWAY_JWS_DEFAULT_MAX_BYTES]
 *   signer          signs acknowledgements (required, borrowed)
 *   verifier        verifies requests (required, borrowed)
 *   handler, user   receive valid messages (handler required)
 *   clock           stamps received_at and acks (NULL: real time; borrowed)
 */
typedef struct gateway_wa_server_config {
    const char *bind_address;
    int port;
    const char *tls_key_pem;
    const char *tls_cert_pem;
    const char *paths[GATEWAY_WA_KIND_COUNT];
    const char *sender;
    size_t max_body_bytes;
    const gateway_jws_signer *signer;
    const gateway_jws_verifier *verifier;
    gateway_wa_handler handler;
    void *user;
    anm_clock *clock;
} gateway_wa_server_config;

typedef struct gateway_wa_server gateway_wa_server;

/* Starts listening. ANM_OK, ANM_ECONFIG (detail says why), ANM_ENET (could not bind) or ANM_ENOMEM. */
int gateway_wa_server_start(const gateway_wa_server_config *config, gateway_wa_server **out,
                            anm_error_detail *detail);

/* Stops the thread, closes the socket, frees. Idempotent; nulls *server. */
void gateway_wa_server_stop(gateway_wa_server **server);

/* The bound port (useful with port 0). */
int gateway_wa_server_port(const gateway_wa_server *server);

/* Counters, safe to read from any thread. */
typedef struct gateway_wa_server_stats {
    unsigned long long accepted;   /* handler called and succeeded */
    unsigned long long duplicates; /* acknowledged again, handler not called */
    unsigned long long rejected;   /* answered 4xx/5xx */
    char last_reason[64];          /* code of the last rejection ("" if none) */
} gateway_wa_server_stats;

void gateway_wa_server_get_stats(gateway_wa_server *server, gateway_wa_server_stats *out);

/* ---- bus adapter ---------------------------------------------------------- */

/*
 * Publishes every received message on a PUB socket (borrowed; from then on
 * used only by the adapter, under its lock) as
 *   topic "wa.<kind>/<bmu>"   body {"v":1,"kind":"wa.<kind>","received_at":"...",
 *                                   "kid":"...","message":{...}}
 * (schemas: gateway_wa_bus_schemas). Pass gateway_wa_bus_handler and the
 * adapter as the server's handler and user.
 */
typedef struct gateway_wa_bus_adapter gateway_wa_bus_adapter;

int gateway_wa_bus_adapter_new(anm_socket *pub, gateway_wa_bus_adapter **out);
void gateway_wa_bus_adapter_destroy(gateway_wa_bus_adapter **adapter);

/* A gateway_wa_handler: user is the adapter. ANM_OK or the bus error. */
int gateway_wa_bus_handler(void *user, gateway_wa_kind kind, const json_t *message,
                           const char *kid, int64_t received_at_ms);

#endif
