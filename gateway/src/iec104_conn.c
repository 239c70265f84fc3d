/* iec104_conn.c: socket I/O for one IEC 104 connection (see iec104_conn.h). */
#include "iec104_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <unistd.h>

static void set_reason(gateway__iec104_conn *conn, const char *reason)
{
    if (conn->closed)
        return;
    conn->closed = 1;
    int n = snprintf(conn->close_reason, sizeof conn->close_reason, "%s", reason);
    if (n < 0)
        conn->close_reason[0] = '\0';
}

void gateway__iec104_peer_name(int fd, char *buf, size_t size)
{
    struct sockaddr_storage address;
    socklen_t length = sizeof address;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getpeername(fd, (struct sockaddr *)&address, &length) == 0) {
        if (address.ss_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)&address;
            (void)inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
            port = ntohs(in->sin_port);
        } else if (address.ss_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&address;
            (void)inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
            port = ntohs(in6->sin6_port);
        }
    }
    int n = snprintf(buf, size, "%s:%d", host, port);
    if (n < 0 && size > 0)
        buf[0] = '\0';
}

int gateway__iec104_conn_open(gateway__iec104_conn *conn, int fd,
                              const gateway_iec104_link_config *config, int64_t now_ms)
{
    memset(conn, 0, sizeof *conn);
    conn->fd = -1;
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        close(fd);
        return ANM_EIO;
    }
    int rc = gateway_iec104_link_new(config, now_ms, &conn->link, NULL);
    if (rc != ANM_OK) {
        close(fd);
        return rc;
    }
    conn->fd = fd;
    gateway__iec104_peer_name(fd, conn->peer, sizeof conn->peer);
    return ANM_OK;
}

void gateway__iec104_conn_close(gateway__iec104_conn *conn)
{
    if (conn->fd >= 0)
        close(conn->fd);
    conn->fd = -1;
    gateway_iec104_link_destroy(&conn->link);
    free(conn->stamp_ms);
    free(conn->stamp_values);
    conn->stamp_ms = NULL;
    conn->stamp_values = NULL;
    conn->stamp_head = conn->stamp_count = conn->stamp_cap = 0;
}

void gateway__iec104_conn_drain(gateway__iec104_conn *conn, int64_t now_ms,
                                gateway__iec104_event_fn fn, void *arg)
{
    gateway_iec104_event event;
    while (conn->link != NULL && gateway_iec104_link_next_event(conn->link, &event)) {
        if (event.kind == GATEWAY_IEC104_EVENT_CLOSED)
            set_reason(conn, event.reason);
        if (fn != NULL)
            fn(arg, conn, &event, now_ms);
    }
}

void gateway__iec104_conn_on_readable(gateway__iec104_conn *conn, int64_t now_ms,
                                      gateway__iec104_event_fn fn, void *arg)
{
    for (;;) {
        if (conn->closed)
            return;
        if (conn->input_start == conn->input_end) {
            conn->input_start = conn->input_end = 0;
            ssize_t n = recv(conn->fd, conn->input, sizeof conn->input, 0);
            if (n == 0) {
                set_reason(conn, "peer closed the connection");
                return;
            }
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return;
                char reason[128];
                int w = snprintf(reason, sizeof reason, "receive failed: %s", strerror(errno));
                set_reason(conn, w < 0 ? "receive failed" : reason);
                return;
            }
            conn->input_end = (size_t)n;
        }
        size_t used = 0;
        int rc = gateway_iec104_link_feed(conn->link, conn->input + conn->input_start,
                                          conn->input_end - conn->input_start, now_ms, &used);
        conn->input_start += used;
        gateway__iec104_conn_drain(conn, now_ms, fn, arg);
        if (rc != ANM_OK) {
            set_reason(conn, "link closed");
            return;
        }
        /* feed stopped for output back-pressure: write before reading more */
        if (used == 0)
            gateway__iec104_conn_flush(conn);
        if (used == 0 && gateway__iec104_conn_wants_write(conn))
            return;
    }
}

int gateway__iec104_conn_wants_write(const gateway__iec104_conn *conn)
{
    size_t size = 0;
    if (conn->link == NULL)
        return 0;
    (void)gateway_iec104_link_output(conn->link, &size);
    return size > 0;
}

void gateway__iec104_conn_flush(gateway__iec104_conn *conn)
{
    while (conn->fd >= 0 && conn->link != NULL) {
        size_t size = 0;
        const uint8_t *bytes = gateway_iec104_link_output(conn->link, &size);
        if (size == 0)
            return;
        ssize_t n = send(conn->fd, bytes, size, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            char reason[128];
            int w = snprintf(reason, sizeof reason, "send failed: %s", strerror(errno));
            set_reason(conn, w < 0 ? "send failed" : reason);
            return;
        }
        gateway_iec104_link_output_consume(conn->link, (size_t)n);
    }
}
