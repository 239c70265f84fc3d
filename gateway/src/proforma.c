/* proforma.c: the pro-forma mapping file (see proforma.h). */
#include "gateway/proforma.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/iec104.h"

static const char *const quantity_names[] = {"metered_mw", "availability_mw", "pcf", "state",
                                             NULL};
static const char *const iec104_type_names[] = {"float", "single", NULL};

#define IEC(member, ctype) ANM_CONFIG_OFFSET(gateway_proforma_iec104, member, ctype)
static const anm_config_entry iec104_entries[] = {
    {.name = "common_address", .type = ANM_CONFIG_INT, .offset = IEC(common_address, long),
     .int_min = 1, .int_max = 65534, .default_int = 1, .help = "IEC 104 common address (CA)"},
    {.name = "ioa", .type = ANM_CONFIG_INT, .offset = IEC(ioa, long), .int_min = 0,
     .int_max = (long)GATEWAY_IEC104_MAX_IOA, .default_int = 0,
     .help = "information object address; 0: not sent on IEC 104"},
    {.name = "type", .type = ANM_CONFIG_ENUM, .offset = IEC(type, int), .names = iec104_type_names,
     .default_string = "float",
     .help = "float (M_ME_NC_1 / M_ME_TF_1) or single (M_SP_NA_1 / M_SP_TB_1)"},
    ANM_CONFIG_END};
static const anm_config_table iec104_table = {iec104_entries, sizeof(gateway_proforma_iec104),
                                              NULL};

#define DER(member, ctype) ANM_CONFIG_OFFSET(gateway_proforma_der, member, ctype)
static const anm_config_entry der_entries[] = {
    {.name = "id", .type = ANM_CONFIG_STRING, .offset = DER(id, char *),
     .flags = ANM_CONFIG_REQUIRED, .min_length = 1, .max_length = 63, .help = "DER id"},
    {.name = "zone", .type = ANM_CONFIG_STRING, .offset = DER(zone, char *),
     .flags = ANM_CONFIG_REQUIRED, .min_length = 1, .max_length = 63, .help = "zone id"},
    {.name = "unit", .type = ANM_CONFIG_STRING, .offset = DER(unit, char *), .min_length = 1,
     .max_length = 63, .help = "NESO unit id (default: the DER id)"},
    {.name = "capacity_mw", .type = ANM_CONFIG_DOUBLE, .offset = DER(capacity_mw, double),
     .flags = ANM_CONFIG_REQUIRED, .min = 1e-6, .max = 1e5, .help = "registered capacity (MW)"},
    {.name = "metered_signal_id", .type = ANM_CONFIG_INT,
     .offset = DER(metered_signal_id, long), .int_min = 0, .int_max = 4294967295L,
     .default_int = 0, .help = "registry signal id of the DER's output MW (0: none)"},
    ANM_CONFIG_END};
static const anm_config_table der_table = {der_entries, sizeof(gateway_proforma_der), NULL};

#define PT(member, ctype) ANM_CONFIG_OFFSET(gateway_proforma_point, member, ctype)
static const anm_config_entry point_entries[] = {
    {.name = "der", .type = ANM_CONFIG_STRING, .offset = PT(der, char *), .min_length = 1,
     .max_length = 63, .help = "DER id (or give zone for a zone-level point)"},
    {.name = "zone", .type = ANM_CONFIG_STRING, .offset = PT(zone, char *), .min_length = 1,
     .max_length = 63, .help = "zone id of a zone-level point"},
    {.name = "quantity", .type = ANM_CONFIG_ENUM, .offset = PT(quantity, int),
     .names = quantity_names, .flags = ANM_CONFIG_REQUIRED,
     .help = "metered_mw, availability_mw, pcf or state"},
    {.name = "iec104", .type = ANM_CONFIG_SECTION, .offset = PT(iec104, gateway_proforma_iec104),
     .section = &iec104_table, .help = "IEC 104 address and type"},
    {.name = "mqtt_topic", .type = ANM_CONFIG_STRING, .offset = PT(mqtt_topic, char *),
     .min_length = 1, .max_length = 255, .help = "MQTT topic (absent: not on MQTT)"},
    {.name = "dc_column", .type = ANM_CONFIG_STRING, .offset = PT(dc_column, char *),
     .min_length = 1, .max_length = 63, .help = "Data Concentrator CSV column (absent: none)"},
    {.name = "scale", .type = ANM_CONFIG_DOUBLE, .offset = PT(scale, double), .min = -1e9,
     .max = 1e9, .default_double = 1.0, .help = "sent = engineering * scale + offset"},
    {.name = "offset", .type = ANM_CONFIG_DOUBLE, .offset = PT(offset, double), .min = -1e9,
     .max = 1e9, .default_double = 0.0, .help = "see scale"},
    {.name = "min", .type = ANM_CONFIG_DOUBLE, .offset = PT(min, double),
     .flags = ANM_CONFIG_REQUIRED, .min = -1e12, .max = 1e12,
     .help = "lowest valid sent value (below: flagged, not clipped)"},
    {.name = "max", .type = ANM_CONFIG_DOUBLE, .offset = PT(max, double),
     .flags = ANM_CONFIG_REQUIRED, .min = -1e12, .max = 1e12,
     .help = "highest valid sent value (above: flagged, not clipped)"},
    ANM_CONFIG_END};
