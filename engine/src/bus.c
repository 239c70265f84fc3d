/* bus.c: the ZeroMQ layer (sockets, multipart messages) and the JSON envelope. */
#include "engine/bus.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "engine/clock.h"
#include "engine/log.h"

#define COMPONENT "bus"

struct anm_bus {
    void *context;
};

struct anm_socket {
    void *handle;
    anm_socket_type type;
};

struct anm_msg {
    size_t n_parts;
    zmq_msg_t parts[ANM_MSG_MAX_PARTS];
};

/* ---- errors -------------------------------------------------------------- */

static int convert_zmq_errno(int err)
{
    switch (err) {
    case EAGAIN: return ANM_EAGAIN;
    case EINTR: return ANM_EAGAIN;
    case ENOMEM: return ANM_ENOMEM;
    case ETERM: return ANM_ESTATE;
    case EHOSTUNREACH: return ANM_ENOTFOUND;
    case EINVAL:
    case EPROTONOSUPPORT:
    case ENOCOMPATPROTO: return ANM_ECONFIG;
    default: return ANM_ENET;
    }
}

/* ---- context ----------------------------------------------------------- */

int anm_bus_new(anm_bus **out)
{
    int rc = ANM_ENOMEM;
    *out = NULL;
    anm_bus *bus = calloc(1, sizeof *bus);
    if (bus == NULL)
        goto fail;
    bus->context = zmq_ctx_new();
    if (bus->context == NULL) {
        anm_log_error(COMPONENT, "could not create zeromq context: %s", zmq_strerror(zmq_errno()));
        rc = ANM_ENET;
        goto free_bus;
    }
    *out = bus;
    return ANM_OK;
free_bus:
    free(bus);
fail:
    return rc;
}

void anm_bus_destroy(anm_bus **bus)
{
    if (bus == NULL || *bus == NULL)
        return;
    while (zmq_ctx_term((*bus)->context) != 0 && zmq_errno() == EINTR) {
    }
    free(*bus);
    *bus = NULL;
}

/* ---- sockets ----------------------------------------------------------- */

const char *anm_socket_type_name(anm_socket_type type)
{
    switch (type) {
    case ANM_SOCKET_PUB: return "pub";
    case ANM_SOCKET_SUB: return "sub";
    case ANM_SOCKET_ROUTER: return "router";
    case ANM_SOCKET_DEALER: return "dealer";
    case ANM_SOCKET_PUSH: return "push";
    case ANM_SOCKET_PULL: return "pull";
    }
    return "unknown";
}

static int zmq_type_of(anm_socket_type type)
{
    switch (type) {
    case ANM_SOCKET_PUB: return ZMQ_PUB;
    case ANM_SOCKET_SUB: return ZMQ_SUB;
    case ANM_SOCKET_ROUTER: return ZMQ_ROUTER;
    case ANM_SOCKET_DEALER: return ZMQ_DEALER;
    case ANM_SOCKET_PUSH: return ZMQ_PUSH;
    case ANM_SOCKET_PULL: return ZMQ_PULL;
    }
    return -1;
}

static int binds_by_default(anm_socket_type type)
{
    return type == ANM_SOCKET_PUB || type == ANM_SOCKET_ROUTER || type == ANM_SOCKET_PULL;
}

void anm_socket_options_default(anm_socket_options *options)
{
    memset(options, 0, sizeof *options);
    options->linger_ms = 0;
    options->send_timeout_ms = -1;
    options->router_mandatory = 1;
}

static int set_int_option(anm_socket *socket, int option, int value, const char *name,
                          anm_error_detail *detail)
{
    if (zmq_setsockopt(socket->handle, option, &value, sizeof value) != 0) {
        int err = zmq_errno();
        anm_error_detail_set(detail, NULL, 0, 0, name, "could not set %s to %d: %s", name, value,
                             zmq_strerror(err));
        anm_logf(detail != NULL ? ANM_LOG_DEBUG : ANM_LOG_ERROR, COMPONENT,
                 "could not set %s to %d: %s", name, value, zmq_strerror(err));
        return ANM_ECONFIG;
    }
    return ANM_OK;
}

