/*
 * test_iec104_codec.c: the IEC 104 codec against frames worked out by hand
 * from IEC 60870-5-101/104 (the byte layouts are written out in the
 * comments), CP56Time2a edge fields, and malformed input with its exact
 * error message and location.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "engine/clock.h"
#include "gateway/iec104.h"

static void hex(const uint8_t *p, size_t n, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used + 4 < size; i++) {
        int w = snprintf(out + used, size - used, "%02X ", (unsigned)p[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

static void expect_bytes(const uint8_t *got, size_t got_size, const uint8_t *want,
                         size_t want_size)
{
    char a[1024], b[1024];
    hex(got, got_size, a, sizeof a);
    hex(want, want_size, b, sizeof b);
    cr_assert_eq(got_size, want_size, "size %zu, expected %zu\n got  %s\n want %s", got_size,
                 want_size, a, b);
    cr_assert(memcmp(got, want, want_size) == 0, "bytes differ\n got  %s\n want %s", a, b);
}

/* ---- APCI ---------------------------------------------------------------- */

Test(iec104_apci, u_frames_are_byte_exact)
{
    /* U-frame: 68 04, then function octet, then 00 00 00 */
    static const struct {
        uint8_t function;
        uint8_t bytes[6];
    } cases[] = {
        {GATEWAY_IEC104_STARTDT_ACT, {0x68, 0x04, 0x07, 0x00, 0x00, 0x00}},
        {GATEWAY_IEC104_STARTDT_CON, {0x68, 0x04, 0x0B, 0x00, 0x00, 0x00}},
        {GATEWAY_IEC104_STOPDT_ACT, {0x68, 0x04, 0x13, 0x00, 0x00, 0x00}},
        {GATEWAY_IEC104_STOPDT_CON, {0x68, 0x04, 0x23, 0x00, 0x00, 0x00}},
        {GATEWAY_IEC104_TESTFR_ACT, {0x68, 0x04, 0x43, 0x00, 0x00, 0x00}},
        {GATEWAY_IEC104_TESTFR_CON, {0x68, 0x04, 0x83, 0x00, 0x00, 0x00}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t out[6];
        size_t written = 0;
        cr_assert_eq(gateway_iec104_encode_u_frame(cases[i].function, out, sizeof out, &written),
                     ANM_OK);
        expect_bytes(out, written, cases[i].bytes, 6);
        gateway_iec104_apdu apdu;
        cr_assert_eq(gateway_iec104_apdu_decode(cases[i].bytes, 6, &apdu, NULL), ANM_OK);
        cr_assert_eq(apdu.format, GATEWAY_IEC104_FRAME_U);
        cr_assert_eq(apdu.u_function, cases[i].function);
    }
    uint8_t out[6];
    cr_assert_eq(gateway_iec104_encode_u_frame(0x03, out, sizeof out, NULL), ANM_EINVAL);
    cr_assert_eq(gateway_iec104_encode_u_frame(GATEWAY_IEC104_STARTDT_ACT, out, 5, NULL),
                 ANM_ERANGE);
    cr_assert_str_eq(gateway_iec104_u_function_name(GATEWAY_IEC104_TESTFR_CON), "TESTFR con");
}

Test(iec104_apci, s_frame_carries_receive_sequence_shifted_left)
{
    /* S-frame N(R)=5: 68 04 01 00, then 5<<1 = 0x000A little-endian: 0A 00 */
    static const uint8_t want[] = {0x68, 0x04, 0x01, 0x00, 0x0A, 0x00};
    uint8_t out[6];
    size_t written = 0;
    cr_assert_eq(gateway_iec104_encode_s_frame(5, out, sizeof out, &written), ANM_OK);
    expect_bytes(out, written, want, sizeof want);
    gateway_iec104_apdu apdu;
    cr_assert_eq(gateway_iec104_apdu_decode(want, sizeof want, &apdu, NULL), ANM_OK);
    cr_assert_eq(apdu.format, GATEWAY_IEC104_FRAME_S);
    cr_assert_eq(apdu.receive_sequence, 5);
}

Test(iec104_apci, sequence_numbers_use_15_bits_and_wrap_at_32768)
{
    /* N(S)=32767: 32767<<1 = 0xFFFE -> FE FF; N(R)=16384: 16384<<1 = 0x8000 -> 00 80 */
    static const uint8_t asdu[] = {0x64, 0x01, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x14};
    uint8_t out[32];
    size_t written = 0;
    cr_assert_eq(gateway_iec104_encode_i_frame(32767, 16384, asdu, sizeof asdu, out, sizeof out,
                                               &written),
                 ANM_OK);
    static const uint8_t head[] = {0x68, 0x0E, 0xFE, 0xFF, 0x00, 0x80};
    expect_bytes(out, 6, head, 6);
    gateway_iec104_apdu apdu;
    cr_assert_eq(gateway_iec104_apdu_decode(out, written, &apdu, NULL), ANM_OK);
    cr_assert_eq(apdu.send_sequence, 32767);
    cr_assert_eq(apdu.receive_sequence, 16384);
    /* 32768 is taken modulo 32768: 0 */
    cr_assert_eq(gateway_iec104_encode_i_frame(32768, 32769, asdu, sizeof asdu, out, sizeof out,
                                               &written),
                 ANM_OK);
    static const uint8_t wrapped[] = {0x68, 0x0E, 0x00, 0x00, 0x02, 0x00};
    expect_bytes(out, 6, wrapped, 6);
}

/*
 * The worked example: I-frame N(S)=1, N(R)=2 carrying M_ME_TF_1, COT 3
 * (spontaneous), CA 1, IOA 1001, value 12.5, QDS 0, time
 * 2021-10-31T01:00:00.000Z (UTC, SU 0).
 *
 *   68             start
 *   19             length: 4 control + 21 ASDU = 25
 *   02 00          N(S)=1 -> 1<<1 = 2, little-endian
 *   04 00          N(R)=2 -> 2<<1 = 4
 *   24             type 36 = M_ME_TF_1
 *   01             VSQ: SQ=0, one object
 *   03 00          COT 3, P/N 0, T 0; originator 0
 *   01 00          common address 1, little-endian
 *   E9 03 00       IOA 1001 = 0x0003E9, little-endian
 *   00 00 48 41    12.5 = 1.5625 x 2^3: sign 0, exponent 127+3 = 0x82,
 *                  mantissa .5625 = 0x480000 -> 0x41480000, little-endian
 *   00             QDS: no flags
 *   00 00          ms within minute: 0
 *   00             minute 0, IV 0
 *   01             hour 1, SU 0
 *   FF             day 31 (0x1F) | weekday Sunday 7 << 5 (0xE0)
 *   0A             month 10
 *   15             year 2021 - 2000 = 21
 */
static const uint8_t worked_frame[] = {
    0x68, 0x19, 0x02, 0x00, 0x04, 0x00, 0x24, 0x01, 0x03, 0x00, 0x01, 0x00, 0xE9, 0x03,
    0x00, 0x00, 0x00, 0x48, 0x41, 0x00, 0x00, 0x00, 0x00, 0x01, 0xFF, 0x0A, 0x15};

Test(iec104_asdu, worked_m_me_tf_1_i_frame_encodes_byte_exact)
{
    int64_t utc_ms = 0;
    cr_assert_eq(anm_time_parse_iso8601("2021-10-31T01:00:00.000Z", &utc_ms), ANM_OK);
    static gateway_iec104_asdu asdu;
    memset(&asdu, 0, sizeof asdu);
    asdu.type = GATEWAY_IEC104_M_ME_TF_1;
    asdu.count = 1;
    asdu.cause = GATEWAY_IEC104_COT_SPONTANEOUS;
    asdu.common_address = 1;
    asdu.objects[0].ioa = 1001;
    asdu.objects[0].value = 12.5f;
    asdu.objects[0].quality = 0;
    cr_assert_eq(gateway_iec104_cp56_from_utc_ms(utc_ms, NULL, &asdu.objects[0].time), ANM_OK);
    uint8_t body[GATEWAY_IEC104_MAX_ASDU];
    size_t body_size = 0;
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, body, sizeof body, &body_size), ANM_OK);
    cr_assert_eq(body_size, 21);
    cr_assert_eq(gateway_iec104_asdu_encoded_size(&asdu), 21);
    uint8_t frame[GATEWAY_IEC104_MAX_APDU];
    size_t frame_size = 0;
    cr_assert_eq(gateway_iec104_encode_i_frame(1, 2, body, body_size, frame, sizeof frame,
                                               &frame_size),
                 ANM_OK);
    expect_bytes(frame, frame_size, worked_frame, sizeof worked_frame);
}

