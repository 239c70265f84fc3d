/* iec104_link.c: the IEC 104 link-layer state machine (see iec104_link.h). */
#include "gateway/iec104_link.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_CAPACITY 128
#define FEED_EVENT_LIMIT 64             /* feed stops consuming at this many waiting events */
#define FEED_OUTPUT_LIMIT (64u * 1024u) /* ... or this much unsent output */

typedef struct pending_slot {
    int64_t sent_ms;   /* when the I-frame went out (unacked slots only) */
    uint16_t sequence; /* its N(S) */
    uint8_t size;
    uint8_t data[GATEWAY_IEC104_MAX_ASDU];
} pending_slot;

struct gateway_iec104_link {
    gateway_iec104_link_config config;
    gateway_iec104_link_state state;
    uint16_t send_sequence;    /* V(S) */
    uint16_t receive_sequence; /* V(R) */
    uint16_t ack_sequence;     /* V(A): oldest sent, unacknowledged */
    int touched;               /* anything sent or received yet */

    /* submitted ASDUs: slots[head .. head+unacked) sent, the rest queued */
    pending_slot *slots;
    size_t slot_capacity; /* power of two */
    size_t head;
    size_t count;
    size_t unacked;

    /* receive side */
    unsigned received_unacked; /* I-frames received since our last ack */
    int64_t t2_deadline;       /* INT64_MAX: not running */
    int64_t last_receive_ms;   /* t3 runs from here */

    /* U-frame acts awaiting their con (t1) */
    int64_t control_deadline; /* STARTDT/STOPDT act sent by the client */
    int64_t testfr_deadline;  /* TESTFR act sent */
    uint64_t testfr_confirmed; /* TESTFR con received */

    gateway_iec104_reassembler reassembler;

    uint8_t *output;
    size_t output_start;
    size_t output_end;
    size_t output_capacity;

    gateway_iec104_event *events;
    size_t event_head;
    size_t event_count;
};

static const int64_t NEVER = INT64_MAX;

/* ---- config -------------------------------------------------------------------- */

void gateway_iec104_link_config_default(gateway_iec104_link_config *config,
                                        gateway_iec104_role role)
{
    if (config == NULL)
        return;
    memset(config, 0, sizeof *config);
    config->role = role;
    config->k = 12;
    config->w = 8;
    config->t1_s = 15;
    config->t2_s = 10;
    config->t3_s = 20;
    config->max_queue_bytes = 16u * 1024u * 1024u;
}

int gateway_iec104_link_config_check(const gateway_iec104_link_config *config,
                                     anm_error_detail *detail)
{
    if (config == NULL)
        return ANM_EINVAL;
    const char *field = NULL;
    const char *why = "";
    if (config->role != GATEWAY_IEC104_CONTROLLING && config->role != GATEWAY_IEC104_CONTROLLED)
        field = "role", why = "must be controlling or controlled";
    else if (config->k < 1 || config->k > 32767)
        field = "k", why = "must be in 1..32767";
    else if (config->w < 1 || config->w > 32767)
        field = "w", why = "must be in 1..32767";
    else if (config->t1_s < 1 || config->t1_s > 255)
        field = "t1_s", why = "must be in 1..255";
    else if (config->t2_s < 1 || config->t2_s > 255)
        field = "t2_s", why = "must be in 1..255";
    else if (config->t2_s >= config->t1_s)
        field = "t2_s", why = "must be less than t1_s";
    else if (config->t3_s < 1 || config->t3_s > 255)
        field = "t3_s", why = "must be in 1..255";
    else if (config->max_queue_bytes < sizeof(pending_slot))
        field = "max_queue_bytes", why = "must hold at least one asdu";
    if (field != NULL) {
        anm_error_detail_set(detail, NULL, 0, 0, field, "%s %s", field, why);
        return ANM_ECONFIG;
    }
    return ANM_OK;
}

