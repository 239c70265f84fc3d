/*
 * test_wa_messages.c: the Wider Access schemas (gateway/wa_messages.h): the
 * documented example of every kind is valid, and each way a message can be
 * wrong is refused with its reason code, key path and message.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "engine/bus.h"
#include "gateway/wa_messages.h"

/* The examples of docs/wider-access.md, one per kind. */
static const char *const examples[GATEWAY_WA_KIND_COUNT] = {
    [GATEWAY_WA_HEALTH] =
        "{\"v\":1,\"kind\":\"health\",\"message_id\":\"h-0001\",\"sender\":\"ANM-PART-01\","
        "\"created_at\":\"2026-11-26T03:30:00.000Z\",\"status\":\"degraded\","
        "\"detail\":\"iec104 route down\",\"components\":[{\"name\":\"iec104\",\"status\":\"down\"},"
        "{\"name\":\"forecast\",\"status\":\"ok\"}]}",
    [GATEWAY_WA_NORMALISATION] =
        "{\"v\":1,\"kind\":\"normalisation\",\"message_id\":\"N-778\",\"sender\":\"NESO\","
        "\"created_at\":\"2026-11-26T03:31:00Z\",\"bmu\":\"E_ANMZ-1\","
        "\"effective_at\":\"2026-11-26T04:00:00Z\",\"instruction_id\":\"BOA-4411\"}",
    [GATEWAY_WA_INSTRUCTION] =
        "{\"v\":1,\"kind\":\"instruction\",\"message_id\":\"I-9001\",\"sender\":\"NESO\","
        "\"created_at\":\"2026-11-26T03:30:05Z\",\"instruction_id\":\"BOA-4411\","
        "\"bmu\":\"E_ANMZ-1\",\"issued_at\":\"2026-11-26T03:30:00Z\",\"points\":["
        "{\"time\":\"2026-11-26T03:32:00Z\",\"level_mw\":12.5},"
        "{\"time\":\"2026-11-26T03:35:00Z\",\"level_mw\":8},"
        "{\"time\":\"2026-11-26T04:00:00Z\",\"level_mw\":8}],\"reason_code\":\"SO-CONSTRAINT\"}",
    [GATEWAY_WA_REDECLARATION] =
        "{\"v\":1,\"kind\":\"redeclaration\",\"message_id\":\"R-0042\",\"sender\":\"ANM-PART-01\","
        "\"created_at\":\"2026-11-26T03:40:00Z\",\"test\":true,\"bmu\":\"E_ANMZ-1\","
        "\"effective_from\":\"2026-11-26T05:00:00Z\",\"effective_to\":\"2026-11-26T05:30:00Z\","
        "\"availability_mw\":17.25,\"pcf\":0.12,\"confidence\":0.9,\"quality\":\"good\"}",
    [GATEWAY_WA_SUBMISSION] =
        "{\"v\":1,\"kind\":\"submission\",\"message_id\":\"S-0007\",\"sender\":\"ANM-PART-01\","
        "\"created_at\":\"2026-11-26T03:41:00Z\",\"bmu\":\"E_ANMZ-1\",\"data_type\":\"PN\","
        "\"points\":[{\"time\":\"2026-11-26T05:00:00Z\",\"level_mw\":20},"
        "{\"time\":\"2026-11-26T05:30:00Z\",\"level_mw\":18}]}",
    [GATEWAY_WA_ACK] =
        "{\"v\":1,\"kind\":\"ack\",\"message_id\":\"ack-1\",\"sender\":\"ANM-PART-01\","
        "\"created_at\":\"2026-11-26T03:30:06Z\",\"ref\":\"I-9001\",\"status\":\"accepted\"}",
};

Test(wa_messages, every_documented_example_is_valid)
{
    for (int k = 0; k < GATEWAY_WA_KIND_COUNT; k++) {
        json_t *msg = NULL;
        gateway_wa_kind kind = GATEWAY_WA_ACK;
        gateway_wa_reject why;
        cr_assert_eq(gateway_wa_parse(examples[k], strlen(examples[k]), &msg, &kind, &why), ANM_OK,
                     "%s: %s %s", gateway_wa_kind_name((gateway_wa_kind)k),
                     gateway_wa_reason_code(why.reason), why.text);
        cr_assert_eq((int)kind, k);
        cr_assert_eq(gateway_wa_schema_get(kind)->version, 1);
        json_decref(msg);
    }
}