Test(iec104_asdu, worked_m_me_tf_1_i_frame_decodes_to_its_fields)
{
    gateway_iec104_apdu apdu;
    cr_assert_eq(gateway_iec104_apdu_decode(worked_frame, sizeof worked_frame, &apdu, NULL),
                 ANM_OK);
    cr_assert_eq(apdu.format, GATEWAY_IEC104_FRAME_I);
    cr_assert_eq(apdu.send_sequence, 1);
    cr_assert_eq(apdu.receive_sequence, 2);
    cr_assert_eq(apdu.asdu_size, 21);
    static gateway_iec104_asdu asdu;
    cr_assert_eq(gateway_iec104_asdu_decode(apdu.asdu, apdu.asdu_size, &asdu, NULL), ANM_OK);
    cr_assert_eq(asdu.type, 36);
    cr_assert_eq(asdu.count, 1);
    cr_assert_eq(asdu.sequence, 0);
    cr_assert_eq(asdu.cause, 3);
    cr_assert_eq(asdu.negative, 0);
    cr_assert_eq(asdu.test, 0);
    cr_assert_eq(asdu.common_address, 1);
    cr_assert_eq(asdu.objects[0].ioa, 1001);
    cr_assert(asdu.objects[0].value == 12.5f); /* 12.5 is exact in binary32 */
    cr_assert_eq(asdu.objects[0].quality, 0);
    cr_assert_eq(asdu.objects[0].time.weekday, 7);
    int64_t utc_ms = 0, want = 0;
    cr_assert_eq(gateway_iec104_cp56_to_utc_ms(&asdu.objects[0].time, NULL, &utc_ms), ANM_OK);
    cr_assert_eq(anm_time_parse_iso8601("2021-10-31T01:00:00.000Z", &want), ANM_OK);
    cr_assert_eq(utc_ms, want);
}

