/*
 * service.c: anm-market: the directory of text ids (zone files and the
 * participants file), the ROUTER/PUB loop with group commit, the statement
 * adapter, recovery from the journal and replay (docs/market-protocol.md).
 */
#define _GNU_SOURCE
#include "market/service.h"

#include "market/auction.h"
#include "market/protocol.h"
#include "market/snapshot.h"
#include "market/store.h"

#include "engine/bus.h"
#include "engine/clock.h"
#include "engine/db.h"
#include "engine/log.h"
#include "engine/network.h"
#include "engine/reactor.h"
#include "engine/zone.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define ID_LEN 64

/* ---- directory: text ids <-> core ids, serialised as the CONFIG event -------- */

typedef struct dir_zone {
    char id[ID_LEN];
    int32_t floor_ticks, ceiling_ticks;
} dir_zone;

typedef struct dir_participant {
    char id[ID_LEN];
    uint8_t kind, admin;
} dir_participant;

typedef struct dir_der {
    char id[ID_LEN];
    uint32_t zone; /* 1-based */
    int64_t capacity, max_curtailment;
} dir_der;

typedef struct dir_allow {
    uint32_t participant, der;
} dir_allow;

typedef struct directory {
    size_t n_zones, n_participants, n_ders, n_allows;
    dir_zone *zones;             /* zone id = index + 1 */
    dir_participant *participants; /* participant id = index + 1 */
    dir_der *ders;               /* der id = index + 1 */
    dir_allow *allows;
    int64_t gate_closure_offset_ms;
    uint8_t initial_mode;
} directory;

static void directory_free(directory *d)
{
    free(d->zones);
    free(d->participants);
    free(d->ders);
    free(d->allows);
    memset(d, 0, sizeof *d);
}

static uint32_t dir_zone_find(const directory *d, const char *id)
{
    for (size_t i = 0; i < d->n_zones; i++)
        if (strcmp(d->zones[i].id, id) == 0)
            return (uint32_t)i + 1;
    return 0;
}

static uint32_t dir_participant_find(const directory *d, const char *id)
{
    for (size_t i = 0; i < d->n_participants; i++)
        if (strcmp(d->participants[i].id, id) == 0)
            return (uint32_t)i + 1;
    return 0;
}

/* DER id within zone (1-based), or 0; *elsewhere gets a DER of that name in another zone. */
static uint32_t dir_der_find(const directory *d, uint32_t zone, const char *id, uint32_t *elsewhere)
{
    *elsewhere = 0;
    for (size_t i = 0; i < d->n_ders; i++) {
        if (strcmp(d->ders[i].id, id) != 0)
            continue;
        if (d->ders[i].zone == zone)
            return (uint32_t)i + 1;
        *elsewhere = (uint32_t)i + 1;
    }
    return 0;
}

static void put_id(market_bytes *b, const char *id)
{
    char tmp[ID_LEN] = {0};
    snprintf(tmp, sizeof tmp, "%s", id);
    market_bytes_raw(b, tmp, sizeof tmp);
}

static int directory_encode(const directory *d, market_bytes *b)
{
    market_bytes_reset(b);
    market_bytes_u32(b, (uint32_t)d->n_zones);
    for (size_t i = 0; i < d->n_zones; i++) {
        put_id(b, d->zones[i].id);
        market_bytes_u32(b, (uint32_t)d->zones[i].floor_ticks);
        market_bytes_u32(b, (uint32_t)d->zones[i].ceiling_ticks);
    }
    market_bytes_u32(b, (uint32_t)d->n_participants);
    for (size_t i = 0; i < d->n_participants; i++) {
        put_id(b, d->participants[i].id);
        market_bytes_u8(b, d->participants[i].kind);
        market_bytes_u8(b, d->participants[i].admin);
    }
    market_bytes_u32(b, (uint32_t)d->n_ders);
    for (size_t i = 0; i < d->n_ders; i++) {
        put_id(b, d->ders[i].id);
        market_bytes_u32(b, d->ders[i].zone);
        market_bytes_u64(b, (uint64_t)d->ders[i].capacity);
        market_bytes_u64(b, (uint64_t)d->ders[i].max_curtailment);
    }
    market_bytes_u32(b, (uint32_t)d->n_allows);
    for (size_t i = 0; i < d->n_allows; i++) {
        market_bytes_u32(b, d->allows[i].participant);
        market_bytes_u32(b, d->allows[i].der);
    }
    market_bytes_u64(b, (uint64_t)d->gate_closure_offset_ms);
    market_bytes_u8(b, d->initial_mode);
    return b->failed ? ANM_ENOMEM : ANM_OK;
}

typedef struct cursor {
    const uint8_t *p;
    size_t size, at;
    int bad;
} cursor;

static const uint8_t *cur_take(cursor *c, size_t n)
{
    if (c->bad || c->size - c->at < n) {
        c->bad = 1;
        return NULL;
    }
    c->at += n;
    return c->p + c->at - n;
}

static uint64_t cur_le(cursor *c, size_t n)
{
    const uint8_t *p = cur_take(c, n);
    uint64_t v = 0;
    for (size_t i = 0; p && i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void cur_id(cursor *c, char *dst)
{
    const uint8_t *p = cur_take(c, ID_LEN);
    if (p != NULL)
        memcpy(dst, p, ID_LEN);
    dst[ID_LEN - 1] = '\0';
}

static int directory_decode(const uint8_t *data, size_t size, directory *d)
{
    memset(d, 0, sizeof *d);
    cursor c = {data, size, 0, 0};
    d->n_zones = (size_t)cur_le(&c, 4);
    if (d->n_zones > size || !(d->zones = calloc(d->n_zones + 1, sizeof *d->zones)))
        goto bad;
    for (size_t i = 0; i < d->n_zones; i++) {
        cur_id(&c, d->zones[i].id);
        d->zones[i].floor_ticks = (int32_t)cur_le(&c, 4);
        d->zones[i].ceiling_ticks = (int32_t)cur_le(&c, 4);
    }
    d->n_participants = (size_t)cur_le(&c, 4);
    if (d->n_participants > size ||
        !(d->participants = calloc(d->n_participants + 1, sizeof *d->participants)))
        goto bad;
    for (size_t i = 0; i < d->n_participants; i++) {
        cur_id(&c, d->participants[i].id);
        d->participants[i].kind = (uint8_t)cur_le(&c, 1);
        d->participants[i].admin = (uint8_t)cur_le(&c, 1);
    }
    d->n_ders = (size_t)cur_le(&c, 4);
    if (d->n_ders > size || !(d->ders = calloc(d->n_ders + 1, sizeof *d->ders)))
        goto bad;
    for (size_t i = 0; i < d->n_ders; i++) {
        cur_id(&c, d->ders[i].id);
        d->ders[i].zone = (uint32_t)cur_le(&c, 4);
        d->ders[i].capacity = (int64_t)cur_le(&c, 8);
        d->ders[i].max_curtailment = (int64_t)cur_le(&c, 8);
    }
    d->n_allows = (size_t)cur_le(&c, 4);
    if (d->n_allows > size || !(d->allows = calloc(d->n_allows + 1, sizeof *d->allows)))
        goto bad;
    for (size_t i = 0; i < d->n_allows; i++) {
        d->allows[i].participant = (uint32_t)cur_le(&c, 4);
        d->allows[i].der = (uint32_t)cur_le(&c, 4);
    }
    d->gate_closure_offset_ms = (int64_t)cur_le(&c, 8);
    d->initial_mode = (uint8_t)cur_le(&c, 1);
    if (c.bad || c.at != size)
        goto bad;
    return ANM_OK;
bad:
    directory_free(d);
    return ANM_EPARSE;
}

static int directory_registry(const directory *d, market_registry **out)
{
    market_registry *r = market_registry_new();
    int rc = r ? ANM_OK : ANM_ENOMEM;
    for (size_t i = 0; rc == ANM_OK && i < d->n_zones; i++)
        rc = market_registry_add_zone(
            r, (uint32_t)i + 1,
            (market_zone_info){d->zones[i].floor_ticks, d->zones[i].ceiling_ticks});
    for (size_t i = 0; rc == ANM_OK && i < d->n_participants; i++)
        rc = market_registry_add_participant(r, (uint32_t)i + 1,
                                             (market_participant_kind)d->participants[i].kind);
    for (size_t i = 0; rc == ANM_OK && i < d->n_ders; i++)
        rc = market_registry_add_der(r, (uint32_t)i + 1,
                                     (market_der_info){d->ders[i].zone, d->ders[i].capacity,
                                                       d->ders[i].max_curtailment});
    for (size_t i = 0; rc == ANM_OK && i < d->n_allows; i++)
        rc = market_registry_allow(r, d->allows[i].participant, d->allows[i].der);
    if (rc != ANM_OK)
        market_registry_destroy(&r);
    *out = r;
    return rc;
}

static int load_zone_file(directory *d, const char *path, anm_error_detail *err)
{
    char *case_path = NULL;
    anm_case *network = NULL;
    anm_zone_set *set = NULL;
    int rc = anm_zone_file_case_path(path, &case_path, err);
    if (rc == ANM_OK)
        rc = anm_case_load(case_path, &network, err);
    if (rc == ANM_OK)
        rc = anm_zone_set_load(path, network, &set, err);
    if (rc != ANM_OK)
        goto out;
    for (size_t z = 0; z < set->n_zones && rc == ANM_OK; z++) {
        const anm_zone *zone = &set->zones[z];
        dir_zone *grown = realloc(d->zones, (d->n_zones + 1) * sizeof *grown);
        dir_der *ders = realloc(d->ders, (d->n_ders + zone->n_ders + 1) * sizeof *ders);
        if (grown)
            d->zones = grown;
        if (ders)
            d->ders = ders;
        if (!grown || !ders) {
            rc = ANM_ENOMEM;
            break;
        }
        dir_zone *dz = &d->zones[d->n_zones++];
        memset(dz, 0, sizeof *dz);
        snprintf(dz->id, sizeof dz->id, "%s", zone->id);
        for (size_t i = 0; i < zone->n_ders; i++) {
            dir_der *der = &d->ders[d->n_ders++];
            memset(der, 0, sizeof *der);
            snprintf(der->id, sizeof der->id, "%s", zone->ders[i].id);
            der->zone = (uint32_t)d->n_zones;
            der->capacity = llround(zone->ders[i].capacity_mw * MARKET_QUANTITY_UNITS_PER_MW);
            der->max_curtailment = der->capacity;
        }
    }
out:
    anm_zone_set_destroy(&set);
    anm_case_destroy(&network);
    free(case_path);
    return rc;
}

static int load_participants(directory *d, const char *path, anm_error_detail *err)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        anm_error_detail_set(err, path, jerr.line, jerr.column, NULL, "%s", jerr.text);
        return ANM_EPARSE;
    }
    int rc = ANM_OK;
    json_int_t version = 0;
    double floor_gbp = -1000.0, ceiling_gbp = 1000.0;
    json_t *list = NULL;
    if (json_unpack_ex(root, &jerr, JSON_STRICT, "{s:I, s?F, s?F, s:o}", "version", &version,
                       "price_floor", &floor_gbp, "price_ceiling", &ceiling_gbp, "participants",
                       &list) != 0 ||
        version != 1 || !json_is_array(list)) {
        anm_error_detail_set(err, path, 0, 0, "", "expected {\"version\": 1, \"participants\": "
                             "[...], \"price_floor\"?, \"price_ceiling\"?}: %s", jerr.text);
        rc = ANM_ECONFIG;
        goto out;
    }
    int32_t floor_ticks, ceiling_ticks;
    if (market_protocol_price_ticks(floor_gbp, &floor_ticks) != ANM_OK ||
        market_protocol_price_ticks(ceiling_gbp, &ceiling_ticks) != ANM_OK ||
        floor_ticks > ceiling_ticks) {
        anm_error_detail_set(err, path, 0, 0, "price_floor", "bad price floor or ceiling");
        rc = ANM_ECONFIG;
        goto out;
    }
    for (size_t z = 0; z < d->n_zones; z++) {
        d->zones[z].floor_ticks = floor_ticks;
        d->zones[z].ceiling_ticks = ceiling_ticks;
    }
    size_t n = json_array_size(list);
    d->participants = calloc(n + 1, sizeof *d->participants);
    if (d->participants == NULL) {
        rc = ANM_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n && rc == ANM_OK; i++) {
        const char *id = NULL, *kind = NULL;
        int admin = 0;
        json_t *ders = NULL;
        char where[64];
        snprintf(where, sizeof where, "participants[%zu]", i);
        if (json_unpack_ex(json_array_get(list, i), &jerr, JSON_STRICT, "{s:s, s:s, s?b, s?o}",
                           "id", &id, "kind", &kind, "admin", &admin, "ders", &ders) != 0) {
            anm_error_detail_set(err, path, 0, 0, where, "%s", jerr.text);
            rc = ANM_ECONFIG;
            break;
        }
        dir_participant *p = &d->participants[d->n_participants];
        if (strlen(id) == 0 || strlen(id) >= ID_LEN || dir_participant_find(d, id) != 0) {
            anm_error_detail_set(err, path, 0, 0, where, "empty, long or duplicate id \"%s\"", id);
            rc = ANM_ECONFIG;
            break;
        }
        snprintf(p->id, sizeof p->id, "%s", id);
        p->admin = (uint8_t)(admin != 0);
        if (strcmp(kind, "trader") == 0)
            p->kind = MARKET_PARTICIPANT_TRADER;
        else if (strcmp(kind, "system_operator") == 0)
            p->kind = MARKET_PARTICIPANT_SYSTEM_OPERATOR;
        else {
            anm_error_detail_set(err, path, 0, 0, where,
                                 "kind \"%s\" is not trader or system_operator", kind);
            rc = ANM_ECONFIG;
            break;
        }
        d->n_participants++;
        size_t n_ders = ders ? json_array_size(ders) : 0;
        for (size_t k = 0; k < n_ders; k++) {
            const char *zone = NULL, *der = NULL;
            snprintf(where, sizeof where, "participants[%zu].ders[%zu]", i, k);
            if (json_unpack_ex(json_array_get(ders, k), &jerr, JSON_STRICT, "{s:s, s:s}", "zone",
                               &zone, "der", &der) != 0) {
                anm_error_detail_set(err, path, 0, 0, where, "%s", jerr.text);
                rc = ANM_ECONFIG;
                break;
            }
            uint32_t elsewhere, zone_id = dir_zone_find(d, zone);
            uint32_t der_id = zone_id ? dir_der_find(d, zone_id, der, &elsewhere) : 0;
            if (der_id == 0) {
                anm_error_detail_set(err, path, 0, 0, where, "no der \"%s\" in zone \"%s\"", der,
                                     zone);
                rc = ANM_ECONFIG;
                break;
            }
            dir_allow *grown = realloc(d->allows, (d->n_allows + 1) * sizeof *grown);
            if (grown == NULL) {
                rc = ANM_ENOMEM;
                break;
            }
            d->allows = grown;
            d->allows[d->n_allows++] = (dir_allow){(uint32_t)d->n_participants, der_id};
        }
    }
out:
    json_decref(root);
    return rc;
}

