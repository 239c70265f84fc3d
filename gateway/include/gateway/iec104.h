/*
 * iec104.h: the IEC 60870-5-104 codec: APCI (start byte, length, control
 * field), ASDU header, information objects of the types in
 * docs/iec104.md, CP56Time2a, and a stream reassembler that turns arbitrary
 * TCP chunks into whole APDUs.
 *
 * Everything here is pure: no global state, no allocation, no I/O.
 * Encoders write into caller buffers and check bounds; decoders validate
 * every length and field and never read outside the buffer they are given.
 *
 * Errors (anm_err):
 *   ANM_EPARSE     malformed frame (bad start byte, length, control field,
 *                  count, field value, truncated object)
 *   ANM_ENOTFOUND  well-formed ASDU header with a type identification this
 *                  codec does not know (an outstation answers COT 44)
 *   ANM_EINVAL     an encoder was given a value that cannot be encoded
 *   ANM_ERANGE     the encoded frame does not fit the caller's buffer or the
 *                  protocol's limits (APDU 255 octets, ASDU 249)
 * Decoders fill the optional anm_error_detail: message in the project's log
 * style, column = 1-based offset of the offending octet in the buffer given.
 */
#ifndef GATEWAY_IEC104_H
#define GATEWAY_IEC104_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

#define GATEWAY_IEC104_START_BYTE 0x68
#define GATEWAY_IEC104_MAX_LENGTH 253   /* the length octet: control field + ASDU */
#define GATEWAY_IEC104_MAX_APDU 255     /* start + length + 253 */
#define GATEWAY_IEC104_MAX_ASDU 249     /* 253 - 4 octets of control field */
#define GATEWAY_IEC104_SEQ_MODULO 32768 /* N(S), N(R) are 15-bit */
#define GATEWAY_IEC104_MAX_OBJECTS 127  /* VSQ count is 7 bits */
#define GATEWAY_IEC104_ASDU_HEADER 6    /* type, VSQ, COT (2), common address (2) */
#define GATEWAY_IEC104_MAX_IOA 0xFFFFFFu

/* ---- APCI ---------------------------------------------------------------- */

typedef enum gateway_iec104_frame_format {
    GATEWAY_IEC104_FRAME_I = 0, /* numbered information transfer */
    GATEWAY_IEC104_FRAME_S = 1, /* numbered supervisory (acknowledge) */
    GATEWAY_IEC104_FRAME_U = 2  /* unnumbered control */
} gateway_iec104_frame_format;

/* First octet of a U-frame's control field (the other three are 0). */
typedef enum gateway_iec104_u_function {
    GATEWAY_IEC104_STARTDT_ACT = 0x07,
    GATEWAY_IEC104_STARTDT_CON = 0x0B,
    GATEWAY_IEC104_STOPDT_ACT = 0x13,
    GATEWAY_IEC104_STOPDT_CON = 0x23,
    GATEWAY_IEC104_TESTFR_ACT = 0x43,
    GATEWAY_IEC104_TESTFR_CON = 0x83
} gateway_iec104_u_function;

/*
 * A decoded APDU. asdu points into the buffer given to the decoder
 * (borrowed) and is NULL with asdu_size 0 for S- and U-frames.
 */
typedef struct gateway_iec104_apdu {
    gateway_iec104_frame_format format;
    uint16_t send_sequence;    /* N(S), I-frames only, 0..32767 */
    uint16_t receive_sequence; /* N(R), I- and S-frames, 0..32767 */
    uint8_t u_function;        /* gateway_iec104_u_function, U-frames only */
    const uint8_t *asdu;
    size_t asdu_size;
} gateway_iec104_apdu;

/*
 * Decodes exactly one APDU occupying all of buf[0..size) (as yielded by the
 * reassembler). Checks the start byte, that the length octet equals
 * size - 2 and lies in 4..253, the control field format (U-frames: exactly
 * one known function bit pattern and three zero octets; S-frames: second
 * octet 0, no ASDU; U- and S-frames carry no ASDU; I-frames carry one).
 */
