/* spool_log.c: the group-commit record log of spool_log.h. */
#include "gateway/spool_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engine/log.h"

#define COMPONENT "spool"
#define PATH_BYTES 4096
#define HEADER_BYTES 16
#define SLOT_BYTES 24
#define DEFAULT_SEGMENT_BYTES (8u * 1024u * 1024u)

typedef struct segment {
    uint64_t first_seq;
    uint64_t size; /* bytes of valid records */
} segment;

/* A record handed out by next and not yet retired. */
typedef struct outstanding {
    uint64_t seq;
    uint64_t first_seq_of_segment;
    uint64_t end; /* offset after the record */
    int acked;
} outstanding;

struct gateway_spool_log {
    char *dir;
    size_t segment_bytes;
    segment *segments;
    size_t n_segments, cap_segments;
    int write_fd;           /* the last segment, or -1 */
    uint64_t synced_size;   /* of the last segment */
    uint64_t next_seq;      /* of the next append */
    uint64_t synced_seq;    /* every seq <= this is durable */
    uint64_t acked_seq;     /* watermark in memory */
    uint64_t committed_seq; /* watermark on disk */
    uint64_t head_generation;
    /* oldest unacknowledged record: segment index and offset */
    size_t head_segment;
    uint64_t head_offset;
    /* reader */
    size_t read_segment;
    uint64_t read_offset;
    int read_fd;
    size_t read_fd_segment;
    outstanding *ring;
    size_t ring_head, ring_count, ring_cap;
};

