/* journal.c: segment files of length-prefixed, CRC-checked records (see journal.h). */
#include "ingest/journal.h"

#include "engine/clock.h"
#include "engine/log.h"
#include "engine/telemetry_frame.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COMPONENT "ingest.journal"

struct ingest_journal {
    char *dir;
    uint64_t segment_bytes;
    uint64_t max_bytes;
    pthread_mutex_t lock;  /* guards starts/n_segments */
    uint64_t *starts;      /* sorted start positions of the segments */
    size_t n_segments, cap_segments;
    int fd;                /* the last segment, open for appending */
    uint64_t fd_start;
    _Atomic uint64_t appended, durable, committed;
    /* fdatasync latency (appender thread only): a histogram over the
       journal's life and the maximum of the current one-second window */
    uint64_t sync_hist[6]; /* <1, <10, <100, <1000, <3000, >=3000 ms */
    int64_t window_start_ns, window_max_ns;
    uint64_t window_syncs;
};

struct ingest_journal_reader {
    ingest_journal *journal;
    uint64_t position;
    int fd;
    uint64_t fd_start;
    unsigned char *buf;
    size_t cap;
};

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

int ingest_journal_record_parse(const void *data, size_t size, const void **payload,
                                size_t *payload_size, size_t *record_size, char *why,
                                size_t why_size)
{
    const unsigned char *p = data;
    if (size < INGEST_JOURNAL_HEADER_BYTES)
        return ANM_EAGAIN;
    uint32_t length = get_u32(p);
    if (length == 0 || length > INGEST_JOURNAL_MAX_RECORD) {
        if (why)
            snprintf(why, why_size, "record length %" PRIu32 " out of range", length);
        return ANM_EPROTO;
    }
    if (size - INGEST_JOURNAL_HEADER_BYTES < length)
        return ANM_EAGAIN;
    uint32_t crc = anm_crc32c(p + INGEST_JOURNAL_HEADER_BYTES, length);
    if (crc != get_u32(p + 4)) {
        if (why)
            snprintf(why, why_size, "record checksum mismatch");
        return ANM_EPROTO;
    }
    *payload = p + INGEST_JOURNAL_HEADER_BYTES;
    *payload_size = length;
    *record_size = INGEST_JOURNAL_HEADER_BYTES + (size_t)length;
    return ANM_OK;
}

void ingest_journal_record_header(const void *payload, size_t size,
                                  unsigned char header[INGEST_JOURNAL_HEADER_BYTES])
{
    put_u32(header, (uint32_t)size);
    put_u32(header + 4, anm_crc32c(payload, size));
}

static int segment_path(const char *dir, uint64_t start, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/seg-%016" PRIx64 ".jnl", dir, start);
    return n < 0 || (size_t)n >= size ? ANM_ERANGE : ANM_OK;
}

static int parse_segment_name(const char *name, uint64_t *start)
{
    size_t len = strlen(name);
    if (len != 4 + 16 + 4 || strncmp(name, "seg-", 4) != 0 || strcmp(name + 20, ".jnl") != 0)
        return 0;
    uint64_t v = 0;
    for (size_t i = 4; i < 20; i++) {
        char c = name[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            return 0;
        v = v << 4 | (uint64_t)d;
    }
    *start = v;
    return 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int push_segment(ingest_journal *j, uint64_t start)
{
    if (j->n_segments == j->cap_segments) {
        size_t cap = j->cap_segments ? j->cap_segments * 2 : 16;
        uint64_t *p = realloc(j->starts, cap * sizeof *p);
        if (!p)
            return ANM_ENOMEM;
        j->starts = p;
        j->cap_segments = cap;
    }
    j->starts[j->n_segments++] = start;
    return ANM_OK;
}

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ANM_EIO;
    int rc = fsync(fd) == 0 ? ANM_OK : ANM_EIO;
    close(fd);
    return rc;
}

/* Creates the segment starting at start and makes it the append target. */
static int new_segment(ingest_journal *j, uint64_t start)
{
    char path[4096];
    if (segment_path(j->dir, start, path, sizeof path) != ANM_OK)
        return ANM_ERANGE;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        anm_log_error(COMPONENT, "could not create journal segment \"%s\": %s", path,
                      strerror(errno));
        return ANM_EIO;
    }
    if (sync_dir(j->dir) != ANM_OK) {
        close(fd);
        return ANM_EIO;
    }
    pthread_mutex_lock(&j->lock);
    int rc = push_segment(j, start);
    pthread_mutex_unlock(&j->lock);
    if (rc != ANM_OK) {
        close(fd);
        return rc;
    }
    if (j->fd >= 0)
        close(j->fd);
    j->fd = fd;
    j->fd_start = start;
    return ANM_OK;
}

