/*
 * market.c: order entry, validation, idempotency, the book and continuous
 * matching. See market.h and docs/market.md.
 */
#include "market/market.h"

#include "engine/error.h"
#include "market_internal.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

static_assert(sizeof(market__order) <= 88, "order node must stay within 88 bytes");

#define CLIENT_MAX_LOAD_NUM 7 /* client index grows beyond 70 % load */
#define CLIENT_MAX_LOAD_DEN 10

static const char *const reject_names[MARKET_REJECT_COUNT_] = {
    "accepted",          "malformed",           "unknown_participant", "unknown_der",
    "unauthorised_der",  "unauthorised_side",   "unknown_zone",        "der_not_in_zone",
    "above_capacity",    "above_curtailment",   "price_out_of_range",  "gate_closed",
    "expired",           "duplicate_id",        "unknown_order",       "not_owner",
    "book_full"};

const char *market_reject_name(market_reject reason)
{
    if ((int)reason < 0 || reason >= MARKET_REJECT_COUNT_) {
        return "unknown";
    }
    return reject_names[reason];
}

/* splitmix64 finaliser: a fixed, seedless mixing function. */
static uint64_t mix64(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

/* Hash of everything in a spec but the client id (resubmission check). */
static uint64_t content_hash(const market_order_spec *s)
{
    uint64_t h = mix64(s->participant);
    h = mix64(h ^ s->der);
    h = mix64(h ^ s->product.zone);
    h = mix64(h ^ (uint64_t)s->product.period_start_ms);
    h = mix64(h ^ (uint64_t)s->side);
    h = mix64(h ^ (uint64_t)(uint32_t)s->price_ticks);
    h = mix64(h ^ (uint64_t)(uint32_t)s->availability_ticks);
    h = mix64(h ^ (uint64_t)s->quantity);
    h = mix64(h ^ (uint64_t)s->min_quantity);
    return mix64(h ^ (uint64_t)s->valid_until_ms);
}

market *market_new(const market_config *config)
{
    if (config == NULL || config->registry == NULL || config->weighting_permille < 0) {
        return NULL;
    }
    market *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return NULL;
    }
    m->config = *config;
    if (m->config.weighting_permille == 0) {
        m->config.weighting_permille = 1000;
    }
    /* ranks in the smallest exact unit keep the auction's radix sort short */
    int64_t a = m->config.weighting_permille, b = 1000;
    while (b != 0) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    m->rank_price_factor = m->config.weighting_permille / a;
    m->rank_availability_factor = 1000 / a;
    m->free_head = MARKET__NIL;
    m->next_sequence = 1;
    m->next_trade_id = 1;
    return m;
}

void market_destroy(market **mp)
{
    if (mp == NULL || *mp == NULL) {
        return;
    }
    market *m = *mp;
    for (size_t i = 0; i < m->n_blocks; i++) {
        free(m->blocks[i]);
    }
    free(m->blocks);
    for (size_t i = 0; i < m->n_products; i++) {
        market__product *p = m->products[i];
        market_statement_destroy(&p->statement);
        free(p->sides[0].levels);
        free(p->sides[1].levels);
        free(p);
    }
    free(m->products);
    free(m->product_index);
    free(m->clients);
    for (size_t i = 0; i < m->n_client_blocks; i++) {
        free(m->client_blocks[i]);
    }
    free(m->client_blocks);
    for (size_t i = 0; i < sizeof m->scratch.buffers / sizeof m->scratch.buffers[0]; i++) {
        free(m->scratch.buffers[i]);
    }
    free(m);
    *mp = NULL;
}

/* scratch buffers from this size on are given transparent huge pages */
#define HUGE_MIN ((size_t)4 << 20)

/* Asks for transparent huge pages for [p, p + size) (Linux; advice only:
 * the auction's big scratch arrays are read and written at random, and 2 MB
 * pages spare the page walks of 4 KB ones where the kernel gives huge pages
 * on request, its madvise mode). The order pool's blocks get them too
 * (pool_block_new). */
static void advise_huge(void *p, size_t size)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t page = 4096;
    if (size >= HUGE_MIN) {
        uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1);
        uintptr_t e = ((uintptr_t)p + size) & ~(page - 1);
        if (e > a) {
            (void)madvise((void *)a, e - a, MADV_HUGEPAGE); /* advice only: errors ignored */
        }
    }
#else
    (void)p;
    (void)size;
#endif
}

/* A block of the order pool, in whole 2 MB pages (65,536 nodes of 88 bytes
 * are 5.5 MB: 6 MB allocated), with transparent huge pages where the kernel
 * gives them on request. The auction's gather and apply passes sweep the
 * nodes of 10^6 orders: with 4 KB pages they missed the TLB on every page
 * (measured: gather 9 -> 5.3 ms, apply 11.5 -> 9 ms). Order entry gains
 * too: one 2 MB fault every 23,800 new nodes instead of a 4 KB fault every
 * 46 (call-mode submit in process: p99 2.2 -> 0.46 us, p50 0.25 -> 0.22 us). */
#define POOL_PAGE ((size_t)2 << 20)
#define POOL_BLOCK_BYTES                                                                           \
    ((MARKET__BLOCK_SIZE * sizeof(market__order) + POOL_PAGE - 1) / POOL_PAGE * POOL_PAGE)

static market__order *pool_block_new(void)
{
    market__order *block = aligned_alloc(POOL_PAGE, POOL_BLOCK_BYTES);
    if (block != NULL) {
        advise_huge(block, POOL_BLOCK_BYTES);
    }
    return block;
}

void *market__scratch_buffer(market *m, int i, size_t size)
{
    if (m->scratch.sizes[i] < size) {
        void *grown = realloc(m->scratch.buffers[i], size);
        if (grown == NULL) {
            return NULL; /* the old buffer stays, still owned by the market */
        }
        advise_huge(grown, size);
        m->scratch.buffers[i] = grown;
        m->scratch.sizes[i] = size;
    }
    return m->scratch.buffers[i];
}

/* ---- products ---------------------------------------------------------- */

static uint64_t product_hash(market_product key)
{
    return mix64(mix64(key.zone) ^ (uint64_t)key.period_start_ms);
}

static int product_index_insert(market *m, uint32_t index)
{
    size_t mask = m->product_index_cap - 1;
    size_t at = product_hash(m->products[index]->key) & mask;
    while (m->product_index[at] != MARKET__NIL) {
        at = (at + 1) & mask;
    }
    m->product_index[at] = index;
    return ANM_OK;
}

market__product *market__product_get(market *m, market_product key, int create)
{
    if (m->product_index_cap > 0) {
        size_t mask = m->product_index_cap - 1;
        for (size_t at = product_hash(key) & mask; m->product_index[at] != MARKET__NIL;
             at = (at + 1) & mask) {
            market__product *p = m->products[m->product_index[at]];
            if (p->key.zone == key.zone && p->key.period_start_ms == key.period_start_ms) {
                return p;
            }
        }
    }
    if (!create) {
        return NULL;
    }
    if (m->n_products == m->cap_products) {
        size_t next = m->cap_products ? m->cap_products * 2 : 64;
        market__product **grown = realloc(m->products, next * sizeof *grown);
        if (grown == NULL) {
            return NULL;
        }
        m->products = grown;
        m->cap_products = next;
    }
    if ((m->n_products + 1) * 2 > m->product_index_cap) {
        size_t cap = m->product_index_cap ? m->product_index_cap * 2 : 128;
        uint32_t *index = malloc(cap * sizeof *index);
        if (index == NULL) {
            return NULL;
        }
        for (size_t i = 0; i < cap; i++) {
            index[i] = MARKET__NIL;
        }
        free(m->product_index);
        m->product_index = index;
        m->product_index_cap = cap;
        for (size_t i = 0; i < m->n_products; i++) {
            product_index_insert(m, (uint32_t)i);
        }
    }
    market__product *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    p->key = key;
    p->number = (uint32_t)m->n_products;
    p->mode = m->config.initial_mode;
    p->call_head = p->call_tail = MARKET__NIL;
    m->products[m->n_products] = p;
    product_index_insert(m, (uint32_t)m->n_products);
    m->n_products++;
    return p;
}