/* CRC-32 (IEEE 802.3, reflected 0xEDB88320), half-byte table. */
static uint32_t crc32_update(uint32_t crc, const void *data, size_t size)
{
    static const uint32_t table[16] = {
        0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
        0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
        0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < size; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ table[crc & 15u];
        crc = (crc >> 4) ^ table[crc & 15u];
    }
    return ~crc;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t record_crc(const unsigned char *seq_bytes, const void *data, size_t size)
{
    return crc32_update(crc32_update(0, seq_bytes, 8), data, size);
}

static int segment_path(const gateway_spool_log *log, uint64_t first_seq, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/seg-%020" PRIu64 ".log", log->dir, first_seq);
    return (n < 0 || (size_t)n >= size) ? ANM_ERANGE : ANM_OK;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ANM_EIO;
    int rc = fsync(fd) == 0 ? ANM_OK : ANM_EIO;
    close(fd);
    return rc;
}

static int read_full(int fd, void *buf, size_t size, uint64_t offset)
{
    char *p = buf;
    while (size > 0) {
        ssize_t r = pread(fd, p, size, (off_t)offset);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return ANM_EIO;
        p += r;
        size -= (size_t)r;
        offset += (uint64_t)r;
    }
    return ANM_OK;
}

static int push_segment(gateway_spool_log *log, uint64_t first_seq, uint64_t size)
{
    if (log->n_segments == log->cap_segments) {
        size_t cap = log->cap_segments ? log->cap_segments * 2 : 16;
        segment *grown = realloc(log->segments, cap * sizeof *grown);
        if (grown == NULL)
            return ANM_ENOMEM;
        log->segments = grown;
        log->cap_segments = cap;
    }
    log->segments[log->n_segments].first_seq = first_seq;
    log->segments[log->n_segments].size = size;
    log->n_segments++;
    return ANM_OK;
}

static int cmp_segment(const void *a, const void *b)
{
    const segment *x = a, *y = b;
    return x->first_seq < y->first_seq ? -1 : x->first_seq > y->first_seq;
}

/* Parses "seg-<20 digits>.log"; 1 on success. */
static int parse_segment_name(const char *name, uint64_t *first_seq)
{
    if (strlen(name) != 4 + 20 + 4 || strncmp(name, "seg-", 4) != 0 ||
        strcmp(name + 24, ".log") != 0)
        return 0;
    uint64_t v = 0;
    for (int i = 4; i < 24; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        uint64_t digit = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return 0;
        v = v * 10 + digit;
    }
    *first_seq = v;
    return 1;
}

/* ---- head (watermark) file ---------------------------------------------------------------- */

static void read_head(gateway_spool_log *log)
{
    char path[PATH_BYTES];
    int n = snprintf(path, sizeof path, "%s/head", log->dir);
    if (n < 0 || (size_t)n >= sizeof path)
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    unsigned char buf[2 * SLOT_BYTES];
    ssize_t r = pread(fd, buf, sizeof buf, 0);
    close(fd);
    for (int slot = 0; slot < 2; slot++) {
        if (r < (ssize_t)((slot + 1) * SLOT_BYTES))
            break;
        const unsigned char *p = buf + slot * SLOT_BYTES;
        uint64_t generation = get_u64(p), acked = get_u64(p + 8);
        if (get_u32(p + 16) != crc32_update(0, p, 16) || generation == 0)
            continue;
        if (generation > log->head_generation) {
            log->head_generation = generation;
            log->acked_seq = acked;
        }
    }
    log->committed_seq = log->acked_seq;
}

static int write_head(gateway_spool_log *log)
{
    char path[PATH_BYTES];
    int n = snprintf(path, sizeof path, "%s/head", log->dir);
    if (n < 0 || (size_t)n >= sizeof path)
        return ANM_EIO;
    int created = access(path, F_OK) != 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return ANM_EIO;
    unsigned char slot[SLOT_BYTES];
    uint64_t generation = log->head_generation + 1;
    put_u64(slot, generation);
    put_u64(slot + 8, log->acked_seq);
    put_u32(slot + 16, crc32_update(0, slot, 16));
    put_u32(slot + 20, 0);
    /* alternate slots: a torn write leaves the other, older slot valid */
    off_t offset = (off_t)((generation % 2) * SLOT_BYTES);
    int rc = (pwrite(fd, slot, sizeof slot, offset) == (ssize_t)sizeof slot && fdatasync(fd) == 0)
                 ? ANM_OK
                 : ANM_EIO;
    if (close(fd) != 0)
        rc = ANM_EIO;
    if (rc == ANM_OK && created)
        rc = fsync_dir(log->dir);
    if (rc == ANM_OK) {
        log->head_generation = generation;
        log->committed_seq = log->acked_seq;
    } else {
        anm_log_error(COMPONENT, "could not write \"%s\": %s", path, strerror(errno));
    }
    return rc;
}

/* ---- open: scan and repair ---------------------------------------------------------------- */

/* Validates a segment's records; cuts a torn tail. Updates next_seq and the head position. */
static int scan_segment(gateway_spool_log *log, size_t index)
{
    segment *seg = &log->segments[index];
    char path[PATH_BYTES];
    if (segment_path(log, seg->first_seq, path, sizeof path) != ANM_OK)
        return ANM_EIO;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return ANM_EIO;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return ANM_EIO;
    }
    uint64_t file_size = (uint64_t)st.st_size, offset = 0, expect = seg->first_seq;
    char *data = NULL;
    size_t data_cap = 0;
    int rc = ANM_OK;
    while (offset + HEADER_BYTES <= file_size) {
        unsigned char header[HEADER_BYTES];
        if (read_full(fd, header, HEADER_BYTES, offset) != ANM_OK)
            break;
        uint32_t size = get_u32(header);
        uint64_t seq = get_u64(header + 8);
        if (size == 0 || size > GATEWAY_SPOOL_LOG_RECORD_MAX || seq != expect ||
            offset + HEADER_BYTES + size > file_size)
            break;
        if (size > data_cap) {
            char *grown = realloc(data, size);
            if (grown == NULL) {
                rc = ANM_ENOMEM;
                goto out;
            }
            data = grown;
            data_cap = size;
        }
        if (read_full(fd, data, size, offset + HEADER_BYTES) != ANM_OK ||
            record_crc(header + 8, data, size) != get_u32(header + 4))
            break;
        if (seq == log->acked_seq + 1) {
            log->head_segment = index;
            log->head_offset = offset;
        }
        offset += HEADER_BYTES + size;
        expect = seq + 1;
    }
    if (offset < file_size) {
        anm_log_warn(COMPONENT, "cut torn tail of \"%s\" at byte %llu of %llu", path,
                     (unsigned long long)offset, (unsigned long long)file_size);
        if (ftruncate(fd, (off_t)offset) != 0 || fdatasync(fd) != 0) {
            rc = ANM_EIO;
            goto out;
        }
    }
    seg->size = offset;
    if (expect > log->next_seq)
        log->next_seq = expect;
out:
    free(data);
    close(fd);
    return rc;
}

