/* dedupe.c: sender sequence windows and the recent-sample set (see dedupe.h). */
#include "ingest/dedupe.h"

#include "engine/error.h"

#include <stdlib.h>
#include <string.h>

struct ingest_senders {
    ingest_sender_window *items; /* sorted by sender_id */
    size_t count, cap;
};

ingest_senders *ingest_senders_new(void) { return calloc(1, sizeof(ingest_senders)); }

void ingest_senders_destroy(ingest_senders **s)
{
    if (!s || !*s)
        return;
    free((*s)->items);
    free(*s);
    *s = NULL;
}

static size_t lower_bound(const ingest_senders *s, uint32_t id)
{
    size_t lo = 0, hi = s->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->items[mid].sender_id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const ingest_sender_window *ingest_senders_find(const ingest_senders *s, uint32_t sender_id)
{
    size_t i = lower_bound(s, sender_id);
    return i < s->count && s->items[i].sender_id == sender_id ? &s->items[i] : NULL;
}

static ingest_sender_window *find_or_add(ingest_senders *s, uint32_t sender_id, int *added)
{
    size_t i = lower_bound(s, sender_id);
    *added = 0;
    if (i < s->count && s->items[i].sender_id == sender_id)
        return &s->items[i];
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        ingest_sender_window *p = realloc(s->items, cap * sizeof *p);
        if (!p)
            return NULL;
        s->items = p;
        s->cap = cap;
    }
    memmove(&s->items[i + 1], &s->items[i], (s->count - i) * sizeof *s->items);
    s->count++;
    memset(&s->items[i], 0, sizeof s->items[i]);
    s->items[i].sender_id = sender_id;
    *added = 1;
    return &s->items[i];
}

static int bit_get(const ingest_sender_window *w, uint64_t seq)
{
    unsigned i = (unsigned)(seq % INGEST_SEQ_WINDOW);
    return (int)(w->bits[i / 64] >> (i % 64) & 1u);
}

static void bit_set(ingest_sender_window *w, uint64_t seq, int on)
{
    unsigned i = (unsigned)(seq % INGEST_SEQ_WINDOW);
    if (on)
        w->bits[i / 64] |= (uint64_t)1 << (i % 64);
    else
        w->bits[i / 64] &= ~((uint64_t)1 << (i % 64));
}

ingest_seq_state ingest_senders_check(const ingest_senders *s, uint32_t sender_id, uint64_t seq)
{
    const ingest_sender_window *w = ingest_senders_find(s, sender_id);
    if (!w || seq > w->max_seq)
        return INGEST_SEQ_NEW;
    if (w->max_seq - seq >= INGEST_SEQ_WINDOW)
        return INGEST_SEQ_STALE;
    return bit_get(w, seq) ? INGEST_SEQ_SEEN : INGEST_SEQ_NEW;
}

int ingest_senders_mark(ingest_senders *s, uint32_t sender_id, uint64_t seq)
{
    int added;
    ingest_sender_window *w = find_or_add(s, sender_id, &added);
    if (!w)
        return ANM_ENOMEM;
    if (added) {
        w->max_seq = seq;
    } else if (seq > w->max_seq) {
        if (seq - w->max_seq >= INGEST_SEQ_WINDOW)
            memset(w->bits, 0, sizeof w->bits);
        else
            for (uint64_t q = w->max_seq + 1; q < seq; q++)
                bit_set(w, q, 0);
        w->max_seq = seq;
    } else if (w->max_seq - seq >= INGEST_SEQ_WINDOW) {
        return ANM_OK; /* below the window: nothing to remember */
    }
    bit_set(w, seq, 1);
    return ANM_OK;
}

int ingest_senders_put(ingest_senders *s, const ingest_sender_window *w)
{
    int added;
    ingest_sender_window *dst = find_or_add(s, w->sender_id, &added);
    if (!dst)
        return ANM_ENOMEM;
    *dst = *w;
    return ANM_OK;
}

size_t ingest_senders_count(const ingest_senders *s) { return s->count; }
const ingest_sender_window *ingest_senders_at(const ingest_senders *s, size_t i)
{
    return i < s->count ? &s->items[i] : NULL;
}