Test(iec104_asdu, m_me_nc_1_sequence_with_quality_bits)
{
    /*
     * M_ME_NC_1, SQ=1, 3 objects from IOA 100, COT 20 (interrogated), CA 0x1234:
     *   0D 83 14 00 34 12      type 13, VSQ 0x80|3, COT 20, orig 0, CA 34 12
     *   64 00 00               IOA 100 (once: SQ=1)
     *   00 00 80 3F 00         1.0 = 0x3F800000, QDS 0
     *   00 00 20 C0 C0         -2.5 = 0xC0200000, QDS IV|NT = 0xC0
     *   00 00 00 00 31         0.0, QDS OV|BL|SB = 0x31
     */
    static const uint8_t want[] = {0x0D, 0x83, 0x14, 0x00, 0x34, 0x12, 0x64, 0x00,
                                   0x00, 0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00,
                                   0x20, 0xC0, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x31};
    static gateway_iec104_asdu asdu;
    memset(&asdu, 0, sizeof asdu);
    asdu.type = GATEWAY_IEC104_M_ME_NC_1;
    asdu.sequence = 1;
    asdu.count = 3;
    asdu.cause = GATEWAY_IEC104_COT_INTERROGATED_STATION;
    asdu.common_address = 0x1234;
    const float values[3] = {1.0f, -2.5f, 0.0f};
    const uint8_t qualities[3] = {
        0, GATEWAY_IEC104_QDS_IV | GATEWAY_IEC104_QDS_NT,
        GATEWAY_IEC104_QDS_OV | GATEWAY_IEC104_QDS_BL | GATEWAY_IEC104_QDS_SB};
    for (int i = 0; i < 3; i++) {
        asdu.objects[i].ioa = 100u + (uint32_t)i;
        asdu.objects[i].value = values[i];
        asdu.objects[i].quality = qualities[i];
    }
    uint8_t out[64];
    size_t written = 0;
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, out, sizeof out, &written), ANM_OK);
    expect_bytes(out, written, want, sizeof want);

    static gateway_iec104_asdu back;
    cr_assert_eq(gateway_iec104_asdu_decode(want, sizeof want, &back, NULL), ANM_OK);
    cr_assert_eq(back.sequence, 1);
    cr_assert_eq(back.count, 3);
    cr_assert_eq(back.common_address, 0x1234);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(back.objects[i].ioa, 100u + (uint32_t)i);
        cr_assert(back.objects[i].value == values[i]);
        cr_assert_eq(back.objects[i].quality, qualities[i]);
    }
}

Test(iec104_asdu, m_sp_na_1_without_sequence)
{
    /*
     * M_SP_NA_1, SQ=0, 2 objects, COT 3, CA 1:
     *   01 02 03 00 01 00
     *   01 00 00 01        IOA 1, SIQ: SPI on
     *   70 11 01 80        IOA 70000 = 0x011170, SIQ: IV, SPI off
     */
    static const uint8_t want[] = {0x01, 0x02, 0x03, 0x00, 0x01, 0x00, 0x01, 0x00,
                                   0x00, 0x01, 0x70, 0x11, 0x01, 0x80};
    static gateway_iec104_asdu asdu;
    memset(&asdu, 0, sizeof asdu);
    asdu.type = GATEWAY_IEC104_M_SP_NA_1;
    asdu.count = 2;
    asdu.cause = 3;
    asdu.common_address = 1;
    asdu.objects[0].ioa = 1;
    asdu.objects[0].single_point = 1;
    asdu.objects[1].ioa = 70000;
    asdu.objects[1].quality = GATEWAY_IEC104_QDS_IV;
    uint8_t out[64];
    size_t written = 0;
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, out, sizeof out, &written), ANM_OK);
    expect_bytes(out, written, want, sizeof want);
    static gateway_iec104_asdu back;
    cr_assert_eq(gateway_iec104_asdu_decode(want, sizeof want, &back, NULL), ANM_OK);
    cr_assert_eq(back.objects[0].single_point, 1);
    cr_assert_eq(back.objects[0].quality, 0);
    cr_assert_eq(back.objects[1].ioa, 70000);
    cr_assert_eq(back.objects[1].single_point, 0);
    cr_assert_eq(back.objects[1].quality, GATEWAY_IEC104_QDS_IV);
}

