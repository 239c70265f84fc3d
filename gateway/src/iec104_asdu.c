/* iec104_asdu.c: ASDU header, information objects and CP56Time2a (see iec104.h). */
#include "gateway/iec104.h"

#include <string.h>

#include "engine/clock.h"

/* ---- CP56Time2a --------------------------------------------------------------- */

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
        return 29;
    return days[month - 1];
}

static int time_config_valid(const gateway_iec104_time_config *config)
{
    return config == NULL || (config->offset_minutes >= -1440 && config->offset_minutes <= 1440 &&
                              (config->summer == 0 || config->summer == 1));
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

int gateway_iec104_cp56_from_utc_ms(int64_t utc_ms, const gateway_iec104_time_config *config,
                                    gateway_iec104_cp56 *out)
{
    if (out == NULL || !time_config_valid(config))
        return ANM_EINVAL;
    int64_t offset_ms = config != NULL ? (int64_t)config->offset_minutes * 60000 : 0;
    /* keep far-off inputs from overflowing: 2000..2099 is all we can encode */
    if (utc_ms < -(int64_t)1e15 || utc_ms > (int64_t)1e15)
        return ANM_ERANGE;
    int64_t local_ms = utc_ms + offset_ms;
    int64_t days = floor_div(local_ms, 86400000);
    int64_t ms_of_day = local_ms - days * 86400000;
    int year, month, day;
    anm_civil_from_days(days, &year, &month, &day);
    if (year < 2000 || year > 2099)
        return ANM_ERANGE;
    memset(out, 0, sizeof *out);
    out->milliseconds = (uint16_t)(ms_of_day % 60000);
    out->minute = (uint8_t)((ms_of_day / 60000) % 60);
    out->hour = (uint8_t)(ms_of_day / 3600000);
    out->day = (uint8_t)day;
    /* 1970-01-01 was a Thursday (4 with Monday = 1) */
    out->weekday = (uint8_t)(((days % 7 + 7 + 3) % 7) + 1);
    out->month = (uint8_t)month;
    out->year = (uint8_t)(year - 2000);
    out->summer = (uint8_t)(config != NULL ? config->summer : 0);
    return ANM_OK;
}

static int cp56_fields_valid(const gateway_iec104_cp56 *t)
{
    return t->milliseconds <= 59999 && t->minute <= 59 && t->hour <= 23 && t->day >= 1 &&
           t->day <= 31 && t->weekday <= 7 && t->month >= 1 && t->month <= 12 && t->year <= 99;
}

int gateway_iec104_cp56_to_utc_ms(const gateway_iec104_cp56 *time,
                                  const gateway_iec104_time_config *config, int64_t *utc_ms)
{
    if (time == NULL || utc_ms == NULL || !time_config_valid(config))
        return ANM_EINVAL;
    if (!cp56_fields_valid(time))
        return ANM_ERANGE;
    int year = 2000 + time->year;
    if (time->day > days_in_month(year, time->month))
        return ANM_ERANGE;
    int64_t days = anm_days_from_civil(year, time->month, time->day);
    int64_t local_ms = days * 86400000 + (int64_t)time->hour * 3600000 +
                       (int64_t)time->minute * 60000 + time->milliseconds;
    int64_t offset_ms = config != NULL ? (int64_t)config->offset_minutes * 60000 : 0;
    *utc_ms = local_ms - offset_ms;
    return ANM_OK;
}

int gateway_iec104_cp56_encode(const gateway_iec104_cp56 *time, uint8_t out[7])
{
    if (time == NULL || out == NULL || !cp56_fields_valid(time) || time->invalid > 1 ||
        time->summer > 1)
        return ANM_EINVAL;
    out[0] = (uint8_t)(time->milliseconds & 0xFFu);
    out[1] = (uint8_t)(time->milliseconds >> 8);
    out[2] = (uint8_t)(time->minute | (time->invalid ? 0x80u : 0u));
    out[3] = (uint8_t)(time->hour | (time->summer ? 0x80u : 0u));
    out[4] = (uint8_t)(time->day | (unsigned)(time->weekday << 5));
    out[5] = time->month;
    out[6] = time->year;
    return ANM_OK;
}

int gateway_iec104_cp56_decode(const uint8_t in[7], gateway_iec104_cp56 *out,
                               anm_error_detail *detail)
{
    if (in == NULL || out == NULL)
        return ANM_EINVAL;
    gateway_iec104_cp56 t;
    memset(&t, 0, sizeof t);
    t.milliseconds = (uint16_t)(in[0] | (unsigned)(in[1] << 8));
    t.minute = in[2] & 0x3Fu;
    t.invalid = (in[2] & 0x80u) ? 1 : 0;
    t.hour = in[3] & 0x1Fu;
    t.summer = (in[3] & 0x80u) ? 1 : 0;
    t.day = in[4] & 0x1Fu;
    t.weekday = (uint8_t)(in[4] >> 5);
    t.month = in[5] & 0x0Fu;
    t.year = in[6] & 0x7Fu;
    const char *field = NULL;
    unsigned value = 0;
    int column = 0;
    if (t.milliseconds > 59999) {
        field = "milliseconds", value = t.milliseconds, column = 1;
    } else if (t.minute > 59) {
        field = "minute", value = t.minute, column = 3;
    } else if (t.hour > 23) {
        field = "hour", value = t.hour, column = 4;
    } else if (t.day < 1) {
        field = "day", value = t.day, column = 5;
    } else if (t.month < 1 || t.month > 12) {
        field = "month", value = t.month, column = 6;
    } else if (t.year > 99) {
        field = "year", value = t.year, column = 7;
    }
    if (field != NULL) {
        anm_error_detail_set(detail, NULL, 0, column, NULL, "cp56time2a %s %u out of range",
                             field, value);
        return ANM_EPARSE;
    }
    *out = t;
    return ANM_OK;
}

/* ---- types ---------------------------------------------------------------------- */

size_t gateway_iec104_element_size(uint8_t type)
{
    switch (type) {
    case GATEWAY_IEC104_M_SP_NA_1: return 1;
    case GATEWAY_IEC104_M_ME_NC_1: return 5;
    case GATEWAY_IEC104_M_SP_TB_1: return 8;
    case GATEWAY_IEC104_M_ME_TF_1: return 12;
    case GATEWAY_IEC104_C_IC_NA_1: return 1;
    case GATEWAY_IEC104_C_CS_NA_1: return 7;
    case GATEWAY_IEC104_C_TS_TA_1: return 9;
    default: return 0;
    }
}

const char *gateway_iec104_type_name(uint8_t type)
{
    switch (type) {
    case GATEWAY_IEC104_M_SP_NA_1: return "M_SP_NA_1";
    case GATEWAY_IEC104_M_ME_NC_1: return "M_ME_NC_1";
    case GATEWAY_IEC104_M_SP_TB_1: return "M_SP_TB_1";
    case GATEWAY_IEC104_M_ME_TF_1: return "M_ME_TF_1";
    case GATEWAY_IEC104_C_IC_NA_1: return "C_IC_NA_1";
    case GATEWAY_IEC104_C_CS_NA_1: return "C_CS_NA_1";
    case GATEWAY_IEC104_C_TS_TA_1: return "C_TS_TA_1";
    default: return NULL;
    }
}

int gateway_iec104_type_has_time(uint8_t type)
{
    return type == GATEWAY_IEC104_M_SP_TB_1 || type == GATEWAY_IEC104_M_ME_TF_1 ||
           type == GATEWAY_IEC104_C_CS_NA_1 || type == GATEWAY_IEC104_C_TS_TA_1;
}

static int is_command(uint8_t type)
{
    return type >= 45;
}

/* ---- header ------------------------------------------------------------------------ */

int gateway_iec104_asdu_header_decode(const uint8_t *buf, size_t size,
                                      gateway_iec104_asdu_header *out,
                                      anm_error_detail *detail)
{
    if (buf == NULL || out == NULL)
        return ANM_EINVAL;
    memset(out, 0, sizeof *out);
    if (size < GATEWAY_IEC104_ASDU_HEADER) {
        anm_error_detail_set(detail, NULL, 0, (int)size + 1, NULL,
                             "asdu of %zu octets is shorter than its 6-octet header", size);
        return ANM_EPARSE;
    }
    out->type = buf[0];
    out->sequence = (buf[1] & 0x80u) ? 1 : 0;
    out->count = buf[1] & 0x7Fu;
    out->cause = buf[2] & 0x3Fu;
    out->negative = (buf[2] & 0x40u) ? 1 : 0;
    out->test = (buf[2] & 0x80u) ? 1 : 0;
    out->originator = buf[3];
    out->common_address = (uint16_t)(buf[4] | (unsigned)(buf[5] << 8));
    if (out->count == 0) {
        anm_error_detail_set(detail, NULL, 0, 2, NULL, "asdu with no information objects");
        return ANM_EPARSE;
    }
    return ANM_OK;
}

/* ---- objects ----------------------------------------------------------------------- */

static float read_float(const uint8_t *p)
{
    uint32_t bits = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
                    ((uint32_t)p[3] << 24);
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static void write_float(uint8_t *p, float value)
{
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    p[0] = (uint8_t)(bits & 0xFFu);
    p[1] = (uint8_t)((bits >> 8) & 0xFFu);
    p[2] = (uint8_t)((bits >> 16) & 0xFFu);
    p[3] = (uint8_t)(bits >> 24);
}

/* Decodes one element of `type` at p (size checked by the caller). */
static int decode_element(uint8_t type, const uint8_t *p, gateway_iec104_object *object,
                          size_t offset, anm_error_detail *detail)
{
    const uint8_t *time = NULL;
    switch (type) {
    case GATEWAY_IEC104_M_SP_TB_1:
        time = p + 1;
        /* fall through */
    case GATEWAY_IEC104_M_SP_NA_1:
        object->single_point = p[0] & 0x01u;
        object->quality = p[0] & 0xF0u;
        break;
    case GATEWAY_IEC104_M_ME_TF_1:
        time = p + 5;
        /* fall through */
    case GATEWAY_IEC104_M_ME_NC_1:
        object->value = read_float(p);
        object->quality = p[4] & 0xF1u;
        break;
    case GATEWAY_IEC104_C_IC_NA_1:
        object->qualifier = p[0];
        break;
    case GATEWAY_IEC104_C_CS_NA_1:
        time = p;
        break;
    case GATEWAY_IEC104_C_TS_TA_1:
        object->test_counter = (uint16_t)(p[0] | (unsigned)(p[1] << 8));
        time = p + 2;
        break;
    default:
        return ANM_ENOTFOUND;
    }
    if (time != NULL) {
        int rc = gateway_iec104_cp56_decode(time, &object->time, detail);
        if (rc != ANM_OK) {
            if (detail != NULL)
                detail->column += (int)(offset + (size_t)(time - p));
            return rc;
        }
    }
    return ANM_OK;
}

int gateway_iec104_asdu_decode(const uint8_t *buf, size_t size, gateway_iec104_asdu *out,
                               anm_error_detail *detail)
{
    if (buf == NULL || out == NULL)
        return ANM_EINVAL;
    gateway_iec104_asdu_header header;
    memset(out, 0, sizeof *out);
    int rc = gateway_iec104_asdu_header_decode(buf, size, &header, detail);
    out->type = header.type;
    out->sequence = header.sequence;
    out->count = header.count;
    out->cause = header.cause;
    out->negative = header.negative;
    out->test = header.test;
    out->originator = header.originator;
    out->common_address = header.common_address;
    if (rc != ANM_OK)
        return rc;
    size_t element = gateway_iec104_element_size(header.type);
    if (element == 0) {
        anm_error_detail_set(detail, NULL, 0, 1, NULL, "unknown type identification %u",
                             (unsigned)header.type);
        return ANM_ENOTFOUND;
    }
    const char *name = gateway_iec104_type_name(header.type);
    if (is_command(header.type) && (header.sequence || header.count != 1)) {
        anm_error_detail_set(detail, NULL, 0, 2, NULL,
                             "%s must carry one object without sq, got %u (sq=%u)", name,
                             (unsigned)header.count, (unsigned)header.sequence);
        return ANM_EPARSE;
    }
    size_t expected = header.sequence ? GATEWAY_IEC104_ASDU_HEADER + 3 + header.count * element
                                      : GATEWAY_IEC104_ASDU_HEADER + header.count * (3 + element);
    if (size != expected) {
        anm_error_detail_set(detail, NULL, 0, (int)(size < expected ? size + 1 : expected + 1),
                             NULL, "asdu of %u %s objects (sq=%u) needs %zu octets, got %zu",
                             (unsigned)header.count, name, (unsigned)header.sequence, expected,
                             size);
        return ANM_EPARSE;
    }
    size_t offset = GATEWAY_IEC104_ASDU_HEADER;
    uint32_t first_ioa = 0;
    for (unsigned i = 0; i < header.count; i++) {
        gateway_iec104_object *object = &out->objects[i];
        if (!header.sequence || i == 0) {
            object->ioa = (uint32_t)buf[offset] | ((uint32_t)buf[offset + 1] << 8) |
                          ((uint32_t)buf[offset + 2] << 16);
            offset += 3;
            first_ioa = object->ioa;
        } else {
            object->ioa = first_ioa + i;
            if (object->ioa > GATEWAY_IEC104_MAX_IOA) {
                anm_error_detail_set(detail, NULL, 0, 7, NULL,
                                     "sequence of %u objects from ioa %u passes 16777215",
                                     (unsigned)header.count, (unsigned)first_ioa);
                return ANM_EPARSE;
            }
        }
        rc = decode_element(header.type, buf + offset, object, offset, detail);
        if (rc != ANM_OK)
            return rc;
        offset += element;
    }
    return ANM_OK;
}

/* ---- encode ------------------------------------------------------------------------ */

static int asdu_check(const gateway_iec104_asdu *asdu, size_t *size)
{
    size_t element = gateway_iec104_element_size(asdu->type);
    if (element == 0 || asdu->count == 0 || asdu->count > GATEWAY_IEC104_MAX_OBJECTS ||
        asdu->cause > 63 || asdu->sequence > 1 || asdu->negative > 1 || asdu->test > 1)
        return ANM_EINVAL;
    if (is_command(asdu->type) && (asdu->sequence || asdu->count != 1))
        return ANM_EINVAL;
    for (unsigned i = 0; i < asdu->count; i++) {
        const gateway_iec104_object *object = &asdu->objects[i];
        if (object->ioa > GATEWAY_IEC104_MAX_IOA)
            return ANM_EINVAL;
        if (asdu->sequence && object->ioa != asdu->objects[0].ioa + i)
            return ANM_EINVAL;
        if (gateway_iec104_type_has_time(asdu->type) &&
            (!cp56_fields_valid(&object->time) || object->time.invalid > 1 ||
             object->time.summer > 1))
            return ANM_EINVAL;
        if ((asdu->type == GATEWAY_IEC104_M_SP_NA_1 || asdu->type == GATEWAY_IEC104_M_SP_TB_1) &&
            object->single_point > 1)
            return ANM_EINVAL;
    }
    *size = asdu->sequence ? GATEWAY_IEC104_ASDU_HEADER + 3 + asdu->count * element
                           : GATEWAY_IEC104_ASDU_HEADER + asdu->count * (3 + element);
    return ANM_OK;
}

size_t gateway_iec104_asdu_encoded_size(const gateway_iec104_asdu *asdu)
{
    size_t size = 0;
    if (asdu == NULL || asdu_check(asdu, &size) != ANM_OK)
        return 0;
    return size;
}

int gateway_iec104_asdu_encode(const gateway_iec104_asdu *asdu, uint8_t *out, size_t capacity,
                               size_t *written)
{
    if (asdu == NULL || out == NULL)
        return ANM_EINVAL;
    size_t size = 0;
    int rc = asdu_check(asdu, &size);
    if (rc != ANM_OK)
        return rc;
    if (size > GATEWAY_IEC104_MAX_ASDU || size > capacity)
        return ANM_ERANGE;
    out[0] = asdu->type;
    out[1] = (uint8_t)(asdu->count | (asdu->sequence ? 0x80u : 0u));
    out[2] = (uint8_t)(asdu->cause | (asdu->negative ? 0x40u : 0u) | (asdu->test ? 0x80u : 0u));
    out[3] = asdu->originator;
    out[4] = (uint8_t)(asdu->common_address & 0xFFu);
    out[5] = (uint8_t)(asdu->common_address >> 8);
    size_t offset = GATEWAY_IEC104_ASDU_HEADER;
    for (unsigned i = 0; i < asdu->count; i++) {
        const gateway_iec104_object *object = &asdu->objects[i];
        if (!asdu->sequence || i == 0) {
            out[offset] = (uint8_t)(object->ioa & 0xFFu);
            out[offset + 1] = (uint8_t)((object->ioa >> 8) & 0xFFu);
            out[offset + 2] = (uint8_t)((object->ioa >> 16) & 0xFFu);
            offset += 3;
        }
        uint8_t *p = out + offset;
        switch (asdu->type) {
        case GATEWAY_IEC104_M_SP_NA_1:
            p[0] = (uint8_t)((object->quality & 0xF0u) | object->single_point);
            offset += 1;
            break;
        case GATEWAY_IEC104_M_SP_TB_1:
            p[0] = (uint8_t)((object->quality & 0xF0u) | object->single_point);
            (void)gateway_iec104_cp56_encode(&object->time, p + 1);
            offset += 8;
            break;
        case GATEWAY_IEC104_M_ME_NC_1:
            write_float(p, object->value);
            p[4] = object->quality & 0xF1u;
            offset += 5;
            break;
        case GATEWAY_IEC104_M_ME_TF_1:
            write_float(p, object->value);
            p[4] = object->quality & 0xF1u;
            (void)gateway_iec104_cp56_encode(&object->time, p + 5);
            offset += 12;
            break;
        case GATEWAY_IEC104_C_IC_NA_1:
            p[0] = object->qualifier;
            offset += 1;
            break;
        case GATEWAY_IEC104_C_CS_NA_1:
            (void)gateway_iec104_cp56_encode(&object->time, p);
            offset += 7;
            break;
        case GATEWAY_IEC104_C_TS_TA_1:
            p[0] = (uint8_t)(object->test_counter & 0xFFu);
            p[1] = (uint8_t)(object->test_counter >> 8);
            (void)gateway_iec104_cp56_encode(&object->time, p + 2);
            offset += 9;
            break;
        default:
            return ANM_EINTERNAL;
        }
    }
    if (offset != size)
        return ANM_EINTERNAL;
    if (written != NULL)
        *written = size;
    return ANM_OK;
}

int gateway_iec104_asdu_mirror(const uint8_t *asdu, size_t size, uint8_t cause, int negative,
                               uint8_t *out, size_t capacity)
{
    if (asdu == NULL || out == NULL || cause > 63)
        return ANM_EINVAL;
    if (size < GATEWAY_IEC104_ASDU_HEADER)
        return ANM_EPARSE;
    if (size > capacity)
        return ANM_ERANGE;
    uint8_t test_bit = asdu[2] & 0x80u;
    memmove(out, asdu, size);
    out[2] = (uint8_t)(test_bit | (negative ? 0x40u : 0u) | cause);
    return ANM_OK;
}
