/*
 * test_spool_log.c: the group-commit record log behind the MQTT publisher:
 * only synced records are read, a record goes only after its ack (in any
 * order, watermark over the contiguous prefix), unacknowledged records come
 * back in order after a reopen, a torn tail is cut, acknowledged segments
 * are deleted.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/spool_log.h"
#include "testlib.h"

static char *dir;

static void setup(void)
{
    dir = anm_test_tmpdir("anm-spool-log");
    cr_assert_not_null(dir);
}

static void teardown(void)
{
    anm_test_rmtree(dir);
    free(dir);
}

TestSuite(spool_log, .init = setup, .fini = teardown);

static void append_n(gateway_spool_log *log, int from, int to)
{
    for (int i = from; i < to; i++) {
        char text[32];
        int n = snprintf(text, sizeof text, "sample %d", i);
        cr_assert_eq(gateway_spool_log_append(log, text, (size_t)n, NULL), ANM_OK);
    }
}

/* Reads the next record and checks it is "sample <i>"; returns its seq. */
static uint64_t expect_next(gateway_spool_log *log, int i)
{
    char *data = NULL;
    size_t size = 0;
    uint64_t seq = 0;
    cr_assert_eq(gateway_spool_log_next(log, &data, &size, &seq), ANM_OK, "record %d", i);
    char expected[32];
    snprintf(expected, sizeof expected, "sample %d", i);
    cr_expect_str_eq(data, expected);
    cr_expect_eq(size, strlen(expected));
    free(data);
    return seq;
}

static int expect_end(gateway_spool_log *log)
{
    char *data = NULL;
    size_t size = 0;
    uint64_t seq = 0;
    int rc = gateway_spool_log_next(log, &data, &size, &seq);
    free(data);
    return rc == ANM_ENOTFOUND;
}

Test(spool_log, only_synced_records_are_read_and_order_survives_reopen)
{
    gateway_spool_log *log = NULL;
    cr_assert_eq(gateway_spool_log_open(dir, 0, &log, NULL), ANM_OK);
    append_n(log, 0, 5);
    cr_expect_eq(gateway_spool_log_pending(log), 5);
    cr_expect_eq(gateway_spool_log_unsynced(log), 5);
    cr_expect(expect_end(log), "an unsynced record must not be handed out");
    cr_assert_eq(gateway_spool_log_sync(log), ANM_OK);
    cr_expect_eq(gateway_spool_log_unsynced(log), 0);
    uint64_t s0 = expect_next(log, 0);
    uint64_t s1 = expect_next(log, 1);
    cr_assert_eq(gateway_spool_log_ack(log, s0), ANM_OK);
    cr_assert_eq(gateway_spool_log_ack(log, s1), ANM_OK);
    cr_expect_eq(gateway_spool_log_ack(log, s1), ANM_ENOTFOUND, "double ack");
    (void)expect_next(log, 2); /* handed out, never acknowledged */
    gateway_spool_log_close(&log);
    cr_assert_null(log);
    gateway_spool_log_close(&log);

    cr_assert_eq(gateway_spool_log_open(dir, 0, &log, NULL), ANM_OK);
    cr_expect_eq(gateway_spool_log_pending(log), 3);
    cr_expect_eq(gateway_spool_log_acked_seq(log), s1);
    for (int i = 2; i < 5; i++)
        (void)expect_next(log, i);
    cr_expect(expect_end(log));
    uint64_t next = 0;
    cr_assert_eq(gateway_spool_log_append(log, "x", 1, &next), ANM_OK);
    cr_expect_eq(next, s0 + 5, "sequence numbers continue after reopen");
    gateway_spool_log_close(&log);
}

Test(spool_log, out_of_order_acks_move_the_watermark_over_the_contiguous_prefix_only)
{
    gateway_spool_log *log = NULL;
    cr_assert_eq(gateway_spool_log_open(dir, 0, &log, NULL), ANM_OK);
    append_n(log, 0, 4);
    cr_assert_eq(gateway_spool_log_sync(log), ANM_OK);
    uint64_t seq[4];
    for (int i = 0; i < 4; i++)
        seq[i] = expect_next(log, i);
    cr_assert_eq(gateway_spool_log_ack(log, seq[1]), ANM_OK);
    cr_assert_eq(gateway_spool_log_ack(log, seq[2]), ANM_OK);
    cr_expect_eq(gateway_spool_log_pending(log), 4, "record 0 is not acknowledged yet");
    cr_assert_eq(gateway_spool_log_ack(log, seq[0]), ANM_OK);
    cr_expect_eq(gateway_spool_log_pending(log), 1);
    cr_expect_eq(gateway_spool_log_acked_seq(log), seq[2]);
    /* connection lost: the reader starts again at record 3 */
    gateway_spool_log_rewind(log);
    cr_expect_eq(gateway_spool_log_ack(log, seq[3]), ANM_ENOTFOUND, "ack from before the rewind");
    (void)expect_next(log, 3);
    cr_expect(expect_end(log));
    gateway_spool_log_close(&log);
}

