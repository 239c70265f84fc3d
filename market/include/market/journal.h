/*
 * journal.h: the append-only journal of anm-market (docs/market-protocol.md,
 * "Journal"): every accepted event, written before it is acknowledged, so a
 * restart or `anm-market replay` rebuilds the same books bit for bit.
 *
 * File format: a sequence of records
 *     u32 length (little endian) | u32 CRC-32C of the payload | payload
 * A record whose header or payload is cut short, or whose CRC does not
 * match, ends the journal: recovery truncates the file there (a torn tail
 * from a crash mid-write).
 *
 * Durability (group commit: the service appends every event of one poll
 * iteration, then commits once):
 *   MARKET_DURABILITY_PROCESS  commit write()s the group to the file (so it
 *       survives a crash of the process); a sync thread fdatasync()s
 *       whatever is written at least every millisecond
 *   MARKET_DURABILITY_POWER    commit write()s and fdatasync()s before it
 *       returns: the acks of the group wait for the disk
 *
 * Events (payload): one byte of type, then little-endian fields; see
 * market_event and journal.c. Not thread-safe except for the internal sync
 * thread.
 */
#ifndef MARKET_JOURNAL_H
#define MARKET_JOURNAL_H

#include "market/auction.h"
#include "market/market.h"

#include "engine/error.h"

#include <stddef.h>
#include <stdint.h>

#define MARKET_JOURNAL_MAX_RECORD (16u << 20)

typedef enum market_durability {
    MARKET_DURABILITY_PROCESS = 0,
    MARKET_DURABILITY_POWER = 1
} market_durability;

/* "process" / "power" and back. ANM_OK or ANM_EINVAL. */
const char *market_durability_name(market_durability durability);
int market_durability_parse(const char *text, market_durability *out);

typedef struct market_journal market_journal;

/* CRC-32C (Castagnoli) of data, as in the record header. */
uint32_t market_crc32c(const void *data, size_t size);

/*
 * Reads the records of the journal at path in order, calling fn(context,
 * payload, size) for each valid one (a non-zero return stops the reading
 * with that value). *valid_bytes (may be NULL) gets the offset after the
 * last valid record and *torn_bytes (may be NULL) how many bytes follow it.
 * ANM_OK (a missing file is an empty journal), ANM_EIO, or fn's value.
 */
int market_journal_read(const char *path, int (*fn)(void *context, const uint8_t *payload,
                                                    size_t size),
                        void *context, uint64_t *valid_bytes, uint64_t *torn_bytes);

/*
 * Opens path for appending after valid_bytes (from market_journal_read; the
 * torn tail beyond it is truncated), creating it if missing. ANM_OK, ANM_EIO
 * (detail says why) or ANM_ENOMEM.
 */
int market_journal_open(const char *path, uint64_t valid_bytes, market_durability durability,
                        market_journal **out, anm_error_detail *detail);

/* Flushes, syncs and closes. Idempotent. */
void market_journal_destroy(market_journal **journal);

/* Appends one record (payload copied into the group buffer). ANM_OK, ANM_ERANGE, ANM_ENOMEM. */
int market_journal_append(market_journal *journal, const void *payload, size_t size);

/* Writes the group (and in power mode syncs it). ANM_OK or ANM_EIO. */
int market_journal_commit(market_journal *journal);

/* Bytes in the file (committed). */
uint64_t market_journal_size(const market_journal *journal);
/* fdatasync calls made so far (for tests and the benchmark). */
uint64_t market_journal_syncs(const market_journal *journal);

/* ---- events ------------------------------------------------------------ */

typedef enum market_event_type {
    MARKET_EVENT_CONFIG = 1,    /* the registry and market config (first record) */
    MARKET_EVENT_SUBMIT = 2,
    MARKET_EVENT_CANCEL = 3,
    MARKET_EVENT_REPLACE = 4,
    MARKET_EVENT_MODE = 5,
    MARKET_EVENT_STATEMENT = 6,
    MARKET_EVENT_AUCTION = 7,
    MARKET_EVENT_EXPIRE = 8,
    MARKET_EVENT_SNAPSHOT = 9   /* second record of a journal that continues a snapshot */
} market_event_type;

typedef struct market_event {
    market_event_type type;
    int64_t now_ms;
    market_order_spec spec;      /* submit, replace */
    uint32_t participant;        /* cancel */
    uint64_t order_id;           /* cancel, replace */
    market_product product;      /* mode, statement, auction, expire */
    market_mode mode;
    market_auction_config auction;
    /* statement: borrowed views into the payload */
    size_t n_constraints;
    double headroom_mw[MARKET_MAX_CONSTRAINTS];
    char names[MARKET_MAX_CONSTRAINTS][32];
    size_t n_sensitivities;
    const uint8_t *sensitivities; /* n x (u32 der, u16 constraint, f64 value) */
    uint64_t snapshot_id;        /* snapshot: the id of the snapshot this journal continues */
    /* config: borrowed view of the registry bytes */
    const uint8_t *config;
    size_t config_size;
} market_event;

/* A growable byte buffer for encoding events. */
typedef struct market_bytes {
    uint8_t *data;
    size_t size, capacity;
    int failed; /* set on ENOMEM: the buffer is then unusable */
} market_bytes;

void market_bytes_reset(market_bytes *b);
void market_bytes_free(market_bytes *b);
void market_bytes_u8(market_bytes *b, uint8_t v);
void market_bytes_u16(market_bytes *b, uint16_t v);
void market_bytes_u32(market_bytes *b, uint32_t v);
void market_bytes_u64(market_bytes *b, uint64_t v);
void market_bytes_f64(market_bytes *b, double v);
void market_bytes_raw(market_bytes *b, const void *data, size_t size);

/* Encoders: reset b and write one event payload. ANM_OK or ANM_ENOMEM. */
int market_event_encode_submit(market_bytes *b, int64_t now_ms, const market_order_spec *spec);
int market_event_encode_cancel(market_bytes *b, int64_t now_ms, uint32_t participant,
                               uint64_t order_id);
int market_event_encode_replace(market_bytes *b, int64_t now_ms, uint64_t order_id,
                                const market_order_spec *spec);
int market_event_encode_mode(market_bytes *b, int64_t now_ms, market_product product,
                             market_mode mode);
int market_event_encode_statement(market_bytes *b, int64_t now_ms, market_product product,
                                  size_t n_constraints, const double *headroom_mw,
                                  const char (*names)[32], size_t n_sensitivities,
                                  const uint32_t *der, const uint16_t *constraint,
                                  const double *sensitivity);
/* config: an opaque registry description (service.c writes and reads it). */
int market_event_encode_config(market_bytes *b, const void *config, size_t size);
int market_event_encode_auction(market_bytes *b, int64_t now_ms, market_product product,
                                const market_auction_config *config);
int market_event_encode_snapshot(market_bytes *b, uint64_t snapshot_id);

/* Decodes a payload (views borrow it). ANM_OK or ANM_EPARSE. */
int market_event_decode(const uint8_t *payload, size_t size, market_event *out);

/* The statement of a decoded statement event (new). NULL on ENOMEM or bad values. */
market_statement *market_event_statement(const market_event *event);

#endif