/*
 * Scans the segment at start from offset, returning in *valid_end the
 * offset after its last good record.
 */
static int scan_segment(const char *path, uint64_t offset, uint64_t *valid_end, char *why,
                        size_t why_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ANM_EIO;
    int rc = ANM_OK;
    unsigned char header[INGEST_JOURNAL_HEADER_BYTES];
    unsigned char *buf = NULL;
    size_t cap = 0;
    why[0] = '\0';
    for (;;) {
        ssize_t n = pread(fd, header, sizeof header, (off_t)offset);
        if (n == 0)
            break;
        if (n != (ssize_t)sizeof header) {
            snprintf(why, why_size, "torn record header");
            break;
        }
        uint32_t length = get_u32(header);
        if (length == 0 || length > INGEST_JOURNAL_MAX_RECORD) {
            snprintf(why, why_size, "record length %" PRIu32 " out of range", length);
            break;
        }
        size_t need = sizeof header + length;
        if (need > cap) {
            unsigned char *p = realloc(buf, need);
            if (!p) {
                rc = ANM_ENOMEM;
                break;
            }
            buf = p;
            cap = need;
        }
        memcpy(buf, header, sizeof header);
        n = pread(fd, buf + sizeof header, length, (off_t)(offset + sizeof header));
        if (n != (ssize_t)length) {
            snprintf(why, why_size, "torn record");
            break;
        }
        const void *payload;
        size_t payload_size, record_size;
        if (ingest_journal_record_parse(buf, need, &payload, &payload_size, &record_size, why,
                                        why_size) != ANM_OK)
            break;
        offset += record_size;
    }
    *valid_end = offset;
    free(buf);
    close(fd);
    return rc;
}