Test(iec104_asdu, m_sp_tb_1_and_commands)
{
    int64_t t = 0;
    cr_assert_eq(anm_time_parse_iso8601("2024-02-29T23:59:59.999Z", &t), ANM_OK);
    gateway_iec104_cp56 time;
    cr_assert_eq(gateway_iec104_cp56_from_utc_ms(t, NULL, &time), ANM_OK);
    /* CP56 of 2024-02-29T23:59:59.999Z (a Thursday, weekday 4):
     *   5F EA  59999 ms; 3B minute 59; 17 hour 23; 9D day 29 | 4<<5; 02; 18 (24) */
    static const uint8_t cp56[7] = {0x5F, 0xEA, 0x3B, 0x17, 0x9D, 0x02, 0x18};

    static gateway_iec104_asdu asdu;
    memset(&asdu, 0, sizeof asdu);
    /* M_SP_TB_1 COT 3 CA 7 IOA 2 SPI on: 1E 01 03 00 07 00 02 00 00 01 + cp56 */
    asdu.type = GATEWAY_IEC104_M_SP_TB_1;
    asdu.count = 1;
    asdu.cause = 3;
    asdu.common_address = 7;
    asdu.objects[0].ioa = 2;
    asdu.objects[0].single_point = 1;
    asdu.objects[0].time = time;
    uint8_t want_sp[17] = {0x1E, 0x01, 0x03, 0x00, 0x07, 0x00, 0x02, 0x00, 0x00, 0x01};
    memcpy(want_sp + 10, cp56, 7);
    uint8_t out[64];
    size_t written = 0;
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, out, sizeof out, &written), ANM_OK);
    expect_bytes(out, written, want_sp, sizeof want_sp);

    /* C_IC_NA_1 act (COT 6), CA 1, IOA 0, QOI 20: 64 01 06 00 01 00 00 00 00 14 */
    static const uint8_t want_gi[] = {0x64, 0x01, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x14};
    static gateway_iec104_asdu gi;
    cr_assert_eq(gateway_iec104_asdu_decode(want_gi, sizeof want_gi, &gi, NULL), ANM_OK);
    cr_assert_eq(gi.type, GATEWAY_IEC104_C_IC_NA_1);
    cr_assert_eq(gi.cause, GATEWAY_IEC104_COT_ACTIVATION);
    cr_assert_eq(gi.objects[0].qualifier, GATEWAY_IEC104_QOI_STATION);

    /* C_CS_NA_1 negative actcon, test: COT 7 | P/N 0x40 | T 0x80 = C7, originator 3
     *   67 01 C7 03 01 00 00 00 00 + cp56 */
    memset(&asdu, 0, sizeof asdu);
    asdu.type = GATEWAY_IEC104_C_CS_NA_1;
    asdu.count = 1;
    asdu.cause = 7;
    asdu.negative = 1;
    asdu.test = 1;
    asdu.originator = 3;
    asdu.common_address = 1;
    asdu.objects[0].time = time;
    uint8_t want_cs[16] = {0x67, 0x01, 0xC7, 0x03, 0x01, 0x00, 0x00, 0x00, 0x00};
    memcpy(want_cs + 9, cp56, 7);
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, out, sizeof out, &written), ANM_OK);
    expect_bytes(out, written, want_cs, sizeof want_cs);
    static gateway_iec104_asdu back;
    cr_assert_eq(gateway_iec104_asdu_decode(want_cs, sizeof want_cs, &back, NULL), ANM_OK);
    cr_assert_eq(back.cause, 7);
    cr_assert_eq(back.negative, 1);
    cr_assert_eq(back.test, 1);
    cr_assert_eq(back.originator, 3);

    /* C_TS_TA_1 act, TSC 0x1234: 6B 01 06 00 01 00 00 00 00 34 12 + cp56 */
    memset(&asdu, 0, sizeof asdu);
    asdu.type = GATEWAY_IEC104_C_TS_TA_1;
    asdu.count = 1;
    asdu.cause = 6;
    asdu.common_address = 1;
    asdu.objects[0].test_counter = 0x1234;
    asdu.objects[0].time = time;
    uint8_t want_ts[18] = {0x6B, 0x01, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x34, 0x12};
    memcpy(want_ts + 11, cp56, 7);
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, out, sizeof out, &written), ANM_OK);
    expect_bytes(out, written, want_ts, sizeof want_ts);
    cr_assert_eq(gateway_iec104_asdu_decode(want_ts, sizeof want_ts, &back, NULL), ANM_OK);
    cr_assert_eq(back.objects[0].test_counter, 0x1234);
    int64_t back_ms = 0;
    cr_assert_eq(gateway_iec104_cp56_to_utc_ms(&back.objects[0].time, NULL, &back_ms), ANM_OK);
    cr_assert_eq(back_ms, t);
}

/* ---- CP56Time2a ------------------------------------------------------------- */

