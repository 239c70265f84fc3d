/* mqtt_out.c: the MQTT publisher of mqtt_out.h. */
#include "gateway/mqtt_out.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/clock.h"
#include "engine/log.h"
#include "gateway/spool_log.h"
#include "mqtt_client.h"

#define COMPONENT "mqtt_out"
#define TOPIC_MAX 1024
#define PAYLOAD_MAX 8192
#define GROUP_COMMIT_MAX 1000 /* records appended before publish forces a sync */

typedef struct inflight {
    uint64_t seq;
    int mid;
} inflight;

struct gateway_mqtt_out {
    gateway__mqtt_client client;
    char *topic_template, *payload_template;
    gateway_spool_log *spool;
    int max_inflight;
    inflight *inflight;
    int n_inflight;
    uint64_t acked;
};

/* ---- templates ------------------------------------------------------------ */

typedef struct out_buf {
    char *p;
    size_t size, length;
    int overflow;
} out_buf;

static void put(out_buf *b, const char *s, size_t n)
{
    if (b->length + n + 1 > b->size) {
        b->overflow = 1;
        return;
    }
    memcpy(b->p + b->length, s, n);
    b->length += n;
    b->p[b->length] = '\0';
}

static void put_escaped(out_buf *b, const char *s, int json)
{
    if (!json) {
        put(b, s, strlen(s));
        return;
    }
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*c;
            put(b, esc, 2);
        } else if (*c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *c);
            put(b, esc, 6);
        } else {
            put(b, (const char *)c, 1);
        }
    }
}

static int render_one(const char *tmpl, const gateway_mqtt_sample *s, char *out, size_t size,
                      int json)
{
    out_buf b = {out, size, 0, 0};
    if (size == 0)
        return ANM_ERANGE;
    out[0] = '\0';
    for (const char *p = tmpl; *p;) {
        if (*p != '{') {
            const char *next = strchr(p, '{');
            size_t n = next ? (size_t)(next - p) : strlen(p);
            put(&b, p, n);
            p += n;
            continue;
        }
        const char *end = strchr(p, '}');
        size_t n = end ? (size_t)(end - p - 1) : 0;
        if (end == NULL || n == 0 || n > 16) {
            if (json) { /* a literal brace of the JSON template */
                put(&b, p, 1);
                p++;
                continue;
            }
            return ANM_EINVAL;
        }
        char name[17];
        memcpy(name, p + 1, n);
        name[n] = '\0';
        char cell[64];
        if (strcmp(name, "unit") == 0) {
            put_escaped(&b, s->unit ? s->unit : "", json);
        } else if (strcmp(name, "quantity") == 0) {
            put_escaped(&b, s->quantity ? s->quantity : "", json);
        } else if (strcmp(name, "quality") == 0) {
            put_escaped(&b, s->quality ? s->quality : "good", json);
        } else if (strcmp(name, "timestamp") == 0) {
            anm_time_format_utc(s->utc_ms, cell, sizeof cell);
            put(&b, cell, strlen(cell));
        } else if (strcmp(name, "utc_ms") == 0) {
            snprintf(cell, sizeof cell, "%lld", (long long)s->utc_ms);
            put(&b, cell, strlen(cell));
        } else if (strcmp(name, "value") == 0) {
            if (!isfinite(s->value))
                return ANM_ERANGE;
            snprintf(cell, sizeof cell, "%.10g", s->value);
            put(&b, cell, strlen(cell));
        } else if (strcmp(name, "test") == 0) {
            put(&b, s->test ? "true" : "false", s->test ? 4 : 5);
        } else if (strcmp(name, "topic") == 0) {
            put_escaped(&b, s->topic ? s->topic : "", json);
        } else if (strcmp(name, "signal_id") == 0) {
            snprintf(cell, sizeof cell, "%lu", (unsigned long)s->signal_id);
            put(&b, cell, strlen(cell));
        } else if (json) {
            put(&b, p, 1); /* not a placeholder: a JSON brace */
            p++;
            continue;
        } else {
            return ANM_EINVAL;
        }
        p = end + 1;
    }
    return b.overflow ? ANM_ERANGE : ANM_OK;
}