static int apply_options(anm_socket *socket, const anm_socket_options *o, anm_error_detail *detail)
{
    int rc = set_int_option(socket, ZMQ_LINGER, o->linger_ms, "linger_ms", detail);
    if (rc == ANM_OK && o->send_hwm > 0)
        rc = set_int_option(socket, ZMQ_SNDHWM, o->send_hwm, "send_hwm", detail);
    if (rc == ANM_OK && o->recv_hwm > 0)
        rc = set_int_option(socket, ZMQ_RCVHWM, o->recv_hwm, "recv_hwm", detail);
    if (rc == ANM_OK)
        rc = set_int_option(socket, ZMQ_SNDTIMEO, o->send_timeout_ms, "send_timeout_ms", detail);
    if (rc == ANM_OK && o->max_message_bytes > 0) {
        int64_t max = o->max_message_bytes;
        if (zmq_setsockopt(socket->handle, ZMQ_MAXMSGSIZE, &max, sizeof max) != 0) {
            anm_error_detail_set(detail, NULL, 0, 0, "max_message_bytes",
                                 "could not set max_message_bytes: %s", zmq_strerror(zmq_errno()));
            rc = ANM_ECONFIG;
        }
    }
    if (rc == ANM_OK && socket->type == ANM_SOCKET_ROUTER && o->router_mandatory)
        rc = set_int_option(socket, ZMQ_ROUTER_MANDATORY, 1, "router_mandatory", detail);
    if (rc == ANM_OK && o->identity != NULL) {
        size_t len = strlen(o->identity);
        if (len == 0 || len > 255 || o->identity[0] == '\0' ||
            zmq_setsockopt(socket->handle, ZMQ_ROUTING_ID, o->identity, len) != 0) {
            anm_error_detail_set(detail, NULL, 0, 0, "identity",
                                 "invalid identity \"%s\": 1 to 255 bytes", o->identity);
            rc = ANM_ECONFIG;
        }
    }
    return rc;
}

static int attach(anm_socket *socket, const char *endpoint, int bind, anm_error_detail *detail)
{
    int status = bind ? zmq_bind(socket->handle, endpoint) : zmq_connect(socket->handle, endpoint);
    if (status == 0)
        return ANM_OK;
    int err = zmq_errno();
    const char *verb = bind ? "bind" : "connect";
    anm_error_detail_set(detail, NULL, 0, 0, endpoint, "could not %s %s socket to \"%s\": %s",
                         verb, anm_socket_type_name(socket->type), endpoint, zmq_strerror(err));
    /* with a detail the caller reports the failure; without one, log it here */
    anm_logf(detail != NULL ? ANM_LOG_DEBUG : ANM_LOG_ERROR, COMPONENT,
             "could not %s %s socket to \"%s\": %s", verb, anm_socket_type_name(socket->type),
             endpoint, zmq_strerror(err));
    int rc = convert_zmq_errno(err);
    return rc == ANM_ECONFIG || rc == ANM_ENOMEM ? rc : ANM_ENET;
}

int anm_socket_bind(anm_socket *socket, const char *endpoint, anm_error_detail *detail)
{
    return attach(socket, endpoint, 1, detail);
}

int anm_socket_connect(anm_socket *socket, const char *endpoint, anm_error_detail *detail)
{
    return attach(socket, endpoint, 0, detail);
}