int gateway_iec104_apdu_decode(const uint8_t *buf, size_t size, gateway_iec104_apdu *out,
                               anm_error_detail *detail);

/*
 * Encoders: write a whole APDU into out[0..capacity) and its size into
 * *written. Sequence numbers are taken modulo 32768. ANM_ERANGE if it does
 * not fit; ANM_EINVAL for an unknown U function or an empty/oversized ASDU.
 */
int gateway_iec104_encode_i_frame(uint16_t send_sequence, uint16_t receive_sequence,
                                  const uint8_t *asdu, size_t asdu_size, uint8_t *out,
                                  size_t capacity, size_t *written);
int gateway_iec104_encode_s_frame(uint16_t receive_sequence, uint8_t *out, size_t capacity,
                                  size_t *written);
int gateway_iec104_encode_u_frame(uint8_t u_function, uint8_t *out, size_t capacity,
                                  size_t *written);

/* "STARTDT act", ... for logs; "unknown U function" otherwise. Static. */
const char *gateway_iec104_u_function_name(uint8_t u_function);

/* ---- stream reassembly ----------------------------------------------------- */

/*
 * Collects bytes from a TCP stream into whole APDUs. A value type: no
 * allocation, init then push. After an error the stream cannot be
 * resynchronised (104 has no framing escape): the connection must close;
 * further pushes return the same error.
 */
typedef struct gateway_iec104_reassembler {
    uint8_t buffer[GATEWAY_IEC104_MAX_APDU];
    size_t used;
    int error; /* sticky anm_err, 0 while healthy */
} gateway_iec104_reassembler;

void gateway_iec104_reassembler_init(gateway_iec104_reassembler *r);

/*
 * Consumes bytes from data[0..size) until one APDU is complete or the input
 * is used up; *consumed says how many were taken. Returns 1 with *apdu and
 * *apdu_size set (borrowed, valid until the next push) when an APDU is
 * complete, 0 when more input is needed (then *consumed == size), or
 * ANM_EPARSE for a start byte other than 0x68 or a length octet < 4 or > 253.
 * Call again with the rest of the input after a 1.
 */
int gateway_iec104_reassembler_push(gateway_iec104_reassembler *r, const uint8_t *data,
                                    size_t size, size_t *consumed, const uint8_t **apdu,
                                    size_t *apdu_size, anm_error_detail *detail);

/* ---- CP56Time2a ------------------------------------------------------------- */

/* The seven-octet time tag, field by field as on the wire. */
typedef struct gateway_iec104_cp56 {
    uint16_t milliseconds; /* within the minute, 0..59999 */
    uint8_t minute;        /* 0..59 */
    uint8_t hour;          /* 0..23 */
    uint8_t day;           /* day of month, 1..31 */
    uint8_t weekday;       /* 1 = Monday .. 7 = Sunday, 0 = not used */
    uint8_t month;         /* 1..12 */
    uint8_t year;          /* years since 2000, 0..99 */
    uint8_t invalid;       /* IV bit of the minute octet */
    uint8_t summer;        /* SU bit of the hour octet */
} gateway_iec104_cp56;

/*
 * How wire time relates to UTC. NESO's convention is open; the default
 * (all zero) is UTC with SU = 0. Wire (local) time = UTC + offset_minutes;
 * summer is the SU bit written on encode (it does not shift the time: put
 * the summer hour into offset_minutes as well if the peer wants local
 * summer time).
 */
typedef struct gateway_iec104_time_config {
    int offset_minutes; /* -1440 .. 1440 */
    int summer;         /* 0 or 1 */
} gateway_iec104_time_config;

/*
 * UTC ms -> fields (weekday filled in). config may be NULL (UTC).
 * ANM_ERANGE if the wire time falls outside 2000..2099, ANM_EINVAL for a
 * bad config.
 */
