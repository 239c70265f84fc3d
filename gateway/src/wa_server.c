/* wa_server.c: the Wider Access HTTPS endpoint on libmicrohttpd (see wa_server.h). */
#include "gateway/wa_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "engine/log.h"

#define COMPONENT "wa"

enum { RECENT_IDS = 1024, ID_SIZE = 65 };

struct gateway_wa_server {
    struct MHD_Daemon *daemon;
    char *tls_key_pem;
    char *tls_cert_pem;
    char *paths[GATEWAY_WA_KIND_COUNT]; /* NULL: kind not received */
    char *sender;
    size_t max_body_bytes;
    const gateway_jws_signer *signer;
    const gateway_jws_verifier *verifier;
    gateway_wa_handler handler;
    void *user;
    anm_clock *clock;
    int port;
    /* touched only by the server thread */
    char (*recent)[ID_SIZE];
    size_t recent_next;
    unsigned long long ack_seq;
    /* read by any thread */
    _Atomic unsigned long long accepted, duplicates, rejected;
    pthread_mutex_t reason_lock;
    char last_reason[64];
};

typedef struct request {
    char *body;
    size_t len;
    int too_large;
} request;

static int64_t now_ms(const gateway_wa_server *s)
{
    return s->clock != NULL ? anm_clock_now_ms(s->clock) : anm_wall_clock_ms();
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    if (vsnprintf(line, sizeof line, fmt, ap) < 0)
        return;
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '.'))
        line[--n] = '\0';
    anm_log_warn(COMPONENT, "https server: %s", line);
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)connection;
    (void)toe;
    request *r = *con_cls;
    if (r != NULL) {
        free(r->body);
        free(r);
        *con_cls = NULL;
    }
}

/* Queues a signed ack (or, if signing fails, plain text) with status. */
static enum MHD_Result answer(gateway_wa_server *s, struct MHD_Connection *connection,
                              unsigned int status, const char *ref, const char *reason,
                              const char *text)
{
    char ack_id[64];
    snprintf(ack_id, sizeof ack_id, "ack-%lld-%llu", (long long)now_ms(s), ++s->ack_seq);
    json_t *ack = gateway_wa_ack_new(ack_id, s->sender, now_ms(s), ref, status / 100 == 2, reason,
                                     text);
    char *payload = ack ? json_dumps(ack, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    char *jws = NULL;
    size_t jws_len = 0;
    struct MHD_Response *response = NULL;
    if (payload != NULL &&
        gateway_jws_sign(s->signer, payload, strlen(payload), &jws, &jws_len) == ANM_OK) {
        response = MHD_create_response_from_buffer(jws_len, jws, MHD_RESPMEM_MUST_FREE);
        if (response != NULL) {
            jws = NULL;
            MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/jose");
        }
    }
    if (response == NULL) {
        const char *plain = reason != NULL ? reason : "internal_error";
        response = MHD_create_response_from_buffer(strlen(plain), (void *)(uintptr_t)plain,
                                                   MHD_RESPMEM_MUST_COPY);
        if (response != NULL)
            MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
    }
    free(jws);
    free(payload);
    json_decref(ack);
    if (response == NULL)
        return MHD_NO;
    enum MHD_Result result = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return result;
}

static void peer_of(struct MHD_Connection *connection, char *buf, size_t size)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(buf, size, "unknown");
    if (info == NULL || info->client_addr == NULL)
        return;
    if (info->client_addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)info->client_addr;
        char host[INET_ADDRSTRLEN];
        if (inet_ntop(AF_INET, &in->sin_addr, host, sizeof host) != NULL)
            snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    }
}

/* Logs a refusal, counts it and answers it. */
static enum MHD_Result refuse(gateway_wa_server *s, struct MHD_Connection *connection,
                              const char *url, unsigned int status, const char *ref,
                              const char *reason, const char *text)
{
    char peer[64];
    peer_of(connection, peer, sizeof peer);
    json_t *fields = json_pack("{s:s, s:s, s:i, s:s, s:s?}", "reason", reason, "path", url,
                               "status", (int)status, "peer", peer, "ref", ref);
    char message[512];
    snprintf(message, sizeof message, "refused wider access request on \"%.100s\" from \"%s\": %s: %.300s",
             url, peer, reason, text);
    anm_log_fields(ANM_LOG_WARN, COMPONENT, message, fields);
    json_decref(fields);
    atomic_fetch_add(&s->rejected, 1);
    pthread_mutex_lock(&s->reason_lock);
    snprintf(s->last_reason, sizeof s->last_reason, "%s", reason);
    pthread_mutex_unlock(&s->reason_lock);
    return answer(s, connection, status, ref, reason, text);
}