Test(wa_messages, kind_names_and_directions)
{
    static const char *names[] = {"health", "normalisation", "instruction", "redeclaration",
                                  "submission", "ack"};
    for (int k = 0; k < GATEWAY_WA_KIND_COUNT; k++) {
        cr_assert_str_eq(gateway_wa_kind_name((gateway_wa_kind)k), names[k]);
        gateway_wa_kind parsed;
        cr_assert_eq(gateway_wa_kind_parse(names[k], &parsed), ANM_OK);
        cr_assert_eq((int)parsed, k);
    }
    gateway_wa_kind parsed;
    cr_assert_eq(gateway_wa_kind_parse("Instruction", &parsed), ANM_ENOTFOUND);
    cr_assert_eq(gateway_wa_schema_get(GATEWAY_WA_INSTRUCTION)->direction, GATEWAY_WA_FROM_NESO);
    cr_assert_eq(gateway_wa_schema_get(GATEWAY_WA_NORMALISATION)->direction, GATEWAY_WA_FROM_NESO);
    cr_assert_eq(gateway_wa_schema_get(GATEWAY_WA_REDECLARATION)->direction, GATEWAY_WA_TO_NESO);
    cr_assert_eq(gateway_wa_schema_get(GATEWAY_WA_SUBMISSION)->direction, GATEWAY_WA_TO_NESO);
    cr_assert_eq(gateway_wa_schema_get(GATEWAY_WA_HEALTH)->direction, GATEWAY_WA_TO_NESO);
    cr_assert_null(gateway_wa_schema_get((gateway_wa_kind)GATEWAY_WA_KIND_COUNT));
}

/* Parses example kind after applying edit (a JSON object merged over it; a
 * null value deletes the key) and expects the given refusal. */
static void expect(gateway_wa_kind k, const char *edit, gateway_wa_reason reason, const char *path,
                   const char *text)
{
    json_t *msg = json_loads(examples[k], 0, NULL);
    json_t *patch = json_loads(edit, 0, NULL);
    cr_assert_not_null(patch, "bad edit %s", edit);
    const char *key;
    json_t *value;
    json_object_foreach(patch, key, value) {
        if (json_is_null(value))
            json_object_del(msg, key);
        else
            json_object_set(msg, key, value);
    }
    char *text_in = json_dumps(msg, JSON_COMPACT);
    json_t *out = NULL;
    gateway_wa_reject why;
    cr_assert_eq(gateway_wa_parse(text_in, strlen(text_in), &out, NULL, &why), ANM_EPROTO,
                 "edit %s was accepted", edit);
    cr_assert_null(out);
    cr_assert_eq(why.reason, reason, "edit %s: %s (%s)", edit, gateway_wa_reason_code(why.reason),
                 why.text);
    cr_assert_str_eq(why.path, path);
    cr_assert_str_eq(why.text, text);
    free(text_in);
    json_decref(patch);
    json_decref(msg);
}

Test(wa_messages, refuses_kind_and_version_problems)
{
    expect(GATEWAY_WA_INSTRUCTION, "{\"kind\":\"dispatch\"}", GATEWAY_WA_UNKNOWN_KIND, "kind",
           "unknown message kind \"dispatch\"");
    expect(GATEWAY_WA_INSTRUCTION, "{\"kind\":null}", GATEWAY_WA_MISSING_FIELD, "kind",
           "field \"kind\" is missing");
    expect(GATEWAY_WA_INSTRUCTION, "{\"kind\":3}", GATEWAY_WA_WRONG_TYPE, "kind",
           "field \"kind\": expected string, got integer");
    expect(GATEWAY_WA_INSTRUCTION, "{\"v\":2}", GATEWAY_WA_WRONG_VERSION, "v",
           "instruction version 2 is not supported (expected 1)");
    expect(GATEWAY_WA_INSTRUCTION, "{\"v\":null}", GATEWAY_WA_WRONG_VERSION, "v",
           "field \"v\" is missing");
    expect(GATEWAY_WA_INSTRUCTION, "{\"v\":\"1\"}", GATEWAY_WA_WRONG_VERSION, "v",
           "field \"v\": expected integer, got string");
}