/* ---- the core: market, digest, resting-order list ----------------------------- */

typedef struct core {
    directory dir;
    market_registry *registry;
    market *m;
    uint64_t digest; /* FNV-1a 64 over trades and auction results */
    uint64_t trades, events;
    uint64_t *orders; /* ids of accepted orders that may rest, ascending */
    size_t n_orders, cap_orders;
    int64_t last_event_ms; /* engine time of the latest applied event */
    market_trade *pending; /* trades of the current batch, for publishing */
    size_t n_pending, cap_pending;
    int collect;
} core;

static void fnv(uint64_t *h, const void *data, size_t size)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < size; i++) {
        *h ^= p[i];
        *h *= 1099511628211ull;
    }
}

static void fnv_u64(uint64_t *h, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    fnv(h, b, 8);
}

static void digest_trade(uint64_t *h, const market_trade *t)
{
    fnv_u64(h, t->trade_id);
    fnv_u64(h, t->buy_order_id);
    fnv_u64(h, t->sell_order_id);
    fnv_u64(h, (uint64_t)t->buyer << 32 | t->seller);
    fnv_u64(h, (uint64_t)t->buy_der << 32 | t->sell_der);
    fnv_u64(h, (uint64_t)t->product.zone << 32 | (uint32_t)t->kind);
    fnv_u64(h, (uint64_t)t->product.period_start_ms);
    fnv_u64(h, (uint64_t)t->volume);
    fnv_u64(h, (uint64_t)(uint32_t)t->buyer_price_ticks << 32 |
                   (uint32_t)t->buyer_availability_ticks);
    fnv_u64(h, (uint64_t)(uint32_t)t->seller_price_ticks << 32 |
                   (uint32_t)t->seller_availability_ticks);
    fnv_u64(h, (uint64_t)t->executed_ms);
}

static void on_trade(void *context, const market_trade *t)
{
    core *c = context;
    digest_trade(&c->digest, t);
    c->trades++;
    if (!c->collect)
        return;
    if (c->n_pending == c->cap_pending) {
        size_t cap = c->cap_pending ? c->cap_pending * 2 : 256;
        market_trade *grown = realloc(c->pending, cap * sizeof *grown);
        if (grown == NULL)
            return; /* publishing is best effort; the journal and digest are not affected */
        c->pending = grown;
        c->cap_pending = cap;
    }
    c->pending[c->n_pending++] = *t;
}

static int core_track(core *c, uint64_t order_id)
{
    if (c->n_orders == c->cap_orders) {
        /* compact first: drop ids that no longer rest */
        size_t kept = 0;
        market_order_view view;
        for (size_t i = 0; i < c->n_orders; i++)
            if (market_order_get(c->m, c->orders[i], &view))
                c->orders[kept++] = c->orders[i];
        c->n_orders = kept;
        if (kept * 2 > c->cap_orders || c->cap_orders == 0) {
            size_t cap = c->cap_orders ? c->cap_orders * 2 : 4096;
            uint64_t *grown = realloc(c->orders, cap * sizeof *grown);
            if (grown == NULL)
                return ANM_ENOMEM;
            c->orders = grown;
            c->cap_orders = cap;
        }
    }
    c->orders[c->n_orders++] = order_id;
    return ANM_OK;
}

static int core_init(core *c, const uint8_t *config, size_t size)
{
    memset(c, 0, sizeof *c);
    c->digest = 14695981039346656037ull;
    int rc = directory_decode(config, size, &c->dir);
    if (rc == ANM_OK)
        rc = directory_registry(&c->dir, &c->registry);
    if (rc != ANM_OK)
        return rc;
    market_config mc = {0};
    mc.registry = c->registry;
    mc.gate_closure_offset_ms = c->dir.gate_closure_offset_ms;
    mc.on_trade = on_trade;
    mc.on_trade_context = c;
    mc.initial_mode = c->dir.initial_mode ? MARKET_MODE_CALL : MARKET_MODE_CONTINUOUS;
    c->m = market_new(&mc);
    return c->m ? ANM_OK : ANM_ENOMEM;
}

static void core_free(core *c)
{
    market_destroy(&c->m);
    market_registry_destroy(&c->registry);
    directory_free(&c->dir);
    free(c->orders);
    free(c->pending);
    memset(c, 0, sizeof *c);
}

static void digest_auction(uint64_t *h, const market_auction_result *a)
{
    fnv_u64(h, (uint64_t)a->unconstrained_volume);
    fnv_u64(h, (uint64_t)a->accepted_volume);
    fnv_u64(h, (uint64_t)a->clearing_rank);
    fnv_u64(h, (uint64_t)a->price_setting_order_id);
    fnv_u64(h, (uint64_t)(int64_t)a->limiting_constraint);
    for (size_t i = 0; i < a->n_bids; i++)
        fnv_u64(h, (uint64_t)a->bids[i].accepted);
    for (size_t i = 0; i < a->n_offers; i++)
        fnv_u64(h, (uint64_t)a->offers[i].accepted);
}

/* Applies a decoded event; *result gets the core's answer. */
static int core_apply(core *c, const market_event *e, market_result *result,
                      market_auction_result *auction)
{
    market_result scratch;
    market_auction_result scratch_auction;
    if (result == NULL)
        result = &scratch;
    if (auction == NULL)
        auction = &scratch_auction;
    memset(result, 0, sizeof *result);
    int rc = ANM_OK;
    if (e->type != MARKET_EVENT_SNAPSHOT)
        c->events++;
    if (e->type != MARKET_EVENT_SNAPSHOT && e->type != MARKET_EVENT_CONFIG &&
        e->now_ms > c->last_event_ms)
        c->last_event_ms = e->now_ms;
    switch (e->type) {
    case MARKET_EVENT_CONFIG: break;
    case MARKET_EVENT_SNAPSHOT: break; /* a marker: recovery and replay read it first */
    case MARKET_EVENT_SUBMIT:
        rc = market_submit(c->m, e->now_ms, &e->spec, result);
        if (rc == ANM_OK && result->reason == MARKET_ACCEPTED && !result->resubmission &&
            result->resting > 0)
            rc = core_track(c, result->order_id);
        break;
    case MARKET_EVENT_CANCEL:
        rc = market_cancel(c->m, e->now_ms, e->participant, e->order_id, result);
        break;
    case MARKET_EVENT_REPLACE:
        rc = market_replace(c->m, e->now_ms, e->order_id, &e->spec, result);
        if (rc == ANM_OK && result->reason == MARKET_ACCEPTED && result->resting > 0)
            rc = core_track(c, result->order_id);
        break;
    case MARKET_EVENT_MODE: rc = market_set_mode(c->m, e->product, e->mode); break;
    case MARKET_EVENT_STATEMENT: {
        market_statement *s = market_event_statement(e);
        rc = s ? market_set_statement(c->m, e->product, s) : ANM_EINVAL;
        break;
    }
    case MARKET_EVENT_AUCTION:
        rc = market_auction_run(c->m, e->now_ms, e->product, &e->auction, auction);
        if (rc == ANM_OK)
            digest_auction(&c->digest, auction);
        break;
    case MARKET_EVENT_EXPIRE: (void)market_expire(c->m, e->now_ms, e->product); break;
    }
    return rc;
}

