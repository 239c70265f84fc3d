/*
 * journal.c: journal records (length, CRC-32C, payload), group commit with
 * the two durability modes, and the binary encoding of market events.
 */
#define _GNU_SOURCE
#include "market/journal.h"

#include "engine/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HEADER_BYTES 8u

const char *market_durability_name(market_durability durability)
{
    return durability == MARKET_DURABILITY_POWER ? "power" : "process";
}

int market_durability_parse(const char *text, market_durability *out)
{
    if (text != NULL && strcmp(text, "process") == 0)
        *out = MARKET_DURABILITY_PROCESS;
    else if (text != NULL && strcmp(text, "power") == 0)
        *out = MARKET_DURABILITY_POWER;
    else
        return ANM_EINVAL;
    return ANM_OK;
}

/* CRC-32C, reflected polynomial 0x82F63B78, slicing by one byte (a read-only table). */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t market_crc32c(const void *data, size_t size)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < size; i++)
        c = crc_table[(c ^ p[i]) & 0xFFu] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p) { return get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }

int market_journal_read(const char *path,
                        int (*fn)(void *context, const uint8_t *payload, size_t size),
                        void *context, uint64_t *valid_bytes, uint64_t *torn_bytes)
{
    int rc = ANM_OK;
    uint64_t offset = 0, total = 0;
    uint8_t *buf = NULL;
    size_t capacity = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (errno != ENOENT) {
            anm_log_error("market", "could not open journal \"%s\": %s", path, strerror(errno));
            rc = ANM_EIO;
        }
        goto out;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        rc = ANM_EIO;
        goto out_close;
    }
    total = (uint64_t)st.st_size;
    for (;;) {
        uint8_t header[HEADER_BYTES];
        if (total - offset < HEADER_BYTES || fread(header, 1, HEADER_BYTES, f) != HEADER_BYTES)
            break;
        uint32_t length = get_u32(header), crc = get_u32(header + 4);
        if (length == 0 || length > MARKET_JOURNAL_MAX_RECORD ||
            total - offset - HEADER_BYTES < length)
            break;
        if (length > capacity) {
            uint8_t *grown = realloc(buf, length);
            if (grown == NULL) {
                rc = ANM_ENOMEM;
                goto out_close;
            }
            buf = grown;
            capacity = length;
        }
        if (fread(buf, 1, length, f) != length || market_crc32c(buf, length) != crc)
            break;
        offset += HEADER_BYTES + length;
        if (fn != NULL) {
            rc = fn(context, buf, length);
            if (rc != 0)
                goto out_close;
        }
    }
out_close:
    fclose(f);
out:
    free(buf);
    if (valid_bytes != NULL)
        *valid_bytes = offset;
    if (torn_bytes != NULL)
        *torn_bytes = total - offset;
    return rc;
}

struct market_journal {
    int fd;
    market_durability durability;
    uint8_t *group;
    size_t group_size, group_capacity;
    uint64_t size;
    _Atomic uint64_t written; /* bytes written, read by the sync thread */
    _Atomic uint64_t synced;
    _Atomic uint64_t syncs;
    _Atomic int stop;
    int thread_started;
    pthread_t thread;
};

static void *sync_main(void *arg)
{
    market_journal *j = arg;
    while (!atomic_load(&j->stop)) {
        uint64_t written = atomic_load(&j->written);
        if (written > atomic_load(&j->synced)) {
            if (fdatasync(j->fd) != 0)
                anm_log_error("market", "journal fdatasync failed: %s", strerror(errno));
            atomic_store(&j->synced, written);
            atomic_fetch_add(&j->syncs, 1);
        }
        struct timespec pause = {0, 500000}; /* 0.5 ms: a group is synced within 1 ms */
        nanosleep(&pause, NULL);
    }
    return NULL;
}

int market_journal_open(const char *path, uint64_t valid_bytes, market_durability durability,
                        market_journal **out, anm_error_detail *detail)
{
    *out = NULL;
    market_journal *j = calloc(1, sizeof *j);
    if (j == NULL)
        return ANM_ENOMEM;
    j->durability = durability;
    j->fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    if (j->fd < 0) {
        anm_error_detail_set(detail, path, 0, 0, NULL, "could not open journal: %s",
                             strerror(errno));
        free(j);
        return ANM_EIO;
    }
    if (ftruncate(j->fd, (off_t)valid_bytes) != 0 ||
        lseek(j->fd, (off_t)valid_bytes, SEEK_SET) < 0 || fdatasync(j->fd) != 0) {
        anm_error_detail_set(detail, path, 0, 0, NULL, "could not truncate journal: %s",
                             strerror(errno));
        close(j->fd);
        free(j);
        return ANM_EIO;
    }
    j->size = valid_bytes;
    atomic_store(&j->written, valid_bytes);
    atomic_store(&j->synced, valid_bytes);
    if (durability == MARKET_DURABILITY_PROCESS) {
        if (pthread_create(&j->thread, NULL, sync_main, j) != 0) {
            close(j->fd);
            free(j);
            return ANM_ENOMEM;
        }
        j->thread_started = 1;
    }
    *out = j;
    return ANM_OK;
}

