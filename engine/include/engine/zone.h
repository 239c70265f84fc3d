/*
 * zone.h: ANM zones, the project's own JSON file on top of a case file
 * (documented with a worked example in docs/zones.md).
 *
 * A zone set holds one or more zones over one network. Per zone: the
 * monitored elements with their export direction and ratings, the credible
 * contingencies, the principle of access and curtailment mode, the DERs
 * (each an injection at a bus on top of the case's own generators) and the
 * telemetry signals.
 *
 * Branch numbers are 1-based file order (as in MATPOWER); bus ids are the
 * case's bus numbers. The structs are plain values, immutable after loading.
 */
#ifndef ANM_ENGINE_ZONE_H
#define ANM_ENGINE_ZONE_H

#include "engine/error.h"
#include "engine/network.h"

#include <stdbool.h>
#include <stddef.h>

#define ANM_ID_MAX 64

typedef enum anm_access {
    ANM_ACCESS_LIFO = 0,     /* last in, first off */
    ANM_ACCESS_PRO_RATA = 1, /* one common fraction curtailed from every DER */
    ANM_ACCESS_MIN_MW = 2    /* the least total curtailment (LP) */
} anm_access;

typedef enum anm_curtailment_mode {
    ANM_MODE_CORRECTIVE = 0, /* flows within normal ratings in the sampled state */
    ANM_MODE_PREVENTIVE = 1  /* N-1 secure: post-fault flows within post-fault ratings */
} anm_curtailment_mode;

typedef enum anm_technology {
    ANM_TECH_WIND = 0,
    ANM_TECH_SOLAR = 1,
    ANM_TECH_BATTERY = 2,
    ANM_TECH_DEMAND = 3, /* flexible demand: injects negative MW */
    ANM_TECH_OTHER = 4
} anm_technology;

/* A seasonal rating applies from start (month, day) to end (month, day), inclusive. */
typedef struct anm_seasonal_rating {
    char season[16]; /* "winter", "summer", ... */
    int start_month, start_day, end_month, end_day;
    double normal_mw, post_fault_mw;
} anm_seasonal_rating;

typedef struct anm_monitored {
    char id[ANM_ID_MAX];
    int branch;          /* 1-based branch number in file order */
    int direction;       /* +1: from->to flow is export; -1: to->from */
    double normal_mw;    /* normal (pre-fault) rating */
    double post_fault_mw; /* post-fault rating */
    size_t n_seasonal;
    anm_seasonal_rating *seasonal;
} anm_monitored;

typedef struct anm_der {
    char id[ANM_ID_MAX];
    int bus;             /* bus id */
    anm_technology technology;
    double capacity_mw;  /* >= 0 */
    int connection_year, connection_month, connection_day;
    int lifo_position;   /* 1 = first connected (last curtailed); unique in the zone */
    bool under_anm;
} anm_der;

typedef enum anm_signal_kind {
    ANM_SIGNAL_BRANCH_MW = 0,
    ANM_SIGNAL_BRANCH_MVA = 1,
    ANM_SIGNAL_BRANCH_A = 2,
    ANM_SIGNAL_BUS_KV = 3,
    ANM_SIGNAL_DER_MW = 4,
    ANM_SIGNAL_TRANSFORMER_TEMP_C = 5,
    ANM_SIGNAL_BREAKER_STATE = 6
} anm_signal_kind;

typedef struct anm_signal {
    char id[ANM_ID_MAX];
    anm_signal_kind kind;
    char unit[16];       /* "MW", "MVA", "A", "kV", "degC", "state" */
    char element[ANM_ID_MAX]; /* "branch:7", "bus:18" or a DER id */
    double scale;        /* engineering value = raw * scale + offset */
    double offset;
} anm_signal;

typedef struct anm_zone {
    char id[ANM_ID_MAX];
    char name[128];
    anm_access access;
    anm_curtailment_mode mode;
    size_t n_monitored;
    anm_monitored *monitored;
    bool all_contingencies;  /* "all that do not island the network" */
    size_t n_contingencies;  /* resolved list (also filled when all_contingencies) */
    int *contingencies;      /* 1-based branch numbers */
    size_t n_ders;
    anm_der *ders;
    size_t n_signals;
    anm_signal *signals;
} anm_zone;

typedef struct anm_zone_set {
    char *path;
    /* the file's optional "case" key resolved against the zone file's
       directory (new string owned by the set), or NULL when it has none */
    char *case_path;
    const anm_case *network; /* borrowed: must outlive the zone set */
    size_t n_zones;
    anm_zone *zones;
} anm_zone_set;

/*
 * Reads a zone file against network (borrowed). On failure returns
 * ANM_EIO, ANM_EPARSE (JSON syntax, line and column in err) or ANM_ECONFIG
 * (err->path names the entry, e.g. "zones[1].ders[3].capacity_mw").
 */
int anm_zone_set_load(const char *path, const anm_case *network, anm_zone_set **out,
                      anm_error_detail *err);
int anm_zone_set_parse(const char *text, size_t length, const char *name, const anm_case *network,
                       anm_zone_set **out, anm_error_detail *err);
void anm_zone_set_destroy(anm_zone_set **set);

/*
 * Reads only the optional "case" key of the zone file at zone_path (which
 * names the case file relative to the zone file, e.g.
 * "../grids/matpower/case33bw.m") and returns it resolved against the zone
 * file's directory in *case_path (new string, free with free()). Returns
 * ANM_OK, ANM_ENOTFOUND (the file has no "case" key), ANM_EIO, ANM_EPARSE or
 * ANM_ECONFIG ("case" is not a string).
 */
int anm_zone_file_case_path(const char *zone_path, char **case_path, anm_error_detail *err);

/*
 * relative resolved against the directory of base_file ("data/zones/a.json"
 * and "../grids/x.m" give "data/zones/../grids/x.m"); an absolute relative
 * is returned as it is. New string, or NULL when out of memory.
 */
char *anm_path_resolve_against(const char *base_file, const char *relative);

/* The zone with this id, or NULL (borrowed). */
const anm_zone *anm_zone_set_find(const anm_zone_set *set, const char *zone_id);

/* Index of the DER with this id in zone->ders, or -1. */
int anm_zone_der_index(const anm_zone *zone, const char *der_id);

const char *anm_access_name(anm_access access);         /* "lifo", "pro_rata", "min_mw" */
const char *anm_mode_name(anm_curtailment_mode mode);   /* "corrective", "preventive" */
const char *anm_technology_name(anm_technology technology);

#endif