const char *gateway_iec104_link_state_name(gateway_iec104_link_state state)
{
    switch (state) {
    case GATEWAY_IEC104_LINK_STOPPED: return "stopped";
    case GATEWAY_IEC104_LINK_START_PENDING: return "start pending";
    case GATEWAY_IEC104_LINK_STARTED: return "started";
    case GATEWAY_IEC104_LINK_STOP_PENDING: return "stop pending";
    case GATEWAY_IEC104_LINK_CLOSED: return "closed";
    }
    return "unknown";
}

/* ---- lifecycle ------------------------------------------------------------------- */

int gateway_iec104_link_new(const gateway_iec104_link_config *config, int64_t now_ms,
                            gateway_iec104_link **out, anm_error_detail *detail)
{
    if (config == NULL || out == NULL)
        return ANM_EINVAL;
    *out = NULL;
    int rc = gateway_iec104_link_config_check(config, detail);
    if (rc != ANM_OK)
        return rc;
    gateway_iec104_link *link = calloc(1, sizeof *link);
    if (link == NULL)
        return ANM_ENOMEM;
    link->config = *config;
    link->state = GATEWAY_IEC104_LINK_STOPPED;
    link->t2_deadline = NEVER;
    link->control_deadline = NEVER;
    link->testfr_deadline = NEVER;
    link->last_receive_ms = now_ms;
    gateway_iec104_reassembler_init(&link->reassembler);
    link->slot_capacity = 16;
    link->slots = malloc(link->slot_capacity * sizeof *link->slots);
    if (link->slots == NULL)
        goto fail_slots;
    link->events = malloc(EVENT_CAPACITY * sizeof *link->events);
    if (link->events == NULL)
        goto fail_events;
    link->output_capacity = 1024;
    link->output = malloc(link->output_capacity);
    if (link->output == NULL)
        goto fail_output;
    *out = link;
    return ANM_OK;

fail_output:
    free(link->events);
fail_events:
    free(link->slots);
fail_slots:
    free(link);
    return ANM_ENOMEM;
}

void gateway_iec104_link_destroy(gateway_iec104_link **link)
{
    if (link == NULL || *link == NULL)
        return;
    free((*link)->slots);
    free((*link)->events);
    free((*link)->output);
    free(*link);
    *link = NULL;
}

gateway_iec104_link_state gateway_iec104_link_get_state(const gateway_iec104_link *link)
{
    return link != NULL ? link->state : GATEWAY_IEC104_LINK_CLOSED;
}

uint16_t gateway_iec104_link_send_sequence(const gateway_iec104_link *link)
{
    return link->send_sequence;
}

uint16_t gateway_iec104_link_receive_sequence(const gateway_iec104_link *link)
{
    return link->receive_sequence;
}

uint16_t gateway_iec104_link_ack_sequence(const gateway_iec104_link *link)
{
    return link->ack_sequence;
}

int gateway_iec104_link_set_initial_sequence(gateway_iec104_link *link, uint16_t v)
{
    if (link == NULL || v >= GATEWAY_IEC104_SEQ_MODULO)
        return ANM_EINVAL;
    if (link->touched || link->count > 0)
        return ANM_ESTATE;
    link->send_sequence = v;
    link->receive_sequence = v;
    link->ack_sequence = v;
    return ANM_OK;
}

/* ---- events and output ----------------------------------------------------------- */

static gateway_iec104_event *push_event(gateway_iec104_link *link,
                                        gateway_iec104_event_kind kind)
{
    if (link->event_count == EVENT_CAPACITY)
        return NULL; /* cannot happen: feed stops at FEED_EVENT_LIMIT */
    gateway_iec104_event *event =
        &link->events[(link->event_head + link->event_count) % EVENT_CAPACITY];
    link->event_count++;
    event->kind = kind;
    event->asdu_size = 0;
    event->acked = 0;
    event->error = 0;
    event->reason[0] = '\0';
    return event;
}

