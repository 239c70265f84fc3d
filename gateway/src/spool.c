/* spool.c: the durable on-disk queue of spool.h. */
#include "gateway/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/log.h"

#define SEQ_DIGITS 20
#define PATH_BYTES 4096

struct gateway_spool {
    char *dir;
    char *parked_dir;
    gateway_spool_entry *entries; /* sorted by seq */
    size_t count, capacity;
    uint64_t next_seq;
};

static int valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > GATEWAY_SPOOL_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return name[0] != '.';
}

/* Parses "<20 digits>_<name>"; 1 on success. */
static int parse_file_name(const char *file, gateway_spool_entry *out)
{
    size_t n = strlen(file);
    if (n < SEQ_DIGITS + 2 || file[SEQ_DIGITS] != '_')
        return 0;
    uint64_t seq = 0;
    for (size_t i = 0; i < SEQ_DIGITS; i++) {
        if (file[i] < '0' || file[i] > '9')
            return 0;
        uint64_t digit = (uint64_t)(file[i] - '0');
        if (seq > (UINT64_MAX - digit) / 10)
            return 0;
        seq = seq * 10 + digit;
    }
    const char *name = file + SEQ_DIGITS + 1;
    if (!valid_name(name))
        return 0;
    out->seq = seq;
    memcpy(out->name, name, strlen(name) + 1);
    return 1;
}

static int join(char *buf, size_t size, const char *dir, const char *prefix, uint64_t seq,
                const char *name)
{
    int n = snprintf(buf, size, "%s/%s%020" PRIu64 "_%s", dir, prefix, seq, name);
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

static int write_all_sync(const char *path, const void *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return ANM_EIO;
    const char *p = data;
    size_t left = size;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            close(fd);
            return ANM_EIO;
        }
        p += w;
        left -= (size_t)w;
    }
    int rc = fdatasync(fd) == 0 ? ANM_OK : ANM_EIO;
    if (close(fd) != 0)
        rc = ANM_EIO;
    return rc;
}

int gateway_write_file_atomic(const char *path, const void *data, size_t size)
{
    char tmp[PATH_BYTES];
    char dir[PATH_BYTES];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return ANM_EIO;
    n = snprintf(dir, sizeof dir, "%s", path);
    if (n < 0 || (size_t)n >= sizeof dir)
        return ANM_EIO;
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
        dir[0] = '.';
        dir[1] = '\0';
    } else if (slash == dir) {
        dir[1] = '\0';
    } else {
        *slash = '\0';
    }
    int rc = write_all_sync(tmp, data, size);
    if (rc != ANM_OK) {
        unlink(tmp);
        return rc;
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return ANM_EIO;
    }
    return fsync_dir(dir);
}

static int cmp_entry(const void *a, const void *b)
{
    const gateway_spool_entry *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int push_entry(gateway_spool *spool, const gateway_spool_entry *e)
{
    if (spool->count == spool->capacity) {
        size_t capacity = spool->capacity ? spool->capacity * 2 : 64;
        gateway_spool_entry *grown = realloc(spool->entries, capacity * sizeof *grown);
        if (grown == NULL)
            return ANM_ENOMEM;
        spool->entries = grown;
        spool->capacity = capacity;
    }
    spool->entries[spool->count++] = *e;
    return ANM_OK;
}

static int ensure_dir(const char *path, anm_error_detail *detail)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        anm_error_detail_set(detail, path, 0, 0, NULL, "could not create spool directory \"%s\": %s",
                             path, strerror(errno));
        return ANM_EIO;
    }
    return ANM_OK;
}

/* Scans dir: temporaries removed, entries indexed (when index), max seq tracked. */
static int scan(gateway_spool *spool, const char *dir, int index, anm_error_detail *detail)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        anm_error_detail_set(detail, dir, 0, 0, NULL, "could not open spool directory \"%s\": %s",
                             dir, strerror(errno));
        return ANM_EIO;
    }
    int rc = ANM_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        gateway_spool_entry e;
        if (strncmp(de->d_name, ".tmp-", 5) == 0) {
            char path[PATH_BYTES];
            int n = snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            if (n > 0 && (size_t)n < sizeof path)
                unlink(path);
            continue;
        }
        if (!parse_file_name(de->d_name, &e))
            continue;
        if (e.seq >= spool->next_seq)
            spool->next_seq = e.seq + 1;
        if (index && (rc = push_entry(spool, &e)) != ANM_OK)
            break;
    }
    closedir(d);
    return rc;
}

