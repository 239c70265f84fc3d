/* mqtt_in.c: the MQTT subscriber of mqtt_in.h. */
#include "gateway/mqtt_in.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "engine/clock.h"
#include "engine/log.h"
#include "engine/telemetry_frame.h"
#include "gateway/spool.h"
#include "mqtt_client.h"

#define COMPONENT "mqtt_in"

typedef struct topic_map {
    char *topic;
    uint32_t signal_id;
} topic_map;

struct gateway_mqtt_in {
    gateway__mqtt_client client;
    topic_map *maps;
    size_t n_maps;
    char *value_field, *time_field, *quality_field;
    gateway_spool *journal;
    anm_socket *dealer;
    anm_clock *clock;
    uint32_t sender_id;
    int64_t resend_after_ms;
    size_t max_batch;
    /* the batch in flight: journal entries [0, in_flight) */
    size_t in_flight;
    uint64_t in_flight_seq;
    int64_t sent_at_ms;
    int resend;
    anm_telemetry_batch batch;
    anm_log_limiter limiter;
    gateway_mqtt_in_stats stats;
};

static void on_connected(void *owner)
{
    gateway_mqtt_in *in = owner;
    for (size_t i = 0; i < in->n_maps; i++) {
        int rc = mosquitto_subscribe(in->client.mosq, NULL, in->maps[i].topic, 1);
        if (rc != MOSQ_ERR_SUCCESS)
            anm_log_error(COMPONENT, "could not subscribe to \"%s\": %s", in->maps[i].topic,
                          mosquitto_strerror(rc));
    }
    anm_log_info(COMPONENT, "connected to mqtt broker \"%s:%d\", %zu topics", in->client.host,
                 in->client.port, in->n_maps);
}

static void drop(gateway_mqtt_in *in, const char *topic, const char *why)
{
    in->stats.dropped++;
    if (anm_log_limiter_allow(&in->limiter, gateway__mqtt_now_ms()))
        anm_log_warn(COMPONENT, "dropped message on \"%s\": %s", topic, why);
}

/* Parses a payload into value, time and quality. 0 on success, else the reason. */
static const char *parse_payload(gateway_mqtt_in *in, const void *data, size_t size,
                                 int64_t now_ms, int64_t *utc_ms, double *value, long *quality)
{
    json_error_t error;
    json_t *root = json_loadb(data, size, JSON_DECODE_ANY, &error);
    const char *why = NULL;
    *utc_ms = now_ms;
    *quality = 0;
    if (root == NULL)
        return "payload is not json";
    if (json_is_number(root)) {
        *value = json_number_value(root);
    } else if (json_is_object(root)) {
        json_t *v = json_object_get(root, in->value_field);
        json_t *t = json_object_get(root, in->time_field);
        json_t *q = json_object_get(root, in->quality_field);
        if (!json_is_number(v)) {
            why = "no number under the value field";
            goto out;
        }
        *value = json_number_value(v);
        if (json_is_integer(t)) {
            *utc_ms = json_integer_value(t);
        } else if (json_is_string(t)) {
            if (anm_time_parse_iso8601(json_string_value(t), utc_ms) != ANM_OK) {
                why = "time is not iso 8601";
                goto out;
            }
        } else if (t != NULL) {
            why = "time is neither a string nor an integer";
            goto out;
        }
        if (q != NULL) {
            if (!json_is_integer(q) || json_integer_value(q) < 0 || json_integer_value(q) > 65535) {
                why = "quality is not an integer in 0..65535";
                goto out;
            }
            *quality = (long)json_integer_value(q);
        }
    } else {
        why = "payload is neither a number nor an object";
        goto out;
    }
    if (!isfinite(*value))
        why = "value is not finite";
out:
    json_decref(root);
    return why;
}

static void on_message(void *owner, const struct mosquitto_message *message)
{
    gateway_mqtt_in *in = owner;
    const topic_map *map = NULL;
    for (size_t i = 0; i < in->n_maps && map == NULL; i++)
        if (strcmp(in->maps[i].topic, message->topic) == 0)
            map = &in->maps[i];
    if (map == NULL) {
        drop(in, message->topic, "topic not mapped to a signal");
        return;
    }
    int64_t utc_ms;
    double value;
    long quality;
    const char *why = parse_payload(in, message->payload, (size_t)message->payloadlen,
                                    anm_clock_now_ms(in->clock), &utc_ms, &value, &quality);
    if (why != NULL) {
        drop(in, message->topic, why);
        return;
    }
    /* journal before anything else: the broker already has its PUBACK */
    char record[160];
    int n = snprintf(record, sizeof record, "%lu %lld %.17g %ld\n", (unsigned long)map->signal_id,
                     (long long)utc_ms, value, quality);
    if (n < 0 || (size_t)n >= sizeof record ||
        gateway_spool_put(in->journal, "sample", record, (size_t)n, NULL) != ANM_OK) {
        anm_log_error(COMPONENT, "could not journal message on \"%s\"; it is lost", message->topic);
        in->stats.dropped++;
        return;
    }
    in->stats.received++;
}

