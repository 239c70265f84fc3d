/* dc_upload.c: the Data Concentrator HTTPS file API client of dc_upload.h. */
#include "gateway/dc_upload.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/log.h"
#include "gateway/dc_csv.h"
#include "gateway/spool.h"

#define COMPONENT "dc_upload"

struct gateway_dc_upload {
    char *base_url, *path, *username, *ca_file, *url;
    char password[512];
    char state_path[4096];
    int64_t retry_after_ms, min_interval_ms;
    long timeout_ms;
    gateway_spool *spool;
    anm_clock *clock;
    anm_clock *own_clock;
    int64_t last_success_ms, last_failure_ms;
};

void gateway_dc_upload_config_default(gateway_dc_upload_config *config)
{
    memset(config, 0, sizeof *config);
    config->retry_after_ms = 60000;
    config->min_interval_ms = 30000;
    config->timeout_ms = 30000;
    config->min_password_length = 56;
}

static int read_password(const char *path, size_t min_length, char *out, size_t size,
                         anm_error_detail *detail)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        anm_error_detail_set(detail, path, 0, 0, "password_file",
                             "could not open password file \"%s\": %s", path, strerror(errno));
        return ANM_ECONFIG;
    }
    int rc = ANM_OK;
    if (fgets(out, (int)size, f) == NULL) {
        anm_error_detail_set(detail, path, 0, 0, "password_file", "password file \"%s\" is empty",
                             path);
        rc = ANM_ECONFIG;
        goto out;
    }
    out[strcspn(out, "\r\n")] = '\0';
    if (strlen(out) < min_length) {
        anm_error_detail_set(detail, path, 0, 0, "password_file",
                             "password in \"%s\" is shorter than %zu characters", path, min_length);
        rc = ANM_ECONFIG;
    }
out:
    fclose(f);
    return rc;
}

static void load_state(gateway_dc_upload *up)
{
    json_error_t error;
    json_t *root = json_load_file(up->state_path, 0, &error);
    if (root == NULL)
        return; /* no state yet: nothing is owed */
    json_t *s = json_object_get(root, "last_success_ms");
    json_t *f = json_object_get(root, "last_failure_ms");
    if (json_is_integer(s))
        up->last_success_ms = json_integer_value(s);
    if (json_is_integer(f))
        up->last_failure_ms = json_integer_value(f);
    json_decref(root);
}

static int save_state(gateway_dc_upload *up)
{
    char text[160];
    int n = snprintf(text, sizeof text, "{\"v\":1,\"last_success_ms\":%lld,\"last_failure_ms\":%lld}\n",
                     (long long)up->last_success_ms, (long long)up->last_failure_ms);
    if (n < 0 || (size_t)n >= sizeof text)
        return ANM_EINTERNAL;
    int rc = gateway_write_file_atomic(up->state_path, text, (size_t)n);
    if (rc != ANM_OK)
        anm_log_error(COMPONENT, "could not write upload state \"%s\"", up->state_path);
    return rc;
}

static char *dup_or_null(const char *s, int *failed)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *failed = 1;
    return d;
}

int gateway_dc_upload_new(const gateway_dc_upload_config *config, anm_clock *clock,
                          gateway_dc_upload **out, anm_error_detail *detail)
{
    *out = NULL;
    const char *missing = config->base_url == NULL        ? "base_url"
                          : config->username == NULL      ? "username"
                          : config->password_file == NULL ? "password_file"
                          : config->spool_dir == NULL     ? "spool_dir"
                                                          : NULL;
    if (missing != NULL) {
        anm_error_detail_set(detail, NULL, 0, 0, missing, "missing required setting");
        return ANM_ECONFIG;
    }
    if (config->retry_after_ms < 0 || config->min_interval_ms < 0 || config->timeout_ms <= 0) {
        anm_error_detail_set(detail, NULL, 0, 0, NULL, "intervals must be >= 0 and timeout > 0");
        return ANM_ECONFIG;
    }
    int rc = ANM_ENOMEM;
    int failed = 0;
    gateway_dc_upload *up = calloc(1, sizeof *up);
    if (up == NULL)
        return ANM_ENOMEM;
    up->base_url = dup_or_null(config->base_url, &failed);
    up->path = dup_or_null(config->path ? config->path : GATEWAY_DC_PATH, &failed);
    up->username = dup_or_null(config->username, &failed);
    up->ca_file = dup_or_null(config->ca_file, &failed);
    if (failed)
        goto fail;
    size_t url_size = strlen(up->base_url) + strlen(up->path) + 1;
    up->url = malloc(url_size);
    if (up->url == NULL)
        goto fail;
    snprintf(up->url, url_size, "%s%s", up->base_url, up->path);
    up->retry_after_ms = config->retry_after_ms;
    up->min_interval_ms = config->min_interval_ms;
    up->timeout_ms = config->timeout_ms;
    if ((rc = read_password(config->password_file, config->min_password_length, up->password,
                            sizeof up->password, detail)) != ANM_OK)
        goto fail;
    if ((rc = gateway_spool_open(config->spool_dir, &up->spool, detail)) != ANM_OK)
        goto fail;
    int n = snprintf(up->state_path, sizeof up->state_path, "%s/state.json", config->spool_dir);
    if (n < 0 || (size_t)n >= sizeof up->state_path) {
        rc = ANM_ECONFIG;
        goto fail;
    }
    if (clock == NULL) {
        up->own_clock = anm_clock_new_real();
        if (up->own_clock == NULL) {
            rc = ANM_ENOMEM;
            goto fail;
        }
        clock = up->own_clock;
    }
    up->clock = clock;
    load_state(up);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = ANM_EINTERNAL;
        goto fail;
    }
    *out = up;
    return ANM_OK;
