/*
 * fuzz_case.c: the MATPOWER case reader on arbitrary bytes. Whatever the
 * input, it must return a code (never crash, leak or read out of bounds),
 * and an accepted case must be internally consistent.
 */
#include "engine/network.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    anm_case *c = NULL;
    anm_error_detail err;
    if (anm_case_parse((const char *)data, size, "fuzz.m", &c, &err) != ANM_OK)
        return 0;
    if (c->ref_bus_index < 0 || (size_t)c->ref_bus_index >= c->n_bus)
        abort();
    for (size_t i = 0; i < c->n_branch; i++)
        if (anm_case_bus_index(c, c->branch[i].from_bus) < 0 ||
            anm_case_bus_index(c, c->branch[i].to_bus) < 0)
            abort();
    unsigned char *bridges = malloc(c->n_branch + 1);
    if (bridges != NULL && anm_case_find_bridges(c, bridges) == ANM_OK) {
        for (size_t i = 0; i < c->n_branch; i++)
            if (bridges[i] > 1 || (bridges[i] && c->branch[i].status <= 0))
                abort();
    }
    free(bridges);
    anm_case_destroy(&c);
    return 0;
}
