/*
 * dedupe.h: the two cheap duplicate checks of the ingest service.
 *
 * Sender windows: for each sender id, the highest batch sequence number
 * seen and a bitmap of the INGEST_SEQ_WINDOW numbers up to it. A batch
 * whose seq is in the bitmap was journaled before (a resend: ack it, store
 * nothing); one below the window is too old to tell and is refused
 * ("stale_seq"). The service keeps two copies: the journaled one (main
 * thread) and the committed one (writer thread), which the writer stores
 * in ingest_senders in the same transaction as the rows.
 *
 * Recent samples: a set of (signal, time) pairs over the last 2^n to 2^(n+1)
 * distinct samples (two generations of open-addressing tables; when the
 * current one is half full the older one is dropped), so a sample that
 * arrives again in another batch shortly after is stored once.
 */
#ifndef INGEST_DEDUPE_H
#define INGEST_DEDUPE_H

#include <stddef.h>
#include <stdint.h>

#define INGEST_SEQ_WINDOW 1024
#define INGEST_SEQ_WINDOW_BYTES (INGEST_SEQ_WINDOW / 8)

typedef struct ingest_sender_window {
    uint32_t sender_id;
    uint64_t max_seq;
    uint64_t bits[INGEST_SEQ_WINDOW / 64];
} ingest_sender_window;

typedef enum ingest_seq_state { INGEST_SEQ_NEW = 0, INGEST_SEQ_SEEN = 1, INGEST_SEQ_STALE = 2 } ingest_seq_state;

typedef struct ingest_senders ingest_senders;

ingest_senders *ingest_senders_new(void); /* NULL on ENOMEM */
void ingest_senders_destroy(ingest_senders **s);
ingest_seq_state ingest_senders_check(const ingest_senders *s, uint32_t sender_id, uint64_t seq);
/* Marks seq seen. ANM_OK or ANM_ENOMEM. */
int ingest_senders_mark(ingest_senders *s, uint32_t sender_id, uint64_t seq);
/* The window of sender_id (borrowed) or NULL. */
const ingest_sender_window *ingest_senders_find(const ingest_senders *s, uint32_t sender_id);
/* Sets a whole window (loading from the database). ANM_OK or ANM_ENOMEM. */
int ingest_senders_put(ingest_senders *s, const ingest_sender_window *w);
size_t ingest_senders_count(const ingest_senders *s);
const ingest_sender_window *ingest_senders_at(const ingest_senders *s, size_t i);

/* The bitmap as bytes (INGEST_SEQ_WINDOW_BYTES, bit i%8 of byte i/8 for seq%WINDOW == i). */
void ingest_sender_window_to_bytes(const ingest_sender_window *w, unsigned char *out);
void ingest_sender_window_from_bytes(ingest_sender_window *w, const unsigned char *in);

typedef struct ingest_recent ingest_recent;

/* 2^log2_slots slots per generation (10..24). NULL on ENOMEM. */
ingest_recent *ingest_recent_new(int log2_slots);
void ingest_recent_destroy(ingest_recent **r);
/* Inserts (signal, utc_ms): 1 if it was new, 0 if already present. */
int ingest_recent_insert(ingest_recent *r, uint32_t signal, int64_t utc_ms);
/* Forgets (signal, utc_ms) (undoing an insert whose batch was refused). */
void ingest_recent_remove(ingest_recent *r, uint32_t signal, int64_t utc_ms);

#endif
