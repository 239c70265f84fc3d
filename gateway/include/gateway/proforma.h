/*
 * proforma.h: the pro-forma mapping, the one file that mirrors what the
 * participant agreed with NESO: for each exported quantity of each DER (or
 * zone) where it goes on every route (IEC 104 common address, IOA and type;
 * MQTT topic; Data Concentrator file column), its scaling from engineering
 * units to the value sent, and its limits. docs/gateway.md documents the
 * file with an example (data/gateway/feeder33_proforma.json).
 *
 * A value outside [min, max] is sent flagged, never clipped
 * (gateway_proforma_scale).
 *
 * Lifecycle: gateway_proforma_load_file / _load_string -> use (read-only)
 * -> gateway_proforma_destroy(&p). Immutable after loading; no global state.
 */
#ifndef GATEWAY_PROFORMA_H
#define GATEWAY_PROFORMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/config.h"
#include "engine/error.h"

typedef enum gateway_quantity {
    GATEWAY_QUANTITY_METERED_MW = 0,      /* metered output from telemetry */
    GATEWAY_QUANTITY_AVAILABILITY_MW = 1, /* capacity - curtailment at the confidence */
    GATEWAY_QUANTITY_PCF = 2,             /* probabilistic curtailment factor, 0..1 */
    GATEWAY_QUANTITY_STATE = 3            /* 1: curtailment expected at the confidence */
} gateway_quantity;

/* "metered_mw", "availability_mw", "pcf", "state". Static. */
const char *gateway_quantity_name(gateway_quantity quantity);

/* IEC 104 information object kind of a point (the GI type / the spontaneous type). */
typedef enum gateway_proforma_iec104_type {
    GATEWAY_PROFORMA_FLOAT = 0, /* M_ME_NC_1 / M_ME_TF_1 */
    GATEWAY_PROFORMA_SINGLE = 1 /* M_SP_NA_1 / M_SP_TB_1 */
} gateway_proforma_iec104_type;

typedef struct gateway_proforma_iec104 {
    long common_address; /* 1..65534 */
    long ioa;            /* 1..16777215; 0: not sent on IEC 104 */
    int type;            /* gateway_proforma_iec104_type */
} gateway_proforma_iec104;

typedef struct gateway_proforma_der {
    char *id;               /* as in the zone file */
    char *zone;             /* zone id */
    char *unit;             /* NESO unit id (file names, MQTT {unit}); default: id */
    double capacity_mw;     /* registered capacity, > 0 */
    long metered_signal_id; /* registry signal id of its output MW; 0: none */
} gateway_proforma_der;

typedef struct gateway_proforma_point {
    char *der;  /* DER id, or NULL for a zone-level point */
    char *zone; /* zone id of a zone-level point (NULL for DER points) */
    int quantity; /* gateway_quantity */
    gateway_proforma_iec104 iec104;
    char *mqtt_topic; /* NULL: not published on MQTT */
    char *dc_column;  /* NULL: not in Data Concentrator files */
    double scale;     /* sent = engineering * scale + offset */
    double offset;
    double min, max;  /* limits on the sent value, inclusive */
} gateway_proforma_point;

typedef struct gateway_proforma {
    long version; /* 1 */
    char *participant;
    anm_config_array ders;   /* gateway_proforma_der */
    anm_config_array points; /* gateway_proforma_point */
} gateway_proforma;

/* The settings table (for docs and --print-config). */
const anm_config_table *gateway_proforma_table(void);

/*
 * Loads and validates strictly: schema errors from the typed table (unknown
 * key, wrong type, out of bounds), then: duplicate DER id, a point naming
 * an unknown DER or zone, both or neither of der/zone, a zone-level point
 * other than metered_mw/availability_mw, the IEC 104 type not matching the
 * quantity (state is single, the others float), a duplicate (common
 * address, IOA), min >= max, scale 0. Returns ANM_OK, ANM_EIO, ANM_EPARSE,
 * ANM_ECONFIG (detail->path names the entry, e.g. "points[2].iec104.ioa")
 * or ANM_ENOMEM. *out is new.
 */
int gateway_proforma_load_file(const char *path, gateway_proforma **out,
                               anm_error_detail *detail);
int gateway_proforma_load_string(const char *text, size_t length, const char *name,
                                 gateway_proforma **out, anm_error_detail *detail);
void gateway_proforma_destroy(gateway_proforma **p);

size_t gateway_proforma_der_count(const gateway_proforma *p);
const gateway_proforma_der *gateway_proforma_der_at(const gateway_proforma *p, size_t i);
/* Index of the DER with this id, or -1. */
int gateway_proforma_der_index(const gateway_proforma *p, const char *der_id);
size_t gateway_proforma_point_count(const gateway_proforma *p);
const gateway_proforma_point *gateway_proforma_point_at(const gateway_proforma *p, size_t i);

/* Quality flags of a scaled value (route-neutral; each route maps them). */
enum {
    GATEWAY_QUALITY_OVER = 1u << 0,   /* sent value above max */
    GATEWAY_QUALITY_UNDER = 1u << 1,  /* sent value below min */
    GATEWAY_QUALITY_INVALID = 1u << 2 /* no value (no statement, not finite) */
};

/*
 * engineering -> sent value (engineering * scale + offset), *flags the
 * GATEWAY_QUALITY_* bits: OVER/UNDER when outside [min, max] (the value is
 * NOT clipped), INVALID for a non-finite input.
 */
double gateway_proforma_scale(const gateway_proforma_point *point, double engineering,
                              unsigned *flags);

/* IEC 104 QDS bits for flags: OVER/UNDER -> OV ("beyond a predefined range"), INVALID -> IV. */
uint8_t gateway_proforma_qds(unsigned flags);
/* "good", "out_of_range" or "invalid" (MQTT/CSV quality field). Static. */
const char *gateway_proforma_quality_name(unsigned flags);

#endif
