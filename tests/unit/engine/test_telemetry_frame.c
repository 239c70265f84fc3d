/* Tests of the telemetry batch codecs (engine/telemetry_frame.h). */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bus.h"
#include "engine/clock.h"
#include "engine/error.h"
#include "engine/telemetry_frame.h"

/* A one-sample frame written out by hand from the layout in docs/protocol.md:
 * resend flag, sender 7, seq 42, signal 1001 at 2021-01-01T00:00:00Z
 * (1609459200000 ms), value -1.5, quality 0x00c0; the CRC-32C trailer was
 * computed by a separate bit-by-bit implementation (Python). */
static const uint8_t hand_frame[50] = {
    0x41, 0x4e, 0x4d, 0x54, 0x01, 0x01, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x2a,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xe9, 0x03,
    0x00, 0x00, 0x00, 0x70, 0x3e, 0xbb, 0x76, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0xf8, 0xbf, 0xc0, 0x00, 0x44, 0xaa, 0x7e, 0xda};

/* Rewrites the trailer of a frame after a test changed its content. */
static void reseal(uint8_t *frame, size_t size)
{
    uint32_t crc = anm_crc32c(frame, size - 4);
    for (int i = 0; i < 4; i++)
        frame[size - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
}

static anm_telemetry_batch sample_batch(size_t n)
{
    anm_telemetry_batch b;
    anm_telemetry_batch_init(&b);
    b.sender_id = 3;
    b.seq = 1000;
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(anm_telemetry_batch_push(&b, (uint32_t)(i % 10000), 1609459200000 + (int64_t)i * 50,
                                              (double)i * 0.25 - 100.0, (uint16_t)(i % 4)),
                     ANM_OK);
    return b;
}

/* Encodes a batch into a new buffer. */
static uint8_t *encode(const anm_telemetry_batch *b, size_t *size)
{
    *size = anm_telemetry_frame_size(b->count);
    uint8_t *buf = malloc(*size);
    size_t written = 0;
    cr_assert_eq(anm_telemetry_encode(b, buf, *size, &written), ANM_OK);
    cr_assert_eq(written, *size);
    return buf;
}

Test(telemetry_frame, crc32c_matches_the_published_check_value)
{
    /* the CRC-32C check value of "123456789" (RFC 3720 / the CRC catalogue) */
    cr_assert_eq(anm_crc32c("123456789", 9), 0xe3069283u);
    cr_assert_eq(anm_crc32c("", 0), 0u);
}

Test(telemetry_frame, encode_matches_the_documented_layout_byte_for_byte)
{
    anm_telemetry_batch b;
    anm_telemetry_batch_init(&b);
    b.sender_id = 7;
    b.seq = 42;
    b.flags = ANM_TELEMETRY_FLAG_RESEND;
    anm_telemetry_batch_push(&b, 1001, 1609459200000, -1.5, 0x00c0);
    uint8_t buf[64];
    size_t written = 0;
    cr_assert_eq(anm_telemetry_encode(&b, buf, sizeof buf, &written), ANM_OK);
    cr_assert_eq(written, sizeof hand_frame);
    cr_assert_arr_eq(buf, hand_frame, sizeof hand_frame);
    cr_assert_eq(anm_telemetry_encode(&b, buf, 49, NULL), ANM_ERANGE);
    anm_telemetry_batch_free(&b);
}

Test(telemetry_frame, decode_reads_the_hand_written_frame)
{
    anm_telemetry_batch b;
    anm_telemetry_batch_init(&b);
    anm_telemetry_reject why;
    cr_assert_eq(anm_telemetry_decode(hand_frame, sizeof hand_frame, NULL, &b, &why), ANM_OK);
    cr_assert_eq(why.reason, ANM_TELEMETRY_OK);
    cr_assert_eq(b.sender_id, 7u);
    cr_assert_eq(b.seq, 42u);
    cr_assert_eq(b.flags, ANM_TELEMETRY_FLAG_RESEND);
    cr_assert_eq(b.count, 1u);
    cr_assert_eq(b.samples[0].signal_id, 1001u);
    cr_assert_eq(b.samples[0].utc_ms, 1609459200000);
    cr_assert(b.samples[0].value == -1.5);
    cr_assert_eq(b.samples[0].quality, 0x00c0);
    anm_telemetry_batch_free(&b);
}

Test(telemetry_frame, binary_round_trip_is_exact_for_extreme_values)
{
    const double values[] = {0.0, -0.0, DBL_MAX, -DBL_MAX, DBL_MIN, 4.9e-324, 0.1, -273.15};
    const int64_t times[] = {INT64_MIN, -1, 0, INT64_MAX, 1, 2, 3, 4};
    anm_telemetry_batch in, out;
    anm_telemetry_batch_init(&in);
    anm_telemetry_batch_init(&out);
    in.sender_id = UINT32_MAX;
    in.seq = (uint64_t)INT64_MAX;
    for (size_t i = 0; i < 8; i++)
        anm_telemetry_batch_push(&in, i == 0 ? UINT32_MAX : (uint32_t)i, times[i], values[i],
                                 i == 0 ? UINT16_MAX : (uint16_t)i);
    size_t size;
    uint8_t *frame = encode(&in, &size);
    cr_assert_eq(size, 24u + 8u * 22u + 4u);
    cr_assert_eq(anm_telemetry_decode(frame, size, NULL, &out, NULL), ANM_OK);
    cr_assert_eq(out.sender_id, UINT32_MAX);
    cr_assert_eq(out.seq, (uint64_t)INT64_MAX);
    cr_assert_eq(out.count, 8u);
    for (size_t i = 0; i < 8; i++) {
        cr_assert_eq(out.samples[i].signal_id, in.samples[i].signal_id);
        cr_assert_eq(out.samples[i].utc_ms, times[i]);
        /* bit-exact, so -0.0 keeps its sign */
        cr_assert_eq(memcmp(&out.samples[i].value, &values[i], sizeof(double)), 0, "sample %zu", i);
        cr_assert_eq(out.samples[i].quality, in.samples[i].quality);
    }
    free(frame);
    anm_telemetry_batch_free(&in);
    anm_telemetry_batch_free(&out);
}

Test(telemetry_frame, encode_refuses_what_the_decoder_would_reject)
{
    anm_telemetry_batch b;
    anm_telemetry_batch_init(&b);
    uint8_t buf[256];
    cr_assert_eq(anm_telemetry_encode(&b, buf, sizeof buf, NULL), ANM_EINVAL, "empty batch");
    anm_telemetry_batch_push(&b, 1, 0, NAN, 0);
    cr_assert_eq(anm_telemetry_encode(&b, buf, sizeof buf, NULL), ANM_EINVAL, "NaN");
    b.samples[0].value = INFINITY;
    cr_assert_eq(anm_telemetry_encode(&b, buf, sizeof buf, NULL), ANM_EINVAL, "infinity");
    cr_assert_null(anm_telemetry_to_json(&b));
    b.samples[0].value = 1.0;
    b.flags = 0x02;
    cr_assert_eq(anm_telemetry_encode(&b, buf, sizeof buf, NULL), ANM_EINVAL, "unknown flag");
    b.flags = 0;
    b.seq = (uint64_t)INT64_MAX + 1;
    cr_assert_eq(anm_telemetry_encode(&b, buf, sizeof buf, NULL), ANM_EINVAL, "seq 2^63");
    anm_telemetry_batch_free(&b);
}

/* Decodes frame and checks the reason code and message text. */
static void expect_reject(const uint8_t *frame, size_t size, const anm_telemetry_limits *limits,
                          anm_telemetry_reason reason, const char *text)
{
    anm_telemetry_batch b;
    anm_telemetry_batch_init(&b);
    anm_telemetry_reject why;
    memset(&why, 0, sizeof why);
    cr_assert_eq(anm_telemetry_decode(frame, size, limits, &b, &why), ANM_EPROTO);
    cr_assert_eq(b.count, 0u);
    cr_assert_str_eq(anm_telemetry_reason_code(why.reason), anm_telemetry_reason_code(reason));
    cr_assert_str_eq(why.text, text);
    anm_telemetry_batch_free(&b);
}

Test(telemetry_frame, truncated_frames_are_rejected_as_truncated)
{
    expect_reject(hand_frame, 27, NULL, ANM_TELEMETRY_TRUNCATED,
                  "frame of 27 bytes is shorter than header and checksum (28)");
    expect_reject(hand_frame, 0, NULL, ANM_TELEMETRY_TRUNCATED,
                  "frame of 0 bytes is shorter than header and checksum (28)");
    uint8_t frame[50];
    memcpy(frame, hand_frame, sizeof frame);
    frame[20] = 2; /* claims two samples, carries one */
    expect_reject(frame, sizeof frame, NULL, ANM_TELEMETRY_TRUNCATED,
                  "frame of 50 bytes is shorter than the 72 that 2 samples need");
}

Test(telemetry_frame, header_errors_have_distinct_reasons)
{
    uint8_t frame[60];
    memcpy(frame, hand_frame, 50);

    frame[0] = 'X';
    expect_reject(frame, 50, NULL, ANM_TELEMETRY_BAD_MAGIC,
                  "bad magic 0x584e4d54 (expected \"ANMT\")");
    frame[0] = 'A';

    frame[4] = 2;
    expect_reject(frame, 50, NULL, ANM_TELEMETRY_BAD_VERSION,
                  "frame version 2 is not supported (expected 1)");
    frame[4] = 1;

    frame[20] = 0;
    expect_reject(frame, 50, NULL, ANM_TELEMETRY_BAD_COUNT, "sample count 0 is outside [1, 100000]");
    frame[20] = 1;

    anm_telemetry_limits limits = {.max_samples = 1, .max_bytes = 0};
    frame[20] = 2;
    expect_reject(frame, 50, &limits, ANM_TELEMETRY_BAD_COUNT, "sample count 2 is outside [1, 1]");
    frame[20] = 1;

    memset(frame + 50, 0, 10);
    expect_reject(frame, 60, NULL, ANM_TELEMETRY_BAD_LENGTH,
                  "frame of 60 bytes has 10 bytes after 1 samples");

    limits = (anm_telemetry_limits){.max_samples = 0, .max_bytes = 49};
    expect_reject(frame, 50, &limits, ANM_TELEMETRY_OVERSIZED,
                  "frame of 50 bytes exceeds the limit of 49");

    frame[42] ^= 0x01; /* one bit of the value */
    expect_reject(frame, 50, NULL, ANM_TELEMETRY_BAD_CHECKSUM,
                  "stored checksum 0xda7eaa44 does not match the computed 0x073b00fc");
    frame[42] ^= 0x01;

    frame[5] = 0x03;
    reseal(frame, 50);
    expect_reject(frame, 50, NULL, ANM_TELEMETRY_BAD_FLAGS,
                  "flags 0x03 or reserved 0x0000 has unknown bits set");
    frame[5] = 0x01;
    frame[7] = 0x80;
    reseal(frame, 50);
    expect_reject(frame, 50, NULL, ANM_TELEMETRY_BAD_FLAGS,
                  "flags 0x01 or reserved 0x8000 has unknown bits set");
    frame[7] = 0;

    frame[19] = 0x80; /* seq = 2^63 + 42 */
    reseal(frame, 50);
    expect_reject(frame, 50, NULL, ANM_TELEMETRY_BAD_SEQ,
                  "sequence number 9223372036854775850 is not below 2^63");
}

Test(telemetry_frame, non_finite_values_are_rejected_with_their_index)
{
    anm_telemetry_batch b = sample_batch(5);
    size_t size;
    uint8_t *frame = encode(&b, &size);
    const double bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t k = 0; k < 3; k++) {
        uint64_t bits;
        memcpy(&bits, &bad[k], sizeof bits);
        uint8_t *value = frame + 24 + 3 * 22 + 12; /* sample 3's value */
        for (int i = 0; i < 8; i++)
            value[i] = (uint8_t)(bits >> (8 * i));
        reseal(frame, size);
        anm_telemetry_reject why;
        cr_assert_eq(anm_telemetry_decode(frame, size, NULL, &b, &why), ANM_EPROTO);
        cr_assert_eq(why.reason, ANM_TELEMETRY_NON_FINITE);
        cr_assert_eq(why.sample_index, 3u);
        cr_assert_eq(why.have_header, 1, "the header is intact, so the reject can name the batch");
        cr_assert_eq(b.seq, 1000u);
        cr_assert_str_eq(why.text, "sample 3 (signal 3): value is not finite");
    }
    free(frame);
    anm_telemetry_batch_free(&b);
}

