/*
 * driver.c: runs a libFuzzer target without libFuzzer, so every build (gcc
 * included, and the ASan+UBSan build) exercises the fuzz targets in CTest.
 *
 *   fuzz_x [--iterations N] [--seed S] CORPUS_DIR_OR_FILE...
 *
 * Feeds every seed file as it is, then N deterministic mutations of the
 * seeds (bit flips, byte changes, truncations, insertions, splices of two
 * seeds, repeated chunks). Coverage-guided exploration is what the real
 * libFuzzer build (-DANM_FUZZ=ON with clang) adds on top.
 */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seed {
    uint8_t *data;
    size_t size;
} seed;

static seed *seeds;
static size_t n_seeds, cap_seeds;

static uint64_t rng_state;

static uint64_t next_random(void)
{
    /* splitmix64: deterministic for a given --seed */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void add_seed_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return;
    uint8_t *buf = NULL;
    size_t size = 0, cap = 0;
    for (;;) {
        if (size == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *grown = realloc(buf, cap);
            if (grown == NULL) {
                free(buf);
                fclose(f);
                return;
            }
            buf = grown;
        }
        size_t n = fread(buf + size, 1, cap - size, f);
        if (n == 0)
            break;
        size += n;
    }
    fclose(f);
    if (n_seeds == cap_seeds) {
        cap_seeds = cap_seeds ? cap_seeds * 2 : 64;
        seed *grown = realloc(seeds, cap_seeds * sizeof *seeds);
        if (grown == NULL) {
            free(buf);
            return;
        }
        seeds = grown;
    }
    seeds[n_seeds].data = buf;
    seeds[n_seeds].size = size;
    n_seeds++;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_seeds(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        add_seed_file(path);
        return;
    }
    DIR *dir = opendir(path);
    if (dir == NULL)
        return;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **grown = realloc(names, cap * sizeof *names);
            if (grown == NULL)
                break;
            names = grown;
        }
        size_t length = strlen(path) + strlen(entry->d_name) + 2;
        names[n] = malloc(length);
        if (names[n] == NULL)
            break;
        snprintf(names[n], length, "%s/%s", path, entry->d_name);
        n++;
    }
    closedir(dir);
    qsort(names, n, sizeof *names, compare_names); /* deterministic order */
    for (size_t i = 0; i < n; i++) {
        add_seed_file(names[i]);
        free(names[i]);
    }
    free(names);
}

static size_t mutate(uint8_t *out, size_t max, const seed *a, const seed *b)
{
    size_t size = a->size < max ? a->size : max;
    memcpy(out, a->data, size);
    int rounds = 1 + (int)(next_random() % 4);
    for (int r = 0; r < rounds; r++) {
        uint64_t choice = next_random() % 7;
        size_t pos = size ? (size_t)(next_random() % size) : 0;
        switch (choice) {
        case 0: /* flip a bit */
            if (size)
                out[pos] ^= (uint8_t)(1u << (next_random() % 8));
            break;
        case 1: /* set an interesting byte */
            if (size) {
                static const uint8_t interesting[] = {0, 1, 0x7f, 0x80, 0xff, '"', '{', '[', ',', '\n', 0x68};
                out[pos] = interesting[next_random() % sizeof interesting];
            }
            break;
        case 2: /* truncate */
            size = pos;
            break;
        case 3: /* insert random bytes */
            if (size < max) {
                size_t count = 1 + (size_t)(next_random() % 8);
                if (count > max - size)
                    count = max - size;
                memmove(out + pos + count, out + pos, size - pos);
                for (size_t i = 0; i < count; i++)
                    out[pos + i] = (uint8_t)next_random();
                size += count;
            }
            break;
        case 4: /* splice the tail of another seed */
            if (b->size) {
                size_t from = (size_t)(next_random() % b->size);
                size_t count = b->size - from;
                if (count > max - pos)
                    count = max - pos;
                memcpy(out + pos, b->data + from, count);
                size = pos + count;
            }
            break;
        case 5: /* duplicate a chunk */
            if (size && size < max) {
                size_t count = 1 + (size_t)(next_random() % (size - pos));
                if (count > max - size)
                    count = max - size;
                memmove(out + pos + count, out + pos, size - pos);
                size += count;
            }
            break;
        default: /* delete a chunk */
            if (size) {
                size_t count = 1 + (size_t)(next_random() % (size - pos));
                memmove(out + pos, out + pos + count, size - pos - count);
                size -= count;
            }
            break;
        }
    }
    return size;
}

int main(int argc, char **argv)
{
    long iterations = 10000;
    rng_state = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
            iterations = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            rng_state = strtoull(argv[++i], NULL, 10);
        } else {
            add_seeds(argv[i]);
        }
    }
    static const uint8_t empty[1];
    LLVMFuzzerTestOneInput(empty, 0);
    for (size_t i = 0; i < n_seeds; i++)
        LLVMFuzzerTestOneInput(seeds[i].data, seeds[i].size);
    if (n_seeds == 0) {
        /* no corpus: random bytes only */
        seeds = calloc(1, sizeof *seeds);
        if (seeds == NULL)
            return 1;
        n_seeds = 1;
    }
    enum { FUZZ_INPUT_MAX = 65536 }; /* not MAX_INPUT: <limits.h> defines that */
    uint8_t *buf = malloc(FUZZ_INPUT_MAX);
    if (buf == NULL)
        return 1;
    for (long it = 0; it < iterations; it++) {
        const seed *a = &seeds[next_random() % n_seeds];
        const seed *b = &seeds[next_random() % n_seeds];
        size_t size = mutate(buf, FUZZ_INPUT_MAX, a, b);
        /* copy to an exact-size heap block so ASan sees reads past the end */
        uint8_t *exact = malloc(size ? size : 1);
        if (exact == NULL)
            break;
        memcpy(exact, buf, size);
        LLVMFuzzerTestOneInput(exact, size);
        free(exact);
    }
    free(buf);
    for (size_t i = 0; i < n_seeds; i++)
        free(seeds[i].data);
    free(seeds);
    printf("fuzz driver: %zu seeds, %ld mutated inputs, no crash\n", n_seeds, iterations);
    return 0;
}