/* The digest of trades, auctions and the books' resting orders. */
static uint64_t core_digest(core *c, size_t *resting)
{
    uint64_t h = c->digest;
    size_t n = 0;
    market_order_view v;
    for (size_t i = 0; i < c->n_orders; i++) {
        if (!market_order_get(c->m, c->orders[i], &v))
            continue;
        n++;
        fnv_u64(&h, v.order_id);
        fnv_u64(&h, v.client_order_id);
        fnv_u64(&h, (uint64_t)v.spec.participant << 32 | v.spec.der);
        fnv_u64(&h, (uint64_t)v.spec.product.zone << 32 | (uint32_t)v.spec.side);
        fnv_u64(&h, (uint64_t)v.spec.product.period_start_ms);
        fnv_u64(&h, (uint64_t)(uint32_t)v.spec.price_ticks << 32 |
                        (uint32_t)v.spec.availability_ticks);
        fnv_u64(&h, (uint64_t)v.spec.quantity);
        fnv_u64(&h, (uint64_t)v.spec.min_quantity);
        fnv_u64(&h, (uint64_t)v.spec.valid_until_ms);
        fnv_u64(&h, (uint64_t)v.filled);
    }
    if (resting != NULL)
        *resting = n;
    return h;
}

/* ---- snapshots -------------------------------------------------------------------- */

static int snapshot_path(const char *journal, char *buf, size_t size)
{
    return snprintf(buf, size, "%s.snapshot", journal) < (int)size ? ANM_OK : ANM_ERANGE;
}

/* Restores a fresh core (core_init done) from a snapshot file with this config. */
static int core_restore(core *c, const market_snapshot_file *f, const uint8_t *config,
                        size_t config_size)
{
    if (f->config_size != config_size || memcmp(f->config, config, config_size) != 0) {
        anm_log_error("market", "the snapshot was written with other zones, participants or "
                                "gate closure than its journal");
        return ANM_ECONFIG;
    }
    int rc = market_snapshot_load(c->m, f->market, f->market_size);
    if (rc != ANM_OK) {
        anm_log_error("market", "could not restore the books of snapshot %" PRIu64 ": %s", f->id,
                      anm_strerror(rc));
        return rc;
    }
    free(c->orders);
    c->orders = malloc((f->n_orders + 1) * sizeof *c->orders);
    if (c->orders == NULL)
        return ANM_ENOMEM;
    if (f->n_orders > 0)
        memcpy(c->orders, f->order_ids, f->n_orders * sizeof *c->orders);
    c->n_orders = c->cap_orders = f->n_orders;
    c->digest = f->digest;
    c->trades = f->trades;
    c->events = f->events;
    c->last_event_ms = f->last_event_ms;
    return ANM_OK;
}

/* The ids of c->orders that still rest (the only ones a snapshot needs), in a new array. */
static uint64_t *core_resting_ids(const core *c, size_t *n)
{
    uint64_t *ids = malloc((c->n_orders + 1) * sizeof *ids);
    *n = 0;
    for (size_t i = 0; ids != NULL && i < c->n_orders; i++)
        if (market_order_get(c->m, c->orders[i], NULL))
            ids[(*n)++] = c->orders[i];
    return ids;
}

/* ---- replay --------------------------------------------------------------------- */

typedef struct replay_ctx {
    core c;
    int have_core;
    FILE *out;
    int rc;
    const char *path;
    uint64_t records;
    uint8_t *config; /* copy of the CONFIG payload bytes */
    size_t config_size;
} replay_ctx;

static int replay_record(void *context, const uint8_t *payload, size_t size)
{
    replay_ctx *r = context;
    market_event e;
    if (market_event_decode(payload, size, &e) != ANM_OK)
        return ANM_EPARSE;
    if (!r->have_core) {
        if (e.type != MARKET_EVENT_CONFIG)
            return ANM_EPARSE;
        int rc = core_init(&r->c, e.config, e.config_size);
        if (rc != ANM_OK)
            return rc;
        r->have_core = 1;
        r->records = 1;
        r->config = malloc(e.config_size + 1);
        if (r->config == NULL)
            return ANM_ENOMEM;
        memcpy(r->config, e.config, e.config_size);
        r->config_size = e.config_size;
        return 0;
    }
    if (e.type == MARKET_EVENT_SNAPSHOT) {
        /* the journal continues a snapshot: start from it */
        char path[4096];
        market_snapshot_file f;
        if (r->records != 1 || snapshot_path(r->path, path, sizeof path) != ANM_OK)
            return ANM_EPARSE;
        int rc = market_snapshot_file_read(path, &f);
        if (rc == ANM_OK && f.id != e.snapshot_id) {
            anm_log_error("market", "\"%s\" is snapshot %" PRIu64 ", the journal continues %" PRIu64,
                          path, f.id, e.snapshot_id);
            rc = ANM_EPARSE;
        } else if (rc != ANM_OK) {
            anm_log_error("market", "could not read the snapshot \"%s\": %s", path,
                          anm_strerror(rc));
        }
        if (rc == ANM_OK)
            rc = core_restore(&r->c, &f, r->config, r->config_size);
        market_snapshot_file_free(&f);
        r->records++;
        return rc;
    }
    r->records++;
    market_auction_result a;
    int rc = core_apply(&r->c, &e, NULL, &a);
    if (rc == ANM_OK && e.type == MARKET_EVENT_AUCTION && r->out != NULL)
        fprintf(r->out,
                "auction zone=%s period_start_ms=%" PRId64 " bids=%zu offers=%zu "
                "unconstrained_mw=%.3f accepted_mw=%.3f price=%.2f trades=%zu\n",
                r->c.dir.zones[e.product.zone - 1].id, e.product.period_start_ms, a.n_bids,
                a.n_offers, (double)a.unconstrained_volume / 1000.0,
                (double)a.accepted_volume / 1000.0,
                a.has_price ? (double)a.clearing_price_ticks / 100.0 : 0.0, a.n_trades);
    return rc;
}

int market_replay(const char *path, FILE *out, uint64_t *digest)
{
    replay_ctx r;
    memset(&r, 0, sizeof r);
    r.out = out;
    r.path = path;
    uint64_t torn = 0;
    int rc = market_journal_read(path, replay_record, &r, NULL, &torn);
    if (rc == ANM_OK && r.have_core) {
        size_t resting = 0;
        uint64_t h = core_digest(&r.c, &resting);
        if (digest != NULL)
            *digest = h;
        if (out != NULL)
            fprintf(out, "digest=%016" PRIx64 " events=%" PRIu64 " trades=%" PRIu64
                         " resting=%zu torn_bytes=%" PRIu64 "\n",
                    h, r.c.events, r.c.trades, resting, torn);
    } else if (rc == ANM_OK) {
        rc = ANM_ENOTFOUND;
    }
    if (r.have_core)
        core_free(&r.c);
    free(r.config);
    return rc;
}

/* ---- the statement adapter ------------------------------------------------------- */

typedef struct statement_period {
    market_product product;
    size_t n_constraints;
    double headroom[MARKET_MAX_CONSTRAINTS];
    char names[MARKET_MAX_CONSTRAINTS][32];
    size_t n;
    uint32_t *der;
    uint16_t *constraint;
    double *value;
} statement_period;

/*
 * One period of an anm.constraint_statement (docs/constraint-statement.md)
 * into the core's statement: each binding (constraint, contingency) pair is
 * a constraint with the zone's headroom at the confidence quantile (the
 * least headroom over every row, so a safe bound for each binding one);
 * each DER's sensitivities to those pairs. Without binding constraints: one
 * constraint "none" that no DER is sensitive to.
 */
static int adapt_period(const directory *d, uint32_t zone, const json_t *period,
                        const char *confidence, statement_period *out, char *why, size_t why_size)
{
    memset(out, 0, sizeof *out);
    int64_t start;
    const char *utc_start = json_string_value(json_object_get(period, "utc_start"));
    if (utc_start == NULL || anm_time_parse_iso8601(utc_start, &start) != ANM_OK) {
        snprintf(why, why_size, "period without a valid utc_start");
        return ANM_ECONFIG;
    }
    out->product = (market_product){zone, start};
    const json_t *h = json_object_get(json_object_get(json_object_get(period, "headroom_mw"),
                                                      confidence),
                                      "value");
    double headroom = json_is_number(h) ? json_number_value(h) : 0.0;
    const json_t *binding = json_object_get(period, "binding_constraints");
    size_t n_binding = json_array_size(binding);
    if (n_binding > MARKET_MAX_CONSTRAINTS)
        n_binding = MARKET_MAX_CONSTRAINTS;
    for (size_t b = 0; b < n_binding; b++) {
        const json_t *row = json_array_get(binding, b);
        const char *name = json_string_value(json_object_get(row, "constraint"));
        const json_t *contingency = json_object_get(row, "contingency");
        out->headroom[b] = headroom;
        if (json_is_integer(contingency))
            snprintf(out->names[b], sizeof out->names[b], "%.20s/c%lld", name ? name : "?",
                     (long long)json_integer_value(contingency));
        else
            snprintf(out->names[b], sizeof out->names[b], "%.28s", name ? name : "?");
    }
    out->n_constraints = n_binding;
    if (n_binding == 0) {
        out->n_constraints = 1;
        out->headroom[0] = headroom;
        snprintf(out->names[0], sizeof out->names[0], "none");
        return ANM_OK;
    }
    const json_t *ders = json_object_get(period, "ders");
    size_t cap = json_array_size(ders) * n_binding + 1;
    out->der = calloc(cap, sizeof *out->der);
    out->constraint = calloc(cap, sizeof *out->constraint);
    out->value = calloc(cap, sizeof *out->value);
    if (!out->der || !out->constraint || !out->value)
        return ANM_ENOMEM;
    for (size_t k = 0; k < json_array_size(ders); k++) {
        const json_t *der = json_array_get(ders, k);
        uint32_t elsewhere;
        const char *der_id = json_string_value(json_object_get(der, "der"));
        uint32_t id = der_id ? dir_der_find(d, zone, der_id, &elsewhere) : 0;
        if (id == 0)
            continue; /* a DER the market does not know cannot trade */
        const json_t *sens = json_object_get(der, "sensitivities");
        for (size_t s = 0; s < json_array_size(sens); s++) {
            const json_t *row = json_array_get(sens, s);
            const json_t *value = json_object_get(row, "mw_per_mw");
            if (!json_is_number(value))
                continue;
            for (size_t b = 0; b < n_binding; b++) {
                const json_t *bind = json_array_get(binding, b);
                if (json_equal(json_object_get(bind, "constraint"),
                               json_object_get(row, "constraint")) &&
                    json_equal(json_object_get(bind, "contingency"),
                               json_object_get(row, "contingency"))) {
                    out->der[out->n] = id;
                    out->constraint[out->n] = (uint16_t)b;
                    out->value[out->n] = json_number_value(value);
                    out->n++;
                    break;
                }
            }
        }
    }
    return ANM_OK;
}