Test(telemetry_frame, json_form_is_as_documented_and_round_trips_exactly)
{
    anm_telemetry_batch b, out;
    anm_telemetry_batch_init(&b);
    anm_telemetry_batch_init(&out);
    b.sender_id = 7;
    b.seq = 42;
    anm_telemetry_batch_push(&b, 1001, 1609459200000, -1.5, 192);
    anm_telemetry_batch_push(&b, 1002, 1609459200050, 0.1, 0);
    size_t length = 0;
    char *text = anm_telemetry_encode_json(&b, &length);
    cr_assert_str_eq(text, "{\"v\":1,\"kind\":\"telemetry.batch\",\"sender_id\":7,\"seq\":42,"
                           "\"flags\":0,\"samples\":[[1001,1609459200000,-1.5,192],"
                           "[1002,1609459200050,0.10000000000000001,0]]}");
    cr_assert_eq(length, strlen(text));
    cr_assert_eq(anm_telemetry_decode_any(text, length, NULL, &out, NULL), ANM_OK);
    cr_assert_eq(out.count, 2u);
    cr_assert_eq(out.sender_id, 7u);
    cr_assert_eq(out.seq, 42u);
    cr_assert(out.samples[1].value == 0.1, "%.17g round-trips a double exactly");
    cr_assert_eq(out.samples[1].utc_ms, 1609459200050);
    cr_assert_eq(out.samples[0].quality, 192);
    free(text);
    anm_telemetry_batch_free(&b);
    anm_telemetry_batch_free(&out);
}

