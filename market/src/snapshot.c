/*
 * snapshot.c: the snapshot file (snapshot.h): encoding, atomic write and
 * checked read.
 */
#define _GNU_SOURCE
#include "market/snapshot.h"

#include "market/journal.h"

#include "engine/error.h"
#include "engine/log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "ANMMSNP1"

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return ANM_EIO;
        p += w;
        n -= (size_t)w;
    }
    return ANM_OK;
}

static int sync_directory_of(const char *path)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return ANM_ENOMEM;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0)
        return ANM_EIO;
    int rc = fsync(fd) == 0 ? ANM_OK : ANM_EIO;
    close(fd);
    return rc;
}

int market_snapshot_file_write(const char *path, const market_snapshot_file *s)
{
    market_bytes b = {0};
    char tmp[4096];
    int fd = -1, rc;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return ANM_ERANGE;
    market_bytes_raw(&b, MAGIC, 8);
    market_bytes_u64(&b, s->id);
    market_bytes_u64(&b, s->base_mark);
    market_bytes_u64(&b, s->covered_bytes);
    market_bytes_u64(&b, s->digest);
    market_bytes_u64(&b, s->trades);
    market_bytes_u64(&b, s->events);
    market_bytes_u64(&b, (uint64_t)s->last_event_ms);
    market_bytes_u64(&b, s->config_size);
    market_bytes_raw(&b, s->config, s->config_size);
    market_bytes_u64(&b, s->n_orders);
    for (size_t i = 0; i < s->n_orders; i++)
        market_bytes_u64(&b, s->order_ids[i]);
    market_bytes_u64(&b, s->market_size);
    market_bytes_raw(&b, s->market, s->market_size);
    if (b.failed) {
        rc = ANM_ENOMEM;
        goto out;
    }
    market_bytes_u32(&b, market_crc32c(b.data, b.size));
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    rc = fd < 0 || b.failed ? ANM_EIO : write_all(fd, b.data, b.size);
    if (rc == ANM_OK && fdatasync(fd) != 0)
        rc = ANM_EIO;
    if (fd >= 0 && close(fd) != 0)
        rc = ANM_EIO;
    if (rc == ANM_OK && rename(tmp, path) != 0)
        rc = ANM_EIO;
    if (rc == ANM_OK)
        rc = sync_directory_of(path);
    if (rc != ANM_OK)
        anm_log_error("market", "could not write the snapshot \"%s\": %s", path, strerror(errno));
out:
    market_bytes_free(&b);
    return rc;
}

typedef struct cursor {
    const uint8_t *p;
    size_t size, at;
    int bad;
} cursor;

static uint64_t rd_u64(cursor *c)
{
    if (c->bad || c->size - c->at < 8) {
        c->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)c->p[c->at + (size_t)i] << (8 * i);
    c->at += 8;
    return v;
}

static const uint8_t *rd_bytes(cursor *c, uint64_t n)
{
    if (c->bad || n > c->size - c->at) {
        c->bad = 1;
        return NULL;
    }
    c->at += (size_t)n;
    return c->p + c->at - n;
}

int market_snapshot_file_read(const char *path, market_snapshot_file *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return errno == ENOENT ? ANM_ENOTFOUND : ANM_EIO;
    uint8_t *data = NULL;
    int rc = ANM_EIO;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 12)
        goto out;
    size_t size = (size_t)st.st_size;
    data = malloc(size);
    if (data == NULL) {
        rc = ANM_ENOMEM;
        goto out;
    }
    if (fread(data, 1, size, f) != size)
        goto out;
    rc = ANM_EPARSE;
    uint32_t crc = (uint32_t)data[size - 4] | (uint32_t)data[size - 3] << 8 |
                   (uint32_t)data[size - 2] << 16 | (uint32_t)data[size - 1] << 24;
    if (memcmp(data, MAGIC, 8) != 0 || market_crc32c(data, size - 4) != crc)
        goto out;
    cursor c = {data, size - 4, 8, 0};
    out->id = rd_u64(&c);
    out->base_mark = rd_u64(&c);
    out->covered_bytes = rd_u64(&c);
    out->digest = rd_u64(&c);
    out->trades = rd_u64(&c);
    out->events = rd_u64(&c);
    out->last_event_ms = (int64_t)rd_u64(&c);
    out->config_size = (size_t)rd_u64(&c);
    out->config = rd_bytes(&c, out->config_size);
    uint64_t n_orders = rd_u64(&c);
    const uint8_t *ids = n_orders <= (c.size - c.at) / 8 ? rd_bytes(&c, n_orders * 8) : NULL;
    if (ids == NULL)
        goto out;
    /* ids are stored little endian; decode into an aligned array */
    uint64_t *order_ids = malloc((size_t)n_orders * 8 + 8);
    if (order_ids == NULL) {
        rc = ANM_ENOMEM;
        goto out;
    }
    for (uint64_t i = 0; i < n_orders; i++) {
        cursor one = {ids + i * 8, 8, 0, 0};
        order_ids[i] = rd_u64(&one);
    }
    out->market_size = (size_t)rd_u64(&c);
    out->market = rd_bytes(&c, out->market_size);
    if (c.bad || c.at != c.size) {
        free(order_ids);
        goto out;
    }
    out->order_ids = order_ids;
    out->n_orders = (size_t)n_orders;
    out->owned_ = data;
    data = NULL;
    rc = ANM_OK;
out:
    fclose(f);
    free(data);
    if (rc != ANM_OK)
        memset(out, 0, sizeof *out);
    return rc;
}

void market_snapshot_file_free(market_snapshot_file *s)
{
    if (s == NULL)
        return;
    free(s->owned_);
    free((void *)(uintptr_t)s->order_ids);
    memset(s, 0, sizeof *s);
}
