/* iec104_apci.c: APCI encode/decode and stream reassembly (see iec104.h). */
#include "gateway/iec104.h"

#include <string.h>

static int is_u_function(uint8_t function)
{
    switch (function) {
    case GATEWAY_IEC104_STARTDT_ACT:
    case GATEWAY_IEC104_STARTDT_CON:
    case GATEWAY_IEC104_STOPDT_ACT:
    case GATEWAY_IEC104_STOPDT_CON:
    case GATEWAY_IEC104_TESTFR_ACT:
    case GATEWAY_IEC104_TESTFR_CON:
        return 1;
    default:
        return 0;
    }
}

const char *gateway_iec104_u_function_name(uint8_t u_function)
{
    switch (u_function) {
    case GATEWAY_IEC104_STARTDT_ACT: return "STARTDT act";
    case GATEWAY_IEC104_STARTDT_CON: return "STARTDT con";
    case GATEWAY_IEC104_STOPDT_ACT: return "STOPDT act";
    case GATEWAY_IEC104_STOPDT_CON: return "STOPDT con";
    case GATEWAY_IEC104_TESTFR_ACT: return "TESTFR act";
    case GATEWAY_IEC104_TESTFR_CON: return "TESTFR con";
    default: return "unknown U function";
    }
}

static uint16_t read_sequence(const uint8_t *p)
{
    /* 15-bit number in bits 1..15 of a little-endian pair */
    return (uint16_t)(((unsigned)p[0] >> 1) | ((unsigned)p[1] << 7));
}

static void write_sequence(uint8_t *p, uint16_t sequence)
{
    unsigned value = ((unsigned)sequence % GATEWAY_IEC104_SEQ_MODULO) << 1;
    p[0] = (uint8_t)(value & 0xFFu);
    p[1] = (uint8_t)(value >> 8);
}

int gateway_iec104_apdu_decode(const uint8_t *buf, size_t size, gateway_iec104_apdu *out,
                               anm_error_detail *detail)
{
    if (buf == NULL || out == NULL)
        return ANM_EINVAL;
    memset(out, 0, sizeof *out);
    if (size < 6) {
        anm_error_detail_set(detail, NULL, 0, (int)size + 1, NULL,
                             "apdu of %zu octets is shorter than the 6-octet apci", size);
        return ANM_EPARSE;
    }
    if (buf[0] != GATEWAY_IEC104_START_BYTE) {
        anm_error_detail_set(detail, NULL, 0, 1, NULL, "bad start byte 0x%02x, expected 0x68",
                             (unsigned)buf[0]);
        return ANM_EPARSE;
    }
    if (buf[1] < 4 || buf[1] > GATEWAY_IEC104_MAX_LENGTH || (size_t)buf[1] != size - 2) {
        anm_error_detail_set(detail, NULL, 0, 2, NULL,
                             "bad apdu length %u for a frame of %zu octets", (unsigned)buf[1],
                             size);
        return ANM_EPARSE;
    }
    const uint8_t *control = buf + 2;
    size_t asdu_size = size - 6;
    if ((control[0] & 0x01u) == 0) {
        if (asdu_size == 0) {
            anm_error_detail_set(detail, NULL, 0, 7, NULL, "i-frame without asdu");
            return ANM_EPARSE;
        }
        out->format = GATEWAY_IEC104_FRAME_I;
        out->send_sequence = read_sequence(control);
        out->receive_sequence = read_sequence(control + 2);
        out->asdu = buf + 6;
        out->asdu_size = asdu_size;
        return ANM_OK;
    }
    if (asdu_size != 0) {
        anm_error_detail_set(detail, NULL, 0, 7, NULL,
                             "%s-frame carries %zu octets after the control field",
                             (control[0] & 0x03u) == 0x01u ? "s" : "u", asdu_size);
        return ANM_EPARSE;
    }
    if ((control[0] & 0x03u) == 0x01u) {
        if (control[0] != 0x01u || control[1] != 0 || (control[2] & 0x01u) != 0) {
            anm_error_detail_set(detail, NULL, 0, 3, NULL,
                                 "bad s-frame control field %02x %02x %02x %02x",
                                 (unsigned)control[0], (unsigned)control[1],
                                 (unsigned)control[2], (unsigned)control[3]);
            return ANM_EPARSE;
        }
        out->format = GATEWAY_IEC104_FRAME_S;
        out->receive_sequence = read_sequence(control + 2);
        return ANM_OK;
    }
    if (!is_u_function(control[0]) || control[1] != 0 || control[2] != 0 || control[3] != 0) {
        anm_error_detail_set(detail, NULL, 0, 3, NULL,
                             "bad u-frame control field %02x %02x %02x %02x",
                             (unsigned)control[0], (unsigned)control[1], (unsigned)control[2],
                             (unsigned)control[3]);
        return ANM_EPARSE;
    }
    out->format = GATEWAY_IEC104_FRAME_U;
    out->u_function = control[0];
    return ANM_OK;
}

