/* iec104_server.c: the IEC 104 outstation over TCP (see iec104_server.h). */
#include "gateway/iec104_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/log.h"
#include "iec104_conn.h"

#define COMPONENT "iec104"

typedef struct point {
    uint32_t ioa;
    gateway_iec104_point_kind kind;
    float value;
    uint8_t quality;
    int64_t utc_ms;
} point;

struct gateway_iec104_server {
    gateway_iec104_server_config config;
    int listen_fd;
    int port;
    gateway__iec104_conn **conns;
    size_t n_conns;
    size_t cap_conns;
    point *points; /* sorted by ioa */
    size_t n_points;
    size_t cap_points;
    size_t rejected;
    gateway_iec104_asdu scratch; /* decode/encode buffer: one thread per server */
    struct pollfd *pollfds;
    size_t cap_pollfds;
    /* redundancy group: the started connection, and a never-started link
     * used purely as the ordered, memory-bounded queue of waiting ASDUs */
    gateway__iec104_conn *active;
    gateway_iec104_link *holding;
    gateway_iec104_server_ack_fn ack_fn;
    void *ack_arg;
};

void gateway_iec104_server_config_default(gateway_iec104_server_config *config)
{
    if (config == NULL)
        return;
    memset(config, 0, sizeof *config);
    snprintf(config->bind_address, sizeof config->bind_address, "%s", "127.0.0.1");
    config->port = 2404;
    config->common_address = 1;
    config->max_clients = 8;
    gateway_iec104_link_config_default(&config->link, GATEWAY_IEC104_CONTROLLED);
}

static int open_listener(const gateway_iec104_server_config *config, int *fd_out, int *port_out,
                         anm_error_detail *detail)
{
    struct sockaddr_storage address;
    socklen_t length = 0;
    memset(&address, 0, sizeof address);
    struct sockaddr_in *in = (struct sockaddr_in *)&address;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&address;
    if (inet_pton(AF_INET, config->bind_address, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)config->port);
        length = sizeof *in;
    } else if (inet_pton(AF_INET6, config->bind_address, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)config->port);
        length = sizeof *in6;
    } else {
        anm_error_detail_set(detail, NULL, 0, 0, "bind_address",
                             "bind_address \"%s\" is not a numeric address",
                             config->bind_address);
        return ANM_ECONFIG;
    }
    int fd = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        anm_error_detail_set(detail, NULL, 0, 0, NULL, "could not create socket: %s",
                             strerror(errno));
        return ANM_ENET;
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&address, length) != 0 || listen(fd, 16) != 0) {
        anm_error_detail_set(detail, NULL, 0, 0, NULL, "could not listen on \"%s:%d\": %s",
                             config->bind_address, config->port, strerror(errno));
        close(fd);
        return ANM_ENET;
    }
    length = sizeof address;
    if (getsockname(fd, (struct sockaddr *)&address, &length) != 0) {
        close(fd);
        return ANM_ENET;
    }
    *port_out = address.ss_family == AF_INET ? ntohs(in->sin_port) : ntohs(in6->sin6_port);
    *fd_out = fd;
    return ANM_OK;
}

int gateway_iec104_server_new(const gateway_iec104_server_config *config, int64_t now_ms,
                              gateway_iec104_server **out, anm_error_detail *detail)
{
    if (config == NULL || out == NULL)
        return ANM_EINVAL;
    *out = NULL;
    if (config->port < 0 || config->port > 65535) {
        anm_error_detail_set(detail, NULL, 0, 0, "port", "port %d must be in 0..65535",
                             config->port);
        return ANM_ECONFIG;
    }
    if (config->max_clients < 1) {
        anm_error_detail_set(detail, NULL, 0, 0, "max_clients", "max_clients must be at least 1");
        return ANM_ECONFIG;
    }
    gateway_iec104_link_config link = config->link;
    link.role = GATEWAY_IEC104_CONTROLLED;
    int rc = gateway_iec104_link_config_check(&link, detail);
    if (rc != ANM_OK)
        return rc;
    gateway_iec104_server *server = calloc(1, sizeof *server);
    if (server == NULL)
        return ANM_ENOMEM;
    server->config = *config;
    server->config.link = link;
    if (config->redundancy_group) {
        rc = gateway_iec104_link_new(&server->config.link, now_ms, &server->holding, detail);
        if (rc != ANM_OK) {
            free(server);
            return rc;
        }
    }
    rc = open_listener(&server->config, &server->listen_fd, &server->port, detail);
    if (rc != ANM_OK) {
        gateway_iec104_link_destroy(&server->holding);
        free(server);
        return rc;
    }
    anm_log_info(COMPONENT, "outstation listening on \"%s:%d\", common address %u",
                 config->bind_address, server->port, (unsigned)config->common_address);
    *out = server;
    return ANM_OK;
}

