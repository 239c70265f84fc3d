/* telemetry_frame.c: binary and JSON telemetry batch codecs, CRC-32C, ack/reject bodies. */
#include "engine/telemetry_frame.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bus.h"
#include "engine/error.h"

_Static_assert(sizeof(double) == 8, "binary64 doubles are required");

static const uint8_t magic[4] = {'A', 'N', 'M', 'T'};

/* CRC-32C table for the reflected polynomial 0x82f63b78 (generated, read-only). */
static const uint32_t crc32c_table[256] = {
    0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu, 0x35f1141cu,
    0x26a1e7e8u, 0xd4ca64ebu, 0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu,
    0x4d43cfd0u, 0xbf284cd3u, 0xac78bf27u, 0x5e133c24u, 0x105ec76fu, 0xe235446cu,
    0xf165b798u, 0x030e349bu, 0xd7c45070u, 0x25afd373u, 0x36ff2087u, 0xc494a384u,
    0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u, 0x5d1d08bfu, 0xaf768bbcu,
    0xbc267848u, 0x4e4dfb4bu, 0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u, 0x33ed7d2au,
    0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u, 0xaa64d611u, 0x580f5512u,
    0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau,
    0x30e349b1u, 0xc288cab2u, 0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu,
    0x1642ae59u, 0xe4292d5au, 0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au,
    0x7da08661u, 0x8fcb0562u, 0x9c9bf696u, 0x6ef07595u, 0x417b1dbcu, 0xb3109ebfu,
    0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u, 0x67dafa54u, 0x95b17957u,
    0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u, 0x0c38d26cu, 0xfe53516fu,
    0xed03a29bu, 0x1f682198u, 0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u,
    0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u, 0xdbfc821cu, 0x2997011fu,
    0x3ac7f2ebu, 0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u,
    0x61c69362u, 0x93ad1061u, 0x80fde395u, 0x72966096u, 0xa65c047du, 0x5437877eu,
    0x4767748au, 0xb50cf789u, 0xeb1fcbadu, 0x197448aeu, 0x0a24bb5au, 0xf84f3859u,
    0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u, 0x7198540du, 0x83f3d70eu,
    0x90a324fau, 0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u, 0xa55230e6u,
    0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu, 0xceb018deu,
    0xdde0eb2au, 0x2f8b6829u, 0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu,
    0x456cac67u, 0xb7072f64u, 0xa457dc90u, 0x563c5f93u, 0x082f63b7u, 0xfa44e0b4u,
    0xe9141340u, 0x1b7f9043u, 0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu,
    0x92a8fc17u, 0x60c37f14u, 0x73938ce0u, 0x81f80fe3u, 0x55326b08u, 0xa759e80bu,
    0xb4091bffu, 0x466298fcu, 0x1871a4d8u, 0xea1a27dbu, 0xf94ad42fu, 0x0b21572cu,
    0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u, 0xa24bb5a6u, 0x502036a5u,
    0x4370c551u, 0xb11b4652u, 0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
    0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u,
    0x0e330a81u, 0xfc588982u, 0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du,
    0x758fe5d6u, 0x87e466d5u, 0x94b49521u, 0x66df1622u, 0x38cc2a06u, 0xcaa7a905u,
    0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u, 0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu,
    0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u, 0x0417b1dbu, 0xf67c32d8u,
    0xe52cc12cu, 0x1747422fu, 0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu, 0x5a048dffu,
    0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u, 0xd3d3e1abu, 0x21b862a8u,
    0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u,
    0x590ab964u, 0xab613a67u, 0xb831c993u, 0x4a5a4a90u, 0x9e902e7bu, 0x6cfbad78u,
    0x7fab5e8cu, 0x8dc0dd8fu, 0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu,
    0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u, 0x37faccf1u, 0x69e9f0d5u, 0x9b8273d6u,
    0x88d28022u, 0x7ab90321u, 0xae7367cau, 0x5c18e4c9u, 0x4f48173du, 0xbd23943eu,
    0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au, 0xc69f7b69u,
    0xd5cf889du, 0x27a40b9eu, 0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu,
    0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u,
};

uint32_t anm_crc32c(const void *data, size_t size)
{
    const uint8_t *p = data;
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < size; i++)
        crc = crc32c_table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
    return crc ^ 0xffffffffu;
}

/* ---- batch --------------------------------------------------------------- */

void anm_telemetry_batch_init(anm_telemetry_batch *batch)
{
    memset(batch, 0, sizeof *batch);
}

void anm_telemetry_batch_free(anm_telemetry_batch *batch)
{
    if (batch == NULL)
        return;
    free(batch->samples);
    memset(batch, 0, sizeof *batch);
}

