/*
 * wa_messages.h: the Wider Access API message kinds and their schemas, all
 * in one table (wa_messages.c), documented in docs/wider-access.md.
 *
 * Every message is a JSON object carrying the common fields
 *   "v"          schema version (integer, must equal the table's)
 *   "kind"       "health" | "normalisation" | "instruction" |
 *                "redeclaration" | "submission" | "ack"
 *   "message_id" the sender's unique id (1..64 chars)
 *   "sender"     the sender's participant or system id (1..64 chars)
 *   "created_at" ISO 8601 UTC time
 *   "test"       optional boolean: commissioning traffic
 * plus the kind's own fields. Validation is strict: unknown fields, wrong
 * types, values outside bounds, strings outside their enumeration and
 * duplicate keys are all refused with a reason code and the key path
 * ("points[3].level_mw").
 *
 * NESO's own schemas are not public: these are the project's, versioned so
 * that a pro-forma agreed with NESO can replace a kind by a new version.
 */
#ifndef GATEWAY_WA_MESSAGES_H
#define GATEWAY_WA_MESSAGES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/bus.h"
#include "engine/error.h"

typedef enum gateway_wa_kind {
    GATEWAY_WA_HEALTH = 0,
    GATEWAY_WA_NORMALISATION,
    GATEWAY_WA_INSTRUCTION,
    GATEWAY_WA_REDECLARATION,
    GATEWAY_WA_SUBMISSION,
    GATEWAY_WA_ACK
} gateway_wa_kind;

enum { GATEWAY_WA_KIND_COUNT = 6 };

/* Who sends the kind. */
typedef enum gateway_wa_direction {
    GATEWAY_WA_TO_NESO,   /* participant -> NESO: our client sends it */
    GATEWAY_WA_FROM_NESO, /* NESO -> participant: our server receives it */
    GATEWAY_WA_BOTH       /* acknowledgements */
} gateway_wa_direction;

typedef enum gateway_wa_field_type {
    GATEWAY_WA_STRING,  /* length within [min, max] */
    GATEWAY_WA_INTEGER, /* within [min, max] */
    GATEWAY_WA_NUMBER,  /* finite, within [min, max] */
    GATEWAY_WA_BOOLEAN,
    GATEWAY_WA_TIME,    /* ISO 8601 UTC string (anm_time_parse_iso8601) */
    GATEWAY_WA_ENUM,    /* a string among enum_values */
    GATEWAY_WA_ARRAY    /* of objects with item fields; item count within [min, max] */
} gateway_wa_field_type;

typedef struct gateway_wa_field {
    const char *name;
    gateway_wa_field_type type;
    int required;
    double min, max; /* bounds as described per type (ignored for BOOLEAN, TIME, ENUM) */
    const char *const *enum_values; /* ENUM: NULL-terminated */
    const struct gateway_wa_field *items; /* ARRAY: fields of each item, name NULL ends */
} gateway_wa_field;

typedef struct gateway_wa_schema {
    gateway_wa_kind kind;
    const char *name; /* the "kind" value */
    int version;
    gateway_wa_direction direction;
    size_t max_bytes; /* longest accepted JSON text */
    const gateway_wa_field *fields; /* kind fields after the common ones; name NULL ends */
} gateway_wa_schema;

/* The schema of kind (read-only table), or NULL for an out-of-range kind. */
const gateway_wa_schema *gateway_wa_schema_get(gateway_wa_kind kind);
/* The common fields every kind carries (name NULL ends). */
const gateway_wa_field *gateway_wa_common_fields(void);
/* "health", "normalisation", ... ; "?" out of range. */
const char *gateway_wa_kind_name(gateway_wa_kind kind);
/* ANM_OK or ANM_ENOTFOUND. */
int gateway_wa_kind_parse(const char *name, gateway_wa_kind *out);

typedef enum gateway_wa_reason {
    GATEWAY_WA_OK = 0,
    GATEWAY_WA_BAD_JSON,      /* "bad_json": not JSON, not an object, duplicate keys, too long */
    GATEWAY_WA_UNKNOWN_KIND,  /* "unknown_kind" */
    GATEWAY_WA_WRONG_KIND,    /* "wrong_kind": a kind not accepted where it arrived */
    GATEWAY_WA_WRONG_VERSION, /* "wrong_version" */
    GATEWAY_WA_MISSING_FIELD, /* "missing_field" */
    GATEWAY_WA_WRONG_TYPE,    /* "wrong_type" */
    GATEWAY_WA_OUT_OF_RANGE,  /* "out_of_range": bounds, lengths, counts, time order */
    GATEWAY_WA_BAD_ENUM,      /* "bad_enum" */
    GATEWAY_WA_UNKNOWN_FIELD  /* "unknown_field" */
} gateway_wa_reason;

const char *gateway_wa_reason_code(gateway_wa_reason reason);

typedef struct gateway_wa_reject {
    gateway_wa_reason reason;
    char path[128]; /* key path of the offending value ("" for the whole message) */
    char text[256]; /* "field \"points[2].level_mw\": 20001 is outside [-10000, 10000]" */
} gateway_wa_reject;

/*
 * Checks msg against the schema its "kind" names. On ANM_OK *kind_out (may
 * be NULL) is the kind; on ANM_EPROTO why (may be NULL) says what is wrong.
 */
int gateway_wa_validate(const json_t *msg, gateway_wa_kind *kind_out, gateway_wa_reject *why);

/*
 * Parses len bytes of JSON (duplicate keys refused, at most the kind's
 * max_bytes) and validates it. On ANM_OK *out is a new reference.
 * ANM_EPROTO with why filled, or ANM_ENOMEM.
 */
int gateway_wa_parse(const void *text, size_t len, json_t **out, gateway_wa_kind *kind_out,
                     gateway_wa_reject *why);

/*
 * A new message of kind with the common fields filled (created_at from
 * created_at_ms, "test" only when test is non-zero); the caller adds the
 * kind's fields. NULL on ENOMEM or a bad kind.
 */
json_t *gateway_wa_message_new(gateway_wa_kind kind, const char *message_id, const char *sender,
                               int64_t created_at_ms, int test);

/*
 * A new acknowledgement: ref the acknowledged message_id (NULL when it could
 * not be read), status "accepted" or "rejected", reason a reason code and
 * text a sentence (both may be NULL). NULL on ENOMEM.
 */
json_t *gateway_wa_ack_new(const char *message_id, const char *sender, int64_t created_at_ms,
                           const char *ref, int accepted, const char *reason, const char *text);

/*
 * The bus kinds the gateway publishes for received messages (read-only
 * table for anm_bus_parse_json):
 *   wa.instruction    topic "wa.instruction/<bmu>"
 *   wa.normalisation  topic "wa.normalisation/<bmu>"
 * body {"v":1,"kind":"wa.instruction","received_at":"...","kid":"...",
 *       "message":{...the validated Wider Access message...}}
 */
const anm_bus_schema *gateway_wa_bus_schemas(size_t *count);

#endif