static int open_write_segment(gateway_spool_log *log)
{
    segment *last = &log->segments[log->n_segments - 1];
    char path[PATH_BYTES];
    if (segment_path(log, last->first_seq, path, sizeof path) != ANM_OK)
        return ANM_EIO;
    log->write_fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (log->write_fd < 0) {
        anm_log_error(COMPONENT, "could not open \"%s\": %s", path, strerror(errno));
        return ANM_EIO;
    }
    log->synced_size = last->size;
    return ANM_OK;
}

int gateway_spool_log_open(const char *dir, size_t segment_bytes, gateway_spool_log **out,
                           anm_error_detail *detail)
{
    *out = NULL;
    int rc = ANM_ENOMEM;
    gateway_spool_log *log = calloc(1, sizeof *log);
    if (log == NULL)
        return ANM_ENOMEM;
    log->write_fd = -1;
    log->read_fd = -1;
    log->segment_bytes = segment_bytes ? segment_bytes : DEFAULT_SEGMENT_BYTES;
    if ((log->dir = strdup(dir)) == NULL)
        goto fail;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        anm_error_detail_set(detail, dir, 0, 0, NULL, "could not create spool directory \"%s\": %s",
                             dir, strerror(errno));
        rc = ANM_EIO;
        goto fail;
    }
    read_head(log);
    DIR *d = opendir(dir);
    if (d == NULL) {
        anm_error_detail_set(detail, dir, 0, 0, NULL, "could not open spool directory \"%s\": %s",
                             dir, strerror(errno));
        rc = ANM_EIO;
        goto fail;
    }
    struct dirent *de;
    rc = ANM_OK;
    while (rc == ANM_OK && (de = readdir(d)) != NULL) {
        uint64_t first;
        if (parse_segment_name(de->d_name, &first))
            rc = push_segment(log, first, 0);
    }
    closedir(d);
    if (rc != ANM_OK)
        goto fail;
    if (log->n_segments > 1)
        qsort(log->segments, log->n_segments, sizeof *log->segments, cmp_segment);
    log->next_seq = log->acked_seq + 1;
    log->head_segment = log->n_segments; /* none found yet: end of the log */
    for (size_t i = 0; i < log->n_segments; i++) {
        if (log->segments[i].first_seq > log->next_seq) {
            /* a gap (lost segment): the records before it cannot be replayed in order */
            anm_log_warn(COMPONENT, "spool \"%s\": records %llu..%llu missing", dir,
                         (unsigned long long)log->next_seq,
                         (unsigned long long)(log->segments[i].first_seq - 1));
            if (log->head_segment == log->n_segments)
                log->acked_seq = log->segments[i].first_seq - 1;
        }
        if ((rc = scan_segment(log, i)) != ANM_OK) {
            anm_error_detail_set(detail, dir, 0, 0, NULL, "could not read spool segment in \"%s\"",
                                 dir);
            goto fail;
        }
    }
    if (log->head_segment == log->n_segments && log->n_segments > 0) {
        log->head_segment = log->n_segments - 1;
        log->head_offset = log->segments[log->n_segments - 1].size;
    }
    if (log->n_segments > 0 && (rc = open_write_segment(log)) != ANM_OK)
        goto fail;
    log->synced_seq = log->next_seq - 1;
    gateway_spool_log_rewind(log);
    *out = log;
    return ANM_OK;
fail:
    gateway_spool_log_close(&log);
    return rc;
}

void gateway_spool_log_close(gateway_spool_log **logp)
{
    if (logp == NULL || *logp == NULL)
        return;
    gateway_spool_log *log = *logp;
    if (log->write_fd >= 0) {
        (void)gateway_spool_log_sync(log);
        (void)gateway_spool_log_commit(log);
        close(log->write_fd);
    }
    if (log->read_fd >= 0)
        close(log->read_fd);
    free(log->dir);
    free(log->segments);
    free(log->ring);
    free(log);
    *logp = NULL;
}

/* ---- writer ------------------------------------------------------------------------------- */

static int start_segment(gateway_spool_log *log)
{
    if (log->write_fd >= 0) {
        if (gateway_spool_log_sync(log) != ANM_OK)
            return ANM_EIO;
        close(log->write_fd);
        log->write_fd = -1;
    }
    int rc = push_segment(log, log->next_seq, 0);
    if (rc != ANM_OK)
        return rc;
    if ((rc = open_write_segment(log)) != ANM_OK) {
        log->n_segments--;
        return rc;
    }
    return fsync_dir(log->dir);
}

