/* iec104_client.c: the IEC 104 client over TCP (see iec104_client.h). */
#include "gateway/iec104_client.h"

#include <errno.h>
#include <netdb.h>
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

struct gateway_iec104_client {
    gateway_iec104_client_config config;
    gateway_iec104_client_asdu_fn on_asdu;
    void *arg;
    int connecting_fd; /* -1 unless a connect is in progress */
    int64_t connect_deadline;
    gateway__iec104_conn *conn; /* NULL unless connected */
    int64_t next_attempt_ms;
    int64_t backoff_ms;
    size_t connects;
    char last_error[256];
    gateway_iec104_asdu scratch;
};

void gateway_iec104_client_config_default(gateway_iec104_client_config *config)
{
    if (config == NULL)
        return;
    memset(config, 0, sizeof *config);
    snprintf(config->host, sizeof config->host, "%s", "127.0.0.1");
    config->port = 2404;
    config->common_address = 1;
    gateway_iec104_link_config_default(&config->link, GATEWAY_IEC104_CONTROLLING);
    config->t0_s = 30;
    config->reconnect_min_ms = 1000;
    config->reconnect_max_ms = 30000;
    config->interrogate_on_start = 1;
}

int gateway_iec104_client_new(const gateway_iec104_client_config *config,
                              gateway_iec104_client_asdu_fn on_asdu, void *arg, int64_t now_ms,
                              gateway_iec104_client **out, anm_error_detail *detail)
{
    if (config == NULL || out == NULL)
        return ANM_EINVAL;
    *out = NULL;
    const char *field = NULL;
    if (config->host[0] == '\0')
        field = "host";
    else if (config->port < 1 || config->port > 65535)
        field = "port";
    else if (config->t0_s < 1 || config->t0_s > 255)
        field = "t0_s";
    else if (config->reconnect_min_ms < 1 || config->reconnect_max_ms < config->reconnect_min_ms)
        field = "reconnect_min_ms";
    if (field != NULL) {
        anm_error_detail_set(detail, NULL, 0, 0, field, "%s is out of range", field);
        return ANM_ECONFIG;
    }
    gateway_iec104_link_config link = config->link;
    link.role = GATEWAY_IEC104_CONTROLLING;
    int rc = gateway_iec104_link_config_check(&link, detail);
    if (rc != ANM_OK)
        return rc;
    gateway_iec104_client *client = calloc(1, sizeof *client);
    if (client == NULL)
        return ANM_ENOMEM;
    client->config = *config;
    client->config.link = link;
    client->on_asdu = on_asdu;
    client->arg = arg;
    client->connecting_fd = -1;
    client->next_attempt_ms = now_ms;
    client->backoff_ms = config->reconnect_min_ms;
    *out = client;
    return ANM_OK;
}

static void drop_connection(gateway_iec104_client *client)
{
    if (client->connecting_fd >= 0)
        close(client->connecting_fd);
    client->connecting_fd = -1;
    if (client->conn != NULL) {
        gateway__iec104_conn_close(client->conn);
        free(client->conn);
        client->conn = NULL;
    }
}

void gateway_iec104_client_destroy(gateway_iec104_client **client)
{
    if (client == NULL || *client == NULL)
        return;
    drop_connection(*client);
    free(*client);
    *client = NULL;
}

static void fail(gateway_iec104_client *client, int64_t now_ms, const char *reason)
{
    int n = snprintf(client->last_error, sizeof client->last_error, "%s", reason);
    if (n < 0)
        client->last_error[0] = '\0';
    anm_log_warn(COMPONENT, "connection to \"%s:%d\" failed: %s; retrying in %lld ms",
                 client->config.host, client->config.port, reason,
                 (long long)client->backoff_ms);
    drop_connection(client);
    client->next_attempt_ms = now_ms + client->backoff_ms;
    client->backoff_ms *= 2;
    if (client->backoff_ms > client->config.reconnect_max_ms)
        client->backoff_ms = client->config.reconnect_max_ms;
}

