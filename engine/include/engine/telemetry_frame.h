/*
 * telemetry_frame.h: the telemetry batch codecs of the bus, a compact binary
 * frame for the hot path and a JSON form for the edges and debugging, with
 * a strict decoder for each. docs/protocol.md describes both byte for byte.
 *
 * Binary frame v1, all integers little-endian, floats IEEE 754 binary64:
 *
 *   offset size field
 *        0    4 magic      "ANMT" (0x41 0x4e 0x4d 0x54)
 *        4    1 version    1
 *        5    1 flags      bit 0: resend (the sender sent this batch before);
 *                          other bits must be 0
 *        6    2 reserved   0
 *        8    4 sender_id  u32
 *       12    8 seq        u64 batch sequence number of the sender, < 2^63
 *       20    4 count      u32 number of samples, 1..max_samples
 *       24 22*n samples    u32 signal_id (registry id), i64 utc_ms,
 *                          f64 value (finite), u16 quality (opaque here)
 *  24+22*n    4 crc32c     CRC-32C (Castagnoli) of bytes [0, 24+22*n)
 *
 * JSON form (message kind "telemetry.batch", v 1):
 *   {"v":1,"kind":"telemetry.batch","sender_id":7,"seq":42,"flags":0,
 *    "samples":[[signal_id, utc_ms, value, quality], ...]}
 *
 * Both travel as [topic "telemetry.batch"][body]; the decoder tells them
 * apart by the first byte ('A' of the magic vs '{').
 */
#ifndef ANM_ENGINE_TELEMETRY_FRAME_H
#define ANM_ENGINE_TELEMETRY_FRAME_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define ANM_TELEMETRY_TOPIC "telemetry.batch"
#define ANM_TELEMETRY_VERSION 1
#define ANM_TELEMETRY_HEADER_BYTES 24
#define ANM_TELEMETRY_SAMPLE_BYTES 22
#define ANM_TELEMETRY_TRAILER_BYTES 4
#define ANM_TELEMETRY_FLAG_RESEND 0x01u
#define ANM_TELEMETRY_DEFAULT_MAX_SAMPLES 100000

typedef struct anm_telemetry_sample {
    uint32_t signal_id;
    int64_t utc_ms;
    double value;
    uint16_t quality;
} anm_telemetry_sample;

/*
 * A batch: header fields and a growable sample array owned by the batch.
 * Initialise with anm_telemetry_batch_init, release with _free; decoding into
 * the same batch again reuses its array.
 */
typedef struct anm_telemetry_batch {
    uint32_t sender_id;
    uint64_t seq;
    uint8_t flags;
    size_t count;
    anm_telemetry_sample *samples;
    size_t capacity;
} anm_telemetry_batch;

void anm_telemetry_batch_init(anm_telemetry_batch *batch);
void anm_telemetry_batch_free(anm_telemetry_batch *batch);
/* Ensures room for n samples. ANM_OK or ANM_ENOMEM. */
int anm_telemetry_batch_reserve(anm_telemetry_batch *batch, size_t n);
/* Appends a sample. ANM_OK or ANM_ENOMEM. */
int anm_telemetry_batch_push(anm_telemetry_batch *batch, uint32_t signal_id, int64_t utc_ms,
                             double value, uint16_t quality);

/* Why a frame was refused; anm_telemetry_reason_code gives the wire code. */
typedef enum anm_telemetry_reason {
    ANM_TELEMETRY_OK = 0,
    ANM_TELEMETRY_TRUNCATED,    /* "truncated": shorter than header+trailer or than count says */
    ANM_TELEMETRY_OVERSIZED,    /* "oversized": more bytes than max_bytes */
    ANM_TELEMETRY_BAD_MAGIC,    /* "bad_magic": neither "ANMT" nor a JSON object */
    ANM_TELEMETRY_BAD_VERSION,  /* "bad_version" */
    ANM_TELEMETRY_BAD_FLAGS,    /* "bad_flags": reserved flag bits or reserved bytes set */
    ANM_TELEMETRY_BAD_COUNT,    /* "bad_count": 0 samples or more than max_samples */
    ANM_TELEMETRY_BAD_LENGTH,   /* "bad_length": bytes left over after count samples */
    ANM_TELEMETRY_BAD_CHECKSUM, /* "bad_checksum" */
    ANM_TELEMETRY_BAD_SEQ,      /* "bad_seq": sequence number >= 2^63 */
    ANM_TELEMETRY_NON_FINITE,   /* "non_finite": a NaN or infinite value */
    ANM_TELEMETRY_BAD_JSON,     /* "bad_json": JSON syntax */
    ANM_TELEMETRY_BAD_FIELD     /* "bad_field": JSON schema (missing field, wrong type, range) */
} anm_telemetry_reason;

