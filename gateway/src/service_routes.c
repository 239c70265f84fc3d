/* service_routes.c: MQTT and Wider Access routes of the service (see service_routes.h). */
#include "service_routes.h"
#include "service_dc.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/log.h"
#include "gateway/jws.h"
#include "gateway/mqtt_out.h"
#include "gateway/spool_log.h"
#include "gateway/wa_client.h"
#include "gateway/wa_messages.h"
#include "gateway/wa_server.h"

#define COMPONENT "gateway"

/* Per-route figures shared between a worker and the status reader. */
typedef struct route_stats {
    pthread_mutex_t lock;
    gateway_latency latency;
    int64_t last_handover_ms; /* 0: none */
    uint64_t handed_over;
    uint64_t errors;
    size_t backlog;
    uint64_t test_sent, test_acked; /* commissioning: test-flagged items sent and acknowledged */
    char state[32];
    char last_error[512];
} route_stats;

static void stats_init(route_stats *st)
{
    pthread_mutex_init(&st->lock, NULL);
    gateway_latency_reset(&st->latency);
}

static json_t *stats_json(route_stats *st, const char *kind)
{
    pthread_mutex_lock(&st->lock);
    char last[32] = "";
    if (st->last_handover_ms > 0)
        anm_time_format_utc(st->last_handover_ms, last, sizeof last);
    double p50 = gateway_latency_quantile(&st->latency, 0.5);
    double p99 = gateway_latency_quantile(&st->latency, 0.99);
    json_t *o = json_pack("{s:s,s:s,s:o,s:o,s:o,s:I,s:I,s:I,s:s}", "kind", kind, "state", st->state,
                          "last_handover", last[0] ? json_string(last) : json_null(),
                          "latency_p50_ms", p50 < 0 ? json_null() : json_real(p50),
                          "latency_p99_ms", p99 < 0 ? json_null() : json_real(p99), "backlog",
                          (json_int_t)st->backlog, "handed_over", (json_int_t)st->handed_over,
                          "errors", (json_int_t)st->errors, "last_error", st->last_error);
    if (o != NULL) {
        json_object_set_new(o, "test_sent", json_integer((json_int_t)st->test_sent));
        json_object_set_new(o, "test_acknowledged", json_integer((json_int_t)st->test_acked));
    }
    pthread_mutex_unlock(&st->lock);
    return o;
}

static const char *or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* ---- MQTT --------------------------------------------------------------------------------- */

#define GATEWAY_SERVICE_MQTT_DEFAULT_TOPIC "{topic}"

typedef struct mqtt_item {
    char topic[256]; /* the pro-forma point's mqtt_topic (at most 255 bytes, checked on load) */
    char unit[64];
    char quantity[32];
    char quality[16];
    uint32_t signal_id;
    int64_t utc_ms;
    double value;
    int test;
} mqtt_item;

typedef struct mqtt_route {
    gateway_mqtt_out *out;
    pthread_t thread;
    atomic_int stop;
    pthread_mutex_t lock; /* the queue */
    pthread_cond_t wake;
    mqtt_item *queue;
    size_t head, count, capacity;
    /* worker only: measurement times of published samples, in publish order,
       stored as 2 * utc_ms + test (the low bit marks commissioning samples) */
    int64_t *stamps;
    size_t stamp_head, stamp_count, stamp_capacity;
    uint64_t acked_seen;
    uint64_t skip_acks; /* spooled by an earlier run: no stamp */
    route_stats stats;
} mqtt_route;

static int stamp_push(mqtt_route *m, int64_t utc_ms)
{
    if (m->stamp_count == m->stamp_capacity) {
        size_t cap = m->stamp_capacity ? m->stamp_capacity * 2 : 4096;
        int64_t *grown = malloc(cap * sizeof *grown);
        if (grown == NULL)
            return ANM_ENOMEM;
        for (size_t i = 0; i < m->stamp_count; i++)
            grown[i] = m->stamps[(m->stamp_head + i) % m->stamp_capacity];
        free(m->stamps);
        m->stamps = grown;
        m->stamp_head = 0;
        m->stamp_capacity = cap;
    }
    m->stamps[(m->stamp_head + m->stamp_count) % m->stamp_capacity] = utc_ms;
    m->stamp_count++;
    return ANM_OK;
}

