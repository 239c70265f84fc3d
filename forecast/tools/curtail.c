/*
 * curtail.c: `anm-forecast curtail`, one sample through a zone's ANM rule.
 *
 *   anm-forecast curtail [--case CASE.m] --zones ZONES.json [--zone ID]
 *       [--demand-scale S] [--available DER=MW[,DER=MW...]]
 *       [--outage BRANCH[,BRANCH...]] [--date YYYY-MM-DD] [--format text|json]
 *
 * Parse, load the case and zone file, build the zone's constraint set in
 * the chosen network state, apply the rule, print.
 */
#include "curtail.h"

#include "engine/cli.h"
#include "engine/error.h"
#include "engine/network.h"
#include "engine/zone.h"
#include "forecast/constraint_set.h"
#include "forecast/rule.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OUTAGES 64

typedef struct curtail_args {
    const char *case_path;
    const char *zones_path;
    const char *zone_id;
    double demand_scale;
    const char *available[64]; /* each a DER=MW[,DER=MW...] list */
    int n_available;
    int outaged[MAX_OUTAGES];
    size_t n_outaged;
    int month, day;
    bool json;
} curtail_args;

static void put_number(FILE *out, double value)
{
    if (isnan(value)) {
        fputs("null", out);
    } else if (value == 0.0) {
        fputc('0', out);
    } else {
        fprintf(out, "%.15g", value);
    }
}

static void put_string(FILE *out, const char *text)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fprintf(out, "\\%c", *p);
        } else if (*p < 0x20) {
            fprintf(out, "\\u%04x", *p);
        } else {
            fputc(*p, out);
        }
    }
    fputc('"', out);
}

static int parse_outages(const char *program, const char *text, curtail_args *a)
{
    char buf[512];
    if (snprintf(buf, sizeof buf, "%s", text) >= (int)sizeof buf) {
        return anm_cli_usage_error(program, "--outage list too long");
    }
    char *item = buf;
    while (item) {
        char *comma = strchr(item, ',');
        if (comma) {
            *comma = '\0';
        }
        long branch;
        if (anm_parse_long(item, 1, 1000000, &branch) != ANM_OK) {
            return anm_cli_usage_error(program, "--outage \"%s\": not a branch number", item);
        }
        if (a->n_outaged >= MAX_OUTAGES) {
            return anm_cli_usage_error(program, "at most %d outaged branches", MAX_OUTAGES);
        }
        a->outaged[a->n_outaged++] = (int)branch;
        item = comma ? comma + 1 : NULL;
    }
    return ANM_EXIT_OK;
}

static int parse_date(const char *program, const char *text, curtail_args *a)
{
    long y, m, d;
    char part[8];
    if (strlen(text) != 10 || text[4] != '-' || text[7] != '-') {
        return anm_cli_usage_error(program, "--date \"%s\": expected YYYY-MM-DD", text);
    }
    memcpy(part, text, 4);
    part[4] = '\0';
    int ok = anm_parse_long(part, 1900, 9999, &y) == ANM_OK;
    memcpy(part, text + 5, 2);
    part[2] = '\0';
    ok = ok && anm_parse_long(part, 1, 12, &m) == ANM_OK;
    memcpy(part, text + 8, 2);
    part[2] = '\0';
    ok = ok && anm_parse_long(part, 1, 31, &d) == ANM_OK;
    if (!ok) {
        return anm_cli_usage_error(program, "--date \"%s\": expected YYYY-MM-DD", text);
    }
    a->month = (int)m;
    a->day = (int)d;
    return ANM_EXIT_OK;
}

