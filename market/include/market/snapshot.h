/*
 * snapshot.h: the snapshot file of anm-market (docs/market-protocol.md,
 * "Snapshots"): the books (market_snapshot_save) with the service's replay
 * state, so that recovery and `anm-market replay` read the snapshot and
 * then only the journal written after it.
 *
 * File: "ANMMSNP1", then little-endian u64 fields id, base_mark,
 * covered_bytes, digest, trades, events, last_event_ms, config_size, the config bytes,
 * n_orders, the order ids (u64 each), market_size, the market dump, and a
 * u32 CRC-32C of everything before it. Written to PATH.tmp, synced, then
 * renamed over PATH (and the directory synced): a reader sees the old or
 * the new snapshot, never a mix.
 */
#ifndef MARKET_SNAPSHOT_H
#define MARKET_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

typedef struct market_snapshot_file {
    uint64_t id;            /* events applied when it was taken; the journal after it says so */
    uint64_t base_mark;     /* the snapshot id the journal it covers continued (0: none) */
    uint64_t covered_bytes; /* size of that journal when the snapshot was taken */
    uint64_t digest, trades, events; /* replay state (service.c) */
    int64_t last_event_ms;  /* engine time of the latest event before it */
    const uint8_t *config;  /* the journal's CONFIG record payload bytes */
    size_t config_size;
    const uint64_t *order_ids; /* ids that may rest, ascending */
    size_t n_orders;
    const uint8_t *market;  /* market_snapshot_save output */
    size_t market_size;
    void *owned_;           /* read: the file's bytes (config and market point into them) */
} market_snapshot_file;

/* Writes s to path atomically. ANM_OK, ANM_EIO, ANM_ENOMEM. */
int market_snapshot_file_write(const char *path, const market_snapshot_file *s);

/*
 * Reads path into *out (views into a buffer it owns; release with
 * market_snapshot_file_free). ANM_OK, ANM_ENOTFOUND (no file), ANM_EIO,
 * ANM_EPARSE (bad magic, length or CRC), ANM_ENOMEM.
 */
int market_snapshot_file_read(const char *path, market_snapshot_file *out);
void market_snapshot_file_free(market_snapshot_file *s);

#endif
