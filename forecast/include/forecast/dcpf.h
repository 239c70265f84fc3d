/*
 * dcpf.h: DC power flow on an anm_case, with MATPOWER's conventions
 * (makeBdc, dcpf, rundcpf):
 *
 *   - branch k carries b_k = status_k / (x_k * tap_k) per unit, with tap 1
 *     where the file has 0;
 *   - a phase shift is an injection: Pfinj_k = -b_k * shift_k (radians),
 *     Pbusinj = Cf' Pfinj - Ct' Pfinj;
 *   - bus shunt conductance GS is a withdrawal of GS MW (GS / baseMVA p.u.);
 *   - the reference bus (type 3, anm_case.ref_bus_index) is the slack, its
 *     angle the file's VA;
 *   - B theta = P / baseMVA - Pbusinj on the other buses, and the flow at
 *     the from end is pf_k = baseMVA * (b_k (theta_f - theta_t) + Pfinj_k)
 *     MW, pt_k = -pf_k.
 *
 * A model holds the factorised B of one network state (the case, or the
 * case with some branches outaged). Buses that no in-service branch
 * connects to the reference bus (a type-4 bus; the far side of an outaged
 * bridge) are de-energised: their injections are dropped (they neither
 * reach the slack nor move any flow), their angles are 0 and the branches
 * among them carry 0 MW. A model is immutable once built: any number of
 * threads may solve with it at once.
 *
 * Indices are 0-based file order (bus i is c->bus[i], branch k is
 * c->branch[k]); injections are net MW per bus in file order, export
 * positive.
 */
#ifndef FORECAST_DCPF_H
#define FORECAST_DCPF_H

#include "engine/error.h"
#include "engine/network.h"

#include <stddef.h>

typedef struct forecast_dc_model forecast_dc_model;

/*
 * Builds the model of case c with every branch as its status says (*out is
 * new; free with forecast_dc_model_destroy). The model does not keep c.
 * Returns ANM_OK, ANM_ENOMEM, ANM_ECONFIG (an in-service branch with zero
 * reactance or tap, or an unknown bus id; err names it, e.g.
 * "branch[12].x_pu") or ANM_ENUMERIC (B singular to working precision).
 * err may be NULL.
 */
int forecast_dc_model_new(const anm_case *c, forecast_dc_model **out, anm_error_detail *err);

/*
 * Same, with the n_outaged branches outaged[] (0-based) also taken out of
 * service. If that islands part of the network, the part without the
 * reference bus is de-energised (see above).
 */
int forecast_dc_model_new_outage(const anm_case *c, const size_t *outaged, size_t n_outaged,
                                 forecast_dc_model **out, anm_error_detail *err);

void forecast_dc_model_destroy(forecast_dc_model **m);

size_t forecast_dc_model_bus_count(const forecast_dc_model *m);
size_t forecast_dc_model_branch_count(const forecast_dc_model *m);
size_t forecast_dc_model_reference_bus(const forecast_dc_model *m);
double forecast_dc_model_base_mva(const forecast_dc_model *m);

/* 1 if bus (0-based) is connected to the reference bus in this model. */
int forecast_dc_model_bus_energised(const forecast_dc_model *m, size_t bus);

/* 1 if branch carries flow in this model (in service, energised, not outaged). */
int forecast_dc_model_branch_active(const forecast_dc_model *m, size_t branch);

/*
 * 1 if branch is active and a bridge of the active network: its outage
 * would island part of it (found from the topology, by Tarjan's lowlink
 * search, never from a near-zero 1 - PTDF).
 */
int forecast_dc_model_branch_is_bridge(const forecast_dc_model *m, size_t branch);

/* b_k in per unit (0 for an inactive branch); the MW/rad factor is baseMVA * b_k. */
double forecast_dc_model_branch_susceptance(const forecast_dc_model *m, size_t branch);

/* From and to bus indices (0-based) of branch. */
size_t forecast_dc_model_branch_from(const forecast_dc_model *m, size_t branch);
size_t forecast_dc_model_branch_to(const forecast_dc_model *m, size_t branch);

/*
 * The case's own net injection per bus (c->n_bus values, MW): PG of the
 * in-service generators at the bus, less PD, less GS.
 */
void forecast_dc_case_injection(const anm_case *c, double *injection_mw);

/*
 * Solves the model for the net injections injection_mw (n_bus values, MW;
 * the reference bus's value is ignored: the slack balances the rest).
 * Writes the angles in radians into theta_rad (n_bus, may be NULL) and the
 * from-end flows in MW into pf_mw (n_branch, may be NULL). Returns ANM_OK
 * or ANM_ENOMEM.
 */
int forecast_dc_model_solve(const forecast_dc_model *m, const double *injection_mw,
                            double *theta_rad, double *pf_mw);

/*
 * Post-outage flows when branch (0-based) is lost, recomputed on the
 * network that remains: for a bridge, the part beyond it is disconnected
 * and its injections drop. pf_mw gets n_branch flows (the outaged branch 0
 * MW); bus_energised (n_bus, may be NULL) gets 1 for each bus still
 * connected to the reference bus; dropped_injection_mw (may be NULL) the
 * net injection that was disconnected (MW, export positive). Builds and
 * factorises a model of its own (milliseconds at 2,000 buses); for many
 * non-islanding outages, LODF (lodf.h) is cheaper.
 */
int forecast_dc_outage_flows(const anm_case *c, const double *injection_mw, size_t branch,
                             double *pf_mw, unsigned char *bus_energised,
                             double *dropped_injection_mw, anm_error_detail *err);

#endif