fail:
    gateway_dc_upload_destroy(&up);
    return rc;
}

void gateway_dc_upload_destroy(gateway_dc_upload **upload)
{
    if (upload == NULL || *upload == NULL)
        return;
    gateway_dc_upload *up = *upload;
    explicit_bzero(up->password, sizeof up->password);
    free(up->base_url);
    free(up->path);
    free(up->username);
    free(up->ca_file);
    free(up->url);
    gateway_spool_close(&up->spool);
    anm_clock_destroy(&up->own_clock);
    free(up);
    *upload = NULL;
}

int gateway_dc_upload_submit(gateway_dc_upload *upload, const char *name, const void *data,
                             size_t size, anm_error_detail *detail)
{
    int rc = gateway_dc_file_name_parse(name, NULL, detail);
    if (rc != ANM_OK)
        return rc;
    rc = gateway_spool_put(upload->spool, name, data, size, NULL);
    if (rc == ANM_OK)
        anm_log_info(COMPONENT, "spooled \"%s\" (%zu bytes, %zu pending)", name, size,
                     gateway_spool_count(upload->spool));
    return rc;
}

int64_t gateway_dc_upload_next_due_ms(const gateway_dc_upload *upload)
{
    if (gateway_spool_count(upload->spool) == 0)
        return INT64_MAX;
    if (upload->last_failure_ms == 0 && upload->last_success_ms == 0)
        return 0;
    if (upload->last_failure_ms > upload->last_success_ms)
        return upload->last_failure_ms + upload->retry_after_ms;
    return upload->last_success_ms + upload->min_interval_ms;
}

typedef struct body_buffer {
    char text[256];
    size_t length;
} body_buffer;

static size_t collect_body(char *data, size_t size, size_t nmemb, void *user)
{
    body_buffer *b = user;
    size_t n = size * nmemb;
    size_t room = sizeof b->text - 1 - b->length;
    size_t take = n < room ? n : room;
    memcpy(b->text + b->length, data, take);
    b->length += take;
    b->text[b->length] = '\0';
    return n;
}

