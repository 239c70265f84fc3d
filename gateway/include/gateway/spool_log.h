/*
 * spool_log.h: a durable, ordered queue of small records with group commit,
 * for the MQTT publisher's buffer (one record per sample, thousands a
 * second). The file-per-entry spool of spool.h stays for the Data
 * Concentrator, whose unit is a whole file.
 *
 * Layout of a log directory:
 *   <dir>/seg-<20-digit first seq>.log  segments of records, appended in order
 *   <dir>/head                          the acknowledged watermark (two
 *                                       alternating CRC-checked slots)
 * A record is: u32 size, u32 CRC-32 (of the seq and the data), u64 seq (all
 * little-endian), then size bytes of data. Sequence numbers are contiguous.
 *
 * Guarantees:
 * - append writes the record to the segment with one write(2) before it
 *   returns, so a kill -9 of the process never loses it; sync makes every
 *   appended record durable against power loss with one fdatasync (group
 *   commit). Only synced records are handed to the reader, so nothing can
 *   be acknowledged by a peer before it is on disk.
 * - The reader hands records out oldest first; ack marks one done (in any
 *   order); the watermark advances over the contiguous acknowledged prefix
 *   and commit persists it (one fdatasync) and deletes segments wholly
 *   below it. A record is dropped only after its ack; after a crash the
 *   records above the last committed watermark come back in order (at least
 *   once).
 * - A torn record at a segment's tail (crash mid-write, power loss) fails
 *   its CRC and is cut off on open.
 *
 * One object per directory and process; not thread-safe.
 */
#ifndef GATEWAY_SPOOL_LOG_H
#define GATEWAY_SPOOL_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

/* Largest record accepted by append. */
#define GATEWAY_SPOOL_LOG_RECORD_MAX (1024u * 1024u)

typedef struct gateway_spool_log gateway_spool_log;

/*
 * Opens (creating if needed, mode 0700) the log in dir, checks every record
 * above the watermark, cuts a torn tail and positions the reader at the
 * oldest unacknowledged record. segment_bytes is the size at which a new
 * segment is started (0: 8 MiB). ANM_OK, ANM_EIO (detail names the path),
 * ANM_ENOMEM.
 */
int gateway_spool_log_open(const char *dir, size_t segment_bytes, gateway_spool_log **out,
                           anm_error_detail *detail);

/* Syncs, commits the watermark and closes. Idempotent; nulls *log. */
void gateway_spool_log_close(gateway_spool_log **log);

/*
 * Appends a record (1..GATEWAY_SPOOL_LOG_RECORD_MAX bytes); *seq_out (may
 * be NULL) gets its sequence number. Written on return, durable after the
 * next sync. ANM_OK, ANM_EINVAL (size), ANM_EIO.
 */
int gateway_spool_log_append(gateway_spool_log *log, const void *data, size_t size,
                             uint64_t *seq_out);

/* Makes every appended record durable (one fdatasync if any is new) and readable. ANM_OK or ANM_EIO. */
int gateway_spool_log_sync(gateway_spool_log *log);

/* Records appended and not yet acknowledged (synced or not). */
size_t gateway_spool_log_pending(const gateway_spool_log *log);

/* Appended records not yet synced. */
size_t gateway_spool_log_unsynced(const gateway_spool_log *log);

/*
 * The next synced record after the reader's position, copied into a new
 * buffer (free(); NUL-terminated, *size excludes the NUL). ANM_OK,
 * ANM_ENOTFOUND (nothing more is readable), ANM_EIO, ANM_ENOMEM.
 */
int gateway_spool_log_next(gateway_spool_log *log, char **data, size_t *size, uint64_t *seq);

/*
 * Marks a record handed out by next as done. ANM_OK, or ANM_ENOTFOUND when
 * seq is not outstanding (already acknowledged, or handed out before a rewind).
 */
int gateway_spool_log_ack(gateway_spool_log *log, uint64_t seq);

/* Sets the reader back to the oldest unacknowledged record (after a lost connection). */
void gateway_spool_log_rewind(gateway_spool_log *log);

/*
 * Persists the watermark if it moved (one fdatasync) and deletes segments
 * whose records are all acknowledged. ANM_OK or ANM_EIO.
 */
int gateway_spool_log_commit(gateway_spool_log *log);

/* The acknowledged watermark: every record with seq <= it is done. */
uint64_t gateway_spool_log_acked_seq(const gateway_spool_log *log);

/* Number of segment files. */
size_t gateway_spool_log_segments(const gateway_spool_log *log);

#endif
