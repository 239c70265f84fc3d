/*
 * cmd_replay.c: `anm replay FILE --speed N`, a telemetry sender that pushes a
 * recorded CSV (signal,time_utc,value,quality) to anm-ingest on the engine
 * clock: a simulated clock that starts at the file's first time and runs at
 * speed N (0: as fast as the service acknowledges). Batches not acknowledged
 * within the resend timeout (or refused with journal_full) are sent again
 * with the resend flag; the command ends when every batch is acknowledged or
 * refused, and prints the counts.
 *
 * Signals are registry ids: a numeric column is taken as the signal_key,
 * anything else is looked up in the signals table (--conninfo or
 * $ANM_DB_CONNINFO).
 */
#include "commands.h"

#include "engine/bus.h"
#include "engine/cli.h"
#include "engine/clock.h"
#include "engine/db.h"
#include "engine/telemetry_frame.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define PROG "anm replay"

typedef struct row {
    uint32_t signal;
    int64_t utc_ms;
    double value;
    uint16_t quality;
} row;

typedef struct inflight {
    uint64_t seq;
    unsigned char *frame;
    size_t size;
    size_t count;
    int64_t sent_ns;
    int state; /* 0 waiting, 1 acked, 2 refused, 3 retry later */
} inflight;

typedef struct replay_args {
    const char *file, *endpoint, *conninfo, *clock_spec;
    double speed;
    long sender_id, batch, window, timeout_ms;
} replay_args;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: anm replay FILE [--speed N | --clock SPEC] [--endpoint E] [--conninfo C]\n"
            "                  [--sender-id N] [--batch N] [--window N] [--timeout-ms N]\n\n"
            "Sends a CSV of samples (header signal,time_utc,value,quality) to anm-ingest.\n\n"
            "  --speed N       engine clock speed from the file's first time (default 0: as fast\n"
            "                  as possible; 1: real time; 60: an hour a minute)\n"
            "  --clock SPEC    send each sample when this engine clock reaches its time instead\n"
            "                  (real, sim:TIME[@SPEED]; 'real' for live data stamped from now on)\n"
            "  --endpoint E    the ingest ROUTER (default tcp://127.0.0.1:5601)\n"
            "  --conninfo C    database to resolve signal ids (default $ANM_DB_CONNINFO)\n"
            "  --sender-id N   this sender's id (default 1)\n"
            "  --batch N       samples per batch at most (default 1000)\n"
            "  --window N      batches in flight at most (default 32)\n"
            "  --timeout-ms N  resend a batch not acknowledged after this (default 2000)\n");
}

typedef struct name_map {
    char **names;
    uint32_t *keys;
    size_t count;
} name_map;

static int load_names(const char *conninfo, name_map *m)
{
    anm_db *db = NULL;
    anm_db_result *r = NULL;
    anm_db_options o = {.component = "replay.db", .max_attempts = 1};
    int rc = anm_db_connect(conninfo, &o, &db);
    if (rc == ANM_OK)
        rc = anm_db_exec(db, "SELECT signal_id, signal_key FROM signals", 0, NULL, &r, NULL);
    if (rc != ANM_OK) {
        fprintf(stderr, "%s: could not read the signals table: %s\n", PROG,
                db ? anm_db_error_message(db) : anm_strerror(rc));
        goto done;
    }
    m->count = (size_t)anm_db_result_rows(r);
    m->names = calloc(m->count + 1, sizeof *m->names);
    m->keys = calloc(m->count + 1, sizeof *m->keys);
    if (!m->names || !m->keys) {
        rc = ANM_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < m->count; i++) {
        m->names[i] = strdup(anm_db_result_value(r, (int)i, 0));
        m->keys[i] = (uint32_t)strtoul(anm_db_result_value(r, (int)i, 1), NULL, 10);
        if (!m->names[i]) {
            rc = ANM_ENOMEM;
            goto done;
        }
    }
done:
    anm_db_result_destroy(&r);
    anm_db_destroy(&db);
    return rc;
}

static void free_names(name_map *m)
{
    for (size_t i = 0; m->names && i < m->count; i++)
        free(m->names[i]);
    free(m->names);
    free(m->keys);
}

static int resolve(const replay_args *a, name_map *m, int *loaded, const char *name, uint32_t *out)
{
    long v;
    if (anm_parse_long(name, 0, (long)UINT32_MAX, &v) == ANM_OK) {
        *out = (uint32_t)v;
        return ANM_OK;
    }
    if (!*loaded) {
        const char *conninfo = a->conninfo ? a->conninfo : anm_db_conninfo(NULL);
        if (!conninfo) {
            fprintf(stderr, "%s: signal \"%s\" is a name: pass --conninfo or set %s\n", PROG, name,
                    ANM_DB_CONNINFO_ENV);
            return ANM_EINVAL;
        }
        int rc = load_names(conninfo, m);
        if (rc != ANM_OK)
            return rc;
        *loaded = 1;
    }
    for (size_t i = 0; i < m->count; i++)
        if (strcmp(m->names[i], name) == 0) {
            *out = m->keys[i];
            return ANM_OK;
        }
    return ANM_ENOTFOUND;
}

