/*
 * spool.h: a durable, ordered on-disk queue of named entries (one file per
 * entry) for the gateway's store-and-forward routes: the Data Concentrator
 * uploads, the MQTT publisher's buffer and the MQTT subscriber's receive
 * journal.
 *
 * Layout of a spool directory (all state is derivable from it):
 *   <dir>/<seq>_<name>            a pending entry; seq is 20 decimal digits,
 *                                 so name order is arrival order
 *   <dir>/.tmp-<seq>_<name>       an entry being written (removed on open:
 *                                 a crash mid-write leaves nothing half-made)
 *   <dir>/parked/<seq>_<name>     entries taken out of the queue (permanent
 *                                 failures), kept for an operator
 *
 * Writes are atomic: write the temporary file, fsync it, rename it into
 * place, fsync the directory. Removal and parking fsync the directory too,
 * so after a crash (kill -9 or power loss) an entry is either fully present
 * or absent, and a removed entry never comes back.
 *
 * One spool object per directory and process; not thread-safe.
 */
#ifndef GATEWAY_SPOOL_H
#define GATEWAY_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

#define GATEWAY_SPOOL_NAME_MAX 200

typedef struct gateway_spool gateway_spool;

/* One pending entry: its sequence number and its name (without the seq prefix). */
typedef struct gateway_spool_entry {
    uint64_t seq;
    char name[GATEWAY_SPOOL_NAME_MAX + 1];
} gateway_spool_entry;

/*
 * Opens (creating if needed, mode 0700) the spool in dir and its parked/
 * subdirectory, removes leftover temporary files and indexes the pending
 * entries. ANM_OK, ANM_EIO (with detail naming the path and errno text),
 * ANM_ENOMEM.
 */
int gateway_spool_open(const char *dir, gateway_spool **out, anm_error_detail *detail);

/* Closes the spool (the files stay). Idempotent; nulls *spool. */
void gateway_spool_close(gateway_spool **spool);

/* The directory (borrowed). */
const char *gateway_spool_dir(const gateway_spool *spool);

/*
 * Adds an entry with the next sequence number. name must be 1..200 bytes of
 * [A-Za-z0-9._-] (it becomes part of a file name). *seq_out (may be NULL)
 * gets the sequence number. Durable when this returns ANM_OK. ANM_EINVAL
 * (bad name), ANM_EIO.
 */
int gateway_spool_put(gateway_spool *spool, const char *name, const void *data, size_t size,
                      uint64_t *seq_out);

/* Number of pending entries. */
size_t gateway_spool_count(const gateway_spool *spool);

/*
 * The i-th pending entry, oldest first (i < count), copied into *out.
 * ANM_OK or ANM_ENOTFOUND.
 */
int gateway_spool_at(const gateway_spool *spool, size_t i, gateway_spool_entry *out);

/* The pending entry with sequence number seq. ANM_OK or ANM_ENOTFOUND. */
int gateway_spool_find(const gateway_spool *spool, uint64_t seq, gateway_spool_entry *out);

/*
 * Reads an entry's contents into a new buffer (free(); NUL-terminated for
 * convenience, *size excludes the NUL). ANM_OK, ANM_ENOTFOUND, ANM_EIO, ANM_ENOMEM.
 */
int gateway_spool_read(const gateway_spool *spool, uint64_t seq, char **data, size_t *size);

/* Deletes a pending entry durably. ANM_OK, ANM_ENOTFOUND, ANM_EIO. */
int gateway_spool_remove(gateway_spool *spool, uint64_t seq);

/* Moves a pending entry to parked/ durably. ANM_OK, ANM_ENOTFOUND, ANM_EIO. */
int gateway_spool_park(gateway_spool *spool, uint64_t seq);

/* Number of parked entries (counted on the directory). */
size_t gateway_spool_parked_count(const gateway_spool *spool);

/*
 * Moves every parked entry back into the queue, in its original place by
 * sequence number (after an operator fixed the cause). *moved (may be NULL)
 * gets how many. ANM_OK or ANM_EIO.
 */
int gateway_spool_requeue_parked(gateway_spool *spool, size_t *moved);

/*
 * Writes data to path atomically (temp file in the same directory, fsync,
 * rename, fsync of the directory). Used for small state files. ANM_OK or ANM_EIO.
 */
int gateway_write_file_atomic(const char *path, const void *data, size_t size);

#endif