/* ---- client-id index ---------------------------------------------------- */

static uint64_t client_hash(uint32_t participant, uint64_t client_order_id)
{
    return mix64(mix64(participant) ^ client_order_id);
}

/*
 * The index holds 8-byte references, not the records: 1 << 40 | number + 1
 * with the top 24 bits of the key's hash as a tag, so a probe for a new
 * client id (the common case) reads only the index (8 entries a cache line,
 * 16 MB for 10^6 ids instead of 64 MB of 32-byte entries) and a record only
 * when a tag matches (a known id, or one in 16.7 million otherwise). The
 * records are appended in arrival order, in 2 MB blocks that never move.
 */
#define CLIENT_REF_BITS 40
#define CLIENT_REF_MASK ((UINT64_C(1) << CLIENT_REF_BITS) - 1)
#define CLIENT_BLOCK_BITS 16
#define CLIENT_BLOCK ((size_t)1 << CLIENT_BLOCK_BITS)
static_assert(sizeof(market__client) == 32, "client records are 32 bytes, 2 MB a block");

static market__client *client_record(const market *m, uint64_t number)
{
    return &m->client_blocks[number >> CLIENT_BLOCK_BITS][number & (CLIENT_BLOCK - 1)];
}

/* The record of (participant, client id) or NULL; *at: its index position,
 * or the empty one where it would go. h: client_hash of the key. The table
 * must have room (client_reserve). */
static market__client *client_find(const market *m, uint64_t h, uint32_t participant,
                                   uint64_t client_order_id, size_t *at_out)
{
    size_t mask = m->cap_clients - 1;
    uint64_t tag = h >> CLIENT_REF_BITS;
    for (size_t at = h & mask;; at = (at + 1) & mask) {
        uint64_t e = m->clients[at];
        if (e == 0) {
            *at_out = at;
            return NULL;
        }
        if (e >> CLIENT_REF_BITS == tag) {
            market__client *c = client_record(m, (e & CLIENT_REF_MASK) - 1);
            if (c->participant == participant && c->client_order_id == client_order_id) {
                *at_out = at;
                return c;
            }
        }
    }
}

/* Appends a record and enters it at index position at (from client_find;
 * client_reserve made room). Returns the record. */
static market__client *client_add(market *m, size_t at, const market__client *rec)
{
    uint64_t number = m->n_clients++;
    market__client *c = client_record(m, number);
    *c = *rec;
    uint64_t tag = client_hash(rec->participant, rec->client_order_id) >> CLIENT_REF_BITS;
    m->clients[at] = tag << CLIENT_REF_BITS | (number + 1);
    return c;
}

/* Writes one byte in every 4 KB page of [p, p + size): the pages are
 * faulted in now (a write: a read would map the kernel's zero page). */
static void touch_pages(void *p, size_t size)
{
    volatile unsigned char *out = (volatile unsigned char *)p;
    for (size_t i = 0; i < size; i += 4096) {
        out[i] = 0;
    }
}

/* Record blocks for n records; touch: fault their pages in now. */
static int client_records_reserve(market *m, size_t n, int touch)
{
    size_t n_blocks = (n + CLIENT_BLOCK - 1) / CLIENT_BLOCK;
    if (n_blocks <= m->n_client_blocks) {
        return ANM_OK;
    }
    market__client **blocks = realloc(m->client_blocks, n_blocks * sizeof *blocks);
    if (blocks == NULL) {
        return ANM_ENOMEM;
    }
    m->client_blocks = blocks;
    while (m->n_client_blocks < n_blocks) {
        size_t bytes = CLIENT_BLOCK * sizeof(market__client);
        market__client *block = aligned_alloc(POOL_PAGE, bytes);
        if (block == NULL) {
            return ANM_ENOMEM;
        }
        advise_huge(block, bytes);
        if (touch) {
            touch_pages(block, bytes);
        }
        m->client_blocks[m->n_client_blocks++] = block;
    }
    return ANM_OK;
}

/* An empty index of cap references, every page written once here. Every
 * probe of the index is a cache miss; on 2 MB pages not also a TLB miss
 * (with the pool's huge pages: continuous matching 2.3 -> 3.2 M orders/s in
 * process), so an index of 2 MB or more is 2 MB aligned with transparent
 * huge pages. It is zeroed by writing, not by calloc: calloc's fresh pages
 * were first read by the rehash, which maps the kernel's shared zero page,
 * then written, a second (copy-on-write) fault per 2 MB page, each clearing
 * 2 MB (perf: 20-30 % of `bench core`'s matching went to those faults). */
static uint64_t *client_table_new(size_t cap)
{
    size_t bytes = cap * sizeof(uint64_t);
    uint64_t *table;
    if (bytes >= POOL_PAGE) {
        table = aligned_alloc(POOL_PAGE, (bytes + POOL_PAGE - 1) / POOL_PAGE * POOL_PAGE);
        if (table != NULL) {
            advise_huge(table, bytes);
        }
    } else {
        table = malloc(bytes);
    }
    if (table != NULL) {
        memset(table, 0, bytes);
        touch_pages(table, bytes); /* in case the compiler made the memset a calloc */
    }
    return table;
}

/* Grows the index to cap references (a power of two), re-entering the
 * records in arrival order (read sequentially). */
static int client_grow(market *m, size_t cap)
{
    if (cap <= m->cap_clients) {
        return ANM_OK;
    }
    uint64_t *table = client_table_new(cap);
    if (table == NULL) {
        return ANM_ENOMEM;
    }
    size_t mask = cap - 1;
    for (size_t i = 0; i < m->n_clients; i++) {
        const market__client *c = client_record(m, i);
        uint64_t h = client_hash(c->participant, c->client_order_id);
        size_t at = h & mask;
        while (table[at] != 0) {
            at = (at + 1) & mask;
        }
        table[at] = (h >> CLIENT_REF_BITS) << CLIENT_REF_BITS | (i + 1);
    }
    free(m->clients);
    m->clients = table;
    m->cap_clients = cap;
    return ANM_OK;
}

/* Index capacity (power of two, >= 1024) that holds n references within
 * the maximum load. */
static size_t client_cap_for(size_t n)
{
    size_t cap = 1024;
    while (n * CLIENT_MAX_LOAD_DEN > cap * CLIENT_MAX_LOAD_NUM) {
        cap *= 2;
    }
    return cap;
}

/* Room for one more client id: index load and a record. */
static int client_reserve(market *m)
{
    if (m->n_clients + 1 >= CLIENT_REF_MASK) {
        return ANM_ENOMEM;
    }
    if ((m->n_clients + 1) * CLIENT_MAX_LOAD_DEN > m->cap_clients * CLIENT_MAX_LOAD_NUM &&
        client_grow(m, m->cap_clients ? m->cap_clients * 2 : 1024) != ANM_OK) {
        return ANM_ENOMEM;
    }
    return client_records_reserve(m, m->n_clients + 1, 1);
}

size_t market_order_node_bytes(void) { return sizeof(market__order); }