/* Reads a journal record back. */
static int parse_record(const char *text, anm_telemetry_sample *s)
{
    char *end;
    unsigned long id = strtoul(text, &end, 10);
    if (end == text || *end != ' ')
        return ANM_EPARSE;
    const char *p = end + 1;
    long long t = strtoll(p, &end, 10);
    if (end == p || *end != ' ')
        return ANM_EPARSE;
    p = end + 1;
    double v = strtod(p, &end);
    if (end == p || *end != ' ')
        return ANM_EPARSE;
    p = end + 1;
    long q = strtol(p, &end, 10);
    if (end == p || q < 0 || q > 65535 || id > UINT32_MAX)
        return ANM_EPARSE;
    s->signal_id = (uint32_t)id;
    s->utc_ms = t;
    s->value = v;
    s->quality = (uint16_t)q;
    return ANM_OK;
}

static void send_batch(gateway_mqtt_in *in)
{
    size_t count = gateway_spool_count(in->journal);
    int64_t now = gateway__mqtt_now_ms();
    if (in->in_flight > 0) {
        if (now - in->sent_at_ms < in->resend_after_ms)
            return;
        in->resend = 1; /* no ack in time: send the same batch again */
    } else {
        if (count == 0)
            return;
        in->in_flight = count < in->max_batch ? count : in->max_batch;
        in->resend = 0;
    }
    anm_telemetry_batch *b = &in->batch;
    b->count = 0;
    b->sender_id = in->sender_id;
    b->flags = in->resend ? ANM_TELEMETRY_FLAG_RESEND : 0;
    for (size_t i = 0; i < in->in_flight; i++) {
        gateway_spool_entry e;
        char *text = NULL;
        size_t size = 0;
        anm_telemetry_sample s;
        if (gateway_spool_at(in->journal, i, &e) != ANM_OK ||
            gateway_spool_read(in->journal, e.seq, &text, &size) != ANM_OK)
            return;
        if (i == 0)
            b->seq = e.seq;
        int rc = parse_record(text, &s);
        free(text);
        if (rc != ANM_OK || anm_telemetry_batch_push(b, s.signal_id, s.utc_ms, s.value, s.quality) != ANM_OK) {
            anm_log_error(COMPONENT, "journal entry %llu is unreadable; parked",
                          (unsigned long long)e.seq);
            gateway_spool_park(in->journal, e.seq);
            in->in_flight = 0;
            return;
        }
    }
    in->in_flight_seq = b->seq;
    size_t frame_size = anm_telemetry_frame_size(b->count);
    void *frame = malloc(frame_size);
    if (frame == NULL)
        return;
    size_t written = 0;
    if (anm_telemetry_encode(b, frame, frame_size, &written) == ANM_OK) {
        anm_frame parts[2] = {{ANM_TELEMETRY_TOPIC, strlen(ANM_TELEMETRY_TOPIC)}, {frame, written}};
        if (anm_socket_send(in->dealer, parts, 2, ANM_BUS_DONTWAIT) == ANM_OK)
            in->sent_at_ms = now;
        else
            in->sent_at_ms = now; /* retried after resend_after_ms */
    }
    free(frame);
}

static void take_replies(gateway_mqtt_in *in)
{
    for (;;) {
        anm_msg *msg = NULL;
        json_t *body = NULL;
        anm_bus_reject why;
        int rc = anm_bus_recv_json(in->dealer, NULL, 0, ANM_BUS_DONTWAIT, &msg, &body, &why);
        if (rc == ANM_EAGAIN || rc == ANM_ESTATE || rc == ANM_ENET) {
            anm_msg_destroy(&msg);
            return;
        }
        if (rc == ANM_OK && body != NULL) {
            const char *kind = json_string_value(json_object_get(body, "kind"));
            json_t *seq = json_object_get(body, "seq");
            int matches = json_is_integer(seq) && in->in_flight > 0 &&
                          (uint64_t)json_integer_value(seq) == in->in_flight_seq;
            if (matches && kind != NULL) {
                if (strcmp(kind, "telemetry.reject") == 0) {
                    anm_log_error(COMPONENT, "ingest rejected batch %llu (%zu samples): %s",
                                  (unsigned long long)in->in_flight_seq, in->in_flight,
                                  json_string_value(json_object_get(body, "text")));
                    in->stats.rejected += in->in_flight;
                } else {
                    in->stats.acked += in->in_flight;
                }
                for (size_t i = 0; i < in->in_flight; i++) {
                    gateway_spool_entry e;
                    if (gateway_spool_at(in->journal, 0, &e) == ANM_OK)
                        gateway_spool_remove(in->journal, e.seq);
                }
                in->in_flight = 0;
            }
        }
        json_decref(body);
        anm_msg_destroy(&msg);
    }
}

