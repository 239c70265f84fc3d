/*
 * client.c: `anm-gateway client --host H --port P [--gi] [--duration S]
 * [--common-address CA]`: connects to an IEC 104 outstation (ours or
 * another), sends STARTDT, optionally a general interrogation, and prints
 * every information object received as one line until the duration ends:
 *
 *   <type> cot=<cause> ca=<common address> ioa=<ioa> value=<value> quality=0x<qds> [time=<ISO>] [test]
 *
 * Exit 0 if the link was started, 1 if it never was (the reason on stderr).
 */
#include "client.h"

#include <stdio.h>
#include <string.h>

#include "engine/cli.h"
#include "engine/clock.h"
#include "engine/log.h"
#include "gateway/iec104_client.h"

#define PROG "anm-gateway client"

typedef struct client_state {
    gateway_iec104_time_config time;
    unsigned long objects;
} client_state;

static int has_time(uint8_t type)
{
    return type == GATEWAY_IEC104_M_SP_TB_1 || type == GATEWAY_IEC104_M_ME_TF_1;
}

static void on_asdu(void *arg, const gateway_iec104_asdu *asdu, int64_t now_ms)
{
    client_state *st = arg;
    (void)now_ms;
    const char *type = gateway_iec104_type_name(asdu->type);
    for (int i = 0; i < asdu->count; i++) {
        const gateway_iec104_object *o = &asdu->objects[i];
        char when[40] = "";
        int64_t utc = 0;
        if (has_time(asdu->type) &&
            gateway_iec104_cp56_to_utc_ms(&o->time, &st->time, &utc) == ANM_OK) {
            char iso[32];
            anm_time_format_utc(utc, iso, sizeof iso);
            snprintf(when, sizeof when, " time=%s", iso);
        }
        double value = asdu->type == GATEWAY_IEC104_M_SP_NA_1 || asdu->type == GATEWAY_IEC104_M_SP_TB_1
                           ? (double)o->single_point
                           : (double)o->value;
        printf("%s cot=%u ca=%u ioa=%lu value=%.6g quality=0x%02x%s%s\n", type ? type : "?",
               (unsigned)asdu->cause, (unsigned)asdu->common_address, (unsigned long)o->ioa, value,
               (unsigned)o->quality, when, asdu->test ? " test" : "");
        st->objects++;
    }
    fflush(stdout);
}

int gateway_client_main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 2404, duration_s = 10, common_address = 1;
    int gi = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--gi") == 0) {
            gi = 1;
            continue;
        }
        if (i + 1 >= argc)
            return anm_cli_usage_error(PROG, "option '%s' needs a value (or unknown option)", a);
        const char *v = argv[++i];
        if (strcmp(a, "--host") == 0) {
            host = v;
        } else if (strcmp(a, "--port") == 0) {
            if (anm_parse_long(v, 1, 65535, &port) != ANM_OK)
                return anm_cli_usage_error(PROG, "--port must be 1..65535, not '%s'", v);
        } else if (strcmp(a, "--duration") == 0) {
            if (anm_parse_long(v, 1, 86400, &duration_s) != ANM_OK)
                return anm_cli_usage_error(PROG, "--duration must be 1..86400 s, not '%s'", v);
        } else if (strcmp(a, "--common-address") == 0) {
            if (anm_parse_long(v, 1, 65534, &common_address) != ANM_OK)
                return anm_cli_usage_error(PROG, "--common-address must be 1..65534, not '%s'", v);
        } else {
            return anm_cli_usage_error(PROG, "unknown option '%s'", a);
        }
    }
    gateway_iec104_client_config c;
    gateway_iec104_client_config_default(&c);
    if (strlen(host) >= sizeof c.host)
        return anm_cli_usage_error(PROG, "--host is too long");
    snprintf(c.host, sizeof c.host, "%s", host);
    c.port = (int)port;
    c.common_address = (uint16_t)common_address;
    c.interrogate_on_start = gi;
    client_state st = {c.time, 0};
    anm_error_detail d;
    anm_error_detail_clear(&d);
    gateway_iec104_client *client = NULL;
    int rc = gateway_iec104_client_new(&c, on_asdu, &st, anm_wall_clock_ms(), &client, &d);
    if (rc != ANM_OK)
        return anm_cli_fail(PROG, "%s", d.message[0] ? d.message : anm_strerror(rc));
    int started = 0;
    int64_t end = anm_monotonic_ns() + duration_s * 1000000000LL;
    while (anm_monotonic_ns() < end) {
        (void)gateway_iec104_client_run_once(client, anm_wall_clock_ms(), 50);
        started |= gateway_iec104_client_is_started(client);
    }
    (void)gateway_iec104_client_stop(client, anm_wall_clock_ms());
    for (int i = 0; i < 5; i++)
        (void)gateway_iec104_client_run_once(client, anm_wall_clock_ms(), 20);
    fprintf(stderr, "%s: %lu objects received from %s:%ld\n", PROG, st.objects, host, port);
    int exit_code = ANM_EXIT_OK;
    if (!started)
        exit_code = anm_cli_fail(PROG, "link to %s:%ld never started: %s", host, port,
                                 gateway_iec104_client_last_error(client));
    gateway_iec104_client_destroy(&client);
    return exit_code;
}