/* Binds/connects every entry of a comma-separated endpoint list. */
static int attach_all(anm_socket *socket, const char *endpoints, anm_error_detail *detail)
{
    const char *p = endpoints;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char endpoint[512];
        int bind = binds_by_default(socket->type);
        if (len > 0 && (p[0] == '@' || p[0] == '>')) {
            bind = p[0] == '@';
            p++;
            len--;
        }
        if (len == 0 || len >= sizeof endpoint) {
            anm_error_detail_set(detail, NULL, 0, 0, endpoints,
                                 "invalid endpoint list \"%s\": %s entry", endpoints,
                                 len == 0 ? "empty" : "too long an");
            return ANM_ECONFIG;
        }
        memcpy(endpoint, p, len);
        endpoint[len] = '\0';
        int rc = attach(socket, endpoint, bind, detail);
        if (rc != ANM_OK)
            return rc;
        p += len;
        if (*p == ',')
            p++;
    }
    return ANM_OK;
}

int anm_socket_new(anm_bus *bus, anm_socket_type type, const char *endpoints,
                   const anm_socket_options *options, anm_socket **out,
                   anm_error_detail *detail)
{
    int rc = ANM_ENOMEM;
    anm_socket_options defaults;
    *out = NULL;
    if (options == NULL) {
        anm_socket_options_default(&defaults);
        options = &defaults;
    }
    int zmq_type = zmq_type_of(type);
    if (zmq_type < 0) {
        anm_error_detail_set(detail, NULL, 0, 0, NULL, "invalid socket type %d", (int)type);
        return ANM_EINVAL;
    }
    anm_socket *socket = calloc(1, sizeof *socket);
    if (socket == NULL)
        goto fail;
    socket->type = type;
    socket->handle = zmq_socket(bus->context, zmq_type);
    if (socket->handle == NULL) {
        int err = zmq_errno();
        anm_error_detail_set(detail, NULL, 0, 0, NULL, "could not create %s socket: %s",
                             anm_socket_type_name(type), zmq_strerror(err));
        anm_log_error(COMPONENT, "could not create %s socket: %s", anm_socket_type_name(type),
                      zmq_strerror(err));
        rc = err == EMFILE ? ANM_EIO : convert_zmq_errno(err);
        goto free_socket;
    }
    rc = apply_options(socket, options, detail);
    if (rc != ANM_OK)
        goto close_socket;
    if (endpoints != NULL) {
        rc = attach_all(socket, endpoints, detail);
        if (rc != ANM_OK)
            goto close_socket;
    }
    *out = socket;
    return ANM_OK;
close_socket:
    zmq_close(socket->handle);
free_socket:
    free(socket);
fail:
    return rc;
}

void anm_socket_destroy(anm_socket **socket)
{
    if (socket == NULL || *socket == NULL)
        return;
    zmq_close((*socket)->handle);
    free(*socket);
    *socket = NULL;
}

int anm_socket_last_endpoint(anm_socket *socket, char *buf, size_t size)
{
    char endpoint[512];
    size_t len = sizeof endpoint;
    if (zmq_getsockopt(socket->handle, ZMQ_LAST_ENDPOINT, endpoint, &len) != 0)
        return convert_zmq_errno(zmq_errno());
    endpoint[sizeof endpoint - 1] = '\0';
    int n = snprintf(buf, size, "%s", endpoint);
    return n < 0 || (size_t)n >= size ? ANM_ERANGE : ANM_OK;
}

static int filter(anm_socket *socket, int option, const char *prefix)
{
    if (socket->type != ANM_SOCKET_SUB)
        return ANM_EINVAL;
    if (zmq_setsockopt(socket->handle, option, prefix, strlen(prefix)) != 0) {
        anm_log_error(COMPONENT, "could not change subscription \"%s\": %s", prefix,
                      zmq_strerror(zmq_errno()));
        return convert_zmq_errno(zmq_errno());
    }
    return ANM_OK;
}

int anm_socket_subscribe(anm_socket *socket, const char *prefix)
{
    return filter(socket, ZMQ_SUBSCRIBE, prefix);
}

int anm_socket_unsubscribe(anm_socket *socket, const char *prefix)
{
    return filter(socket, ZMQ_UNSUBSCRIBE, prefix);
}