int gateway_iec104_encode_i_frame(uint16_t send_sequence, uint16_t receive_sequence,
                                  const uint8_t *asdu, size_t asdu_size, uint8_t *out,
                                  size_t capacity, size_t *written)
{
    if (asdu == NULL || out == NULL || asdu_size == 0 || asdu_size > GATEWAY_IEC104_MAX_ASDU)
        return ANM_EINVAL;
    if (capacity < asdu_size + 6)
        return ANM_ERANGE;
    out[0] = GATEWAY_IEC104_START_BYTE;
    out[1] = (uint8_t)(asdu_size + 4);
    write_sequence(out + 2, send_sequence);
    write_sequence(out + 4, receive_sequence);
    memmove(out + 6, asdu, asdu_size);
    if (written != NULL)
        *written = asdu_size + 6;
    return ANM_OK;
}

int gateway_iec104_encode_s_frame(uint16_t receive_sequence, uint8_t *out, size_t capacity,
                                  size_t *written)
{
    if (out == NULL)
        return ANM_EINVAL;
    if (capacity < 6)
        return ANM_ERANGE;
    out[0] = GATEWAY_IEC104_START_BYTE;
    out[1] = 4;
    out[2] = 0x01;
    out[3] = 0x00;
    write_sequence(out + 4, receive_sequence);
    if (written != NULL)
        *written = 6;
    return ANM_OK;
}

int gateway_iec104_encode_u_frame(uint8_t u_function, uint8_t *out, size_t capacity,
                                  size_t *written)
{
    if (out == NULL || !is_u_function(u_function))
        return ANM_EINVAL;
    if (capacity < 6)
        return ANM_ERANGE;
    out[0] = GATEWAY_IEC104_START_BYTE;
    out[1] = 4;
    out[2] = u_function;
    out[3] = 0;
    out[4] = 0;
    out[5] = 0;
    if (written != NULL)
        *written = 6;
    return ANM_OK;
}

void gateway_iec104_reassembler_init(gateway_iec104_reassembler *r)
{
    if (r == NULL)
        return;
    r->used = 0;
    r->error = 0;
}

int gateway_iec104_reassembler_push(gateway_iec104_reassembler *r, const uint8_t *data,
                                    size_t size, size_t *consumed, const uint8_t **apdu,
                                    size_t *apdu_size, anm_error_detail *detail)
{
    if (r == NULL || consumed == NULL || apdu == NULL || apdu_size == NULL ||
        (data == NULL && size > 0))
        return ANM_EINVAL;
    *consumed = 0;
    *apdu = NULL;
    *apdu_size = 0;
    if (r->error != 0) {
        anm_error_detail_set(detail, NULL, 0, 0, NULL, "stream already failed");
        return r->error;
    }
    /* A whole APDU handed out last time is released on this call. */
    if (r->used >= 2 && r->used == (size_t)r->buffer[1] + 2)
        r->used = 0;
    size_t taken = 0;
    while (taken < size) {
        if (r->used == 0) {
            if (data[taken] != GATEWAY_IEC104_START_BYTE) {
                anm_error_detail_set(detail, NULL, 0, 1, NULL,
                                     "bad start byte 0x%02x, expected 0x68",
                                     (unsigned)data[taken]);
                r->error = ANM_EPARSE;
                *consumed = taken + 1;
                return ANM_EPARSE;
            }
            r->buffer[r->used++] = data[taken++];
            continue;
        }
        if (r->used == 1) {
            uint8_t length = data[taken];
            if (length < 4 || length > GATEWAY_IEC104_MAX_LENGTH) {
                anm_error_detail_set(detail, NULL, 0, 2, NULL,
                                     "bad apdu length %u, expected 4..253", (unsigned)length);
                r->error = ANM_EPARSE;
                *consumed = taken + 1;
                return ANM_EPARSE;
            }
            r->buffer[r->used++] = data[taken++];
            continue;
        }
        size_t total = (size_t)r->buffer[1] + 2;
        size_t want = total - r->used;
        size_t available = size - taken;
        size_t n = want < available ? want : available;
        memcpy(r->buffer + r->used, data + taken, n);
        r->used += n;
        taken += n;
        if (r->used == total)
            break;
    }
    *consumed = taken;
    if (r->used >= 2 && r->used == (size_t)r->buffer[1] + 2) {
        *apdu = r->buffer;
        *apdu_size = r->used;
        return 1;
    }
    return 0;
}