int gateway_spool_open(const char *dir, gateway_spool **out, anm_error_detail *detail)
{
    *out = NULL;
    int rc = ANM_ENOMEM;
    gateway_spool *spool = calloc(1, sizeof *spool);
    if (spool == NULL)
        goto fail;
    spool->dir = strdup(dir);
    size_t n = strlen(dir) + sizeof "/parked";
    spool->parked_dir = malloc(n);
    if (spool->dir == NULL || spool->parked_dir == NULL)
        goto fail;
    snprintf(spool->parked_dir, n, "%s/parked", dir);
    spool->next_seq = 1;
    if ((rc = ensure_dir(dir, detail)) != ANM_OK || (rc = ensure_dir(spool->parked_dir, detail)) != ANM_OK)
        goto fail;
    if ((rc = scan(spool, dir, 1, detail)) != ANM_OK)
        goto fail;
    /* parked entries keep their numbers: never reuse one */
    if ((rc = scan(spool, spool->parked_dir, 0, detail)) != ANM_OK)
        goto fail;
    if (spool->count > 1)
        qsort(spool->entries, spool->count, sizeof *spool->entries, cmp_entry);
    *out = spool;
    return ANM_OK;
fail:
    gateway_spool_close(&spool);
    return rc;
}

void gateway_spool_close(gateway_spool **spool)
{
    if (spool == NULL || *spool == NULL)
        return;
    free((*spool)->dir);
    free((*spool)->parked_dir);
    free((*spool)->entries);
    free(*spool);
    *spool = NULL;
}

const char *gateway_spool_dir(const gateway_spool *spool)
{
    return spool->dir;
}

int gateway_spool_put(gateway_spool *spool, const char *name, const void *data, size_t size,
                      uint64_t *seq_out)
{
    if (!valid_name(name))
        return ANM_EINVAL;
    gateway_spool_entry e;
    e.seq = spool->next_seq;
    memcpy(e.name, name, strlen(name) + 1);
    char tmp[PATH_BYTES], path[PATH_BYTES];
    if (join(tmp, sizeof tmp, spool->dir, ".tmp-", e.seq, name) != ANM_OK ||
        join(path, sizeof path, spool->dir, "", e.seq, name) != ANM_OK)
        return ANM_EINVAL;
    int rc = write_all_sync(tmp, data, size);
    if (rc != ANM_OK) {
        anm_log_error("spool", "could not write spool entry \"%s\": %s", tmp, strerror(errno));
        unlink(tmp);
        return rc;
    }
    if (rename(tmp, path) != 0) {
        anm_log_error("spool", "could not rename \"%s\": %s", tmp, strerror(errno));
        unlink(tmp);
        return ANM_EIO;
    }
    if ((rc = fsync_dir(spool->dir)) != ANM_OK)
        return rc;
    if ((rc = push_entry(spool, &e)) != ANM_OK)
        return rc;
    spool->next_seq++;
    if (seq_out != NULL)
        *seq_out = e.seq;
    return ANM_OK;
}

size_t gateway_spool_count(const gateway_spool *spool)
{
    return spool->count;
}

int gateway_spool_at(const gateway_spool *spool, size_t i, gateway_spool_entry *out)
{
    if (i >= spool->count)
        return ANM_ENOTFOUND;
    *out = spool->entries[i];
    return ANM_OK;
}

