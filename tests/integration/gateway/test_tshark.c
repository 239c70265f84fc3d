/*
 * test_tshark.c: Wireshark's own iec60870_104 dissector decodes a capture
 * of our outstation talking to our client on loopback (STARTDT, general
 * interrogation, spontaneous time-tagged values, clock sync, TESTFR,
 * STOPDT): no malformed or warning frames, and the type ids, causes and
 * values it decodes are the ones we sent. Independent of our codec.
 *
 * Needs tshark and permission to capture on lo (root in CI).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "engine/clock.h"
#include "gateway/iec104_client.h"
#include "gateway/iec104_server.h"
#include "testlib.h"

extern char **environ;

#define MAX_LOG 64

typedef struct step {
    int type;
    int cause;
} step;

typedef struct exchange {
    step log[MAX_LOG]; /* ASDUs in wire order (client's commands and what it received) */
    int n;
    int n_received;
    float values[MAX_LOG]; /* float values received, in order */
    int n_values;
} exchange;

static void note(exchange *x, int type, int cause)
{
    if (x->n < MAX_LOG)
        x->log[x->n++] = (step){type, cause};
}

static void on_asdu(void *arg, const gateway_iec104_asdu *asdu, int64_t now_ms)
{
    (void)now_ms;
    exchange *x = arg;
    note(x, asdu->type, asdu->cause);
    x->n_received++;
    for (int i = 0; i < asdu->count; i++) {
        if ((asdu->type == GATEWAY_IEC104_M_ME_NC_1 || asdu->type == GATEWAY_IEC104_M_ME_TF_1) &&
            x->n_values < MAX_LOG)
            x->values[x->n_values++] = asdu->objects[i].value;
    }
}

typedef struct capture {
    pid_t pid;
    int err_fd;
    int out_fd; /* packet summaries (-P -l): what tshark has written to the file */
    char err[4096];
    size_t err_len;
    char line[1024]; /* partial stdout line */
    size_t line_len;
    int packets;
    int stopped;         /* "STOPDT con" seen */
    int fins_after_stop; /* packets with FIN set after it */
} capture;

/* Reads tshark's stderr until "Capturing on" (ready: 1), its end (0) or 20 s (0). */
static int wait_capturing(capture *c)
{
    int64_t end = anm_monotonic_ns() + 20000000000LL;
    while (anm_monotonic_ns() < end) {
        struct pollfd p = {.fd = c->err_fd, .events = POLLIN};
        int r = poll(&p, 1, 200);
        if (r < 0 && errno != EINTR)
            return 0;
        if (r <= 0)
            continue;
        ssize_t got = read(c->err_fd, c->err + c->err_len, sizeof c->err - 1 - c->err_len);
        if (got <= 0)
            return 0;
        c->err_len += (size_t)got;
        c->err[c->err_len] = '\0';
        if (strstr(c->err, "Capturing on") != NULL)
            return 1;
        if (c->err_len + 1 >= sizeof c->err)
            return 0;
    }
    return 0;
}

/* Counts the packet summary lines tshark has printed so far (non-blocking). */
static void capture_poll(capture *c)
{
    for (;;) {
        struct pollfd p = {.fd = c->out_fd, .events = POLLIN};
        if (poll(&p, 1, 0) <= 0)
            return;
        char buf[4096];
        ssize_t got = read(c->out_fd, buf, sizeof buf);
        if (got <= 0)
            return;
        for (ssize_t i = 0; i < got; i++) {
            if (buf[i] != '\n') {
                if (c->line_len + 1 < sizeof c->line)
                    c->line[c->line_len++] = buf[i];
                continue;
            }
            c->line[c->line_len] = '\0';
            c->packets++;
            if (strstr(c->line, "STOPDT con") != NULL)
                c->stopped = 1;
            else if (c->stopped && strstr(c->line, "FIN") != NULL)
                c->fins_after_stop++;
            c->line_len = 0;
        }
    }
}