static void expect_json_reject(const char *text, anm_telemetry_reason reason, const char *message)
{
    anm_telemetry_batch b;
    anm_telemetry_batch_init(&b);
    anm_telemetry_reject why;
    cr_assert_eq(anm_telemetry_decode_any(text, strlen(text), NULL, &b, &why), ANM_EPROTO, "%s",
                 text);
    cr_assert_str_eq(anm_telemetry_reason_code(why.reason), anm_telemetry_reason_code(reason),
                     "%s", text);
    cr_assert_str_eq(why.text, message);
    anm_telemetry_batch_free(&b);
}

#define HEAD "{\"v\":1,\"kind\":\"telemetry.batch\",\"sender_id\":7,\"seq\":42,"

Test(telemetry_frame, malformed_json_batches_are_rejected_with_reasons)
{
    expect_json_reject("{\"v\":1,", ANM_TELEMETRY_BAD_JSON,
                       "telemetry.batch body: string or '}' expected near end of file at column 7");
    expect_json_reject("{\"v\":2,\"kind\":\"telemetry.batch\"}", ANM_TELEMETRY_BAD_VERSION,
                       "telemetry.batch version 2 is not supported (expected 1)");
    expect_json_reject(HEAD "\"flags\":0}", ANM_TELEMETRY_BAD_FIELD,
                       "field \"samples\" is missing");
    expect_json_reject("{\"v\":1,\"kind\":\"telemetry.batch\",\"sender_id\":7,\"seq\":\"42\","
                       "\"samples\":[]}",
                       ANM_TELEMETRY_BAD_FIELD, "field \"seq\": expected integer, got string");
    expect_json_reject(HEAD "\"samples\":[],\"extra\":1}", ANM_TELEMETRY_BAD_FIELD,
                       "field \"extra\" is not part of telemetry.batch v1");
    expect_json_reject(HEAD "\"samples\":[]}", ANM_TELEMETRY_BAD_COUNT,
                       "sample count 0 is outside [1, 100000]");
    expect_json_reject(HEAD "\"samples\":[[1,2,3]]}", ANM_TELEMETRY_BAD_FIELD,
                       "samples[0]: expected [signal_id, utc_ms, value, quality]");
    expect_json_reject(HEAD "\"samples\":[[1,2,3,0],[-1,2,3,0]]}", ANM_TELEMETRY_BAD_FIELD,
                       "samples[1][0]: signal_id must be an integer in [0, 4294967295]");
    expect_json_reject(HEAD "\"samples\":[[1,2.5,3,0]]}", ANM_TELEMETRY_BAD_FIELD,
                       "samples[0][1]: utc_ms must be an integer");
    expect_json_reject(HEAD "\"samples\":[[1,2,\"3\",0]]}", ANM_TELEMETRY_BAD_FIELD,
                       "samples[0][2]: value must be a number");
    expect_json_reject(HEAD "\"samples\":[[1,2,3,65536]]}", ANM_TELEMETRY_BAD_FIELD,
                       "samples[0][3]: quality must be an integer in [0, 65535]");
    expect_json_reject(HEAD "\"flags\":4,\"samples\":[[1,2,3,0]]}", ANM_TELEMETRY_BAD_FLAGS,
                       "flags 0x04 has unknown bits set");
    /* JSON has no NaN; an overflowing literal is a syntax error in jansson */
    expect_json_reject(HEAD "\"samples\":[[1,2,1e999,0]]}", ANM_TELEMETRY_BAD_JSON,
                       "telemetry.batch body: real number overflow near '1e999' at column 76");

    anm_telemetry_batch b;
    anm_telemetry_batch_init(&b);
    anm_telemetry_reject why;
    anm_telemetry_limits limits = {.max_samples = 0, .max_bytes = 10};
    const char *text = HEAD "\"samples\":[[1,2,3,0]]}";
    cr_assert_eq(anm_telemetry_decode_json(text, strlen(text), &limits, &b, &why), ANM_EPROTO);
    cr_assert_eq(why.reason, ANM_TELEMETRY_OVERSIZED);
    cr_assert_str_eq(why.text, "body of 77 bytes exceeds the limit of 10");
    anm_telemetry_batch_free(&b);
}