Test(wa_messages, refuses_missing_wrong_typed_and_unknown_fields)
{
    expect(GATEWAY_WA_INSTRUCTION, "{\"bmu\":null}", GATEWAY_WA_MISSING_FIELD, "bmu",
           "field \"bmu\" is missing");
    expect(GATEWAY_WA_INSTRUCTION, "{\"message_id\":null}", GATEWAY_WA_MISSING_FIELD,
           "message_id", "field \"message_id\" is missing");
    expect(GATEWAY_WA_INSTRUCTION, "{\"points\":{}}", GATEWAY_WA_WRONG_TYPE, "points",
           "field \"points\": expected array, got object");
    expect(GATEWAY_WA_INSTRUCTION, "{\"points\":[{\"time\":\"2026-11-26T03:32:00Z\",\"level_mw\":\"12\"}]}",
           GATEWAY_WA_WRONG_TYPE, "points[0].level_mw",
           "field \"points[0].level_mw\": expected number, got string");
    expect(GATEWAY_WA_INSTRUCTION, "{\"points\":[{\"time\":\"2026-11-26T03:32:00Z\"}]}",
           GATEWAY_WA_MISSING_FIELD, "points[0].level_mw",
           "field \"points[0].level_mw\" is missing");
    expect(GATEWAY_WA_INSTRUCTION, "{\"points\":[7]}", GATEWAY_WA_WRONG_TYPE, "points[0]",
           "field \"points[0]\": expected object, got integer");
    expect(GATEWAY_WA_INSTRUCTION, "{\"issued_at\":\"yesterday\"}", GATEWAY_WA_WRONG_TYPE,
           "issued_at", "field \"issued_at\": expected ISO 8601 UTC time string, got \"yesterday\"");
    expect(GATEWAY_WA_REDECLARATION, "{\"test\":\"yes\"}", GATEWAY_WA_WRONG_TYPE, "test",
           "field \"test\": expected boolean, got string");
    expect(GATEWAY_WA_INSTRUCTION, "{\"priority\":1}", GATEWAY_WA_UNKNOWN_FIELD, "priority",
           "field \"priority\" is not part of instruction v1");
    expect(GATEWAY_WA_SUBMISSION,
           "{\"points\":[{\"time\":\"2026-11-26T05:00:00Z\",\"level_mw\":1,\"unit\":\"MW\"}]}",
           GATEWAY_WA_UNKNOWN_FIELD, "points[0].unit", "field \"points[0].unit\" is not part of item");
}

Test(wa_messages, refuses_values_out_of_bounds_and_enumeration)
{
    expect(GATEWAY_WA_REDECLARATION, "{\"availability_mw\":-0.5}", GATEWAY_WA_OUT_OF_RANGE,
           "availability_mw", "field \"availability_mw\": -0.5 is outside [0, 10000]");
    expect(GATEWAY_WA_REDECLARATION, "{\"pcf\":1.01}", GATEWAY_WA_OUT_OF_RANGE, "pcf",
           "field \"pcf\": 1.01 is outside [0, 1]");
    expect(GATEWAY_WA_INSTRUCTION, "{\"bmu\":\"\"}", GATEWAY_WA_OUT_OF_RANGE, "bmu",
           "field \"bmu\": length 0 is outside [1, 64]");
    expect(GATEWAY_WA_INSTRUCTION, "{\"points\":[]}", GATEWAY_WA_OUT_OF_RANGE, "points",
           "field \"points\": 0 items, allowed [1, 1000]");
    expect(GATEWAY_WA_REDECLARATION, "{\"quality\":\"bad\"}", GATEWAY_WA_BAD_ENUM, "quality",
           "field \"quality\": \"bad\" is not allowed");
    expect(GATEWAY_WA_SUBMISSION, "{\"data_type\":\"pn\"}", GATEWAY_WA_BAD_ENUM, "data_type",
           "field \"data_type\": \"pn\" is not allowed");
    expect(GATEWAY_WA_HEALTH, "{\"components\":[{\"name\":\"x\",\"status\":\"fine\"}]}",
           GATEWAY_WA_BAD_ENUM, "components[0].status",
           "field \"components[0].status\": \"fine\" is not allowed");
    /* cross-field rules */
    expect(GATEWAY_WA_REDECLARATION, "{\"effective_to\":\"2026-11-26T05:00:00Z\"}",
           GATEWAY_WA_OUT_OF_RANGE, "effective_to",
           "field \"effective_to\": must be after \"effective_from\"");
    expect(GATEWAY_WA_INSTRUCTION,
           "{\"points\":[{\"time\":\"2026-11-26T03:35:00Z\",\"level_mw\":1},"
           "{\"time\":\"2026-11-26T03:35:00Z\",\"level_mw\":2}]}",
           GATEWAY_WA_OUT_OF_RANGE, "points[1].time",
           "field \"points[1].time\": times must increase strictly");
}

