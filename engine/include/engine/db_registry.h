/*
 * db_registry.h: the registry tables (zones, monitored_elements, ders,
 * signals; sql/0001_registry.sql) filled from a loaded zone set.
 */
#ifndef ANM_ENGINE_DB_REGISTRY_H
#define ANM_ENGINE_DB_REGISTRY_H

#include "engine/db.h"
#include "engine/error.h"
#include "engine/zone.h"

#include <stddef.h>

typedef struct anm_db_registry_counts {
    size_t zones, monitored, ders, signals; /* rows inserted or updated */
} anm_db_registry_counts;

/*
 * Upserts every zone of set (with its monitored elements, DERs and signals)
 * by id, in one transaction: either all of the file is stored or none.
 * Rows of the database that the file no longer has are left alone. A signal
 * keeps its signal_key across reloads. zone_file and case_file are recorded
 * as given. A DER or signal id that already belongs to another zone is an
 * error (ANM_EDUP, err->path names it, e.g. "zones[0].ders[2].id"); server
 * errors give ANM_EDB or ANM_EAGAIN with the server's message in err.
 * counts may be NULL.
 */
int anm_db_registry_load(anm_db *db, const anm_zone_set *set, const char *zone_file,
                         const char *case_file, anm_db_registry_counts *counts, anm_error_detail *err);

#endif