Test(iec104_cp56, edge_dates_encode_by_hand)
{
    static const struct {
        const char *iso;
        uint8_t bytes[7];
    } cases[] = {
        /* 2000-01-01 was a Saturday (6): day 1 | 6<<5 = C1 */
        {"2000-01-01T00:00:00.000Z", {0x00, 0x00, 0x00, 0x00, 0xC1, 0x01, 0x00}},
        /* 2024-02-29 Thursday (4): 29 | 0x80 = 9D; 59999 ms = EA5F */
        {"2024-02-29T23:59:59.999Z", {0x5F, 0xEA, 0x3B, 0x17, 0x9D, 0x02, 0x18}},
        /* 2099-12-31 Thursday: 31 | 0x80 = 9F; 30.5 s = 30500 ms = 0x7724; 99 = 0x63 */
        {"2099-12-31T12:34:30.500Z", {0x24, 0x77, 0x22, 0x0C, 0x9F, 0x0C, 0x63}},
        /* 2021-03-28 (GB spring change) Sunday: 28 | 0xE0 = FC */
        {"2021-03-28T01:00:00.000Z", {0x00, 0x00, 0x00, 0x01, 0xFC, 0x03, 0x15}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t utc_ms = 0;
        cr_assert_eq(anm_time_parse_iso8601(cases[i].iso, &utc_ms), ANM_OK);
        gateway_iec104_cp56 time;
        cr_assert_eq(gateway_iec104_cp56_from_utc_ms(utc_ms, NULL, &time), ANM_OK);
        uint8_t bytes[7];
        cr_assert_eq(gateway_iec104_cp56_encode(&time, bytes), ANM_OK);
        expect_bytes(bytes, 7, cases[i].bytes, 7);
        gateway_iec104_cp56 decoded;
        cr_assert_eq(gateway_iec104_cp56_decode(cases[i].bytes, &decoded, NULL), ANM_OK);
        int64_t back = 0;
        cr_assert_eq(gateway_iec104_cp56_to_utc_ms(&decoded, NULL, &back), ANM_OK);
        cr_assert_eq(back, utc_ms, "%s", cases[i].iso);
    }
}

Test(iec104_cp56, years_outside_2000_2099_are_rejected)
{
    int64_t before = 0, after = 0;
    cr_assert_eq(anm_time_parse_iso8601("1999-12-31T23:59:59.999Z", &before), ANM_OK);
    cr_assert_eq(anm_time_parse_iso8601("2100-01-01T00:00:00.000Z", &after), ANM_OK);
    gateway_iec104_cp56 time;
    cr_assert_eq(gateway_iec104_cp56_from_utc_ms(before, NULL, &time), ANM_ERANGE);
    cr_assert_eq(gateway_iec104_cp56_from_utc_ms(after, NULL, &time), ANM_ERANGE);
    /* an offset can push a UTC time over the edge too */
    gateway_iec104_time_config config = {.offset_minutes = 60, .summer = 0};
    cr_assert_eq(gateway_iec104_cp56_from_utc_ms(after - 1, &config, &time), ANM_ERANGE);
}

Test(iec104_cp56, offset_and_summer_bit)
{
    /* 2021-06-01T11:00:00Z sent as BST: offset +60, SU=1 -> hour 12 | 0x80 = 8C */
    int64_t utc_ms = 0;
    cr_assert_eq(anm_time_parse_iso8601("2021-06-01T11:00:00.000Z", &utc_ms), ANM_OK);
    gateway_iec104_time_config config = {.offset_minutes = 60, .summer = 1};
    gateway_iec104_cp56 time;
    cr_assert_eq(gateway_iec104_cp56_from_utc_ms(utc_ms, &config, &time), ANM_OK);
    uint8_t bytes[7];
    cr_assert_eq(gateway_iec104_cp56_encode(&time, bytes), ANM_OK);
    /* 2021-06-01 Tuesday (2): 1 | 0x40 = 41 */
    static const uint8_t want[7] = {0x00, 0x00, 0x00, 0x8C, 0x41, 0x06, 0x15};
    expect_bytes(bytes, 7, want, 7);
    int64_t back = 0;
    cr_assert_eq(gateway_iec104_cp56_to_utc_ms(&time, &config, &back), ANM_OK);
    cr_assert_eq(back, utc_ms);
    /* read without the offset it is an hour later */
    cr_assert_eq(gateway_iec104_cp56_to_utc_ms(&time, NULL, &back), ANM_OK);
    cr_assert_eq(back, utc_ms + 3600000);
    gateway_iec104_time_config bad = {.offset_minutes = 1441, .summer = 0};
    cr_assert_eq(gateway_iec104_cp56_from_utc_ms(utc_ms, &bad, &time), ANM_EINVAL);
}

Test(iec104_cp56, iv_bit_and_reserved_bits)
{
    /* minute octet 0xC5: IV set, reserved bit 6 set (ignored), minute 5 */
    static const uint8_t bytes[7] = {0x10, 0x27, 0xC5, 0x63, 0x21, 0x01, 0x95};
    gateway_iec104_cp56 time;
    cr_assert_eq(gateway_iec104_cp56_decode(bytes, &time, NULL), ANM_OK);
    cr_assert_eq(time.milliseconds, 10000);
    cr_assert_eq(time.minute, 5);
    cr_assert_eq(time.invalid, 1);
    cr_assert_eq(time.hour, 3); /* 0x63: reserved bits 5-6 ignored */
    cr_assert_eq(time.summer, 0);
    cr_assert_eq(time.day, 1);
    cr_assert_eq(time.weekday, 1);
    cr_assert_eq(time.year, 21); /* 0x95: reserved bit 7 ignored */
}

Test(iec104_cp56, out_of_range_fields_are_named)
{
    static const struct {
        uint8_t bytes[7];
        const char *message;
        int column;
    } cases[] = {
        {{0x60, 0xEA, 0x00, 0x00, 0x01, 0x01, 0x15}, "cp56time2a milliseconds 60000 out of range", 1},
        {{0x00, 0x00, 0x3C, 0x00, 0x01, 0x01, 0x15}, "cp56time2a minute 60 out of range", 3},
        {{0x00, 0x00, 0x00, 0x18, 0x01, 0x01, 0x15}, "cp56time2a hour 24 out of range", 4},
        {{0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x15}, "cp56time2a day 0 out of range", 5},
        {{0x00, 0x00, 0x00, 0x00, 0x01, 0x0D, 0x15}, "cp56time2a month 13 out of range", 6},
        {{0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x15}, "cp56time2a month 0 out of range", 6},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gateway_iec104_cp56 time;
        anm_error_detail detail;
        anm_error_detail_clear(&detail);
        cr_assert_eq(gateway_iec104_cp56_decode(cases[i].bytes, &time, &detail), ANM_EPARSE);
        cr_assert_str_eq(detail.message, cases[i].message);
        cr_assert_eq(detail.column, cases[i].column);
    }
    /* 31 April decodes (fields in range) but is not a date */
    static const uint8_t april31[7] = {0x00, 0x00, 0x00, 0x00, 0x1F, 0x04, 0x15};
    gateway_iec104_cp56 time;
    cr_assert_eq(gateway_iec104_cp56_decode(april31, &time, NULL), ANM_OK);
    int64_t utc_ms = 0;
    cr_assert_eq(gateway_iec104_cp56_to_utc_ms(&time, NULL, &utc_ms), ANM_ERANGE);
    /* 29 February 2100 is not representable; 2000 is a leap year */
    static const uint8_t feb29_2000[7] = {0x00, 0x00, 0x00, 0x00, 0x1D, 0x02, 0x00};
    cr_assert_eq(gateway_iec104_cp56_decode(feb29_2000, &time, NULL), ANM_OK);
    cr_assert_eq(gateway_iec104_cp56_to_utc_ms(&time, NULL, &utc_ms), ANM_OK);
}

Test(iec104_cp56, round_trips_agree_with_the_iso_formatter)
{
    /* Second method: the engine's ISO 8601 formatter gives the same civil fields. */
    int64_t start = 0, end = 0;
    cr_assert_eq(anm_time_parse_iso8601("2000-01-01T00:00:00.000Z", &start), ANM_OK);
    cr_assert_eq(anm_time_parse_iso8601("2099-12-31T23:59:59.999Z", &end), ANM_OK);
    uint64_t state = 12345;
    for (int i = 0; i < 20000; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t utc_ms = start + (int64_t)((state >> 11) % (uint64_t)(end - start + 1));
        gateway_iec104_cp56 time;
        cr_assert_eq(gateway_iec104_cp56_from_utc_ms(utc_ms, NULL, &time), ANM_OK);
        uint8_t bytes[7];
        cr_assert_eq(gateway_iec104_cp56_encode(&time, bytes), ANM_OK);
        gateway_iec104_cp56 decoded;
        cr_assert_eq(gateway_iec104_cp56_decode(bytes, &decoded, NULL), ANM_OK);
        int64_t back = 0;
        cr_assert_eq(gateway_iec104_cp56_to_utc_ms(&decoded, NULL, &back), ANM_OK);
        cr_assert_eq(back, utc_ms);
        char iso[32], mine[32];
        cr_assert_eq(anm_time_format_utc(utc_ms, iso, sizeof iso), ANM_OK);
        snprintf(mine, sizeof mine, "%04d-%02u-%02uT%02u:%02u:%02u.%03uZ", 2000 + decoded.year,
                 (unsigned)decoded.month, (unsigned)decoded.day, (unsigned)decoded.hour,
                 (unsigned)decoded.minute, (unsigned)(decoded.milliseconds / 1000),
                 (unsigned)(decoded.milliseconds % 1000));
        cr_assert_str_eq(mine, iso);
    }
}

/* ---- malformed input --------------------------------------------------------- */

static void expect_apdu_error(const uint8_t *bytes, size_t size, const char *message, int column)
{
    gateway_iec104_apdu apdu;
    anm_error_detail detail;
    anm_error_detail_clear(&detail);
    cr_assert_eq(gateway_iec104_apdu_decode(bytes, size, &apdu, &detail), ANM_EPARSE);
    cr_assert_str_eq(detail.message, message);
    cr_assert_eq(detail.column, column);
}

Test(iec104_apci, malformed_frames_are_rejected_with_reason)
{
    static const uint8_t bad_start[] = {0x69, 0x04, 0x07, 0x00, 0x00, 0x00};
    expect_apdu_error(bad_start, 6, "bad start byte 0x69, expected 0x68", 1);
    static const uint8_t length_mismatch[] = {0x68, 0x05, 0x07, 0x00, 0x00, 0x00};
    expect_apdu_error(length_mismatch, 6, "bad apdu length 5 for a frame of 6 octets", 2);
    static const uint8_t unknown_u[] = {0x68, 0x04, 0x03, 0x00, 0x00, 0x00};
    expect_apdu_error(unknown_u, 6, "bad u-frame control field 03 00 00 00", 3);
    static const uint8_t two_functions[] = {0x68, 0x04, 0x0F, 0x00, 0x00, 0x00};
    expect_apdu_error(two_functions, 6, "bad u-frame control field 0f 00 00 00", 3);
    static const uint8_t u_tail[] = {0x68, 0x04, 0x07, 0x00, 0x01, 0x00};
    expect_apdu_error(u_tail, 6, "bad u-frame control field 07 00 01 00", 3);
    static const uint8_t s_with_data[] = {0x68, 0x05, 0x01, 0x00, 0x02, 0x00, 0xAA};
    expect_apdu_error(s_with_data, 7, "s-frame carries 1 octets after the control field", 7);
    static const uint8_t bad_s[] = {0x68, 0x04, 0x01, 0x01, 0x02, 0x00};
    expect_apdu_error(bad_s, 6, "bad s-frame control field 01 01 02 00", 3);
    static const uint8_t empty_i[] = {0x68, 0x04, 0x00, 0x00, 0x00, 0x00};
    expect_apdu_error(empty_i, 6, "i-frame without asdu", 7);
    expect_apdu_error(empty_i, 5, "apdu of 5 octets is shorter than the 6-octet apci", 6);
}

static void expect_asdu_error(const uint8_t *bytes, size_t size, int rc, const char *message,
                              int column)
{
    static gateway_iec104_asdu asdu;
    anm_error_detail detail;
    anm_error_detail_clear(&detail);
    cr_assert_eq(gateway_iec104_asdu_decode(bytes, size, &asdu, &detail), rc);
    cr_assert_str_eq(detail.message, message);
    cr_assert_eq(detail.column, column);
}

Test(iec104_asdu, malformed_asdus_are_rejected_with_reason)
{
    /* the worked ASDU (21 octets) cut by one octet */
    const uint8_t *worked_asdu = worked_frame + 6;
    expect_asdu_error(worked_asdu, 20, ANM_EPARSE,
                      "asdu of 1 M_ME_TF_1 objects (sq=0) needs 21 octets, got 20", 21);
    /* count 2 but one object's octets */
    uint8_t two[21];
    memcpy(two, worked_asdu, 21);
    two[1] = 0x02;
    expect_asdu_error(two, 21, ANM_EPARSE,
                      "asdu of 2 M_ME_TF_1 objects (sq=0) needs 36 octets, got 21", 22);
    /* trailing octet */
    uint8_t longer[22];
    memcpy(longer, worked_asdu, 21);
    longer[21] = 0;
    expect_asdu_error(longer, 22, ANM_EPARSE,
                      "asdu of 1 M_ME_TF_1 objects (sq=0) needs 21 octets, got 22", 22);
    static const uint8_t no_objects[] = {0x0D, 0x00, 0x03, 0x00, 0x01, 0x00};
    expect_asdu_error(no_objects, 6, ANM_EPARSE, "asdu with no information objects", 2);
    static const uint8_t short_header[] = {0x0D, 0x01, 0x03};
    expect_asdu_error(short_header, 3, ANM_EPARSE,
                      "asdu of 3 octets is shorter than its 6-octet header", 4);
    /* C_IC_NA_1 with SQ=1 */
    static const uint8_t gi_sq[] = {0x64, 0x81, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x14};
    expect_asdu_error(gi_sq, sizeof gi_sq, ANM_EPARSE,
                      "C_IC_NA_1 must carry one object without sq, got 1 (sq=1)", 2);
    /* SQ=1 sequence of 2 from IOA 0xFFFFFF runs past the 24-bit range */
    static const uint8_t past[] = {0x01, 0x82, 0x03, 0x00, 0x01, 0x00, 0xFF, 0xFF, 0xFF, 0x00, 0x01};
    expect_asdu_error(past, sizeof past, ANM_EPARSE,
                      "sequence of 2 objects from ioa 16777215 passes 16777215", 7);
    /* time tag out of range inside an object: minute 60 at octet 19+3 = 22 of the ASDU */
    uint8_t bad_time[21];
    memcpy(bad_time, worked_asdu, 21);
    bad_time[16] = 60; /* ASDU octets: 6 header + 3 IOA + 4 value + 1 QDS = 14; minute at 16 */
    expect_asdu_error(bad_time, 21, ANM_EPARSE, "cp56time2a minute 60 out of range", 17);
}

Test(iec104_asdu, unknown_type_is_distinct_and_mirrors_to_cot_44)
{
    /* type 45 (C_SC_NA_1, single command) is outside the supported set (PROTOCOLS.md): ENOTFOUND, header kept */
    static const uint8_t single_command[] = {0x2D, 0x01, 0x06, 0x05, 0x0A, 0x00,
                                             0x10, 0x27, 0x00, 0x01};
    static gateway_iec104_asdu asdu;
    anm_error_detail detail;
    anm_error_detail_clear(&detail);
    cr_assert_eq(gateway_iec104_asdu_decode(single_command, sizeof single_command, &asdu, &detail),
                 ANM_ENOTFOUND);
    cr_assert_str_eq(detail.message, "unknown type identification 45");
    cr_assert_eq(asdu.common_address, 10);
    cr_assert_eq(asdu.originator, 5);
    /* negative confirm: same octets, COT 44 | P/N (0x40) = 0x6C */
    static const uint8_t want[] = {0x2D, 0x01, 0x6C, 0x05, 0x0A, 0x00, 0x10, 0x27, 0x00, 0x01};
    uint8_t out[16];
    cr_assert_eq(gateway_iec104_asdu_mirror(single_command, sizeof single_command,
                                            GATEWAY_IEC104_COT_UNKNOWN_TYPE, 1, out, sizeof out),
                 ANM_OK);
    expect_bytes(out, sizeof want, want, sizeof want);
    cr_assert_eq(gateway_iec104_asdu_mirror(single_command, 5, 44, 1, out, sizeof out),
                 ANM_EPARSE);
    cr_assert_eq(gateway_iec104_asdu_mirror(single_command, sizeof single_command, 44, 1, out, 4),
                 ANM_ERANGE);
}

Test(iec104_asdu, encoder_checks_bounds_and_values)
{
    static gateway_iec104_asdu asdu;
    memset(&asdu, 0, sizeof asdu);
    asdu.type = GATEWAY_IEC104_M_ME_NC_1;
    asdu.sequence = 1;
    asdu.cause = 1;
    asdu.count = 48; /* 6 + 3 + 48 x 5 = 249: the largest that fits */
    for (unsigned i = 0; i < 127; i++)
        asdu.objects[i].ioa = 5000 + i;
    uint8_t out[300];
    size_t written = 0;
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, out, sizeof out, &written), ANM_OK);
    cr_assert_eq(written, 249);
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, out, 248, &written), ANM_ERANGE);
    asdu.count = 49; /* 254 octets */
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, out, sizeof out, &written), ANM_ERANGE);
    asdu.count = 0;
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, out, sizeof out, &written), ANM_EINVAL);
    asdu.count = 128;
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, out, sizeof out, &written), ANM_EINVAL);
    asdu.count = 2;
    asdu.objects[1].ioa = 7000; /* not consecutive with SQ=1 */
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, out, sizeof out, &written), ANM_EINVAL);
    asdu.sequence = 0;
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, out, sizeof out, &written), ANM_OK);
    asdu.objects[1].ioa = 0x1000000;
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, out, sizeof out, &written), ANM_EINVAL);
    asdu.objects[1].ioa = 1;
    asdu.cause = 64;
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, out, sizeof out, &written), ANM_EINVAL);
    asdu.cause = 1;
    asdu.type = 45;
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, out, sizeof out, &written), ANM_EINVAL);
    asdu.type = GATEWAY_IEC104_M_ME_TF_1; /* time fields all zero: day 0 is invalid */
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, out, sizeof out, &written), ANM_EINVAL);
    asdu.type = GATEWAY_IEC104_C_IC_NA_1; /* commands carry exactly one object */
    cr_assert_eq(gateway_iec104_asdu_encode(&asdu, out, sizeof out, &written), ANM_EINVAL);
    uint8_t body[250];
    memset(body, 0, sizeof body);
    cr_assert_eq(gateway_iec104_encode_i_frame(0, 0, body, 250, out, sizeof out, &written),
                 ANM_EINVAL);
    cr_assert_eq(gateway_iec104_encode_i_frame(0, 0, body, 249, out, 254, &written), ANM_ERANGE);
    cr_assert_eq(gateway_iec104_encode_i_frame(0, 0, body, 249, out, 255, &written), ANM_OK);
    cr_assert_eq(out[1], 253);
}