static int parse_args(const char *program, int argc, char **argv, curtail_args *a)
{
    memset(a, 0, sizeof *a);
    a->demand_scale = 1.0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
        char name[32];
        const char *eq = strchr(arg, '=');
        if (strncmp(arg, "--", 2) != 0) {
            return anm_cli_usage_error(program, "curtail takes no operand, got \"%s\"", arg);
        }
        if (eq) {
            size_t n = (size_t)(eq - arg);
            if (n >= sizeof name) {
                return anm_cli_usage_error(program, "unknown option \"%s\" for curtail", arg);
            }
            memcpy(name, arg, n);
            name[n] = '\0';
            value = eq + 1;
        } else {
            if (snprintf(name, sizeof name, "%s", arg) >= (int)sizeof name) {
                return anm_cli_usage_error(program, "unknown option \"%s\" for curtail", arg);
            }
            if (i + 1 >= argc) {
                return anm_cli_usage_error(program, "%s needs a value", arg);
            }
            value = argv[++i];
        }
        int status = ANM_EXIT_OK;
        if (strcmp(name, "--case") == 0) {
            a->case_path = value;
        } else if (strcmp(name, "--zones") == 0) {
            a->zones_path = value;
        } else if (strcmp(name, "--zone") == 0) {
            a->zone_id = value;
        } else if (strcmp(name, "--demand-scale") == 0) {
            if (anm_parse_double(value, 0.0, 1e6, &a->demand_scale) != ANM_OK) {
                return anm_cli_usage_error(program, "--demand-scale \"%s\": must be a number >= 0",
                                           value);
            }
        } else if (strcmp(name, "--available") == 0) {
            if (a->n_available >= 64) {
                return anm_cli_usage_error(program, "--available given too often");
            }
            a->available[a->n_available++] = value;
        } else if (strcmp(name, "--outage") == 0) {
            status = parse_outages(program, value, a);
        } else if (strcmp(name, "--date") == 0) {
            status = parse_date(program, value, a);
        } else if (strcmp(name, "--format") == 0) {
            if (strcmp(value, "json") == 0) {
                a->json = true;
            } else if (strcmp(value, "text") == 0) {
                a->json = false;
            } else {
                return anm_cli_usage_error(program, "unknown format \"%s\" (text or json)", value);
            }
        } else if (strcmp(name, "--log-level") == 0) {
            if (anm_cli_apply_log_level(value) != ANM_OK) {
                return anm_cli_usage_error(program, "unknown log level \"%s\"", value);
            }
        } else {
            return anm_cli_usage_error(program, "unknown option \"%s\" for curtail", name);
        }
        if (status != ANM_EXIT_OK) {
            return status;
        }
    }
    if (!a->zones_path) {
        return anm_cli_usage_error(program, "curtail needs --zones ZONES.json");
    }
    return ANM_EXIT_OK;
}

/* Fills available (zone order) from the --available lists; the rest stay at
   their capacity. Returns ANM_EXIT_OK or a usage status. */
static int parse_available(const char *program, const curtail_args *a, const anm_zone *zone,
                           double *available)
{
    for (size_t j = 0; j < zone->n_ders; j++) {
        available[j] = zone->ders[j].capacity_mw;
    }
    for (int i = 0; i < a->n_available; i++) {
        char buf[1024];
        if (snprintf(buf, sizeof buf, "%s", a->available[i]) >= (int)sizeof buf) {
            return anm_cli_usage_error(program, "--available list too long");
        }
        char *item = buf;
        while (item) {
            char *comma = strchr(item, ',');
            if (comma) {
                *comma = '\0';
            }
            char *eq = strchr(item, '=');
            if (!eq) {
                return anm_cli_usage_error(program, "--available \"%s\": expected DER=MW", item);
            }
            *eq = '\0';
            int j = anm_zone_der_index(zone, item);
            if (j < 0) {
                return anm_cli_usage_error(program, "--available: \"%s\" is not a DER of zone %s",
                                           item, zone->id);
            }
            double mw;
            double capacity = zone->ders[j].capacity_mw;
            if (anm_parse_double(eq + 1, 0.0, capacity, &mw) != ANM_OK) {
                return anm_cli_usage_error(
                    program, "--available %s=%s: must be a number from 0 to its capacity %g MW",
                    item, eq + 1, capacity);
            }
            available[j] = mw;
            item = comma ? comma + 1 : NULL;
        }
    }
    return ANM_EXIT_OK;
}

static int report(const char *program, const anm_error_detail *err, int rc, const char *what)
{
    char line[1200];
    if (err->message[0] == '\0' || anm_error_detail_format(err, line, sizeof line) <= 0) {
        return anm_cli_fail(program, "%s: %s", what, anm_strerror(rc));
    }
    return anm_cli_fail(program, "%s", line);
}

typedef struct monitored_view {
    double flow_mw, limit_mw;           /* the state itself */
    double post_flow_mw, post_limit_mw; /* worst post-fault row (preventive) */
    int post_contingency;               /* 0 when none */
} monitored_view;