static void statement_period_free(statement_period *p)
{
    free(p->der);
    free(p->constraint);
    free(p->value);
    memset(p, 0, sizeof *p);
}

/* ---- the service ------------------------------------------------------------------- */

typedef struct reply {
    size_t route_at, route_size, body_at, body_size;
} reply;

typedef struct service {
    const market_service_config *config;
    core c;
    anm_clock *clock;
    anm_bus *bus;
    anm_socket *router, *pub, *zap;
    anm_reactor *reactor;
    market_journal *journal;
    market_key *keys;
    size_t n_keys;
    market_bytes event;
    char *text;        /* replies: routes and bodies */
    size_t text_size, text_cap;
    reply *replies;
    size_t n_replies, cap_replies;
    market_product touched[64];
    size_t n_touched;
    int fatal;
    const uint8_t *config_blob; /* the CONFIG payload (journal's first record), borrowed */
    size_t config_blob_size;
    uint64_t journal_mark;      /* the snapshot the journal continues (0: none) */
    anm_socket *statement_sub;  /* constraint statements from the forecast, or NULL */
    anm_db *db;                 /* results store, or NULL */
    int64_t auction_checked_ms; /* gate closures up to this engine time were auctioned */
    uint64_t events_at_snapshot;
} service;

static char *text_reserve(service *s, size_t n)
{
    if (s->text_size + n > s->text_cap) {
        size_t cap = s->text_cap ? s->text_cap : 1 << 20;
        while (cap < s->text_size + n)
            cap *= 2;
        char *grown = realloc(s->text, cap);
        if (grown == NULL)
            return NULL;
        s->text = grown;
        s->text_cap = cap;
    }
    return s->text + s->text_size;
}

static int add_reply(service *s, const void *route, size_t route_size, const char *body,
                     size_t body_size)
{
    if (s->n_replies == s->cap_replies) {
        size_t cap = s->cap_replies ? s->cap_replies * 2 : 1024;
        reply *grown = realloc(s->replies, cap * sizeof *grown);
        if (grown == NULL)
            return ANM_ENOMEM;
        s->replies = grown;
        s->cap_replies = cap;
    }
    char *p = text_reserve(s, route_size + body_size);
    if (p == NULL)
        return ANM_ENOMEM;
    reply *r = &s->replies[s->n_replies++];
    r->route_at = s->text_size;
    r->route_size = route_size;
    memcpy(p, route, route_size);
    r->body_at = s->text_size + route_size;
    r->body_size = body_size;
    memcpy(p + route_size, body, body_size);
    s->text_size += route_size + body_size;
    return ANM_OK;
}

static void touch(service *s, market_product p)
{
    for (size_t i = 0; i < s->n_touched; i++)
        if (s->touched[i].zone == p.zone && s->touched[i].period_start_ms == p.period_start_ms)
            return;
    if (s->n_touched < sizeof s->touched / sizeof s->touched[0])
        s->touched[s->n_touched++] = p;
}

static int journal_event(service *s)
{
    if (s->event.failed)
        return ANM_ENOMEM;
    int rc = market_journal_append(s->journal, s->event.data, s->event.size);
    if (rc != ANM_OK) {
        anm_log_error("market", "could not journal an event: %s", anm_strerror(rc));
        s->fatal = rc;
    }
    return rc;
}

/* Reject codes of the service beyond the core's (types.h). */
enum { REJECT_UNAUTHORISED_REQUEST = 20, REJECT_CLOCK_NOT_STEPPED = 21, REJECT_INTERNAL = 22,
       REJECT_BAD_STATEMENT = 23 };

static int spec_from_request(service *s, uint32_t participant, const market_request *q,
                             market_order_spec *spec, char *reason, int *code, char *text,
                             size_t text_size)
{
    memset(spec, 0, sizeof *spec);
    uint32_t zone = dir_zone_find(&s->c.dir, q->zone);
    if (zone == 0) {
        snprintf(reason, 32, "unknown_zone");
        *code = MARKET_REJECT_UNKNOWN_ZONE;
        snprintf(text, text_size, "unknown zone \"%s\"", q->zone);
        return -1;
    }
    uint32_t der = MARKET_NO_DER;
    if (q->der[0] != '\0') {
        uint32_t elsewhere;
        der = dir_der_find(&s->c.dir, zone, q->der, &elsewhere);
        if (der == 0) {
            snprintf(reason, 32, "%s", elsewhere ? "der_not_in_zone" : "unknown_der");
            *code = elsewhere ? MARKET_REJECT_DER_NOT_IN_ZONE : MARKET_REJECT_UNKNOWN_DER;
            snprintf(text, text_size, "der \"%s\" is %s zone \"%s\"", q->der,
                     elsewhere ? "not in" : "unknown in", q->zone);
            return -1;
        }
    }
    spec->client_order_id = q->client_order_id;
    spec->participant = participant;
    spec->der = der;
    spec->product = (market_product){zone, q->period_start_ms};
    spec->side = q->side;
    spec->price_ticks = q->price_ticks;
    spec->availability_ticks = q->availability_ticks;
    spec->quantity = q->quantity;
    spec->min_quantity = q->min_quantity;
    spec->valid_until_ms = q->valid_until_ms;
    return 0;
}

static int write_answer(service *s, const void *route, size_t route_size, const market_request *q,
                        const market_result *r)
{
    char body[1024];
    int n;
    if (r->reason == MARKET_ACCEPTED)
        n = market_protocol_write_ack(body, sizeof body, q, r);
    else
        n = market_protocol_write_reject(body, sizeof body, q, market_reject_name(r->reason),
                                         (int)r->reason, r->text);
    if (n < 0)
        return n;
    return add_reply(s, route, route_size, body, (size_t)n);
}

static int write_reject(service *s, const void *route, size_t route_size, const market_request *q,
                        const char *reason, int code, const char *text)
{
    char body[1024];
    int n = market_protocol_write_reject(body, sizeof body, q, reason, code, text);
    if (n < 0)
        return n;
    return add_reply(s, route, route_size, body, (size_t)n);
}

static int write_json(service *s, const void *route, size_t route_size, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL)
        return ANM_ENOMEM;
    int rc = add_reply(s, route, route_size, text, strlen(text));
    free(text);
    return rc;
}

static json_t *order_json(const service *s, const market_order_view *v)
{
    static const char *const sides[] = {"offer", "bid", "requirement"};
    char start[32], until[32] = "";
    anm_time_format_utc(v->spec.product.period_start_ms, start, sizeof start);
    if (v->spec.valid_until_ms != INT64_MAX)
        anm_time_format_utc(v->spec.valid_until_ms, until, sizeof until);
    const directory *d = &s->c.dir;
    return json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:s?}", "order_id",
                     (json_int_t)v->order_id, "client_order_id", (json_int_t)v->client_order_id,
                     "zone", d->zones[v->spec.product.zone - 1].id, "period_start", start, "der",
                     v->spec.der == MARKET_NO_DER ? "" : d->ders[v->spec.der - 1].id, "side",
                     sides[v->spec.side], "price", v->spec.price_ticks / 100.0,
                     "availability_price", v->spec.availability_ticks / 100.0, "quantity_mw",
                     v->spec.quantity / 1000.0, "min_quantity_mw", v->spec.min_quantity / 1000.0,
                     "filled_mw", v->filled / 1000.0, "valid_until", until[0] ? until : NULL);
}

static json_t *stack_json(const market_stack_entry *e, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n && i < 10000; i++)
        json_array_append_new(a, json_pack("{s:I, s:f, s:f, s:f, s:f}", "order_id",
                                           (json_int_t)e[i].order_id, "price",
                                           e[i].price_ticks / 100.0, "availability_price",
                                           e[i].availability_ticks / 100.0, "quantity_mw",
                                           e[i].quantity / 1000.0, "accepted_mw",
                                           e[i].accepted / 1000.0));
    return a;
}

static json_t *auction_json(const service *s, const market_auction_result *a)
{
    char start[32];
    anm_time_format_utc(a->product.period_start_ms, start, sizeof start);
    json_t *trades = json_array();
    for (size_t i = 0; trades && i < a->n_trades && i < 10000; i++) {
        const market_trade *t = &a->trades[i];
        json_array_append_new(
            trades, json_pack("{s:I, s:I, s:I, s:s, s:s, s:f, s:f, s:f}", "trade_id",
                              (json_int_t)t->trade_id, "buy_order_id", (json_int_t)t->buy_order_id,
                              "sell_order_id", (json_int_t)t->sell_order_id, "buyer",
                              s->c.dir.participants[t->buyer - 1].id, "seller",
                              s->c.dir.participants[t->seller - 1].id, "volume_mw",
                              t->volume / 1000.0, "buyer_price", t->buyer_price_ticks / 100.0,
                              "seller_price", t->seller_price_ticks / 100.0));
    }
    const market_statement *statement = market_get_statement(s->c.m, a->product);
    const char *limiting_name = NULL;
    if (statement != NULL && a->limiting_constraint >= 0 &&
        (size_t)a->limiting_constraint < market_statement_constraints(statement))
        limiting_name = market_statement_constraint_name(statement, (size_t)a->limiting_constraint);
    return json_pack("{s:i, s:s, s:s, s:s, s:o, s:o, s:f, s:f, s:b, s:f, s:i, s:s?, s:o}", "v", 1,
                     "kind", "auction.result", "zone", s->c.dir.zones[a->product.zone - 1].id,
                     "period_start", start, "bids", stack_json(a->bids, a->n_bids), "offers",
                     stack_json(a->offers, a->n_offers), "unconstrained_mw",
                     a->unconstrained_volume / 1000.0, "accepted_mw", a->accepted_volume / 1000.0,
                     "has_price", a->has_price, "clearing_price",
                     a->has_price ? a->clearing_price_ticks / 100.0 : 0.0, "limiting_constraint",
                     a->limiting_constraint, "limiting_constraint_name", limiting_name, "trades",
                     trades);
}

static void publish(service *s, const char *topic, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL)
        return;
    anm_frame frames[2] = {{topic, strlen(topic)}, {text, strlen(text)}};
    (void)anm_socket_send(s->pub, frames, 2, ANM_BUS_DONTWAIT);
    free(text);
}