Test(telemetry_frame, ack_and_reject_bodies_pass_their_schemas)
{
    size_t n;
    const anm_bus_schema *table = anm_bus_schemas(&n);
    const anm_bus_schema *ack = anm_bus_schema_find(table, n, "telemetry.ack", 13);
    const anm_bus_schema *rej = anm_bus_schema_find(table, n, "telemetry.reject", 16);
    cr_assert_not_null(ack);
    cr_assert_not_null(rej);
    json_t *body = anm_telemetry_ack_json(7, 42, 500);
    anm_bus_reject why;
    cr_assert_eq(anm_bus_validate(ack, body, &why), ANM_OK, "%s", why.text);
    cr_assert_eq(json_integer_value(json_object_get(body, "seq")), 42);
    cr_assert_eq(json_integer_value(json_object_get(body, "count")), 500);
    json_decref(body);
    body = anm_telemetry_reject_json(1, 7, 43, "bad_checksum", "checksum mismatch");
    cr_assert_eq(anm_bus_validate(rej, body, &why), ANM_OK, "%s", why.text);
    cr_assert_eq(json_integer_value(json_object_get(body, "seq")), 43);
    cr_assert_str_eq(json_string_value(json_object_get(body, "code")), "bad_checksum");
    json_decref(body);
    body = anm_telemetry_reject_json(0, 0, 0, "truncated", "short");
    cr_assert_eq(anm_bus_validate(rej, body, &why), ANM_OK, "%s", why.text);
    cr_assert_null(json_object_get(body, "seq"), "no header, so no seq to name");
    json_decref(body);
}