int gateway_iec104_cp56_from_utc_ms(int64_t utc_ms, const gateway_iec104_time_config *config,
                                    gateway_iec104_cp56 *out);
/*
 * Fields -> UTC ms (weekday, IV and SU ignored). ANM_ERANGE for a field out
 * of range or a day that does not exist in its month (31 April).
 */
int gateway_iec104_cp56_to_utc_ms(const gateway_iec104_cp56 *time,
                                  const gateway_iec104_time_config *config, int64_t *utc_ms);

/* Seven octets. encode: ANM_EINVAL for a field out of range. decode:
 * ANM_EPARSE for a field out of range (reserved bits are ignored). */
int gateway_iec104_cp56_encode(const gateway_iec104_cp56 *time, uint8_t out[7]);
int gateway_iec104_cp56_decode(const uint8_t in[7], gateway_iec104_cp56 *out,
                               anm_error_detail *detail);

/* ---- ASDU ----------------------------------------------------------------------- */

typedef enum gateway_iec104_type {
    GATEWAY_IEC104_M_SP_NA_1 = 1,   /* single point, SIQ */
    GATEWAY_IEC104_M_ME_NC_1 = 13,  /* short float + QDS */
    GATEWAY_IEC104_M_SP_TB_1 = 30,  /* single point, SIQ + CP56Time2a */
    GATEWAY_IEC104_M_ME_TF_1 = 36,  /* short float + QDS + CP56Time2a */
    GATEWAY_IEC104_C_IC_NA_1 = 100, /* interrogation, QOI */
    GATEWAY_IEC104_C_CS_NA_1 = 103, /* clock synchronisation, CP56Time2a */
    GATEWAY_IEC104_C_TS_TA_1 = 107  /* test command, TSC + CP56Time2a */
} gateway_iec104_type;

/* Causes of transmission used here (6 bits; others decode as numbers). */
typedef enum gateway_iec104_cause {
    GATEWAY_IEC104_COT_PERIODIC = 1,
    GATEWAY_IEC104_COT_SPONTANEOUS = 3,
    GATEWAY_IEC104_COT_ACTIVATION = 6,
    GATEWAY_IEC104_COT_ACTIVATION_CON = 7,
    GATEWAY_IEC104_COT_DEACTIVATION = 8,
    GATEWAY_IEC104_COT_DEACTIVATION_CON = 9,
    GATEWAY_IEC104_COT_ACTIVATION_TERM = 10,
    GATEWAY_IEC104_COT_INTERROGATED_STATION = 20,
    GATEWAY_IEC104_COT_UNKNOWN_TYPE = 44,
    GATEWAY_IEC104_COT_UNKNOWN_CAUSE = 45,
    GATEWAY_IEC104_COT_UNKNOWN_COMMON_ADDRESS = 46,
    GATEWAY_IEC104_COT_UNKNOWN_IOA = 47
} gateway_iec104_cause;

/* Quality descriptor bits (QDS; SIQ shares IV, NT, SB, BL). */
#define GATEWAY_IEC104_QDS_OV 0x01u /* overflow (QDS only) */
#define GATEWAY_IEC104_QDS_BL 0x10u /* blocked */
#define GATEWAY_IEC104_QDS_SB 0x20u /* substituted */
#define GATEWAY_IEC104_QDS_NT 0x40u /* not topical */
#define GATEWAY_IEC104_QDS_IV 0x80u /* invalid */

#define GATEWAY_IEC104_QOI_STATION 20 /* station interrogation */

/*
 * One information object. Which fields mean something depends on the ASDU
 * type:
 *   M_SP_NA_1  single_point, quality (IV NT SB BL)
 *   M_SP_TB_1  single_point, quality, time
 *   M_ME_NC_1  value, quality (IV NT SB BL OV)
 *   M_ME_TF_1  value, quality, time
 *   C_IC_NA_1  qualifier (QOI)
 *   C_CS_NA_1  time
 *   C_TS_TA_1  test_counter (TSC), time
 * Decoders zero the fields a type does not carry.
 */