static int apply_statement_json(service *s, const json_t *statement, int64_t now_ms, char *why,
                                size_t why_size, size_t *n_periods)
{
    *n_periods = 0;
    const char *schema = json_string_value(json_object_get(statement, "schema"));
    const json_t *version = json_object_get(statement, "schema_version");
    if (schema == NULL || strcmp(schema, "anm.constraint_statement") != 0 ||
        json_integer_value(version) != 1) {
        snprintf(why, why_size, "not an anm.constraint_statement version 1");
        return ANM_ECONFIG;
    }
    const char *zone_id = json_string_value(json_object_get(statement, "zone"));
    uint32_t zone = zone_id ? dir_zone_find(&s->c.dir, zone_id) : 0;
    if (zone == 0) {
        snprintf(why, why_size, "unknown zone \"%s\"", zone_id ? zone_id : "");
        return ANM_ECONFIG;
    }
    const json_t *periods = json_object_get(statement, "periods");
    const char *confidence = s->config->confidence ? s->config->confidence : "p10";
    for (size_t i = 0; i < json_array_size(periods); i++) {
        statement_period p;
        int rc = adapt_period(&s->c.dir, zone, json_array_get(periods, i), confidence, &p, why,
                              why_size);
        if (rc == ANM_OK)
            rc = market_event_encode_statement(&s->event, now_ms, p.product, p.n_constraints,
                                               p.headroom, (const char(*)[32])p.names, p.n,
                                               p.der, p.constraint, p.value);
        statement_period_free(&p);
        market_event e;
        if (rc == ANM_OK)
            rc = market_event_decode(s->event.data, s->event.size, &e);
        if (rc == ANM_OK)
            rc = core_apply(&s->c, &e, NULL, NULL);
        if (rc == ANM_OK)
            rc = journal_event(s);
        if (rc != ANM_OK) {
            if (why[0] == '\0')
                snprintf(why, why_size, "period %zu: %s", i + 1, anm_strerror(rc));
            return rc;
        }
        (*n_periods)++;
    }
    return ANM_OK;
}

/*
 * Runs the auction of product at now as an event: applied, journaled and
 * committed (write-ahead), then stored (auction id = the event's position in
 * the journal, so a replay never stores it twice) and published. *a is
 * borrowed from the market until the next auction.
 */
static int auction_event(service *s, market_product product, const market_auction_config *config,
                         int64_t now, market_auction_result *a)
{
    market_event e;
    memset(&e, 0, sizeof e);
    e.type = MARKET_EVENT_AUCTION;
    e.now_ms = now;
    e.product = product;
    e.auction = *config;
    int rc = core_apply(&s->c, &e, NULL, a);
    if (rc == ANM_OK)
        rc = market_event_encode_auction(&s->event, now, product, config);
    if (rc == ANM_OK)
        rc = journal_event(s);
    if (rc == ANM_OK)
        rc = market_journal_commit(s->journal);
    if (rc != ANM_OK) {
        s->fatal = rc;
        return rc;
    }
    uint64_t auction_id = s->c.events;
    const char *zone = s->c.dir.zones[product.zone - 1].id;
    if (s->db != NULL) {
        int stored = 0;
        int src = market_store_auction(s->db, auction_id, now, config, a, &stored);
        if (src != ANM_OK)
            anm_log_warn("market", "could not store auction %" PRIu64 " of zone \"%s\": %s (%s)",
                         auction_id, zone, anm_strerror(src), anm_db_error_message(s->db));
    }
    char topic[128];
    snprintf(topic, sizeof topic, "auction.result/%s", zone);
    publish(s, topic, auction_json(s, a));
    touch(s, product);
    return ANM_OK;
}

static int handle_request(service *s, const void *route, size_t route_size, uint32_t participant,
                          const void *topic, size_t topic_size, const void *body, size_t body_size)
{
    market_request q;
    market_protocol_reject why;
    int rc = market_protocol_parse(topic, topic_size, body, body_size, &q, &why);
    if (rc != ANM_OK) {
        market_request_clear(&q);
        return write_reject(s, route, route_size, &q, why.reason, MARKET_REJECT_MALFORMED,
                            why.text);
    }
    int64_t now = anm_clock_now_ms(s->clock);
    market_result r;
    memset(&r, 0, sizeof r);
    char reason[32], text[256];
    int code = 0;
    const dir_participant *who = &s->c.dir.participants[participant - 1];
    if (q.kind >= MARKET_REQ_MODE && !who->admin) {
        rc = write_reject(s, route, route_size, &q, "unauthorised_request",
                          REJECT_UNAUTHORISED_REQUEST, "only an admin participant may do this");
        goto out;
    }
    switch (q.kind) {
    case MARKET_REQ_SUBMIT:
    case MARKET_REQ_REPLACE: {
        market_order_spec spec;
        if (spec_from_request(s, participant, &q, &spec, reason, &code, text, sizeof text) != 0) {
            rc = write_reject(s, route, route_size, &q, reason, code, text);
            break;
        }
        market_event e;
        memset(&e, 0, sizeof e);
        e.type = q.kind == MARKET_REQ_SUBMIT ? MARKET_EVENT_SUBMIT : MARKET_EVENT_REPLACE;
        e.now_ms = now;
        e.spec = spec;
        e.order_id = q.order_id;
        rc = core_apply(&s->c, &e, &r, NULL);
        if (rc == ANM_OK && r.reason == MARKET_ACCEPTED && !r.resubmission) {
            rc = q.kind == MARKET_REQ_SUBMIT
                     ? market_event_encode_submit(&s->event, now, &spec)
                     : market_event_encode_replace(&s->event, now, q.order_id, &spec);
            if (rc == ANM_OK)
                rc = journal_event(s);
            touch(s, spec.product);
        }
        if (rc == ANM_OK)
            rc = write_answer(s, route, route_size, &q, &r);
        break;
    }
    case MARKET_REQ_CANCEL: {
        market_event e;
        memset(&e, 0, sizeof e);
        e.type = MARKET_EVENT_CANCEL;
        e.now_ms = now;
        e.participant = participant;
        e.order_id = q.order_id;
        market_order_view v;
        int had = market_order_get(s->c.m, q.order_id, &v);
        rc = core_apply(&s->c, &e, &r, NULL);
        if (rc == ANM_OK && r.reason == MARKET_ACCEPTED) {
            rc = market_event_encode_cancel(&s->event, now, participant, q.order_id);
            if (rc == ANM_OK)
                rc = journal_event(s);
            if (had)
                touch(s, v.spec.product);
        }
        if (rc == ANM_OK)
            rc = write_answer(s, route, route_size, &q, &r);
        break;
    }
    case MARKET_REQ_QUERY: {
        json_t *orders = json_array();
        market_order_view v;
        if (q.order_id != 0) {
            if (!market_order_get(s->c.m, q.order_id, &v)) {
                json_decref(orders);
                snprintf(text, sizeof text, "order %llu is not resting in the book",
                         (unsigned long long)q.order_id);
                rc = write_reject(s, route, route_size, &q, "unknown_order",
                                  MARKET_REJECT_UNKNOWN_ORDER, text);
                break;
            }
            if (v.spec.participant != participant) {
                json_decref(orders);
                snprintf(text, sizeof text, "order %llu belongs to another participant",
                         (unsigned long long)q.order_id);
                rc = write_reject(s, route, route_size, &q, "not_owner", MARKET_REJECT_NOT_OWNER,
                                  text);
                break;
            }
            json_array_append_new(orders, order_json(s, &v));
        } else {
            for (size_t i = 0; i < s->c.n_orders; i++)
                if (market_order_get(s->c.m, s->c.orders[i], &v) &&
                    v.spec.participant == participant)
                    json_array_append_new(orders, order_json(s, &v));
        }
        json_t *answer = json_pack("{s:i, s:s, s:s, s:o}", "v", 1, "kind", "order.list",
                                   "request", "order.query", "orders", orders);
        if (answer && q.has_request_id)
            json_object_set_new(answer, "request_id", json_integer(q.request_id));
        rc = answer ? write_json(s, route, route_size, answer) : ANM_ENOMEM;
        break;
    }
    case MARKET_REQ_MODE:
    case MARKET_REQ_AUCTION: {
        uint32_t zone = dir_zone_find(&s->c.dir, q.zone);
        if (zone == 0) {
            snprintf(text, sizeof text, "unknown zone \"%s\"", q.zone);
            rc = write_reject(s, route, route_size, &q, "unknown_zone", MARKET_REJECT_UNKNOWN_ZONE,
                              text);
            break;
        }
        market_product product = {zone, q.period_start_ms};
        market_event e;
        memset(&e, 0, sizeof e);
        e.now_ms = now;
        e.product = product;
        market_auction_result a;
        if (q.kind == MARKET_REQ_MODE) {
            e.type = MARKET_EVENT_MODE;
            e.mode = q.mode;
            rc = core_apply(&s->c, &e, NULL, NULL);
            if (rc == ANM_OK)
                rc = market_event_encode_mode(&s->event, now, product, q.mode);
            if (rc == ANM_OK)
                rc = journal_event(s);
        } else {
            market_auction_config ac = {(market_pricing)q.pricing, q.pro_rata};
            rc = auction_event(s, product, &ac, now, &a);
        }
        if (rc != ANM_OK) {
            rc = write_reject(s, route, route_size, &q, "internal", REJECT_INTERNAL,
                              anm_strerror(rc));
            break;
        }
        touch(s, product);
        if (q.kind == MARKET_REQ_MODE) {
            market_result ok = {0};
            rc = write_answer(s, route, route_size, &q, &ok);
        } else {
            json_t *answer = auction_json(s, &a);
            if (answer != NULL) {
                json_object_set_new(answer, "request", json_string("market.auction"));
                if (q.has_request_id)
                    json_object_set_new(answer, "request_id", json_integer(q.request_id));
            }
            rc = answer ? write_json(s, route, route_size, answer) : ANM_ENOMEM;
        }
        break;
    }
    case MARKET_REQ_STATEMENT: {
        size_t n_periods = 0;
        text[0] = '\0';
        rc = apply_statement_json(s, q.statement, now, text, sizeof text, &n_periods);
        if (rc != ANM_OK)
            rc = write_reject(s, route, route_size, &q, "bad_statement", REJECT_BAD_STATEMENT,
                              text);
        else {
            market_result ok = {0};
            ok.trades = 0;
            rc = write_answer(s, route, route_size, &q, &ok);
        }
        break;
    }
    case MARKET_REQ_CLOCK:
        if (!anm_clock_is_simulated(s->clock) || anm_clock_speed(s->clock) != 0.0) {
            rc = write_reject(s, route, route_size, &q, "clock_not_stepped",
                              REJECT_CLOCK_NOT_STEPPED, "the service clock is not a stepped clock");
            break;
        }
        (void)anm_clock_step(s->clock, q.advance_ms);
        {
            market_result ok = {0};
            rc = write_answer(s, route, route_size, &q, &ok);
        }
        break;
    case MARKET_REQ_COUNT_: rc = ANM_EINTERNAL; break;
    }
out:
    market_request_clear(&q);
    return rc;
}

