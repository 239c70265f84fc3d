/* wa_client.c: signed Wider Access submissions over HTTPS with libcurl (see wa_client.h). */
#include "gateway/wa_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/log.h"

#define COMPONENT "wa"

enum { MAX_RESPONSE_BYTES = 1 << 20 };

struct gateway_wa_client {
    char *base_url;
    char *paths[GATEWAY_WA_KIND_COUNT];
    char *ca_file;
    char *client_cert_file;
    char *client_key_file;
    long connect_timeout_ms;
    long request_timeout_ms;
    int max_attempts;
    long backoff_initial_ms;
    long backoff_max_ms;
    const gateway_jws_signer *signer;
    const gateway_jws_verifier *verifier;
    CURL *curl;
    struct curl_slist *headers;
};

static char *dup_or_null(const char *s, int *failed)
{
    if (s == NULL)
        return NULL;
    char *copy = strdup(s);
    if (copy == NULL)
        *failed = 1;
    return copy;
}

void gateway_wa_client_destroy(gateway_wa_client **client)
{
    if (client == NULL || *client == NULL)
        return;
    gateway_wa_client *c = *client;
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->headers);
    free(c->base_url);
    for (int i = 0; i < GATEWAY_WA_KIND_COUNT; i++)
        free(c->paths[i]);
    free(c->ca_file);
    free(c->client_cert_file);
    free(c->client_key_file);
    free(c);
    *client = NULL;
}

int gateway_wa_client_new(const gateway_wa_client_config *config, gateway_wa_client **out,
                          anm_error_detail *detail)
{
    *out = NULL;
    if (config->base_url == NULL || strncmp(config->base_url, "https://", 8) != 0) {
        anm_error_detail_set(detail, NULL, 0, 0, "base_url", "base_url must be an https:// url");
        return ANM_ECONFIG;
    }
    if (config->signer == NULL) {
        anm_error_detail_set(detail, NULL, 0, 0, "signer", "the client needs a signer");
        return ANM_ECONFIG;
    }
    if ((config->client_cert_file == NULL) != (config->client_key_file == NULL)) {
        anm_error_detail_set(detail, NULL, 0, 0, "client_cert_file",
                             "client_cert_file and client_key_file go together");
        return ANM_ECONFIG;
    }
    if (config->max_attempts < 0 || config->connect_timeout_ms < 0 ||
        config->request_timeout_ms < 0 || config->backoff_initial_ms < 0 ||
        config->backoff_max_ms < 0) {
        anm_error_detail_set(detail, NULL, 0, 0, "max_attempts",
                             "attempts, timeouts and back-off must not be negative");
        return ANM_ECONFIG;
    }
    for (int i = 0; i < GATEWAY_WA_KIND_COUNT; i++) {
        if (config->paths[i] != NULL && config->paths[i][0] != '/') {
            anm_error_detail_set(detail, NULL, 0, 0, gateway_wa_kind_name((gateway_wa_kind)i),
                                 "endpoint path \"%s\" must start with '/'", config->paths[i]);
            return ANM_ECONFIG;
        }
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return ANM_ENOMEM;
    gateway_wa_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return ANM_ENOMEM;
    int failed = 0;
    c->base_url = dup_or_null(config->base_url, &failed);
    size_t n = strlen(c->base_url ? c->base_url : "");
    if (n > 0 && c->base_url[n - 1] == '/')
        c->base_url[n - 1] = '\0';
    for (int i = 0; i < GATEWAY_WA_KIND_COUNT; i++) {
        if (config->paths[i] != NULL) {
            c->paths[i] = dup_or_null(config->paths[i], &failed);
        } else {
            char path[64];
            snprintf(path, sizeof path, "/wa/v1/%s", gateway_wa_kind_name((gateway_wa_kind)i));
            c->paths[i] = dup_or_null(path, &failed);
        }
    }
    c->ca_file = dup_or_null(config->ca_file, &failed);
    c->client_cert_file = dup_or_null(config->client_cert_file, &failed);
    c->client_key_file = dup_or_null(config->client_key_file, &failed);
    c->connect_timeout_ms = config->connect_timeout_ms ? config->connect_timeout_ms : 5000;
    c->request_timeout_ms = config->request_timeout_ms ? config->request_timeout_ms : 10000;
    c->max_attempts = config->max_attempts ? config->max_attempts : 5;
    c->backoff_initial_ms = config->backoff_initial_ms ? config->backoff_initial_ms : 500;
    c->backoff_max_ms = config->backoff_max_ms ? config->backoff_max_ms : 30000;
    c->signer = config->signer;
    c->verifier = config->verifier;
    c->curl = curl_easy_init();
    c->headers = curl_slist_append(NULL, "Content-Type: application/jose");
    if (c->headers != NULL) {
        struct curl_slist *more = curl_slist_append(c->headers, "Accept: application/jose");
        if (more == NULL)
            failed = 1;
        else
            c->headers = more;
    }
    if (failed || c->curl == NULL || c->headers == NULL) {
        gateway_wa_client_destroy(&c);
        return ANM_ENOMEM;
    }
    *out = c;
    return ANM_OK;
}

void gateway_wa_result_clear(gateway_wa_result *result)
{
    if (result == NULL)
        return;
    json_decref(result->ack);
    result->ack = NULL;
}

typedef struct response {
    char *data;
    size_t len;
    int overflow;
} response;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *user)
{
    response *r = user;
    size_t n = size * nmemb;
    if (r->len + n > MAX_RESPONSE_BYTES) {
        r->overflow = 1;
        return 0; /* aborts the transfer */
    }
    char *grown = realloc(r->data, r->len + n + 1);
    if (grown == NULL)
        return 0;
    r->data = grown;
    memcpy(r->data + r->len, ptr, n);
    r->len += n;
    r->data[r->len] = '\0';
    return n;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int curl_error_permanent(CURLcode code)
{
    switch (code) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return 1;
    default:
        return 0;
    }
}

