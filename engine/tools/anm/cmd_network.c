/*
 * cmd_network.c: `anm network check CASE.m [ZONES.json]`, which reads a
 * MATPOWER case (and a zone file on top of it), validates them and prints a
 * summary. With only a zone file, the case is the one its "case" key names.
 */
#include "commands.h"

#include "engine/cli.h"
#include "engine/network.h"
#include "engine/zone.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "anm network"

static void usage(FILE *out)
{
    fprintf(out, "usage: anm network check CASE.m [ZONES.json]\n"
                 "       anm network check ZONES.json\n"
                 "       anm network --help\n\n"
                 "Reads a MATPOWER version 2 case file (and a zone file on top of it),\n"
                 "validates them and prints a summary: buses, branches, generators, the\n"
                 "islanding branches (bridges), and per zone its monitored branches,\n"
                 "contingencies, DERs and signals. With only a zone file, the case is the\n"
                 "file its \"case\" key names, relative to the zone file.\n\n"
                 "Exits 0 when everything is valid, 1 with \"file:line:column: key path:\n"
                 "message\" on the first error, 2 on bad usage.\n");
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lf = strlen(suffix);
    return ls >= lf && strcmp(s + ls - lf, suffix) == 0;
}

static int report(const anm_error_detail *err, int rc)
{
    char line[1200];
    if (anm_error_detail_format(err, line, sizeof line) <= 0)
        return anm_cli_fail(PROG, "%s", anm_strerror(rc));
    return anm_cli_fail(PROG, "%s", line);
}

static void print_case(const anm_case *c, const unsigned char *bridges)
{
    size_t n_bridges = 0;
    for (size_t i = 0; i < c->n_branch; i++)
        n_bridges += bridges[i];
    printf("case %s (%s)\n", c->name, c->path);
    printf("  base MVA            %g\n", c->base_mva);
    printf("  buses               %zu (reference bus %d)\n", c->n_bus, c->bus[c->ref_bus_index].id);
    printf("  generators          %zu (%zu in service)\n", c->n_gen, anm_case_in_service_gens(c));
    printf("  branches            %zu (%zu in service)\n", c->n_branch,
           anm_case_in_service_branches(c));
    printf("  islanding branches  %zu", n_bridges);
    size_t shown = 0;
    for (size_t i = 0; i < c->n_branch && shown < 20; i++) {
        if (bridges[i]) {
            printf("%s%zu", shown == 0 ? ": " : " ", i + 1);
            shown++;
        }
    }
    printf("%s\n", n_bridges > shown ? " ..." : "");
    printf("  conversions         %s\n", c->conversions[0] ? c->conversions : "none");
}

static void print_zones(const anm_zone_set *set)
{
    size_t n_ders = 0, n_signals = 0;
    for (size_t z = 0; z < set->n_zones; z++) {
        n_ders += set->zones[z].n_ders;
        n_signals += set->zones[z].n_signals;
    }
    printf("zones %s: %zu zones, %zu DERs, %zu signals\n", set->path, set->n_zones, n_ders,
           n_signals);
    for (size_t z = 0; z < set->n_zones; z++) {
        const anm_zone *zone = &set->zones[z];
        double capacity_mw = 0, anm_capacity_mw = 0;
        size_t under_anm = 0;
        for (size_t d = 0; d < zone->n_ders; d++) {
            capacity_mw += zone->ders[d].capacity_mw;
            if (zone->ders[d].under_anm) {
                under_anm++;
                anm_capacity_mw += zone->ders[d].capacity_mw;
            }
        }
        printf("  zone %s \"%s\": access %s, mode %s\n", zone->id, zone->name,
               anm_access_name(zone->access), anm_mode_name(zone->mode));
        printf("    monitored         %zu\n", zone->n_monitored);
        for (size_t m = 0; m < zone->n_monitored; m++) {
            const anm_monitored *mon = &zone->monitored[m];
            const anm_branch *b = &set->network->branch[mon->branch - 1];
            printf("      %-16s branch %d (bus %d -> %d), export %s, normal %g MW, post-fault "
                   "%g MW%s\n",
                   mon->id, mon->branch, b->from_bus, b->to_bus,
                   mon->direction > 0 ? "from_to" : "to_from", mon->normal_mw, mon->post_fault_mw,
                   mon->n_seasonal ? ", seasonal" : "");
        }
        printf("    contingencies     %zu%s\n", zone->n_contingencies,
               zone->all_contingencies ? " (all non-islanding)" : "");
        printf("    ders              %zu (%zu under ANM), %g MW (%g MW under ANM)\n", zone->n_ders,
               under_anm, capacity_mw, anm_capacity_mw);
        for (size_t d = 0; d < zone->n_ders; d++) {
            const anm_der *der = &zone->ders[d];
            printf("      %-16s bus %d, %s, %g MW, connected %04d-%02d-%02d, queue %d%s\n", der->id,
                   der->bus, anm_technology_name(der->technology), der->capacity_mw,
                   der->connection_year, der->connection_month, der->connection_day,
                   der->lifo_position, der->under_anm ? "" : ", not under ANM");
        }
        printf("    signals           %zu\n", zone->n_signals);
    }
}

static int check(const char *case_arg, const char *zones_path)
{
    int rc = ANM_OK, status = ANM_EXIT_OK;
    anm_error_detail err;
    anm_case *network = NULL;
    anm_zone_set *zones = NULL;
    unsigned char *bridges = NULL;
    char *case_path = NULL;

    if (case_arg == NULL) {
        rc = anm_zone_file_case_path(zones_path, &case_path, &err);
        if (rc == ANM_ENOTFOUND) {
            status =
                anm_cli_fail(PROG, "%s has no \"case\" key: name the case file too", zones_path);
            goto done;
        }
        if (rc != ANM_OK) {
            status = report(&err, rc);
            goto done;
        }
        case_arg = case_path;
    }
    rc = anm_case_load(case_arg, &network, &err);
    if (rc != ANM_OK) {
        status = report(&err, rc);
        goto done;
    }
    bridges = calloc(network->n_branch + 1, 1);
    if (bridges == NULL || anm_case_find_bridges(network, bridges) != ANM_OK) {
        status = anm_cli_fail(PROG, "%s", anm_strerror(ANM_ENOMEM));
        goto done;
    }
    print_case(network, bridges);
    if (zones_path != NULL) {
        rc = anm_zone_set_load(zones_path, network, &zones, &err);
        if (rc != ANM_OK) {
            status = report(&err, rc);
            goto done;
        }
        print_zones(zones);
    }
done:
    anm_zone_set_destroy(&zones);
    anm_case_destroy(&network);
    free(bridges);
    free(case_path);
    return status;
}

int anm_cmd_network(int argc, char **argv)
{
    const char *positional[3] = {NULL, NULL, NULL};
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return ANM_EXIT_OK;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0')
            return anm_cli_usage_error(PROG, "unknown option '%s'", argv[i]);
        if (n == 3)
            return anm_cli_usage_error(PROG, "too many arguments");
        positional[n++] = argv[i];
    }
    if (n == 0)
        return anm_cli_usage_error(PROG, "missing subcommand (check)");
    if (strcmp(positional[0], "check") != 0)
        return anm_cli_usage_error(PROG, "unknown subcommand '%s'", positional[0]);
    if (n == 1)
        return anm_cli_usage_error(PROG, "missing case file");
    if (n == 2 && ends_with(positional[1], ".json"))
        return check(NULL, positional[1]);
    return check(positional[1], positional[2]);
}