anm_socket_type anm_socket_get_type(const anm_socket *socket)
{
    return socket->type;
}

void *anm_socket_handle(anm_socket *socket)
{
    return socket->handle;
}

/* ---- send and receive ---------------------------------------------------- */

static int io_error(anm_socket *socket, const char *verb)
{
    int err = zmq_errno();
    int rc = convert_zmq_errno(err);
    if (rc == ANM_EAGAIN || rc == ANM_ENOTFOUND)
        return rc; /* expected conditions, the caller decides whether to log */
    anm_log_error(COMPONENT, "could not %s on %s socket: %s", verb,
                  anm_socket_type_name(socket->type), zmq_strerror(err));
    return rc == ANM_ECONFIG ? ANM_ENET : rc;
}

int anm_socket_send(anm_socket *socket, const anm_frame *frames, size_t n_frames, int flags)
{
    if (n_frames == 0)
        return ANM_EINVAL;
    int base = (flags & ANM_BUS_DONTWAIT) ? ZMQ_DONTWAIT : 0;
    for (size_t i = 0; i < n_frames; i++) {
        int more = i + 1 < n_frames ? ZMQ_SNDMORE : 0;
        /* ZeroMQ queues a multipart message atomically: once the first part is
         * accepted the others are too, so a failure can only happen on part 0
         * (or on a ROUTER's unknown route, which drops the whole message). */
        if (zmq_send(socket->handle, frames[i].data, frames[i].size, base | more) < 0)
            return io_error(socket, "send");
    }
    return ANM_OK;
}

int anm_socket_recv(anm_socket *socket, anm_msg **out, int flags)
{
    int rc = ANM_ENOMEM;
    *out = NULL;
    anm_msg *msg = calloc(1, sizeof *msg);
    if (msg == NULL)
        return ANM_ENOMEM;
    int zflags = (flags & ANM_BUS_DONTWAIT) ? ZMQ_DONTWAIT : 0;
    int too_many = 0;
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, socket->handle, msg->n_parts == 0 && !too_many ? zflags : 0) < 0) {
            zmq_msg_close(&part);
            rc = io_error(socket, "receive");
            goto free_msg;
        }
        int more = zmq_msg_more(&part);
        if (msg->n_parts < ANM_MSG_MAX_PARTS) {
            msg->parts[msg->n_parts++] = part;
        } else {
            too_many = 1;
            zmq_msg_close(&part);
        }
        if (!more)
            break;
    }
    if (too_many) {
        anm_log_warn(COMPONENT, "dropped a message of more than %d parts on %s socket",
                     ANM_MSG_MAX_PARTS, anm_socket_type_name(socket->type));
        rc = ANM_EPROTO;
        goto free_msg;
    }
    *out = msg;
    return ANM_OK;
free_msg:
    anm_msg_destroy(&msg);
    return rc;
}

void anm_msg_destroy(anm_msg **msg)
{
    if (msg == NULL || *msg == NULL)
        return;
    for (size_t i = 0; i < (*msg)->n_parts; i++)
        zmq_msg_close(&(*msg)->parts[i]);
    free(*msg);
    *msg = NULL;
}

size_t anm_msg_parts(const anm_msg *msg)
{
    return msg->n_parts;
}

const void *anm_msg_part(const anm_msg *msg, size_t i, size_t *size)
{
    if (i >= msg->n_parts) {
        *size = 0;
        return NULL;
    }
    /* zmq_msg_data/size take non-const pointers but do not modify the message */
    zmq_msg_t *part = (zmq_msg_t *)(uintptr_t)&msg->parts[i];
    *size = zmq_msg_size(part);
    return zmq_msg_data(part);
}

/* ---- schemas ------------------------------------------------------------- */

#define U32_MAX_JSON ((json_int_t)4294967295LL)
#define END_FIELDS {NULL, ANM_FIELD_STRING, 0, 0, 0}