void gateway_iec104_server_destroy(gateway_iec104_server **server)
{
    if (server == NULL || *server == NULL)
        return;
    gateway_iec104_server *s = *server;
    for (size_t i = 0; i < s->n_conns; i++) {
        gateway__iec104_conn_close(s->conns[i]);
        free(s->conns[i]);
    }
    free(s->conns);
    free(s->points);
    free(s->pollfds);
    gateway_iec104_link_destroy(&s->holding);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    free(s);
    *server = NULL;
}

int gateway_iec104_server_port(const gateway_iec104_server *server)
{
    return server != NULL ? server->port : -1;
}

size_t gateway_iec104_server_client_count(const gateway_iec104_server *server)
{
    return server != NULL ? server->n_conns : 0;
}

size_t gateway_iec104_server_started_count(const gateway_iec104_server *server)
{
    size_t n = 0;
    for (size_t i = 0; server != NULL && i < server->n_conns; i++)
        if (gateway_iec104_link_get_state(server->conns[i]->link) == GATEWAY_IEC104_LINK_STARTED)
            n++;
    return n;
}

size_t gateway_iec104_server_rejected_count(const gateway_iec104_server *server)
{
    return server != NULL ? server->rejected : 0;
}

/* ---- points ------------------------------------------------------------------ */