static void begin_connect(gateway_iec104_client *client, int64_t now_ms)
{
    struct addrinfo hints, *found = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char service[16];
    snprintf(service, sizeof service, "%d", client->config.port);
    int rc = getaddrinfo(client->config.host, service, &hints, &found);
    if (rc != 0 || found == NULL) {
        char reason[200];
        int n = snprintf(reason, sizeof reason, "could not resolve host: %s", gai_strerror(rc));
        fail(client, now_ms, n < 0 ? "could not resolve host" : reason);
        return;
    }
    int fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(found);
        fail(client, now_ms, strerror(errno));
        return;
    }
    rc = connect(fd, found->ai_addr, found->ai_addrlen);
    freeaddrinfo(found);
    if (rc != 0 && errno != EINPROGRESS) {
        int saved = errno;
        close(fd);
        fail(client, now_ms, strerror(saved));
        return;
    }
    client->connecting_fd = fd;
    client->connect_deadline = now_ms + (int64_t)client->config.t0_s * 1000;
}

static void finish_connect(gateway_iec104_client *client, int64_t now_ms)
{
    int fd = client->connecting_fd;
    int error = 0;
    socklen_t length = sizeof error;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0)
        error = errno;
    if (error != 0) {
        fail(client, now_ms, strerror(error));
        return;
    }
    client->connecting_fd = -1;
    gateway__iec104_conn *conn = malloc(sizeof *conn);
    if (conn == NULL) {
        close(fd);
        fail(client, now_ms, "out of memory");
        return;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (gateway__iec104_conn_open(conn, fd, &client->config.link, now_ms) != ANM_OK) {
        free(conn);
        fail(client, now_ms, "could not set up the connection");
        return;
    }
    client->conn = conn;
    client->connects++;
    anm_log_info(COMPONENT, "connected to \"%s\"", conn->peer);
    (void)gateway_iec104_link_start(conn->link, now_ms);
    gateway__iec104_conn_flush(conn);
}

static int send_command(gateway_iec104_client *client, const gateway_iec104_asdu *asdu,
                        int64_t now_ms)
{
    uint8_t bytes[GATEWAY_IEC104_MAX_ASDU];
    size_t size = 0;
    int rc = gateway_iec104_asdu_encode(asdu, bytes, sizeof bytes, &size);
    if (rc != ANM_OK)
        return rc;
    rc = gateway_iec104_link_submit(client->conn->link, bytes, size, now_ms);
    if (rc == ANM_OK)
        gateway__iec104_conn_flush(client->conn);
    return rc;
}

int gateway_iec104_client_is_started(const gateway_iec104_client *client)
{
    return client != NULL && client->conn != NULL && !client->conn->closed &&
           gateway_iec104_link_get_state(client->conn->link) == GATEWAY_IEC104_LINK_STARTED;
}

static void command_header(gateway_iec104_client *client, gateway_iec104_asdu *asdu, uint8_t type)
{
    memset(asdu, 0, offsetof(gateway_iec104_asdu, objects));
    memset(&asdu->objects[0], 0, sizeof asdu->objects[0]);
    asdu->type = type;
    asdu->count = 1;
    asdu->cause = GATEWAY_IEC104_COT_ACTIVATION;
    asdu->common_address = client->config.common_address;
}

int gateway_iec104_client_interrogate(gateway_iec104_client *client, int64_t now_ms)
{
    if (client == NULL)
        return ANM_EINVAL;
    if (!gateway_iec104_client_is_started(client))
        return ANM_ESTATE;
    gateway_iec104_asdu *asdu = &client->scratch;
    command_header(client, asdu, GATEWAY_IEC104_C_IC_NA_1);
    asdu->objects[0].qualifier = GATEWAY_IEC104_QOI_STATION;
    return send_command(client, asdu, now_ms);
}

int gateway_iec104_client_clock_sync(gateway_iec104_client *client, int64_t utc_ms,
                                     int64_t now_ms)
{
    if (client == NULL)
        return ANM_EINVAL;
    if (!gateway_iec104_client_is_started(client))
        return ANM_ESTATE;
    gateway_iec104_asdu *asdu = &client->scratch;
    command_header(client, asdu, GATEWAY_IEC104_C_CS_NA_1);
    int rc = gateway_iec104_cp56_from_utc_ms(utc_ms, &client->config.time, &asdu->objects[0].time);
    if (rc != ANM_OK)
        return rc;
    return send_command(client, asdu, now_ms);
}