/* One POST. Returns the HTTP status, or 0 with message filled when there was no response. */
static long post_file(gateway_dc_upload *up, const char *name, const char *data, size_t size,
                      char *message, size_t message_size)
{
    long status = 0;
    char errbuf[CURL_ERROR_SIZE] = "";
    body_buffer body = {.length = 0};
    body.text[0] = '\0';
    CURL *curl = curl_easy_init();
    curl_mime *mime = NULL;
    struct curl_slist *headers = NULL;
    json_t *meta = json_pack("{s:s,s:b}", "Name", name, "Process", 1);
    char *meta_text = meta ? json_dumps(meta, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (curl == NULL || meta_text == NULL) {
        snprintf(message, message_size, "out of memory");
        goto out;
    }
    mime = curl_mime_init(curl);
    curl_mimepart *part = curl_mime_addpart(mime);
    curl_mime_name(part, "metadata");
    curl_mime_type(part, "application/json; charset=UTF-8");
    curl_mime_data(part, meta_text, CURL_ZERO_TERMINATED);
    part = curl_mime_addpart(mime);
    curl_mime_name(part, "data");
    curl_mime_type(part, "application/octet-stream");
    curl_mime_data(part, data, size);
    headers = curl_slist_append(headers, "Expect:"); /* no 100-continue round trip */

    curl_easy_setopt(curl, CURLOPT_URL, up->url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(curl, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(curl, CURLOPT_USERNAME, up->username);
    curl_easy_setopt(curl, CURLOPT_PASSWORD, up->password);
    curl_easy_setopt(curl, CURLOPT_SSLVERSION,
                     (long)(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2));
    curl_easy_setopt(curl, CURLOPT_SSL_CIPHER_LIST, GATEWAY_DC_CIPHERS);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (up->ca_file != NULL)
        curl_easy_setopt(curl, CURLOPT_CAINFO, up->ca_file);
    /* NESO's DNS record has a low TTL: look it up afresh for every connection */
    curl_easy_setopt(curl, CURLOPT_DNS_CACHE_TIMEOUT, 0L);
    curl_easy_setopt(curl, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(curl, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, up->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);

    CURLcode cc = curl_easy_perform(curl);
    if (cc != CURLE_OK) {
        snprintf(message, message_size, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    body.text[strcspn(body.text, "\r\n")] = '\0';
    snprintf(message, message_size, "%s", body.text);
out:
    curl_slist_free_all(headers);
    curl_mime_free(mime);
    curl_easy_cleanup(curl);
    free(meta_text);
    json_decref(meta);
    return status;
}

int gateway_dc_upload_step(gateway_dc_upload *upload, gateway_dc_result *result)
{
    gateway_dc_result local;
    if (result == NULL)
        result = &local;
    memset(result, 0, sizeof *result);
    int64_t now = anm_clock_now_ms(upload->clock);
    if (gateway_spool_count(upload->spool) == 0 || now < gateway_dc_upload_next_due_ms(upload))
        return ANM_OK;
    gateway_spool_entry entry;
    gateway_spool_at(upload->spool, 0, &entry);
    snprintf(result->name, sizeof result->name, "%s", entry.name);
    char *data = NULL;
    size_t size = 0;
    int rc = gateway_spool_read(upload->spool, entry.seq, &data, &size);
    if (rc != ANM_OK) {
        anm_log_error(COMPONENT, "could not read spooled file \"%s\": %s", entry.name,
                      anm_strerror(rc));
        return rc;
    }
    long status = post_file(upload, entry.name, data, size, result->message, sizeof result->message);
    free(data);
    result->http_status = status;
    now = anm_clock_now_ms(upload->clock);
    if (status == 201) {
        result->outcome = GATEWAY_DC_UPLOADED;
        rc = gateway_spool_remove(upload->spool, entry.seq);
        upload->last_success_ms = now;
        anm_log_info(COMPONENT, "uploaded \"%s\" (%zu pending)", entry.name,
                     gateway_spool_count(upload->spool));
    } else if (status >= 400 && status < 500) {
        result->outcome = GATEWAY_DC_PARKED;
        rc = gateway_spool_park(upload->spool, entry.seq);
        upload->last_failure_ms = now;
        anm_log_error(COMPONENT,
                      "upload of \"%s\" to \"%s\" refused with %ld: %s; file parked in \"%s/parked\"",
                      entry.name, upload->url, status, result->message,
                      gateway_spool_dir(upload->spool));
    } else {
        result->outcome = GATEWAY_DC_RETRY;
        upload->last_failure_ms = now;
        if (status == 0)
            anm_log_warn(COMPONENT, "could not upload \"%s\" to \"%s\": %s; retrying in %lld ms",
                         entry.name, upload->url, result->message,
                         (long long)upload->retry_after_ms);
        else
            anm_log_warn(COMPONENT, "upload of \"%s\" to \"%s\" failed with %ld: %s; retrying in %lld ms",
                         entry.name, upload->url, status, result->message,
                         (long long)upload->retry_after_ms);
    }
    int rc_state = save_state(upload);
    return rc != ANM_OK ? rc : rc_state;
}

int gateway_dc_upload_drain(gateway_dc_upload *upload, int64_t deadline_ms)
{
    for (;;) {
        if (gateway_spool_count(upload->spool) == 0)
            return ANM_OK;
        int64_t due = gateway_dc_upload_next_due_ms(upload);
        if (due > deadline_ms)
            due = deadline_ms;
        int64_t wait = anm_clock_real_delay_ms(upload->clock, due);
        if (wait < 0)
            return ANM_ETIMEOUT; /* stepped clock: the caller moves time */
        if (wait > 0) {
            struct timespec ts = {.tv_sec = wait / 1000, .tv_nsec = (long)(wait % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
        }
        if (anm_clock_now_ms(upload->clock) >= deadline_ms &&
            gateway_dc_upload_next_due_ms(upload) > deadline_ms)
            return ANM_ETIMEOUT;
        int rc = gateway_dc_upload_step(upload, NULL);
        if (rc != ANM_OK)
            return rc;
    }
}

size_t gateway_dc_upload_pending(const gateway_dc_upload *upload)
{
    return gateway_spool_count(upload->spool);
}

size_t gateway_dc_upload_parked(const gateway_dc_upload *upload)
{
    return gateway_spool_parked_count(upload->spool);
}

int gateway_dc_upload_requeue_parked(gateway_dc_upload *upload, size_t *moved)
{
    return gateway_spool_requeue_parked(upload->spool, moved);
}