int anm_telemetry_batch_reserve(anm_telemetry_batch *batch, size_t n)
{
    if (n <= batch->capacity)
        return ANM_OK;
    if (n > SIZE_MAX / sizeof(anm_telemetry_sample))
        return ANM_ENOMEM;
    size_t cap = batch->capacity ? batch->capacity : 64;
    while (cap < n)
        cap = cap > SIZE_MAX / 2 / sizeof(anm_telemetry_sample) ? n : cap * 2;
    anm_telemetry_sample *grown = realloc(batch->samples, cap * sizeof *grown);
    if (grown == NULL)
        return ANM_ENOMEM;
    batch->samples = grown;
    batch->capacity = cap;
    return ANM_OK;
}

int anm_telemetry_batch_push(anm_telemetry_batch *batch, uint32_t signal_id, int64_t utc_ms,
                             double value, uint16_t quality)
{
    int rc = anm_telemetry_batch_reserve(batch, batch->count + 1);
    if (rc != ANM_OK)
        return rc;
    batch->samples[batch->count++] = (anm_telemetry_sample){signal_id, utc_ms, value, quality};
    return ANM_OK;
}

/* ---- reasons ------------------------------------------------------------- */

const char *anm_telemetry_reason_code(anm_telemetry_reason reason)
{
    switch (reason) {
    case ANM_TELEMETRY_OK: return "ok";
    case ANM_TELEMETRY_TRUNCATED: return "truncated";
    case ANM_TELEMETRY_OVERSIZED: return "oversized";
    case ANM_TELEMETRY_BAD_MAGIC: return "bad_magic";
    case ANM_TELEMETRY_BAD_VERSION: return "bad_version";
    case ANM_TELEMETRY_BAD_FLAGS: return "bad_flags";
    case ANM_TELEMETRY_BAD_COUNT: return "bad_count";
    case ANM_TELEMETRY_BAD_LENGTH: return "bad_length";
    case ANM_TELEMETRY_BAD_CHECKSUM: return "bad_checksum";
    case ANM_TELEMETRY_BAD_SEQ: return "bad_seq";
    case ANM_TELEMETRY_NON_FINITE: return "non_finite";
    case ANM_TELEMETRY_BAD_JSON: return "bad_json";
    case ANM_TELEMETRY_BAD_FIELD: return "bad_field";
    }
    return "unknown";
}

static int refuse(anm_telemetry_batch *out, anm_telemetry_reject *why,
                  anm_telemetry_reason reason, size_t sample_index, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int refuse(anm_telemetry_batch *out, anm_telemetry_reject *why,
                  anm_telemetry_reason reason, size_t sample_index, const char *fmt, ...)
{
    out->count = 0;
    if (why != NULL) {
        va_list ap;
        va_start(ap, fmt);
        why->reason = reason;
        why->sample_index = sample_index;
        if (vsnprintf(why->text, sizeof why->text, fmt, ap) < 0)
            why->text[0] = '\0';
        va_end(ap);
    }
    return ANM_EPROTO;
}

static void accept_reason(anm_telemetry_reject *why)
{
    if (why != NULL) {
        why->reason = ANM_TELEMETRY_OK;
        why->sample_index = 0;
        why->text[0] = '\0';
    }
}

static size_t max_samples_of(const anm_telemetry_limits *limits)
{
    return limits != NULL && limits->max_samples > 0 ? limits->max_samples
                                                     : ANM_TELEMETRY_DEFAULT_MAX_SAMPLES;
}

/* ---- binary -------------------------------------------------------------- */

size_t anm_telemetry_frame_size(size_t count)
{
    return ANM_TELEMETRY_HEADER_BYTES + count * ANM_TELEMETRY_SAMPLE_BYTES +
           ANM_TELEMETRY_TRAILER_BYTES;
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32);
}

static int check_encodable(const anm_telemetry_batch *batch)
{
    if (batch->count == 0 || batch->count > UINT32_MAX || batch->seq > (uint64_t)INT64_MAX ||
        (batch->flags & ~ANM_TELEMETRY_FLAG_RESEND) != 0)
        return ANM_EINVAL;
    for (size_t i = 0; i < batch->count; i++) {
        if (!isfinite(batch->samples[i].value))
            return ANM_EINVAL;
    }
    return ANM_OK;
}

