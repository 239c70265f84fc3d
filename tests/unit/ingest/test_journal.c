/*
 * test_journal.c: the ingest journal: records round-trip across segments,
 * reopen after a torn tail, deletion of stored segments, the bound.
 */
#include "ingest/journal.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, "seg-", 4) == 0;
    closedir(d);
    return n;
}

/* payload i: 100 + i bytes of value (i * 7 + k) & 0xff */
static void make_payload(unsigned char *buf, size_t i, size_t *size)
{
    *size = 100 + i;
    for (size_t k = 0; k < *size; k++)
        buf[k] = (unsigned char)((i * 7 + k) & 0xff);
}

Test(journal, records_round_trip_across_segments_and_reopen)
{
    char *dir = anm_test_tmpdir("journal");
    ingest_journal_options o = {.dir = dir, .segment_bytes = 1000, .max_bytes = 1 << 20};
    ingest_journal *j = NULL;
    cr_assert_eq(ingest_journal_open(&o, 0, &j, NULL), ANM_OK);
    unsigned char buf[512];
    size_t size;
    uint64_t expect_end = 0, end;
    for (size_t i = 0; i < 50; i++) {
        make_payload(buf, i, &size);
        cr_assert_eq(ingest_journal_append(j, buf, size, &end), ANM_OK);
        expect_end += 8 + size;
        cr_assert_eq(end, expect_end);
    }
    /* rolling a segment syncs it; the records of the open one wait for sync */
    cr_assert_lt(ingest_journal_durable(j), expect_end, "the last records are not durable before sync");
    cr_assert_eq(ingest_journal_sync(j), ANM_OK);
    cr_assert_eq(ingest_journal_durable(j), expect_end);
    /* 50 records of 108..157 bytes in 1000-byte segments: 7 records (<= 1000 B) per
       segment at first; at least 7 segments */
    cr_assert_geq(count_segments(dir), 7);
    ingest_journal_reader *r = NULL;
    cr_assert_eq(ingest_journal_reader_new(j, 0, &r), ANM_OK);
    const void *payload;
    uint64_t pos = 0;
    for (size_t i = 0; i < 50; i++) {
        cr_assert_eq(ingest_journal_reader_next(r, ingest_journal_durable(j), &payload, &size, &end),
                     ANM_OK, "record %zu", i);
        unsigned char want[512];
        size_t want_size;
        make_payload(want, i, &want_size);
        cr_assert_eq(size, want_size);
        cr_assert_eq(memcmp(payload, want, size), 0, "record %zu bytes", i);
        pos += 8 + size;
        cr_assert_eq(end, pos);
    }
    cr_assert_eq(ingest_journal_reader_next(r, ingest_journal_durable(j), &payload, &size, &end),
                 ANM_EAGAIN);
    ingest_journal_reader_destroy(&r);
    /* commit the first 20 records: whole segments below go */
    uint64_t at20 = 0;
    for (size_t i = 0; i < 20; i++)
        at20 += 8 + 100 + i;
    size_t before = count_segments(dir);
    ingest_journal_set_committed(j, at20);
    cr_assert_lt(count_segments(dir), before);
    ingest_journal_close(&j);
    cr_assert_null(j);
    /* reopen from the committed position: records 20..49 are there */
    cr_assert_eq(ingest_journal_open(&o, at20, &j, NULL), ANM_OK);
    cr_assert_eq(ingest_journal_appended(j), expect_end);
    cr_assert_eq(ingest_journal_reader_new(j, at20, &r), ANM_OK);
    size_t n = 0;
    while (ingest_journal_reader_next(r, ingest_journal_durable(j), &payload, &size, &end) == ANM_OK) {
        cr_assert_eq(size, 100 + 20 + n);
        n++;
    }
    cr_assert_eq(n, 30);
    ingest_journal_reader_destroy(&r);
    ingest_journal_close(&j);
    anm_test_rmtree(dir);
    free(dir);
}