static void publish_batch(service *s)
{
    char topic[128];
    for (size_t i = 0; i < s->c.n_pending; i++) {
        const market_trade *t = &s->c.pending[i];
        const char *zone = s->c.dir.zones[t->product.zone - 1].id;
        char start[32];
        anm_time_format_utc(t->product.period_start_ms, start, sizeof start);
        snprintf(topic, sizeof topic, "market.trade/%s", zone);
        publish(s, topic,
                json_pack("{s:i, s:s, s:I, s:s, s:s, s:s, s:f, s:f, s:f}", "v", 1, "kind",
                          "market.trade", "trade_id", (json_int_t)t->trade_id, "zone", zone,
                          "period_start", start, "type",
                          t->kind == MARKET_TRADE_AUCTION ? "auction" : "continuous", "volume_mw",
                          t->volume / 1000.0, "buyer_price", t->buyer_price_ticks / 100.0,
                          "seller_price", t->seller_price_ticks / 100.0));
    }
    s->c.n_pending = 0;
    for (size_t i = 0; i < s->n_touched; i++) {
        market_product p = s->touched[i];
        const char *zone = s->c.dir.zones[p.zone - 1].id;
        int64_t bid = 0, offer = 0;
        int has_bid = market_best_rank(s->c.m, p, 1, &bid);
        int has_offer = market_best_rank(s->c.m, p, 0, &offer);
        char start[32];
        anm_time_format_utc(p.period_start_ms, start, sizeof start);
        snprintf(topic, sizeof topic, "market.depth/%s", zone);
        json_t *body = json_pack("{s:i, s:s, s:s, s:s, s:I}", "v", 1, "kind", "market.depth",
                                 "zone", zone, "period_start", start, "resting_orders",
                                 (json_int_t)market_resting_orders(s->c.m, p));
        if (body != NULL) {
            json_object_set_new(body, "best_bid_rank", has_bid ? json_integer(bid) : json_null());
            json_object_set_new(body, "best_offer_rank",
                                has_offer ? json_integer(offer) : json_null());
        }
        publish(s, topic, body);
    }
    s->n_touched = 0;
}

enum { MAX_FRAMES = 4 };

/* The topic of one line of a batch: the value of its "kind" member. */
static int line_kind(const char *line, size_t size, const char **kind, size_t *kind_size)
{
    static const char key[] = "\"kind\"";
    const char *end = line + size;
    for (const char *p = line; p + sizeof key - 1 <= end; p++) {
        if (memcmp(p, key, sizeof key - 1) != 0)
            continue;
        p += sizeof key - 1;
        while (p < end && (*p == ' ' || *p == '\t' || *p == ':'))
            p++;
        if (p >= end || *p != '"')
            return -1;
        const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
        if (q == NULL)
            return -1;
        *kind = p + 1;
        *kind_size = (size_t)(q - p - 1);
        return 0;
    }
    return -1;
}

/*
 * `[batch][body]`: each non-empty line of the body is one request, handled
 * exactly as if it came alone; the answers are joined, one per line in
 * request order, into a single reply frame.
 */
static int handle_batch(service *s, const void *route, size_t route_size, uint32_t participant,
                        const char *body, size_t body_size)
{
    size_t lines = 0;
    for (size_t i = 0; i < body_size; i++)
        lines += body[i] == '\n';
    if (lines + 1 > MARKET_PROTOCOL_MAX_BATCH && body_size > 0) {
        size_t real = 0;
        for (size_t i = 0, start = 0; i <= body_size; i++)
            if (i == body_size || body[i] == '\n') {
                real += i > start;
                start = i + 1;
            }
        if (real > MARKET_PROTOCOL_MAX_BATCH)
            return write_reject(s, route, route_size, NULL, "bad_batch", MARKET_REJECT_MALFORMED,
                                "a batch holds at most 256 requests");
    }
    size_t first = s->n_replies;
    int rc = ANM_OK;
    for (size_t i = 0, start = 0; rc == ANM_OK && i <= body_size; i++) {
        if (i < body_size && body[i] != '\n')
            continue;
        const char *line = body + start;
        size_t size = i - start;
        start = i + 1;
        if (size == 0)
            continue;
        const char *kind = MARKET_PROTOCOL_BATCH_TOPIC;
        size_t kind_size = sizeof MARKET_PROTOCOL_BATCH_TOPIC - 1;
        (void)line_kind(line, size, &kind, &kind_size);
        rc = handle_request(s, route, route_size, participant, kind, kind_size, line, size);
    }
    if (rc != ANM_OK)
        return rc;
    if (s->n_replies == first)
        return write_reject(s, route, route_size, NULL, "bad_batch", MARKET_REJECT_MALFORMED,
                            "an empty batch");
    /* join the answers into one reply: route, then the bodies separated by newlines */
    size_t total = route_size;
    for (size_t k = first; k < s->n_replies; k++)
        total += s->replies[k].body_size + 1;
    if (text_reserve(s, total) == NULL)
        return ANM_ENOMEM;
    size_t at = s->text_size;
    char *p = s->text + at;
    memcpy(p, route, route_size);
    size_t used = route_size;
    for (size_t k = first; k < s->n_replies; k++) {
        if (k > first)
            p[used++] = '\n';
        memcpy(p + used, s->text + s->replies[k].body_at, s->replies[k].body_size);
        used += s->replies[k].body_size;
    }
    s->text_size += used;
    s->n_replies = first + 1;
    reply *r = &s->replies[first];
    r->route_at = at;
    r->route_size = route_size;
    r->body_at = at + route_size;
    r->body_size = used - route_size;
    return ANM_OK;
}

static int take_snapshot(service *s, anm_error_detail *detail);

static int on_router(anm_reactor *reactor, anm_socket *socket, void *arg)
{
    (void)reactor;
    service *s = arg;
    void *handle = anm_socket_handle(socket);
    size_t batch_max = s->config->batch_max ? s->config->batch_max : 4096;
    s->n_replies = 0;
    s->text_size = 0;
    s->c.collect = 1;
    int rc = ANM_OK;
    for (size_t n = 0; n < batch_max && rc == ANM_OK; n++) {
        zmq_msg_t frames[MAX_FRAMES];
        int parts = 0, more = 1, got = 0;
        while (more) {
            zmq_msg_t scratch;
            zmq_msg_t *m = parts < MAX_FRAMES ? &frames[parts] : &scratch;
            zmq_msg_init(m);
            if (zmq_msg_recv(m, handle, parts ? 0 : ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(m);
                break;
            }
            got = 1;
            more = zmq_msg_more(m);
            if (m == &scratch)
                zmq_msg_close(m);
            else
                parts++;
        }
        if (!got)
            break;
        const char *user = parts > 1 ? zmq_msg_gets(&frames[parts - 1], "User-Id") : NULL;
        uint32_t participant = user ? dir_participant_find(&s->c.dir, user) : 0;
        if (participant == 0) {
            rc = write_reject(s, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]), NULL,
                              "unknown_participant", MARKET_REJECT_UNKNOWN_PARTICIPANT,
                              "the client key maps to no participant of the market");
        } else if (parts != 3) {
            rc = write_reject(s, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]), NULL,
                              "bad_envelope", MARKET_REJECT_MALFORMED,
                              "expected [topic][body] (two frames)");
        } else if (zmq_msg_size(&frames[1]) == sizeof MARKET_PROTOCOL_BATCH_TOPIC - 1 &&
                   memcmp(zmq_msg_data(&frames[1]), MARKET_PROTOCOL_BATCH_TOPIC,
                          sizeof MARKET_PROTOCOL_BATCH_TOPIC - 1) == 0) {
            rc = handle_batch(s, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]), participant,
                              zmq_msg_data(&frames[2]), zmq_msg_size(&frames[2]));
        } else {
            rc = handle_request(s, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]),
                                participant, zmq_msg_data(&frames[1]), zmq_msg_size(&frames[1]),
                                zmq_msg_data(&frames[2]), zmq_msg_size(&frames[2]));
        }
        for (int i = 0; i < parts; i++)
            zmq_msg_close(&frames[i]);
    }
    s->c.collect = 0;
    if (rc != ANM_OK || s->fatal) {
        anm_log_error("market", "stopping: %s", anm_strerror(rc ? rc : s->fatal));
        return rc ? rc : s->fatal;
    }
    /* group commit: one write (and in power mode one fdatasync) for the batch, then the acks */
    rc = market_journal_commit(s->journal);
    if (rc != ANM_OK)
        return rc;
    if (s->db != NULL && s->c.n_pending > 0) {
        /* continuous trades; auction trades were stored with their auction */
        size_t n = 0;
        market_trade *continuous = malloc(s->c.n_pending * sizeof *continuous);
        for (size_t i = 0; continuous != NULL && i < s->c.n_pending; i++)
            if (s->c.pending[i].kind == MARKET_TRADE_CONTINUOUS)
                continuous[n++] = s->c.pending[i];
        long long inserted = 0;
        int src = continuous == NULL ? ANM_ENOMEM
                  : n > 0            ? market_store_trades(s->db, 0, continuous, n, &inserted)
                                     : ANM_OK;
        if (src != ANM_OK)
            anm_log_warn("market", "could not store %zu trades: %s (%s)", n, anm_strerror(src),
                         anm_db_error_message(s->db));
        free(continuous);
    }
    if (s->config->snapshot_every > 0 &&
        s->c.events - s->events_at_snapshot >= s->config->snapshot_every) {
        /* the acks of this batch wait for the snapshot: it is taken between batches */
        (void)take_snapshot(s, NULL);
        if (s->journal == NULL)
            return ANM_EIO;
    }
    for (size_t i = 0; i < s->n_replies; i++) {
        const reply *r = &s->replies[i];
        zmq_send(handle, s->text + r->route_at, r->route_size, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(handle, s->text + r->body_at, r->body_size, ZMQ_DONTWAIT);
    }
    publish_batch(s);
    return ANM_OK;
}

/*
 * The gate-closure auction: every product with resting orders whose gate
 * closure fell in (auction_checked_ms, now] is auctioned, in product order.
 * Runs on the engine clock, so a stepped clock (clock.advance) fires it.
 */
static int on_auction_timer(anm_reactor *reactor, int timer_id, void *arg)
{
    (void)reactor;
    (void)timer_id;
    service *s = arg;
    int64_t now = anm_clock_now_ms(s->clock);
    size_t n = market_product_list(s->c.m, NULL, 0);
    market_product *products = malloc((n + 1) * sizeof *products);
    if (products == NULL)
        return ANM_ENOMEM;
    n = market_product_list(s->c.m, products, n);
    market_auction_config ac = {s->config->auction_pricing, s->config->auction_pro_rata};
    int rc = ANM_OK;
    for (size_t i = 0; i < n && rc == ANM_OK; i++) {
        int64_t gate = products[i].period_start_ms - s->c.dir.gate_closure_offset_ms;
        if (gate <= s->auction_checked_ms || gate > now ||
            market_resting_orders(s->c.m, products[i]) == 0)
            continue;
        market_auction_result a;
        rc = auction_event(s, products[i], &ac, now, &a);
        if (rc == ANM_OK)
            anm_log_info("market", "gate-closure auction of zone \"%s\" period %" PRId64
                                   ": %zu trades, %.3f MW",
                         s->c.dir.zones[products[i].zone - 1].id, products[i].period_start_ms,
                         a.n_trades, (double)a.accepted_volume / 1000.0);
    }
    free(products);
    if (now > s->auction_checked_ms)
        s->auction_checked_ms = now;
    publish_batch(s);
    return rc;
}

/* Constraint statements from the forecast (docs/gateway.md: the statement itself, or
 * {"v":1,"kind":"constraint.statement","statement":{...}}). A bad one is logged and skipped. */