static void summarise_monitored(const forecast_constraint_set *set, const double *flow,
                                monitored_view *mv, size_t nm)
{
    const double *limit = forecast_constraint_set_limit_mw(set);
    for (size_t l = 0; l < nm; l++) {
        mv[l].post_flow_mw = NAN;
        mv[l].post_limit_mw = NAN;
        mv[l].post_contingency = 0;
    }
    for (size_t c = 0; c < forecast_constraint_set_count(set); c++) {
        size_t l = forecast_constraint_set_row_monitored(set, c);
        int k = forecast_constraint_set_row_contingency(set, c);
        if (k == 0) {
            mv[l].flow_mw = flow[c];
            mv[l].limit_mw = limit[c];
        } else if (mv[l].post_contingency == 0 ||
                   flow[c] - limit[c] > mv[l].post_flow_mw - mv[l].post_limit_mw) {
            mv[l].post_flow_mw = flow[c];
            mv[l].post_limit_mw = limit[c];
            mv[l].post_contingency = k;
        }
    }
}

static void print_text(const curtail_args *a, const anm_zone *zone,
                       const forecast_constraint_set *set, const double *available,
                       const double *dispatched, const monitored_view *mv,
                       const forecast_rule_result *res)
{
    printf("zone %s: %s, %s, demand scale %g, ", zone->id, anm_access_name(zone->access),
           anm_mode_name(forecast_constraint_set_mode(set)), a->demand_scale);
    if (a->n_outaged == 0) {
        printf("intact network\n");
    } else {
        printf("branch%s out:", a->n_outaged > 1 ? "es" : "");
        for (size_t i = 0; i < a->n_outaged; i++) {
            printf(" %d", a->outaged[i]);
        }
        printf("\n");
    }
    printf("\n%-16s %8s %14s %14s %14s\n", "der", "bus", "available_mw", "dispatched_mw",
           "curtailed_mw");
    for (size_t j = 0; j < zone->n_ders; j++) {
        printf("%-16s %8d %14.6f %14.6f %14.6f%s%s\n", zone->ders[j].id, zone->ders[j].bus,
               available[j], dispatched[j], available[j] - dispatched[j],
               zone->ders[j].under_anm ? "" : "  (not under ANM)",
               forecast_constraint_set_der_energised(set)[j] ? ""
                                                             : "  (disconnected by the outage)");
    }
    bool preventive = forecast_constraint_set_mode(set) == ANM_MODE_PREVENTIVE;
    printf("\n%-16s %8s %12s %12s", "monitored", "branch", "flow_mw", "limit_mw");
    if (preventive) {
        printf(" %16s %12s %12s", "worst_post_mw", "limit_mw", "contingency");
    }
    printf("\n");
    for (size_t l = 0; l < zone->n_monitored; l++) {
        printf("%-16s %8d %12.6f %12.6f", zone->monitored[l].id, zone->monitored[l].branch,
               mv[l].flow_mw, mv[l].limit_mw);
        if (preventive && mv[l].post_contingency > 0) {
            printf(" %16.6f %12.6f %12d", mv[l].post_flow_mw, mv[l].post_limit_mw,
                   mv[l].post_contingency);
        } else if (preventive) {
            printf(" %16s %12s %12s", "-", "-", "-");
        }
        printf("\n");
    }
    printf("\ncurtailed %s, total %.6f MW", res->curtailed ? "yes" : "no", res->total_curtailed_mw);
    if (zone->access == ANM_ACCESS_PRO_RATA) {
        printf(", alpha %.9f", res->pro_rata_alpha);
    }
    printf("; unresolved %s", res->unresolved ? "yes" : "no");
    if (res->binding_constraint >= 0) {
        size_t c = (size_t)res->binding_constraint;
        size_t l = forecast_constraint_set_row_monitored(set, c);
        int k = forecast_constraint_set_row_contingency(set, c);
        printf("; binding %s", zone->monitored[l].id);
        if (k > 0) {
            printf(" after the loss of branch %d", k);
        }
    }
    printf("\n");
}

