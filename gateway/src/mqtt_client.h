/*
 * mqtt_client.h (private to the gateway): one libmosquitto connection with
 * TLS, credentials, back-off and error text, shared by mqtt_out.c and
 * mqtt_in.c. A fresh struct mosquitto is made for each connection attempt
 * and destroyed when it ends, so libmosquitto never replays messages on its
 * own; the owner decides what to resend.
 */
#ifndef GATEWAY_MQTT_CLIENT_H
#define GATEWAY_MQTT_CLIENT_H

#include <mosquitto.h>
#include <stdint.h>

#include "engine/error.h"
#include "gateway/mqtt_out.h"

typedef struct gateway__mqtt_client {
    struct mosquitto *mosq;
    gateway_mqtt_state state;
    int last_rc;           /* ANM_OK, ANM_EAUTH or ANM_ENET */
    char last_error[512];
    char tls_log[256];     /* the last error libmosquitto logged (TLS reasons) */
    int64_t next_attempt_ms;
    int64_t backoff_ms;
    /* owned copies of the settings */
    char *host, *client_id, *ca_file, *cert_file, *key_file, *username, *tls_version;
    char password[512];
    int has_password;
    int port, keepalive_s;
    int64_t reconnect_min_ms, reconnect_max_ms;
    /* owner hooks (any may be NULL) */
    void *owner;
    void (*on_connected)(void *owner);
    void (*on_lost)(void *owner);
    void (*on_publish)(void *owner, int mid);
    void (*on_message)(void *owner, const struct mosquitto_message *message);
} gateway__mqtt_client;

/* Copies the settings and reads the password file. ANM_ECONFIG with detail, ANM_ENOMEM. */
int gateway__mqtt_client_init(gateway__mqtt_client *client, const gateway_mqtt_connection *conn,
                              const char *component, anm_error_detail *detail);
void gateway__mqtt_client_fini(gateway__mqtt_client *client);

/* Connects when due and runs libmosquitto's loop for up to timeout_ms. */
int gateway__mqtt_client_run(gateway__mqtt_client *client, const char *component, int timeout_ms);

int64_t gateway__mqtt_now_ms(void);

#endif
