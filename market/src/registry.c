/*
 * registry.c: sorted arrays with binary search; entries are few (zones,
 * participants and DERs of one market) and written once at start-up.
 */
#include "market/registry.h"

#include "engine/error.h"
#include "market/types.h"

#include <stdlib.h>
#include <string.h>

typedef struct zone_entry {
    uint32_t id;
    market_zone_info info;
} zone_entry;

typedef struct participant_entry {
    uint32_t id;
    market_participant_kind kind;
} participant_entry;

typedef struct der_entry {
    uint32_t id;
    market_der_info info;
} der_entry;

struct market_registry {
    zone_entry *zones;
    size_t n_zones, cap_zones;
    participant_entry *participants;
    size_t n_participants, cap_participants;
    der_entry *ders;
    size_t n_ders, cap_ders;
    uint64_t *allowed; /* participant << 32 | der, ascending */
    size_t n_allowed, cap_allowed;
};

market_registry *market_registry_new(void) { return calloc(1, sizeof(market_registry)); }

void market_registry_destroy(market_registry **registry)
{
    if (registry == NULL || *registry == NULL) {
        return;
    }
    free((*registry)->zones);
    free((*registry)->participants);
    free((*registry)->ders);
    free((*registry)->allowed);
    free(*registry);
    *registry = NULL;
}

/* Grows *array (of element size) to hold one more; ANM_OK or ANM_ENOMEM. */
static int reserve(void **array, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) {
        return ANM_OK;
    }
    size_t next = *cap ? *cap * 2 : 16;
    void *grown = realloc(*array, next * size);
    if (grown == NULL) {
        return ANM_ENOMEM;
    }
    *array = grown;
    *cap = next;
    return ANM_OK;
}

/* Index of the first id >= key in a sorted array of structs starting with a uint32 id. */
static size_t lower_bound(const void *array, size_t n, size_t size, uint32_t key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t id;
        memcpy(&id, (const char *)array + mid * size, sizeof id);
        if (id < key) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Inserts or replaces entry (whose first member is its uint32 id). */
static int upsert(void **array, size_t *n, size_t *cap, size_t size, const void *entry)
{
    uint32_t id;
    memcpy(&id, entry, sizeof id);
    size_t at = lower_bound(*array, *n, size, id);
    if (at < *n) {
        uint32_t found;
        memcpy(&found, (char *)*array + at * size, sizeof found);
        if (found == id) {
            memcpy((char *)*array + at * size, entry, size);
            return ANM_OK;
        }
    }
    int rc = reserve(array, cap, *n, size);
    if (rc != ANM_OK) {
        return rc;
    }
    char *base = *array;
    memmove(base + (at + 1) * size, base + at * size, (*n - at) * size);
    memcpy(base + at * size, entry, size);
    (*n)++;
    return ANM_OK;
}

static const void *find(const void *array, size_t n, size_t size, uint32_t id)
{
    size_t at = lower_bound(array, n, size, id);
    if (at >= n) {
        return NULL;
    }
    const char *p = (const char *)array + at * size;
    uint32_t found;
    memcpy(&found, p, sizeof found);
    return found == id ? p : NULL;
}

int market_registry_add_zone(market_registry *registry, uint32_t zone, market_zone_info info)
{
    if (registry == NULL || info.price_floor_ticks > info.price_ceiling_ticks) {
        return ANM_EINVAL;
    }
    zone_entry e = {.id = zone, .info = info};
    return upsert((void **)&registry->zones, &registry->n_zones, &registry->cap_zones, sizeof e,
                  &e);
}

int market_registry_add_participant(market_registry *registry, uint32_t participant,
                                    market_participant_kind kind)
{
    if (registry == NULL || kind == MARKET_PARTICIPANT_NONE) {
        return ANM_EINVAL;
    }
    participant_entry e = {.id = participant, .kind = kind};
    return upsert((void **)&registry->participants, &registry->n_participants,
                  &registry->cap_participants, sizeof e, &e);
}

int market_registry_add_der(market_registry *registry, uint32_t der, market_der_info info)
{
    if (registry == NULL || der == MARKET_NO_DER || info.capacity < 0 ||
        info.max_curtailment < 0) {
        return ANM_EINVAL;
    }
    der_entry e = {.id = der, .info = info};
    return upsert((void **)&registry->ders, &registry->n_ders, &registry->cap_ders, sizeof e, &e);
}

static size_t allowed_lower_bound(const market_registry *registry, uint64_t key)
{
    size_t lo = 0, hi = registry->n_allowed;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (registry->allowed[mid] < key) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

int market_registry_allow(market_registry *registry, uint32_t participant, uint32_t der)
{
    if (registry == NULL) {
        return ANM_EINVAL;
    }
    if (market_registry_participant(registry, participant) == MARKET_PARTICIPANT_NONE ||
        !market_registry_der(registry, der, NULL)) {
        return ANM_ENOTFOUND;
    }
    uint64_t key = (uint64_t)participant << 32 | der;
    size_t at = allowed_lower_bound(registry, key);
    if (at < registry->n_allowed && registry->allowed[at] == key) {
        return ANM_OK;
    }
    int rc = reserve((void **)&registry->allowed, &registry->cap_allowed, registry->n_allowed,
                     sizeof key);
    if (rc != ANM_OK) {
        return rc;
    }
    memmove(registry->allowed + at + 1, registry->allowed + at,
            (registry->n_allowed - at) * sizeof key);
    registry->allowed[at] = key;
    registry->n_allowed++;
    return ANM_OK;
}

int market_registry_zone(const market_registry *registry, uint32_t zone, market_zone_info *out)
{
    const zone_entry *e = find(registry->zones, registry->n_zones, sizeof *e, zone);
    if (e != NULL && out != NULL) {
        *out = e->info;
    }
    return e != NULL;
}

market_participant_kind market_registry_participant(const market_registry *registry,
                                                    uint32_t participant)
{
    const participant_entry *e =
        find(registry->participants, registry->n_participants, sizeof *e, participant);
    return e != NULL ? e->kind : MARKET_PARTICIPANT_NONE;
}

int market_registry_der(const market_registry *registry, uint32_t der, market_der_info *out)
{
    const der_entry *e = find(registry->ders, registry->n_ders, sizeof *e, der);
    if (e != NULL && out != NULL) {
        *out = e->info;
    }
    return e != NULL;
}

int market_registry_allowed(const market_registry *registry, uint32_t participant, uint32_t der)
{
    uint64_t key = (uint64_t)participant << 32 | der;
    size_t at = allowed_lower_bound(registry, key);
    return at < registry->n_allowed && registry->allowed[at] == key;
}