static void on_event(void *arg, gateway__iec104_conn *conn, const gateway_iec104_event *event,
                     int64_t now_ms)
{
    gateway_iec104_client *client = arg;
    switch (event->kind) {
    case GATEWAY_IEC104_EVENT_STARTED:
        anm_log_info(COMPONENT, "data transfer started with \"%s\"", conn->peer);
        client->backoff_ms = client->config.reconnect_min_ms;
        if (client->config.interrogate_on_start)
            (void)gateway_iec104_client_interrogate(client, now_ms);
        break;
    case GATEWAY_IEC104_EVENT_ASDU: {
        anm_error_detail detail;
        anm_error_detail_clear(&detail);
        int rc = gateway_iec104_asdu_decode(event->asdu, event->asdu_size, &client->scratch,
                                            &detail);
        if (rc == ANM_ENOTFOUND) {
            anm_log_debug(COMPONENT, "skipping asdu from \"%s\": %s", conn->peer, detail.message);
        } else if (rc != ANM_OK) {
            conn->closed = 1;
            int n = snprintf(conn->close_reason, sizeof conn->close_reason, "malformed asdu: %s",
                             detail.message);
            if (n < 0)
                conn->close_reason[0] = '\0';
        } else if (client->on_asdu != NULL) {
            client->on_asdu(client->arg, &client->scratch, now_ms);
        }
        break;
    }
    case GATEWAY_IEC104_EVENT_CLOSED:
    case GATEWAY_IEC104_EVENT_STOPPED:
    case GATEWAY_IEC104_EVENT_ACKED:
        break;
    }
}

int gateway_iec104_client_run_once(gateway_iec104_client *client, int64_t now_ms,
                                   int max_wait_ms)
{
    if (client == NULL)
        return ANM_EINVAL;
    if (client->conn == NULL && client->connecting_fd < 0 && now_ms >= client->next_attempt_ms)
        begin_connect(client, now_ms);
    struct pollfd pfd = {.fd = -1};
    if (client->connecting_fd >= 0) {
        pfd = (struct pollfd){.fd = client->connecting_fd, .events = POLLOUT};
    } else if (client->conn != NULL) {
        short events = POLLIN;
        if (gateway__iec104_conn_wants_write(client->conn))
            events |= POLLOUT;
        pfd = (struct pollfd){.fd = client->conn->fd, .events = events};
    }
    int ready = poll(&pfd, pfd.fd >= 0 ? 1 : 0, max_wait_ms < 0 ? -1 : max_wait_ms);
    if (ready < 0 && errno != EINTR)
        return ANM_ENET;
    if (client->connecting_fd >= 0) {
        if (ready > 0 && pfd.revents != 0)
            finish_connect(client, now_ms);
        else if (now_ms >= client->connect_deadline)
            fail(client, now_ms, "t0 expired: connection not established");
        return ANM_OK;
    }
    if (client->conn == NULL)
        return ANM_OK;
    gateway__iec104_conn *conn = client->conn;
    if (ready > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)))
        gateway__iec104_conn_on_readable(conn, now_ms, on_event, client);
    if (!conn->closed) {
        (void)gateway_iec104_link_tick(conn->link, now_ms);
        gateway__iec104_conn_drain(conn, now_ms, on_event, client);
        gateway__iec104_conn_flush(conn);
    }
    if (conn->closed) {
        char reason[256];
        memcpy(reason, conn->close_reason, sizeof reason);
        fail(client, now_ms, reason);
    }
    return ANM_OK;
}

size_t gateway_iec104_client_connect_count(const gateway_iec104_client *client)
{
    return client != NULL ? client->connects : 0;
}

const char *gateway_iec104_client_last_error(const gateway_iec104_client *client)
{
    return client != NULL ? client->last_error : "";
}

int gateway_iec104_client_stop(gateway_iec104_client *client, int64_t now_ms)
{
    if (client == NULL)
        return ANM_EINVAL;
    if (!gateway_iec104_client_is_started(client))
        return ANM_ESTATE;
    int rc = gateway_iec104_link_stop(client->conn->link, now_ms);
    if (rc == ANM_OK)
        gateway__iec104_conn_flush(client->conn);
    return rc;
}

gateway_iec104_link_state gateway_iec104_client_link_state(const gateway_iec104_client *client)
{
    if (client == NULL || client->conn == NULL || client->conn->closed)
        return GATEWAY_IEC104_LINK_CLOSED;
    return gateway_iec104_link_get_state(client->conn->link);
}

uint64_t gateway_iec104_client_testfr_confirmed(const gateway_iec104_client *client)
{
    if (client == NULL || client->conn == NULL)
        return 0;
    return gateway_iec104_link_testfr_confirmed(client->conn->link);
}
