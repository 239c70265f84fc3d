/*
 * market_internal.h: the structures shared by market.c and auction.c.
 *
 * Orders live in a pool of fixed-size nodes allocated in blocks of 65,536
 * (no per-order malloc, no reallocation that moves nodes). A resting order
 * is in exactly one intrusive doubly linked list: the FIFO of its price
 * level (continuous mode) or its product's call list (call mode: both sides
 * in one list, so the auction reads the nodes in one sequential pass). Price levels
 * of a side are a sorted array, best level last.
 */
#ifndef MARKET_INTERNAL_H
#define MARKET_INTERNAL_H

#include "market/auction.h"
#include "market/market.h"

#include <stddef.h>
#include <stdint.h>

#define MARKET__NIL UINT32_MAX
#define MARKET__SLOT_BITS 24
#define MARKET__SLOT_MASK ((UINT64_C(1) << MARKET__SLOT_BITS) - 1)
#define MARKET__MAX_SLOTS ((uint32_t)MARKET__SLOT_MASK) /* slot MARKET__SLOT_MASK unused */
#define MARKET__BLOCK_BITS 16
#define MARKET__BLOCK_SIZE (1u << MARKET__BLOCK_BITS)

enum {
    MARKET__FREE = 0,
    MARKET__IN_LEVEL = 1,
    MARKET__IN_CALL = 2
};

enum {
    MARKET__SELL = 0, /* offers */
    MARKET__BUY = 1   /* bids and requirements */
};

/* 88 bytes on LP64 (checked in market.c). */
typedef struct market__order {
    uint64_t order_id;        /* arrival sequence << 24 | slot */
    uint64_t client_order_id;
    int64_t rank;
    int64_t quantity;
    int64_t filled;
    int64_t min_quantity;
    int64_t valid_until_ms;
    uint32_t participant;
    uint32_t der;
    uint32_t product;         /* index into market.products */
    uint32_t prev, next;      /* list links (next: free list when free) */
    int32_t price_ticks;
    int32_t availability_ticks;
    uint8_t side;             /* market_side */
    uint8_t state;            /* MARKET__FREE, MARKET__IN_LEVEL, MARKET__IN_CALL */
} market__order;

typedef struct market__level {
    int64_t key;              /* rank (buy side) or -rank (sell side): best is largest */
    uint32_t head, tail;
} market__level;

typedef struct market__side {
    market__level *levels;    /* ascending key; best last */
    size_t n_levels, cap_levels;
    size_t resting;           /* orders of this side in levels or the call list */
} market__side;

typedef struct market__product {
    market_product key;
    uint32_t number;          /* index into market.products */
    market_mode mode;
    market_statement *statement; /* owned, may be NULL */
    double used_mw[MARKET_MAX_CONSTRAINTS];
    market__side sides[2];
    uint32_t call_head, call_tail; /* call mode: both sides, in arrival order */
    size_t resting;
} market__product;

/* What the market remembers of an accepted client order id: 32-byte records
 * in arrival order (blocks of 65,536: one 2 MB page each), found through an
 * open-addressing index of 8-byte references (market.c, "client-id index"). */
typedef struct market__client {
    uint64_t client_order_id;
    uint64_t order_id;
    uint64_t content_hash;
    uint32_t participant;
    uint32_t slot;            /* MARKET__NIL if the order never rested */
} market__client;

/* Scratch buffers of the auction, kept between runs (reused, grown). */
typedef struct market__scratch {
    void *buffers[12];
    size_t sizes[12];
} market__scratch;

struct market {
    market_config config;
    int64_t rank_price_factor;        /* w / gcd(w, 1000) */
    int64_t rank_availability_factor; /* 1000 / gcd(w, 1000) */
    market__order **blocks;
    size_t n_blocks;
    uint32_t n_slots;         /* slots handed out so far */
    uint32_t free_head;
    uint64_t next_sequence;
    uint64_t next_trade_id;
    market__product **products;
    size_t n_products, cap_products;
    uint32_t *product_index;  /* open addressing, MARKET__NIL empty */
    size_t product_index_cap;
    market__client **client_blocks; /* records, 65,536 a block */
    size_t n_client_blocks;
    uint64_t *clients;        /* index: 0 empty, else hash tag << 40 | (record number + 1) */
    size_t n_clients, cap_clients;
    market__scratch scratch;
};

static inline market__order *market__node(const market *m, uint32_t slot)
{
    return &m->blocks[slot >> MARKET__BLOCK_BITS][slot & (MARKET__BLOCK_SIZE - 1)];
}

/* The product's state, or NULL. create: make it if missing (NULL on ENOMEM). */
market__product *market__product_get(market *m, market_product key, int create);
/* Unlinks a resting order from its level or call list (the node stays allocated). */
void market__unlink(market *m, market__order *o);
/* Appends a resting order to its side (level FIFO or call list by product mode). */
int market__rest(market *m, market__product *p, uint32_t slot);
/* Releases an unlinked node: its client entry forgets the slot. */
void market__release(market *m, uint32_t slot);
/* A buffer of at least size bytes in scratch index i (0..11), kept across calls and
 * grown with realloc (contents kept); NULL on ENOMEM. */
void *market__scratch_buffer(market *m, int i, size_t size);
/* Fills and emits a trade (trade id, on_trade callback). */
void market__emit(market *m, market_trade *t);

#endif
