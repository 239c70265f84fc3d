/*
 * journal.h: the ingest service's local write-ahead journal.
 *
 * The journal is one logical byte stream split into segment files
 * "seg-<16 hex digits>.jnl" in one directory; the digits are the stream
 * position of the segment's first byte. A record is
 *
 *     u32 length (little-endian, payload bytes, 1..INGEST_JOURNAL_MAX_RECORD)
 *     u32 crc32c of the payload (little-endian)
 *     payload (a binary telemetry frame, engine/telemetry_frame.h)
 *
 * and a record's position is the stream offset of its first byte. A segment
 * is closed (synced) when the next record would take it past segment_bytes,
 * and the next one starts at the old one's end, so positions are contiguous.
 *
 * Lifecycle: ingest_journal_open(committed) -> append... sync -> (another
 * thread) reader from the committed position up to ingest_journal_durable ->
 * ingest_journal_set_committed deletes whole segments below the committed
 * position -> ingest_journal_close.
 *
 * Invariants: bytes below the durable position are on disk (fdatasync);
 * appends fail with ANM_EFULL when appended - committed would exceed
 * max_bytes; open truncates a torn or corrupt tail (it was never synced,
 * hence never acknowledged), logging what it dropped.
 *
 * Diagnostics: sync times each fdatasync; a second whose slowest took
 * >= 100 ms is logged at info (others at debug), and close logs the latency
 * histogram (docs/ingest.md "Diagnostics").
 *
 * Threads: one appender thread (append, sync) and any number of readers;
 * set_committed and the position getters are thread-safe.
 */
#ifndef INGEST_JOURNAL_H
#define INGEST_JOURNAL_H

#include "engine/error.h"

#include <stddef.h>
#include <stdint.h>

#define INGEST_JOURNAL_HEADER_BYTES 8
#define INGEST_JOURNAL_MAX_RECORD (16u * 1024u * 1024u)

typedef struct ingest_journal ingest_journal;
typedef struct ingest_journal_reader ingest_journal_reader;

typedef struct ingest_journal_options {
    const char *dir;        /* created if absent */
    uint64_t segment_bytes; /* roll segments at this size (default 64 MiB) */
    uint64_t max_bytes;     /* bound of appended - committed (default 1 GiB) */
} ingest_journal_options;

/*
 * Parses one record at the start of data. ANM_OK: *payload (borrowed, inside
 * data) and *payload_size are set and *record_size is the record's length;
 * ANM_EAGAIN: data holds only part of a record; ANM_EPROTO: a zero or too
 * large length, or a checksum mismatch (why, may be NULL, says which).
 */
int ingest_journal_record_parse(const void *data, size_t size, const void **payload,
                                size_t *payload_size, size_t *record_size, char *why,
                                size_t why_size);

/* Writes the 8-byte header of a record of payload into header. */
void ingest_journal_record_header(const void *payload, size_t size,
                                  unsigned char header[INGEST_JOURNAL_HEADER_BYTES]);

/*
 * Opens (creating) the journal in options->dir, whose contents below
 * committed were stored by the database already: segments entirely below it
 * are deleted, the rest is scanned and a bad tail truncated. ANM_OK,
 * ANM_EIO (detail says which file), ANM_ENOMEM, ANM_EINVAL.
 */
int ingest_journal_open(const ingest_journal_options *options, uint64_t committed,
                        ingest_journal **out, anm_error_detail *detail);
/* Syncs and closes. Idempotent; nulls *journal. */
void ingest_journal_close(ingest_journal **journal);

/*
 * Appends one record (not yet durable). *end (may be NULL) gets the stream
 * position after it. ANM_OK, ANM_EFULL (the bound), ANM_EINVAL (size 0 or
 * above the record limit), ANM_EIO.
 */
int ingest_journal_append(ingest_journal *journal, const void *payload, size_t size,
                          uint64_t *end);
/* Makes every appended record durable (fdatasync). ANM_OK or ANM_EIO. */
int ingest_journal_sync(ingest_journal *journal);

/* Marks everything below position as stored; deletes whole segments below it. */
int ingest_journal_set_committed(ingest_journal *journal, uint64_t position);

uint64_t ingest_journal_appended(ingest_journal *journal); /* end of the last append */
uint64_t ingest_journal_durable(ingest_journal *journal);  /* end of the last sync */
uint64_t ingest_journal_committed(ingest_journal *journal);
/* 1 if a record of size payload bytes would be refused for the bound now. */
int ingest_journal_would_overflow(ingest_journal *journal, size_t size);
size_t ingest_journal_segments(ingest_journal *journal);

/*
 * A reader from position (a record boundary at or above the committed
 * position). next reads the record at the reader's position if it ends at
 * or below limit: ANM_OK with *payload (borrowed until the next call) and
 * *end (the position after it); ANM_EAGAIN if none before limit; ANM_EPROTO
 * (corrupt) or ANM_EIO.
 */
int ingest_journal_reader_new(ingest_journal *journal, uint64_t position,
                              ingest_journal_reader **out);
void ingest_journal_reader_destroy(ingest_journal_reader **reader);
int ingest_journal_reader_next(ingest_journal_reader *reader, uint64_t limit, const void **payload,
                               size_t *size, uint64_t *end);
/* Moves the reader back (or forward) to position, a record boundary. */
void ingest_journal_reader_seek(ingest_journal_reader *reader, uint64_t position);
uint64_t ingest_journal_reader_position(const ingest_journal_reader *reader);

#endif