size_t market_index_bytes_per_order_max(void)
{
    /* a record, and an 8-byte reference in an index that just after doubling
     * is 35 % full */
    return sizeof(market__client) +
           (sizeof(uint64_t) * CLIENT_MAX_LOAD_DEN * 2 + CLIENT_MAX_LOAD_NUM - 1) /
               CLIENT_MAX_LOAD_NUM;
}

void market_memory_usage(const market *m, market_memory *out)
{
    *out = (market_memory){0};
    out->book_bytes = sizeof *m + m->n_blocks * POOL_BLOCK_BYTES +
                      m->n_blocks * sizeof *m->blocks + m->cap_clients * sizeof *m->clients +
                      m->n_client_blocks * (CLIENT_BLOCK * sizeof(market__client) +
                                            sizeof *m->client_blocks) +
                      m->cap_products * sizeof *m->products +
                      m->product_index_cap * sizeof *m->product_index;
    for (size_t i = 0; i < m->n_products; i++) {
        const market__product *p = m->products[i];
        out->book_bytes += sizeof *p + (p->sides[0].cap_levels + p->sides[1].cap_levels) *
                                           sizeof(market__level);
        out->resting_orders += p->resting;
    }
    for (size_t i = 0; i < sizeof m->scratch.sizes / sizeof m->scratch.sizes[0]; i++) {
        out->scratch_bytes += m->scratch.sizes[i];
    }
}

/* ---- pool --------------------------------------------------------------- */

static uint32_t slot_alloc(market *m)
{
    if (m->free_head != MARKET__NIL) {
        uint32_t slot = m->free_head;
        m->free_head = market__node(m, slot)->next;
        return slot;
    }
    if (m->n_slots >= MARKET__MAX_SLOTS) {
        return MARKET__NIL;
    }
    if ((m->n_slots >> MARKET__BLOCK_BITS) >= m->n_blocks) {
        market__order **blocks = realloc(m->blocks, (m->n_blocks + 1) * sizeof *blocks);
        if (blocks == NULL) {
            return MARKET__NIL;
        }
        m->blocks = blocks;
        m->blocks[m->n_blocks] = pool_block_new();
        if (m->blocks[m->n_blocks] == NULL) {
            return MARKET__NIL;
        }
        m->n_blocks++;
    }
    return m->n_slots++;
}

int market_reserve(market *m, size_t orders)
{
    if (m == NULL) {
        return ANM_EINVAL;
    }
    size_t slots = orders < MARKET__MAX_SLOTS ? orders : MARKET__MAX_SLOTS;
    size_t n_blocks = (slots + MARKET__BLOCK_SIZE - 1) / MARKET__BLOCK_SIZE;
    if (n_blocks > m->n_blocks) {
        market__order **blocks = realloc(m->blocks, n_blocks * sizeof *blocks);
        if (blocks == NULL) {
            return ANM_ENOMEM;
        }
        m->blocks = blocks;
        while (m->n_blocks < n_blocks) {
            market__order *block = pool_block_new();
            if (block == NULL) {
                return ANM_ENOMEM; /* the blocks made so far stay, owned by the market */
            }
            touch_pages(block, POOL_BLOCK_BYTES);
            m->blocks[m->n_blocks++] = block;
        }
    }
    /* slot_alloc hands out slots in order and makes a block only when the
     * next slot lies beyond the last one: reserved blocks change no id */
    size_t ids = orders < CLIENT_REF_MASK - 1 ? orders : (size_t)(CLIENT_REF_MASK - 1);
    if (client_grow(m, client_cap_for(ids)) != ANM_OK) {
        return ANM_ENOMEM;
    }
    return client_records_reserve(m, ids, 1);
}

void market__release(market *m, uint32_t slot)
{
    /* the client entry keeps the slot; a look-up checks the node still holds
     * that order (slot_holds), so releasing touches no hash table */
    market__order *o = market__node(m, slot);
    o->state = MARKET__FREE;
    o->next = m->free_head;
    m->free_head = slot;
}

/* ---- levels ------------------------------------------------------------- */

static int64_t level_key(const market__order *o)
{
    return market_side_is_buy((market_side)o->side) ? o->rank : -o->rank;
}

/* Index of the first level with key >= key. */
static size_t level_lower_bound(const market__side *s, int64_t key)
{
    if (s->n_levels > 0 && s->levels[s->n_levels - 1].key < key) {
        return s->n_levels; /* new best level: the common case */
    }
    size_t lo = 0, hi = s->n_levels;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->levels[mid].key < key) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

int market__rest(market *m, market__product *p, uint32_t slot)
{
    market__order *o = market__node(m, slot);
    market__side *s = &p->sides[market_side_is_buy((market_side)o->side)];
    uint32_t *head, *tail;
    if (p->mode == MARKET_MODE_CALL) {
        head = &p->call_head;
        tail = &p->call_tail;
        o->state = MARKET__IN_CALL;
    } else {
        int64_t key = level_key(o);
        size_t at = level_lower_bound(s, key);
        if (at == s->n_levels || s->levels[at].key != key) {
            if (s->n_levels == s->cap_levels) {
                size_t next = s->cap_levels ? s->cap_levels * 2 : 16;
                market__level *levels = realloc(s->levels, next * sizeof *levels);
                if (levels == NULL) {
                    return ANM_ENOMEM;
                }
                s->levels = levels;
                s->cap_levels = next;
            }
            memmove(s->levels + at + 1, s->levels + at, (s->n_levels - at) * sizeof *s->levels);
            s->levels[at] = (market__level){.key = key, .head = MARKET__NIL, .tail = MARKET__NIL};
            s->n_levels++;
        }
        head = &s->levels[at].head;
        tail = &s->levels[at].tail;
        o->state = MARKET__IN_LEVEL;
    }
    o->next = MARKET__NIL;
    o->prev = *tail;
    if (*tail != MARKET__NIL) {
        market__node(m, *tail)->next = slot;
    } else {
        *head = slot;
    }
    *tail = slot;
    p->resting++;
    s->resting++;
    return ANM_OK;
}

void market__unlink(market *m, market__order *o)
{
    market__product *p = m->products[o->product];
    market__side *s = &p->sides[market_side_is_buy((market_side)o->side)];
    uint32_t *head, *tail;
    size_t at = 0;
    if (o->state == MARKET__IN_CALL) {
        head = &p->call_head;
        tail = &p->call_tail;
    } else {
        at = level_lower_bound(s, level_key(o));
        head = &s->levels[at].head;
        tail = &s->levels[at].tail;
    }
    if (o->prev != MARKET__NIL) {
        market__node(m, o->prev)->next = o->next;
    } else {
        *head = o->next;
    }
    if (o->next != MARKET__NIL) {
        market__node(m, o->next)->prev = o->prev;
    } else {
        *tail = o->prev;
    }
    if (o->state == MARKET__IN_LEVEL && *head == MARKET__NIL) {
        memmove(s->levels + at, s->levels + at + 1, (s->n_levels - at - 1) * sizeof *s->levels);
        s->n_levels--;
    }
    o->prev = o->next = MARKET__NIL;
    p->resting--;
    s->resting--;
}

void market__emit(market *m, market_trade *t)
{
    t->trade_id = m->next_trade_id++;
    if (m->config.on_trade != NULL) {
        m->config.on_trade(m->config.on_trade_context, t);
    }
}

/* ---- validation --------------------------------------------------------- */

static void format_mw(char *buf, size_t size, int64_t units)
{
    const char *sign = units < 0 ? "-" : "";
    uint64_t u = units < 0 ? (uint64_t)0 - (uint64_t)units : (uint64_t)units;
    snprintf(buf, size, "%s%" PRIu64 ".%03" PRIu64, sign, u / 1000, u % 1000);
}