void market_journal_destroy(market_journal **journal)
{
    if (journal == NULL || *journal == NULL)
        return;
    market_journal *j = *journal;
    (void)market_journal_commit(j);
    if (j->thread_started) {
        atomic_store(&j->stop, 1);
        pthread_join(j->thread, NULL);
    }
    (void)fdatasync(j->fd);
    close(j->fd);
    free(j->group);
    free(j);
    *journal = NULL;
}

int market_journal_append(market_journal *j, const void *payload, size_t size)
{
    if (size == 0 || size > MARKET_JOURNAL_MAX_RECORD)
        return ANM_ERANGE;
    size_t need = j->group_size + HEADER_BYTES + size;
    if (need > j->group_capacity) {
        size_t capacity = j->group_capacity ? j->group_capacity : 65536;
        while (capacity < need)
            capacity *= 2;
        uint8_t *grown = realloc(j->group, capacity);
        if (grown == NULL)
            return ANM_ENOMEM;
        j->group = grown;
        j->group_capacity = capacity;
    }
    uint8_t *p = j->group + j->group_size;
    uint32_t length = (uint32_t)size, crc = market_crc32c(payload, size);
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(length >> (8 * i));
        p[4 + i] = (uint8_t)(crc >> (8 * i));
    }
    memcpy(p + HEADER_BYTES, payload, size);
    j->group_size = need;
    return ANM_OK;
}

int market_journal_commit(market_journal *j)
{
    size_t done = 0;
    while (done < j->group_size) {
        ssize_t n = write(j->fd, j->group + done, j->group_size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            anm_log_error("market", "could not write the journal: %s", strerror(errno));
            return ANM_EIO;
        }
        done += (size_t)n;
    }
    j->size += done;
    j->group_size = 0;
    if (done > 0 && j->durability == MARKET_DURABILITY_POWER) {
        if (fdatasync(j->fd) != 0) {
            anm_log_error("market", "could not sync the journal: %s", strerror(errno));
            return ANM_EIO;
        }
        atomic_fetch_add(&j->syncs, 1);
        atomic_store(&j->synced, j->size);
    }
    atomic_store(&j->written, j->size);
    return ANM_OK;
}

uint64_t market_journal_size(const market_journal *j) { return j->size; }

uint64_t market_journal_syncs(const market_journal *j)
{
    return atomic_load(&((market_journal *)(uintptr_t)j)->syncs);
}

/* ---- bytes ---------------------------------------------------------------- */

void market_bytes_reset(market_bytes *b) { b->size = 0; }

