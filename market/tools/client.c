/*
 * client.c: `anm-market client`, a participant's command-line client
 * (docs/market-protocol.md, "Client"). Connects a CURVE DEALER to the
 * service's ROUTER with the participant's key, sends each JSON request line
 * of a file (or stdin) as [kind][line], waits for its answer and prints it
 * as one line: the JSON as received (--format json) or a readable line, and
 * for an auction.result the merit-order stacks, clearing price and trades
 * (--format table).
 */
#include "market/service.h"

#include "engine/cli.h"
#include "engine/error.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

int market_tool_client(int argc, char **argv);

#define PROG "anm-market"
#define MAX_LINE 16384 /* above the service's 4096-byte limit, so it can say so */
#define MAX_REPLY (16u << 20)

typedef struct label {
    uint64_t order_id;
    char text[96]; /* "participant der side" */
} label;

typedef struct client {
    const char *endpoint, *participant, *labels_path;
    long timeout_ms;
    int table;
    void *ctx, *socket, *monitor;
    char *reply;
    label *labels;
    size_t n_labels, cap_labels;
} client;

static void client_usage(FILE *out)
{
    fprintf(out, "usage: anm-market client --endpoint ENDPOINT --keys DIR --participant NAME\n"
                 "           --server-key FILE [--requests FILE.jsonl | -] [--timeout-ms N]\n"
                 "           [--format json|table] [--labels FILE]\n");
}

/* ---- labels: order id -> "participant der side", kept across runs -------- */

static int label_add(client *c, uint64_t order_id, const char *text)
{
    if (c->n_labels == c->cap_labels) {
        size_t cap = c->cap_labels ? 2 * c->cap_labels : 64;
        label *grown = realloc(c->labels, cap * sizeof *grown);
        if (grown == NULL)
            return ANM_ENOMEM;
        c->labels = grown;
        c->cap_labels = cap;
    }
    label *l = &c->labels[c->n_labels++];
    l->order_id = order_id;
    snprintf(l->text, sizeof l->text, "%s", text);
    return ANM_OK;
}

/* Reads "order_id text" lines; a missing file is an empty one. */
static int labels_load(client *c)
{
    FILE *f = fopen(c->labels_path, "r");
    if (f == NULL)
        return errno == ENOENT ? ANM_OK : ANM_EIO;
    char line[256];
    int rc = ANM_OK;
    while (rc == ANM_OK && fgets(line, sizeof line, f) != NULL) {
        char *end = NULL;
        errno = 0;
        unsigned long long id = strtoull(line, &end, 10);
        if (errno != 0 || end == line || *end != ' ')
            continue;
        end[strcspn(end, "\n")] = '\0';
        rc = label_add(c, (uint64_t)id, end + 1);
    }
    fclose(f);
    return rc;
}

static const char *label_find(const client *c, uint64_t order_id)
{
    for (size_t i = c->n_labels; i-- > 0;)
        if (c->labels[i].order_id == order_id)
            return c->labels[i].text;
    return "";
}

/* After an accepted submit or replace: remember who and what the order is. */
static int label_record(client *c, const json_t *request, const json_t *ack)
{
    json_int_t id = json_integer_value(json_object_get(ack, "order_id"));
    const char *der = json_string_value(json_object_get(request, "der"));
    const char *side = json_string_value(json_object_get(request, "side"));
    if (id <= 0 || side == NULL)
        return ANM_OK;
    char text[96];
    snprintf(text, sizeof text, "%s %s %s", c->participant, der ? der : "-", side);
    int rc = label_add(c, (uint64_t)id, text);
    if (rc != ANM_OK || c->labels_path == NULL)
        return rc;
    FILE *f = fopen(c->labels_path, "a");
    if (f == NULL)
        return ANM_EIO;
    fprintf(f, "%" PRIu64 " %s\n", (uint64_t)id, text);
    return fclose(f) == 0 ? ANM_OK : ANM_EIO;
}

/* ---- readable output -------------------------------------------------------- */

static double num(const json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static void print_stack(const client *c, const json_t *stack, const char *title)
{
    size_t n = json_array_size(stack);
    printf("%s (%zu orders)\n", title, n);
    if (n == 0)
        return;
    printf("  %3s  %-10s  %-32s  %9s  %8s  %8s  %8s  %8s\n", "#", "order", "participant der side",
           "GBP/MWh", "avail", "MW", "cum MW", "accepted");
    double cumulative = 0.0;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(stack, i);
        cumulative += num(e, "quantity_mw");
        uint64_t id = (uint64_t)json_integer_value(json_object_get(e, "order_id"));
        printf("  %3zu  %-10" PRIu64 "  %-32s  %9.2f  %8.2f  %8.3f  %8.3f  %8.3f\n", i + 1, id,
               label_find(c, id), num(e, "price"), num(e, "availability_price"),
               num(e, "quantity_mw"), cumulative, num(e, "accepted_mw"));
    }
}