static void format_gbp(char *buf, size_t size, int64_t ticks)
{
    const char *sign = ticks < 0 ? "-" : "";
    uint64_t u = ticks < 0 ? (uint64_t)0 - (uint64_t)ticks : (uint64_t)ticks;
    snprintf(buf, size, "%s%" PRIu64 ".%02" PRIu64, sign, u / 100, u % 100);
}

static void reject(market_result *r, market_reject reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#include <stdarg.h>

static void reject(market_result *r, market_reject reason, const char *fmt, ...)
{
    r->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->text, sizeof r->text, fmt, ap);
    va_end(ap);
    if (n < 0) {
        r->text[0] = '\0';
    }
}

static int64_t gate_closure_ms(const market *m, market_product product)
{
    if (m->config.gate_closure != NULL) {
        return m->config.gate_closure(m->config.gate_closure_context, product);
    }
    return product.period_start_ms - m->config.gate_closure_offset_ms;
}

/* Checks everything but duplicates; 1 when valid, else 0 with r filled. */
static int validate(const market *m, int64_t now_ms, const market_order_spec *s, market_result *r)
{
    const market_registry *reg = m->config.registry;
    char a[32], b[32];
    if (s->side != MARKET_OFFER && s->side != MARKET_BID && s->side != MARKET_REQUIREMENT) {
        reject(r, MARKET_REJECT_MALFORMED, "side %d is not offer, bid or requirement",
               (int)s->side);
        return 0;
    }
    if (s->quantity <= 0) {
        format_mw(a, sizeof a, s->quantity);
        reject(r, MARKET_REJECT_MALFORMED, "quantity %s MW is not positive", a);
        return 0;
    }
    if (s->min_quantity < 0 || s->min_quantity > s->quantity) {
        format_mw(a, sizeof a, s->min_quantity);
        format_mw(b, sizeof b, s->quantity);
        reject(r, MARKET_REJECT_MALFORMED, "minimum quantity %s MW is outside 0..%s MW", a, b);
        return 0;
    }
    if (s->availability_ticks < 0) {
        format_gbp(a, sizeof a, s->availability_ticks);
        reject(r, MARKET_REJECT_MALFORMED, "availability price %s GBP/MW/h is negative", a);
        return 0;
    }
    if ((s->side == MARKET_REQUIREMENT) != (s->der == MARKET_NO_DER)) {
        reject(r, MARKET_REJECT_MALFORMED, "%s",
               s->side == MARKET_REQUIREMENT ? "a requirement names no der"
                                             : "a bid or offer must name a der");
        return 0;
    }
    market_participant_kind kind = market_registry_participant(reg, s->participant);
    if (kind == MARKET_PARTICIPANT_NONE) {
        reject(r, MARKET_REJECT_UNKNOWN_PARTICIPANT, "unknown participant %" PRIu32,
               s->participant);
        return 0;
    }
    market_zone_info zone;
    if (!market_registry_zone(reg, s->product.zone, &zone)) {
        reject(r, MARKET_REJECT_UNKNOWN_ZONE, "unknown zone %" PRIu32, s->product.zone);
        return 0;
    }
    if (s->side == MARKET_REQUIREMENT) {
        if (kind != MARKET_PARTICIPANT_SYSTEM_OPERATOR) {
            reject(r, MARKET_REJECT_UNAUTHORISED_SIDE,
                   "participant %" PRIu32 " is not a system operator and may not post requirements",
                   s->participant);
            return 0;
        }
    } else {
        market_der_info der;
        if (!market_registry_der(reg, s->der, &der)) {
            reject(r, MARKET_REJECT_UNKNOWN_DER, "unknown der %" PRIu32, s->der);
            return 0;
        }
        if (!market_registry_allowed(reg, s->participant, s->der)) {
            reject(r, MARKET_REJECT_UNAUTHORISED_DER,
                   "participant %" PRIu32 " may not trade for der %" PRIu32, s->participant,
                   s->der);
            return 0;
        }
        if (der.zone != s->product.zone) {
            reject(r, MARKET_REJECT_DER_NOT_IN_ZONE,
                   "der %" PRIu32 " is in zone %" PRIu32 ", not zone %" PRIu32, s->der, der.zone,
                   s->product.zone);
            return 0;
        }
        if (s->side == MARKET_OFFER && s->quantity > der.capacity) {
            format_mw(a, sizeof a, s->quantity);
            format_mw(b, sizeof b, der.capacity);
            reject(r, MARKET_REJECT_ABOVE_CAPACITY,
                   "quantity %s MW exceeds capacity %s MW of der %" PRIu32, a, b, s->der);
            return 0;
        }
        if (s->side == MARKET_BID && s->quantity > der.max_curtailment) {
            format_mw(a, sizeof a, s->quantity);
            format_mw(b, sizeof b, der.max_curtailment);
            reject(r, MARKET_REJECT_ABOVE_CURTAILMENT,
                   "quantity %s MW exceeds maximum curtailment %s MW of der %" PRIu32, a, b,
                   s->der);
            return 0;
        }
    }
    if (s->price_ticks < zone.price_floor_ticks || s->price_ticks > zone.price_ceiling_ticks) {
        int below = s->price_ticks < zone.price_floor_ticks;
        format_gbp(a, sizeof a, s->price_ticks);
        format_gbp(b, sizeof b, below ? zone.price_floor_ticks : zone.price_ceiling_ticks);
        reject(r, MARKET_REJECT_PRICE_OUT_OF_RANGE,
               "price %s GBP/MWh %s %s %s GBP/MWh of zone %" PRIu32, a,
               below ? "below" : "above", below ? "floor" : "ceiling", b, s->product.zone);
        return 0;
    }
    int64_t gate = gate_closure_ms(m, s->product);
    if (now_ms >= gate) {
        reject(r, MARKET_REJECT_GATE_CLOSED,
               "gate closed at %" PRId64 " ms for zone %" PRIu32 " period %" PRId64
               " (now %" PRId64 " ms)",
               gate, s->product.zone, s->product.period_start_ms, now_ms);
        return 0;
    }
    if (s->valid_until_ms <= now_ms) {
        reject(r, MARKET_REJECT_EXPIRED, "validity ended at %" PRId64 " ms (now %" PRId64 " ms)",
               s->valid_until_ms, now_ms);
        return 0;
    }
    return 1;
}

/* ---- continuous matching ------------------------------------------------ */

/* The incoming order while it matches. */
typedef struct incoming {
    uint64_t order_id;
    uint32_t participant, der;
    market_side side;
    int64_t rank;
    int32_t price_ticks, availability_ticks;
    int64_t remaining;
} incoming;

/*
 * Walks the opposite side from its best level while prices cross, in FIFO
 * order per level, and trades with each order as much as the feasibility
 * rule and both minimum quantities allow. commit 0: a dry run that only
 * counts the volume (with its own copy of used_mw). Returns the volume.
 */