int anm_telemetry_encode(const anm_telemetry_batch *batch, void *buf, size_t size,
                         size_t *written)
{
    int rc = check_encodable(batch);
    if (rc != ANM_OK)
        return rc;
    size_t total = anm_telemetry_frame_size(batch->count);
    if (size < total)
        return ANM_ERANGE;
    uint8_t *p = buf;
    memcpy(p, magic, 4);
    p[4] = ANM_TELEMETRY_VERSION;
    p[5] = batch->flags;
    put_u16(p + 6, 0);
    put_u32(p + 8, batch->sender_id);
    put_u64(p + 12, batch->seq);
    put_u32(p + 20, (uint32_t)batch->count);
    uint8_t *q = p + ANM_TELEMETRY_HEADER_BYTES;
    for (size_t i = 0; i < batch->count; i++) {
        const anm_telemetry_sample *s = &batch->samples[i];
        uint64_t bits;
        memcpy(&bits, &s->value, sizeof bits);
        put_u32(q, s->signal_id);
        put_u64(q + 4, (uint64_t)s->utc_ms);
        put_u64(q + 12, bits);
        put_u16(q + 20, s->quality);
        q += ANM_TELEMETRY_SAMPLE_BYTES;
    }
    put_u32(q, anm_crc32c(p, total - ANM_TELEMETRY_TRAILER_BYTES));
    if (written != NULL)
        *written = total;
    return ANM_OK;
}

int anm_telemetry_decode(const void *data, size_t size, const anm_telemetry_limits *limits,
                         anm_telemetry_batch *out, anm_telemetry_reject *why)
{
    const uint8_t *p = data;
    size_t max_samples = max_samples_of(limits);
    size_t max_bytes = limits != NULL && limits->max_bytes > 0 ? limits->max_bytes
                                                               : anm_telemetry_frame_size(max_samples);
    out->count = 0;
    if (why != NULL)
        why->have_header = 0;
    if (size > max_bytes)
        return refuse(out, why, ANM_TELEMETRY_OVERSIZED, 0,
                      "frame of %zu bytes exceeds the limit of %zu", size, max_bytes);
    if (size < ANM_TELEMETRY_HEADER_BYTES + ANM_TELEMETRY_TRAILER_BYTES)
        return refuse(out, why, ANM_TELEMETRY_TRUNCATED, 0,
                      "frame of %zu bytes is shorter than header and checksum (%d)", size,
                      ANM_TELEMETRY_HEADER_BYTES + ANM_TELEMETRY_TRAILER_BYTES);
    if (memcmp(p, magic, 4) != 0)
        return refuse(out, why, ANM_TELEMETRY_BAD_MAGIC, 0,
                      "bad magic 0x%02x%02x%02x%02x (expected \"ANMT\")", p[0], p[1], p[2], p[3]);
    if (p[4] != ANM_TELEMETRY_VERSION)
        return refuse(out, why, ANM_TELEMETRY_BAD_VERSION, 0,
                      "frame version %u is not supported (expected %d)", p[4],
                      ANM_TELEMETRY_VERSION);
    uint32_t count = get_u32(p + 20);
    if (count == 0 || count > max_samples)
        return refuse(out, why, ANM_TELEMETRY_BAD_COUNT, 0,
                      "sample count %lu is outside [1, %zu]", (unsigned long)count, max_samples);
    size_t expected = anm_telemetry_frame_size(count);
    if (size < expected)
        return refuse(out, why, ANM_TELEMETRY_TRUNCATED, 0,
                      "frame of %zu bytes is shorter than the %zu that %lu samples need", size,
                      expected, (unsigned long)count);
    if (size > expected)
        return refuse(out, why, ANM_TELEMETRY_BAD_LENGTH, 0,
                      "frame of %zu bytes has %zu bytes after %lu samples", size, size - expected,
                      (unsigned long)count);
    uint32_t crc = anm_crc32c(p, expected - ANM_TELEMETRY_TRAILER_BYTES);
    uint32_t stated = get_u32(p + expected - ANM_TELEMETRY_TRAILER_BYTES);
    if (crc != stated)
        return refuse(out, why, ANM_TELEMETRY_BAD_CHECKSUM, 0,
                      "stored checksum 0x%08lx does not match the computed 0x%08lx", (unsigned long)stated,
                      (unsigned long)crc);
    out->flags = p[5];
    out->sender_id = get_u32(p + 8);
    out->seq = get_u64(p + 12);
    if (why != NULL)
        why->have_header = out->seq <= (uint64_t)INT64_MAX;
    if ((p[5] & ~ANM_TELEMETRY_FLAG_RESEND) != 0 || get_u16(p + 6) != 0)
        return refuse(out, why, ANM_TELEMETRY_BAD_FLAGS, 0,
                      "flags 0x%02x or reserved 0x%04x has unknown bits set", p[5], get_u16(p + 6));
    if (out->seq > (uint64_t)INT64_MAX)
        return refuse(out, why, ANM_TELEMETRY_BAD_SEQ, 0, "sequence number %llu is not below 2^63",
                      (unsigned long long)out->seq);
    if (anm_telemetry_batch_reserve(out, count) != ANM_OK)
        return ANM_ENOMEM;
    const uint8_t *q = p + ANM_TELEMETRY_HEADER_BYTES;
    for (size_t i = 0; i < count; i++) {
        anm_telemetry_sample *s = &out->samples[i];
        uint64_t bits = get_u64(q + 12);
        s->signal_id = get_u32(q);
        s->utc_ms = (int64_t)get_u64(q + 4);
        memcpy(&s->value, &bits, sizeof bits);
        s->quality = get_u16(q + 20);
        if (!isfinite(s->value))
            return refuse(out, why, ANM_TELEMETRY_NON_FINITE, i,
                          "sample %zu (signal %lu): value is not finite", i,
                          (unsigned long)s->signal_id);
        q += ANM_TELEMETRY_SAMPLE_BYTES;
    }
    out->count = count;
    accept_reason(why);
    return ANM_OK;
}

