/*
 * statement.h: the part of a constraint statement the market needs for one
 * product, and the feasibility rule (docs/market.md, "Feasibility").
 *
 * For each binding constraint c: its headroom H_c in MW at the configured
 * confidence (e.g. the P10 headroom; the loader picks the quantile), and for
 * each DER j its sensitivity a_cj (MW of flow on c per MW injected at j).
 * A DER absent from the statement has sensitivity 0 to every constraint.
 *
 * A trade of volume v (MW) between an offer at DER i and a bid at DER j
 * turns i down by v and j up by v (the zone's net injection is unchanged),
 * so the flow on c changes by d_c * v with d_c = a_cj - a_ci. For a
 * requirement (no DER j) d_c = -a_ci. The trade is feasible when for every c:
 *     used_c + d_c * v <= H_c
 * where used_c sums the effects of the trades already accepted for the
 * product since the statement was set.
 */
#ifndef MARKET_STATEMENT_H
#define MARKET_STATEMENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct market_statement market_statement;

/*
 * New statement with n_constraints (1..MARKET_MAX_CONSTRAINTS) binding
 * constraints, headroom_mw[c] each and optional names (NULL, or n strings
 * copied, truncated to 31 bytes). NULL on ENOMEM or bad n.
 */
market_statement *market_statement_new(size_t n_constraints, const double *headroom_mw,
                                       const char *const *names);
void market_statement_destroy(market_statement **statement);

/* Sets a_cj. ANM_OK, ANM_EINVAL (c out of range, der MARKET_NO_DER, not finite), ANM_ENOMEM. */
int market_statement_set_sensitivity(market_statement *statement, uint32_t der, size_t c,
                                     double sensitivity);

size_t market_statement_constraints(const market_statement *statement);
double market_statement_headroom_mw(const market_statement *statement, size_t c);
const char *market_statement_constraint_name(const market_statement *statement, size_t c);
double market_statement_sensitivity(const market_statement *statement, uint32_t der, size_t c);

/* DERs with a sensitivity row, ascending: how many, and the i-th (for snapshots). */
size_t market_statement_der_count(const market_statement *statement);
uint32_t market_statement_der_at(const market_statement *statement, size_t i);

/*
 * The largest volume v <= wanted (0.001 MW units) of a trade between an
 * offer at sell_der and a bid at buy_der (MARKET_NO_DER: a requirement)
 * that keeps every constraint within headroom given used_mw[c] (may be NULL:
 * all zero). *limiting (may be NULL) gets the index of the constraint that
 * cut the volume below wanted (the lowest index on ties), or -1. Pure.
 */
int64_t market_statement_feasible(const market_statement *statement, const double *used_mw,
                                  uint32_t sell_der, uint32_t buy_der, int64_t wanted,
                                  int *limiting);

/* Adds the effect of an accepted trade of volume to used_mw[c] (requirements
 * count only where they add flow, so relief bought by a system operator is
 * never resold to peers). */
void market_statement_apply(const market_statement *statement, double *used_mw, uint32_t sell_der,
                            uint32_t buy_der, int64_t volume);

/* market_statement_feasible, then, if the volume is at least minimum (and
 * positive), market_statement_apply of it; else 0 and nothing applied. Looks
 * the DERs up once: the matching engines' hot path. */
int64_t market_statement_take(const market_statement *statement, double *used_mw,
                              uint32_t sell_der, uint32_t buy_der, int64_t wanted,
                              int64_t minimum, int *limiting);

#endif