static int seen_recently(gateway_wa_server *s, const char *id)
{
    for (size_t i = 0; i < RECENT_IDS; i++)
        if (s->recent[i][0] != '\0' && strcmp(s->recent[i], id) == 0)
            return 1;
    return 0;
}

static void remember(gateway_wa_server *s, const char *id)
{
    snprintf(s->recent[s->recent_next], ID_SIZE, "%s", id);
    s->recent_next = (s->recent_next + 1) % RECENT_IDS;
}

static int content_type_is_jose(struct MHD_Connection *connection)
{
    const char *type = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_CONTENT_TYPE);
    if (type == NULL)
        return 0;
    size_t n = strcspn(type, "; \t");
    return n == strlen("application/jose") && strncasecmp(type, "application/jose", n) == 0;
}

static enum MHD_Result process(gateway_wa_server *s, struct MHD_Connection *connection,
                               const char *url, const char *method, request *r)
{
    if (r->too_large) {
        char text[96];
        snprintf(text, sizeof text, "body is longer than %zu bytes", s->max_body_bytes);
        return refuse(s, connection, url, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "oversized", text);
    }
    int path_kind = -1;
    for (int i = 0; i < GATEWAY_WA_KIND_COUNT && path_kind < 0; i++)
        if (s->paths[i] != NULL && strcmp(s->paths[i], url) == 0)
            path_kind = i;
    if (path_kind < 0)
        return refuse(s, connection, url, MHD_HTTP_NOT_FOUND, NULL, "not_found",
                      "no wider access endpoint at this path");
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return refuse(s, connection, url, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, "method_not_allowed",
                      "only POST is accepted");
    if (!content_type_is_jose(connection))
        return refuse(s, connection, url, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL,
                      "unsupported_media_type", "content type must be application/jose");

    unsigned char *payload = NULL;
    size_t payload_len = 0;
    char kid[160] = "";
    gateway_jws_reject jws_why;
    int rc = gateway_jws_verify(s->verifier, r->body ? r->body : "", r->len, &payload,
                                &payload_len, kid, sizeof kid, &jws_why);
    if (rc == ANM_ENOMEM)
        return MHD_NO;
    if (rc != ANM_OK)
        return refuse(s, connection, url,
                      rc == ANM_EAUTH ? MHD_HTTP_UNAUTHORIZED : MHD_HTTP_BAD_REQUEST, NULL,
                      gateway_jws_reason_code(jws_why.reason), jws_why.text);
    json_t *msg = NULL;
    gateway_wa_kind kind;
    gateway_wa_reject why;
    rc = gateway_wa_parse(payload, payload_len, &msg, &kind, &why);
    if (rc != ANM_OK) {
        if (rc == ANM_ENOMEM) {
            free(payload);
            return MHD_NO;
        }
        /* the message_id may still be readable, for the ack's ref */
        json_t *loose = json_loadb((const char *)payload, payload_len, 0, NULL);
        const char *ref = json_string_value(json_object_get(loose, "message_id"));
        if (ref != NULL && (strlen(ref) == 0 || strlen(ref) > 64))
            ref = NULL;
        enum MHD_Result answered = refuse(s, connection, url, MHD_HTTP_BAD_REQUEST, ref,
                                          gateway_wa_reason_code(why.reason), why.text);
        json_decref(loose);
        free(payload);
        return answered;
    }
    free(payload);
    const char *message_id = json_string_value(json_object_get(msg, "message_id"));
    enum MHD_Result result;
    if ((int)kind != path_kind) {
        char text[128];
        snprintf(text, sizeof text, "a %s message was posted to the %s endpoint",
                 gateway_wa_kind_name(kind), gateway_wa_kind_name((gateway_wa_kind)path_kind));
        result = refuse(s, connection, url, MHD_HTTP_BAD_REQUEST, message_id, "wrong_kind", text);
        goto free_msg;
    }
    if (seen_recently(s, message_id)) {
        atomic_fetch_add(&s->duplicates, 1);
        anm_log_info(COMPONENT, "%s \"%s\" received again: acknowledged, not handed on",
                     gateway_wa_kind_name(kind), message_id);
        result = answer(s, connection, MHD_HTTP_OK, message_id, NULL, "duplicate");
        goto free_msg;
    }
    rc = s->handler(s->user, kind, msg, kid, now_ms(s));
    if (rc != ANM_OK) {
        char text[128];
        snprintf(text, sizeof text, "could not hand the %s on: %s", gateway_wa_kind_name(kind),
                 anm_strerror(rc));
        result = refuse(s, connection, url, MHD_HTTP_SERVICE_UNAVAILABLE, message_id,
                        "unavailable", text);
        goto free_msg;
    }
    remember(s, message_id);
    atomic_fetch_add(&s->accepted, 1);
    anm_log_info(COMPONENT, "%s \"%s\" accepted (kid \"%s\")", gateway_wa_kind_name(kind),
                 message_id, kid);
    result = answer(s, connection, MHD_HTTP_OK, message_id, NULL, NULL);
free_msg:
    json_decref(msg);
    return result;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    gateway_wa_server *s = cls;
    request *r = *con_cls;
    if (r == NULL) {
        r = calloc(1, sizeof *r);
        if (r == NULL)
            return MHD_NO;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->too_large || r->len + n > s->max_body_bytes) {
            r->too_large = 1;
            return MHD_YES; /* keep reading, answer 413 at the end */
        }
        char *grown = realloc(r->body, r->len + n + 1);
        if (grown == NULL)
            return MHD_NO;
        r->body = grown;
        memcpy(r->body + r->len, upload_data, n);
        r->len += n;
        r->body[r->len] = '\0';
        return MHD_YES;
    }
    return process(s, connection, url, method, r);
}