int gateway_mqtt_in_new(const gateway_mqtt_in_config *config, anm_bus *bus,
                        gateway_mqtt_in **out, anm_error_detail *detail)
{
    *out = NULL;
    if (config->journal_dir == NULL || config->ingest_endpoint == NULL || config->n_maps == 0) {
        anm_error_detail_set(detail, NULL, 0, 0,
                             config->journal_dir == NULL       ? "journal_dir"
                             : config->ingest_endpoint == NULL ? "ingest_endpoint"
                                                               : "topics",
                             "missing required setting");
        return ANM_ECONFIG;
    }
    gateway_mqtt_in *in = calloc(1, sizeof *in);
    if (in == NULL)
        return ANM_ENOMEM;
    anm_telemetry_batch_init(&in->batch);
    int rc = gateway__mqtt_client_init(&in->client, &config->connection, COMPONENT, detail);
    if (rc != ANM_OK) {
        free(in);
        return rc;
    }
    rc = ANM_ENOMEM;
    in->maps = calloc(config->n_maps, sizeof *in->maps);
    if (in->maps == NULL)
        goto fail;
    for (size_t i = 0; i < config->n_maps; i++) {
        const char *t = config->maps[i].topic;
        if (t == NULL || t[0] == '\0' || strpbrk(t, "+#") != NULL) {
            char path[64];
            snprintf(path, sizeof path, "topics[%zu].topic", i);
            anm_error_detail_set(detail, NULL, 0, 0, path,
                                 "topic must be an exact topic without wildcards");
            rc = ANM_ECONFIG;
            goto fail;
        }
        in->maps[i].topic = strdup(t);
        in->maps[i].signal_id = config->maps[i].signal_id;
        in->n_maps = i + 1;
        if (in->maps[i].topic == NULL)
            goto fail;
    }
    in->value_field = strdup(config->value_field ? config->value_field : "value");
    in->time_field = strdup(config->time_field ? config->time_field : "ts");
    in->quality_field = strdup(config->quality_field ? config->quality_field : "quality");
    in->clock = anm_clock_new_real();
    if (in->value_field == NULL || in->time_field == NULL || in->quality_field == NULL ||
        in->clock == NULL)
        goto fail;
    in->sender_id = config->sender_id;
    in->resend_after_ms = config->resend_after_ms > 0 ? config->resend_after_ms : 2000;
    in->max_batch = config->max_batch > 0 ? config->max_batch : 500;
    anm_log_limiter_init(&in->limiter, 10, 1);
    if ((rc = gateway_spool_open(config->journal_dir, &in->journal, detail)) != ANM_OK)
        goto fail;
    if ((rc = anm_socket_new(bus, ANM_SOCKET_DEALER, config->ingest_endpoint, NULL, &in->dealer,
                             detail)) != ANM_OK)
        goto fail;
    in->client.owner = in;
    in->client.on_connected = on_connected;
    in->client.on_message = on_message;
    if (gateway_spool_count(in->journal) > 0)
        anm_log_info(COMPONENT, "%zu journalled samples from an earlier run will be re-sent",
                     gateway_spool_count(in->journal));
    *out = in;
    return ANM_OK;
fail:
    gateway_mqtt_in_destroy(&in);
    return rc;
}

void gateway_mqtt_in_destroy(gateway_mqtt_in **in)
{
    if (in == NULL || *in == NULL)
        return;
    gateway_mqtt_in *s = *in;
    gateway__mqtt_client_fini(&s->client);
    anm_socket_destroy(&s->dealer);
    gateway_spool_close(&s->journal);
    for (size_t i = 0; i < s->n_maps; i++)
        free(s->maps[i].topic);
    free(s->maps);
    free(s->value_field);
    free(s->time_field);
    free(s->quality_field);
    anm_clock_destroy(&s->clock);
    anm_telemetry_batch_free(&s->batch);
    free(s);
    *in = NULL;
}

int gateway_mqtt_in_run(gateway_mqtt_in *in, int timeout_ms)
{
    int64_t deadline = gateway__mqtt_now_ms() + timeout_ms;
    int rc;
    do {
        int64_t left = deadline - gateway__mqtt_now_ms();
        rc = gateway__mqtt_client_run(&in->client, COMPONENT, (int)(left < 20 ? (left > 0 ? left : 0) : 20));
        take_replies(in);
        send_batch(in);
    } while (gateway__mqtt_now_ms() < deadline);
    return rc;
}

gateway_mqtt_state gateway_mqtt_in_state(const gateway_mqtt_in *in)
{
    return in->client.state;
}

const char *gateway_mqtt_in_last_error(const gateway_mqtt_in *in)
{
    return in->client.last_error;
}

void gateway_mqtt_in_get_stats(const gateway_mqtt_in *in, gateway_mqtt_in_stats *out)
{
    *out = in->stats;
    out->journalled = gateway_spool_count(in->journal);
}