static size_t point_lower_bound(const gateway_iec104_server *server, uint32_t ioa)
{
    size_t lo = 0, hi = server->n_points;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (server->points[mid].ioa < ioa)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int gateway_iec104_server_define_point(gateway_iec104_server *server, uint32_t ioa,
                                       gateway_iec104_point_kind kind)
{
    if (server == NULL || ioa == 0 || ioa > GATEWAY_IEC104_MAX_IOA ||
        (kind != GATEWAY_IEC104_POINT_MEASURED && kind != GATEWAY_IEC104_POINT_SINGLE))
        return ANM_EINVAL;
    size_t at = point_lower_bound(server, ioa);
    if (at < server->n_points && server->points[at].ioa == ioa)
        return ANM_EDUP;
    if (server->n_points == server->cap_points) {
        size_t cap = server->cap_points ? server->cap_points * 2 : 64;
        point *grown = realloc(server->points, cap * sizeof *grown);
        if (grown == NULL)
            return ANM_ENOMEM;
        server->points = grown;
        server->cap_points = cap;
    }
    memmove(server->points + at + 1, server->points + at,
            (server->n_points - at) * sizeof *server->points);
    server->points[at] = (point){.ioa = ioa, .kind = kind, .quality = GATEWAY_IEC104_QDS_IV};
    server->n_points++;
    return ANM_OK;
}

/* ---- sending ----------------------------------------------------------------- */

static void close_conn(gateway_iec104_server *server, gateway__iec104_conn *conn,
                       const char *reason)
{
    if (conn->closed)
        return;
    conn->closed = 1;
    int n = snprintf(conn->close_reason, sizeof conn->close_reason, "%s", reason);
    if (n < 0)
        conn->close_reason[0] = '\0';
    server->rejected++;
    anm_log_warn(COMPONENT, "closing client \"%s\": %s", conn->peer, conn->close_reason);
}

/* Records the latency stamp of an ASDU just submitted on conn (ring buffer). */
static int push_stamp(gateway__iec104_conn *conn, int64_t measured_ms, size_t values)
{
    if (conn->stamp_count == conn->stamp_cap) {
        size_t cap = conn->stamp_cap ? conn->stamp_cap * 2 : 64;
        int64_t *ms = malloc(cap * sizeof *ms);
        uint32_t *vs = malloc(cap * sizeof *vs);
        if (ms == NULL || vs == NULL) {
            free(ms);
            free(vs);
            return ANM_ENOMEM;
        }
        for (size_t i = 0; i < conn->stamp_count; i++) {
            size_t at = (conn->stamp_head + i) % conn->stamp_cap;
            ms[i] = conn->stamp_ms[at];
            vs[i] = conn->stamp_values[at];
        }
        free(conn->stamp_ms);
        free(conn->stamp_values);
        conn->stamp_ms = ms;
        conn->stamp_values = vs;
        conn->stamp_head = 0;
        conn->stamp_cap = cap;
    }
    size_t at = (conn->stamp_head + conn->stamp_count) % conn->stamp_cap;
    conn->stamp_ms[at] = measured_ms;
    conn->stamp_values[at] = (uint32_t)values;
    conn->stamp_count++;
    return ANM_OK;
}

/* n ASDUs of conn were acknowledged: report the measurements among them. */
static void pop_stamps(gateway_iec104_server *server, gateway__iec104_conn *conn, size_t n,
                       int64_t now_ms)
{
    for (size_t i = 0; i < n && conn->stamp_count > 0; i++) {
        int64_t ms = conn->stamp_ms[conn->stamp_head];
        uint32_t values = conn->stamp_values[conn->stamp_head];
        conn->stamp_head = (conn->stamp_head + 1) % conn->stamp_cap;
        conn->stamp_count--;
        if (values > 0 && server->ack_fn != NULL)
            server->ack_fn(server->ack_arg, ms, values, now_ms);
    }
}

static void submit_stamped(gateway_iec104_server *server, gateway__iec104_conn *conn,
                           const uint8_t *asdu, size_t size, int64_t now_ms, int64_t measured_ms,
                           size_t values)
{
    if (conn->closed)
        return;
    int rc = gateway_iec104_link_submit(conn->link, asdu, size, now_ms);
    if (rc == ANM_OK && push_stamp(conn, measured_ms, values) != ANM_OK)
        rc = ANM_ENOMEM;
    if (rc == ANM_EFULL)
        close_conn(server, conn, "send queue full: client is not acknowledging");
    else if (rc != ANM_OK)
        close_conn(server, conn, anm_strerror(rc));
}

static void submit(gateway_iec104_server *server, gateway__iec104_conn *conn,
                   const uint8_t *asdu, size_t size, int64_t now_ms)
{
    submit_stamped(server, conn, asdu, size, now_ms, 0, 0);
}

static int is_sending(const gateway__iec104_conn *conn)
{
    return !conn->closed &&
           gateway_iec104_link_get_state(conn->link) == GATEWAY_IEC104_LINK_STARTED;
}

static int broadcast_stamped(gateway_iec104_server *server, const uint8_t *asdu, size_t size,
                             int64_t now_ms, int64_t measured_ms, size_t values)
{
    if (server->holding != NULL) {
        gateway__iec104_conn *active = server->active;
        if (active != NULL && is_sending(active)) {
            submit_stamped(server, active, asdu, size, now_ms, measured_ms, values);
            gateway__iec104_conn_flush(active);
            return ANM_OK;
        }
        int rc = gateway_iec104_link_submit(server->holding, asdu, size, now_ms);
        if (rc != ANM_OK)
            anm_log_error(COMPONENT, "redundancy group queue refused a value: %s",
                          anm_strerror(rc));
        return rc;
    }
    for (size_t i = 0; i < server->n_conns; i++) {
        gateway__iec104_conn *conn = server->conns[i];
        if (is_sending(conn)) {
            submit_stamped(server, conn, asdu, size, now_ms, measured_ms, values);
            gateway__iec104_conn_flush(conn);
        }
    }
    return ANM_OK;
}

static int broadcast(gateway_iec104_server *server, const uint8_t *asdu, size_t size,
                     int64_t now_ms)
{
    return broadcast_stamped(server, asdu, size, now_ms, 0, 0);
}

/* Appends every pending ASDU of from to target (in order) and empties from. */
static void move_pending(gateway_iec104_server *server, gateway_iec104_link *from,
                         gateway_iec104_link *target, int64_t now_ms)
{
    size_t n = gateway_iec104_link_pending_count(from);
    for (size_t i = 0; i < n; i++) {
        size_t size = 0;
        const uint8_t *asdu = gateway_iec104_link_pending_get(from, i, &size);
        int rc = gateway_iec104_link_submit(target, asdu, size, now_ms);
        if (rc != ANM_OK)
            anm_log_error(COMPONENT, "redundancy switchover lost %zu values: %s", n - i,
                          anm_strerror(rc));
        if (rc != ANM_OK)
            break;
    }
    (void)gateway_iec104_link_discard_pending(from);
    (void)server;
}

/*
 * The active connection is gone (closed or replaced): its pending ASDUs go
 * in front of the group queue.
 */
static void retire_active(gateway_iec104_server *server, int64_t now_ms)
{
    gateway__iec104_conn *old = server->active;
    server->active = NULL;
    if (old == NULL || old->link == NULL || gateway_iec104_link_pending_count(old->link) == 0)
        return;
    gateway_iec104_link *queue = NULL;
    if (gateway_iec104_link_new(&server->config.link, now_ms, &queue, NULL) != ANM_OK) {
        anm_log_error(COMPONENT, "redundancy switchover: out of memory");
        return;
    }
    move_pending(server, old->link, queue, now_ms);
    old->stamp_count = 0; /* resent values are not latency-reported */
    move_pending(server, server->holding, queue, now_ms);
    gateway_iec104_link_destroy(&server->holding);
    server->holding = queue;
}

/* conn was started: it becomes the active connection of the group. */
static void activate(gateway_iec104_server *server, gateway__iec104_conn *conn, int64_t now_ms)
{
    gateway__iec104_conn *old = server->active;
    if (old != NULL && old != conn && !old->closed) {
        gateway_iec104_link_state state = gateway_iec104_link_get_state(old->link);
        if (state == GATEWAY_IEC104_LINK_STARTED || state == GATEWAY_IEC104_LINK_STOP_PENDING) {
            old->closed = 1;
            int n = snprintf(old->close_reason, sizeof old->close_reason,
                             "superseded by STARTDT on \"%s\" in the redundancy group",
                             conn->peer);
            if (n < 0)
                old->close_reason[0] = '\0';
            anm_log_warn(COMPONENT, "closing client \"%s\": %s", old->peer, old->close_reason);
        }
    }
    if (old != conn) {
        retire_active(server, now_ms);
        server->active = conn;
    }
    size_t backlog = gateway_iec104_link_pending_count(server->holding);
    if (backlog > 0)
        anm_log_info(COMPONENT, "client \"%s\" takes over the redundancy group: resending %zu",
                     conn->peer, backlog);
    size_t n = backlog;
    for (size_t i = 0; i < n; i++) {
        size_t size = 0;
        const uint8_t *asdu = gateway_iec104_link_pending_get(server->holding, i, &size);
        submit(server, conn, asdu, size, now_ms);
    }
    (void)gateway_iec104_link_discard_pending(server->holding);
}

size_t gateway_iec104_server_group_backlog(const gateway_iec104_server *server)
{
    if (server == NULL || server->holding == NULL)
        return 0;
    size_t n = gateway_iec104_link_pending_count(server->holding);
    if (server->active != NULL && server->active->link != NULL && !is_sending(server->active))
        n += gateway_iec104_link_pending_count(server->active->link);
    return n;
}

static void fill_object(const gateway_iec104_server *server, const point *p,
                        gateway_iec104_object *object, int with_time)
{
    memset(object, 0, sizeof *object);
    object->ioa = p->ioa;
    object->quality = p->quality;
    if (p->kind == GATEWAY_IEC104_POINT_SINGLE)
        object->single_point = p->value != 0.0f;
    else
        object->value = p->value;
    if (with_time &&
        gateway_iec104_cp56_from_utc_ms(p->utc_ms, &server->config.time, &object->time) != ANM_OK) {
        /* cannot happen for stored points: update checks the time */
        object->time = (gateway_iec104_cp56){.day = 1, .month = 1, .invalid = 1};
    }
}

int gateway_iec104_server_update(gateway_iec104_server *server, uint32_t ioa, double value,
                                 uint8_t quality, int64_t utc_ms, int spontaneous,
                                 int64_t now_ms)
{
    if (server == NULL)
        return ANM_EINVAL;
    size_t at = point_lower_bound(server, ioa);
    if (at >= server->n_points || server->points[at].ioa != ioa)
        return ANM_ENOTFOUND;
    gateway_iec104_cp56 check;
    if (gateway_iec104_cp56_from_utc_ms(utc_ms, &server->config.time, &check) != ANM_OK)
        return ANM_ERANGE;
    point *p = &server->points[at];
    p->value = (float)value;
    p->quality = quality;
    p->utc_ms = utc_ms;
    if (!spontaneous)
        return ANM_OK;
    gateway_iec104_asdu *asdu = &server->scratch;
    memset(asdu, 0, offsetof(gateway_iec104_asdu, objects));
    asdu->type = p->kind == GATEWAY_IEC104_POINT_SINGLE ? GATEWAY_IEC104_M_SP_TB_1
                                                        : GATEWAY_IEC104_M_ME_TF_1;
    asdu->count = 1;
    asdu->cause = GATEWAY_IEC104_COT_SPONTANEOUS;
    asdu->common_address = server->config.common_address;
    fill_object(server, p, &asdu->objects[0], 1);
    uint8_t bytes[GATEWAY_IEC104_MAX_ASDU];
    size_t size = 0;
    int rc = gateway_iec104_asdu_encode(asdu, bytes, sizeof bytes, &size);
    if (rc != ANM_OK)
        return rc;
    return broadcast(server, bytes, size, now_ms);
}

int gateway_iec104_server_update_many(gateway_iec104_server *server,
                                      const gateway_iec104_point_update *updates, size_t n,
                                      int spontaneous, int test, int64_t now_ms)
{
    if (server == NULL || (updates == NULL && n > 0))
        return ANM_EINVAL;
    gateway_iec104_asdu *asdu = &server->scratch;
    int rc = ANM_OK;
    int open = 0;
    size_t per_asdu = 0;
    int64_t earliest = 0;
    for (size_t i = 0; i <= n; i++) {
        point *p = NULL;
        if (i < n) {
            size_t at = point_lower_bound(server, updates[i].ioa);
            if (at >= server->n_points || server->points[at].ioa != updates[i].ioa) {
                rc = ANM_ENOTFOUND;
            } else {
                gateway_iec104_cp56 check;
                if (gateway_iec104_cp56_from_utc_ms(updates[i].utc_ms, &server->config.time,
                                                    &check) != ANM_OK)
                    rc = ANM_ERANGE;
                p = &server->points[at];
            }
        }
        if (rc != ANM_OK)
            p = NULL;
        uint8_t type = 0;
        if (p != NULL) {
            p->value = (float)updates[i].value;
            p->quality = updates[i].quality;
            p->utc_ms = updates[i].utc_ms;
            type = p->kind == GATEWAY_IEC104_POINT_SINGLE ? GATEWAY_IEC104_M_SP_TB_1
                                                          : GATEWAY_IEC104_M_ME_TF_1;
        }
        if (!spontaneous) {
            if (p == NULL)
                break;
            continue;
        }
        /* flush the open ASDU when done, on a change of type, or when full */
        if (open && (p == NULL || asdu->type != type || asdu->count >= per_asdu)) {
            uint8_t bytes[GATEWAY_IEC104_MAX_ASDU];
            size_t size = 0;
            int erc = gateway_iec104_asdu_encode(asdu, bytes, sizeof bytes, &size);
            if (erc != ANM_OK)
                return erc;
            (void)broadcast_stamped(server, bytes, size, now_ms, earliest, asdu->count);
            open = 0;
        }
        if (p == NULL)
            break;
        if (!open) {
            memset(asdu, 0, offsetof(gateway_iec104_asdu, objects));
            asdu->type = type;
            asdu->cause = GATEWAY_IEC104_COT_SPONTANEOUS;
            asdu->test = test ? 1 : 0;
            asdu->common_address = server->config.common_address;
            per_asdu = (GATEWAY_IEC104_MAX_ASDU - GATEWAY_IEC104_ASDU_HEADER) /
                       (3 + gateway_iec104_element_size(type));
            earliest = p->utc_ms;
            open = 1;
        }
        if (p->utc_ms < earliest)
            earliest = p->utc_ms;
        fill_object(server, p, &asdu->objects[asdu->count++], 1);
    }
    return rc;
}

void gateway_iec104_server_set_ack_handler(gateway_iec104_server *server,
                                           gateway_iec104_server_ack_fn fn, void *arg)
{
    if (server == NULL)
        return;
    server->ack_fn = fn;
    server->ack_arg = arg;
}

size_t gateway_iec104_server_backlog(const gateway_iec104_server *server)
{
    if (server == NULL)
        return 0;
    size_t n = server->holding ? gateway_iec104_link_pending_count(server->holding) : 0;
    for (size_t i = 0; i < server->n_conns; i++) {
        if (server->conns[i]->link != NULL)
            n += gateway_iec104_link_pending_count(server->conns[i]->link);
    }
    return n;
}

/*
 * Sends the points of `kind` without time tag, packed SQ=0, to one
 * connection (conn) or to all sending ones (conn NULL).
 */
static void send_points(gateway_iec104_server *server, gateway__iec104_conn *conn,
                        gateway_iec104_point_kind kind, uint8_t cause, int64_t now_ms)
{
    gateway_iec104_asdu *asdu = &server->scratch;
    uint8_t type = kind == GATEWAY_IEC104_POINT_SINGLE ? GATEWAY_IEC104_M_SP_NA_1
                                                       : GATEWAY_IEC104_M_ME_NC_1;
    size_t per_asdu = (GATEWAY_IEC104_MAX_ASDU - GATEWAY_IEC104_ASDU_HEADER) /
                      (3 + gateway_iec104_element_size(type));
    size_t i = 0;
    while (i < server->n_points) {
        memset(asdu, 0, offsetof(gateway_iec104_asdu, objects));
        asdu->type = type;
        asdu->cause = cause;
        asdu->common_address = server->config.common_address;
        for (; i < server->n_points && asdu->count < per_asdu; i++) {
            const point *p = &server->points[i];
            if (p->kind == kind)
                fill_object(server, p, &asdu->objects[asdu->count++], 0);
        }
        if (asdu->count == 0)
            break;
        uint8_t bytes[GATEWAY_IEC104_MAX_ASDU];
        size_t size = 0;
        if (gateway_iec104_asdu_encode(asdu, bytes, sizeof bytes, &size) != ANM_OK)
            return;
        if (conn != NULL)
            submit(server, conn, bytes, size, now_ms);
        else
            (void)broadcast(server, bytes, size, now_ms);
    }
}

int gateway_iec104_server_send_cyclic(gateway_iec104_server *server, int64_t now_ms)
{
    if (server == NULL)
        return ANM_EINVAL;
    send_points(server, NULL, GATEWAY_IEC104_POINT_MEASURED, GATEWAY_IEC104_COT_PERIODIC, now_ms);
    return ANM_OK;
}

/* ---- commands ---------------------------------------------------------------- */

/* Echoes the request with cause and P/N, our common address if it was broadcast. */
static void reply(gateway_iec104_server *server, gateway__iec104_conn *conn,
                  const uint8_t *request, size_t size, uint8_t cause, int negative,
                  int64_t now_ms)
{
    uint8_t bytes[GATEWAY_IEC104_MAX_ASDU];
    if (gateway_iec104_asdu_mirror(request, size, cause, negative, bytes, sizeof bytes) != ANM_OK)
        return;
    if (bytes[4] == 0xFF && bytes[5] == 0xFF) {
        bytes[4] = (uint8_t)(server->config.common_address & 0xFFu);
        bytes[5] = (uint8_t)(server->config.common_address >> 8);
    }
    submit(server, conn, bytes, size, now_ms);
}

static void handle_asdu(gateway_iec104_server *server, gateway__iec104_conn *conn,
                        const uint8_t *bytes, size_t size, int64_t now_ms)
{
    gateway_iec104_asdu *asdu = &server->scratch;
    anm_error_detail detail;
    anm_error_detail_clear(&detail);
    int rc = gateway_iec104_asdu_decode(bytes, size, asdu, &detail);
    if (rc == ANM_ENOTFOUND) {
        anm_log_info(COMPONENT, "client \"%s\" sent unknown type %u: negative confirm",
                     conn->peer, (unsigned)bytes[0]);
        reply(server, conn, bytes, size, GATEWAY_IEC104_COT_UNKNOWN_TYPE, 1, now_ms);
        return;
    }
    if (rc != ANM_OK) {
        char reason[300];
        int n = snprintf(reason, sizeof reason, "malformed asdu: %s", detail.message);
        close_conn(server, conn, n < 0 ? "malformed asdu" : reason);
        return;
    }
    if (asdu->common_address != server->config.common_address && asdu->common_address != 0xFFFF) {
        reply(server, conn, bytes, size, GATEWAY_IEC104_COT_UNKNOWN_COMMON_ADDRESS, 1, now_ms);
        return;
    }
    uint8_t type = asdu->type;
    if (type != GATEWAY_IEC104_C_IC_NA_1 && type != GATEWAY_IEC104_C_CS_NA_1 &&
        type != GATEWAY_IEC104_C_TS_TA_1) {
        /* monitor types are not accepted in control direction */
        reply(server, conn, bytes, size, GATEWAY_IEC104_COT_UNKNOWN_TYPE, 1, now_ms);
        return;
    }
    if (asdu->cause != GATEWAY_IEC104_COT_ACTIVATION) {
        reply(server, conn, bytes, size, GATEWAY_IEC104_COT_UNKNOWN_CAUSE, 1, now_ms);
        return;
    }
    if (asdu->objects[0].ioa != 0) {
        reply(server, conn, bytes, size, GATEWAY_IEC104_COT_UNKNOWN_IOA, 1, now_ms);
        return;
    }
    switch (type) {
    case GATEWAY_IEC104_C_IC_NA_1:
        if (asdu->objects[0].qualifier != GATEWAY_IEC104_QOI_STATION) {
            reply(server, conn, bytes, size, GATEWAY_IEC104_COT_ACTIVATION_CON, 1, now_ms);
            return;
        }
        reply(server, conn, bytes, size, GATEWAY_IEC104_COT_ACTIVATION_CON, 0, now_ms);
        send_points(server, conn, GATEWAY_IEC104_POINT_MEASURED,
                    GATEWAY_IEC104_COT_INTERROGATED_STATION, now_ms);
        send_points(server, conn, GATEWAY_IEC104_POINT_SINGLE,
                    GATEWAY_IEC104_COT_INTERROGATED_STATION, now_ms);
        reply(server, conn, bytes, size, GATEWAY_IEC104_COT_ACTIVATION_TERM, 0, now_ms);
        break;
    case GATEWAY_IEC104_C_CS_NA_1: {
        int64_t their_ms = 0;
        if (gateway_iec104_cp56_to_utc_ms(&asdu->objects[0].time, &server->config.time,
                                          &their_ms) == ANM_OK)
            anm_log_info(COMPONENT, "clock sync from \"%s\": offset %lld ms", conn->peer,
                         (long long)(their_ms - now_ms));
        reply(server, conn, bytes, size, GATEWAY_IEC104_COT_ACTIVATION_CON, 0, now_ms);
        break;
    }
    default: /* C_TS_TA_1 */
        reply(server, conn, bytes, size, GATEWAY_IEC104_COT_ACTIVATION_CON, 0, now_ms);
        break;
    }
}

static void on_event(void *arg, gateway__iec104_conn *conn, const gateway_iec104_event *event,
                     int64_t now_ms)
{
    gateway_iec104_server *server = arg;
    switch (event->kind) {
    case GATEWAY_IEC104_EVENT_ASDU:
        handle_asdu(server, conn, event->asdu, event->asdu_size, now_ms);
        break;
    case GATEWAY_IEC104_EVENT_STARTED:
        anm_log_info(COMPONENT, "client \"%s\" started data transfer", conn->peer);
        if (server->holding != NULL)
            activate(server, conn, now_ms);
        break;
    case GATEWAY_IEC104_EVENT_STOPPED:
        anm_log_info(COMPONENT, "client \"%s\" stopped data transfer", conn->peer);
        break;
    case GATEWAY_IEC104_EVENT_CLOSED:
        server->rejected++;
        anm_log_warn(COMPONENT, "closing client \"%s\": %s", conn->peer, event->reason);
        break;
    case GATEWAY_IEC104_EVENT_ACKED:
        pop_stamps(server, conn, event->acked, now_ms);
        break;
    }
}

/* ---- loop -------------------------------------------------------------------- */

static void accept_clients(gateway_iec104_server *server, int64_t now_ms)
{
    for (;;) {
        int fd = accept(server->listen_fd, NULL, NULL);
        if (fd < 0)
            return; /* EAGAIN, or a transient error: poll tells us again */
        char peer[80];
        gateway__iec104_peer_name(fd, peer, sizeof peer);
        if (server->n_conns >= (size_t)server->config.max_clients) {
            anm_log_warn(COMPONENT, "refusing client \"%s\": %d clients already connected", peer,
                         server->config.max_clients);
            close(fd);
            continue;
        }
        if (server->n_conns == server->cap_conns) {
            size_t cap = server->cap_conns ? server->cap_conns * 2 : 4;
            gateway__iec104_conn **grown = realloc(server->conns, cap * sizeof *grown);
            if (grown == NULL) {
                close(fd);
                return;
            }
            server->conns = grown;
            server->cap_conns = cap;
        }
        gateway__iec104_conn *conn = malloc(sizeof *conn);
        if (conn == NULL) {
            close(fd);
            return;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (gateway__iec104_conn_open(conn, fd, &server->config.link, now_ms) != ANM_OK) {
            free(conn);
            continue;
        }
        server->conns[server->n_conns++] = conn;
        anm_log_info(COMPONENT, "client \"%s\" connected", conn->peer);
    }
}

static void remove_closed(gateway_iec104_server *server, int64_t now_ms)
{
    size_t kept = 0;
    for (size_t i = 0; i < server->n_conns; i++) {
        gateway__iec104_conn *conn = server->conns[i];
        if (conn->closed && conn == server->active)
            retire_active(server, now_ms);
        if (conn->closed) {
            anm_log_info(COMPONENT, "client \"%s\" disconnected: %s", conn->peer,
                         conn->close_reason);
            gateway__iec104_conn_close(conn);
            free(conn);
        } else {
            server->conns[kept++] = conn;
        }
    }
    server->n_conns = kept;
}

int gateway_iec104_server_run_once(gateway_iec104_server *server, int64_t now_ms,
                                   int max_wait_ms)
{
    if (server == NULL)
        return ANM_EINVAL;
    size_t n = server->n_conns + 1;
    if (n > server->cap_pollfds) {
        struct pollfd *grown = realloc(server->pollfds, n * 2 * sizeof *grown);
        if (grown == NULL)
            return ANM_ENOMEM;
        server->pollfds = grown;
        server->cap_pollfds = n * 2;
    }
    struct pollfd *fds = server->pollfds;
    fds[0] = (struct pollfd){.fd = server->listen_fd, .events = POLLIN};
    for (size_t i = 0; i < server->n_conns; i++) {
        short events = POLLIN;
        if (gateway__iec104_conn_wants_write(server->conns[i]))
            events |= POLLOUT;
        fds[i + 1] = (struct pollfd){.fd = server->conns[i]->fd, .events = events};
    }
    int ready = poll(fds, (nfds_t)n, max_wait_ms < 0 ? -1 : max_wait_ms);
    if (ready < 0 && errno != EINTR)
        return ANM_ENET;
    size_t existing = server->n_conns;
    for (size_t i = 0; ready > 0 && i < existing; i++) {
        gateway__iec104_conn *conn = server->conns[i];
        short revents = fds[i + 1].revents;
        if (revents & (POLLIN | POLLHUP | POLLERR))
            gateway__iec104_conn_on_readable(conn, now_ms, on_event, server);
        if (revents & POLLOUT)
            gateway__iec104_conn_flush(conn);
    }
    if (ready > 0 && (fds[0].revents & POLLIN))
        accept_clients(server, now_ms);
    for (size_t i = 0; i < server->n_conns; i++) {
        gateway__iec104_conn *conn = server->conns[i];
        if (conn->closed)
            continue;
        (void)gateway_iec104_link_tick(conn->link, now_ms);
        gateway__iec104_conn_drain(conn, now_ms, on_event, server);
        gateway__iec104_conn_flush(conn);
    }
    remove_closed(server, now_ms);
    return ANM_OK;
}

int64_t gateway_iec104_server_next_deadline(const gateway_iec104_server *server)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; server != NULL && i < server->n_conns; i++) {
        int64_t deadline = gateway_iec104_link_next_deadline(server->conns[i]->link);
        if (deadline < next)
            next = deadline;
    }
    return next;
}