static void *mqtt_worker(void *arg)
{
    mqtt_route *m = arg;
    mqtt_item *batch = NULL;
    size_t batch_cap = 0;
    while (!atomic_load(&m->stop)) {
        /* take what the service queued */
        pthread_mutex_lock(&m->lock);
        size_t n = m->count;
        if (n > batch_cap) {
            mqtt_item *grown = realloc(batch, n * sizeof *batch);
            if (grown != NULL) {
                batch = grown;
                batch_cap = n;
            }
        }
        if (n > batch_cap)
            n = batch_cap;
        for (size_t i = 0; i < n; i++)
            batch[i] = m->queue[(m->head + i) % m->capacity];
        m->head = m->capacity ? (m->head + n) % m->capacity : 0;
        m->count -= n;
        pthread_mutex_unlock(&m->lock);
        uint64_t failed = 0;
        for (size_t i = 0; i < n; i++) {
            const mqtt_item *it = &batch[i];
            gateway_mqtt_sample s = {.topic = it->topic,
                                     .unit = it->unit,
                                     .quantity = it->quantity,
                                     .signal_id = it->signal_id,
                                     .utc_ms = it->utc_ms,
                                     .value = it->value,
                                     .quality = it->quality,
                                     .test = it->test};
            if (gateway_mqtt_out_publish(m->out, &s) != ANM_OK ||
                stamp_push(m, it->utc_ms * 2 + (it->test ? 1 : 0)) != ANM_OK)
                failed++;
        }
        (void)gateway_mqtt_out_run(m->out, n > 0 ? 0 : 20);
        uint64_t acked = gateway_mqtt_out_acked(m->out);
        int64_t now = anm_wall_clock_ms();
        pthread_mutex_lock(&m->stats.lock);
        while (m->acked_seen < acked) { /* QoS 1 in order: PUBACKs follow publish order */
            m->acked_seen++;
            if (m->skip_acks > 0) {
                m->skip_acks--;
                continue;
            }
            if (m->stamp_count == 0)
                continue;
            int64_t stamp = m->stamps[m->stamp_head];
            gateway_latency_add(&m->stats.latency, (double)(now - stamp / 2), 1);
            if (stamp % 2 != 0)
                m->stats.test_acked++; /* PUBACK of a commissioning sample */
            m->stamp_head = (m->stamp_head + 1) % m->stamp_capacity;
            m->stamp_count--;
            m->stats.handed_over++;
            m->stats.last_handover_ms = now;
        }
        m->stats.errors += failed;
        m->stats.backlog = gateway_mqtt_out_pending(m->out);
        snprintf(m->stats.state, sizeof m->stats.state, "%s",
                 gateway_mqtt_state_name(gateway_mqtt_out_state(m->out)));
        snprintf(m->stats.last_error, sizeof m->stats.last_error, "%s",
                 gateway_mqtt_out_last_error(m->out));
        pthread_mutex_unlock(&m->stats.lock);
    }
    free(batch);
    return NULL;
}

static int mqtt_route_new(const gateway_mqtt_settings *c, mqtt_route **out,
                          anm_error_detail *detail)
{
    *out = NULL;
    if (c->ca_file[0] == '\0' || c->spool_dir[0] == '\0') {
        anm_error_detail_set(detail, NULL, 0, 0, c->ca_file[0] ? "mqtt.spool_dir" : "mqtt.ca_file",
                             "required when mqtt.enabled is true");
        return ANM_ECONFIG;
    }
    if (strcmp(c->tls_version, "tlsv1.2") != 0 && strcmp(c->tls_version, "tlsv1.3") != 0) {
        anm_error_detail_set(detail, NULL, 0, 0, "mqtt.tls_version",
                             "must be \"tlsv1.2\" or \"tlsv1.3\", not \"%s\"", c->tls_version);
        return ANM_ECONFIG;
    }
    mqtt_route *m = calloc(1, sizeof *m);
    if (m == NULL)
        return ANM_ENOMEM;
    stats_init(&m->stats);
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->wake, NULL);
    gateway_mqtt_out_config oc;
    memset(&oc, 0, sizeof oc);
    oc.connection.host = c->host;
    oc.connection.port = (int)c->port;
    oc.connection.client_id = or_null(c->client_id);
    oc.connection.ca_file = c->ca_file;
    oc.connection.cert_file = or_null(c->cert_file);
    oc.connection.key_file = or_null(c->key_file);
    oc.connection.username = or_null(c->username);
    oc.connection.password_file = or_null(c->password_file);
    oc.connection.tls_version = c->tls_version;
    oc.connection.keepalive_s = (int)c->keepalive_s;
    /* by default each point goes to the topic its pro-forma entry names */
    oc.topic_template = c->topic_template != NULL && c->topic_template[0] != '\0'
                            ? c->topic_template
                            : GATEWAY_SERVICE_MQTT_DEFAULT_TOPIC;
    oc.payload_template = or_null(c->payload_template);
    oc.spool_dir = c->spool_dir;
    oc.max_inflight = (int)c->max_inflight;
    int rc = gateway_mqtt_out_new(&oc, &m->out, detail);
    if (rc != ANM_OK)
        goto fail;
    m->skip_acks = gateway_mqtt_out_pending(m->out);
    snprintf(m->stats.state, sizeof m->stats.state, "starting");
    if (pthread_create(&m->thread, NULL, mqtt_worker, m) != 0) {
        rc = ANM_ENOMEM;
        goto fail;
    }
    *out = m;
    return ANM_OK;