/* Checks the answer body as a signed, valid acknowledgement of message_id. */
static int check_ack(gateway_wa_client *c, const response *body, const char *message_id,
                     gateway_wa_result *result)
{
    unsigned char *payload = NULL;
    size_t payload_len = 0;
    gateway_jws_reject jws_why;
    int rc = gateway_jws_verify(c->verifier, body->data ? body->data : "", body->len, &payload,
                                &payload_len, NULL, 0, &jws_why);
    if (rc != ANM_OK) {
        snprintf(result->error, sizeof result->error, "acknowledgement refused: %s: %.255s",
                 gateway_jws_reason_code(jws_why.reason), jws_why.text);
        return rc == ANM_ENOMEM ? rc : ANM_EPROTO;
    }
    json_t *ack = NULL;
    gateway_wa_kind kind;
    gateway_wa_reject why;
    rc = gateway_wa_parse(payload, payload_len, &ack, &kind, &why);
    free(payload);
    if (rc != ANM_OK) {
        snprintf(result->error, sizeof result->error, "acknowledgement refused: %s: %.255s",
                 gateway_wa_reason_code(why.reason), why.text);
        return rc == ANM_ENOMEM ? rc : ANM_EPROTO;
    }
    const char *ref = json_string_value(json_object_get(ack, "ref"));
    const char *status = json_string_value(json_object_get(ack, "status"));
    if (kind != GATEWAY_WA_ACK || ref == NULL || strcmp(ref, message_id) != 0 ||
        strcmp(status, "accepted") != 0) {
        snprintf(result->error, sizeof result->error,
                 "acknowledgement refused: not an accepted ack of \"%.64s\"", message_id);
        json_decref(ack);
        return ANM_EPROTO;
    }
    result->ack = ack;
    return ANM_OK;
}