static void server_free(gateway_wa_server *s)
{
    if (s->daemon != NULL)
        MHD_stop_daemon(s->daemon);
    if (s->tls_key_pem != NULL) {
        memset(s->tls_key_pem, 0, strlen(s->tls_key_pem));
        free(s->tls_key_pem);
    }
    free(s->tls_cert_pem);
    for (int i = 0; i < GATEWAY_WA_KIND_COUNT; i++)
        free(s->paths[i]);
    free(s->sender);
    free(s->recent);
    pthread_mutex_destroy(&s->reason_lock);
    free(s);
}

void gateway_wa_server_stop(gateway_wa_server **server)
{
    if (server == NULL || *server == NULL)
        return;
    server_free(*server);
    *server = NULL;
}

int gateway_wa_server_port(const gateway_wa_server *server)
{
    return server->port;
}

void gateway_wa_server_get_stats(gateway_wa_server *server, gateway_wa_server_stats *out)
{
    out->accepted = atomic_load(&server->accepted);
    out->duplicates = atomic_load(&server->duplicates);
    out->rejected = atomic_load(&server->rejected);
    pthread_mutex_lock(&server->reason_lock);
    snprintf(out->last_reason, sizeof out->last_reason, "%s", server->last_reason);
    pthread_mutex_unlock(&server->reason_lock);
}