static const anm_field_spec telemetry_batch_fields[] = {
    {"sender_id", ANM_FIELD_INTEGER, 1, 0, U32_MAX_JSON},
    {"seq", ANM_FIELD_INTEGER, 1, 0, LLONG_MAX},
    {"flags", ANM_FIELD_INTEGER, 0, 0, 255},
    {"samples", ANM_FIELD_ARRAY, 1, 0, 0},
    END_FIELDS,
};

static const anm_field_spec telemetry_ack_fields[] = {
    {"sender_id", ANM_FIELD_INTEGER, 1, 0, U32_MAX_JSON},
    {"seq", ANM_FIELD_INTEGER, 1, 0, LLONG_MAX},
    {"count", ANM_FIELD_INTEGER, 0, 0, U32_MAX_JSON},
    END_FIELDS,
};

static const anm_field_spec telemetry_reject_fields[] = {
    {"sender_id", ANM_FIELD_INTEGER, 0, 0, U32_MAX_JSON},
    {"seq", ANM_FIELD_INTEGER, 0, 0, LLONG_MAX},
    {"code", ANM_FIELD_STRING, 1, 0, 0},
    {"text", ANM_FIELD_STRING, 1, 0, 0},
    END_FIELDS,
};

static const anm_field_spec signal_latest_fields[] = {
    {"zone", ANM_FIELD_STRING, 0, 0, 0},
    {"samples", ANM_FIELD_ARRAY, 1, 0, 0},
    END_FIELDS,
};

static const anm_field_spec status_request_fields[] = {
    {"id", ANM_FIELD_STRING, 0, 0, 0},
    END_FIELDS,
};

static const anm_field_spec ingest_status_fields[] = {
    {"id", ANM_FIELD_STRING, 0, 0, 0},
    {"time", ANM_FIELD_TIME, 1, 0, 0},
    {"journal_depth", ANM_FIELD_INTEGER, 1, 0, LLONG_MAX},
    {"rejects", ANM_FIELD_OBJECT, 1, 0, 0},
    END_FIELDS,
};

static const anm_bus_schema builtin_schemas[] = {
    {"telemetry.batch", 1, 16u << 20, 0, telemetry_batch_fields},
    {"telemetry.ack", 1, 4096, 0, telemetry_ack_fields},
    {"telemetry.reject", 1, 4096, 0, telemetry_reject_fields},
    {"signal.latest", 1, 16u << 20, 0, signal_latest_fields},
    {"ingest.status.request", 1, 4096, 0, status_request_fields},
    {"ingest.status", 1, 1u << 20, 1, ingest_status_fields},
};

const anm_bus_schema *anm_bus_schemas(size_t *count)
{
    *count = sizeof builtin_schemas / sizeof builtin_schemas[0];
    return builtin_schemas;
}

const anm_bus_schema *anm_bus_schema_find(const anm_bus_schema *table, size_t count,
                                          const char *kind, size_t kind_len)
{
    if (table == NULL)
        table = anm_bus_schemas(&count);
    for (size_t i = 0; i < count; i++) {
        if (strlen(table[i].kind) == kind_len && memcmp(table[i].kind, kind, kind_len) == 0)
            return &table[i];
    }
    return NULL;
}

const char *anm_bus_reason_code(anm_bus_reason reason)
{
    switch (reason) {
    case ANM_BUS_OK: return "ok";
    case ANM_BUS_BAD_ENVELOPE: return "bad_envelope";
    case ANM_BUS_OVERSIZED: return "oversized";
    case ANM_BUS_BAD_JSON: return "bad_json";
    case ANM_BUS_UNKNOWN_KIND: return "unknown_kind";
    case ANM_BUS_KIND_MISMATCH: return "kind_mismatch";
    case ANM_BUS_WRONG_VERSION: return "wrong_version";
    case ANM_BUS_MISSING_FIELD: return "missing_field";
    case ANM_BUS_WRONG_TYPE: return "wrong_type";
    case ANM_BUS_OUT_OF_RANGE: return "out_of_range";
    case ANM_BUS_UNKNOWN_FIELD: return "unknown_field";
    }
    return "unknown";
}