int gateway_iec104_link_next_event(gateway_iec104_link *link, gateway_iec104_event *event)
{
    if (link == NULL || event == NULL || link->event_count == 0)
        return 0;
    const gateway_iec104_event *source = &link->events[link->event_head];
    event->kind = source->kind;
    event->asdu_size = source->asdu_size;
    memcpy(event->asdu, source->asdu, source->asdu_size);
    event->acked = source->acked;
    event->error = source->error;
    memcpy(event->reason, source->reason, sizeof event->reason);
    link->event_head = (link->event_head + 1) % EVENT_CAPACITY;
    link->event_count--;
    return 1;
}

static void close_link(gateway_iec104_link *link, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void close_link(gateway_iec104_link *link, int error, const char *fmt, ...)
{
    if (link->state == GATEWAY_IEC104_LINK_CLOSED)
        return;
    link->state = GATEWAY_IEC104_LINK_CLOSED;
    link->t2_deadline = NEVER;
    link->control_deadline = NEVER;
    link->testfr_deadline = NEVER;
    /* nothing more goes out; pending ASDUs stay for pending_get */
    link->output_start = link->output_end = 0;
    gateway_iec104_event *event = push_event(link, GATEWAY_IEC104_EVENT_CLOSED);
    if (event == NULL)
        return;
    event->error = error;
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(event->reason, sizeof event->reason, fmt, args);
    va_end(args);
    if (n < 0)
        event->reason[0] = '\0';
}

/* Reserves n bytes at the end of the output buffer; NULL on ENOMEM (link closed). */
static uint8_t *output_reserve(gateway_iec104_link *link, size_t n)
{
    if (link->output_start > 0 && link->output_start == link->output_end)
        link->output_start = link->output_end = 0;
    if (link->output_end + n > link->output_capacity && link->output_start > 0) {
        memmove(link->output, link->output + link->output_start,
                link->output_end - link->output_start);
        link->output_end -= link->output_start;
        link->output_start = 0;
    }
    if (link->output_end + n > link->output_capacity) {
        size_t capacity = link->output_capacity;
        while (link->output_end + n > capacity)
            capacity *= 2;
        uint8_t *grown = realloc(link->output, capacity);
        if (grown == NULL) {
            close_link(link, ANM_ENOMEM, "out of memory for output");
            return NULL;
        }
        link->output = grown;
        link->output_capacity = capacity;
    }
    uint8_t *p = link->output + link->output_end;
    link->output_end += n;
    return p;
}

const uint8_t *gateway_iec104_link_output(const gateway_iec104_link *link, size_t *size)
{
    if (link == NULL) {
        if (size != NULL)
            *size = 0;
        return NULL;
    }
    if (size != NULL)
        *size = link->output_end - link->output_start;
    return link->output + link->output_start;
}

void gateway_iec104_link_output_consume(gateway_iec104_link *link, size_t n)
{
    if (link == NULL)
        return;
    size_t available = link->output_end - link->output_start;
    if (n > available)
        n = available;
    link->output_start += n;
    if (link->output_start == link->output_end)
        link->output_start = link->output_end = 0;
}

static void send_u(gateway_iec104_link *link, uint8_t function)
{
    uint8_t *p = output_reserve(link, 6);
    if (p != NULL)
        (void)gateway_iec104_encode_u_frame(function, p, 6, NULL);
    link->touched = 1;
}

static void send_s(gateway_iec104_link *link)
{
    uint8_t *p = output_reserve(link, 6);
    if (p != NULL)
        (void)gateway_iec104_encode_s_frame(link->receive_sequence, p, 6, NULL);
    link->received_unacked = 0;
    link->t2_deadline = NEVER;
    link->touched = 1;
}

/* ---- pending queue --------------------------------------------------------------- */

static pending_slot *slot_at(const gateway_iec104_link *link, size_t index)
{
    return &link->slots[(link->head + index) & (link->slot_capacity - 1)];
}

static int slots_grow(gateway_iec104_link *link)
{
    size_t capacity = link->slot_capacity * 2;
    pending_slot *grown = malloc(capacity * sizeof *grown);
    if (grown == NULL)
        return ANM_ENOMEM;
    for (size_t i = 0; i < link->count; i++)
        grown[i] = *slot_at(link, i);
    free(link->slots);
    link->slots = grown;
    link->slot_capacity = capacity;
    link->head = 0;
    return ANM_OK;
}

static int may_send_i_frames(const gateway_iec104_link *link)
{
    return link->state == GATEWAY_IEC104_LINK_STARTED;
}

/* Sends queued ASDUs while data transfer is started and the k window allows. */
static void flush_queue(gateway_iec104_link *link, int64_t now_ms)
{
    while (may_send_i_frames(link) && link->unacked < (size_t)link->config.k &&
           link->unacked < link->count) {
        pending_slot *slot = slot_at(link, link->unacked);
        uint8_t *p = output_reserve(link, (size_t)slot->size + 6);
        if (p == NULL)
            return;
        (void)gateway_iec104_encode_i_frame(link->send_sequence, link->receive_sequence,
                                            slot->data, slot->size, p, (size_t)slot->size + 6,
                                            NULL);
        slot->sequence = link->send_sequence;
        slot->sent_ms = now_ms;
        link->send_sequence = (uint16_t)((link->send_sequence + 1) % GATEWAY_IEC104_SEQ_MODULO);
        link->unacked++;
        /* the I-frame carries N(R) = V(R): it acknowledges all we received */
        link->received_unacked = 0;
        link->t2_deadline = NEVER;
        link->touched = 1;
    }
}

int gateway_iec104_link_submit(gateway_iec104_link *link, const uint8_t *asdu, size_t size,
                               int64_t now_ms)
{
    if (link == NULL || asdu == NULL || size == 0 || size > GATEWAY_IEC104_MAX_ASDU)
        return ANM_EINVAL;
    if (link->state == GATEWAY_IEC104_LINK_CLOSED)
        return ANM_ESTATE;
    size_t queued = link->count - link->unacked;
    if ((queued + 1) * sizeof(pending_slot) > link->config.max_queue_bytes)
        return ANM_EFULL;
    if (link->count == link->slot_capacity && slots_grow(link) != ANM_OK)
        return ANM_ENOMEM;
    pending_slot *slot = slot_at(link, link->count);
    slot->size = (uint8_t)size;
    slot->sent_ms = 0;
    slot->sequence = 0;
    memcpy(slot->data, asdu, size);
    link->count++;
    flush_queue(link, now_ms);
    return ANM_OK;
}

size_t gateway_iec104_link_pending_count(const gateway_iec104_link *link)
{
    return link != NULL ? link->count : 0;
}

size_t gateway_iec104_link_unacked_count(const gateway_iec104_link *link)
{
    return link != NULL ? link->unacked : 0;
}

const uint8_t *gateway_iec104_link_pending_get(const gateway_iec104_link *link, size_t index,
                                               size_t *size)
{
    if (link == NULL || index >= link->count) {
        if (size != NULL)
            *size = 0;
        return NULL;
    }
    const pending_slot *slot = slot_at(link, index);
    if (size != NULL)
        *size = slot->size;
    return slot->data;
}

int gateway_iec104_link_discard_pending(gateway_iec104_link *link)
{
    if (link == NULL)
        return ANM_EINVAL;
    if (link->unacked > 0 && link->state != GATEWAY_IEC104_LINK_CLOSED)
        return ANM_ESTATE;
    link->head = 0;
    link->count = 0;
    link->unacked = 0;
    return ANM_OK;
}

/* ---- receive --------------------------------------------------------------------- */

static unsigned sequence_distance(uint16_t from, uint16_t to)
{
    return ((unsigned)to + GATEWAY_IEC104_SEQ_MODULO - from) % GATEWAY_IEC104_SEQ_MODULO;
}

static void finish_stop_if_drained(gateway_iec104_link *link)
{
    if (link->config.role == GATEWAY_IEC104_CONTROLLED &&
        link->state == GATEWAY_IEC104_LINK_STOP_PENDING && link->unacked == 0) {
        send_u(link, GATEWAY_IEC104_STOPDT_CON);
        link->state = GATEWAY_IEC104_LINK_STOPPED;
        push_event(link, GATEWAY_IEC104_EVENT_STOPPED);
    }
}

/* Processes N(R): 0, or the link is closed. */
static int process_ack(gateway_iec104_link *link, uint16_t receive_sequence, int64_t now_ms)
{
    unsigned outstanding = sequence_distance(link->ack_sequence, link->send_sequence);
    unsigned acked = sequence_distance(link->ack_sequence, receive_sequence);
    if (acked > outstanding) {
        close_link(link, ANM_EPROTO,
                   "bad n(r) %u: acknowledges frames not sent (oldest unacknowledged %u, next "
                   "to send %u)",
                   (unsigned)receive_sequence, (unsigned)link->ack_sequence,
                   (unsigned)link->send_sequence);
        return -1;
    }
    if (acked == 0)
        return 0;
    link->head = (link->head + acked) & (link->slot_capacity - 1);
    link->count -= acked;
    link->unacked -= acked;
    link->ack_sequence = receive_sequence;
    gateway_iec104_event *event = push_event(link, GATEWAY_IEC104_EVENT_ACKED);
    if (event != NULL)
        event->acked = acked;
    finish_stop_if_drained(link);
    flush_queue(link, now_ms);
    return 0;
}

static void receive_i_frame(gateway_iec104_link *link, const gateway_iec104_apdu *apdu,
                            int64_t now_ms)
{
    int accepting = link->state == GATEWAY_IEC104_LINK_STARTED ||
                    (link->state == GATEWAY_IEC104_LINK_STOP_PENDING &&
                     link->config.role == GATEWAY_IEC104_CONTROLLING);
    if (!accepting) {
        close_link(link, ANM_EPROTO, "i-frame n(s) %u received while data transfer is %s",
                   (unsigned)apdu->send_sequence, gateway_iec104_link_state_name(link->state));
        return;
    }
    if (apdu->send_sequence != link->receive_sequence) {
        close_link(link, ANM_EPROTO, "out-of-order n(s) %u, expected %u",
                   (unsigned)apdu->send_sequence, (unsigned)link->receive_sequence);
        return;
    }
    if (process_ack(link, apdu->receive_sequence, now_ms) != 0)
        return;
    link->receive_sequence =
        (uint16_t)((link->receive_sequence + 1) % GATEWAY_IEC104_SEQ_MODULO);
    gateway_iec104_event *event = push_event(link, GATEWAY_IEC104_EVENT_ASDU);
    if (event != NULL) {
        memcpy(event->asdu, apdu->asdu, apdu->asdu_size);
        event->asdu_size = apdu->asdu_size;
    }
    if (link->received_unacked == 0)
        link->t2_deadline = now_ms + (int64_t)link->config.t2_s * 1000;
    link->received_unacked++;
    if (link->received_unacked >= (unsigned)link->config.w ||
        link->state == GATEWAY_IEC104_LINK_STOP_PENDING)
        send_s(link);
}

static void receive_u_frame(gateway_iec104_link *link, uint8_t function, int64_t now_ms)
{
    int server = link->config.role == GATEWAY_IEC104_CONTROLLED;
    switch (function) {
    case GATEWAY_IEC104_TESTFR_ACT:
        send_u(link, GATEWAY_IEC104_TESTFR_CON);
        break;
    case GATEWAY_IEC104_TESTFR_CON:
        link->testfr_deadline = NEVER; /* an unsolicited con is harmless */
        link->testfr_confirmed++;
        break;
    case GATEWAY_IEC104_STARTDT_ACT:
        if (!server) {
            close_link(link, ANM_EPROTO, "STARTDT act received by the controlling station");
            return;
        }
        send_u(link, GATEWAY_IEC104_STARTDT_CON);
        if (link->state != GATEWAY_IEC104_LINK_STARTED) {
            link->state = GATEWAY_IEC104_LINK_STARTED;
            push_event(link, GATEWAY_IEC104_EVENT_STARTED);
        }
        flush_queue(link, now_ms);
        break;
    case GATEWAY_IEC104_STOPDT_ACT:
        if (!server) {
            close_link(link, ANM_EPROTO, "STOPDT act received by the controlling station");
            return;
        }
        if (link->received_unacked > 0)
            send_s(link);
        if (link->state == GATEWAY_IEC104_LINK_STOPPED) {
            send_u(link, GATEWAY_IEC104_STOPDT_CON);
        } else {
            link->state = GATEWAY_IEC104_LINK_STOP_PENDING;
            finish_stop_if_drained(link);
        }
        break;
    case GATEWAY_IEC104_STARTDT_CON:
        if (!server && link->state == GATEWAY_IEC104_LINK_START_PENDING) {
            link->control_deadline = NEVER;
            link->state = GATEWAY_IEC104_LINK_STARTED;
            push_event(link, GATEWAY_IEC104_EVENT_STARTED);
            flush_queue(link, now_ms);
        }
        break;
    case GATEWAY_IEC104_STOPDT_CON:
        if (!server && link->state == GATEWAY_IEC104_LINK_STOP_PENDING) {
            link->control_deadline = NEVER;
            if (link->received_unacked > 0)
                send_s(link);
            link->state = GATEWAY_IEC104_LINK_STOPPED;
            push_event(link, GATEWAY_IEC104_EVENT_STOPPED);
        }
        break;
    default:
        break; /* the decoder admits only the six functions */
    }
}

static void receive_apdu(gateway_iec104_link *link, const uint8_t *frame, size_t size,
                         int64_t now_ms)
{
    gateway_iec104_apdu apdu;
    anm_error_detail detail;
    anm_error_detail_clear(&detail);
    if (gateway_iec104_apdu_decode(frame, size, &apdu, &detail) != ANM_OK) {
        close_link(link, ANM_EPROTO, "bad frame: %s", detail.message);
        return;
    }
    link->touched = 1;
    link->last_receive_ms = now_ms;
    switch (apdu.format) {
    case GATEWAY_IEC104_FRAME_I:
        receive_i_frame(link, &apdu, now_ms);
        break;
    case GATEWAY_IEC104_FRAME_S:
        (void)process_ack(link, apdu.receive_sequence, now_ms);
        break;
    case GATEWAY_IEC104_FRAME_U:
        receive_u_frame(link, apdu.u_function, now_ms);
        break;
    }
}

int gateway_iec104_link_feed(gateway_iec104_link *link, const uint8_t *data, size_t size,
                             int64_t now_ms, size_t *consumed)
{
    if (consumed != NULL)
        *consumed = 0;
    if (link == NULL || (data == NULL && size > 0))
        return ANM_EINVAL;
    if (link->state == GATEWAY_IEC104_LINK_CLOSED)
        return ANM_ESTATE;
    size_t taken = 0;
    while (taken < size && link->state != GATEWAY_IEC104_LINK_CLOSED &&
           link->event_count < FEED_EVENT_LIMIT &&
           link->output_end - link->output_start < FEED_OUTPUT_LIMIT) {
        size_t used = 0;
        const uint8_t *frame = NULL;
        size_t frame_size = 0;
        anm_error_detail detail;
        anm_error_detail_clear(&detail);
        int rc = gateway_iec104_reassembler_push(&link->reassembler, data + taken, size - taken,
                                                 &used, &frame, &frame_size, &detail);
        taken += used;
        if (rc < 0) {
            close_link(link, ANM_EPROTO, "bad frame: %s", detail.message);
            break;
        }
        if (rc == 1)
            receive_apdu(link, frame, frame_size, now_ms);
    }
    if (consumed != NULL)
        *consumed = taken;
    return ANM_OK;
}

/* ---- control and timers ---------------------------------------------------------- */

int gateway_iec104_link_start(gateway_iec104_link *link, int64_t now_ms)
{
    if (link == NULL)
        return ANM_EINVAL;
    if (link->config.role != GATEWAY_IEC104_CONTROLLING ||
        link->state != GATEWAY_IEC104_LINK_STOPPED)
        return ANM_ESTATE;
    send_u(link, GATEWAY_IEC104_STARTDT_ACT);
    link->state = GATEWAY_IEC104_LINK_START_PENDING;
    link->control_deadline = now_ms + (int64_t)link->config.t1_s * 1000;
    return ANM_OK;
}

int gateway_iec104_link_stop(gateway_iec104_link *link, int64_t now_ms)
{
    if (link == NULL)
        return ANM_EINVAL;
    if (link->config.role != GATEWAY_IEC104_CONTROLLING ||
        link->state != GATEWAY_IEC104_LINK_STARTED)
        return ANM_ESTATE;
    if (link->received_unacked > 0)
        send_s(link);
    send_u(link, GATEWAY_IEC104_STOPDT_ACT);
    link->state = GATEWAY_IEC104_LINK_STOP_PENDING;
    link->control_deadline = now_ms + (int64_t)link->config.t1_s * 1000;
    return ANM_OK;
}

static int64_t t1_ms(const gateway_iec104_link *link)
{
    return (int64_t)link->config.t1_s * 1000;
}

static int64_t t3_deadline(const gateway_iec104_link *link)
{
    if (link->testfr_deadline != NEVER)
        return NEVER;
    return link->last_receive_ms + (int64_t)link->config.t3_s * 1000;
}

static int64_t earliest(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

int64_t gateway_iec104_link_tick(gateway_iec104_link *link, int64_t now_ms)
{
    if (link == NULL || link->state == GATEWAY_IEC104_LINK_CLOSED)
        return NEVER;
    if (link->unacked > 0) {
        const pending_slot *oldest = slot_at(link, 0);
        if (now_ms >= oldest->sent_ms + t1_ms(link)) {
            close_link(link, ANM_ETIMEOUT,
                       "t1 expired: i-frame n(s) %u not acknowledged within %d s",
                       (unsigned)oldest->sequence, link->config.t1_s);
            return NEVER;
        }
    }
    if (now_ms >= link->control_deadline) {
        close_link(link, ANM_ETIMEOUT, "t1 expired: no %s within %d s",
                   link->state == GATEWAY_IEC104_LINK_START_PENDING ? "STARTDT con"
                                                                    : "STOPDT con",
                   link->config.t1_s);
        return NEVER;
    }
    if (now_ms >= link->testfr_deadline) {
        close_link(link, ANM_ETIMEOUT, "t1 expired: no TESTFR con within %d s",
                   link->config.t1_s);
        return NEVER;
    }
    if (now_ms >= link->t2_deadline)
        send_s(link);
    if (now_ms >= t3_deadline(link)) {
        send_u(link, GATEWAY_IEC104_TESTFR_ACT);
        link->testfr_deadline = now_ms + t1_ms(link);
    }
    return gateway_iec104_link_next_deadline(link);
}

int64_t gateway_iec104_link_next_deadline(const gateway_iec104_link *link)
{
    if (link == NULL || link->state == GATEWAY_IEC104_LINK_CLOSED)
        return NEVER;
    int64_t next = NEVER;
    if (link->unacked > 0)
        next = earliest(next, slot_at(link, 0)->sent_ms + t1_ms(link));
    next = earliest(next, link->control_deadline);
    next = earliest(next, link->testfr_deadline);
    next = earliest(next, link->t2_deadline);
    next = earliest(next, t3_deadline(link));
    return next;
}

uint64_t gateway_iec104_link_testfr_confirmed(const gateway_iec104_link *link)
{
    return link != NULL ? link->testfr_confirmed : 0;
}
