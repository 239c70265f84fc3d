/* mqtt_client.c: the shared libmosquitto connection of mqtt_client.h. */
#include "mqtt_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/clock.h"
#include "engine/log.h"

int64_t gateway__mqtt_now_ms(void)
{
    return anm_monotonic_ns() / 1000000;
}

const char *gateway_mqtt_state_name(gateway_mqtt_state state)
{
    switch (state) {
    case GATEWAY_MQTT_DISCONNECTED:
        return "disconnected";
    case GATEWAY_MQTT_CONNECTING:
        return "connecting";
    case GATEWAY_MQTT_CONNECTED:
        return "connected";
    case GATEWAY_MQTT_REFUSED:
        return "refused";
    }
    return "unknown";
}

static char *dup_opt(const char *s, int *failed)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *failed = 1;
    return d;
}

int gateway__mqtt_client_init(gateway__mqtt_client *client, const gateway_mqtt_connection *conn,
                              const char *component, anm_error_detail *detail)
{
    (void)component;
    memset(client, 0, sizeof *client);
    if (conn->host == NULL || conn->ca_file == NULL) {
        anm_error_detail_set(detail, NULL, 0, 0, conn->host == NULL ? "host" : "ca_file",
                             "missing required setting");
        return ANM_ECONFIG;
    }
    if ((conn->cert_file == NULL) != (conn->key_file == NULL)) {
        anm_error_detail_set(detail, NULL, 0, 0, "cert_file",
                             "cert_file and key_file must be given together");
        return ANM_ECONFIG;
    }
    const char *tls_version = conn->tls_version ? conn->tls_version : "tlsv1.2";
    if (strcmp(tls_version, "tlsv1.2") != 0 && strcmp(tls_version, "tlsv1.3") != 0) {
        anm_error_detail_set(detail, NULL, 0, 0, "tls_version",
                             "must be \"tlsv1.2\" or \"tlsv1.3\", not \"%s\"", tls_version);
        return ANM_ECONFIG;
    }
    int failed = 0;
    client->host = dup_opt(conn->host, &failed);
    client->client_id = dup_opt(conn->client_id, &failed);
    client->ca_file = dup_opt(conn->ca_file, &failed);
    client->cert_file = dup_opt(conn->cert_file, &failed);
    client->key_file = dup_opt(conn->key_file, &failed);
    client->username = dup_opt(conn->username, &failed);
    client->tls_version = dup_opt(tls_version, &failed);
    if (failed) {
        gateway__mqtt_client_fini(client);
        return ANM_ENOMEM;
    }
    client->port = conn->port ? conn->port : 8883;
    client->keepalive_s = conn->keepalive_s ? conn->keepalive_s : 30;
    client->reconnect_min_ms = conn->reconnect_min_ms ? conn->reconnect_min_ms : 500;
    client->reconnect_max_ms = conn->reconnect_max_ms ? conn->reconnect_max_ms : 30000;
    client->backoff_ms = client->reconnect_min_ms;
    if (conn->password_file != NULL) {
        FILE *f = fopen(conn->password_file, "r");
        if (f == NULL || fgets(client->password, sizeof client->password, f) == NULL) {
            anm_error_detail_set(detail, conn->password_file, 0, 0, "password_file",
                                 "could not read password file \"%s\"", conn->password_file);
            if (f != NULL)
                fclose(f);
            gateway__mqtt_client_fini(client);
            return ANM_ECONFIG;
        }
        fclose(f);
        client->password[strcspn(client->password, "\r\n")] = '\0';
        client->has_password = 1;
    }
    mosquitto_lib_init();
    return ANM_OK;
}

static void drop_connection(gateway__mqtt_client *client)
{
    if (client->mosq == NULL)
        return;
    mosquitto_destroy(client->mosq);
    client->mosq = NULL;
}

void gateway__mqtt_client_fini(gateway__mqtt_client *client)
{
    if (client->mosq != NULL) {
        mosquitto_disconnect(client->mosq);
        drop_connection(client);
    }
    explicit_bzero(client->password, sizeof client->password);
    free(client->host);
    free(client->client_id);
    free(client->ca_file);
    free(client->cert_file);
    free(client->key_file);
    free(client->username);
    free(client->tls_version);
    client->host = client->client_id = client->ca_file = client->cert_file = NULL;
    client->key_file = client->username = client->tls_version = NULL;
}

static const char *connack_reason(int rc)
{
    switch (rc) {
    case 1:
        return "unacceptable protocol version";
    case 2:
        return "identifier rejected";
    case 3:
        return "server unavailable";
    case 4:
        return "bad user name or password";
    case 5:
        return "not authorised";
    default:
        return "unknown reason";
    }
}

static void cb_connect(struct mosquitto *mosq, void *obj, int rc)
{
    (void)mosq;
    gateway__mqtt_client *client = obj;
    if (rc == 0) {
        client->state = GATEWAY_MQTT_CONNECTED;
        client->last_rc = ANM_OK;
        client->last_error[0] = '\0';
        client->backoff_ms = client->reconnect_min_ms;
        if (client->on_connected != NULL)
            client->on_connected(client->owner);
        return;
    }
    client->state = GATEWAY_MQTT_REFUSED;
    client->last_rc = (rc == 4 || rc == 5) ? ANM_EAUTH : ANM_ENET;
    snprintf(client->last_error, sizeof client->last_error, "connack refused: %s",
             connack_reason(rc));
}