static int reject(anm_bus_reject *why, anm_bus_reason reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int reject(anm_bus_reject *why, anm_bus_reason reason, const char *fmt, ...)
{
    if (why != NULL) {
        va_list ap;
        va_start(ap, fmt);
        why->reason = reason;
        if (vsnprintf(why->text, sizeof why->text, fmt, ap) < 0)
            why->text[0] = '\0';
        va_end(ap);
    }
    return ANM_EPROTO;
}

static const char *json_type_name(const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

static const char *field_type_name(anm_field_type type)
{
    switch (type) {
    case ANM_FIELD_STRING: return "string";
    case ANM_FIELD_INTEGER: return "integer";
    case ANM_FIELD_NUMBER: return "number";
    case ANM_FIELD_BOOLEAN: return "boolean";
    case ANM_FIELD_OBJECT: return "object";
    case ANM_FIELD_ARRAY: return "array";
    case ANM_FIELD_TIME: return "ISO 8601 UTC time string";
    }
    return "unknown";
}

static int check_field(const anm_field_spec *spec, const json_t *value, anm_bus_reject *why)
{
    int type_ok = 0;
    switch (spec->type) {
    case ANM_FIELD_STRING: type_ok = json_is_string(value); break;
    case ANM_FIELD_INTEGER: type_ok = json_is_integer(value); break;
    case ANM_FIELD_NUMBER: type_ok = json_is_number(value); break;
    case ANM_FIELD_BOOLEAN: type_ok = json_is_boolean(value); break;
    case ANM_FIELD_OBJECT: type_ok = json_is_object(value); break;
    case ANM_FIELD_ARRAY: type_ok = json_is_array(value); break;
    case ANM_FIELD_TIME: type_ok = json_is_string(value); break;
    }
    if (!type_ok)
        return reject(why, ANM_BUS_WRONG_TYPE, "field \"%s\": expected %s, got %s", spec->name,
                      field_type_name(spec->type), json_type_name(value));
    if (spec->type == ANM_FIELD_INTEGER && (spec->min != 0 || spec->max != 0)) {
        json_int_t v = json_integer_value(value);
        if (v < spec->min || v > spec->max)
            return reject(why, ANM_BUS_OUT_OF_RANGE, "field \"%s\": %lld is outside [%lld, %lld]",
                          spec->name, (long long)v, (long long)spec->min, (long long)spec->max);
    }
    if (spec->type == ANM_FIELD_NUMBER && !isfinite(json_number_value(value)))
        return reject(why, ANM_BUS_OUT_OF_RANGE, "field \"%s\": not a finite number", spec->name);
    if (spec->type == ANM_FIELD_TIME) {
        int64_t ms;
        if (anm_time_parse_iso8601(json_string_value(value), &ms) != ANM_OK)
            return reject(why, ANM_BUS_WRONG_TYPE, "field \"%s\": expected %s, got \"%.64s\"",
                          spec->name, field_type_name(spec->type), json_string_value(value));
    }
    return ANM_OK;
}

int anm_bus_validate(const anm_bus_schema *schema, const json_t *body, anm_bus_reject *why)
{
    if (!json_is_object(body))
        return reject(why, ANM_BUS_BAD_JSON, "body is %s, not an object",
                      body == NULL ? "missing" : json_type_name(body));
    const json_t *version = json_object_get(body, "v");
    if (version == NULL)
        return reject(why, ANM_BUS_WRONG_VERSION, "field \"v\" is missing");
    if (!json_is_integer(version))
        return reject(why, ANM_BUS_WRONG_VERSION, "field \"v\": expected integer, got %s",
                      json_type_name(version));
    if (json_integer_value(version) != schema->version)
        return reject(why, ANM_BUS_WRONG_VERSION, "%s version %lld is not supported (expected %d)",
                      schema->kind, (long long)json_integer_value(version), schema->version);
    const json_t *kind = json_object_get(body, "kind");
    if (kind == NULL)
        return reject(why, ANM_BUS_MISSING_FIELD, "field \"kind\" is missing");
    if (!json_is_string(kind))
        return reject(why, ANM_BUS_WRONG_TYPE, "field \"kind\": expected string, got %s",
                      json_type_name(kind));
    if (strcmp(json_string_value(kind), schema->kind) != 0)
        return reject(why, ANM_BUS_KIND_MISMATCH, "kind \"%.64s\" does not match topic kind \"%s\"",
                      json_string_value(kind), schema->kind);
    for (const anm_field_spec *spec = schema->fields; spec->name != NULL; spec++) {
        const json_t *value = json_object_get(body, spec->name);
        if (value == NULL) {
            if (spec->required)
                return reject(why, ANM_BUS_MISSING_FIELD, "field \"%s\" is missing", spec->name);
            continue;
        }
        int rc = check_field(spec, value, why);
        if (rc != ANM_OK)
            return rc;
    }
    if (!schema->allow_extra) {
        const char *key;
        const json_t *value;
        json_object_foreach((json_t *)(uintptr_t)body, key, value) {
            (void)value;
            if (strcmp(key, "v") == 0 || strcmp(key, "kind") == 0)
                continue;
            const anm_field_spec *spec = schema->fields;
            while (spec->name != NULL && strcmp(spec->name, key) != 0)
                spec++;
            if (spec->name == NULL)
                return reject(why, ANM_BUS_UNKNOWN_FIELD, "field \"%.64s\" is not part of %s v%d",
                              key, schema->kind, schema->version);
        }
    }
    if (why != NULL) {
        why->reason = ANM_BUS_OK;
        why->text[0] = '\0';
    }
    return ANM_OK;
}

int anm_bus_topic_kind(const void *topic, size_t topic_size, size_t *kind_len)
{
    const unsigned char *t = topic;
    if (topic_size == 0 || topic_size > 128)
        return ANM_EPROTO;
    size_t i = 0;
    for (; i < topic_size && t[i] != '/'; i++) {
        unsigned char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return ANM_EPROTO;
    }
    if (i == 0)
        return ANM_EPROTO;
    *kind_len = i;
    return ANM_OK;
}

int anm_bus_parse_json(const anm_bus_schema *table, size_t table_count, const void *topic,
                       size_t topic_size, const void *body, size_t body_size, json_t **out,
                       const anm_bus_schema **schema_out, anm_bus_reject *why)
{
    size_t kind_len = 0;
    *out = NULL;
    if (schema_out != NULL)
        *schema_out = NULL;
    if (anm_bus_topic_kind(topic, topic_size, &kind_len) != ANM_OK)
        return reject(why, ANM_BUS_BAD_ENVELOPE,
                      "topic must be 1 to 128 bytes of [a-z0-9._-], optionally then '/'");
    const anm_bus_schema *schema = anm_bus_schema_find(table, table_count, topic, kind_len);
    if (schema == NULL)
        return reject(why, ANM_BUS_UNKNOWN_KIND, "unknown message kind \"%.*s\"", (int)kind_len,
                      (const char *)topic);
    if (body_size > schema->max_bytes)
        return reject(why, ANM_BUS_OVERSIZED, "%s body of %zu bytes exceeds the limit of %zu",
                      schema->kind, body_size, schema->max_bytes);
    json_error_t error;
    json_t *json = json_loadb(body, body_size, JSON_REJECT_DUPLICATES, &error);
    if (json == NULL)
        return reject(why, ANM_BUS_BAD_JSON, "%s body: %s at column %d", schema->kind, error.text,
                      error.column);
    int rc = anm_bus_validate(schema, json, why);
    if (rc != ANM_OK) {
        json_decref(json);
        return rc;
    }
    *out = json;
    if (schema_out != NULL)
        *schema_out = schema;
    return ANM_OK;
}

int anm_bus_send_json(anm_socket *socket, const anm_frame *route, const char *topic,
                      const json_t *body, int flags)
{
    char *text = json_dumps(body, JSON_COMPACT);
    if (text == NULL)
        return ANM_ENOMEM;
    anm_frame frames[3];
    size_t n = 0;
    if (route != NULL)
        frames[n++] = *route;
    frames[n++] = (anm_frame){topic, strlen(topic)};
    frames[n++] = (anm_frame){text, strlen(text)};
    int rc = anm_socket_send(socket, frames, n, flags);
    free(text);
    return rc;
}

int anm_bus_recv_json(anm_socket *socket, const anm_bus_schema *table, size_t table_count,
                      int flags, anm_msg **msg_out, json_t **out, anm_bus_reject *why)
{
    *out = NULL;
    int rc = anm_socket_recv(socket, msg_out, flags);
    if (rc != ANM_OK)
        return rc;
    size_t first = socket->type == ANM_SOCKET_ROUTER ? 1 : 0;
    if (anm_msg_parts(*msg_out) != first + 2)
        return reject(why, ANM_BUS_BAD_ENVELOPE, "expected %zu parts, got %zu", first + 2,
                      anm_msg_parts(*msg_out));
    size_t topic_size, body_size;
    const void *topic = anm_msg_part(*msg_out, first, &topic_size);
    const void *body = anm_msg_part(*msg_out, first + 1, &body_size);
    return anm_bus_parse_json(table, table_count, topic, topic_size, body, body_size, out, NULL,
                              why);
}

int anm_bus_request_json(const char *endpoint, const char *topic, const json_t *request,
                         int timeout_ms, json_t **reply)
{
    *reply = NULL;
    anm_bus *bus = NULL;
    anm_socket *dealer = NULL;
    anm_msg *msg = NULL;
    int rc = anm_bus_new(&bus);
    if (rc != ANM_OK)
        return rc;
    char connect_to[1100];
    const char *bare = endpoint[0] == '@' || endpoint[0] == '>' ? endpoint + 1 : endpoint;
    int n = snprintf(connect_to, sizeof connect_to, ">%s", bare);
    if (n < 0 || (size_t)n >= sizeof connect_to) {
        rc = ANM_EINVAL;
        goto done;
    }
    if ((rc = anm_socket_new(bus, ANM_SOCKET_DEALER, connect_to, NULL, &dealer, NULL)) != ANM_OK)
        goto done;
    if ((rc = anm_bus_send_json(dealer, NULL, topic, request, 0)) != ANM_OK)
        goto done;
    zmq_pollitem_t item = {anm_socket_handle(dealer), 0, ZMQ_POLLIN, 0};
    int64_t deadline = anm_monotonic_ns() + (int64_t)timeout_ms * 1000000;
    rc = ANM_ETIMEOUT;
    for (;;) {
        int64_t left_ms = (deadline - anm_monotonic_ns()) / 1000000;
        if (left_ms <= 0)
            break;
        int ready = zmq_poll(&item, 1, (long)left_ms);
        if (ready < 0 && zmq_errno() == EINTR)
            continue;
        if (ready < 0) {
            rc = ANM_ENET;
            break;
        }
        if (ready == 0)
            continue;
        if ((rc = anm_socket_recv(dealer, &msg, ANM_BUS_DONTWAIT)) == ANM_EAGAIN)
            continue;
        if (rc != ANM_OK)
            break;
        size_t size;
        const void *body = anm_msg_part(msg, anm_msg_parts(msg) - 1, &size);
        *reply = json_loadb(body, size, 0, NULL);
        rc = *reply ? ANM_OK : ANM_EPROTO;
        break;
    }
done:
    anm_msg_destroy(&msg);
    anm_socket_destroy(&dealer);
    anm_bus_destroy(&bus);
    return rc;
}