static const anm_config_table point_table = {point_entries, sizeof(gateway_proforma_point), NULL};

#define PF(member, ctype) ANM_CONFIG_OFFSET(gateway_proforma, member, ctype)
static const anm_config_entry entries[] = {
    {.name = "version", .type = ANM_CONFIG_INT, .offset = PF(version, long), .int_min = 1,
     .int_max = 1, .default_int = 1, .help = "file format version"},
    {.name = "participant", .type = ANM_CONFIG_STRING, .offset = PF(participant, char *),
     .min_length = 1, .max_length = 127, .help = "the participant named in the pro-forma"},
    {.name = "ders", .type = ANM_CONFIG_SECTION_ARRAY, .offset = PF(ders, anm_config_array),
     .section = &der_table, .flags = ANM_CONFIG_REQUIRED, .min_items = 1, .max_items = 100000,
     .help = "the DERs exported"},
    {.name = "points", .type = ANM_CONFIG_SECTION_ARRAY, .offset = PF(points, anm_config_array),
     .section = &point_table, .flags = ANM_CONFIG_REQUIRED, .min_items = 1,
     .max_items = 1000000, .help = "one entry per exported quantity"},
    ANM_CONFIG_END};
static const anm_config_table table = {entries, sizeof(gateway_proforma), NULL};

const anm_config_table *gateway_proforma_table(void) { return &table; }

const char *gateway_quantity_name(gateway_quantity quantity)
{
    if ((int)quantity < 0 || (int)quantity > GATEWAY_QUANTITY_STATE)
        return "unknown";
    return quantity_names[quantity];
}

size_t gateway_proforma_der_count(const gateway_proforma *p) { return p->ders.count; }
const gateway_proforma_der *gateway_proforma_der_at(const gateway_proforma *p, size_t i)
{
    return i < p->ders.count ? ANM_CONFIG_ITEM(p->ders, gateway_proforma_der, i) : NULL;
}
size_t gateway_proforma_point_count(const gateway_proforma *p) { return p->points.count; }
const gateway_proforma_point *gateway_proforma_point_at(const gateway_proforma *p, size_t i)
{
    return i < p->points.count ? ANM_CONFIG_ITEM(p->points, gateway_proforma_point, i) : NULL;
}

int gateway_proforma_der_index(const gateway_proforma *p, const char *der_id)
{
    for (size_t i = 0; der_id != NULL && i < p->ders.count; i++) {
        if (strcmp(ANM_CONFIG_ITEM(p->ders, gateway_proforma_der, i)->id, der_id) == 0)
            return (int)i;
    }
    return -1;
}

static int has_zone(const gateway_proforma *p, const char *zone)
{
    for (size_t i = 0; i < p->ders.count; i++) {
        if (strcmp(ANM_CONFIG_ITEM(p->ders, gateway_proforma_der, i)->zone, zone) == 0)
            return 1;
    }
    return 0;
}

__attribute__((format(printf, 4, 5))) static int fail(anm_error_detail *d, const char *file,
                                                       const char *path, const char *fmt, ...)
{
    char message[400];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (n < 0)
        message[0] = '\0';
    anm_error_detail_set(d, file, 0, 0, path, "%s", message);
    return ANM_ECONFIG;
}