void market_bytes_free(market_bytes *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void market_bytes_raw(market_bytes *b, const void *data, size_t size)
{
    if (b->failed)
        return;
    if (b->size + size > b->capacity) {
        size_t capacity = b->capacity ? b->capacity * 2 : 256;
        while (capacity < b->size + size)
            capacity *= 2;
        uint8_t *grown = realloc(b->data, capacity);
        if (grown == NULL) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->size, data, size);
    b->size += size;
}

static void put_le(market_bytes *b, uint64_t v, size_t n)
{
    uint8_t tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    market_bytes_raw(b, tmp, n);
}

void market_bytes_u8(market_bytes *b, uint8_t v) { put_le(b, v, 1); }
void market_bytes_u16(market_bytes *b, uint16_t v) { put_le(b, v, 2); }
void market_bytes_u32(market_bytes *b, uint32_t v) { put_le(b, v, 4); }
void market_bytes_u64(market_bytes *b, uint64_t v) { put_le(b, v, 8); }

void market_bytes_f64(market_bytes *b, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    put_le(b, bits, 8);
}

/* ---- events ---------------------------------------------------------------- */

static void put_head(market_bytes *b, market_event_type type, int64_t now_ms)
{
    market_bytes_reset(b);
    market_bytes_u8(b, (uint8_t)type);
    market_bytes_u64(b, (uint64_t)now_ms);
}

static void put_product(market_bytes *b, market_product product)
{
    market_bytes_u32(b, product.zone);
    market_bytes_u64(b, (uint64_t)product.period_start_ms);
}

static void put_spec(market_bytes *b, const market_order_spec *s)
{
    market_bytes_u64(b, s->client_order_id);
    market_bytes_u32(b, s->participant);
    market_bytes_u32(b, s->der);
    put_product(b, s->product);
    market_bytes_u8(b, (uint8_t)s->side);
    market_bytes_u32(b, (uint32_t)s->price_ticks);
    market_bytes_u32(b, (uint32_t)s->availability_ticks);
    market_bytes_u64(b, (uint64_t)s->quantity);
    market_bytes_u64(b, (uint64_t)s->min_quantity);
    market_bytes_u64(b, (uint64_t)s->valid_until_ms);
}

static int done(const market_bytes *b) { return b->failed ? ANM_ENOMEM : ANM_OK; }

int market_event_encode_submit(market_bytes *b, int64_t now_ms, const market_order_spec *spec)
{
    put_head(b, MARKET_EVENT_SUBMIT, now_ms);
    put_spec(b, spec);
    return done(b);
}

int market_event_encode_cancel(market_bytes *b, int64_t now_ms, uint32_t participant,
                               uint64_t order_id)
{
    put_head(b, MARKET_EVENT_CANCEL, now_ms);
    market_bytes_u32(b, participant);
    market_bytes_u64(b, order_id);
    return done(b);
}

int market_event_encode_replace(market_bytes *b, int64_t now_ms, uint64_t order_id,
                                const market_order_spec *spec)
{
    put_head(b, MARKET_EVENT_REPLACE, now_ms);
    market_bytes_u64(b, order_id);
    put_spec(b, spec);
    return done(b);
}

int market_event_encode_mode(market_bytes *b, int64_t now_ms, market_product product,
                             market_mode mode)
{
    put_head(b, MARKET_EVENT_MODE, now_ms);
    put_product(b, product);
    market_bytes_u8(b, (uint8_t)mode);
    return done(b);
}

int market_event_encode_statement(market_bytes *b, int64_t now_ms, market_product product,
                                  size_t n_constraints, const double *headroom_mw,
                                  const char (*names)[32], size_t n_sensitivities,
                                  const uint32_t *der, const uint16_t *constraint,
                                  const double *sensitivity)
{
    put_head(b, MARKET_EVENT_STATEMENT, now_ms);
    put_product(b, product);
    market_bytes_u32(b, (uint32_t)n_constraints);
    for (size_t c = 0; c < n_constraints; c++) {
        market_bytes_f64(b, headroom_mw[c]);
        char name[32] = {0};
        if (names != NULL)
            snprintf(name, sizeof name, "%s", names[c]);
        market_bytes_raw(b, name, sizeof name);
    }
    market_bytes_u32(b, (uint32_t)n_sensitivities);
    for (size_t i = 0; i < n_sensitivities; i++) {
        market_bytes_u32(b, der[i]);
        market_bytes_u16(b, constraint[i]);
        market_bytes_f64(b, sensitivity[i]);
    }
    return done(b);
}

int market_event_encode_auction(market_bytes *b, int64_t now_ms, market_product product,
                                const market_auction_config *config)
{
    put_head(b, MARKET_EVENT_AUCTION, now_ms);
    put_product(b, product);
    market_bytes_u8(b, (uint8_t)config->pricing);
    market_bytes_u8(b, (uint8_t)(config->pro_rata != 0));
    return done(b);
}

int market_event_encode_snapshot(market_bytes *b, uint64_t snapshot_id)
{
    put_head(b, MARKET_EVENT_SNAPSHOT, 0);
    market_bytes_u64(b, snapshot_id);
    return done(b);
}

int market_event_encode_config(market_bytes *b, const void *config, size_t size)
{
    put_head(b, MARKET_EVENT_CONFIG, 0);
    market_bytes_raw(b, config, size);
    return done(b);
}

/* A bounds-checked reader over a payload. */
typedef struct reader {
    const uint8_t *p;
    size_t size, at;
    int bad;
} reader;

static const uint8_t *take(reader *r, size_t n)
{
    if (r->bad || r->size - r->at < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->at;
    r->at += n;
    return p;
}

static uint8_t rd_u8(reader *r)
{
    const uint8_t *p = take(r, 1);
    return p ? p[0] : 0;
}

static uint32_t rd_u32(reader *r)
{
    const uint8_t *p = take(r, 4);
    return p ? get_u32(p) : 0;
}

static uint64_t rd_u64(reader *r)
{
    const uint8_t *p = take(r, 8);
    return p ? get_u64(p) : 0;
}

static double rd_f64(reader *r)
{
    uint64_t bits = rd_u64(r);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static market_product rd_product(reader *r)
{
    market_product p;
    p.zone = rd_u32(r);
    p.period_start_ms = (int64_t)rd_u64(r);
    return p;
}

static void rd_spec(reader *r, market_order_spec *s)
{
    s->client_order_id = rd_u64(r);
    s->participant = rd_u32(r);
    s->der = rd_u32(r);
    s->product = rd_product(r);
    uint8_t side = rd_u8(r);
    if (side > MARKET_REQUIREMENT)
        r->bad = 1;
    s->side = (market_side)side;
    s->price_ticks = (int32_t)rd_u32(r);
    s->availability_ticks = (int32_t)rd_u32(r);
    s->quantity = (int64_t)rd_u64(r);
    s->min_quantity = (int64_t)rd_u64(r);
    s->valid_until_ms = (int64_t)rd_u64(r);
}

int market_event_decode(const uint8_t *payload, size_t size, market_event *out)
{
    memset(out, 0, sizeof *out);
    reader r = {payload, size, 0, 0};
    out->type = (market_event_type)rd_u8(&r);
    out->now_ms = (int64_t)rd_u64(&r);
    switch (out->type) {
    case MARKET_EVENT_CONFIG:
        out->config = payload + r.at;
        out->config_size = r.bad ? 0 : size - r.at;
        r.at = size;
        break;
    case MARKET_EVENT_SUBMIT: rd_spec(&r, &out->spec); break;
    case MARKET_EVENT_CANCEL:
        out->participant = rd_u32(&r);
        out->order_id = rd_u64(&r);
        break;
    case MARKET_EVENT_REPLACE:
        out->order_id = rd_u64(&r);
        rd_spec(&r, &out->spec);
        break;
    case MARKET_EVENT_MODE: {
        out->product = rd_product(&r);
        uint8_t mode = rd_u8(&r);
        if (mode > MARKET_MODE_CALL)
            r.bad = 1;
        out->mode = (market_mode)mode;
        break;
    }
    case MARKET_EVENT_STATEMENT: {
        out->product = rd_product(&r);
        uint32_t n = rd_u32(&r);
        if (n == 0 || n > MARKET_MAX_CONSTRAINTS) {
            r.bad = 1;
            break;
        }
        out->n_constraints = n;
        for (uint32_t c = 0; c < n && !r.bad; c++) {
            out->headroom_mw[c] = rd_f64(&r);
            const uint8_t *name = take(&r, 32);
            if (name != NULL) {
                memcpy(out->names[c], name, 32);
                out->names[c][31] = '\0';
            }
        }
        uint32_t n_sens = rd_u32(&r);
        out->n_sensitivities = n_sens;
        out->sensitivities = take(&r, (size_t)n_sens * 14u);
        break;
    }
    case MARKET_EVENT_AUCTION:
        out->product = rd_product(&r);
        out->auction.pricing = rd_u8(&r) ? MARKET_UNIFORM : MARKET_PAY_AS_BID;
        out->auction.pro_rata = rd_u8(&r);
        break;
    case MARKET_EVENT_EXPIRE: out->product = rd_product(&r); break;
    case MARKET_EVENT_SNAPSHOT: out->snapshot_id = rd_u64(&r); break;
    default: r.bad = 1; break;
    }
    if (r.bad || r.at != size)
        return ANM_EPARSE;
    return ANM_OK;
}

market_statement *market_event_statement(const market_event *e)
{
    if (e->type != MARKET_EVENT_STATEMENT)
        return NULL;
    const char *names[MARKET_MAX_CONSTRAINTS];
    for (size_t c = 0; c < e->n_constraints; c++)
        names[c] = e->names[c];
    market_statement *s = market_statement_new(e->n_constraints, e->headroom_mw, names);
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < e->n_sensitivities; i++) {
        const uint8_t *p = e->sensitivities + i * 14u;
        uint64_t bits = get_u64(p + 6);
        double value;
        memcpy(&value, &bits, sizeof value);
        if (market_statement_set_sensitivity(s, get_u32(p), (size_t)(p[4] | p[5] << 8), value) !=
            ANM_OK) {
            market_statement_destroy(&s);
            return NULL;
        }
    }
    return s;
}