static int64_t match_scan(market *m, market__product *p, incoming *in, int64_t now_ms, int commit,
                          size_t *trades)
{
    if (p->statement == NULL) {
        return 0; /* without a statement no trade is known to be secure */
    }
    double local_used[MARKET_MAX_CONSTRAINTS];
    double *used = p->used_mw;
    if (!commit) {
        memcpy(local_used, p->used_mw, sizeof local_used);
        used = local_used;
    }
    int in_buys = market_side_is_buy(in->side);
    market__side *opposite = &p->sides[!in_buys];
    int64_t remaining = in->remaining;
    int64_t done = 0;
    size_t skipped = 0;
    for (size_t li = opposite->n_levels; li-- > 0 && remaining > 0;) {
        int64_t rank = in_buys ? -opposite->levels[li].key : opposite->levels[li].key;
        if (in_buys ? rank > in->rank : rank < in->rank) {
            break;
        }
        uint32_t slot = opposite->levels[li].head;
        while (slot != MARKET__NIL && remaining > 0 && skipped < MARKET_SCAN_LIMIT) {
            market__order *o = market__node(m, slot);
            uint32_t next = o->next;
            if (o->valid_until_ms <= now_ms) {
                if (commit) {
                    market__unlink(m, o);
                    market__release(m, slot);
                }
                slot = next;
                continue;
            }
            if (!m->config.self_trade_allowed && o->participant == in->participant) {
                skipped++;
                slot = next;
                continue;
            }
            int64_t left = o->quantity - o->filled;
            int64_t need = o->filled == 0 ? o->min_quantity : 0;
            int64_t chunk = remaining < left ? remaining : left;
            uint32_t sell_der = in_buys ? o->der : in->der;
            uint32_t buy_der = in_buys ? in->der : o->der;
            int64_t feasible = chunk >= need ? market_statement_take(p->statement, used, sell_der,
                                                                     buy_der, chunk, need, NULL)
                                             : 0;
            if (feasible == 0) {
                skipped++;
                slot = next;
                continue;
            }
            remaining -= feasible;
            done += feasible;
            if (commit) {
                o->filled += feasible;
                market_trade t = {
                    .buy_order_id = in_buys ? in->order_id : o->order_id,
                    .sell_order_id = in_buys ? o->order_id : in->order_id,
                    .buyer = in_buys ? in->participant : o->participant,
                    .seller = in_buys ? o->participant : in->participant,
                    .buy_der = buy_der,
                    .sell_der = sell_der,
                    .product = p->key,
                    .kind = MARKET_TRADE_CONTINUOUS,
                    .volume = feasible,
                    /* the resting order sets the price of a continuous trade */
                    .buyer_price_ticks = o->price_ticks,
                    .buyer_availability_ticks = o->availability_ticks,
                    .seller_price_ticks = o->price_ticks,
                    .seller_availability_ticks = o->availability_ticks,
                    .executed_ms = now_ms,
                };
                market__emit(m, &t);
                (*trades)++;
                if (o->filled == o->quantity) {
                    market__unlink(m, o);
                    market__release(m, slot);
                }
            }
            slot = next;
        }
        if (skipped >= MARKET_SCAN_LIMIT) {
            break;
        }
        /* a committed walk may have removed level li; the next index down is unaffected */
        if (commit && li > opposite->n_levels) {
            li = opposite->n_levels;
        }
    }
    in->remaining = remaining;
    return done;
}

int market_submit(market *m, int64_t now_ms, const market_order_spec *s, market_result *r)
{
    if (m == NULL || s == NULL || r == NULL) {
        return ANM_EINVAL;
    }
    memset(r, 0, sizeof *r);
    /* a resubmission is answered before validation: the same request gets the
     * same answer even after its gate closed or its validity ended */
    if (client_reserve(m) != ANM_OK) {
        reject(r, MARKET_REJECT_BOOK_FULL, "out of memory for the client order index");
        return ANM_OK;
    }
    /* the client index is far larger than the caches: its entry is fetched
     * while the content hash is worked out */
    uint64_t key_hash = client_hash(s->participant, s->client_order_id);
    __builtin_prefetch(&m->clients[key_hash & (m->cap_clients - 1)]);
    uint64_t hash = content_hash(s);
    size_t client_at;
    market__client *known =
        client_find(m, key_hash, s->participant, s->client_order_id, &client_at);
    if (known == NULL && !validate(m, now_ms, s, r)) {
        return ANM_OK;
    }
    if (known != NULL) {
        if (known->content_hash != hash) {
            reject(r, MARKET_REJECT_DUPLICATE_ID,
                   "client order id %" PRIu64 " of participant %" PRIu32
                   " was used for another order",
                   s->client_order_id, s->participant);
            return ANM_OK;
        }
        r->order_id = known->order_id;
        r->resubmission = 1;
        if (known->slot != MARKET__NIL) {
            const market__order *o = market__node(m, known->slot);
            if (o->state != MARKET__FREE && o->order_id == known->order_id) {
                r->resting = o->quantity - o->filled;
            }
        }
        return ANM_OK;
    }
    market__product *p = market__product_get(m, s->product, 1);
    uint32_t slot = p != NULL ? slot_alloc(m) : MARKET__NIL;
    if (slot == MARKET__NIL) {
        reject(r, MARKET_REJECT_BOOK_FULL, "the book is full (%" PRIu32 " orders at most)",
               MARKET__MAX_SLOTS);
        return ANM_OK;
    }
    uint64_t order_id = m->next_sequence++ << MARKET__SLOT_BITS | slot;
    int64_t rank = (int64_t)s->price_ticks * m->rank_price_factor +
                   (int64_t)s->availability_ticks * m->rank_availability_factor;
    incoming in = {.order_id = order_id,
                   .participant = s->participant,
                   .der = s->der,
                   .side = s->side,
                   .rank = rank,
                   .price_ticks = s->price_ticks,
                   .availability_ticks = s->availability_ticks,
                   .remaining = s->quantity};
    if (p->mode == MARKET_MODE_CONTINUOUS) {
        int go = 1;
        if (s->min_quantity > 0) {
            incoming probe = in;
            go = match_scan(m, p, &probe, now_ms, 0, NULL) >= s->min_quantity;
        }
        if (go) {
            r->filled = match_scan(m, p, &in, now_ms, 1, &r->trades);
        }
    }
    market__client *c = client_add(m, client_at,
                                   &(market__client){.client_order_id = s->client_order_id,
                                                     .order_id = order_id,
                                                     .content_hash = hash,
                                                     .participant = s->participant,
                                                     .slot = MARKET__NIL});
    market__order *o = market__node(m, slot);
    *o = (market__order){.order_id = order_id,
                         .client_order_id = s->client_order_id,
                         .rank = rank,
                         .quantity = s->quantity,
                         .filled = r->filled,
                         .min_quantity = s->min_quantity,
                         .valid_until_ms = s->valid_until_ms,
                         .participant = s->participant,
                         .der = s->der,
                         .product = p->number,
                         .prev = MARKET__NIL,
                         .next = MARKET__NIL,
                         .price_ticks = s->price_ticks,
                         .availability_ticks = s->availability_ticks,
                         .side = (uint8_t)s->side,
                         .state = MARKET__FREE};
    r->order_id = order_id;
    if (in.remaining > 0) {
        if (market__rest(m, p, slot) != ANM_OK) {
            o->next = m->free_head;
            m->free_head = slot;
            reject(r, MARKET_REJECT_BOOK_FULL, "out of memory for a price level");
            return ANM_OK; /* any trades made stand; the remainder is not kept */
        }
        c->slot = slot;
        r->resting = in.remaining;
    } else {
        o->next = m->free_head;
        m->free_head = slot;
    }
    return ANM_OK;
}

/* The resting order with this id, or NULL. */
static market__order *resting(const market *m, uint64_t order_id)
{
    uint32_t slot = (uint32_t)(order_id & MARKET__SLOT_MASK);
    if (slot >= m->n_slots) {
        return NULL;
    }
    market__order *o = market__node(m, slot);
    return o->state != MARKET__FREE && o->order_id == order_id ? o : NULL;
}