/*
 * The figures behind docs/protocol.md: encode + decode of 10,000-sample
 * batches in both forms. Printed, never asserted on time (CONVENTIONS:
 * benchmarks do not fail on speed); the decoded batch is checked so the
 * loop cannot be optimised into nothing.
 */
Test(telemetry_frame, throughput_of_json_and_binary_for_10000_samples)
{
    enum { N = 10000 };
    anm_telemetry_batch in = sample_batch(N), out;
    anm_telemetry_batch_init(&out);
    size_t frame_size = anm_telemetry_frame_size(N);
    uint8_t *frame = malloc(frame_size);
    int binary_rounds = 50, json_rounds = 5;

    int64_t t0 = anm_monotonic_ns();
    for (int r = 0; r < binary_rounds; r++) {
        cr_assert_eq(anm_telemetry_encode(&in, frame, frame_size, NULL), ANM_OK);
        cr_assert_eq(anm_telemetry_decode(frame, frame_size, NULL, &out, NULL), ANM_OK);
    }
    int64_t t1 = anm_monotonic_ns();
    size_t json_size = 0;
    for (int r = 0; r < json_rounds; r++) {
        char *text = anm_telemetry_encode_json(&in, &json_size);
        cr_assert_not_null(text);
        cr_assert_eq(anm_telemetry_decode_json(text, json_size, NULL, &out, NULL), ANM_OK);
        free(text);
    }
    int64_t t2 = anm_monotonic_ns();
    cr_assert_eq(out.count, (size_t)N);
    cr_assert(out.samples[N - 1].value == in.samples[N - 1].value);

    double binary_us = (double)(t1 - t0) / 1e3 / binary_rounds / N;
    double json_us = (double)(t2 - t1) / 1e3 / json_rounds / N;
    cr_log_info("telemetry codec, 10000-sample batch, encode+decode: binary %.4f us/sample "
                "(%zu bytes, %.1f B/sample), json %.4f us/sample (%zu bytes, %.1f B/sample), "
                "ratio %.1f",
                binary_us, frame_size, (double)frame_size / N, json_us, json_size,
                (double)json_size / N, json_us / binary_us);
    free(frame);
    anm_telemetry_batch_free(&in);
    anm_telemetry_batch_free(&out);
}