static long index_of(const gateway_spool *spool, uint64_t seq)
{
    size_t lo = 0, hi = spool->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (spool->entries[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (lo < spool->count && spool->entries[lo].seq == seq) ? (long)lo : -1;
}

int gateway_spool_find(const gateway_spool *spool, uint64_t seq, gateway_spool_entry *out)
{
    long i = index_of(spool, seq);
    if (i < 0)
        return ANM_ENOTFOUND;
    *out = spool->entries[i];
    return ANM_OK;
}

int gateway_spool_read(const gateway_spool *spool, uint64_t seq, char **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    long i = index_of(spool, seq);
    if (i < 0)
        return ANM_ENOTFOUND;
    char path[PATH_BYTES];
    if (join(path, sizeof path, spool->dir, "", seq, spool->entries[i].name) != ANM_OK)
        return ANM_EIO;
    int rc = ANM_EIO;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return ANM_EIO;
    struct stat st;
    if (fstat(fileno(f), &st) != 0)
        goto out;
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        rc = ANM_ENOMEM;
        goto out;
    }
    if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        goto out;
    buf[st.st_size] = '\0';
    *data = buf;
    *size = (size_t)st.st_size;
    buf = NULL;
    rc = ANM_OK;
out:
    free(buf);
    fclose(f);
    return rc;
}

static void drop_index(gateway_spool *spool, long i)
{
    memmove(&spool->entries[i], &spool->entries[i + 1],
            (spool->count - (size_t)i - 1) * sizeof *spool->entries);
    spool->count--;
}

int gateway_spool_remove(gateway_spool *spool, uint64_t seq)
{
    long i = index_of(spool, seq);
    if (i < 0)
        return ANM_ENOTFOUND;
    char path[PATH_BYTES];
    if (join(path, sizeof path, spool->dir, "", seq, spool->entries[i].name) != ANM_OK)
        return ANM_EIO;
    if (unlink(path) != 0 && errno != ENOENT) {
        anm_log_error("spool", "could not remove \"%s\": %s", path, strerror(errno));
        return ANM_EIO;
    }
    drop_index(spool, i);
    return fsync_dir(spool->dir);
}

int gateway_spool_park(gateway_spool *spool, uint64_t seq)
{
    long i = index_of(spool, seq);
    if (i < 0)
        return ANM_ENOTFOUND;
    char from[PATH_BYTES], to[PATH_BYTES];
    if (join(from, sizeof from, spool->dir, "", seq, spool->entries[i].name) != ANM_OK ||
        join(to, sizeof to, spool->parked_dir, "", seq, spool->entries[i].name) != ANM_OK)
        return ANM_EIO;
    if (rename(from, to) != 0) {
        anm_log_error("spool", "could not park \"%s\": %s", from, strerror(errno));
        return ANM_EIO;
    }
    drop_index(spool, i);
    int rc = fsync_dir(spool->parked_dir);
    if (rc == ANM_OK)
        rc = fsync_dir(spool->dir);
    return rc;
}

size_t gateway_spool_parked_count(const gateway_spool *spool)
{
    DIR *d = opendir(spool->parked_dir);
    if (d == NULL)
        return 0;
    size_t n = 0;
    struct dirent *de;
    gateway_spool_entry e;
    while ((de = readdir(d)) != NULL)
        n += (size_t)parse_file_name(de->d_name, &e);
    closedir(d);
    return n;
}

int gateway_spool_requeue_parked(gateway_spool *spool, size_t *moved)
{
    if (moved != NULL)
        *moved = 0;
    DIR *d = opendir(spool->parked_dir);
    if (d == NULL)
        return ANM_EIO;
    int rc = ANM_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        gateway_spool_entry e;
        if (!parse_file_name(de->d_name, &e))
            continue;
        char from[PATH_BYTES], to[PATH_BYTES];
        if (join(from, sizeof from, spool->parked_dir, "", e.seq, e.name) != ANM_OK ||
            join(to, sizeof to, spool->dir, "", e.seq, e.name) != ANM_OK || rename(from, to) != 0) {
            rc = ANM_EIO;
            break;
        }
        if ((rc = push_entry(spool, &e)) != ANM_OK)
            break;
        if (moved != NULL)
            (*moved)++;
    }
    closedir(d);
    if (spool->count > 1)
        qsort(spool->entries, spool->count, sizeof *spool->entries, cmp_entry);
    if (rc == ANM_OK)
        rc = fsync_dir(spool->dir);
    if (rc == ANM_OK)
        rc = fsync_dir(spool->parked_dir);
    return rc;
}