static void print_json(const curtail_args *a, const anm_zone *zone,
                       const forecast_constraint_set *set, const double *available,
                       const double *dispatched, const monitored_view *mv,
                       const forecast_rule_result *res)
{
    printf("{\"zone\":");
    put_string(stdout, zone->id);
    printf(",\"access\":\"%s\",\"mode\":\"%s\",\"demand_scale\":", anm_access_name(zone->access),
           anm_mode_name(forecast_constraint_set_mode(set)));
    put_number(stdout, a->demand_scale);
    printf(",\"outaged_branches\":[");
    for (size_t i = 0; i < a->n_outaged; i++) {
        printf("%s%d", i ? "," : "", a->outaged[i]);
    }
    printf("],\"ders\":[");
    for (size_t j = 0; j < zone->n_ders; j++) {
        printf("%s\n{\"id\":", j ? "," : "");
        put_string(stdout, zone->ders[j].id);
        printf(",\"bus\":%d,\"under_anm\":%s,\"energised\":%s,\"available_mw\":", zone->ders[j].bus,
               zone->ders[j].under_anm ? "true" : "false",
               forecast_constraint_set_der_energised(set)[j] ? "true" : "false");
        put_number(stdout, available[j]);
        printf(",\"dispatched_mw\":");
        put_number(stdout, dispatched[j]);
        printf(",\"curtailed_mw\":");
        put_number(stdout, available[j] - dispatched[j]);
        printf("}");
    }
    printf("],\"monitored\":[");
    bool preventive = forecast_constraint_set_mode(set) == ANM_MODE_PREVENTIVE;
    for (size_t l = 0; l < zone->n_monitored; l++) {
        printf("%s\n{\"id\":", l ? "," : "");
        put_string(stdout, zone->monitored[l].id);
        printf(",\"branch\":%d,\"flow_mw\":", zone->monitored[l].branch);
        put_number(stdout, mv[l].flow_mw);
        printf(",\"limit_mw\":");
        put_number(stdout, mv[l].limit_mw);
        if (preventive) {
            printf(",\"worst_post_fault\":");
            if (mv[l].post_contingency > 0) {
                printf("{\"contingency\":%d,\"flow_mw\":", mv[l].post_contingency);
                put_number(stdout, mv[l].post_flow_mw);
                printf(",\"limit_mw\":");
                put_number(stdout, mv[l].post_limit_mw);
                printf("}");
            } else {
                printf("null");
            }
        }
        printf("}");
    }
    printf("],\n\"curtailed\":%s,\"total_curtailed_mw\":", res->curtailed ? "true" : "false");
    put_number(stdout, res->total_curtailed_mw);
    if (zone->access == ANM_ACCESS_PRO_RATA) {
        printf(",\"pro_rata_alpha\":");
        put_number(stdout, res->pro_rata_alpha);
    }
    printf(",\"unresolved\":%s,\"binding\":", res->unresolved ? "true" : "false");
    if (res->binding_constraint >= 0) {
        size_t c = (size_t)res->binding_constraint;
        int k = forecast_constraint_set_row_contingency(set, c);
        printf("{\"monitored\":");
        put_string(stdout, zone->monitored[forecast_constraint_set_row_monitored(set, c)].id);
        printf(",\"contingency\":");
        if (k > 0) {
            printf("%d}", k);
        } else {
            printf("null}");
        }
    } else {
        printf("null");
    }
    printf("}\n");
}