/* ---- reassembler ---------------------------------------------------------------- */

Test(iec104_reassembler, byte_by_byte_and_several_per_chunk)
{
    gateway_iec104_reassembler r;
    gateway_iec104_reassembler_init(&r);
    const uint8_t *apdu = NULL;
    size_t apdu_size = 0, used = 0;
    for (size_t i = 0; i < sizeof worked_frame; i++) {
        int rc = gateway_iec104_reassembler_push(&r, worked_frame + i, 1, &used, &apdu,
                                                 &apdu_size, NULL);
        cr_assert_eq(used, 1);
        cr_assert_eq(rc, i + 1 == sizeof worked_frame ? 1 : 0, "at octet %zu", i);
    }
    expect_bytes(apdu, apdu_size, worked_frame, sizeof worked_frame);

    /* STARTDT act + worked frame + half a TESTFR act in one chunk */
    uint8_t chunk[6 + sizeof worked_frame + 3] = {0x68, 0x04, 0x07, 0x00, 0x00, 0x00};
    memcpy(chunk + 6, worked_frame, sizeof worked_frame);
    memcpy(chunk + 6 + sizeof worked_frame, (const uint8_t[]){0x68, 0x04, 0x43}, 3);
    size_t offset = 0;
    cr_assert_eq(gateway_iec104_reassembler_push(&r, chunk, sizeof chunk, &used, &apdu,
                                                 &apdu_size, NULL),
                 1);
    cr_assert_eq(used, 6);
    cr_assert_eq(apdu[2], 0x07);
    offset += used;
    cr_assert_eq(gateway_iec104_reassembler_push(&r, chunk + offset, sizeof chunk - offset, &used,
                                                 &apdu, &apdu_size, NULL),
                 1);
    expect_bytes(apdu, apdu_size, worked_frame, sizeof worked_frame);
    offset += used;
    cr_assert_eq(gateway_iec104_reassembler_push(&r, chunk + offset, sizeof chunk - offset, &used,
                                                 &apdu, &apdu_size, NULL),
                 0);
    cr_assert_eq(used, 3);
    static const uint8_t rest[] = {0x00, 0x00, 0x00};
    cr_assert_eq(gateway_iec104_reassembler_push(&r, rest, 3, &used, &apdu, &apdu_size, NULL), 1);
    static const uint8_t testfr[] = {0x68, 0x04, 0x43, 0x00, 0x00, 0x00};
    expect_bytes(apdu, apdu_size, testfr, 6);
}