int ingest_journal_open(const ingest_journal_options *options, uint64_t committed,
                        ingest_journal **out, anm_error_detail *detail)
{
    int rc = ANM_OK;
    *out = NULL;
    if (!options || !options->dir || !options->dir[0])
        return ANM_EINVAL;
    ingest_journal *j = calloc(1, sizeof *j);
    if (!j)
        return ANM_ENOMEM;
    j->fd = -1;
    j->window_start_ns = anm_monotonic_ns();
    pthread_mutex_init(&j->lock, NULL);
    j->segment_bytes = options->segment_bytes ? options->segment_bytes : 64u << 20;
    j->max_bytes = options->max_bytes ? options->max_bytes : (uint64_t)1 << 30;
    j->dir = strdup(options->dir);
    if (!j->dir) {
        rc = ANM_ENOMEM;
        goto fail;
    }
    if (mkdir(j->dir, 0700) != 0 && errno != EEXIST) {
        anm_error_detail_set(detail, j->dir, 0, 0, NULL, "could not create journal directory: %s",
                             strerror(errno));
        rc = ANM_EIO;
        goto fail;
    }
    DIR *d = opendir(j->dir);
    if (!d) {
        anm_error_detail_set(detail, j->dir, 0, 0, NULL, "could not open journal directory: %s",
                             strerror(errno));
        rc = ANM_EIO;
        goto fail;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t start;
        if (parse_segment_name(e->d_name, &start) && (rc = push_segment(j, start)) != ANM_OK)
            break;
    }
    closedir(d);
    if (rc != ANM_OK)
        goto fail;
    if (j->n_segments > 1)
        qsort(j->starts, j->n_segments, sizeof *j->starts, cmp_u64);

    /* Find the valid end: scan each segment from max(start, committed). A
       bad record ends the journal there; later segments are dropped. */
    uint64_t end = committed;
    size_t keep = 0;
    char path[4096], why[128];
    for (size_t i = 0; i < j->n_segments; i++) {
        uint64_t start = j->starts[i];
        if (segment_path(j->dir, start, path, sizeof path) != ANM_OK) {
            rc = ANM_ERANGE;
            goto fail;
        }
        struct stat st;
        if (stat(path, &st) != 0) {
            rc = ANM_EIO;
            goto fail;
        }
        uint64_t seg_end = start + (uint64_t)st.st_size;
        int last = i + 1 == j->n_segments;
        if (seg_end <= committed && !(last && seg_end == committed && start == committed)) {
            unlink(path); /* entirely stored */
            continue;
        }
        if (start > end) {
            anm_log_error(COMPONENT, "journal gap before segment \"%s\": dropping it and later ones",
                          path);
            for (size_t k = i; k < j->n_segments; k++)
                if (segment_path(j->dir, j->starts[k], path, sizeof path) == ANM_OK)
                    unlink(path);
            break;
        }
        uint64_t from = committed > start ? committed - start : 0;
        uint64_t valid;
        if ((rc = scan_segment(path, from, &valid, why, sizeof why)) != ANM_OK) {
            anm_error_detail_set(detail, path, 0, 0, NULL, "could not read journal segment");
            goto fail;
        }
        j->starts[keep++] = start;
        end = start + valid;
        if (valid < (uint64_t)st.st_size) {
            anm_log_warn(COMPONENT,
                         "journal segment \"%s\": truncating %" PRIu64 " bytes after position %" PRIu64
                         " (%s)",
                         path, (uint64_t)st.st_size - valid, end, why);
            if (truncate(path, (off_t)valid) != 0) {
                rc = ANM_EIO;
                goto fail;
            }
            for (size_t k = i + 1; k < j->n_segments; k++)
                if (segment_path(j->dir, j->starts[k], path, sizeof path) == ANM_OK)
                    unlink(path);
            break;
        }
    }
    j->n_segments = keep;
    if (keep > 0) {
        uint64_t start = j->starts[keep - 1];
        if (segment_path(j->dir, start, path, sizeof path) != ANM_OK) {
            rc = ANM_ERANGE;
            goto fail;
        }
        j->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (j->fd < 0) {
            rc = ANM_EIO;
            goto fail;
        }
        j->fd_start = start;
        if (fdatasync(j->fd) != 0) {
            rc = ANM_EIO;
            goto fail;
        }
    } else if ((rc = new_segment(j, end)) != ANM_OK) {
        goto fail;
    }
    atomic_store(&j->appended, end);
    atomic_store(&j->durable, end);
    atomic_store(&j->committed, committed);
    *out = j;
    return ANM_OK;
fail:
    ingest_journal_close(&j);
    return rc;
}

void ingest_journal_close(ingest_journal **journal)
{
    if (!journal || !*journal)
        return;
    ingest_journal *j = *journal;
    if (j->fd >= 0) {
        (void)fdatasync(j->fd);
        close(j->fd);
    }
    uint64_t *h = j->sync_hist;
    if (h[0] + h[1] + h[2] + h[3] + h[4] + h[5] > 0)
        anm_log_info(COMPONENT,
                     "fdatasync latency: <1 ms %" PRIu64 ", 1-10 ms %" PRIu64 ", 10-100 ms %" PRIu64
                     ", 0.1-1 s %" PRIu64 ", 1-3 s %" PRIu64 ", >=3 s %" PRIu64,
                     h[0], h[1], h[2], h[3], h[4], h[5]);
    pthread_mutex_destroy(&j->lock);
    free(j->starts);
    free(j->dir);
    free(j);
    *journal = NULL;
}

int ingest_journal_would_overflow(ingest_journal *j, size_t size)
{
    uint64_t used = atomic_load(&j->appended) - atomic_load(&j->committed);
    return used + INGEST_JOURNAL_HEADER_BYTES + size > j->max_bytes;
}