int gateway_wa_client_send(gateway_wa_client *client, const json_t *message,
                           gateway_wa_result *result_out)
{
    gateway_wa_result local;
    gateway_wa_result *result = result_out != NULL ? result_out : &local;
    memset(result, 0, sizeof *result);
    gateway_wa_kind kind;
    gateway_wa_reject why;
    if (gateway_wa_validate(message, &kind, &why) != ANM_OK) {
        snprintf(result->error, sizeof result->error, "message refused before sending: %s: %.255s",
                 gateway_wa_reason_code(why.reason), why.text);
        anm_log_error(COMPONENT, "%s", result->error);
        return ANM_ECONFIG;
    }
    const char *message_id = json_string_value(json_object_get(message, "message_id"));
    char *payload = json_dumps(message, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *jws = NULL, *url = NULL;
    size_t jws_len = 0;
    response body = {NULL, 0, 0};
    int rc = ANM_ENOMEM;
    if (payload == NULL)
        goto done;
    rc = gateway_jws_sign(client->signer, payload, strlen(payload), &jws, &jws_len);
    if (rc != ANM_OK)
        goto done;
    size_t url_len = strlen(client->base_url) + strlen(client->paths[kind]) + 1;
    url = malloc(url_len);
    if (url == NULL || snprintf(url, url_len, "%s%s", client->base_url, client->paths[kind]) < 0)
        goto done;

    CURL *curl = client->curl;
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, jws);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)jws_len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, client->headers);
    curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (client->ca_file != NULL)
        curl_easy_setopt(curl, CURLOPT_CAINFO, client->ca_file);
    if (client->client_cert_file != NULL) {
        curl_easy_setopt(curl, CURLOPT_SSLCERT, client->client_cert_file);
        curl_easy_setopt(curl, CURLOPT_SSLKEY, client->client_key_file);
    }
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, client->connect_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, client->request_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);

    long backoff_ms = client->backoff_initial_ms;
    for (;;) {
        free(body.data);
        body = (response){NULL, 0, 0};
        result->attempts++;
        char curl_error[CURL_ERROR_SIZE] = "";
        curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);
        CURLcode code = curl_easy_perform(curl);
        int retry = 0;
        if (code != CURLE_OK && !body.overflow) {
            result->http_status = 0;
            snprintf(result->error, sizeof result->error, "could not post %s to \"%.200s\": %.255s",
                     gateway_wa_kind_name(kind), url,
                     curl_error[0] ? curl_error : curl_easy_strerror(code));
            if (curl_error_permanent(code))
                rc = ANM_EAUTH;
            else
                retry = 1, rc = ANM_EAGAIN;
        } else {
            long status = 0;
            curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
            result->http_status = status;
            if (body.overflow) {
                snprintf(result->error, sizeof result->error,
                         "answer from \"%.200s\" is longer than %d bytes", url, MAX_RESPONSE_BYTES);
                rc = ANM_EPROTO;
            } else if (status >= 200 && status < 300) {
                result->error[0] = '\0';
                rc = client->verifier != NULL ? check_ack(client, &body, message_id, result)
                                              : ANM_OK;
            } else {
                snprintf(result->error, sizeof result->error,
                         "%s to \"%.200s\" answered %ld: %.120s", gateway_wa_kind_name(kind), url,
                         status, body.data ? body.data : "");
                if (status >= 500 || status == 408 || status == 429)
                    retry = 1, rc = ANM_EAGAIN;
                else if (status == 401 || status == 403)
                    rc = ANM_EAUTH;
                else if (status == 404)
                    rc = ANM_ENOTFOUND;
                else
                    rc = ANM_EPROTO;
            }
        }
        if (!retry || result->attempts >= client->max_attempts)
            break;
        anm_log_warn(COMPONENT, "%s (attempt %d of %d, retrying in %ld ms)", result->error,
                     result->attempts, client->max_attempts, backoff_ms);
        sleep_ms(backoff_ms);
        backoff_ms = backoff_ms > client->backoff_max_ms / 2 ? client->backoff_max_ms
                                                              : backoff_ms * 2;
    }
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
    if (rc == ANM_OK)
        anm_log_debug(COMPONENT, "%s \"%s\" accepted by \"%s\" (%ld, %d attempts)",
                      gateway_wa_kind_name(kind), message_id, url, result->http_status,
                      result->attempts);
    else
        anm_log_error(COMPONENT, "%s \"%s\" not delivered after %d attempts: %s",
                      gateway_wa_kind_name(kind), message_id, result->attempts, result->error);
done:
    free(body.data);
    free(url);
    free(jws);
    free(payload);
    if (result == &local)
        gateway_wa_result_clear(&local);
    return rc;
}