static int check_owner(const market *m, uint32_t participant, uint64_t order_id, market_result *r,
                       market__order **out)
{
    market__order *o = resting(m, order_id);
    if (o == NULL) {
        reject(r, MARKET_REJECT_UNKNOWN_ORDER, "order %" PRIu64 " is not resting in the book",
               order_id);
        return 0;
    }
    if (o->participant != participant) {
        reject(r, MARKET_REJECT_NOT_OWNER,
               "order %" PRIu64 " belongs to another participant than %" PRIu32, order_id,
               participant);
        return 0;
    }
    *out = o;
    return 1;
}

int market_cancel(market *m, int64_t now_ms, uint32_t participant, uint64_t order_id,
                  market_result *r)
{
    (void)now_ms;
    if (m == NULL || r == NULL) {
        return ANM_EINVAL;
    }
    memset(r, 0, sizeof *r);
    market__order *o;
    if (!check_owner(m, participant, order_id, r, &o)) {
        return ANM_OK;
    }
    r->order_id = order_id;
    market__unlink(m, o);
    market__release(m, (uint32_t)(order_id & MARKET__SLOT_MASK));
    return ANM_OK;
}

int market_replace(market *m, int64_t now_ms, uint64_t order_id, const market_order_spec *s,
                   market_result *r)
{
    if (m == NULL || s == NULL || r == NULL) {
        return ANM_EINVAL;
    }
    memset(r, 0, sizeof *r);
    market__order *o;
    if (!check_owner(m, s->participant, order_id, r, &o)) {
        return ANM_OK;
    }
    if (!validate(m, now_ms, s, r)) {
        return ANM_OK;
    }
    if (client_reserve(m) != ANM_OK) {
        reject(r, MARKET_REJECT_BOOK_FULL, "out of memory for the client order index");
        return ANM_OK;
    }
    size_t client_at;
    if (client_find(m, client_hash(s->participant, s->client_order_id), s->participant,
                    s->client_order_id, &client_at) != NULL) {
        reject(r, MARKET_REJECT_DUPLICATE_ID,
               "client order id %" PRIu64 " of participant %" PRIu32
               " was used for another order",
               s->client_order_id, s->participant);
        return ANM_OK;
    }
    market__unlink(m, o);
    market__release(m, (uint32_t)(order_id & MARKET__SLOT_MASK));
    return market_submit(m, now_ms, s, r);
}

int market_order_get(const market *m, uint64_t order_id, market_order_view *out)
{
    const market__order *o = resting(m, order_id);
    if (o == NULL) {
        return 0;
    }
    if (out != NULL) {
        const market__product *p = m->products[o->product];
        *out = (market_order_view){
            .order_id = o->order_id,
            .client_order_id = o->client_order_id,
            .spec = {.client_order_id = o->client_order_id,
                     .participant = o->participant,
                     .der = o->der,
                     .product = p->key,
                     .side = (market_side)o->side,
                     .price_ticks = o->price_ticks,
                     .availability_ticks = o->availability_ticks,
                     .quantity = o->quantity,
                     .min_quantity = o->min_quantity,
                     .valid_until_ms = o->valid_until_ms},
            .filled = o->filled,
            .rank = o->rank};
    }
    return 1;
}

int market_set_statement(market *m, market_product product, market_statement *statement)
{
    if (m == NULL) {
        return ANM_EINVAL;
    }
    market__product *p = market__product_get(m, product, 1);
    if (p == NULL) {
        return ANM_ENOMEM;
    }
    market_statement_destroy(&p->statement);
    p->statement = statement;
    memset(p->used_mw, 0, sizeof p->used_mw);
    return ANM_OK;
}

double market_used_mw(const market *m, market_product product, size_t c)
{
    market__product *p = market__product_get((market *)(uintptr_t)m, product, 0);
    return p != NULL && c < MARKET_MAX_CONSTRAINTS ? p->used_mw[c] : 0.0;
}

const market_statement *market_get_statement(const market *m, market_product product)
{
    market__product *p = market__product_get((market *)(uintptr_t)m, product, 0);
    return p != NULL ? p->statement : NULL;
}

int market_set_mode(market *m, market_product product, market_mode mode)
{
    if (m == NULL || (mode != MARKET_MODE_CALL && mode != MARKET_MODE_CONTINUOUS)) {
        return ANM_EINVAL;
    }
    market__product *p = market__product_get(m, product, 1);
    if (p == NULL) {
        return ANM_ENOMEM;
    }
    if (p->mode == mode) {
        return ANM_OK;
    }
    p->mode = mode;
    if (mode == MARKET_MODE_CONTINUOUS) {
        /* move call-list orders into levels, in arrival order (time priority kept) */
        uint32_t slot = p->call_head;
        p->call_head = p->call_tail = MARKET__NIL;
        while (slot != MARKET__NIL) {
            market__order *o = market__node(m, slot);
            uint32_t next = o->next;
            p->resting--;
            p->sides[market_side_is_buy((market_side)o->side)].resting--;
            if (market__rest(m, p, slot) != ANM_OK) {
                return ANM_ENOMEM;
            }
            slot = next;
        }
    }
    return ANM_OK;
}

size_t market_expire(market *m, int64_t now_ms, market_product product)
{
    market__product *p = market__product_get(m, product, 0);
    size_t removed = 0;
    if (p == NULL) {
        return 0;
    }
    for (int side = 0; side < 2; side++) {
        market__side *s = &p->sides[side];
        for (size_t li = s->n_levels; li-- > 0;) {
            uint32_t slot = s->levels[li].head;
            while (slot != MARKET__NIL) {
                market__order *o = market__node(m, slot);
                uint32_t next = o->next;
                if (o->valid_until_ms <= now_ms) {
                    market__unlink(m, o);
                    market__release(m, slot);
                    removed++;
                }
                slot = next;
            }
            if (li > s->n_levels) {
                li = s->n_levels;
            }
        }
    }
    uint32_t slot = p->call_head;
    while (slot != MARKET__NIL) {
        market__order *o = market__node(m, slot);
        uint32_t next = o->next;
        if (o->valid_until_ms <= now_ms) {
            market__unlink(m, o);
            market__release(m, slot);
            removed++;
        }
        slot = next;
    }
    return removed;
}

size_t market_resting_orders(const market *m, market_product product)
{
    market__product *p = market__product_get((market *)(uintptr_t)m, product, 0);
    return p != NULL ? p->resting : 0;
}

int market_best_rank(const market *m, market_product product, int buy_side, int64_t *rank)
{
    market__product *p = market__product_get((market *)(uintptr_t)m, product, 0);
    if (p == NULL) {
        return 0;
    }
    const market__side *s = &p->sides[buy_side ? 1 : 0];
    if (s->n_levels == 0) {
        return 0;
    }
    int64_t key = s->levels[s->n_levels - 1].key;
    *rank = buy_side ? key : -key;
    return 1;
}

/* ---- snapshots (docs/market-protocol.md, "Snapshots") --------------------
 *
 * The dump holds everything that decides what later calls do: the pool's
 * allocation state (slots handed out and the free list in order, so future
 * order ids are the same), the sequence and trade counters, every product
 * in creation order (mode, statement, accumulated trade effects, each
 * side's levels with their FIFOs, the call list), each resting node, and
 * the client-id index (finished orders included: a resubmission stays
 * idempotent). Little endian; ends with its length checked by the reader.
 */

#define SNAPSHOT_MAGIC "ANMMKT01"

typedef struct dump_buf {
    uint8_t *p;
    size_t size, cap;
    int failed;
} dump_buf;

static void dump_raw(dump_buf *b, const void *data, size_t n)
{
    if (b->failed) {
        return;
    }
    if (b->cap - b->size < n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->size < n) {
            cap *= 2;
        }
        uint8_t *grown = realloc(b->p, cap);
        if (grown == NULL) {
            b->failed = 1;
            return;
        }
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->size, data, n);
    b->size += n;
}