int gateway_mqtt_render(const char *topic_template, const char *payload_template,
                        const gateway_mqtt_sample *sample, char *topic, size_t topic_size,
                        char *payload, size_t payload_size)
{
    if (topic_template == NULL)
        topic_template = GATEWAY_MQTT_DEFAULT_TOPIC;
    if (payload_template == NULL)
        payload_template = GATEWAY_MQTT_DEFAULT_PAYLOAD;
    int rc = render_one(topic_template, sample, topic, topic_size, 0);
    if (rc != ANM_OK)
        return rc;
    if (topic[0] == '\0' || strpbrk(topic, "+#\r\n") != NULL)
        return ANM_EINVAL;
    return render_one(payload_template, sample, payload, payload_size, 1);
}

/* ---- publisher ------------------------------------------------------------ */

/* Group commit: one fdatasync for everything spooled since the last one, then publish. */
static void pump(gateway_mqtt_out *out)
{
    if (gateway_spool_log_sync(out->spool) != ANM_OK)
        return; /* nothing unsynced is published: a PUBACK must not precede durability */
    while (out->client.state == GATEWAY_MQTT_CONNECTED && out->n_inflight < out->max_inflight) {
        char *data = NULL;
        size_t size = 0;
        uint64_t seq = 0;
        int rc = gateway_spool_log_next(out->spool, &data, &size, &seq);
        if (rc == ANM_ENOTFOUND)
            break;
        if (rc != ANM_OK) {
            anm_log_error(COMPONENT, "could not read the spool: %s", anm_strerror(rc));
            return;
        }
        char *newline = memchr(data, '\n', size);
        if (newline == NULL) {
            anm_log_error(COMPONENT, "spooled message %llu is malformed; skipped",
                          (unsigned long long)seq);
            free(data);
            (void)gateway_spool_log_ack(out->spool, seq);
            continue;
        }
        *newline = '\0';
        const char *payload = newline + 1;
        int mid = 0;
        rc = mosquitto_publish(out->client.mosq, &mid, data, (int)(size - (size_t)(payload - data)),
                               payload, 1, false);
        free(data);
        if (rc != MOSQ_ERR_SUCCESS) {
            anm_log_warn(COMPONENT, "could not publish message %llu: %s", (unsigned long long)seq,
                         mosquitto_strerror(rc));
            gateway_spool_log_rewind(out->spool); /* sent again, in order, after reconnection */
            out->n_inflight = 0;
            return;
        }
        out->inflight[out->n_inflight].seq = seq;
        out->inflight[out->n_inflight].mid = mid;
        out->n_inflight++;
    }
    if (gateway_spool_log_commit(out->spool) != ANM_OK)
        anm_log_error(COMPONENT, "could not record acknowledged messages in the spool");
}

static void on_connected(void *owner)
{
    gateway_mqtt_out *out = owner;
    anm_log_info(COMPONENT, "connected to mqtt broker \"%s:%d\" (%zu messages spooled)",
                 out->client.host, out->client.port, gateway_spool_log_pending(out->spool));
    out->n_inflight = 0;
    gateway_spool_log_rewind(out->spool);
    pump(out);
}

static void on_lost(void *owner)
{
    gateway_mqtt_out *out = owner;
    out->n_inflight = 0; /* everything unacknowledged goes again, in order */
    gateway_spool_log_rewind(out->spool);
}

static void on_publish(void *owner, int mid)
{
    gateway_mqtt_out *out = owner;
    for (int i = 0; i < out->n_inflight; i++) {
        if (out->inflight[i].mid != mid)
            continue;
        /* dropped from the spool (watermark) at the next commit, in pump */
        (void)gateway_spool_log_ack(out->spool, out->inflight[i].seq);
        memmove(&out->inflight[i], &out->inflight[i + 1],
                (size_t)(out->n_inflight - i - 1) * sizeof *out->inflight);
        out->n_inflight--;
        out->acked++;
        break;
    }
}

