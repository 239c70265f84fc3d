/*
 * registry.h: who may trade what. Zones (price floor and ceiling),
 * participants (ordinary or system operator), DERs (zone, capacity, maximum
 * curtailment) and which participant may trade for which DER.
 *
 * The market borrows a registry; the service fills it from the zone file
 * and its participant list, tests fill it by hand. Ids are small integers;
 * the service maps textual ids to them. Not thread-safe for writes.
 */
#ifndef MARKET_REGISTRY_H
#define MARKET_REGISTRY_H

#include <stdint.h>

typedef struct market_registry market_registry;

typedef enum market_participant_kind {
    MARKET_PARTICIPANT_NONE = 0,           /* unknown */
    MARKET_PARTICIPANT_TRADER = 1,         /* generator, demand, supplier, aggregator */
    MARKET_PARTICIPANT_SYSTEM_OPERATOR = 2 /* DSO or NESO: may post requirements */
} market_participant_kind;

typedef struct market_zone_info {
    int32_t price_floor_ticks;   /* lowest utilisation price accepted */
    int32_t price_ceiling_ticks; /* highest utilisation price accepted */
} market_zone_info;

typedef struct market_der_info {
    uint32_t zone;
    int64_t capacity;        /* 0.001 MW: largest offer (relief) */
    int64_t max_curtailment; /* 0.001 MW: largest bid (extra export) */
} market_der_info;

/* New, empty registry. NULL on ENOMEM. */
market_registry *market_registry_new(void);
void market_registry_destroy(market_registry **registry);

/* Adds or replaces an entry. ANM_OK, ANM_EINVAL (floor > ceiling, negative
 * capacity, id MARKET_NO_DER) or ANM_ENOMEM. */
int market_registry_add_zone(market_registry *registry, uint32_t zone, market_zone_info info);
int market_registry_add_participant(market_registry *registry, uint32_t participant,
                                    market_participant_kind kind);
int market_registry_add_der(market_registry *registry, uint32_t der, market_der_info info);
/* Lets participant trade for der (both must exist: else ANM_ENOTFOUND). */
int market_registry_allow(market_registry *registry, uint32_t participant, uint32_t der);

/* Look-ups: 1 and *out filled if known, else 0. */
int market_registry_zone(const market_registry *registry, uint32_t zone, market_zone_info *out);
market_participant_kind market_registry_participant(const market_registry *registry,
                                                    uint32_t participant);
int market_registry_der(const market_registry *registry, uint32_t der, market_der_info *out);
int market_registry_allowed(const market_registry *registry, uint32_t participant, uint32_t der);

#endif
