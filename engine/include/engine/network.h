/*
 * network.h: a power network read from a MATPOWER version 2 case file.
 *
 * Only baseMVA, bus, gen and branch are read; other fields (gencost, areas,
 * bus_name, ...) are skipped. The unit conversions that distribution cases
 * carry as MATLAB statements after the matrices (case33bw.m, case69.m:
 * branch r and x from ohms to per unit, loads from kW to MW; case141.m:
 * loads from kVA and power factor) are recognised and applied, so the
 * values below are always MATPOWER's internal units.
 *
 * Indexing: arrays are in file order, 0-based in C. User-facing branch
 * numbers ("branch 7") are 1-based file order, as in MATPOWER; bus ids are
 * the file's own bus numbers (not necessarily consecutive).
 *
 * anm_case is a plain value type: callers read its arrays directly. It is
 * immutable after loading and may be shared between threads.
 */
#ifndef ANM_ENGINE_NETWORK_H
#define ANM_ENGINE_NETWORK_H

#include "engine/error.h"

#include <stddef.h>

typedef enum anm_bus_type {
    ANM_BUS_PQ = 1,
    ANM_BUS_PV = 2,
    ANM_BUS_REF = 3,
    ANM_BUS_ISOLATED = 4
} anm_bus_type;

typedef struct anm_bus {
    int id;           /* BUS_I */
    int type;         /* anm_bus_type */
    double pd_mw;     /* PD, real power demand (MW) */
    double qd_mvar;   /* QD */
    double gs_mw;     /* GS, shunt conductance (MW demanded at V = 1 p.u.) */
    double bs_mvar;   /* BS */
    int area;         /* BUS_AREA */
    double vm_pu;     /* VM */
    double va_deg;    /* VA */
    double base_kv;   /* BASE_KV */
} anm_bus;

typedef struct anm_gen {
    int bus;          /* GEN_BUS (bus id) */
    double pg_mw;     /* PG */
    double qg_mvar;   /* QG */
    int status;       /* GEN_STATUS: > 0 in service */
    double pmax_mw;   /* PMAX */
    double pmin_mw;   /* PMIN */
} anm_gen;

typedef struct anm_branch {
    int from_bus;     /* F_BUS (bus id) */
    int to_bus;       /* T_BUS (bus id) */
    double r_pu;      /* BR_R */
    double x_pu;      /* BR_X */
    double b_pu;      /* BR_B */
    double rate_a_mva; /* RATE_A (0: unlimited) */
    double rate_b_mva; /* RATE_B */
    double rate_c_mva; /* RATE_C */
    double tap;       /* TAP as in the file (0 means nominal, i.e. 1) */
    double shift_deg; /* SHIFT */
    int status;       /* BR_STATUS: 1 in service, 0 out */
} anm_branch;

typedef struct anm_case {
    char *name;       /* the function name in the file ("case33bw") */
    char *path;       /* the file it was read from */
    double base_mva;
    size_t n_bus, n_gen, n_branch;
    anm_bus *bus;
    anm_gen *gen;
    anm_branch *branch;
    int ref_bus_index; /* index into bus[] of the (first) type-3 bus */
    /* conversions that were applied, for reporting ("branch r,x ohm->p.u.") */
    char conversions[256];
    /* indices into bus[] in increasing id order (for anm_case_bus_index) */
    int *bus_by_id;
} anm_case;

/*
 * Reads path into a new case (*out, owned by the caller; free with
 * anm_case_destroy). On failure returns ANM_EIO (cannot read), ANM_EPARSE
 * (syntax, with line and column in err) or ANM_ECONFIG (semantic: a branch
 * to an unknown bus, no reference bus, a duplicate bus id; err->path names
 * the entry, e.g. "branch[12].to_bus"). err may be NULL.
 */
int anm_case_load(const char *path, anm_case **out, anm_error_detail *err);

/* Same, from text in memory; name is used as the file name in errors. */
int anm_case_parse(const char *text, size_t length, const char *name, anm_case **out,
                   anm_error_detail *err);

void anm_case_destroy(anm_case **c);

/* Index into c->bus of bus id, or -1 if there is none. O(log n). */
int anm_case_bus_index(const anm_case *c, int bus_id);

/* Effective tap ratio of branch i: the file's TAP, or 1 where it is 0. */
double anm_branch_tap(const anm_branch *branch);

/*
 * Marks which in-service branches are bridges: taking one out splits the
 * in-service network into more islands (every branch of a radial feeder).
 * bridges[i] is set to 1 or 0 for each branch (out-of-service branches: 0).
 * Returns ANM_OK or ANM_ENOMEM.
 */
int anm_case_find_bridges(const anm_case *c, unsigned char *bridges);

/* Number of branches with status > 0. */
size_t anm_case_in_service_branches(const anm_case *c);

/* Number of generators with status > 0. */
size_t anm_case_in_service_gens(const anm_case *c);

#endif