static void cb_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
    (void)mosq;
    (void)rc;
    gateway__mqtt_client *client = obj;
    if (client->state == GATEWAY_MQTT_CONNECTED)
        client->state = GATEWAY_MQTT_DISCONNECTED;
}

static void cb_publish(struct mosquitto *mosq, void *obj, int mid)
{
    (void)mosq;
    gateway__mqtt_client *client = obj;
    if (client->on_publish != NULL)
        client->on_publish(client->owner, mid);
}

static void cb_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *message)
{
    (void)mosq;
    gateway__mqtt_client *client = obj;
    if (client->on_message != NULL)
        client->on_message(client->owner, message);
}

static void cb_log(struct mosquitto *mosq, void *obj, int level, const char *text)
{
    (void)mosq;
    gateway__mqtt_client *client = obj;
    if (level == MOSQ_LOG_ERR)
        snprintf(client->tls_log, sizeof client->tls_log, "%s", text);
}

static void schedule_retry(gateway__mqtt_client *client, const char *component)
{
    int was_connected = client->state == GATEWAY_MQTT_CONNECTED;
    drop_connection(client);
    if (client->state != GATEWAY_MQTT_REFUSED)
        client->state = GATEWAY_MQTT_DISCONNECTED;
    if (client->on_lost != NULL)
        client->on_lost(client->owner);
    if (was_connected)
        client->backoff_ms = client->reconnect_min_ms;
    client->next_attempt_ms = gateway__mqtt_now_ms() + client->backoff_ms;
    anm_log_warn(component, "mqtt connection to \"%s:%d\" down: %s; retrying in %lld ms",
                 client->host, client->port, client->last_error, (long long)client->backoff_ms);
    client->backoff_ms *= 2;
    if (client->backoff_ms > client->reconnect_max_ms)
        client->backoff_ms = client->reconnect_max_ms;
}

static void nap_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int connect_now(gateway__mqtt_client *client, const char *component)
{
    client->tls_log[0] = '\0';
    client->mosq = mosquitto_new(client->client_id, true, client);
    if (client->mosq == NULL)
        return ANM_ENOMEM;
    struct mosquitto *mosq = client->mosq;
    mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_connect_callback_set(mosq, cb_connect);
    mosquitto_disconnect_callback_set(mosq, cb_disconnect);
    mosquitto_publish_callback_set(mosq, cb_publish);
    mosquitto_message_callback_set(mosq, cb_message);
    mosquitto_log_callback_set(mosq, cb_log);
    int rc = MOSQ_ERR_SUCCESS;
    if (client->username != NULL)
        rc = mosquitto_username_pw_set(mosq, client->username,
                                       client->has_password ? client->password : NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_tls_set(mosq, client->ca_file, NULL, client->cert_file, client->key_file,
                               NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_tls_opts_set(mosq, 1 /* SSL_VERIFY_PEER */, client->tls_version, NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_tls_insecure_set(mosq, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(client->last_error, sizeof client->last_error, "tls settings: %s",
                 mosquitto_strerror(rc));
        client->last_rc = ANM_ENET;
        schedule_retry(client, component);
        return ANM_ENET;
    }
    client->state = GATEWAY_MQTT_CONNECTING;
    rc = mosquitto_connect(mosq, client->host, client->port, client->keepalive_s);
    if (rc != MOSQ_ERR_SUCCESS) {
        const char *why = rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
        if (client->tls_log[0] != '\0')
            why = client->tls_log;
        snprintf(client->last_error, sizeof client->last_error, "could not connect to \"%.200s:%d\": %.250s",
                 client->host, client->port, why);
        client->last_rc = ANM_ENET;
        client->state = GATEWAY_MQTT_DISCONNECTED;
        schedule_retry(client, component);
        return ANM_ENET;
    }
    return ANM_OK;
}

int gateway__mqtt_client_run(gateway__mqtt_client *client, const char *component, int timeout_ms)
{
    int64_t now = gateway__mqtt_now_ms();
    if (client->mosq == NULL) {
        if (now < client->next_attempt_ms) {
            int64_t wait = client->next_attempt_ms - now;
            nap_ms(wait < timeout_ms ? wait : timeout_ms);
            return client->last_rc;
        }
        int rc = connect_now(client, component);
        if (rc != ANM_OK)
            return rc;
    }
    int rc = mosquitto_loop(client->mosq, timeout_ms, 1);
    if (client->state == GATEWAY_MQTT_REFUSED) {
        anm_log_error(component, "mqtt broker \"%s:%d\" refused the connection: %s", client->host,
                      client->port, client->last_error);
        schedule_retry(client, component);
        return client->last_rc;
    }
    if (rc != MOSQ_ERR_SUCCESS || client->state == GATEWAY_MQTT_DISCONNECTED) {
        const char *why = rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
        if (client->tls_log[0] != '\0')
            why = client->tls_log;
        snprintf(client->last_error, sizeof client->last_error, "connection to \"%.200s:%d\" lost: %.250s",
                 client->host, client->port, why);
        client->last_rc = ANM_ENET;
        schedule_retry(client, component);
        return ANM_ENET;
    }
    return client->state == GATEWAY_MQTT_CONNECTED ? ANM_OK : client->last_rc;
}