Test(wa_messages, refuses_bad_json_and_duplicate_keys)
{
    json_t *out = NULL;
    gateway_wa_reject why;
    const char dup[] = "{\"v\":1,\"kind\":\"ack\",\"kind\":\"instruction\"}";
    cr_assert_eq(gateway_wa_parse(dup, strlen(dup), &out, NULL, &why), ANM_EPROTO);
    cr_assert_eq(why.reason, GATEWAY_WA_BAD_JSON);
    cr_assert_str_eq(why.text, "not json: duplicate object key near '\"kind\"' at column 26"); /* the end of the second "kind" */
    cr_assert_eq(gateway_wa_parse("[1]", 3, &out, NULL, &why), ANM_EPROTO);
    cr_assert_eq(why.reason, GATEWAY_WA_BAD_JSON);
    cr_assert_str_eq(why.text, "message is array, not an object");
    cr_assert_eq(gateway_wa_parse("{\"v\":1", 6, &out, NULL, &why), ANM_EPROTO);
    cr_assert_eq(why.reason, GATEWAY_WA_BAD_JSON);
    cr_assert_null(out);
}

Test(wa_messages, builders_make_valid_messages)
{
    /* 2026-11-26T03:30:00Z = 1795663800000 ms: days_from_civil(2026,11,26) = 20783 */
    int64_t t = 20783LL * 86400000LL + (3 * 3600 + 30 * 60) * 1000LL;
    json_t *r = gateway_wa_message_new(GATEWAY_WA_REDECLARATION, "R-1", "ANM-PART-01", t, 1);
    cr_assert_str_eq(json_string_value(json_object_get(r, "created_at")), "2026-11-26T03:30:00.000Z");
    cr_assert(json_is_true(json_object_get(r, "test")));
    json_object_set_new(r, "bmu", json_string("E_ANMZ-1"));
    json_object_set_new(r, "effective_from", json_string("2026-11-26T05:00:00Z"));
    json_object_set_new(r, "effective_to", json_string("2026-11-26T05:30:00Z"));
    json_object_set_new(r, "availability_mw", json_real(3.5));
    json_object_set_new(r, "quality", json_string("flagged"));
    gateway_wa_kind kind;
    gateway_wa_reject why;
    cr_assert_eq(gateway_wa_validate(r, &kind, &why), ANM_OK, "%s", why.text);
    cr_assert_eq(kind, GATEWAY_WA_REDECLARATION);
    json_decref(r);

    json_t *ack = gateway_wa_ack_new("ack-9", "ANM-PART-01", t, NULL, 0, "bad_signature",
                                     "RS256 signature does not verify");
    cr_assert_eq(gateway_wa_validate(ack, &kind, &why), ANM_OK, "%s", why.text);
    cr_assert_str_eq(json_string_value(json_object_get(ack, "status")), "rejected");
    cr_assert_null(json_object_get(ack, "ref"));
    cr_assert_str_eq(json_string_value(json_object_get(ack, "reason")), "bad_signature");
    json_decref(ack);
}

Test(wa_messages, bus_body_schema)
{
    size_t count = 0;
    const anm_bus_schema *table = gateway_wa_bus_schemas(&count);
    cr_assert_eq(count, 2);
    const char topic[] = "wa.instruction/E_ANMZ-1";
    const char body[] = "{\"v\":1,\"kind\":\"wa.instruction\",\"received_at\":\"2026-11-26T03:30:05Z\","
                        "\"kid\":\"neso-2026\",\"message\":{\"kind\":\"instruction\"}}";
    json_t *out = NULL;
    anm_bus_reject why;
    cr_assert_eq(anm_bus_parse_json(table, count, topic, strlen(topic), body, strlen(body), &out,
                                    NULL, &why),
                 ANM_OK, "%s", why.text);
    json_decref(out);
    const char missing[] = "{\"v\":1,\"kind\":\"wa.instruction\",\"received_at\":\"2026-11-26T03:30:05Z\","
                           "\"kid\":\"neso-2026\"}";
    cr_assert_eq(anm_bus_parse_json(table, count, topic, strlen(topic), missing, strlen(missing),
                                    &out, NULL, &why),
                 ANM_EPROTO);
    cr_assert_eq(why.reason, ANM_BUS_MISSING_FIELD);
}