int gateway_spool_log_append(gateway_spool_log *log, const void *data, size_t size,
                             uint64_t *seq_out)
{
    if (size == 0 || size > GATEWAY_SPOOL_LOG_RECORD_MAX)
        return ANM_EINVAL;
    int rc;
    if (log->n_segments == 0 || log->segments[log->n_segments - 1].size >= log->segment_bytes) {
        if ((rc = start_segment(log)) != ANM_OK)
            return rc;
    }
    segment *seg = &log->segments[log->n_segments - 1];
    unsigned char header[HEADER_BYTES];
    put_u32(header, (uint32_t)size);
    put_u64(header + 8, log->next_seq);
    put_u32(header + 4, record_crc(header + 8, data, size));
    struct iovec iov[2] = {{header, HEADER_BYTES}, {(void *)(uintptr_t)data, size}};
    ssize_t w = pwritev(log->write_fd, iov, 2, (off_t)seg->size);
    if (w != (ssize_t)(HEADER_BYTES + size)) {
        anm_log_error(COMPONENT, "could not append to spool \"%s\": %s", log->dir,
                      w < 0 ? strerror(errno) : "short write");
        (void)ftruncate(log->write_fd, (off_t)seg->size); /* the next append overwrites it anyway */
        return ANM_EIO;
    }
    seg->size += HEADER_BYTES + size;
    if (seq_out != NULL)
        *seq_out = log->next_seq;
    log->next_seq++;
    return ANM_OK;
}

int gateway_spool_log_sync(gateway_spool_log *log)
{
    if (log->synced_seq + 1 >= log->next_seq || log->write_fd < 0)
        return ANM_OK;
    if (fdatasync(log->write_fd) != 0) {
        anm_log_error(COMPONENT, "could not sync spool \"%s\": %s", log->dir, strerror(errno));
        return ANM_EIO;
    }
    log->synced_seq = log->next_seq - 1;
    log->synced_size = log->segments[log->n_segments - 1].size;
    return ANM_OK;
}

size_t gateway_spool_log_pending(const gateway_spool_log *log)
{
    return (size_t)(log->next_seq - 1 - log->acked_seq);
}

size_t gateway_spool_log_unsynced(const gateway_spool_log *log)
{
    return (size_t)(log->next_seq - 1 - log->synced_seq);
}

uint64_t gateway_spool_log_acked_seq(const gateway_spool_log *log)
{
    return log->acked_seq;
}

size_t gateway_spool_log_segments(const gateway_spool_log *log)
{
    return log->n_segments;
}

/* ---- reader ------------------------------------------------------------------------------- */

void gateway_spool_log_rewind(gateway_spool_log *log)
{
    log->ring_count = 0;
    log->ring_head = 0;
    log->read_segment = log->head_segment;
    log->read_offset = log->head_offset;
}

static uint64_t readable_size(const gateway_spool_log *log, size_t index)
{
    return index + 1 == log->n_segments ? log->synced_size : log->segments[index].size;
}

static int ring_push(gateway_spool_log *log, const outstanding *o)
{
    if (log->ring_count == log->ring_cap) {
        size_t cap = log->ring_cap ? log->ring_cap * 2 : 256;
        outstanding *grown = malloc(cap * sizeof *grown);
        if (grown == NULL)
            return ANM_ENOMEM;
        for (size_t i = 0; i < log->ring_count; i++)
            grown[i] = log->ring[(log->ring_head + i) % log->ring_cap];
        free(log->ring);
        log->ring = grown;
        log->ring_head = 0;
        log->ring_cap = cap;
    }
    log->ring[(log->ring_head + log->ring_count) % log->ring_cap] = *o;
    log->ring_count++;
    return ANM_OK;
}

