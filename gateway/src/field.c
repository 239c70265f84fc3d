/*
 * field.c: the field route: an IEC 104 client of an RTU or ANM outstation
 * whose values, mapped (common address, IOA) -> signal id, go to the
 * ingest service as telemetry batches over a DEALER socket, each kept and
 * resent (with the resend flag) until ingest acknowledges it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bus.h"
#include "engine/log.h"
#include "engine/telemetry_frame.h"
#include "gateway/gateway.h"
#include "gateway/iec104_client.h"

#define COMPONENT "gateway"

typedef struct sent_batch {
    uint64_t seq;
    int64_t sent_ms;        /* engine time of the last (re)send */
    int64_t earliest_utc_ms; /* of its samples, for latency */
    size_t count;
    uint8_t *frame;
    size_t size;
} sent_batch;

struct gateway_field {
    const gateway_field_settings *settings; /* borrowed */
    anm_clock *clock;
    gateway_iec104_client *client;
    anm_socket *dealer;
    anm_telemetry_batch pending;
    int64_t pending_since_ms;
    uint64_t next_seq;
    sent_batch *sent;
    size_t n_sent, cap_sent;
    uint64_t acked_samples, rejected_batches, unmapped, resent;
    int64_t last_ack_ms;
    gateway_latency latency;
    gateway_field_map_entry *map; /* sorted by (ca, ioa) */
    size_t n_map;
    int clock_synced;
};

static int map_cmp(const void *a, const void *b)
{
    const gateway_field_map_entry *x = a, *y = b;
    if (x->common_address != y->common_address)
        return x->common_address < y->common_address ? -1 : 1;
    return x->ioa < y->ioa ? -1 : x->ioa > y->ioa;
}

static long lookup(const gateway_field *f, long ca, long ioa)
{
    gateway_field_map_entry key = {.common_address = ca, .ioa = ioa};
    const gateway_field_map_entry *hit = bsearch(&key, f->map, f->n_map, sizeof *f->map, map_cmp);
    return hit ? hit->signal_id : -1;
}

static void on_asdu(void *arg, const gateway_iec104_asdu *asdu, int64_t now_ms)
{
    gateway_field *f = arg;
    if (asdu->type != GATEWAY_IEC104_M_ME_NC_1 && asdu->type != GATEWAY_IEC104_M_ME_TF_1 &&
        asdu->type != GATEWAY_IEC104_M_SP_NA_1 && asdu->type != GATEWAY_IEC104_M_SP_TB_1)
        return;
    int timed = gateway_iec104_type_has_time(asdu->type);
    int single = asdu->type == GATEWAY_IEC104_M_SP_NA_1 || asdu->type == GATEWAY_IEC104_M_SP_TB_1;
    for (size_t i = 0; i < asdu->count; i++) {
        const gateway_iec104_object *o = &asdu->objects[i];
        long signal = lookup(f, asdu->common_address, (long)o->ioa);
        if (signal < 0) {
            f->unmapped++;
            continue;
        }
        int64_t utc_ms = now_ms;
        if (timed) {
            gateway_iec104_time_config tc = {0, 0};
            if (gateway_iec104_cp56_to_utc_ms(&o->time, &tc, &utc_ms) != ANM_OK)
                utc_ms = now_ms;
        }
        double value = single ? (double)o->single_point : (double)o->value;
        if (!isfinite(value))
            continue; /* ingest refuses non-finite values: count as unmapped */
        if (f->pending.count == 0)
            f->pending_since_ms = now_ms;
        if (anm_telemetry_batch_push(&f->pending, (uint32_t)signal, utc_ms, value, o->quality) !=
            ANM_OK)
            anm_log_error(COMPONENT, "field route \"%s\": out of memory", f->settings->name);
    }
}