const char *anm_telemetry_reason_code(anm_telemetry_reason reason);

typedef struct anm_telemetry_reject {
    anm_telemetry_reason reason;
    int have_header;     /* 1 if out->sender_id and out->seq were read reliably
                            (checksum passed, or JSON fields valid): reply with them */
    size_t sample_index; /* for per-sample reasons (non_finite, bad_field in a sample) */
    char text[256];      /* e.g. "sample 3: value is not finite" */
} anm_telemetry_reject;

/* Decoder limits; zero fields take the defaults (100,000 samples; the frame
 * size of that many samples, or 64 bytes a sample for JSON). */
typedef struct anm_telemetry_limits {
    size_t max_samples;
    size_t max_bytes;
} anm_telemetry_limits;

/* Bytes of a binary frame of count samples. */
size_t anm_telemetry_frame_size(size_t count);

/* CRC-32C (Castagnoli, reflected, init and final xor 0xffffffff) of data. */
uint32_t anm_crc32c(const void *data, size_t size);

/*
 * Encodes batch into buf (size >= anm_telemetry_frame_size(batch->count)).
 * *written (may be NULL) gets the frame size. ANM_OK, ANM_ERANGE (buf too
 * small), ANM_EINVAL (no samples, a non-finite value, seq >= 2^63, unknown
 * flags, or more than UINT32_MAX samples).
 */
int anm_telemetry_encode(const anm_telemetry_batch *batch, void *buf, size_t size,
                         size_t *written);

/*
 * Decodes a binary frame into out (its samples array reused). ANM_OK, or
 * ANM_EPROTO with why filled (why may be NULL; out then holds no samples),
 * or ANM_ENOMEM. limits may be NULL.
 */
int anm_telemetry_decode(const void *data, size_t size, const anm_telemetry_limits *limits,
                         anm_telemetry_batch *out, anm_telemetry_reject *why);

/* The JSON form of batch (a new reference) or NULL (ENOMEM, or EINVAL as encode). */
json_t *anm_telemetry_to_json(const anm_telemetry_batch *batch);

/* Serialises the JSON form compactly; a new string (free()) or NULL. */
char *anm_telemetry_encode_json(const anm_telemetry_batch *batch, size_t *length);

/* Decodes the JSON form from text (not NUL-terminated), as anm_telemetry_decode. */
int anm_telemetry_decode_json(const void *text, size_t size, const anm_telemetry_limits *limits,
                              anm_telemetry_batch *out, anm_telemetry_reject *why);

/* Decodes either form, told apart by the first byte. */
int anm_telemetry_decode_any(const void *data, size_t size, const anm_telemetry_limits *limits,
                             anm_telemetry_batch *out, anm_telemetry_reject *why);

/*
 * The ack and reject replies (control messages, topics "telemetry.ack" and
 * "telemetry.reject"; new references or NULL on ENOMEM).
 *   ack:    {"v":1,"kind":"telemetry.ack","sender_id":7,"seq":42,"count":500}
 *   reject: {"v":1,"kind":"telemetry.reject","sender_id":7,"seq":42,
 *            "code":"bad_checksum","text":"..."}
 * For a frame too broken to read its header, pass have_header = 0: the
 * reject then carries no sender_id and seq. code is a reason code of this
 * file or a service's own ("unknown_signal", "journal_full", ...).
 */
json_t *anm_telemetry_ack_json(uint32_t sender_id, uint64_t seq, size_t count);
json_t *anm_telemetry_reject_json(int have_header, uint32_t sender_id, uint64_t seq,
                                  const char *code, const char *text);

#endif