void ingest_sender_window_to_bytes(const ingest_sender_window *w, unsigned char *out)
{
    for (unsigned i = 0; i < INGEST_SEQ_WINDOW_BYTES; i++)
        out[i] = (unsigned char)(w->bits[i / 8] >> (8 * (i % 8)));
}

void ingest_sender_window_from_bytes(ingest_sender_window *w, const unsigned char *in)
{
    memset(w->bits, 0, sizeof w->bits);
    for (unsigned i = 0; i < INGEST_SEQ_WINDOW_BYTES; i++)
        w->bits[i / 8] |= (uint64_t)in[i] << (8 * (i % 8));
}

/* ---- recent samples ---------------------------------------------------- */

enum { SLOT_EMPTY = 0, SLOT_TOMBSTONE = UINT32_MAX };

typedef struct slot {
    uint32_t tag; /* signal + 1, or empty / tombstone */
    int64_t utc_ms;
} slot;

struct ingest_recent {
    slot *gen[2]; /* gen[0] current, gen[1] previous */
    size_t mask;
    size_t used; /* slots taken in the current generation */
};

ingest_recent *ingest_recent_new(int log2_slots)
{
    if (log2_slots < 10 || log2_slots > 24)
        return NULL;
    ingest_recent *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    size_t n = (size_t)1 << log2_slots;
    r->mask = n - 1;
    r->gen[0] = calloc(n, sizeof(slot));
    r->gen[1] = calloc(n, sizeof(slot));
    if (!r->gen[0] || !r->gen[1])
        ingest_recent_destroy(&r);
    return r;
}

void ingest_recent_destroy(ingest_recent **r)
{
    if (!r || !*r)
        return;
    free((*r)->gen[0]);
    free((*r)->gen[1]);
    free(*r);
    *r = NULL;
}

static size_t hash(uint32_t signal, int64_t utc_ms)
{
    uint64_t x = (uint64_t)utc_ms * 0x9e3779b97f4a7c15u ^ ((uint64_t)signal << 32 | signal);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 29;
    return (size_t)x;
}

/* The slot holding the key in table t, or NULL. */
static slot *lookup(const ingest_recent *r, slot *t, uint32_t tag, int64_t utc_ms)
{
    for (size_t i = hash(tag, utc_ms) & r->mask;; i = (i + 1) & r->mask) {
        if (t[i].tag == SLOT_EMPTY)
            return NULL;
        if (t[i].tag == tag && t[i].utc_ms == utc_ms)
            return &t[i];
    }
}

int ingest_recent_insert(ingest_recent *r, uint32_t signal, int64_t utc_ms)
{
    uint32_t tag = signal + 1;
    if (tag == SLOT_EMPTY || tag == SLOT_TOMBSTONE)
        tag = SLOT_TOMBSTONE - 1; /* signal ids UINT32_MAX-1.. share a tag: only a false miss risk */
    if (lookup(r, r->gen[0], tag, utc_ms) || lookup(r, r->gen[1], tag, utc_ms))
        return 0;
    if (r->used >= (r->mask + 1) / 2) {
        slot *old = r->gen[1];
        r->gen[1] = r->gen[0];
        memset(old, 0, (r->mask + 1) * sizeof(slot));
        r->gen[0] = old;
        r->used = 0;
    }
    size_t i = hash(tag, utc_ms) & r->mask;
    while (r->gen[0][i].tag != SLOT_EMPTY)
        i = (i + 1) & r->mask;
    r->gen[0][i].tag = tag;
    r->gen[0][i].utc_ms = utc_ms;
    r->used++;
    return 1;
}

void ingest_recent_remove(ingest_recent *r, uint32_t signal, int64_t utc_ms)
{
    uint32_t tag = signal + 1;
    if (tag == SLOT_EMPTY || tag == SLOT_TOMBSTONE)
        tag = SLOT_TOMBSTONE - 1;
    for (int g = 0; g < 2; g++) {
        slot *s = lookup(r, r->gen[g], tag, utc_ms);
        if (s)
            s->tag = SLOT_TOMBSTONE; /* keeps probe chains intact */
    }
}