static void print_auction(const client *c, const json_t *r)
{
    printf("auction %s %s\n", str(r, "zone"), str(r, "period_start"));
    print_stack(c, json_object_get(r, "offers"), "offers (relief), ascending");
    print_stack(c, json_object_get(r, "bids"), "bids and requirements, descending");
    printf("unconstrained volume %.3f MW, accepted volume %.3f MW", num(r, "unconstrained_mw"),
           num(r, "accepted_mw"));
    if (json_is_true(json_object_get(r, "has_price")))
        printf(", clearing price %.2f GBP/MWh\n", num(r, "clearing_price"));
    else
        printf(", no clearing price (nothing traded)\n");
    json_int_t limiting = json_integer_value(json_object_get(r, "limiting_constraint"));
    const char *limiting_name = json_string_value(json_object_get(r, "limiting_constraint_name"));
    if (limiting >= 0 && limiting_name != NULL)
        printf("feasibility: constraint %s of the statement cut or refused a pair\n",
               limiting_name);
    else if (limiting >= 0)
        printf("feasibility: constraint %" JSON_INTEGER_FORMAT
               " of the statement cut or refused a pair\n",
               limiting);
    const json_t *trades = json_object_get(r, "trades");
    printf("trades (%zu)\n", json_array_size(trades));
    if (json_array_size(trades) == 0)
        return;
    printf("  %5s  %-10s  %-10s  %-24s  %-24s  %8s  %9s  %9s\n", "trade", "buy", "sell", "buyer",
           "seller", "MW", "buyer GBP", "seller GBP");
    for (size_t i = 0; i < json_array_size(trades); i++) {
        const json_t *t = json_array_get(trades, i);
        uint64_t buy = (uint64_t)json_integer_value(json_object_get(t, "buy_order_id"));
        uint64_t sell = (uint64_t)json_integer_value(json_object_get(t, "sell_order_id"));
        const char *buy_label = label_find(c, buy), *sell_label = label_find(c, sell);
        printf("  %5" JSON_INTEGER_FORMAT "  %-10" PRIu64 "  %-10" PRIu64
               "  %-24.24s  %-24.24s  %8.3f  %9.2f  %9.2f\n",
               json_integer_value(json_object_get(t, "trade_id")), buy, sell,
               buy_label[0] ? buy_label : str(t, "buyer"),
               sell_label[0] ? sell_label : str(t, "seller"), num(t, "volume_mw"),
               num(t, "buyer_price"), num(t, "seller_price"));
    }
}

/* One readable line (or block) for the answer r to request. */
static void print_table(client *c, const json_t *r, const char *raw)
{
    const char *kind = str(r, "kind");
    if (strcmp(kind, "order.ack") == 0 && json_integer_value(json_object_get(r, "order_id")) == 0) {
        printf("ack     %s\n", str(r, "request"));
    } else if (strcmp(kind, "order.ack") == 0) {
        printf("ack     %-13s client_order_id=%" JSON_INTEGER_FORMAT " order_id=%" JSON_INTEGER_FORMAT
               "%s trades=%" JSON_INTEGER_FORMAT " filled=%.3f MW resting=%.3f MW\n",
               str(r, "request"), json_integer_value(json_object_get(r, "client_order_id")),
               json_integer_value(json_object_get(r, "order_id")),
               json_is_true(json_object_get(r, "resubmission")) ? " (resubmission)" : "",
               json_integer_value(json_object_get(r, "trades")), num(r, "filled_mw"),
               num(r, "resting_mw"));
    } else if (strcmp(kind, "order.reject") == 0) {
        printf("reject  %-13s %s (%" JSON_INTEGER_FORMAT "): %s\n", str(r, "request"),
               str(r, "reason"), json_integer_value(json_object_get(r, "code")), str(r, "text"));
    } else if (strcmp(kind, "auction.result") == 0) {
        print_auction(c, r);
    } else {
        printf("%s\n", raw);
    }
}

/* ---- connection ------------------------------------------------------------- */

/* Why the handshake failed, from the socket monitor, or NULL if it did not. */
static const char *handshake_failure(client *c)
{
    for (;;) {
        zmq_msg_t event, address;
        zmq_msg_init(&event);
        if (zmq_msg_recv(&event, c->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&event);
            return NULL;
        }
        uint16_t id = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&event) >= 6) {
            memcpy(&id, zmq_msg_data(&event), 2);
            memcpy(&value, (const char *)zmq_msg_data(&event) + 2, 4);
        }
        zmq_msg_close(&event);
        zmq_msg_init(&address);
        (void)zmq_msg_recv(&address, c->monitor, 0);
        zmq_msg_close(&address);
        if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            return value == 400 ? "the server refused the participant's key (ZAP 400)"
                                : "the server refused the participant's key";
        if (id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL || id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            return "the CURVE handshake failed (wrong server key?)";
    }
}

