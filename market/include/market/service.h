/*
 * service.h: the anm-market service (docs/market-protocol.md): a ROUTER for
 * participants and the gateway (CURVE, a ZAP handler mapping client keys to
 * participants), a PUB for market data, the journal with group commit, and
 * recovery and replay from the journal.
 */
#ifndef MARKET_SERVICE_H
#define MARKET_SERVICE_H

#include "market/journal.h"
#include "market/market.h"

#include "engine/error.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MARKET_SERVICE_MAX_FILES 16

typedef struct market_service_config {
    const char *zone_paths[MARKET_SERVICE_MAX_FILES]; /* zone files (engine/zone.h) */
    size_t n_zone_paths;
    const char *participants_path;   /* participants file (docs/market-protocol.md) */
    const char *keys_dir;            /* server.secret and authorized_keys */
    const char *router_endpoint;     /* e.g. "tcp://127.0.0.1:*" */
    const char *pub_endpoint;        /* e.g. "tcp://127.0.0.1:*" */
    const char *journal_path;
    market_durability durability;
    const char *clock_spec;          /* "real", "step:...", "sim:..." */
    int64_t gate_closure_offset_ms;  /* default 3600000 */
    market_mode initial_mode;        /* default call */
    const char *statement_paths[MARKET_SERVICE_MAX_FILES]; /* applied on a fresh journal */
    size_t n_statement_paths;
    const char *confidence;          /* "p10" (default), "p50" or "p90" headroom */
    const char *ready_file;          /* written with the bound endpoints once serving */
    size_t batch_max;                /* requests per group commit (default 4096) */
    uint64_t snapshot_every;         /* events between snapshots (default 10^6; 0: never) */
    const char *statement_endpoint;  /* SUB for the forecast's statements, or NULL */
    const char *statement_topic;     /* default "constraint.statement" */
    int auto_auction;                /* 1: auction each product at its gate closure */
    market_pricing auction_pricing;  /* of the gate-closure auctions (default pay as bid) */
    int auction_pro_rata;
    int64_t auction_check_ms;        /* engine ms between gate-closure checks (default 1000) */
    const char *db_conninfo;         /* store auctions and trades in PostgreSQL, or NULL */
    int64_t spin_us;                 /* busy poll after each batch (anm_reactor_set_spin_us);
                                        default MARKET_SERVICE_DEFAULT_SPIN_US, 0: off */
    size_t reserve_orders;           /* market_reserve at start-up (default
                                        MARKET_SERVICE_DEFAULT_RESERVE_ORDERS; 0: none) */
} market_service_config;

#define MARKET_SERVICE_DEFAULT_SPIN_US 300
#define MARKET_SERVICE_DEFAULT_RESERVE_ORDERS 100000

void market_service_config_default(market_service_config *config);

/* Runs until SIGINT/SIGTERM. ANM_OK, or an error with detail filled. */
int market_service_run(const market_service_config *config, anm_error_detail *detail);

/*
 * Re-runs every event of the journal at path on a fresh market (the
 * registry and config come from its first record) and prints to out one
 * line per auction and a final line
 *     digest=<16 hex> events=N trades=N resting=N
 * The digest (FNV-1a 64) covers every trade, every auction result and the
 * resting orders at the end: a recovered service and a replay print the
 * same digest. ANM_OK, ANM_EIO, ANM_EPARSE (a bad record), ANM_ENOMEM.
 */
int market_replay(const char *path, FILE *out, uint64_t *digest);

/* ---- keys and ZAP (zap.c) ------------------------------------------------ */

/* A participant's public key (Z85, 40 chars) as listed in authorized_keys. */
typedef struct market_key {
    char participant[64];
    char public_z85[41];
} market_key;

/*
 * Reads DIR/authorized_keys: one "participant Z85-public-key" per line, '#'
 * comments. *keys is new (free()). ANM_OK, ANM_EIO, ANM_EPARSE (detail has
 * the line).
 */
int market_keys_load(const char *dir, market_key **keys, size_t *n_keys,
                     anm_error_detail *detail);
/* Writes DIR/authorized_keys atomically (temporary file and rename). */
int market_keys_save(const char *dir, const market_key *keys, size_t n_keys);

/*
 * Reads a key file written by `anm market keys generate` (lines
 * "public Z85" and "secret Z85"). secret may be NULL. ANM_OK, ANM_EIO, ANM_EPARSE.
 */
int market_keyfile_read(const char *path, char public_z85[41], char secret_z85[41]);
/* Writes a key file with mode 0600. ANM_OK, ANM_EIO, ANM_EDUP (exists). */
int market_keyfile_write(const char *path, const char *public_z85, const char *secret_z85);

/*
 * Answers every ZAP request waiting on zap_handle (a raw libzmq ROUTER bound
 * to inproc://zeromq.zap.01): CURVE clients whose key is in keys get 200
 * with User-Id = participant id, everyone else 400. Returns how many
 * requests were answered, or a negative anm_err.
 */
int market_zap_handle(void *zap_handle, const market_key *keys, size_t n_keys);

#endif