/* ---- JSON ---------------------------------------------------------------- */

json_t *anm_telemetry_to_json(const anm_telemetry_batch *batch)
{
    if (check_encodable(batch) != ANM_OK)
        return NULL;
    json_t *samples = json_array();
    json_t *body = json_pack("{s:i, s:s, s:I, s:I, s:i, s:o}", "v", ANM_TELEMETRY_VERSION, "kind",
                             ANM_TELEMETRY_TOPIC, "sender_id", (json_int_t)batch->sender_id, "seq",
                             (json_int_t)batch->seq, "flags", (int)batch->flags, "samples",
                             samples);
    if (body == NULL)
        return NULL; /* json_pack's "o" consumed samples */
    for (size_t i = 0; i < batch->count; i++) {
        const anm_telemetry_sample *s = &batch->samples[i];
        json_t *item = json_pack("[I, I, f, i]", (json_int_t)s->signal_id, (json_int_t)s->utc_ms,
                                 s->value, (int)s->quality);
        if (item == NULL || json_array_append_new(samples, item) != 0) {
            json_decref(body);
            return NULL;
        }
    }
    return body;
}

char *anm_telemetry_encode_json(const anm_telemetry_batch *batch, size_t *length)
{
    json_t *body = anm_telemetry_to_json(batch);
    if (body == NULL)
        return NULL;
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text != NULL && length != NULL)
        *length = strlen(text);
    return text;
}

static int json_sample(const json_t *item, size_t i, anm_telemetry_sample *s,
                       anm_telemetry_batch *out, anm_telemetry_reject *why)
{
    if (!json_is_array(item) || json_array_size(item) != 4)
        return refuse(out, why, ANM_TELEMETRY_BAD_FIELD, i,
                      "samples[%zu]: expected [signal_id, utc_ms, value, quality]", i);
    const json_t *id = json_array_get(item, 0);
    const json_t *t = json_array_get(item, 1);
    const json_t *value = json_array_get(item, 2);
    const json_t *quality = json_array_get(item, 3);
    if (!json_is_integer(id) || json_integer_value(id) < 0 ||
        json_integer_value(id) > (json_int_t)UINT32_MAX)
        return refuse(out, why, ANM_TELEMETRY_BAD_FIELD, i,
                      "samples[%zu][0]: signal_id must be an integer in [0, 4294967295]", i);
    if (!json_is_integer(t))
        return refuse(out, why, ANM_TELEMETRY_BAD_FIELD, i,
                      "samples[%zu][1]: utc_ms must be an integer", i);
    if (!json_is_number(value))
        return refuse(out, why, ANM_TELEMETRY_BAD_FIELD, i,
                      "samples[%zu][2]: value must be a number", i);
    if (!json_is_integer(quality) || json_integer_value(quality) < 0 ||
        json_integer_value(quality) > 65535)
        return refuse(out, why, ANM_TELEMETRY_BAD_FIELD, i,
                      "samples[%zu][3]: quality must be an integer in [0, 65535]", i);
    s->signal_id = (uint32_t)json_integer_value(id);
    s->utc_ms = (int64_t)json_integer_value(t);
    s->value = json_number_value(value);
    s->quality = (uint16_t)json_integer_value(quality);
    if (!isfinite(s->value))
        return refuse(out, why, ANM_TELEMETRY_NON_FINITE, i,
                      "sample %zu (signal %lu): value is not finite", i,
                      (unsigned long)s->signal_id);
    return ANM_OK;
}