static void dump_u64(dump_buf *b, uint64_t v)
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++) {
        le[i] = (uint8_t)(v >> (8 * i));
    }
    dump_raw(b, le, 8);
}

static void dump_f64(dump_buf *b, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    dump_u64(b, bits);
}

static void dump_node(dump_buf *b, const market__order *o)
{
    dump_u64(b, o->order_id);
    dump_u64(b, o->client_order_id);
    dump_u64(b, (uint64_t)o->rank);
    dump_u64(b, (uint64_t)o->quantity);
    dump_u64(b, (uint64_t)o->filled);
    dump_u64(b, (uint64_t)o->min_quantity);
    dump_u64(b, (uint64_t)o->valid_until_ms);
    dump_u64(b, (uint64_t)o->participant << 32 | o->der);
    dump_u64(b, (uint64_t)(uint32_t)o->price_ticks << 32 | (uint32_t)o->availability_ticks);
    dump_u64(b, o->side);
}

static void dump_list(dump_buf *b, const market *m, uint32_t head)
{
    size_t n = 0;
    for (uint32_t s = head; s != MARKET__NIL; s = market__node(m, s)->next) {
        n++;
    }
    dump_u64(b, n);
    for (uint32_t s = head; s != MARKET__NIL; s = market__node(m, s)->next) {
        dump_u64(b, s);
        dump_node(b, market__node(m, s));
    }
}

static int client_by_order_id(const void *a, const void *b)
{
    uint64_t x = ((const market__client *)a)->order_id, y = ((const market__client *)b)->order_id;
    return (x > y) - (x < y);
}

int market_snapshot_save(const market *m, uint8_t **out, size_t *size)
{
    if (m == NULL || out == NULL || size == NULL) {
        return ANM_EINVAL;
    }
    dump_buf b = {0};
    dump_raw(&b, SNAPSHOT_MAGIC, 8);
    dump_u64(&b, m->n_slots);
    dump_u64(&b, m->next_sequence);
    dump_u64(&b, m->next_trade_id);
    size_t n_free = 0;
    for (uint32_t s = m->free_head; s != MARKET__NIL; s = market__node(m, s)->next) {
        n_free++;
    }
    dump_u64(&b, n_free);
    for (uint32_t s = m->free_head; s != MARKET__NIL; s = market__node(m, s)->next) {
        dump_u64(&b, s);
    }
    dump_u64(&b, m->n_products);
    for (size_t i = 0; i < m->n_products; i++) {
        const market__product *p = m->products[i];
        dump_u64(&b, p->key.zone);
        dump_u64(&b, (uint64_t)p->key.period_start_ms);
        dump_u64(&b, (uint64_t)p->mode);
        const market_statement *st = p->statement;
        size_t n_constraints = st ? market_statement_constraints(st) : 0;
        dump_u64(&b, n_constraints);
        for (size_t c = 0; c < n_constraints; c++) {
            char name[32] = {0};
            snprintf(name, sizeof name, "%s", market_statement_constraint_name(st, c));
            dump_raw(&b, name, sizeof name);
            dump_f64(&b, market_statement_headroom_mw(st, c));
        }
        size_t n_ders = st ? market_statement_der_count(st) : 0;
        dump_u64(&b, n_ders);
        for (size_t d = 0; d < n_ders; d++) {
            uint32_t der = market_statement_der_at(st, d);
            dump_u64(&b, der);
            for (size_t c = 0; c < n_constraints; c++) {
                dump_f64(&b, market_statement_sensitivity(st, der, c));
            }
        }
        for (size_t c = 0; c < MARKET_MAX_CONSTRAINTS; c++) {
            dump_f64(&b, p->used_mw[c]);
        }
        dump_list(&b, m, p->call_head);
        for (int side = 0; side < 2; side++) {
            const market__side *s = &p->sides[side];
            dump_u64(&b, s->n_levels);
            for (size_t l = 0; l < s->n_levels; l++) {
                dump_u64(&b, (uint64_t)s->levels[l].key);
                dump_list(&b, m, s->levels[l].head);
            }
        }
    }
    /* the client index in a canonical order (by order id), not in hash-table order */
    market__client *sorted = malloc((m->n_clients + 1) * sizeof *sorted);
    size_t n_sorted = 0;
    if (sorted == NULL) {
        free(b.p);
        return ANM_ENOMEM;
    }
    for (size_t i = 0; i < m->n_clients; i++) {
        sorted[n_sorted++] = *client_record(m, i);
    }
    qsort(sorted, n_sorted, sizeof *sorted, client_by_order_id);
    dump_u64(&b, n_sorted);
    for (size_t i = 0; i < n_sorted; i++) {
        const market__client *c = &sorted[i];
        dump_u64(&b, c->client_order_id);
        dump_u64(&b, c->order_id);
        dump_u64(&b, c->content_hash);
        dump_u64(&b, (uint64_t)c->participant << 32 | c->slot);
    }
    free(sorted);
    dump_u64(&b, b.size + 8); /* the total length: a cut dump is refused */
    if (b.failed) {
        free(b.p);
        return ANM_ENOMEM;
    }
    *out = b.p;
    *size = b.size;
    return ANM_OK;
}

typedef struct load_cursor {
    const uint8_t *p;
    size_t size, at;
    int bad;
} load_cursor;

static uint64_t load_u64(load_cursor *c)
{
    if (c->bad || c->size - c->at < 8) {
        c->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)c->p[c->at + (size_t)i] << (8 * i);
    }
    c->at += 8;
    return v;
}