static void start_capture(capture *c, int port, const char *file)
{
    char filter[64], decode_as[64];
    snprintf(filter, sizeof filter, "tcp port %d", port);
    snprintf(decode_as, sizeof decode_as, "tcp.port==%d,iec60870_104", port);
    int err_pipe[2], out_pipe[2];
    cr_assert_eq(pipe(err_pipe), 0);
    cr_assert_eq(pipe(out_pipe), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, err_pipe[0]);
    posix_spawn_file_actions_addclose(&actions, out_pipe[0]);
    /* -P -l: a summary line per packet once it is in the file, so the test
       knows what the capture holds before stopping it */
    const char *const argv[] = {"tshark", "-P", "-l",   "-d", decode_as, "-i",
                                "lo",     "-f", filter, "-w", file,      NULL};
    char **copy = anm_test_argv_dup(argv);
    cr_assert_not_null(copy);
    int rc = posix_spawnp(&c->pid, "tshark", &actions, NULL, copy, environ);
    anm_test_argv_free(copy);
    posix_spawn_file_actions_destroy(&actions);
    close(err_pipe[1]);
    close(out_pipe[1]);
    c->err_fd = err_pipe[0];
    c->out_fd = out_pipe[0];
    cr_assert_eq(rc, 0, "could not run tshark (install the Debian package tshark): %s",
                 strerror(rc));
    if (!wait_capturing(c)) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
        cr_assert_fail("tshark could not capture on lo (capture needs root or CAP_NET_RAW and "
                       "CAP_NET_ADMIN for dumpcap): %s",
                       c->err);
    }
}

static void stop_capture(capture *c)
{
    kill(c->pid, SIGINT);
    int status = 0;
    cr_assert_eq(waitpid(c->pid, &status, 0), c->pid);
    close(c->err_fd);
    close(c->out_fd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "tshark capture ended badly: %s",
              c->err);
}

/* Connects and closes a plain TCP socket to port. */
static void probe(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    close(fd);
}

static void pump(gateway_iec104_server *server, gateway_iec104_client *client, anm_clock *clock,
                 capture *cap)
{
    (void)gateway_iec104_server_run_once(server, anm_clock_now_ms(clock), 1);
    if (client != NULL)
        (void)gateway_iec104_client_run_once(client, anm_clock_now_ms(clock), 1);
    capture_poll(cap);
}