int gateway_field_new(const gateway_field_settings *settings, struct anm_bus *bus,
                      anm_clock *clock, gateway_field **out, anm_error_detail *detail)
{
    *out = NULL;
    gateway_field *f = calloc(1, sizeof *f);
    if (f == NULL)
        return ANM_ENOMEM;
    f->settings = settings;
    f->clock = clock;
    f->next_seq = 1;
    anm_telemetry_batch_init(&f->pending);
    f->pending.sender_id = (uint32_t)settings->sender_id;
    gateway_latency_reset(&f->latency);
    int rc = ANM_ENOMEM;
    f->n_map = settings->map.count;
    f->map = calloc(f->n_map ? f->n_map : 1, sizeof *f->map);
    if (f->map == NULL)
        goto fail;
    for (size_t i = 0; i < f->n_map; i++) {
        f->map[i] = *ANM_CONFIG_ITEM(settings->map, gateway_field_map_entry, i);
        if (f->map[i].common_address == 0)
            f->map[i].common_address = settings->common_address;
    }
    qsort(f->map, f->n_map, sizeof *f->map, map_cmp);
    for (size_t i = 1; i < f->n_map; i++) {
        if (map_cmp(&f->map[i - 1], &f->map[i]) == 0) {
            anm_error_detail_set(detail, NULL, 0, 0, "field.map",
                                 "field route \"%s\": duplicate common address %ld ioa %ld",
                                 settings->name, f->map[i].common_address, f->map[i].ioa);
            rc = ANM_ECONFIG;
            goto fail;
        }
    }
    anm_socket_options options;
    anm_socket_options_default(&options);
    char identity[64];
    snprintf(identity, sizeof identity, "gateway-%ld", settings->sender_id);
    options.identity = identity;
    rc = anm_socket_new(bus, ANM_SOCKET_DEALER, settings->ingest_endpoint, &options, &f->dealer,
                        detail);
    if (rc != ANM_OK)
        goto fail;
    gateway_iec104_client_config cc;
    gateway_iec104_client_config_default(&cc);
    snprintf(cc.host, sizeof cc.host, "%s", settings->host);
    cc.port = (int)settings->port;
    cc.common_address = (uint16_t)settings->common_address;
    cc.reconnect_min_ms = (int)settings->reconnect_min_ms;
    cc.reconnect_max_ms = (int)settings->reconnect_max_ms;
    cc.link.k = (int)settings->k;
    cc.link.w = (int)settings->w;
    cc.link.t1_s = (int)settings->t1_s;
    cc.link.t2_s = (int)settings->t2_s;
    cc.link.t3_s = (int)settings->t3_s;
    rc = gateway_iec104_client_new(&cc, on_asdu, f, anm_clock_now_ms(clock), &f->client, detail);
    if (rc != ANM_OK)
        goto fail;
    *out = f;
    return ANM_OK;
fail:
    gateway_field_destroy(&f);
    return rc;
}

void gateway_field_destroy(gateway_field **fp)
{
    if (fp == NULL || *fp == NULL)
        return;
    gateway_field *f = *fp;
    gateway_iec104_client_destroy(&f->client);
    anm_socket_destroy(&f->dealer);
    anm_telemetry_batch_free(&f->pending);
    for (size_t i = 0; i < f->n_sent; i++)
        free(f->sent[i].frame);
    free(f->sent);
    free(f->map);
    free(f);
    *fp = NULL;
}

static int send_frame(gateway_field *f, sent_batch *b)
{
    static const char topic[] = ANM_TELEMETRY_TOPIC;
    anm_frame frames[2] = {{topic, sizeof topic - 1}, {b->frame, b->size}};
    return anm_socket_send(f->dealer, frames, 2, ANM_BUS_DONTWAIT);
}

/* Closes the pending batch: encodes it, keeps it until acked, sends it. */
static int flush_pending(gateway_field *f, int64_t now_ms)
{
    if (f->pending.count == 0)
        return ANM_OK;
    if (f->n_sent == f->cap_sent) {
        size_t cap = f->cap_sent ? f->cap_sent * 2 : 16;
        sent_batch *grown = realloc(f->sent, cap * sizeof *grown);
        if (grown == NULL)
            return ANM_ENOMEM;
        f->sent = grown;
        f->cap_sent = cap;
    }
    sent_batch *b = &f->sent[f->n_sent];
    f->pending.seq = f->next_seq;
    f->pending.flags = 0;
    b->size = anm_telemetry_frame_size(f->pending.count);
    b->frame = malloc(b->size);
    if (b->frame == NULL)
        return ANM_ENOMEM;
    int rc = anm_telemetry_encode(&f->pending, b->frame, b->size, NULL);
    if (rc != ANM_OK) {
        free(b->frame);
        return rc;
    }
    b->seq = f->next_seq++;
    b->count = f->pending.count;
    b->sent_ms = now_ms;
    b->earliest_utc_ms = INT64_MAX;
    for (size_t i = 0; i < f->pending.count; i++) {
        if (f->pending.samples[i].utc_ms < b->earliest_utc_ms)
            b->earliest_utc_ms = f->pending.samples[i].utc_ms;
    }
    f->n_sent++;
    f->pending.count = 0;
    (void)send_frame(f, b); /* a full pipe is retried by the resend timer */
    return ANM_OK;
}

static void drop_sent(gateway_field *f, uint64_t seq, int acked, int64_t now_ms)
{
    for (size_t i = 0; i < f->n_sent; i++) {
        if (f->sent[i].seq != seq)
            continue;
        if (acked) {
            f->acked_samples += f->sent[i].count;
            f->last_ack_ms = now_ms;
            gateway_latency_add(&f->latency, (double)(now_ms - f->sent[i].earliest_utc_ms),
                                f->sent[i].count);
        }
        free(f->sent[i].frame);
        memmove(&f->sent[i], &f->sent[i + 1], (f->n_sent - i - 1) * sizeof *f->sent);
        f->n_sent--;
        return;
    }
}