int ingest_journal_append(ingest_journal *j, const void *payload, size_t size, uint64_t *end)
{
    if (size == 0 || size > INGEST_JOURNAL_MAX_RECORD)
        return ANM_EINVAL;
    if (ingest_journal_would_overflow(j, size))
        return ANM_EFULL;
    uint64_t pos = atomic_load(&j->appended);
    uint64_t record = INGEST_JOURNAL_HEADER_BYTES + size;
    if (pos > j->fd_start && pos - j->fd_start + record > j->segment_bytes) {
        int rc = ingest_journal_sync(j); /* the old segment is complete */
        if (rc != ANM_OK)
            return rc;
        if ((rc = new_segment(j, pos)) != ANM_OK)
            return rc;
    }
    unsigned char header[INGEST_JOURNAL_HEADER_BYTES];
    ingest_journal_record_header(payload, size, header);
    struct iovec_like {
        const void *p;
        size_t n;
    } parts[2] = {{header, sizeof header}, {payload, size}};
    size_t written_total = 0;
    for (int i = 0; i < 2; i++) {
        const unsigned char *p = parts[i].p;
        size_t left = parts[i].n;
        while (left > 0) {
            ssize_t n = write(j->fd, p, left);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                anm_log_error(COMPONENT, "could not write journal: %s", strerror(errno));
                /* drop the partial record so the file stays a sequence of records */
                if (ftruncate(j->fd, (off_t)(pos - j->fd_start)) != 0)
                    anm_log_error(COMPONENT, "could not truncate journal: %s", strerror(errno));
                return ANM_EIO;
            }
            p += n;
            left -= (size_t)n;
            written_total += (size_t)n;
        }
    }
    atomic_store(&j->appended, pos + written_total);
    if (end)
        *end = pos + written_total;
    return ANM_OK;
}

/* Records one fdatasync's duration; logs the window's maximum once a second. */
static void note_sync(ingest_journal *j, int64_t t0, int64_t t1)
{
    int64_t d = t1 - t0, ms = d / 1000000;
    size_t b = ms < 1 ? 0 : ms < 10 ? 1 : ms < 100 ? 2 : ms < 1000 ? 3 : ms < 3000 ? 4 : 5;
    j->sync_hist[b]++;
    if (d > j->window_max_ns)
        j->window_max_ns = d;
    j->window_syncs++;
    if (t1 - j->window_start_ns < 1000000000)
        return;
    double max_ms = (double)j->window_max_ns / 1e6;
    if (max_ms >= 100.0)
        anm_log_info(COMPONENT, "fdatasync: %" PRIu64 " syncs in %.1f s, max %.0f ms",
                     j->window_syncs, (double)(t1 - j->window_start_ns) / 1e9, max_ms);
    else
        anm_log_debug(COMPONENT, "fdatasync: %" PRIu64 " syncs in %.1f s, max %.1f ms",
                      j->window_syncs, (double)(t1 - j->window_start_ns) / 1e9, max_ms);
    j->window_start_ns = t1;
    j->window_max_ns = 0;
    j->window_syncs = 0;
}

int ingest_journal_sync(ingest_journal *j)
{
    uint64_t appended = atomic_load(&j->appended);
    if (appended == atomic_load(&j->durable))
        return ANM_OK;
    int64_t t0 = anm_monotonic_ns();
    if (fdatasync(j->fd) != 0) {
        anm_log_error(COMPONENT, "could not sync journal: %s", strerror(errno));
        return ANM_EIO;
    }
    note_sync(j, t0, anm_monotonic_ns());
    atomic_store(&j->durable, appended);
    return ANM_OK;
}

int ingest_journal_set_committed(ingest_journal *j, uint64_t position)
{
    atomic_store(&j->committed, position);
    char path[4096];
    pthread_mutex_lock(&j->lock);
    /* segment i is entirely stored when the next one starts at or below position */
    size_t drop = 0;
    while (drop + 1 < j->n_segments && j->starts[drop + 1] <= position)
        drop++;
    for (size_t i = 0; i < drop; i++)
        if (segment_path(j->dir, j->starts[i], path, sizeof path) == ANM_OK)
            unlink(path);
    memmove(j->starts, j->starts + drop, (j->n_segments - drop) * sizeof *j->starts);
    j->n_segments -= drop;
    pthread_mutex_unlock(&j->lock);
    return ANM_OK;
}

uint64_t ingest_journal_appended(ingest_journal *j) { return atomic_load(&j->appended); }
uint64_t ingest_journal_durable(ingest_journal *j) { return atomic_load(&j->durable); }
uint64_t ingest_journal_committed(ingest_journal *j) { return atomic_load(&j->committed); }