int anm_telemetry_decode_json(const void *text, size_t size, const anm_telemetry_limits *limits,
                              anm_telemetry_batch *out, anm_telemetry_reject *why)
{
    size_t max_samples = max_samples_of(limits);
    size_t max_bytes = limits != NULL && limits->max_bytes > 0 ? limits->max_bytes
                                                               : 64 * max_samples + 1024;
    anm_bus_reject bus_why;
    json_t *body = NULL;
    int rc;
    out->count = 0;
    if (why != NULL)
        why->have_header = 0;
    if (size > max_bytes)
        return refuse(out, why, ANM_TELEMETRY_OVERSIZED, 0,
                      "body of %zu bytes exceeds the limit of %zu", size, max_bytes);
    rc = anm_bus_parse_json(NULL, 0, ANM_TELEMETRY_TOPIC, strlen(ANM_TELEMETRY_TOPIC), text, size,
                            &body, NULL, &bus_why);
    if (rc == ANM_ENOMEM)
        return rc;
    if (rc != ANM_OK) {
        anm_telemetry_reason reason = ANM_TELEMETRY_BAD_FIELD;
        if (bus_why.reason == ANM_BUS_BAD_JSON)
            reason = ANM_TELEMETRY_BAD_JSON;
        else if (bus_why.reason == ANM_BUS_WRONG_VERSION)
            reason = ANM_TELEMETRY_BAD_VERSION;
        else if (bus_why.reason == ANM_BUS_OVERSIZED)
            reason = ANM_TELEMETRY_OVERSIZED;
        return refuse(out, why, reason, 0, "%s", bus_why.text);
    }
    const json_t *samples = json_object_get(body, "samples");
    const json_t *flags = json_object_get(body, "flags");
    out->sender_id = (uint32_t)json_integer_value(json_object_get(body, "sender_id"));
    out->seq = (uint64_t)json_integer_value(json_object_get(body, "seq"));
    out->flags = flags != NULL ? (uint8_t)json_integer_value(flags) : 0;
    if (why != NULL)
        why->have_header = 1;
    size_t count = json_array_size(samples);
    if ((out->flags & ~ANM_TELEMETRY_FLAG_RESEND) != 0) {
        rc = refuse(out, why, ANM_TELEMETRY_BAD_FLAGS, 0, "flags 0x%02x has unknown bits set",
                    out->flags);
        goto free_body;
    }
    if (count == 0 || count > max_samples) {
        rc = refuse(out, why, ANM_TELEMETRY_BAD_COUNT, 0, "sample count %zu is outside [1, %zu]",
                    count, max_samples);
        goto free_body;
    }
    rc = anm_telemetry_batch_reserve(out, count);
    if (rc != ANM_OK)
        goto free_body;
    for (size_t i = 0; i < count; i++) {
        rc = json_sample(json_array_get(samples, i), i, &out->samples[i], out, why);
        if (rc != ANM_OK)
            goto free_body;
    }
    out->count = count;
    accept_reason(why);
free_body:
    json_decref(body);
    return rc;
}

int anm_telemetry_decode_any(const void *data, size_t size, const anm_telemetry_limits *limits,
                             anm_telemetry_batch *out, anm_telemetry_reject *why)
{
    const uint8_t *p = data;
    size_t i = 0;
    while (i < size && i < 16 && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    if (i < size && p[i] == '{')
        return anm_telemetry_decode_json(data, size, limits, out, why);
    return anm_telemetry_decode(data, size, limits, out, why);
}

/* ---- replies ------------------------------------------------------------- */

json_t *anm_telemetry_ack_json(uint32_t sender_id, uint64_t seq, size_t count)
{
    return json_pack("{s:i, s:s, s:I, s:I, s:I}", "v", 1, "kind", "telemetry.ack", "sender_id",
                     (json_int_t)sender_id, "seq", (json_int_t)seq, "count", (json_int_t)count);
}

json_t *anm_telemetry_reject_json(int have_header, uint32_t sender_id, uint64_t seq,
                                  const char *code, const char *text)
{
    json_t *body = json_pack("{s:i, s:s, s:s, s:s}", "v", 1, "kind", "telemetry.reject", "code",
                             code, "text", text);
    if (body == NULL || !have_header)
        return body;
    if (json_object_set_new(body, "sender_id", json_integer((json_int_t)sender_id)) != 0 ||
        json_object_set_new(body, "seq", json_integer((json_int_t)seq)) != 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}