static double load_f64(load_cursor *c)
{
    uint64_t bits = load_u64(c);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* A count that the remaining bytes can hold (each item at least item_bytes). */
static size_t load_count(load_cursor *c, size_t item_bytes)
{
    uint64_t n = load_u64(c);
    if (c->bad || n > (c->size - c->at) / item_bytes) {
        c->bad = 1;
        return 0;
    }
    return (size_t)n;
}

/* Reads a list of (slot, node) into the pool, linking it; head and tail get its ends. */
static int load_list(load_cursor *c, market *m, uint32_t product, uint8_t state, uint32_t *head,
                     uint32_t *tail, size_t *count, uint8_t *used)
{
    size_t n = load_count(c, 88);
    *head = *tail = MARKET__NIL;
    for (size_t i = 0; i < n && !c->bad; i++) {
        uint64_t slot = load_u64(c);
        if (slot >= m->n_slots || used[slot]) {
            return ANM_EPARSE;
        }
        used[slot] = 1;
        market__order *o = market__node(m, (uint32_t)slot);
        memset(o, 0, sizeof *o);
        o->order_id = load_u64(c);
        o->client_order_id = load_u64(c);
        o->rank = (int64_t)load_u64(c);
        o->quantity = (int64_t)load_u64(c);
        o->filled = (int64_t)load_u64(c);
        o->min_quantity = (int64_t)load_u64(c);
        o->valid_until_ms = (int64_t)load_u64(c);
        uint64_t v = load_u64(c);
        o->participant = (uint32_t)(v >> 32);
        o->der = (uint32_t)v;
        v = load_u64(c);
        o->price_ticks = (int32_t)(uint32_t)(v >> 32);
        o->availability_ticks = (int32_t)(uint32_t)v;
        v = load_u64(c);
        if (v > MARKET_REQUIREMENT || (o->order_id & MARKET__SLOT_MASK) != slot) {
            return ANM_EPARSE;
        }
        o->side = (uint8_t)v;
        o->product = product;
        o->state = state;
        o->next = MARKET__NIL;
        o->prev = *tail;
        if (*tail != MARKET__NIL) {
            market__node(m, *tail)->next = (uint32_t)slot;
        } else {
            *head = (uint32_t)slot;
        }
        *tail = (uint32_t)slot;
        count[market_side_is_buy((market_side)o->side)]++;
    }
    return c->bad ? ANM_EPARSE : ANM_OK;
}

static int load_products(load_cursor *c, market *m, uint8_t *used)
{
    size_t n_products = load_count(c, 8 * (5 + MARKET_MAX_CONSTRAINTS));
    for (size_t i = 0; i < n_products && !c->bad; i++) {
        market_product key;
        key.zone = (uint32_t)load_u64(c);
        key.period_start_ms = (int64_t)load_u64(c);
        uint64_t mode = load_u64(c);
        market__product *p = market__product_get(m, key, 1);
        if (p == NULL) {
            return ANM_ENOMEM;
        }
        if (p->number != i || mode > MARKET_MODE_CALL) {
            return ANM_EPARSE; /* a duplicate product */
        }
        p->mode = (market_mode)mode;
        size_t n_constraints = load_count(c, 40);
        if (n_constraints > MARKET_MAX_CONSTRAINTS) {
            return ANM_EPARSE;
        }
        double headroom[MARKET_MAX_CONSTRAINTS];
        char names[MARKET_MAX_CONSTRAINTS][32];
        const char *name_ptrs[MARKET_MAX_CONSTRAINTS];
        for (size_t k = 0; k < n_constraints && !c->bad; k++) {
            if (c->size - c->at < 32) {
                return ANM_EPARSE;
            }
            memcpy(names[k], c->p + c->at, 32);
            names[k][31] = '\0';
            name_ptrs[k] = names[k];
            c->at += 32;
            headroom[k] = load_f64(c);
        }
        size_t n_ders = load_count(c, 8);
        if (n_constraints > 0) {
            p->statement = market_statement_new(n_constraints, headroom, name_ptrs);
            if (p->statement == NULL) {
                return c->bad ? ANM_EPARSE : ANM_ENOMEM;
            }
        } else if (n_ders > 0) {
            return ANM_EPARSE;
        }
        for (size_t d = 0; d < n_ders && !c->bad; d++) {
            uint32_t der = (uint32_t)load_u64(c);
            for (size_t k = 0; k < n_constraints; k++) {
                double v = load_f64(c);
                if (!c->bad && market_statement_set_sensitivity(p->statement, der, k, v) != ANM_OK) {
                    return ANM_EPARSE;
                }
            }
        }
        for (size_t k = 0; k < MARKET_MAX_CONSTRAINTS; k++) {
            p->used_mw[k] = load_f64(c);
        }
        size_t count[2] = {0, 0};
        int rc = load_list(c, m, p->number, MARKET__IN_CALL, &p->call_head, &p->call_tail, count,
                           used);
        for (int side = 0; side < 2 && rc == ANM_OK; side++) {
            market__side *s = &p->sides[side];
            size_t n_levels = load_count(c, 16);
            if (n_levels > 0) {
                s->levels = calloc(n_levels, sizeof *s->levels);
                if (s->levels == NULL) {
                    return ANM_ENOMEM;
                }
                s->cap_levels = n_levels;
            }
            for (size_t l = 0; l < n_levels && rc == ANM_OK; l++) {
                market__level *level = &s->levels[l];
                level->key = (int64_t)load_u64(c);
                if (l > 0 && level->key <= s->levels[l - 1].key) {
                    return ANM_EPARSE;
                }
                size_t before[2] = {count[0], count[1]};
                rc = load_list(c, m, p->number, MARKET__IN_LEVEL, &level->head, &level->tail,
                               count, used);
                if (rc == ANM_OK && (level->head == MARKET__NIL ||
                                     count[1 - side] != before[1 - side])) {
                    return ANM_EPARSE; /* an empty level, or an order on the wrong side */
                }
                s->n_levels++;
            }
        }
        if (rc != ANM_OK) {
            return rc;
        }
        p->sides[0].resting = count[0];
        p->sides[1].resting = count[1];
        p->resting = count[0] + count[1];
    }
    return c->bad ? ANM_EPARSE : ANM_OK;
}

int market_snapshot_load(market *m, const uint8_t *data, size_t size)
{
    if (m == NULL || data == NULL) {
        return ANM_EINVAL;
    }
    if (m->n_slots != 0 || m->n_products != 0 || m->n_clients != 0) {
        return ANM_EINVAL; /* only into a fresh market */
    }
    load_cursor c = {data, size, 0, 0};
    uint8_t *used = NULL;
    int rc = ANM_EPARSE;
    if (size < 16 || memcmp(data, SNAPSHOT_MAGIC, 8) != 0) {
        goto out;
    }
    c.at = 8;
    uint64_t n_slots = load_u64(&c);
    m->next_sequence = load_u64(&c);
    m->next_trade_id = load_u64(&c);
    if (c.bad || n_slots > MARKET__MAX_SLOTS || m->next_sequence == 0 ||
        m->next_sequence >= (UINT64_C(1) << (64 - MARKET__SLOT_BITS))) {
        goto out;
    }
    /* the pool: the same blocks as the original had */
    while ((uint64_t)m->n_slots < n_slots) {
        if (slot_alloc(m) == MARKET__NIL) {
            rc = ANM_ENOMEM;
            goto out;
        }
    }
    used = calloc((size_t)n_slots + 1, 1);
    if (used == NULL) {
        rc = ANM_ENOMEM;
        goto out;
    }
    size_t n_free = load_count(&c, 8);
    uint32_t *tail = &m->free_head;
    for (size_t i = 0; i < n_free && !c.bad; i++) {
        uint64_t slot = load_u64(&c);
        if (slot >= n_slots || used[slot]) {
            goto out;
        }
        used[slot] = 1;
        market__order *o = market__node(m, (uint32_t)slot);
        memset(o, 0, sizeof *o);
        o->state = MARKET__FREE;
        *tail = (uint32_t)slot;
        tail = &o->next;
    }
    *tail = MARKET__NIL;
    rc = load_products(&c, m, used);
    if (rc != ANM_OK) {
        goto out;
    }
    rc = ANM_EPARSE;
    for (uint64_t s = 0; s < n_slots; s++) {
        if (!used[s]) {
            goto out; /* every slot is free or rests */
        }
    }
    size_t n_clients = load_count(&c, 32);
    for (size_t i = 0; i < n_clients && !c.bad; i++) {
        market__client e;
        e.client_order_id = load_u64(&c);
        e.order_id = load_u64(&c);
        e.content_hash = load_u64(&c);
        uint64_t v = load_u64(&c);
        e.participant = (uint32_t)(v >> 32);
        e.slot = (uint32_t)v;
        if (c.bad || e.order_id == 0) {
            goto out;
        }
        if (client_reserve(m) != ANM_OK) {
            rc = ANM_ENOMEM;
            goto out;
        }
        size_t at;
        if (client_find(m, client_hash(e.participant, e.client_order_id), e.participant,
                        e.client_order_id, &at) != NULL) {
            goto out; /* a duplicate entry */
        }
        client_add(m, at, &e);
    }
    uint64_t total = load_u64(&c);
    if (c.bad || total != size || c.at != size) {
        goto out;
    }
    rc = ANM_OK;
out:
    free(used);
    return rc;
}

size_t market_product_list(const market *m, market_product *out, size_t max)
{
    if (m == NULL) {
        return 0;
    }
    for (size_t i = 0; i < m->n_products && i < max; i++) {
        out[i] = m->products[i]->key;
    }
    return m->n_products;
}