static int on_statement(anm_reactor *reactor, anm_socket *socket, void *arg)
{
    (void)reactor;
    service *s = arg;
    for (;;) {
        anm_msg *msg = NULL;
        int rc = anm_socket_recv(socket, &msg, ANM_BUS_DONTWAIT);
        if (rc == ANM_EAGAIN)
            return ANM_OK;
        if (rc != ANM_OK) {
            anm_log_warn("market", "statement subscription: %s", anm_strerror(rc));
            return ANM_OK;
        }
        size_t size = 0;
        const void *body = anm_msg_parts(msg) == 2 ? anm_msg_part(msg, 1, &size) : NULL;
        json_error_t jerr;
        json_t *root = body ? json_loadb(body, size, JSON_REJECT_DUPLICATES, &jerr) : NULL;
        const json_t *statement = root;
        if (root != NULL && json_object_get(root, "schema") == NULL) {
            const char *kind = json_string_value(json_object_get(root, "kind"));
            statement = json_integer_value(json_object_get(root, "v")) == 1 && kind != NULL &&
                                strcmp(kind, "constraint.statement") == 0
                            ? json_object_get(root, "statement")
                            : NULL;
        }
        char why[256] = "";
        size_t n_periods = 0;
        if (statement == NULL) {
            anm_log_warn("market", "skipping a message on the statement topic: not a statement");
        } else {
            rc = apply_statement_json(s, statement, anm_clock_now_ms(s->clock), why, sizeof why,
                                      &n_periods);
            /* periods applied before a bad one stay applied: commit them either way */
            int commit = market_journal_commit(s->journal);
            if (commit != ANM_OK)
                s->fatal = commit;
            if (rc == ANM_OK && commit == ANM_OK)
                anm_log_info("market", "statement \"%s\" from the bus: %zu periods",
                             json_string_value(json_object_get(statement, "id"))
                                 ? json_string_value(json_object_get(statement, "id"))
                                 : "",
                             n_periods);
            else if (s->fatal)
                rc = s->fatal;
            else
                anm_log_warn("market", "skipping a statement from the bus: %s", why);
        }
        json_decref(root);
        anm_msg_destroy(&msg);
        if (s->fatal)
            return s->fatal;
    }
}

static int on_zap(anm_reactor *reactor, anm_socket *socket, void *arg)
{
    (void)reactor;
    service *s = arg;
    int rc = market_zap_handle(anm_socket_handle(socket), s->keys, s->n_keys);
    return rc < 0 ? rc : ANM_OK;
}

void market_service_config_default(market_service_config *config)
{
    memset(config, 0, sizeof *config);
    config->router_endpoint = "tcp://127.0.0.1:5610";
    config->pub_endpoint = "tcp://127.0.0.1:5611";
    config->durability = MARKET_DURABILITY_PROCESS;
    config->clock_spec = "real";
    config->gate_closure_offset_ms = 3600000;
    config->initial_mode = MARKET_MODE_CALL;
    config->confidence = "p10";
    config->batch_max = 4096;
    config->snapshot_every = 1000000;
    config->statement_topic = "constraint.statement";
    config->auction_pricing = MARKET_PAY_AS_BID;
    config->auction_check_ms = 1000;
    config->spin_us = MARKET_SERVICE_DEFAULT_SPIN_US;
    config->reserve_orders = MARKET_SERVICE_DEFAULT_RESERVE_ORDERS;
}

typedef struct recover_ctx {
    service *s;
    const uint8_t *config;
    size_t config_size;
    int started;
    uint64_t records;
    const market_snapshot_file *snapshot; /* NULL: none */
    uint64_t mark;  /* the snapshot this journal continues (0: none) */
    int skip;       /* the journal is the one the snapshot already covers */
} recover_ctx;

static int recover_record(void *context, const uint8_t *payload, size_t size)
{
    recover_ctx *r = context;
    market_event e;
    if (market_event_decode(payload, size, &e) != ANM_OK)
        return ANM_EPARSE;
    uint64_t index = r->records++;
    if (!r->started) {
        if (e.type != MARKET_EVENT_CONFIG)
            return ANM_EPARSE;
        if (e.config_size != r->config_size || memcmp(e.config, r->config, r->config_size) != 0) {
            anm_log_error("market", "the journal was written with other zones, participants or "
                                    "gate closure: start with the same files or a new journal");
            return ANM_ECONFIG;
        }
        r->started = 1;
        return 0;
    }
    if (e.type == MARKET_EVENT_SNAPSHOT) {
        if (index != 1)
            return ANM_EPARSE;
        r->mark = e.snapshot_id;
    }
    if (index == 1) {
        /* decide at the second record whether the journal continues the snapshot */
        if (r->snapshot == NULL && r->mark != 0) {
            anm_log_error("market", "the journal continues snapshot %" PRIu64 " but there is no "
                                    "snapshot file next to it", r->mark);
            return ANM_ECONFIG;
        }
        if (r->snapshot != NULL && r->mark != r->snapshot->id)
            r->skip = 1;
    }
    if (e.type == MARKET_EVENT_SNAPSHOT || r->skip)
        return 0;
    return core_apply(&r->s->c, &e, NULL, NULL);
}

/* Writes a journal at path holding CONFIG and SNAPSHOT(id), synced. */
static int write_continuation(service *s, const char *path, uint64_t id, uint64_t *size,
                              anm_error_detail *detail)
{
    market_journal *j = NULL;
    (void)unlink(path);
    int rc = market_journal_open(path, 0, MARKET_DURABILITY_POWER, &j, detail);
    if (rc == ANM_OK)
        rc = market_event_encode_config(&s->event, s->config_blob, s->config_blob_size);
    if (rc == ANM_OK)
        rc = market_journal_append(j, s->event.data, s->event.size);
    if (rc == ANM_OK)
        rc = market_event_encode_snapshot(&s->event, id);
    if (rc == ANM_OK)
        rc = market_journal_append(j, s->event.data, s->event.size);
    if (rc == ANM_OK)
        rc = market_journal_commit(j);
    if (rc == ANM_OK)
        *size = market_journal_size(j);
    market_journal_destroy(&j);
    return rc;
}

static int sync_directory(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (snprintf(dir, sizeof dir, "%.*s", (int)(slash - path + (slash == path)), path) >=
             (int)sizeof dir)
        return ANM_ERANGE;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ANM_EIO;
    int rc = fsync(fd) == 0 ? ANM_OK : ANM_EIO;
    close(fd);
    return rc;
}

/*
 * Takes a snapshot after a committed batch and starts a new journal after it:
 *   1. JOURNAL.next = CONFIG, SNAPSHOT(id), synced;
 *   2. JOURNAL.snapshot written atomically (snapshot.c);
 *   3. JOURNAL.next renamed over JOURNAL (the old journal is gone), directory synced.
 * A crash between 2 and 3 leaves the new snapshot with the journal it covers:
 * recovery sees that (the journal does not continue the snapshot but is the one
 * it covers, to the byte) and finishes step 3.
 */
static int take_snapshot(service *s, anm_error_detail *detail)
{
    const char *journal = s->config->journal_path;
    char snap[4096], next[4096];
    uint8_t *dump = NULL;
    size_t dump_size = 0, n_ids = 0;
    uint64_t *ids = NULL, size = 0;
    int64_t t0 = anm_monotonic_ns();
    int rc = snapshot_path(journal, snap, sizeof snap);
    if (rc == ANM_OK && snprintf(next, sizeof next, "%s.next", journal) >= (int)sizeof next)
        rc = ANM_ERANGE;
    if (rc == ANM_OK)
        rc = market_snapshot_save(s->c.m, &dump, &dump_size);
    if (rc == ANM_OK && (ids = core_resting_ids(&s->c, &n_ids)) == NULL)
        rc = ANM_ENOMEM;
    uint64_t id = s->c.events;
    if (rc == ANM_OK)
        rc = write_continuation(s, next, id, &size, detail);
    if (rc == ANM_OK) {
        market_snapshot_file f = {.id = id,
                                  .base_mark = s->journal_mark,
                                  .covered_bytes = market_journal_size(s->journal),
                                  .digest = s->c.digest,
                                  .trades = s->c.trades,
                                  .events = s->c.events,
                                  .last_event_ms = s->c.last_event_ms,
                                  .config = s->config_blob,
                                  .config_size = s->config_blob_size,
                                  .order_ids = ids,
                                  .n_orders = n_ids,
                                  .market = dump,
                                  .market_size = dump_size};
        rc = market_snapshot_file_write(snap, &f);
    }
    if (rc == ANM_OK) {
        market_journal_destroy(&s->journal);
        if (rename(next, journal) != 0 || sync_directory(journal) != ANM_OK)
            rc = ANM_EIO;
    }
    if (rc == ANM_OK)
        rc = market_journal_open(journal, size, s->config->durability, &s->journal, detail);
    if (rc == ANM_OK) {
        s->journal_mark = id;
        s->events_at_snapshot = s->c.events;
        anm_log_info("market", "snapshot %" PRIu64 ": %zu resting orders, %zu bytes, %.1f ms", id,
                     n_ids, dump_size, (double)(anm_monotonic_ns() - t0) / 1e6);
    } else {
        anm_log_error("market", "could not take a snapshot: %s", anm_strerror(rc));
    }
    free(ids);
    free(dump);
    return rc;
}