size_t ingest_journal_segments(ingest_journal *j)
{
    pthread_mutex_lock(&j->lock);
    size_t n = j->n_segments;
    pthread_mutex_unlock(&j->lock);
    return n;
}

int ingest_journal_reader_new(ingest_journal *journal, uint64_t position,
                              ingest_journal_reader **out)
{
    ingest_journal_reader *r = calloc(1, sizeof *r);
    if (!r)
        return ANM_ENOMEM;
    r->journal = journal;
    r->position = position;
    r->fd = -1;
    *out = r;
    return ANM_OK;
}

void ingest_journal_reader_destroy(ingest_journal_reader **reader)
{
    if (!reader || !*reader)
        return;
    if ((*reader)->fd >= 0)
        close((*reader)->fd);
    free((*reader)->buf);
    free(*reader);
    *reader = NULL;
}

void ingest_journal_reader_seek(ingest_journal_reader *r, uint64_t position)
{
    r->position = position;
}

uint64_t ingest_journal_reader_position(const ingest_journal_reader *r) { return r->position; }

/* Opens the segment holding r->position (the last one starting at or below it). */
static int reader_open_segment(ingest_journal_reader *r)
{
    ingest_journal *j = r->journal;
    uint64_t start = UINT64_MAX;
    pthread_mutex_lock(&j->lock);
    for (size_t i = j->n_segments; i-- > 0;)
        if (j->starts[i] <= r->position) {
            start = j->starts[i];
            break;
        }
    pthread_mutex_unlock(&j->lock);
    if (start == UINT64_MAX)
        return ANM_EIO;
    if (r->fd >= 0 && r->fd_start == start)
        return ANM_OK;
    char path[4096];
    if (segment_path(j->dir, start, path, sizeof path) != ANM_OK)
        return ANM_ERANGE;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        anm_log_error(COMPONENT, "could not open journal segment \"%s\": %s", path, strerror(errno));
        return ANM_EIO;
    }
    if (r->fd >= 0)
        close(r->fd);
    r->fd = fd;
    r->fd_start = start;
    return ANM_OK;
}

int ingest_journal_reader_next(ingest_journal_reader *r, uint64_t limit, const void **payload,
                               size_t *size, uint64_t *end)
{
    if (r->position + INGEST_JOURNAL_HEADER_BYTES > limit)
        return ANM_EAGAIN;
    int rc = reader_open_segment(r);
    if (rc != ANM_OK)
        return rc;
    unsigned char header[INGEST_JOURNAL_HEADER_BYTES];
    ssize_t n = pread(r->fd, header, sizeof header, (off_t)(r->position - r->fd_start));
    if (n == 0) {
        /* at the end of this segment: the next one starts here */
        close(r->fd);
        r->fd = -1;
        if ((rc = reader_open_segment(r)) != ANM_OK)
            return rc;
        if (r->fd_start != r->position)
            return ANM_EAGAIN;
        n = pread(r->fd, header, sizeof header, 0);
    }
    if (n != (ssize_t)sizeof header)
        return n < 0 ? ANM_EIO : ANM_EAGAIN;
    uint32_t length = get_u32(header);
    if (length == 0 || length > INGEST_JOURNAL_MAX_RECORD)
        return ANM_EPROTO;
    size_t need = sizeof header + length;
    if (r->position + need > limit)
        return ANM_EAGAIN;
    if (need > r->cap) {
        unsigned char *p = realloc(r->buf, need);
        if (!p)
            return ANM_ENOMEM;
        r->buf = p;
        r->cap = need;
    }
    memcpy(r->buf, header, sizeof header);
    n = pread(r->fd, r->buf + sizeof header, length,
              (off_t)(r->position - r->fd_start + sizeof header));
    if (n != (ssize_t)length)
        return n < 0 ? ANM_EIO : ANM_EPROTO;
    size_t record_size;
    rc = ingest_journal_record_parse(r->buf, need, payload, size, &record_size, NULL, 0);
    if (rc != ANM_OK)
        return ANM_EPROTO;
    r->position += record_size;
    *end = r->position;
    return ANM_OK;
}