fail:
    gateway_mqtt_out_destroy(&m->out);
    free(m);
    return rc;
}

static void mqtt_route_destroy(mqtt_route **mp)
{
    if (*mp == NULL)
        return;
    mqtt_route *m = *mp;
    atomic_store(&m->stop, 1);
    pthread_join(m->thread, NULL);
    gateway_mqtt_out_destroy(&m->out);
    free(m->queue);
    free(m->stamps);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->wake);
    pthread_mutex_destroy(&m->stats.lock);
    free(m);
    *mp = NULL;
}

/* Queues a sample (the queue grows: nothing is dropped). */
static void mqtt_route_push(mqtt_route *m, const mqtt_item *it)
{
    if (it->test) { /* counted here so that a sample still queued is not acknowledged yet */
        pthread_mutex_lock(&m->stats.lock);
        m->stats.test_sent++;
        pthread_mutex_unlock(&m->stats.lock);
    }
    pthread_mutex_lock(&m->lock);
    if (m->count == m->capacity) {
        size_t cap = m->capacity ? m->capacity * 2 : 1024;
        mqtt_item *grown = malloc(cap * sizeof *grown);
        if (grown == NULL) {
            pthread_mutex_unlock(&m->lock);
            pthread_mutex_lock(&m->stats.lock);
            m->stats.errors++;
            pthread_mutex_unlock(&m->stats.lock);
            anm_log_error(COMPONENT, "mqtt queue: out of memory, sample of \"%s\" lost", it->unit);
            return;
        }
        for (size_t i = 0; i < m->count; i++)
            grown[i] = m->queue[(m->head + i) % m->capacity];
        free(m->queue);
        m->queue = grown;
        m->head = 0;
        m->capacity = cap;
    }
    m->queue[(m->head + m->count) % m->capacity] = *it;
    m->count++;
    pthread_mutex_unlock(&m->lock);
}

/* ---- Wider Access client ------------------------------------------------------------------ */

typedef struct wa_item {
    json_t *message;
    int64_t created_ms;
    int test;     /* commissioning message */
    uint64_t seq; /* its record in the durable queue (0: none) */
    int ready;    /* on disk (or no disk queue): may be sent */
    struct wa_item *next;
} wa_item;

typedef struct wa_client_route {
    gateway_wa_client *client;
    gateway_jws_signer *signer;
    gateway_jws_verifier *verifier;
    pthread_t thread;
    atomic_int stop;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    wa_item *first, *last;
    size_t queued;
    gateway_spool_log *log; /* durable queue (NULL: in memory); under lock */
    long retry_ms;
    route_stats stats;
} wa_client_route;