/* The checks the typed table cannot express. */
static int validate(const gateway_proforma *p, const char *file, anm_error_detail *d)
{
    char path[128];
    for (size_t i = 0; i < p->ders.count; i++) {
        const gateway_proforma_der *der = ANM_CONFIG_ITEM(p->ders, gateway_proforma_der, i);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(ANM_CONFIG_ITEM(p->ders, gateway_proforma_der, j)->id, der->id) == 0) {
                snprintf(path, sizeof path, "ders[%zu].id", i);
                return fail(d, file, path, "duplicate DER id \"%s\"", der->id);
            }
        }
    }
    for (size_t i = 0; i < p->points.count; i++) {
        const gateway_proforma_point *pt = ANM_CONFIG_ITEM(p->points, gateway_proforma_point, i);
        if ((pt->der == NULL) == (pt->zone == NULL)) {
            snprintf(path, sizeof path, "points[%zu]", i);
            return fail(d, file, path, "give exactly one of \"der\" and \"zone\"");
        }
        if (pt->der != NULL && gateway_proforma_der_index(p, pt->der) < 0) {
            snprintf(path, sizeof path, "points[%zu].der", i);
            return fail(d, file, path, "unknown DER \"%s\"", pt->der);
        }
        if (pt->zone != NULL && !has_zone(p, pt->zone)) {
            snprintf(path, sizeof path, "points[%zu].zone", i);
            return fail(d, file, path, "unknown zone \"%s\" (no DER of the file is in it)",
                        pt->zone);
        }
        if (pt->zone != NULL && pt->quantity != GATEWAY_QUANTITY_METERED_MW &&
            pt->quantity != GATEWAY_QUANTITY_AVAILABILITY_MW) {
            snprintf(path, sizeof path, "points[%zu].quantity", i);
            return fail(d, file, path,
                        "a zone-level point must be metered_mw or availability_mw, not %s",
                        gateway_quantity_name((gateway_quantity)pt->quantity));
        }
        if (!(pt->min < pt->max)) {
            snprintf(path, sizeof path, "points[%zu].max", i);
            return fail(d, file, path, "max must be greater than min");
        }
        if (pt->scale == 0.0) {
            snprintf(path, sizeof path, "points[%zu].scale", i);
            return fail(d, file, path, "scale must not be 0");
        }
        if (pt->iec104.ioa == 0)
            continue;
        int want = pt->quantity == GATEWAY_QUANTITY_STATE ? GATEWAY_PROFORMA_SINGLE
                                                          : GATEWAY_PROFORMA_FLOAT;
        if (pt->iec104.type != want) {
            snprintf(path, sizeof path, "points[%zu].iec104.type", i);
            return fail(d, file, path, "quantity %s needs type \"%s\"",
                        want == GATEWAY_PROFORMA_SINGLE ? "state" : "measured (float)",
                        iec104_type_names[want]);
        }
        for (size_t j = 0; j < i; j++) {
            const gateway_proforma_point *q =
                ANM_CONFIG_ITEM(p->points, gateway_proforma_point, j);
            if (q->iec104.ioa == pt->iec104.ioa &&
                q->iec104.common_address == pt->iec104.common_address) {
                snprintf(path, sizeof path, "points[%zu].iec104.ioa", i);
                return fail(d, file, path,
                            "duplicate common address %ld and ioa %ld (also points[%zu])",
                            pt->iec104.common_address, pt->iec104.ioa, j);
            }
        }
    }
    return ANM_OK;
}

static int finish(gateway_proforma *p, int rc, const char *file, gateway_proforma **out,
                  anm_error_detail *detail)
{
    if (rc == ANM_OK)
        rc = validate(p, file, detail);
    if (rc != ANM_OK) {
        anm_config_free(&table, p);
        free(p);
        return rc;
    }
    for (size_t i = 0; i < p->ders.count; i++) {
        gateway_proforma_der *der = ANM_CONFIG_ITEM(p->ders, gateway_proforma_der, i);
        if (der->unit == NULL && (der->unit = strdup(der->id)) == NULL) {
            anm_config_free(&table, p);
            free(p);
            return ANM_ENOMEM;
        }
    }
    *out = p;
    return ANM_OK;
}

int gateway_proforma_load_file(const char *path, gateway_proforma **out,
                               anm_error_detail *detail)
{
    *out = NULL;
    gateway_proforma *p = calloc(1, sizeof *p);
    if (p == NULL)
        return ANM_ENOMEM;
    int rc = anm_config_load_file(&table, path, p, detail);
    return finish(p, rc, path, out, detail);
}

int gateway_proforma_load_string(const char *text, size_t length, const char *name,
                                 gateway_proforma **out, anm_error_detail *detail)
{
    *out = NULL;
    gateway_proforma *p = calloc(1, sizeof *p);
    if (p == NULL)
        return ANM_ENOMEM;
    int rc = anm_config_load_string(&table, text, length, name, p, detail);
    return finish(p, rc, name, out, detail);
}

void gateway_proforma_destroy(gateway_proforma **p)
{
    if (p == NULL || *p == NULL)
        return;
    anm_config_free(&table, *p);
    free(*p);
    *p = NULL;
}

double gateway_proforma_scale(const gateway_proforma_point *point, double engineering,
                              unsigned *flags)
{
    *flags = 0;
    if (!isfinite(engineering)) {
        *flags = GATEWAY_QUALITY_INVALID;
        return engineering;
    }
    double sent = engineering * point->scale + point->offset;
    if (sent > point->max)
        *flags |= GATEWAY_QUALITY_OVER;
    else if (sent < point->min)
        *flags |= GATEWAY_QUALITY_UNDER;
    return sent;
}

uint8_t gateway_proforma_qds(unsigned flags)
{
    uint8_t q = 0;
    if (flags & (GATEWAY_QUALITY_OVER | GATEWAY_QUALITY_UNDER))
        q |= GATEWAY_IEC104_QDS_OV;
    if (flags & GATEWAY_QUALITY_INVALID)
        q |= GATEWAY_IEC104_QDS_IV;
    return q;
}

const char *gateway_proforma_quality_name(unsigned flags)
{
    if (flags & GATEWAY_QUALITY_INVALID)
        return "invalid";
    if (flags & (GATEWAY_QUALITY_OVER | GATEWAY_QUALITY_UNDER))
        return "out_of_range";
    return "good";
}