int gateway_wa_server_start(const gateway_wa_server_config *config, gateway_wa_server **out,
                            anm_error_detail *detail)
{
    *out = NULL;
    if (config->tls_key_pem == NULL || config->tls_cert_pem == NULL) {
        anm_error_detail_set(detail, NULL, 0, 0, "tls_key", "the server needs a tls key and certificate");
        return ANM_ECONFIG;
    }
    if (config->signer == NULL || config->verifier == NULL || config->handler == NULL) {
        anm_error_detail_set(detail, NULL, 0, 0, "signer",
                             "the server needs a signer, a verifier and a handler");
        return ANM_ECONFIG;
    }
    if (config->port < 0 || config->port > 65535) {
        anm_error_detail_set(detail, NULL, 0, 0, "port", "port %d is outside [0, 65535]",
                             config->port);
        return ANM_ECONFIG;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)config->port);
    const char *bind_address = config->bind_address ? config->bind_address : "127.0.0.1";
    if (inet_pton(AF_INET, bind_address, &addr.sin_addr) != 1) {
        anm_error_detail_set(detail, NULL, 0, 0, "bind_address",
                             "\"%s\" is not an IPv4 address", bind_address);
        return ANM_ECONFIG;
    }
    int any_path = 0;
    for (int i = 0; i < GATEWAY_WA_KIND_COUNT; i++) {
        const gateway_wa_schema *schema = gateway_wa_schema_get((gateway_wa_kind)i);
        if (config->paths[i] == NULL)
            continue;
        any_path = 1;
        if (i == GATEWAY_WA_ACK || config->paths[i][0] != '/') {
            anm_error_detail_set(detail, NULL, 0, 0, schema->name,
                                 "endpoint \"%s\" must start with '/' and not be for acks",
                                 config->paths[i]);
            return ANM_ECONFIG;
        }
    }
    gateway_wa_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return ANM_ENOMEM;
    pthread_mutex_init(&s->reason_lock, NULL);
    s->tls_key_pem = strdup(config->tls_key_pem);
    s->tls_cert_pem = strdup(config->tls_cert_pem);
    s->sender = strdup(config->sender ? config->sender : "participant");
    s->recent = calloc(RECENT_IDS, sizeof *s->recent);
    int failed = s->tls_key_pem == NULL || s->tls_cert_pem == NULL || s->sender == NULL ||
                 s->recent == NULL;
    for (int i = 0; i < GATEWAY_WA_KIND_COUNT && !failed; i++) {
        const gateway_wa_schema *schema = gateway_wa_schema_get((gateway_wa_kind)i);
        char path[64];
        snprintf(path, sizeof path, "/wa/v1/%s", schema->name);
        if (config->paths[i] != NULL)
            s->paths[i] = strdup(config->paths[i]);
        else if (!any_path && schema->direction == GATEWAY_WA_FROM_NESO)
            s->paths[i] = strdup(path);
        else
            continue;
        failed = s->paths[i] == NULL;
    }
    if (failed) {
        server_free(s);
        return ANM_ENOMEM;
    }
    s->max_body_bytes = config->max_body_bytes ? config->max_body_bytes
                                               : GATEWAY_JWS_DEFAULT_MAX_BYTES;
    s->signer = config->signer;
    s->verifier = config->verifier;
    s->handler = config->handler;
    s->user = config->user;
    s->clock = config->clock;
    s->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, s, MHD_OPTION_HTTPS_MEM_KEY, s->tls_key_pem, MHD_OPTION_HTTPS_MEM_CERT,
        s->tls_cert_pem, MHD_OPTION_HTTPS_PRIORITIES,
        "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, s, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
        MHD_OPTION_END);
    if (s->daemon == NULL) {
        anm_error_detail_set(detail, NULL, 0, 0, "port",
                             "could not start the https endpoint on \"%s:%d\" (address in use, "
                             "or a bad tls key or certificate)",
                             bind_address, config->port);
        server_free(s);
        return ANM_ENET;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info != NULL ? info->port : config->port;
    anm_log_info(COMPONENT, "wider access endpoint listening on \"https://%s:%d\"", bind_address,
                 s->port);
    *out = s;
    return ANM_OK;
}

/* ---- bus adapter -------------------------------------------------------------- */

struct gateway_wa_bus_adapter {
    anm_socket *pub;
    pthread_mutex_t lock;
};

int gateway_wa_bus_adapter_new(anm_socket *pub, gateway_wa_bus_adapter **out)
{
    *out = NULL;
    if (pub == NULL || anm_socket_get_type(pub) != ANM_SOCKET_PUB)
        return ANM_EINVAL;
    gateway_wa_bus_adapter *a = calloc(1, sizeof *a);
    if (a == NULL)
        return ANM_ENOMEM;
    a->pub = pub;
    pthread_mutex_init(&a->lock, NULL);
    *out = a;
    return ANM_OK;
}

void gateway_wa_bus_adapter_destroy(gateway_wa_bus_adapter **adapter)
{
    if (adapter == NULL || *adapter == NULL)
        return;
    pthread_mutex_destroy(&(*adapter)->lock);
    free(*adapter);
    *adapter = NULL;
}

int gateway_wa_bus_handler(void *user, gateway_wa_kind kind, const json_t *message,
                           const char *kid, int64_t received_at_ms)
{
    gateway_wa_bus_adapter *a = user;
    char bus_kind[32], topic[128], received[32];
    snprintf(bus_kind, sizeof bus_kind, "wa.%s", gateway_wa_kind_name(kind));
    const char *bmu = json_string_value(json_object_get(message, "bmu"));
    if (snprintf(topic, sizeof topic, "%s/%s", bus_kind, bmu ? bmu : "") >= (int)sizeof topic)
        return ANM_ERANGE;
    if (anm_time_format_utc(received_at_ms, received, sizeof received) < 0)
        return ANM_ERANGE;
    json_t *body = json_pack("{s:i, s:s, s:s, s:s, s:O}", "v", 1, "kind", bus_kind, "received_at",
                             received, "kid", kid ? kid : "", "message", message);
    if (body == NULL)
        return ANM_ENOMEM;
    pthread_mutex_lock(&a->lock);
    int rc = anm_bus_send_json(a->pub, NULL, topic, body, 0);
    pthread_mutex_unlock(&a->lock);
    json_decref(body);
    if (rc != ANM_OK)
        anm_log_error(COMPONENT, "could not publish \"%s\" on the bus: %s", topic,
                      anm_strerror(rc));
    return rc;
}