Test(journal, reopen_truncates_a_torn_tail)
{
    char *dir = anm_test_tmpdir("journal");
    ingest_journal_options o = {.dir = dir, .segment_bytes = 1 << 20, .max_bytes = 1 << 20};
    ingest_journal *j = NULL;
    cr_assert_eq(ingest_journal_open(&o, 0, &j, NULL), ANM_OK);
    unsigned char buf[512];
    size_t size;
    for (size_t i = 0; i < 3; i++) {
        make_payload(buf, i, &size);
        cr_assert_eq(ingest_journal_append(j, buf, size, NULL), ANM_OK);
    }
    cr_assert_eq(ingest_journal_sync(j), ANM_OK);
    uint64_t good_end = ingest_journal_durable(j);
    ingest_journal_close(&j);
    /* a torn record: a header promising 100 bytes and 10 of them */
    char path[1024];
    snprintf(path, sizeof path, "%s/seg-0000000000000000.jnl", dir);
    int fd = open(path, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    unsigned char torn[18] = {100, 0, 0, 0, 1, 2, 3, 4};
    cr_assert_eq(write(fd, torn, sizeof torn), (ssize_t)sizeof torn);
    close(fd);
    cr_assert_eq(ingest_journal_open(&o, 0, &j, NULL), ANM_OK);
    cr_assert_eq(ingest_journal_appended(j), good_end, "the torn record is dropped");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq((uint64_t)st.st_size, good_end);
    /* appending continues after the last good record */
    make_payload(buf, 9, &size);
    cr_assert_eq(ingest_journal_append(j, buf, size, NULL), ANM_OK);
    cr_assert_eq(ingest_journal_appended(j), good_end + 8 + 109);
    ingest_journal_close(&j);
    anm_test_rmtree(dir);
    free(dir);
}

Test(journal, the_bound_refuses_appends_until_committed)
{
    char *dir = anm_test_tmpdir("journal");
    ingest_journal_options o = {.dir = dir, .segment_bytes = 4096, .max_bytes = 1000};
    ingest_journal *j = NULL;
    cr_assert_eq(ingest_journal_open(&o, 0, &j, NULL), ANM_OK);
    unsigned char buf[192] = {0};
    /* 200-byte records: 5 fit in 1000 bytes, the 6th does not */
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ingest_journal_append(j, buf, sizeof buf, NULL), ANM_OK, "record %d", i);
    cr_assert_eq(ingest_journal_append(j, buf, sizeof buf, NULL), ANM_EFULL);
    ingest_journal_set_committed(j, 400);
    cr_assert_eq(ingest_journal_append(j, buf, sizeof buf, NULL), ANM_OK);
    cr_assert_eq(ingest_journal_append(j, buf, sizeof buf, NULL), ANM_OK);
    cr_assert_eq(ingest_journal_append(j, buf, sizeof buf, NULL), ANM_EFULL);
    ingest_journal_close(&j);
    anm_test_rmtree(dir);
    free(dir);
}

Test(journal, record_parse_reports_each_fault)
{
    unsigned char rec[8 + 5];
    const unsigned char payload[5] = {'h', 'e', 'l', 'l', 'o'};
    ingest_journal_record_header(payload, 5, rec);
    memcpy(rec + 8, payload, 5);
    const void *p;
    size_t ps, rs;
    char why[128];
    cr_assert_eq(ingest_journal_record_parse(rec, sizeof rec, &p, &ps, &rs, why, sizeof why), ANM_OK);
    cr_assert_eq(ps, 5);
    cr_assert_eq(rs, 13);
    cr_assert_eq(ingest_journal_record_parse(rec, 12, &p, &ps, &rs, why, sizeof why), ANM_EAGAIN);
    rec[10] ^= 1;
    cr_assert_eq(ingest_journal_record_parse(rec, sizeof rec, &p, &ps, &rs, why, sizeof why), ANM_EPROTO);
    cr_assert_str_eq(why, "record checksum mismatch");
    memset(rec, 0, 4);
    cr_assert_eq(ingest_journal_record_parse(rec, sizeof rec, &p, &ps, &rs, why, sizeof why), ANM_EPROTO);
    cr_assert_str_eq(why, "record length 0 out of range");
}