typedef struct gateway_iec104_object {
    uint32_t ioa; /* 0..0xFFFFFF */
    float value;
    uint8_t quality;
    uint8_t single_point; /* 0 or 1 */
    uint8_t qualifier;
    uint16_t test_counter;
    gateway_iec104_cp56 time;
} gateway_iec104_object;

typedef struct gateway_iec104_asdu {
    uint8_t type;            /* gateway_iec104_type */
    uint8_t sequence;        /* SQ bit: 1 = objects[i].ioa = objects[0].ioa + i */
    uint8_t count;           /* number of objects, 1..127 */
    uint8_t cause;           /* 0..63 */
    uint8_t negative;        /* P/N bit */
    uint8_t test;            /* T bit */
    uint8_t originator;      /* originator address (second COT octet) */
    uint16_t common_address; /* CA, little-endian on the wire */
    gateway_iec104_object objects[GATEWAY_IEC104_MAX_OBJECTS];
} gateway_iec104_asdu;

/* The header alone, readable even when the type is unknown (to build a
 * negative confirm). */
typedef struct gateway_iec104_asdu_header {
    uint8_t type;
    uint8_t sequence;
    uint8_t count;
    uint8_t cause;
    uint8_t negative;
    uint8_t test;
    uint8_t originator;
    uint16_t common_address;
} gateway_iec104_asdu_header;

/* Size of one element (without IOA) of a known type; 0 for an unknown type. */
size_t gateway_iec104_element_size(uint8_t type);
/* "M_ME_TF_1", ...; NULL for an unknown type. Static. */
const char *gateway_iec104_type_name(uint8_t type);
/* 1 if the type carries a CP56Time2a. */
int gateway_iec104_type_has_time(uint8_t type);

/* Decodes the 6-octet header (ANM_EPARSE if size < 6 or count 0). */
int gateway_iec104_asdu_header_decode(const uint8_t *buf, size_t size,
                                      gateway_iec104_asdu_header *out,
                                      anm_error_detail *detail);

/*
 * Decodes a whole ASDU (buf[0..size) exactly). ANM_ENOTFOUND for an unknown
 * type (the header is still filled in out), ANM_EPARSE when size does not
 * equal the header plus count objects of the type (SQ=0: count x (3 +
 * element), SQ=1: 3 + count x element), a command with SQ=1 or more than one
 * object, an IOA sequence that passes 0xFFFFFF, or a time tag out of range.
 */
int gateway_iec104_asdu_decode(const uint8_t *buf, size_t size, gateway_iec104_asdu *out,
                               anm_error_detail *detail);

/*
 * Encodes asdu into out[0..capacity). With sequence = 1 the IOAs must be
 * consecutive from objects[0].ioa. ANM_EINVAL for an unknown type, count 0
 * or > 127, cause > 63, IOA > 0xFFFFFF, non-consecutive IOAs with SQ=1, a
 * command with SQ=1 or count != 1, a bad time field; ANM_ERANGE if the
 * result exceeds capacity or 249 octets.
 */
int gateway_iec104_asdu_encode(const gateway_iec104_asdu *asdu, uint8_t *out, size_t capacity,
                               size_t *written);

/* Octets asdu would take on the wire (0 if it cannot be encoded). */
size_t gateway_iec104_asdu_encoded_size(const gateway_iec104_asdu *asdu);

/*
 * Copies a received ASDU into out (capacity >= size) as a negative
 * confirm: same type, objects and addresses; cause replaced, P/N set.
 * Works on unknown types (only the header is touched). ANM_EPARSE if
 * size < 6; ANM_ERANGE if it does not fit.
 */
int gateway_iec104_asdu_mirror(const uint8_t *asdu, size_t size, uint8_t cause, int negative,
                               uint8_t *out, size_t capacity);

#endif