static void *wa_worker(void *arg)
{
    wa_client_route *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!atomic_load(&w->stop)) {
        if (w->first == NULL || !w->first->ready) {
            pthread_cond_wait(&w->wake, &w->lock);
            continue;
        }
        wa_item *it = w->first; /* stays at the head until sent: order kept */
        pthread_mutex_unlock(&w->lock);
        gateway_wa_result result;
        memset(&result, 0, sizeof result);
        int rc = gateway_wa_client_send(w->client, it->message, &result);
        int64_t now = anm_wall_clock_ms();
        pthread_mutex_lock(&w->stats.lock);
        if (rc == ANM_OK) {
            gateway_latency_add(&w->stats.latency, (double)(now - it->created_ms), 1);
            w->stats.handed_over++;
            w->stats.last_handover_ms = now;
            if (it->test)
                w->stats.test_acked++; /* NESO's verified, signed acknowledgement */
            if (w->stats.backlog > 0) /* with handed_over, so that readers see both at once */
                w->stats.backlog--;
            snprintf(w->stats.state, sizeof w->stats.state, "ok");
        } else {
            w->stats.errors++;
            snprintf(w->stats.state, sizeof w->stats.state, "retrying");
            snprintf(w->stats.last_error, sizeof w->stats.last_error, "%s", result.error);
        }
        pthread_mutex_unlock(&w->stats.lock);
        gateway_wa_result_clear(&result);
        pthread_mutex_lock(&w->lock);
        if (rc == ANM_OK && w->log != NULL && it->seq > 0) {
            /* NESO's signed ack: the record is done, trimmed from the log */
            if (gateway_spool_log_ack(w->log, it->seq) != ANM_OK ||
                gateway_spool_log_commit(w->log) != ANM_OK)
                anm_log_error(COMPONENT, "wider access queue: could not record the ack of %llu",
                              (unsigned long long)it->seq);
        }
        if (rc == ANM_OK) {
            w->first = it->next;
            if (w->first == NULL)
                w->last = NULL;
            w->queued--;
            json_decref(it->message);
            free(it);
        } else {
            anm_log_warn(COMPONENT, "wider access send failed, retrying in %ld ms", w->retry_ms);
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += w->retry_ms / 1000;
            until.tv_nsec += (w->retry_ms % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            while (!atomic_load(&w->stop) &&
                   pthread_cond_timedwait(&w->wake, &w->lock, &until) != ETIMEDOUT) {
            }
        }
        pthread_mutex_lock(&w->stats.lock);
        w->stats.backlog = w->queued;
        pthread_mutex_unlock(&w->stats.lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static int make_signer(const gateway_wa_settings *c, gateway_jws_signer **out,
                       anm_error_detail *detail)
{
    gateway_jws_alg alg;
    if (gateway_jws_alg_parse(c->signing_alg, &alg) != ANM_OK) {
        anm_error_detail_set(detail, NULL, 0, 0, "wider_access.signing_alg",
                             "must be RS256, PS256 or ES256, not \"%s\"", c->signing_alg);
        return ANM_ECONFIG;
    }
    if (c->signing_key_file[0] == '\0') {
        anm_error_detail_set(detail, NULL, 0, 0, "wider_access.signing_key_file",
                             "required for the Wider Access routes");
        return ANM_ECONFIG;
    }
    return gateway_jws_signer_new_files(alg, c->signing_key_file, or_null(c->signing_cert_file),
                                        or_null(c->signing_kid), c->signing_cert_file[0] != '\0',
                                        out, detail);
}

static int make_verifier(const gateway_wa_settings *c, gateway_jws_verifier **out,
                         anm_error_detail *detail)
{
    if (c->neso_cert_file[0] == '\0') {
        anm_error_detail_set(detail, NULL, 0, 0, "wider_access.neso_cert_file",
                             "required: NESO's signatures must be verified");
        return ANM_ECONFIG;
    }
    *out = gateway_jws_verifier_new();
    if (*out == NULL)
        return ANM_ENOMEM;
    return gateway_jws_verifier_add_cert_file(*out, NULL, c->neso_cert_file, detail);
}

static void wa_client_route_destroy(wa_client_route **wp)
{
    if (*wp == NULL)
        return;
    wa_client_route *w = *wp;
    if (w->thread) {
        pthread_mutex_lock(&w->lock);
        atomic_store(&w->stop, 1);
        pthread_cond_broadcast(&w->wake);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
    }
    if (w->queued > 0 && w->log == NULL)
        anm_log_warn(COMPONENT, "%zu wider access message(s) not sent at shutdown", w->queued);
    else if (w->queued > 0)
        anm_log_info(COMPONENT, "%zu wider access message(s) kept in the queue for the next start",
                     w->queued);
    gateway_spool_log_close(&w->log);
    for (wa_item *it = w->first; it != NULL;) {
        wa_item *next = it->next;
        json_decref(it->message);
        free(it);
        it = next;
    }
    gateway_wa_client_destroy(&w->client);
    gateway_jws_signer_destroy(&w->signer);
    gateway_jws_verifier_destroy(&w->verifier);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->stats.lock);
    free(w);
    *wp = NULL;
}

/* Caller holds w->lock. Appends an item to the in-memory queue. */
static void wa_queue_append(wa_client_route *w, wa_item *it)
{
    if (w->last != NULL)
        w->last->next = it;
    else
        w->first = it;
    w->last = it;
    w->queued++;
}

/* Start: the unacknowledged messages of the durable queue, oldest first. */
static int wa_replay(wa_client_route *w, anm_error_detail *detail)
{
    char *data = NULL;
    size_t size = 0;
    uint64_t seq = 0;
    int rc;
    while ((rc = gateway_spool_log_next(w->log, &data, &size, &seq)) == ANM_OK) {
        json_error_t je;
        json_t *msg = json_loadb(data, size, 0, &je);
        free(data);
        wa_item *it = msg != NULL ? calloc(1, sizeof *it) : NULL;
        if (it == NULL) {
            anm_log_error(COMPONENT, "wider access queue: record %llu unreadable, dropped",
                          (unsigned long long)seq);
            json_decref(msg);
            (void)gateway_spool_log_ack(w->log, seq);
            continue;
        }
        it->message = msg;
        it->seq = seq;
        it->created_ms = anm_wall_clock_ms();
        it->test = json_is_true(json_object_get(msg, "test"));
        it->ready = 1;
        wa_queue_append(w, it);
    }
    if (rc != ANM_ENOTFOUND) {
        anm_error_detail_set(detail, NULL, 0, 0, "wider_access.spool_dir",
                             "could not read the queue: %s", anm_strerror(rc));
        return rc;
    }
    w->stats.backlog = w->queued;
    if (w->queued > 0)
        anm_log_info(COMPONENT, "%zu wider access message(s) from the last run to send",
                     w->queued);
    return ANM_OK;
}

static int wa_client_route_new(const gateway_wa_settings *c, wa_client_route **out,
                               anm_error_detail *detail)
{
    *out = NULL;
    wa_client_route *w = calloc(1, sizeof *w);
    if (w == NULL)
        return ANM_ENOMEM;
    stats_init(&w->stats);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    w->retry_ms = c->retry_ms;
    snprintf(w->stats.state, sizeof w->stats.state, "idle");
    int rc = make_signer(c, &w->signer, detail);
    if (rc == ANM_OK)
        rc = make_verifier(c, &w->verifier, detail);
    if (rc == ANM_OK && c->spool_dir != NULL && c->spool_dir[0] != '\0') {
        rc = gateway_spool_log_open(c->spool_dir, 0, &w->log, detail);
        if (rc == ANM_OK)
            rc = wa_replay(w, detail);
    }
    if (rc == ANM_OK) {
        gateway_wa_client_config cc;
        memset(&cc, 0, sizeof cc);
        cc.base_url = c->base_url;
        cc.paths[GATEWAY_WA_REDECLARATION] = or_null(c->redeclaration_path);
        cc.ca_file = or_null(c->ca_file);
        cc.client_cert_file = or_null(c->client_cert_file);
        cc.client_key_file = or_null(c->client_key_file);
        cc.request_timeout_ms = c->request_timeout_ms;
        cc.max_attempts = (int)c->max_attempts;
        cc.signer = w->signer;
        cc.verifier = w->verifier;
        rc = gateway_wa_client_new(&cc, &w->client, detail);
    }
    if (rc == ANM_OK && pthread_create(&w->thread, NULL, wa_worker, w) != 0)
        rc = ANM_ENOMEM;
    if (rc != ANM_OK) {
        wa_client_route_destroy(&w);
        return rc;
    }
    *out = w;
    return ANM_OK;
}

static void wa_client_route_push(wa_client_route *w, json_t *message, int test)
{
    wa_item *it = calloc(1, sizeof *it);
    if (it == NULL) {
        json_decref(message);
        return;
    }
    it->message = message;
    it->test = test;
    it->created_ms = anm_wall_clock_ms();
    pthread_mutex_lock(&w->lock);
    if (w->log != NULL) {
        char *text = json_dumps(message, JSON_COMPACT);
        if (text == NULL ||
            gateway_spool_log_append(w->log, text, strlen(text), &it->seq) != ANM_OK) {
            it->seq = 0; /* sent from memory only */
            anm_log_error(COMPONENT, "wider access queue: could not store a message on disk");
        }
        free(text);
    }
    it->ready = w->log == NULL;
    wa_queue_append(w, it);
    pthread_mutex_unlock(&w->lock);
    pthread_mutex_lock(&w->stats.lock);
    w->stats.backlog++;
    if (test)
        w->stats.test_sent++;
    pthread_mutex_unlock(&w->stats.lock);
}

/*
 * Group commit: one fdatasync for the messages pushed since the last call,
 * then the worker is woken (nothing goes out before it is on disk).
 */
static void wa_client_route_flush(wa_client_route *w)
{
    pthread_mutex_lock(&w->lock);
    if (w->log != NULL && gateway_spool_log_unsynced(w->log) > 0) {
        if (gateway_spool_log_sync(w->log) != ANM_OK)
            anm_log_error(COMPONENT, "wider access queue: sync failed");
        /* hand the synced records out so that their acks can be recorded */
        char *data = NULL;
        size_t size = 0;
        uint64_t seq = 0;
        while (gateway_spool_log_next(w->log, &data, &size, &seq) == ANM_OK)
            free(data);
    }
    for (wa_item *it = w->first; it != NULL; it = it->next)
        it->ready = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

/* ---- routes ---------------------------------------------------------------------------------- */

struct gateway__routes {
    const gateway_config *cfg;
    const gateway_proforma *proforma;
    mqtt_route *mqtt;
    wa_client_route *wa_client;
    gateway__dc_route *dc;
    /* Wider Access endpoint */
    gateway_jws_signer *server_signer;
    gateway_jws_verifier *server_verifier;
    anm_socket *wa_pub;
    gateway_wa_bus_adapter *adapter;
    gateway_wa_server *wa_server;
    char wa_pub_endpoint[256];
    uint64_t wa_sequence;
};

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *text = NULL;
    size_t size = 0, cap = 0;
    for (;;) {
        if (size + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *grown = realloc(text, cap);
            if (grown == NULL) {
                free(text);
                fclose(f);
                return NULL;
            }
            text = grown;
        }
        size_t got = fread(text + size, 1, 4096, f);
        size += got;
        if (got < 4096)
            break;
    }
    fclose(f);
    text[size] = '\0';
    return text;
}

static int start_wa_server(gateway__routes *r, anm_bus *bus, anm_clock *clock,
                           anm_error_detail *detail)
{
    const gateway_wa_settings *c = &r->cfg->wider_access;
    int rc = make_signer(c, &r->server_signer, detail);
    if (rc == ANM_OK)
        rc = make_verifier(c, &r->server_verifier, detail);
    if (rc != ANM_OK)
        return rc;
    char *key = NULL, *cert = NULL;
    if (c->tls_key_file[0] == '\0' || (key = read_text(c->tls_key_file)) == NULL ||
        c->tls_cert_file[0] == '\0' || (cert = read_text(c->tls_cert_file)) == NULL) {
        anm_error_detail_set(detail, NULL, 0, 0,
                             key == NULL ? "wider_access.tls_key_file"
                                         : "wider_access.tls_cert_file",
                             "could not read the endpoint's TLS key or certificate");
        free(key);
        return ANM_ECONFIG;
    }
    rc = anm_socket_new(bus, ANM_SOCKET_PUB, c->publish_endpoint, NULL, &r->wa_pub, detail);
    if (rc == ANM_OK) {
        anm_socket_last_endpoint(r->wa_pub, r->wa_pub_endpoint, sizeof r->wa_pub_endpoint);
        rc = gateway_wa_bus_adapter_new(r->wa_pub, &r->adapter);
    }
    if (rc == ANM_OK) {
        gateway_wa_server_config sc;
        memset(&sc, 0, sizeof sc);
        sc.bind_address = c->bind_address;
        sc.port = (int)c->port;
        sc.tls_key_pem = key;
        sc.tls_cert_pem = cert;
        sc.paths[GATEWAY_WA_INSTRUCTION] =
            c->instruction_path[0] ? c->instruction_path : "/wa/v1/instruction";
        sc.paths[GATEWAY_WA_NORMALISATION] =
            c->normalisation_path[0] ? c->normalisation_path : "/wa/v1/normalisation";
        sc.sender = c->sender;
        sc.signer = r->server_signer;
        sc.verifier = r->server_verifier;
        sc.handler = gateway_wa_bus_handler;
        sc.user = r->adapter;
        sc.clock = clock;
        rc = gateway_wa_server_start(&sc, &r->wa_server, detail);
    }
    free(key);
    free(cert);
    if (rc == ANM_OK)
        anm_log_info(COMPONENT, "wider access endpoint on port %d, publishing on \"%s\"",
                     gateway_wa_server_port(r->wa_server), r->wa_pub_endpoint);
    return rc;
}

void gateway__routes_destroy(gateway__routes **rp)
{
    if (rp == NULL || *rp == NULL)
        return;
    gateway__routes *r = *rp;
    gateway_wa_server_stop(&r->wa_server);
    gateway_wa_bus_adapter_destroy(&r->adapter);
    anm_socket_destroy(&r->wa_pub);
    gateway_jws_signer_destroy(&r->server_signer);
    gateway_jws_verifier_destroy(&r->server_verifier);
    wa_client_route_destroy(&r->wa_client);
    mqtt_route_destroy(&r->mqtt);
    gateway__dc_route_destroy(&r->dc);
    free(r);
    *rp = NULL;
}

int gateway__routes_new(const gateway_config *cfg, anm_bus *bus, const gateway_proforma *proforma,
                        anm_clock *clock, gateway__routes **out, anm_error_detail *detail)
{
    *out = NULL;
    gateway__routes *r = calloc(1, sizeof *r);
    if (r == NULL)
        return ANM_ENOMEM;
    r->cfg = cfg;
    r->proforma = proforma;
    int rc = ANM_OK;
    if (cfg->mqtt.enabled)
        rc = mqtt_route_new(&cfg->mqtt, &r->mqtt, detail);
    if (rc == ANM_OK && cfg->wider_access.enabled) {
        if (cfg->wider_access.base_url[0] == '\0') {
            anm_error_detail_set(detail, NULL, 0, 0, "wider_access.base_url",
                                 "required when wider_access.enabled is true");
            rc = ANM_ECONFIG;
        } else {
            rc = wa_client_route_new(&cfg->wider_access, &r->wa_client, detail);
        }
    }
    if (rc == ANM_OK && cfg->wider_access.server_enabled)
        rc = start_wa_server(r, bus, clock, detail);
    if (rc == ANM_OK && cfg->data_concentrator.enabled)
        rc = gateway__dc_route_new(&cfg->data_concentrator, proforma, &r->dc, detail);
    if (rc != ANM_OK) {
        gateway__routes_destroy(&r);
        return rc;
    }
    *out = r;
    return ANM_OK;
}

static const char *unit_of(const gateway__routes *r, const gateway_proforma_point *pt)
{
    if (pt->der == NULL)
        return pt->zone;
    int i = gateway_proforma_der_index(r->proforma, pt->der);
    const gateway_proforma_der *d = i >= 0 ? gateway_proforma_der_at(r->proforma, (size_t)i) : NULL;
    return d != NULL && d->unit != NULL && d->unit[0] != '\0' ? d->unit : pt->der;
}

/* Commissioning: each availability value of the test pattern becomes a
   redeclaration marked "test": true for the next half hour. */
static void wa_test_redeclarations(gateway__routes *r, const gateway_export_value *values,
                                   size_t n)
{
    size_t pushed = 0;
    for (size_t i = 0; i < n; i++) {
        const gateway_export_value *v = &values[i];
        if (!v->test || v->point->quantity != GATEWAY_QUANTITY_AVAILABILITY_MW ||
            !isfinite(v->sent))
            continue;
        char id[64], from[32], to[32];
        int64_t now = anm_wall_clock_ms();
        snprintf(id, sizeof id, "test-%lld-%llu", (long long)now,
                 (unsigned long long)++r->wa_sequence);
        anm_time_format_utc(now, from, sizeof from);
        anm_time_format_utc(now + 30 * 60 * 1000, to, sizeof to);
        json_t *msg = gateway_wa_message_new(GATEWAY_WA_REDECLARATION, id,
                                             r->cfg->wider_access.sender, now, 1);
        if (msg == NULL)
            continue;
        json_object_set_new(msg, "bmu", json_string(unit_of(r, v->point)));
        json_object_set_new(msg, "effective_from", json_string(from));
        json_object_set_new(msg, "effective_to", json_string(to));
        json_object_set_new(msg, "availability_mw", json_real(v->sent < 0 ? 0.0 : v->sent));
        json_object_set_new(msg, "quality", json_string("good"));
        json_object_set_new(msg, "reason", json_string("commissioning test pattern"));
        gateway_wa_reject why;
        if (gateway_wa_validate(msg, NULL, &why) != ANM_OK) {
            anm_log_error(COMPONENT, "test redeclaration not sent: %s", why.text);
            json_decref(msg);
            continue;
        }
        wa_client_route_push(r->wa_client, msg, 1);
        pushed++;
    }
    if (pushed > 0)
        wa_client_route_flush(r->wa_client);
}

void gateway__routes_values(gateway__routes *r, const gateway_export_value *values, size_t n)
{
    if (r == NULL)
        return;
    gateway__dc_route_values(r->dc, values, n);
    if (r->wa_client != NULL)
        wa_test_redeclarations(r, values, n);
    if (r->mqtt == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        const gateway_export_value *v = &values[i];
        if (v->point->mqtt_topic == NULL || !isfinite(v->sent))
            continue; /* not on MQTT; no value: nothing to publish (quality only on IEC 104) */
        mqtt_item it;
        memset(&it, 0, sizeof it);
        snprintf(it.topic, sizeof it.topic, "%s", v->point->mqtt_topic);
        snprintf(it.unit, sizeof it.unit, "%s", unit_of(r, v->point));
        snprintf(it.quantity, sizeof it.quantity, "%s",
                 gateway_quantity_name((gateway_quantity)v->point->quantity));
        snprintf(it.quality, sizeof it.quality, "%s", gateway_proforma_quality_name(v->flags));
        it.signal_id = (uint32_t)v->point_index;
        it.utc_ms = v->utc_ms;
        it.value = v->sent;
        it.test = v->test;
        mqtt_route_push(r->mqtt, &it);
    }
}

void gateway__routes_redeclarations(gateway__routes *r, const gateway_redeclaration *events,
                                    size_t n)
{
    if (r == NULL)
        return;
    gateway__dc_route_redeclarations(r->dc, events, n);
    if (r->wa_client == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        const gateway_redeclaration *ev = &events[i];
        char id[64], from[32], to[32], reason[256];
        int64_t now = anm_wall_clock_ms();
        snprintf(id, sizeof id, "redec-%lld-%llu", (long long)now,
                 (unsigned long long)++r->wa_sequence);
        anm_time_format_utc(ev->utc_start_ms, from, sizeof from);
        anm_time_format_utc(ev->utc_end_ms, to, sizeof to);
        snprintf(reason, sizeof reason, "constraint statement %s version %ld, period %d",
                 ev->statement_id, ev->statement_version, ev->period);
        json_t *msg = gateway_wa_message_new(GATEWAY_WA_REDECLARATION, id,
                                             r->cfg->wider_access.sender, now, 0);
        if (msg == NULL)
            continue;
        /* availability below 0 cannot be declared: sent as 0, flagged */
        int flagged = !(ev->available_mw >= 0.0);
        json_object_set_new(msg, "bmu", json_string(ev->unit[0] ? ev->unit : ev->der));
        json_object_set_new(msg, "effective_from", json_string(from));
        json_object_set_new(msg, "effective_to", json_string(to));
        json_object_set_new(msg, "availability_mw", json_real(flagged ? 0.0 : ev->available_mw));
        json_object_set_new(msg, "quality", json_string(flagged ? "flagged" : "good"));
        json_object_set_new(msg, "reason", json_string(reason));
        gateway_wa_reject why;
        if (gateway_wa_validate(msg, NULL, &why) != ANM_OK) {
            anm_log_error(COMPONENT, "redeclaration of \"%s\" not sent: %s", ev->der, why.text);
            json_decref(msg);
            continue;
        }
        wa_client_route_push(r->wa_client, msg, 0);
    }
    wa_client_route_flush(r->wa_client);
}

void gateway__routes_status(gateway__routes *r, json_t *routes)
{
    if (r == NULL)
        return;
    if (r->mqtt != NULL) {
        pthread_mutex_lock(&r->mqtt->lock);
        size_t queued = r->mqtt->count;
        pthread_mutex_unlock(&r->mqtt->lock);
        json_t *o = stats_json(&r->mqtt->stats, "mqtt_publisher");
        /* backlog: spooled and not acknowledged, plus not yet spooled */
        json_object_set_new(
            o, "backlog",
            json_integer(json_integer_value(json_object_get(o, "backlog")) + (json_int_t)queued));
        json_object_set_new(routes, "mqtt", o);
    }
    if (r->dc != NULL) {
        json_t *o = gateway__dc_route_status(r->dc);
        if (o != NULL)
            json_object_set_new(routes, "data_concentrator", o);
    }
    if (r->wa_client != NULL)
        json_object_set_new(routes, "wider_access_client",
                            stats_json(&r->wa_client->stats, "wider_access_client"));
    if (r->wa_server != NULL) {
        gateway_wa_server_stats st;
        gateway_wa_server_get_stats(r->wa_server, &st);
        json_object_set_new(
            routes, "wider_access_server",
            json_pack("{s:s,s:i,s:s,s:I,s:I,s:I,s:s,s:n,s:n,s:n,s:i}", "kind",
                      "wider_access_server", "port", gateway_wa_server_port(r->wa_server),
                      "publish_endpoint", r->wa_pub_endpoint, "handed_over",
                      (json_int_t)st.accepted, "duplicates", (json_int_t)st.duplicates, "errors",
                      (json_int_t)st.rejected, "last_error", st.last_reason, "last_handover",
                      "latency_p50_ms", "latency_p99_ms", "backlog", 0));
    }
}

int gateway__routes_wa_port(const gateway__routes *r)
{
    return r != NULL && r->wa_server != NULL ? gateway_wa_server_port(r->wa_server) : 0;
}

const char *gateway__routes_wa_publish_endpoint(const gateway__routes *r)
{
    return r != NULL ? r->wa_pub_endpoint : "";
}