static void handle_reply(gateway_field *f, anm_msg *msg, int64_t now_ms)
{
    size_t topic_size = 0, body_size = 0;
    const char *topic = anm_msg_part(msg, 0, &topic_size);
    const char *body = anm_msg_part(msg, anm_msg_parts(msg) - 1, &body_size);
    json_t *root = json_loadb(body, body_size, 0, NULL);
    json_t *seq = json_object_get(root, "seq");
    int ack = topic_size == strlen("telemetry.ack") && memcmp(topic, "telemetry.ack", topic_size) == 0;
    int reject = topic_size == strlen("telemetry.reject") &&
                 memcmp(topic, "telemetry.reject", topic_size) == 0;
    if (json_is_integer(seq) && (ack || reject)) {
        if (reject) {
            f->rejected_batches++;
            json_t *text = json_object_get(root, "text");
            anm_log_warn(COMPONENT, "field route \"%s\": ingest rejected batch %lld: %s",
                         f->settings->name, (long long)json_integer_value(seq),
                         json_is_string(text) ? json_string_value(text) : "");
        }
        drop_sent(f, (uint64_t)json_integer_value(seq), ack, now_ms);
    }
    json_decref(root);
}

int gateway_field_run_once(gateway_field *f, int max_wait_ms)
{
    int64_t now = anm_clock_now_ms(f->clock);
    int rc = gateway_iec104_client_run_once(f->client, now, max_wait_ms);
    if (rc != ANM_OK)
        return rc;
    now = anm_clock_now_ms(f->clock);
    if (gateway_iec104_client_is_started(f->client)) {
        if (f->settings->clock_sync && !f->clock_synced) {
            if (gateway_iec104_client_clock_sync(f->client, now, now) == ANM_OK)
                f->clock_synced = 1;
        }
    } else {
        f->clock_synced = 0;
    }
    if (f->pending.count >= (size_t)f->settings->batch_max_samples ||
        (f->pending.count > 0 && now - f->pending_since_ms >= f->settings->batch_max_age_ms)) {
        if ((rc = flush_pending(f, now)) != ANM_OK)
            return rc;
    }
    for (;;) {
        anm_msg *msg = NULL;
        int r = anm_socket_recv(f->dealer, &msg, ANM_BUS_DONTWAIT);
        if (r != ANM_OK)
            break;
        handle_reply(f, msg, now);
        anm_msg_destroy(&msg);
    }
    for (size_t i = 0; i < f->n_sent; i++) {
        sent_batch *b = &f->sent[i];
        if (now - b->sent_ms < f->settings->resend_ms)
            continue;
        b->frame[5] |= ANM_TELEMETRY_FLAG_RESEND;
        /* the flag is inside the checksummed header: recompute the CRC */
        uint32_t crc = anm_crc32c(b->frame, b->size - 4);
        for (int k = 0; k < 4; k++)
            b->frame[b->size - 4 + (size_t)k] = (uint8_t)(crc >> (8 * k));
        b->sent_ms = now;
        f->resent++;
        (void)send_frame(f, b);
    }
    return ANM_OK;
}

int gateway_field_is_started(const gateway_field *f)
{
    return gateway_iec104_client_is_started(f->client);
}

uint64_t gateway_field_acked_samples(const gateway_field *f) { return f->acked_samples; }

json_t *gateway_field_status(gateway_field *f)
{
    char last[32] = "";
    if (f->last_ack_ms > 0)
        anm_time_format_utc(f->last_ack_ms, last, sizeof last);
    size_t backlog = f->pending.count;
    for (size_t i = 0; i < f->n_sent; i++)
        backlog += f->sent[i].count;
    double p50 = gateway_latency_quantile(&f->latency, 0.5);
    double p99 = gateway_latency_quantile(&f->latency, 0.99);
    return json_pack("{s:s,s:s,s:b,s:o,s:o,s:o,s:I,s:I,s:I,s:I,s:I,s:s}", "kind", "iec104_field",
                     "peer", f->settings->host, "started",
                     gateway_iec104_client_is_started(f->client), "last_handover",
                     last[0] ? json_string(last) : json_null(), "latency_p50_ms",
                     p50 < 0 ? json_null() : json_real(p50), "latency_p99_ms",
                     p99 < 0 ? json_null() : json_real(p99), "backlog", (json_int_t)backlog,
                     "handed_over", (json_int_t)f->acked_samples, "errors",
                     (json_int_t)f->rejected_batches, "unmapped", (json_int_t)f->unmapped,
                     "resent", (json_int_t)f->resent, "last_error",
                     gateway_iec104_client_last_error(f->client));
}