Test(iec104_reassembler, bad_start_and_lengths_fail_for_good)
{
    static const struct {
        uint8_t bytes[2];
        const char *message;
    } cases[] = {
        {{0x69, 0x04}, "bad start byte 0x69, expected 0x68"},
        {{0x68, 0x03}, "bad apdu length 3, expected 4..253"},
        {{0x68, 0xFE}, "bad apdu length 254, expected 4..253"},
        {{0x68, 0x00}, "bad apdu length 0, expected 4..253"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gateway_iec104_reassembler r;
        gateway_iec104_reassembler_init(&r);
        const uint8_t *apdu = NULL;
        size_t apdu_size = 0, used = 0;
        anm_error_detail detail;
        anm_error_detail_clear(&detail);
        cr_assert_eq(gateway_iec104_reassembler_push(&r, cases[i].bytes, 2, &used, &apdu,
                                                     &apdu_size, &detail),
                     ANM_EPARSE);
        cr_assert_str_eq(detail.message, cases[i].message);
        /* sticky: a good frame afterwards is not accepted */
        cr_assert_eq(gateway_iec104_reassembler_push(&r, worked_frame, sizeof worked_frame, &used,
                                                     &apdu, &apdu_size, NULL),
                     ANM_EPARSE);
    }
    /* a 253-octet length is the largest accepted */
    gateway_iec104_reassembler r;
    gateway_iec104_reassembler_init(&r);
    uint8_t big[255];
    memset(big, 0, sizeof big);
    big[0] = 0x68;
    big[1] = 253;
    const uint8_t *apdu = NULL;
    size_t apdu_size = 0, used = 0;
    cr_assert_eq(gateway_iec104_reassembler_push(&r, big, sizeof big, &used, &apdu, &apdu_size,
                                                 NULL),
                 1);
    cr_assert_eq(apdu_size, 255);
}