static int secure_socket(anm_socket *socket, const char *secret, anm_error_detail *detail)
{
    void *h = anm_socket_handle(socket);
    int one = 1;
    if (zmq_setsockopt(h, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(h, ZMQ_CURVE_SECRETKEY, secret, 40) != 0 ||
        zmq_setsockopt(h, ZMQ_ZAP_DOMAIN, "anm-market", 10) != 0) {
        anm_error_detail_set(detail, NULL, 0, 0, NULL, "could not enable curve: %s",
                             zmq_strerror(errno));
        return ANM_ECONFIG;
    }
    return ANM_OK;
}

static int write_ready(const service *s, const char *path)
{
    char router[256], pub[256], tmp[1100];
    if (anm_socket_last_endpoint(s->router, router, sizeof router) != ANM_OK ||
        anm_socket_last_endpoint(s->pub, pub, sizeof pub) != ANM_OK ||
        snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return ANM_ERANGE;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return ANM_EIO;
    fprintf(f, "router=%s\npub=%s\npid=%ld\n", router, pub, (long)getpid());
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return ANM_EIO;
    return ANM_OK;
}

int market_service_run(const market_service_config *config, anm_error_detail *detail)
{
    service s;
    memset(&s, 0, sizeof s);
    s.config = config;
    directory d;
    memset(&d, 0, sizeof d);
    market_bytes blob = {0};
    int rc = ANM_OK;
    for (size_t i = 0; rc == ANM_OK && i < config->n_zone_paths; i++)
        rc = load_zone_file(&d, config->zone_paths[i], detail);
    if (rc == ANM_OK && config->participants_path == NULL) {
        anm_error_detail_set(detail, NULL, 0, 0, NULL, "a participants file is required");
        rc = ANM_ECONFIG;
    }
    if (rc == ANM_OK)
        rc = load_participants(&d, config->participants_path, detail);
    d.gate_closure_offset_ms = config->gate_closure_offset_ms;
    d.initial_mode = config->initial_mode == MARKET_MODE_CALL;
    if (rc == ANM_OK)
        rc = directory_encode(&d, &blob);
    directory_free(&d);
    if (rc == ANM_OK)
        rc = core_init(&s.c, blob.data, blob.size);
    /* the order pool and client-id index sized and faulted in now, not while
     * orders arrive (docs/market.md, "Memory and speed") */
    if (rc == ANM_OK && config->reserve_orders > 0 &&
        market_reserve(s.c.m, config->reserve_orders) != ANM_OK) {
        anm_error_detail_set(detail, NULL, 0, 0, NULL,
                             "out of memory reserving %zu orders (--reserve-orders)",
                             config->reserve_orders);
        rc = ANM_ENOMEM;
    }
    if (rc != ANM_OK)
        goto out;

    s.config_blob = blob.data;
    s.config_blob_size = blob.size;

    /* recovery: the snapshot if there is one, then the journal after it (torn tail truncated) */
    char snap[4096], next[4096];
    if (snapshot_path(config->journal_path, snap, sizeof snap) != ANM_OK ||
        snprintf(next, sizeof next, "%s.next", config->journal_path) >= (int)sizeof next) {
        anm_error_detail_set(detail, config->journal_path, 0, 0, NULL, "journal path too long");
        rc = ANM_ECONFIG;
        goto out;
    }
    market_snapshot_file snapshot;
    rc = market_snapshot_file_read(snap, &snapshot);
    int have_snapshot = rc == ANM_OK;
    if (rc == ANM_OK)
        rc = core_restore(&s.c, &snapshot, blob.data, blob.size);
    else if (rc == ANM_ENOTFOUND)
        rc = ANM_OK;
    recover_ctx rec = {&s, blob.data, blob.size, 0, 0, have_snapshot ? &snapshot : NULL, 0, 0};
    uint64_t valid = 0, torn = 0;
    if (rc == ANM_OK)
        rc = market_journal_read(config->journal_path, recover_record, &rec, &valid, &torn);
    if (rc == ANM_OK && have_snapshot && rec.mark != snapshot.id) {
        /* the journal is the one the snapshot covers (a crash before its rotation ended),
         * or missing: start the journal after the snapshot */
        int covered = rec.mark == snapshot.base_mark && valid == snapshot.covered_bytes;
        if (!covered && rec.started) {
            anm_error_detail_set(detail, config->journal_path, 0, 0, NULL,
                                 "the journal neither continues snapshot %" PRIu64
                                 " nor is the one it covers",
                                 snapshot.id);
            rc = ANM_ECONFIG;
        } else {
            anm_log_warn("market", "starting a journal after snapshot %" PRIu64 " (%s)",
                         snapshot.id, rec.started ? "the rotation was interrupted" : "no journal");
            uint64_t size = 0;
            rc = write_continuation(&s, next, snapshot.id, &size, detail);
            if (rc == ANM_OK && (rename(next, config->journal_path) != 0 ||
                                 sync_directory(config->journal_path) != ANM_OK))
                rc = ANM_EIO;
            valid = size;
            torn = 0;
            rec.started = 1;
            rec.mark = snapshot.id;
        }
    }
    if (have_snapshot)
        market_snapshot_file_free(&snapshot);
    s.journal_mark = rec.mark;
    s.events_at_snapshot = s.c.events;
    if (rc != ANM_OK) {
        if (detail != NULL && detail->message[0] == '\0')
            anm_error_detail_set(detail, config->journal_path, 0, 0, NULL,
                                 "could not recover the journal: %s", anm_strerror(rc));
        goto out;
    }
    if (torn > 0)
        anm_log_warn("market", "truncating a torn journal tail of %" PRIu64 " bytes at %" PRIu64,
                     torn, valid);
    rc = market_journal_open(config->journal_path, valid, config->durability, &s.journal, detail);
    if (rc != ANM_OK)
        goto out;
    size_t resting = 0;
    uint64_t digest = core_digest(&s.c, &resting);
    anm_log_info("market",
                 "recovered %" PRIu64 " events, %zu resting orders, digest %016" PRIx64, s.c.events,
                 resting, digest);

    rc = anm_clock_new_from_spec(config->clock_spec ? config->clock_spec : "real", &s.clock);
    if (rc != ANM_OK) {
        anm_error_detail_set(detail, NULL, 0, 0, "--clock", "bad clock spec \"%s\"",
                             config->clock_spec);
        goto out;
    }
    if (!rec.started) {
        rc = market_event_encode_config(&s.event, blob.data, blob.size);
        if (rc == ANM_OK)
            rc = journal_event(&s);
        for (size_t i = 0; rc == ANM_OK && i < config->n_statement_paths; i++) {
            json_error_t jerr;
            json_t *st = json_load_file(config->statement_paths[i], 0, &jerr);
            char why[256] = "";
            size_t n_periods = 0;
            if (st == NULL) {
                anm_error_detail_set(detail, config->statement_paths[i], jerr.line, jerr.column,
                                     NULL, "%s", jerr.text);
                rc = ANM_EPARSE;
                break;
            }
            rc = apply_statement_json(&s, st, anm_clock_now_ms(s.clock), why, sizeof why,
                                      &n_periods);
            json_decref(st);
            if (rc != ANM_OK)
                anm_error_detail_set(detail, config->statement_paths[i], 0, 0, NULL, "%s", why);
            else
                anm_log_info("market", "statement \"%s\": %zu periods",
                             config->statement_paths[i], n_periods);
        }
        if (rc == ANM_OK)
            rc = market_journal_commit(s.journal);
        if (rc != ANM_OK)
            goto out;
    }

    /* keys */
    char server_public[41], server_secret[41], path[1024];
    if (config->keys_dir == NULL ||
        snprintf(path, sizeof path, "%s/server.secret", config->keys_dir) >= (int)sizeof path ||
        market_keyfile_read(path, server_public, server_secret) != ANM_OK) {
        anm_error_detail_set(detail, config->keys_dir ? path : NULL, 0, 0, NULL,
                             "could not read the server key (anm market keys generate --server)");
        rc = ANM_ECONFIG;
        goto out;
    }
    rc = market_keys_load(config->keys_dir, &s.keys, &s.n_keys, detail);
    if (rc != ANM_OK)
        goto out;

    /* sockets: the ZAP handler first, so that no handshake goes unauthenticated */
    rc = anm_bus_new(&s.bus);
    anm_socket_options zap_options, router_options, pub_options;
    anm_socket_options_default(&zap_options);
    zap_options.router_mandatory = 0;
    if (rc == ANM_OK)
        rc = anm_socket_new(s.bus, ANM_SOCKET_ROUTER, "@inproc://zeromq.zap.01", &zap_options,
                            &s.zap, detail);
    anm_socket_options_default(&router_options);
    router_options.router_mandatory = 0;
    router_options.send_hwm = 1000000;
    router_options.recv_hwm = 1000000;
    router_options.max_message_bytes = MARKET_PROTOCOL_MAX_STATEMENT_BYTES + 4096;
    if (rc == ANM_OK)
        rc = anm_socket_new(s.bus, ANM_SOCKET_ROUTER, NULL, &router_options, &s.router, detail);
    if (rc == ANM_OK)
        rc = secure_socket(s.router, server_secret, detail);
    if (rc == ANM_OK)
        rc = anm_socket_bind(s.router, config->router_endpoint, detail);
    anm_socket_options_default(&pub_options);
    pub_options.send_hwm = 100000;
    if (rc == ANM_OK)
        rc = anm_socket_new(s.bus, ANM_SOCKET_PUB, NULL, &pub_options, &s.pub, detail);
    if (rc == ANM_OK)
        rc = secure_socket(s.pub, server_secret, detail);
    if (rc == ANM_OK)
        rc = anm_socket_bind(s.pub, config->pub_endpoint, detail);
    if (rc == ANM_OK && config->statement_endpoint != NULL) {
        anm_socket_options sub_options;
        anm_socket_options_default(&sub_options);
        sub_options.max_message_bytes = MARKET_PROTOCOL_MAX_STATEMENT_BYTES + 4096;
        rc = anm_socket_new(s.bus, ANM_SOCKET_SUB, NULL, &sub_options, &s.statement_sub, detail);
        if (rc == ANM_OK)
            rc = anm_socket_subscribe(s.statement_sub, config->statement_topic
                                                           ? config->statement_topic
                                                           : "constraint.statement");
        if (rc == ANM_OK)
            rc = anm_socket_connect(s.statement_sub, config->statement_endpoint, detail);
    }
    if (rc == ANM_OK && config->db_conninfo != NULL) {
        anm_db_options db_options = {.component = "market"};
        rc = anm_db_connect(config->db_conninfo, &db_options, &s.db);
        if (rc != ANM_OK)
            anm_error_detail_set(detail, NULL, 0, 0, "--db", "could not connect to the database");
    }
    if (rc == ANM_OK)
        rc = anm_reactor_new(s.clock, &s.reactor);
    if (rc == ANM_OK)
        anm_reactor_set_spin_us(s.reactor, config->spin_us);
    if (rc == ANM_OK && s.statement_sub != NULL)
        rc = anm_reactor_add_socket(s.reactor, s.statement_sub, on_statement, &s);
    /* gate closures up to the latest journaled event were handled before a restart */
    s.auction_checked_ms = s.c.events > 0 && s.c.last_event_ms > 0 ? s.c.last_event_ms
                                                                    : anm_clock_now_ms(s.clock);
    if (rc == ANM_OK && config->auto_auction)
        rc = anm_reactor_add_timer(s.reactor, 0,
                                   config->auction_check_ms > 0 ? config->auction_check_ms : 1000,
                                   on_auction_timer, &s, NULL);
    if (rc == ANM_OK)
        rc = anm_reactor_add_socket(s.reactor, s.zap, on_zap, &s);
    if (rc == ANM_OK)
        rc = anm_reactor_add_socket(s.reactor, s.router, on_router, &s);
    if (rc == ANM_OK)
        rc = anm_reactor_handle_signals(s.reactor, NULL, NULL);
    if (rc == ANM_OK && config->ready_file != NULL)
        rc = write_ready(&s, config->ready_file);
    if (rc != ANM_OK)
        goto out;
    anm_log_info("market", "serving with %s durability, %zu keys", market_durability_name(
                 config->durability), s.n_keys);
    rc = anm_reactor_run(s.reactor);
out:
    anm_reactor_destroy(&s.reactor);
    anm_socket_destroy(&s.router);
    anm_socket_destroy(&s.pub);
    anm_socket_destroy(&s.zap);
    anm_socket_destroy(&s.statement_sub);
    anm_db_destroy(&s.db);
    anm_bus_destroy(&s.bus);
    market_journal_destroy(&s.journal);
    anm_clock_destroy(&s.clock);
    free(s.keys);
    free(s.text);
    free(s.replies);
    market_bytes_free(&s.event);
    market_bytes_free(&blob);
    core_free(&s.c);
    return rc;
}