static int client_connect(client *c, const char *keys_dir, const char *server_key_path)
{
    char path[4096], public_key[41], secret_key[41], server_key[41];
    int n = snprintf(path, sizeof path, "%s/%s.secret", keys_dir, c->participant);
    if (n < 0 || (size_t)n >= sizeof path)
        return anm_cli_usage_error(PROG, "client: key directory path is too long");
    if (market_keyfile_read(path, public_key, secret_key) != ANM_OK)
        return anm_cli_fail(PROG, "could not read key file \"%s\"", path);
    if (market_keyfile_read(server_key_path, server_key, NULL) != ANM_OK)
        return anm_cli_fail(PROG, "could not read server key file \"%s\"", server_key_path);
    c->ctx = zmq_ctx_new();
    c->socket = c->ctx ? zmq_socket(c->ctx, ZMQ_DEALER) : NULL;
    if (c->socket == NULL)
        return anm_cli_fail(PROG, "could not create a socket: %s", zmq_strerror(errno));
    int linger = 0;
    if (zmq_setsockopt(c->socket, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(c->socket, ZMQ_CURVE_SERVERKEY, server_key, 40) != 0 ||
        zmq_setsockopt(c->socket, ZMQ_CURVE_PUBLICKEY, public_key, 40) != 0 ||
        zmq_setsockopt(c->socket, ZMQ_CURVE_SECRETKEY, secret_key, 40) != 0)
        return anm_cli_fail(PROG, "could not set the CURVE keys: %s", zmq_strerror(errno));
    char monitor[64];
    snprintf(monitor, sizeof monitor, "inproc://client-monitor-%p", c->socket);
    if (zmq_socket_monitor(c->socket, monitor,
                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0)
        return anm_cli_fail(PROG, "could not monitor the socket: %s", zmq_strerror(errno));
    c->monitor = zmq_socket(c->ctx, ZMQ_PAIR);
    if (c->monitor == NULL || zmq_setsockopt(c->monitor, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_connect(c->monitor, monitor) != 0)
        return anm_cli_fail(PROG, "could not monitor the socket: %s", zmq_strerror(errno));
    if (zmq_connect(c->socket, c->endpoint) != 0)
        return anm_cli_fail(PROG, "could not connect to \"%s\": %s", c->endpoint,
                            zmq_strerror(errno));
    return ANM_EXIT_OK;
}

/* Sends one request line and prints its answer. ANM_EXIT_OK or a failure exit. */
static int client_request(client *c, const char *line, size_t length, long line_number)
{
    json_error_t jerr;
    json_t *request = json_loadb(line, length, 0, &jerr);
    const char *kind = json_string_value(json_object_get(request, "kind"));
    if (kind == NULL) {
        json_decref(request);
        return anm_cli_fail(PROG, "request line %ld is not a JSON object with a \"kind\"",
                            line_number);
    }
    int rc = ANM_EXIT_OK;
    if (zmq_send(c->socket, kind, strlen(kind), ZMQ_SNDMORE) < 0 ||
        zmq_send(c->socket, line, length, 0) < 0) {
        rc = anm_cli_fail(PROG, "could not send request line %ld: %s", line_number,
                          zmq_strerror(errno));
        goto out;
    }
    for (long waited = 0;;) {
        zmq_pollitem_t items[2] = {{c->socket, 0, ZMQ_POLLIN, 0}, {c->monitor, 0, ZMQ_POLLIN, 0}};
        long slice = c->timeout_ms - waited < 100 ? c->timeout_ms - waited : 100;
        int ready = zmq_poll(items, 2, slice);
        if (ready < 0 && errno != EINTR) {
            rc = anm_cli_fail(PROG, "could not poll: %s", zmq_strerror(errno));
            goto out;
        }
        const char *failure = handshake_failure(c);
        if (failure != NULL) {
            rc = anm_cli_fail(PROG, "could not connect to \"%s\" as \"%s\": %s", c->endpoint,
                              c->participant, failure);
            goto out;
        }
        if (ready > 0 && (items[0].revents & ZMQ_POLLIN))
            break;
        waited += slice;
        if (waited >= c->timeout_ms) {
            rc = anm_cli_fail(PROG, "no answer from \"%s\" to request line %ld within %ld ms",
                              c->endpoint, line_number, c->timeout_ms);
            goto out;
        }
    }
    int n = zmq_recv(c->socket, c->reply, MAX_REPLY - 1, 0);
    if (n < 0) {
        rc = anm_cli_fail(PROG, "could not receive: %s", zmq_strerror(errno));
        goto out;
    }
    if (n > (int)MAX_REPLY - 1)
        n = (int)MAX_REPLY - 1;
    c->reply[n] = '\0';
    json_t *answer = json_loadb(c->reply, (size_t)n, 0, &jerr);
    if (answer != NULL && strcmp(str(answer, "kind"), "order.ack") == 0 &&
        (strcmp(kind, "order.submit") == 0 || strcmp(kind, "order.replace") == 0) &&
        label_record(c, request, answer) != ANM_OK)
        fprintf(stderr, "anm-market: could not record the label in \"%s\"\n",
                c->labels_path ? c->labels_path : "");
    if (c->table && answer != NULL)
        print_table(c, answer, c->reply);
    else
        printf("%s\n", c->reply);
    fflush(stdout);
    json_decref(answer);
out:
    json_decref(request);
    return rc;
}

static int client_run(client *c, FILE *in)
{
    char *line = malloc(MAX_LINE + 2);
    if (line == NULL)
        return anm_cli_fail(PROG, "out of memory");
    int rc = ANM_EXIT_OK;
    long line_number = 0;
    while (rc == ANM_EXIT_OK && fgets(line, MAX_LINE + 2, in) != NULL) {
        line_number++;
        size_t length = strlen(line);
        if (length > MAX_LINE) {
            rc = anm_cli_fail(PROG, "request line %ld is longer than %d bytes", line_number,
                              MAX_LINE);
            break;
        }
        while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r'))
            line[--length] = '\0';
        size_t skip = strspn(line, " \t");
        if (line[skip] == '\0' || line[skip] == '#')
            continue;
        rc = client_request(c, line + skip, length - skip, line_number);
    }
    if (rc == ANM_EXIT_OK && ferror(in))
        rc = anm_cli_fail(PROG, "could not read the requests: %s", strerror(errno));
    free(line);
    return rc;
}

int market_tool_client(int argc, char **argv)
{
    client c;
    memset(&c, 0, sizeof c);
    c.timeout_ms = 5000;
    const char *keys_dir = NULL, *server_key = NULL, *requests = "-";
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0) {
            client_usage(stdout);
            return ANM_EXIT_OK;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return anm_cli_usage_error(PROG, "client: option '%s' needs a value", o);
        i++;
        if (strcmp(o, "--endpoint") == 0)
            c.endpoint = v;
        else if (strcmp(o, "--keys") == 0)
            keys_dir = v;
        else if (strcmp(o, "--participant") == 0)
            c.participant = v;
        else if (strcmp(o, "--server-key") == 0)
            server_key = v;
        else if (strcmp(o, "--requests") == 0)
            requests = v;
        else if (strcmp(o, "--labels") == 0)
            c.labels_path = v;
        else if (strcmp(o, "--format") == 0 && (strcmp(v, "json") == 0 || strcmp(v, "table") == 0))
            c.table = strcmp(v, "table") == 0;
        else if (strcmp(o, "--timeout-ms") == 0 && anm_parse_long(v, 1, 3600000L, &c.timeout_ms) == 0)
            continue;
        else
            return anm_cli_usage_error(PROG, "client: bad option or value '%s %s'", o, v);
    }
    if (c.endpoint == NULL || keys_dir == NULL || c.participant == NULL || server_key == NULL)
        return anm_cli_usage_error(PROG, "client: --endpoint, --keys, --participant and "
                                         "--server-key are required");
    int rc = ANM_EXIT_OK;
    FILE *in = strcmp(requests, "-") == 0 ? stdin : fopen(requests, "r");
    if (in == NULL)
        return anm_cli_fail(PROG, "could not open \"%s\": %s", requests, strerror(errno));
    if (c.labels_path != NULL && labels_load(&c) != ANM_OK) {
        rc = anm_cli_fail(PROG, "could not read labels \"%s\"", c.labels_path);
        goto close_input;
    }
    c.reply = malloc(MAX_REPLY);
    if (c.reply == NULL) {
        rc = anm_cli_fail(PROG, "out of memory");
        goto close_input;
    }
    rc = client_connect(&c, keys_dir, server_key);
    if (rc == ANM_EXIT_OK)
        rc = client_run(&c, in);
    if (c.monitor != NULL)
        zmq_close(c.monitor);
    if (c.socket != NULL) {
        (void)zmq_socket_monitor(c.socket, NULL, 0);
        zmq_close(c.socket);
    }
    if (c.ctx != NULL)
        zmq_ctx_term(c.ctx);
    free(c.reply);
close_input:
    free(c.labels);
    if (in != stdin)
        fclose(in);
    return rc;
}