int forecast_cli_curtail(const char *program, int argc, char **argv)
{
    curtail_args a;
    int status = parse_args(program, argc, argv, &a);
    if (status != ANM_EXIT_OK) {
        return status;
    }
    anm_error_detail err;
    anm_error_detail_clear(&err);
    char *case_from_zones = NULL;
    anm_case *network = NULL;
    anm_zone_set *zones = NULL;
    forecast_constraint_set *set = NULL;
    forecast_constraint_view *view = NULL;
    forecast_rule_workspace *ws = NULL;
    double *available = NULL, *dispatched = NULL, *flow = NULL, *rule_dispatch = NULL;
    monitored_view *mv = NULL;
    int rc;

    if (!a.case_path) {
        rc = anm_zone_file_case_path(a.zones_path, &case_from_zones, &err);
        if (rc == ANM_ENOTFOUND) {
            status =
                anm_cli_fail(program, "%s has no \"case\" key: give --case CASE.m", a.zones_path);
            goto free_all;
        }
        if (rc != ANM_OK) {
            status = report(program, &err, rc, a.zones_path);
            goto free_all;
        }
        a.case_path = case_from_zones;
    }
    rc = anm_case_load(a.case_path, &network, &err);
    if (rc != ANM_OK) {
        status = report(program, &err, rc, a.case_path);
        goto free_all;
    }
    rc = anm_zone_set_load(a.zones_path, network, &zones, &err);
    if (rc != ANM_OK) {
        status = report(program, &err, rc, a.zones_path);
        goto free_all;
    }
    const anm_zone *zone = NULL;
    if (a.zone_id) {
        zone = anm_zone_set_find(zones, a.zone_id);
        if (!zone) {
            status = anm_cli_usage_error(program, "no zone \"%s\" in %s", a.zone_id, a.zones_path);
            goto free_all;
        }
    } else if (zones->n_zones == 1) {
        zone = &zones->zones[0];
    } else {
        status = anm_cli_usage_error(program, "%s has %zu zones: choose one with --zone ID",
                                     a.zones_path, zones->n_zones);
        goto free_all;
    }
    size_t nd = zone->n_ders;
    available = calloc(nd + 1, sizeof *available);
    dispatched = calloc(nd + 1, sizeof *dispatched);
    rule_dispatch = calloc(nd + 1, sizeof *rule_dispatch);
    mv = calloc(zone->n_monitored + 1, sizeof *mv);
    if (!available || !dispatched || !rule_dispatch || !mv) {
        status = anm_cli_fail(program, "%s", anm_strerror(ANM_ENOMEM));
        goto free_all;
    }
    status = parse_available(program, &a, zone, available);
    if (status != ANM_EXIT_OK) {
        goto free_all;
    }
    for (size_t i = 0; i < a.n_outaged; i++) {
        if ((size_t)a.outaged[i] > network->n_branch) {
            status = anm_cli_usage_error(
                program, "--outage %d: branch out of range (the case has branches 1 to %zu)",
                a.outaged[i], network->n_branch);
            goto free_all;
        }
    }

    forecast_constraint_options opts = forecast_constraint_options_default();
    opts.outaged_branches = a.outaged;
    opts.n_outaged = a.n_outaged;
    opts.month = a.month;
    opts.day = a.day;
    rc = forecast_constraint_set_new(network, zone, &opts, &set, &err);
    if (rc == ANM_OK) {
        rc = forecast_constraint_view_new(set, zone, &view);
    }
    if (rc != ANM_OK) {
        status = report(program, &err, rc, "constraint set");
        goto free_all;
    }
    size_t nc = forecast_constraint_set_count(set);
    ws = forecast_rule_workspace_new(nc, view->n_anm);
    flow = calloc(nc + 1, sizeof *flow);
    if (!ws || !flow) {
        status = anm_cli_fail(program, "%s", anm_strerror(ANM_ENOMEM));
        goto free_all;
    }
    forecast_constraint_view_fill(view, set, a.demand_scale, available);
    forecast_rule_result res;
    rc = forecast_rule_apply(zone->access, &view->problem, ws, rule_dispatch, &res);
    if (rc != ANM_OK) {
        status =
            anm_cli_fail(program, "%s rule: %s", anm_access_name(zone->access), anm_strerror(rc));
        goto free_all;
    }
    memcpy(dispatched, available, nd * sizeof *dispatched);
    for (size_t i = 0; i < view->n_anm; i++) {
        dispatched[view->anm_der[i]] = rule_dispatch[i];
    }
    forecast_constraint_set_flows(set, a.demand_scale, dispatched, flow);
    summarise_monitored(set, flow, mv, zone->n_monitored);
    if (a.json) {
        print_json(&a, zone, set, available, dispatched, mv, &res);
    } else {
        print_text(&a, zone, set, available, dispatched, mv, &res);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        status = anm_cli_fail(program, "could not write the output");
        goto free_all;
    }
    status = ANM_EXIT_OK;
free_all:
    free(available);
    free(dispatched);
    free(rule_dispatch);
    free(flow);
    free(mv);
    forecast_rule_workspace_destroy(&ws);
    forecast_constraint_view_destroy(&view);
    forecast_constraint_set_destroy(&set);
    anm_zone_set_destroy(&zones);
    anm_case_destroy(&network);
    free(case_from_zones);
    return status;
}
