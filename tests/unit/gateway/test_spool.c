/*
 * test_spool.c: the durable spool: order across reopen, removal and
 * parking survive a reopen, half-written temporaries are discarded, and
 * sequence numbers are never reused.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/spool.h"
#include "testlib.h"

static char *dir;

static void setup(void)
{
    dir = anm_test_tmpdir("anm-spool");
    cr_assert_not_null(dir);
}

static void teardown(void)
{
    anm_test_rmtree(dir);
    free(dir);
}

TestSuite(spool, .init = setup, .fini = teardown);

static char *read_entry(gateway_spool *s, size_t i, gateway_spool_entry *e)
{
    cr_assert_eq(gateway_spool_at(s, i, e), ANM_OK);
    char *data = NULL;
    size_t size = 0;
    cr_assert_eq(gateway_spool_read(s, e->seq, &data, &size), ANM_OK);
    cr_assert_eq(size, strlen(data));
    return data;
}

Test(spool, entries_come_back_in_arrival_order_after_reopen)
{
    gateway_spool *s = NULL;
    cr_assert_eq(gateway_spool_open(dir, &s, NULL), ANM_OK);
    const char *names[] = {"b.csv", "a.csv", "c.csv"};
    for (int i = 0; i < 3; i++) {
        char text[32];
        snprintf(text, sizeof text, "content %d", i);
        cr_assert_eq(gateway_spool_put(s, names[i], text, strlen(text), NULL), ANM_OK);
    }
    gateway_spool_close(&s);
    cr_assert_null(s);
    gateway_spool_close(&s); /* idempotent */

    cr_assert_eq(gateway_spool_open(dir, &s, NULL), ANM_OK);
    cr_assert_eq(gateway_spool_count(s), 3);
    for (size_t i = 0; i < 3; i++) {
        gateway_spool_entry e;
        char *data = read_entry(s, i, &e);
        char expected[32];
        snprintf(expected, sizeof expected, "content %zu", i);
        cr_expect_str_eq(e.name, names[i]); /* arrival order, not name order */
        cr_expect_str_eq(data, expected);
        free(data);
    }
    gateway_spool_close(&s);
}

Test(spool, removed_and_parked_entries_stay_gone_and_numbers_are_not_reused)
{
    gateway_spool *s = NULL;
    uint64_t seq[3];
    cr_assert_eq(gateway_spool_open(dir, &s, NULL), ANM_OK);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(gateway_spool_put(s, "x", "1", 1, &seq[i]), ANM_OK);
    cr_assert_eq(seq[1], seq[0] + 1);
    cr_assert_eq(gateway_spool_remove(s, seq[0]), ANM_OK);
    cr_assert_eq(gateway_spool_park(s, seq[2]), ANM_OK);
    cr_assert_eq(gateway_spool_remove(s, seq[0]), ANM_ENOTFOUND);
    gateway_spool_close(&s);

    cr_assert_eq(gateway_spool_open(dir, &s, NULL), ANM_OK);
    cr_assert_eq(gateway_spool_count(s), 1);
    cr_assert_eq(gateway_spool_parked_count(s), 1);
    gateway_spool_entry e;
    cr_assert_eq(gateway_spool_at(s, 0, &e), ANM_OK);
    cr_expect_eq(e.seq, seq[1]);
    uint64_t next;
    cr_assert_eq(gateway_spool_put(s, "y", "2", 1, &next), ANM_OK);
    cr_expect_eq(next, seq[2] + 1, "a parked entry's number must not be reused");

    size_t moved = 0;
    cr_assert_eq(gateway_spool_requeue_parked(s, &moved), ANM_OK);
    cr_expect_eq(moved, 1);
    cr_assert_eq(gateway_spool_count(s), 3);
    uint64_t order[3];
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(gateway_spool_at(s, i, &e), ANM_OK);
        order[i] = e.seq;
    }
    cr_expect_eq(order[0], seq[1]);
    cr_expect_eq(order[1], seq[2], "requeued entry goes back to its place");
    cr_expect_eq(order[2], next);
    gateway_spool_close(&s);
}

Test(spool, half_written_temporaries_are_discarded_on_open)
{
    char path[600];
    snprintf(path, sizeof path, "%s/.tmp-00000000000000000007_file.csv", dir);
    cr_assert_eq(anm_test_write_file(path, "partial"), 0);
    snprintf(path, sizeof path, "%s/state.json", dir); /* other files are ignored */
    cr_assert_eq(anm_test_write_file(path, "{}"), 0);
    gateway_spool *s = NULL;
    cr_assert_eq(gateway_spool_open(dir, &s, NULL), ANM_OK);
    cr_expect_eq(gateway_spool_count(s), 0);
    snprintf(path, sizeof path, "%s/.tmp-00000000000000000007_file.csv", dir);
    char *left = anm_test_read_file(path, NULL);
    cr_expect_null(left, "temporary file should have been removed");
    free(left);
    gateway_spool_close(&s);
}

Test(spool, names_that_cannot_be_file_names_are_refused)
{
    gateway_spool *s = NULL;
    cr_assert_eq(gateway_spool_open(dir, &s, NULL), ANM_OK);
    cr_expect_eq(gateway_spool_put(s, "../escape", "x", 1, NULL), ANM_EINVAL);
    cr_expect_eq(gateway_spool_put(s, "", "x", 1, NULL), ANM_EINVAL);
    cr_expect_eq(gateway_spool_put(s, ".hidden", "x", 1, NULL), ANM_EINVAL);
    cr_expect_eq(gateway_spool_put(s, "a b", "x", 1, NULL), ANM_EINVAL);
    cr_expect_eq(gateway_spool_count(s), 0);
    gateway_spool_close(&s);
}

Test(spool, unwritable_directory_is_reported_with_its_path)
{
    gateway_spool *s = NULL;
    anm_error_detail d;
    anm_error_detail_clear(&d);
    cr_expect_eq(gateway_spool_open("/proc/anm-no-such/spool", &s, &d), ANM_EIO);
    cr_expect_null(s);
    cr_expect(strstr(d.message, "could not create spool directory \"/proc/anm-no-such/spool\"") != NULL,
              "message: %s", d.message);
}