static int cmp_rows(const void *x, const void *y)
{
    const row *a = x, *b = y;
    return a->utc_ms < b->utc_ms ? -1 : a->utc_ms > b->utc_ms;
}

/* Reads the CSV into *rows. Messages name the file and line. */
static int read_csv(const replay_args *a, row **rows_out, size_t *n_out)
{
    FILE *f = fopen(a->file, "r");
    if (!f) {
        fprintf(stderr, "%s: could not open \"%s\"\n", PROG, a->file);
        return ANM_EIO;
    }
    name_map names = {0};
    int loaded = 0, rc = ANM_OK;
    row *rows = NULL;
    size_t n = 0, cap = 0;
    char line[1024];
    long lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strcspn(line, "\r\n");
        line[len] = '\0';
        if (len == 0 || (lineno == 1 && strncmp(line, "signal,", 7) == 0))
            continue;
        char *fields[4];
        int nf = 0;
        char *p = line;
        while (nf < 4) {
            fields[nf++] = p;
            char *comma = strchr(p, ',');
            if (!comma)
                break;
            *comma = '\0';
            p = comma + 1;
        }
        row r;
        double value;
        long quality;
        if (nf != 4 || strchr(fields[3], ',')) {
            fprintf(stderr, "%s:%ld: expected 4 fields signal,time_utc,value,quality\n", a->file, lineno);
            rc = ANM_EPARSE;
            break;
        }
        if ((rc = resolve(a, &names, &loaded, fields[0], &r.signal)) != ANM_OK) {
            if (rc == ANM_ENOTFOUND)
                fprintf(stderr, "%s:%ld: unknown signal \"%s\"\n", a->file, lineno, fields[0]);
            break;
        }
        if (anm_time_parse_iso8601(fields[1], &r.utc_ms) != ANM_OK) {
            fprintf(stderr, "%s:%ld: bad time \"%s\"\n", a->file, lineno, fields[1]);
            rc = ANM_EPARSE;
            break;
        }
        if (anm_parse_double(fields[2], -HUGE_VAL, HUGE_VAL, &value) != ANM_OK || !isfinite(value)) {
            fprintf(stderr, "%s:%ld: bad value \"%s\"\n", a->file, lineno, fields[2]);
            rc = ANM_EPARSE;
            break;
        }
        if (anm_parse_long(fields[3], 0, 65535, &quality) != ANM_OK) {
            fprintf(stderr, "%s:%ld: bad quality \"%s\"\n", a->file, lineno, fields[3]);
            rc = ANM_EPARSE;
            break;
        }
        r.value = value;
        r.quality = (uint16_t)quality;
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            row *q = realloc(rows, cap * sizeof *q);
            if (!q) {
                rc = ANM_ENOMEM;
                break;
            }
            rows = q;
        }
        rows[n++] = r;
    }
    fclose(f);
    free_names(&names);
    if (rc != ANM_OK) {
        free(rows);
        return rc;
    }
    qsort(rows, n, sizeof *rows, cmp_rows); /* stable enough: equal times keep no order promise */
    *rows_out = rows;
    *n_out = n;
    return ANM_OK;
}

static int parse_args(int argc, char **argv, replay_args *a)
{
    memset(a, 0, sizeof *a);
    a->endpoint = "tcp://127.0.0.1:5601";
    a->sender_id = 1;
    a->batch = 1000;
    a->window = 32;
    a->timeout_ms = 2000;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (arg[0] != '-') {
            if (a->file)
                return -anm_cli_usage_error(PROG, "more than one file");
            a->file = arg;
            continue;
        }
        if (i + 1 >= argc)
            return -anm_cli_usage_error(PROG, "option '%s' needs a value", arg);
        const char *v = argv[++i];
        int ok = ANM_OK;
        if (strcmp(arg, "--speed") == 0)
            ok = anm_parse_double(v, 0, 1e9, &a->speed);
        else if (strcmp(arg, "--clock") == 0)
            a->clock_spec = v;
        else if (strcmp(arg, "--endpoint") == 0)
            a->endpoint = v;
        else if (strcmp(arg, "--conninfo") == 0)
            a->conninfo = v;
        else if (strcmp(arg, "--sender-id") == 0)
            ok = anm_parse_long(v, 0, (long)UINT32_MAX, &a->sender_id);
        else if (strcmp(arg, "--batch") == 0)
            ok = anm_parse_long(v, 1, 100000, &a->batch);
        else if (strcmp(arg, "--window") == 0)
            ok = anm_parse_long(v, 1, 1000, &a->window);
        else if (strcmp(arg, "--timeout-ms") == 0)
            ok = anm_parse_long(v, 1, 3600000, &a->timeout_ms);
        else
            return -anm_cli_usage_error(PROG, "unknown option '%s'", arg);
        if (ok != ANM_OK)
            return -anm_cli_usage_error(PROG, "bad value '%s' for %s", v, arg);
    }
    if (!a->file)
        return -anm_cli_usage_error(PROG, "missing FILE");
    return 0;
}