int gateway_spool_log_next(gateway_spool_log *log, char **data, size_t *size, uint64_t *seq)
{
    *data = NULL;
    *size = 0;
    while (log->read_segment + 1 < log->n_segments &&
           log->read_offset >= log->segments[log->read_segment].size) {
        log->read_segment++;
        log->read_offset = 0;
    }
    if (log->read_segment >= log->n_segments ||
        log->read_offset + HEADER_BYTES > readable_size(log, log->read_segment))
        return ANM_ENOTFOUND;
    const segment *seg = &log->segments[log->read_segment];
    if (log->read_fd < 0 || log->read_fd_segment != log->read_segment) {
        if (log->read_fd >= 0)
            close(log->read_fd);
        char path[PATH_BYTES];
        if (segment_path(log, seg->first_seq, path, sizeof path) != ANM_OK)
            return ANM_EIO;
        log->read_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (log->read_fd < 0)
            return ANM_EIO;
        log->read_fd_segment = log->read_segment;
    }
    unsigned char header[HEADER_BYTES];
    if (read_full(log->read_fd, header, HEADER_BYTES, log->read_offset) != ANM_OK)
        return ANM_EIO;
    uint32_t length = get_u32(header);
    if (length == 0 || length > GATEWAY_SPOOL_LOG_RECORD_MAX)
        return ANM_EIO;
    char *buf = malloc((size_t)length + 1);
    if (buf == NULL)
        return ANM_ENOMEM;
    if (read_full(log->read_fd, buf, length, log->read_offset + HEADER_BYTES) != ANM_OK ||
        record_crc(header + 8, buf, length) != get_u32(header + 4)) {
        free(buf);
        return ANM_EIO;
    }
    buf[length] = '\0';
    outstanding o = {get_u64(header + 8), seg->first_seq,
                     log->read_offset + HEADER_BYTES + length, 0};
    if (ring_push(log, &o) != ANM_OK) {
        free(buf);
        return ANM_ENOMEM;
    }
    log->read_offset = o.end;
    *data = buf;
    *size = length;
    *seq = o.seq;
    return ANM_OK;
}

static size_t segment_index(const gateway_spool_log *log, uint64_t first_seq)
{
    for (size_t i = 0; i < log->n_segments; i++)
        if (log->segments[i].first_seq == first_seq)
            return i;
    return log->n_segments;
}

int gateway_spool_log_ack(gateway_spool_log *log, uint64_t seq)
{
    if (log->ring_count == 0)
        return ANM_ENOTFOUND;
    uint64_t first = log->ring[log->ring_head].seq;
    if (seq < first || seq - first >= log->ring_count)
        return ANM_ENOTFOUND;
    outstanding *o = &log->ring[(log->ring_head + (size_t)(seq - first)) % log->ring_cap];
    if (o->acked)
        return ANM_ENOTFOUND;
    o->acked = 1;
    while (log->ring_count > 0 && log->ring[log->ring_head].acked) {
        const outstanding *done = &log->ring[log->ring_head];
        log->acked_seq = done->seq;
        log->head_segment = segment_index(log, done->first_seq_of_segment);
        log->head_offset = done->end;
        log->ring_head = (log->ring_head + 1) % log->ring_cap;
        log->ring_count--;
    }
    return ANM_OK;
}

int gateway_spool_log_commit(gateway_spool_log *log)
{
    if (log->acked_seq == log->committed_seq)
        return ANM_OK;
    int rc = write_head(log);
    if (rc != ANM_OK)
        return rc;
    /* delete segments wholly acknowledged (never the one being written) */
    size_t drop = 0;
    while (drop + 1 < log->n_segments && log->segments[drop + 1].first_seq <= log->acked_seq + 1)
        drop++;
    if (drop == 0)
        return ANM_OK;
    for (size_t i = 0; i < drop; i++) {
        char path[PATH_BYTES];
        if (segment_path(log, log->segments[i].first_seq, path, sizeof path) == ANM_OK &&
            unlink(path) != 0 && errno != ENOENT)
            anm_log_warn(COMPONENT, "could not remove \"%s\": %s", path, strerror(errno));
    }
    if (log->read_fd >= 0 && log->read_fd_segment < drop) {
        close(log->read_fd);
        log->read_fd = -1;
    } else if (log->read_fd >= 0) {
        log->read_fd_segment -= drop;
    }
    memmove(log->segments, log->segments + drop, (log->n_segments - drop) * sizeof *log->segments);
    log->n_segments -= drop;
    log->head_segment = log->head_segment >= drop ? log->head_segment - drop : 0;
    log->read_segment = log->read_segment >= drop ? log->read_segment - drop : 0;
    return fsync_dir(log->dir);
}
