/*
 * fuzz_zones.c: the zone file decoder on arbitrary bytes, against a small
 * built-in meshed case (so the target needs no files). An accepted zone set
 * must only name branches and buses that exist.
 */
#include "engine/zone.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 5 buses: a ring 1-2-3-4 plus a spur 4-5 (branch 5 islands bus 5) */
static const char case_text[] =
    "mpc.version = '2';\nmpc.baseMVA = 100;\n"
    "mpc.bus = [1 3 0 0 0 0 1 1 0 10 1 1 1; 2 1 10 0 0 0 1 1 0 10 1 1 1;\n"
    " 3 1 10 0 0 0 1 1 0 10 1 1 1; 4 1 10 0 0 0 1 1 0 10 1 1 1; 5 1 0 0 0 0 1 1 0 10 1 1 1];\n"
    "mpc.gen = [1 30 0 99 -99 1 100 1 99 0];\n"
    "mpc.branch = [1 2 0 0.1 0 50 0 0 0 0 1; 2 3 0 0.1 0 50 0 0 0 0 1;\n"
    " 3 4 0 0.1 0 50 0 0 0 0 1; 4 1 0 0.1 0 50 0 0 0 0 1; 4 5 0 0.1 0 50 0 0 0 0 1;\n"
    " 2 4 0 0.1 0 50 0 0 0 0 0];\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    anm_case *network = NULL;
    anm_zone_set *set = NULL;
    anm_error_detail err;
    if (anm_case_parse(case_text, strlen(case_text), "fuzz.m", &network, &err) != ANM_OK)
        abort();
    if (anm_zone_set_parse((const char *)data, size, "fuzz.json", network, &set, &err) == ANM_OK) {
        for (size_t z = 0; z < set->n_zones; z++) {
            const anm_zone *zone = &set->zones[z];
            for (size_t m = 0; m < zone->n_monitored; m++)
                if (zone->monitored[m].branch < 1 || zone->monitored[m].branch > 5)
                    abort();
            for (size_t k = 0; k < zone->n_contingencies; k++)
                if (zone->contingencies[k] < 1 || zone->contingencies[k] > 4)
                    abort();
            for (size_t d = 0; d < zone->n_ders; d++)
                if (anm_case_bus_index(network, zone->ders[d].bus) < 0)
                    abort();
        }
    }
    anm_zone_set_destroy(&set);
    anm_case_destroy(&network);
    return 0;
}