#define PUMP_UNTIL(cond)                                                                           \
    do {                                                                                           \
        int64_t end_ = anm_monotonic_ns() + 10000000000LL;                                         \
        while (!(cond) && anm_monotonic_ns() < end_)                                               \
            pump(server, client, clock, &cap);                                                     \
        cr_assert(cond, "timed out waiting for: %s", #cond);                                       \
    } while (0)

/* Splits a comma-separated tshark field into numbers; returns the count. */
static int split_numbers(const char *text, double *out, int max)
{
    int n = 0;
    const char *p = text;
    while (*p != '\0' && *p != '\t' && n < max) {
        char *end = NULL;
        double v = strtod(p, &end);
        if (end == p)
            break;
        out[n++] = v;
        p = end;
        if (*p == ',')
            p++;
    }
    return n;
}

/* The tab-separated column col of line (0-based), or "". */
static const char *column(const char *line, int col)
{
    for (int i = 0; i < col; i++) {
        line = strchr(line, '\t');
        if (line == NULL)
            return "";
        line++;
    }
    return line;
}

Test(tshark, wireshark_decodes_our_iec104_traffic_without_warnings, .timeout = 90)
{
    char *dir = anm_test_tmpdir("gw-tshark");
    char pcap[1024];
    snprintf(pcap, sizeof pcap, "%s/iec104.pcapng", dir);
    anm_clock *clock = anm_clock_new_real();

    gateway_iec104_server_config sc;
    gateway_iec104_server_config_default(&sc);
    sc.port = 0;
    anm_error_detail d;
    anm_error_detail_clear(&d);
    gateway_iec104_server *server = NULL;
    cr_assert_eq(gateway_iec104_server_new(&sc, anm_clock_now_ms(clock), &server, &d), ANM_OK, "%s",
                 d.message);
    int port = gateway_iec104_server_port(server);
    for (uint32_t ioa = 1001; ioa <= 1003; ioa++)
        cr_assert_eq(gateway_iec104_server_define_point(server, ioa, GATEWAY_IEC104_POINT_MEASURED),
                     ANM_OK);
    cr_assert_eq(gateway_iec104_server_define_point(server, 1004, GATEWAY_IEC104_POINT_SINGLE),
                 ANM_OK);
    int64_t utc = anm_wall_clock_ms();
    /* values exactly representable in float32, so text and binary agree */
    const double gi[3] = {3.25, -1.5, 0.125}, spont[3] = {4.75, 7.5, 0.5};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(gateway_iec104_server_update(server, 1001 + (uint32_t)i, gi[i], 0, utc, 0,
                                                  anm_clock_now_ms(clock)),
                     ANM_OK);
    cr_assert_eq(gateway_iec104_server_update(server, 1004, 1, 0, utc, 0, anm_clock_now_ms(clock)),
                 ANM_OK);

    capture cap = {0};
    start_capture(&cap, port, pcap);
    /* "Capturing on" comes before the capture sees packets: probe until one
       shows in the file */
    gateway_iec104_client *client = NULL;
    {
        int64_t end = anm_monotonic_ns() + 20000000000LL;
        while (cap.packets == 0 && anm_monotonic_ns() < end) {
            probe(port);
            for (int i = 0; i < 200 && cap.packets == 0; i++)
                pump(server, client, clock, &cap);
        }
        cr_assert_gt(cap.packets, 0, "tshark saw no packet of a probe connection");
        PUMP_UNTIL(gateway_iec104_server_client_count(server) == 0);
    }
    exchange *x = calloc(1, sizeof *x);
    gateway_iec104_client_config cc;
    gateway_iec104_client_config_default(&cc);
    cc.port = port;
    cc.link.t3_s = 1; /* idle 1 s -> TESTFR act */
    cr_assert_eq(gateway_iec104_client_new(&cc, on_asdu, x, anm_clock_now_ms(clock), &client, &d),
                 ANM_OK);
    note(x, GATEWAY_IEC104_C_IC_NA_1, GATEWAY_IEC104_COT_ACTIVATION); /* sent on STARTDT con */
    /* GI: actcon, 3 floats + 1 single with COT 20, actterm */
    PUMP_UNTIL(x->n_received >= 4);
    cr_assert_eq(x->log[x->n - 1].type, GATEWAY_IEC104_C_IC_NA_1);
    cr_assert_eq(x->log[x->n - 1].cause, GATEWAY_IEC104_COT_ACTIVATION_TERM);

    gateway_iec104_point_update up[4];
    for (int i = 0; i < 3; i++)
        up[i] = (gateway_iec104_point_update){1001 + (uint32_t)i, spont[i], 0, utc + 100};
    up[3] = (gateway_iec104_point_update){1004, 0, 0, utc + 100};
    cr_assert_eq(gateway_iec104_server_update_many(server, up, 4, 1, 0, anm_clock_now_ms(clock)),
                 ANM_OK);
    PUMP_UNTIL(x->n_received >= 6);

    cr_assert_eq(
        gateway_iec104_client_clock_sync(client, anm_wall_clock_ms(), anm_clock_now_ms(clock)),
        ANM_OK);
    note(x, GATEWAY_IEC104_C_CS_NA_1, GATEWAY_IEC104_COT_ACTIVATION);
    PUMP_UNTIL(x->n_received >= 7);
    PUMP_UNTIL(gateway_iec104_client_testfr_confirmed(client) >= 1);
    cr_assert_eq(gateway_iec104_client_stop(client, anm_clock_now_ms(clock)), ANM_OK);
    PUMP_UNTIL(gateway_iec104_client_link_state(client) == GATEWAY_IEC104_LINK_STOPPED);
    gateway_iec104_client_destroy(&client); /* orderly close: FIN, nothing unread */
    PUMP_UNTIL(gateway_iec104_server_client_count(server) == 0);
    PUMP_UNTIL(cap.fins_after_stop >= 2); /* the whole exchange is in the file */
    stop_capture(&cap);

    /* What our client saw is what we sent, in wire order. */
    const step expected[] = {{100, 6}, {100, 7}, {13, 20}, {1, 20}, {100, 10},
                             {36, 3},  {30, 3},  {103, 6}, {103, 7}};
    const int n_expected = (int)(sizeof expected / sizeof expected[0]);
    cr_assert_eq(x->n, n_expected);
    for (int i = 0; i < n_expected; i++) {
        cr_assert_eq(x->log[i].type, expected[i].type, "asdu %d", i);
        cr_assert_eq(x->log[i].cause, expected[i].cause, "asdu %d", i);
    }

    /* 1. Wireshark finds nothing malformed and no expert warning or error. */
    char decode_as[64];
    snprintf(decode_as, sizeof decode_as, "tcp.port==%d,iec60870_104", port);
    char *out = NULL, *err = NULL;
    const char *const check[] = {"tshark",
                                 "-r",
                                 pcap,
                                 "-d",
                                 decode_as,
                                 "-Y",
                                 "_ws.malformed || _ws.expert.severity >= warning",
                                 NULL};
    cr_assert_eq(anm_test_run_args(check, &out, &err), 0, "tshark -r failed: %s", err);
    cr_assert_str_empty(out, "frames wireshark marks malformed or with warnings:\n%s", out);
    free(out);
    free(err);

    /* 2. Its decoded type ids, causes and values are ours. */
    const char *const fields[] = {"tshark",
                                  "-r",
                                  pcap,
                                  "-d",
                                  decode_as,
                                  "-Y",
                                  "iec60870_104",
                                  "-T",
                                  "fields",
                                  "-E",
                                  "aggregator=,",
                                  "-e",
                                  "iec60870_104.utype",
                                  "-e",
                                  "iec60870_asdu.typeid",
                                  "-e",
                                  "iec60870_asdu.causetx",
                                  "-e",
                                  "iec60870_asdu.float",
                                  "-e",
                                  "iec60870_asdu.test",
                                  NULL};
    cr_assert_eq(anm_test_run_args(fields, &out, &err), 0, "tshark -T fields failed: %s", err);
    int n_asdu = 0, n_float = 0;
    step decoded[MAX_LOG];
    double floats[MAX_LOG];
    int u_frames[MAX_LOG], n_u = 0;
    char *raw = strdup(out); /* out is cut into lines below */
    for (char *line = out; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        double u[16], types[16], causes[16], fl[32];
        int nu = split_numbers(column(line, 0), u, 16);
        int nt = split_numbers(column(line, 1), types, 16);
        int nc = split_numbers(column(line, 2), causes, 16);
        int nf = split_numbers(column(line, 3), fl, 32);
        cr_assert_eq(nt, nc, "type ids and causes do not pair up: %s", line);
        for (int i = 0; i < nu && n_u < MAX_LOG; i++)
            u_frames[n_u++] = (int)u[i];
        for (int i = 0; i < nt && n_asdu < MAX_LOG; i++)
            decoded[n_asdu++] = (step){(int)types[i], (int)causes[i]};
        for (int i = 0; i < nf && n_float < MAX_LOG; i++)
            floats[n_float++] = fl[i];
        line = nl != NULL ? nl + 1 : NULL;
    }
    cr_assert_eq(n_asdu, n_expected, "wireshark decoded %d asdus, we sent %d:\n%s", n_asdu,
                 n_expected, raw);
    for (int i = 0; i < n_expected; i++) {
        cr_assert_eq(decoded[i].type, expected[i].type, "asdu %d type", i);
        cr_assert_eq(decoded[i].cause, expected[i].cause, "asdu %d cause", i);
    }
    /* GI floats then spontaneous ones; all exact in float32 */
    cr_assert_eq(n_float, 6);
    for (int i = 0; i < 3; i++) {
        cr_assert_float_eq(floats[i], gi[i], 1e-9);
        cr_assert_float_eq(floats[3 + i], spont[i], 1e-9);
        cr_assert_float_eq(x->values[i], gi[i], 1e-9);
        cr_assert_float_eq(x->values[3 + i], spont[i], 1e-9);
    }
    /* U-frames in order; wireshark's utype is the control octet >> 2:
       STARTDT act/con 0x07/0x0B -> 1/2, TESTFR act/con 0x43/0x83 -> 0x10/0x20,
       STOPDT act/con 0x13/0x23 -> 4/8 */
    const int u_expected[] = {1, 2, 0x10, 0x20, 4, 8};
    cr_assert_eq(n_u, 6, "U-frames decoded:\n%s", raw);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(u_frames[i], u_expected[i], "U-frame %d is 0x%x:\n%s", i, u_frames[i], raw);
    free(raw);
    free(out);
    free(err);
    free(x);
    gateway_iec104_server_destroy(&server);
    anm_clock_destroy(&clock);
    anm_test_rmtree(dir);
    free(dir);
}