typedef struct reject_count {
    char code[64];
    size_t batches, samples;
} reject_count;

int anm_cmd_replay(int argc, char **argv)
{
    replay_args a;
    int p = parse_args(argc, argv, &a);
    if (p != 0)
        return p > 0 ? ANM_EXIT_OK : -p;
    row *rows = NULL;
    size_t n_rows = 0;
    if (read_csv(&a, &rows, &n_rows) != ANM_OK)
        return ANM_EXIT_FAILURE;
    int exit_code = ANM_EXIT_FAILURE;
    anm_bus *bus = NULL;
    anm_socket *dealer = NULL;
    anm_clock *clock = NULL;
    inflight *fl = NULL;
    size_t n_fl = 0, cap_fl = 0, next_row = 0, acked_batches = 0, acked_samples = 0, resends = 0;
    size_t done_batches = 0;
    reject_count rejects[16];
    size_t n_rejects = 0;
    anm_telemetry_batch batch;
    anm_telemetry_batch_init(&batch);
    char identity[32];
    snprintf(identity, sizeof identity, "replay-%ld", a.sender_id);
    anm_socket_options so;
    anm_socket_options_default(&so);
    so.identity = identity;
    so.send_hwm = 100000;
    char ep[1100];
    const char *e = a.endpoint[0] == '@' || a.endpoint[0] == '>' ? a.endpoint + 1 : a.endpoint;
    snprintf(ep, sizeof ep, ">%s", e);
    anm_error_detail detail;
    if (n_rows == 0) {
        printf("replay: %s has no samples\n", a.file);
        exit_code = ANM_EXIT_OK;
        goto done;
    }
    if (anm_bus_new(&bus) != ANM_OK || anm_socket_new(bus, ANM_SOCKET_DEALER, ep, &so, &dealer, &detail) != ANM_OK) {
        fprintf(stderr, "%s: could not connect to \"%s\"\n", PROG, a.endpoint);
        goto done;
    }
    if (a.clock_spec != NULL) {
        if (anm_clock_new_from_spec(a.clock_spec, &clock) != ANM_OK ||
            (anm_clock_is_simulated(clock) && anm_clock_speed(clock) == 0.0)) {
            exit_code = anm_cli_usage_error(PROG, "bad clock '%s' (real, sim:TIME[@SPEED])",
                                            a.clock_spec);
            goto done;
        }
    } else if (a.speed > 0) {
        clock = anm_clock_new_simulated(rows[0].utc_ms, a.speed);
    }
    uint64_t seq = (uint64_t)anm_wall_clock_ms() * 1000u;
    int64_t started = anm_monotonic_ns();
    while (next_row < n_rows || done_batches < n_fl) {
        int64_t now_ns = anm_monotonic_ns();
        /* send what is due, within the window */
        int64_t engine = clock ? anm_clock_now_ms(clock) : INT64_MAX;
        while (next_row < n_rows && rows[next_row].utc_ms <= engine &&
               n_fl - done_batches < (size_t)a.window) {
            anm_telemetry_batch_reserve(&batch, (size_t)a.batch);
            batch.count = 0;
            batch.sender_id = (uint32_t)a.sender_id;
            batch.seq = seq++;
            batch.flags = 0;
            while (next_row < n_rows && rows[next_row].utc_ms <= engine && batch.count < (size_t)a.batch) {
                const row *r = &rows[next_row++];
                anm_telemetry_batch_push(&batch, r->signal, r->utc_ms, r->value, r->quality);
            }
            if (n_fl == cap_fl) {
                cap_fl = cap_fl ? cap_fl * 2 : 256;
                inflight *q = realloc(fl, cap_fl * sizeof *q);
                if (!q)
                    goto done;
                fl = q;
            }
            inflight *f = &fl[n_fl];
            f->size = anm_telemetry_frame_size(batch.count);
            f->frame = malloc(f->size);
            if (!f->frame || anm_telemetry_encode(&batch, f->frame, f->size, NULL) != ANM_OK)
                goto done;
            f->seq = batch.seq;
            f->count = batch.count;
            f->sent_ns = now_ns;
            f->state = 0;
            n_fl++;
            anm_frame parts[2] = {{ANM_TELEMETRY_TOPIC, strlen(ANM_TELEMETRY_TOPIC)}, {f->frame, f->size}};
            anm_socket_send(dealer, parts, 2, 0);
        }
        /* resend what timed out */
        for (size_t i = 0; i < n_fl; i++) {
            inflight *f = &fl[i];
            if ((f->state == 0 || f->state == 3) && now_ns - f->sent_ns > a.timeout_ms * 1000000L) {
                f->frame[5] |= ANM_TELEMETRY_FLAG_RESEND;
                uint32_t crc = anm_crc32c(f->frame, f->size - 4);
                for (int k = 0; k < 4; k++)
                    f->frame[f->size - 4 + (size_t)k] = (unsigned char)(crc >> (8 * k));
                anm_frame parts[2] = {{ANM_TELEMETRY_TOPIC, strlen(ANM_TELEMETRY_TOPIC)}, {f->frame, f->size}};
                anm_socket_send(dealer, parts, 2, 0);
                f->sent_ns = now_ns;
                f->state = 0;
                resends++;
            }
        }
        /* wait for replies until the next due sample or 50 ms */
        long wait_ms = 50;
        if (clock && next_row < n_rows) {
            int64_t d = anm_clock_real_delay_ms(clock, rows[next_row].utc_ms);
            if (d >= 0 && d < wait_ms)
                wait_ms = (long)d;
        }
        zmq_pollitem_t item = {anm_socket_handle(dealer), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, wait_ms) <= 0)
            continue;
        anm_msg *msg = NULL;
        while (anm_socket_recv(dealer, &msg, ANM_BUS_DONTWAIT) == ANM_OK) {
            size_t ts, bs;
            const char *topic = anm_msg_part(msg, 0, &ts);
            const char *body = anm_msg_part(msg, 1, &bs);
            json_t *j = body ? json_loadb(body, bs, 0, NULL) : NULL;
            json_int_t rseq = json_integer_value(json_object_get(j, "seq"));
            inflight *f = NULL;
            for (size_t i = done_batches; i < n_fl && !f; i++) /* usually near the front */
                if (fl[i].seq == (uint64_t)rseq)
                    f = &fl[i];
            for (size_t i = 0; i < done_batches && !f; i++)
                if (fl[i].seq == (uint64_t)rseq)
                    f = &fl[i];
            if (f && f->state == 0) {
                if (ts == strlen("telemetry.ack") && memcmp(topic, "telemetry.ack", ts) == 0) {
                    f->state = 1;
                    acked_batches++;
                    acked_samples += f->count;
                } else {
                    const char *code = json_string_value(json_object_get(j, "code"));
                    code = code ? code : "?";
                    if (strcmp(code, "journal_full") == 0) {
                        f->state = 3; /* retry after the timeout */
                    } else {
                        f->state = 2;
                        size_t k = 0;
                        while (k < n_rejects && strcmp(rejects[k].code, code) != 0)
                            k++;
                        if (k == n_rejects && n_rejects < 16) {
                            snprintf(rejects[k].code, sizeof rejects[k].code, "%s", code);
                            rejects[k].batches = rejects[k].samples = 0;
                            n_rejects++;
                        }
                        if (k < n_rejects) {
                            rejects[k].batches++;
                            rejects[k].samples += f->count;
                        }
                        const char *text = json_string_value(json_object_get(j, "text"));
                        fprintf(stderr, "%s: batch %" PRIu64 " refused: %s: %s\n", PROG, f->seq, code,
                                text ? text : "");
                    }
                }
            }
            json_decref(j);
            anm_msg_destroy(&msg);
        }
        while (done_batches < n_fl && (fl[done_batches].state == 1 || fl[done_batches].state == 2)) {
            free(fl[done_batches].frame);
            fl[done_batches].frame = NULL;
            done_batches++;
        }
    }
    double secs = (double)(anm_monotonic_ns() - started) / 1e9;
    size_t rejected = 0;
    printf("replay: %zu samples in %zu batches sent, %zu samples acked, ", n_rows, n_fl, acked_samples);
    for (size_t k = 0; k < n_rejects; k++)
        rejected += rejects[k].samples;
    printf("%zu refused", rejected);
    for (size_t k = 0; k < n_rejects; k++)
        printf("%s%s=%zu", k ? ", " : " (", rejects[k].code, rejects[k].samples);
    printf("%s, %zu resends, %.2f s\n", n_rejects ? ")" : "", resends, secs);
    exit_code = rejected ? ANM_EXIT_FAILURE : ANM_EXIT_OK;
    (void)acked_batches;
done:
    for (size_t i = 0; fl && i < n_fl; i++)
        free(fl[i].frame);
    free(fl);
    free(rows);
    anm_telemetry_batch_free(&batch);
    anm_clock_destroy(&clock);
    anm_socket_destroy(&dealer);
    anm_bus_destroy(&bus);
    return exit_code;
}