Test(spool_log, a_torn_tail_is_cut_and_appends_continue_after_it)
{
    gateway_spool_log *log = NULL;
    cr_assert_eq(gateway_spool_log_open(dir, 0, &log, NULL), ANM_OK);
    append_n(log, 0, 3);
    gateway_spool_log_close(&log);
    /* a crash mid-write: half a record after the third */
    char path[700];
    snprintf(path, sizeof path, "%s/seg-00000000000000000001.log", dir);
    int fd = open(path, O_WRONLY | O_APPEND);
    cr_assert(fd >= 0, "segment %s", path);
    const unsigned char torn[10] = {20, 0, 0, 0, 1, 2, 3, 4, 4, 0};
    cr_assert_eq(write(fd, torn, sizeof torn), (ssize_t)sizeof torn);
    close(fd);
    struct stat before;
    cr_assert_eq(stat(path, &before), 0);

    cr_assert_eq(gateway_spool_log_open(dir, 0, &log, NULL), ANM_OK);
    struct stat after;
    cr_assert_eq(stat(path, &after), 0);
    cr_expect_eq(after.st_size, before.st_size - 10, "torn bytes removed");
    cr_expect_eq(gateway_spool_log_pending(log), 3);
    append_n(log, 3, 4);
    cr_assert_eq(gateway_spool_log_sync(log), ANM_OK);
    for (int i = 0; i < 4; i++)
        (void)expect_next(log, i);
    cr_expect(expect_end(log));
    gateway_spool_log_close(&log);
}

Test(spool_log, a_corrupted_record_and_everything_after_it_is_not_replayed)
{
    gateway_spool_log *log = NULL;
    cr_assert_eq(gateway_spool_log_open(dir, 0, &log, NULL), ANM_OK);
    append_n(log, 0, 3);
    gateway_spool_log_close(&log);
    char path[700];
    snprintf(path, sizeof path, "%s/seg-00000000000000000001.log", dir);
    /* flip one data byte of record 1 ("sample 1" is 8 bytes after a 16-byte header) */
    int fd = open(path, O_RDWR);
    cr_assert(fd >= 0);
    cr_assert_eq(pwrite(fd, "X", 1, 24 + 16 + 2), 1);
    close(fd);
    cr_assert_eq(gateway_spool_log_open(dir, 0, &log, NULL), ANM_OK);
    cr_expect_eq(gateway_spool_log_pending(log), 1, "CRC mismatch ends the valid log");
    (void)expect_next(log, 0);
    cr_expect(expect_end(log));
    gateway_spool_log_close(&log);
}

Test(spool_log, acknowledged_segments_are_deleted_and_the_rest_kept)
{
    gateway_spool_log *log = NULL;
    /* tiny segments: "sample N" records are 16 + 8 bytes, so 2 per 40-byte segment */
    cr_assert_eq(gateway_spool_log_open(dir, 40, &log, NULL), ANM_OK);
    append_n(log, 0, 6);
    cr_assert_eq(gateway_spool_log_sync(log), ANM_OK);
    cr_expect_eq(gateway_spool_log_segments(log), 3);
    for (int i = 0; i < 5; i++) {
        uint64_t seq = expect_next(log, i);
        cr_assert_eq(gateway_spool_log_ack(log, seq), ANM_OK);
    }
    cr_assert_eq(gateway_spool_log_commit(log), ANM_OK);
    cr_expect_eq(gateway_spool_log_segments(log), 1, "two fully acknowledged segments go");
    (void)expect_next(log, 5);
    gateway_spool_log_close(&log);

    cr_assert_eq(gateway_spool_log_open(dir, 40, &log, NULL), ANM_OK);
    cr_expect_eq(gateway_spool_log_pending(log), 1);
    (void)expect_next(log, 5);
    cr_expect(expect_end(log));
    gateway_spool_log_close(&log);
}

Test(spool_log, empty_and_oversized_records_are_refused)
{
    gateway_spool_log *log = NULL;
    cr_assert_eq(gateway_spool_log_open(dir, 0, &log, NULL), ANM_OK);
    cr_expect_eq(gateway_spool_log_append(log, "", 0, NULL), ANM_EINVAL);
    char *big = calloc(1, GATEWAY_SPOOL_LOG_RECORD_MAX + 1u);
    cr_assert_not_null(big);
    cr_expect_eq(gateway_spool_log_append(log, big, GATEWAY_SPOOL_LOG_RECORD_MAX + 1u, NULL),
                 ANM_EINVAL);
    free(big);
    cr_expect_eq(gateway_spool_log_pending(log), 0);
    gateway_spool_log_close(&log);
}