int gateway_mqtt_out_new(const gateway_mqtt_out_config *config, gateway_mqtt_out **out,
                         anm_error_detail *detail)
{
    *out = NULL;
    if (config->spool_dir == NULL) {
        anm_error_detail_set(detail, NULL, 0, 0, "spool_dir", "missing required setting");
        return ANM_ECONFIG;
    }
    gateway_mqtt_out *o = calloc(1, sizeof *o);
    if (o == NULL)
        return ANM_ENOMEM;
    int rc = gateway__mqtt_client_init(&o->client, &config->connection, COMPONENT, detail);
    if (rc != ANM_OK) {
        free(o);
        return rc;
    }
    rc = ANM_ENOMEM;
    o->topic_template = strdup(config->topic_template ? config->topic_template
                                                      : GATEWAY_MQTT_DEFAULT_TOPIC);
    o->payload_template = strdup(config->payload_template ? config->payload_template
                                                          : GATEWAY_MQTT_DEFAULT_PAYLOAD);
    o->max_inflight = config->max_inflight > 0 ? config->max_inflight : 100;
    o->inflight = calloc((size_t)o->max_inflight, sizeof *o->inflight);
    if (o->topic_template == NULL || o->payload_template == NULL || o->inflight == NULL)
        goto fail;
    /* check the templates once with a dummy sample */
    {
        gateway_mqtt_sample probe = {.unit = "U", .quantity = "q", .signal_id = 1, .topic = "t"};
        char topic[TOPIC_MAX], payload[PAYLOAD_MAX];
        if (gateway_mqtt_render(o->topic_template, o->payload_template, &probe, topic, sizeof topic,
                                payload, sizeof payload) != ANM_OK) {
            anm_error_detail_set(detail, NULL, 0, 0, "topic_template",
                                 "template has an unknown placeholder or a wildcard");
            rc = ANM_ECONFIG;
            goto fail;
        }
    }
    if ((rc = gateway_spool_log_open(config->spool_dir, 0, &o->spool, detail)) != ANM_OK)
        goto fail;
    o->client.owner = o;
    o->client.on_connected = on_connected;
    o->client.on_lost = on_lost;
    o->client.on_publish = on_publish;
    *out = o;
    return ANM_OK;
fail:
    gateway_mqtt_out_destroy(&o);
    return rc;
}

void gateway_mqtt_out_destroy(gateway_mqtt_out **out)
{
    if (out == NULL || *out == NULL)
        return;
    gateway_mqtt_out *o = *out;
    gateway__mqtt_client_fini(&o->client);
    gateway_spool_log_close(&o->spool);
    free(o->topic_template);
    free(o->payload_template);
    free(o->inflight);
    free(o);
    *out = NULL;
}

int gateway_mqtt_out_publish(gateway_mqtt_out *out, const gateway_mqtt_sample *sample)
{
    char topic[TOPIC_MAX], payload[PAYLOAD_MAX];
    int rc = gateway_mqtt_render(out->topic_template, out->payload_template, sample, topic,
                                 sizeof topic, payload, sizeof payload);
    if (rc != ANM_OK)
        return rc;
    size_t topic_len = strlen(topic), payload_len = strlen(payload);
    char record[TOPIC_MAX + 1 + PAYLOAD_MAX];
    memcpy(record, topic, topic_len);
    record[topic_len] = '\n';
    memcpy(record + topic_len + 1, payload, payload_len);
    rc = gateway_spool_log_append(out->spool, record, topic_len + 1 + payload_len, NULL);
    if (rc != ANM_OK)
        return rc;
    /* published at the next run or flush, after one fdatasync for the whole batch */
    if (gateway_spool_log_unsynced(out->spool) >= GROUP_COMMIT_MAX)
        pump(out);
    return ANM_OK;
}

int gateway_mqtt_out_flush(gateway_mqtt_out *out)
{
    int rc = gateway_spool_log_sync(out->spool);
    if (rc == ANM_OK)
        pump(out);
    return rc;
}

int gateway_mqtt_out_run(gateway_mqtt_out *out, int timeout_ms)
{
    pump(out);
    int rc = gateway__mqtt_client_run(&out->client, COMPONENT, timeout_ms);
    pump(out);
    return rc;
}

gateway_mqtt_state gateway_mqtt_out_state(const gateway_mqtt_out *out)
{
    return out->client.state;
}

const char *gateway_mqtt_out_last_error(const gateway_mqtt_out *out)
{
    return out->client.last_error;
}

size_t gateway_mqtt_out_pending(const gateway_mqtt_out *out)
{
    return gateway_spool_log_pending(out->spool);
}

uint64_t gateway_mqtt_out_acked(const gateway_mqtt_out *out)
{
    return out->acked;
}
