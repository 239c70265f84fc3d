/* test_journal.c: journal records, torn tails and event round trips. */
#include "market/journal.h"

#include "testlib.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct seen {
    size_t n;
    size_t sizes[16];
} seen;

static int count_record(void *context, const uint8_t *payload, size_t size)
{
    seen *s = context;
    (void)payload;
    if (s->n < 16)
        s->sizes[s->n] = size;
    s->n++;
    return 0;
}

Test(journal, crc32c_matches_the_published_check_value)
{
    /* RFC 3720 / iSCSI check value of "123456789" */
    cr_assert_eq(market_crc32c("123456789", 9), 0xE3069283u);
}

static void torn_tail(market_durability durability)
{
    char *dir = anm_test_tmpdir("journal");
    char path[512];
    snprintf(path, sizeof path, "%s/j.log", dir);
    market_journal *j = NULL;
    cr_assert_eq(market_journal_open(path, 0, durability, &j, NULL), ANM_OK);
    market_bytes b = {0};
    market_order_spec spec = {.client_order_id = 7, .participant = 1, .der = 2,
                              .product = {1, 3600000}, .side = MARKET_OFFER, .price_ticks = 4500,
                              .quantity = 1500, .valid_until_ms = INT64_MAX};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(market_event_encode_submit(&b, 1000 + i, &spec), ANM_OK);
        cr_assert_eq(market_journal_append(j, b.data, b.size), ANM_OK);
    }
    cr_assert_eq(market_journal_commit(j), ANM_OK);
    uint64_t good = market_journal_size(j);
    if (durability == MARKET_DURABILITY_POWER)
        cr_assert_eq(market_journal_syncs(j), 1, "one fdatasync for the group of three");
    market_journal_destroy(&j);
    cr_assert_eq(good, 3 * (8 + b.size));
    /* a torn fourth record: header and half the payload */
    FILE *f = fopen(path, "ab");
    uint8_t header[8] = {(uint8_t)b.size, 0, 0, 0, 1, 2, 3, 4};
    fwrite(header, 1, 8, f);
    fwrite(b.data, 1, b.size / 2, f);
    fclose(f);
    seen s = {0};
    uint64_t valid = 0, torn = 0;
    cr_assert_eq(market_journal_read(path, count_record, &s, &valid, &torn), ANM_OK);
    cr_assert_eq(s.n, 3);
    cr_assert_eq(valid, good);
    cr_assert_eq(torn, 8 + b.size / 2);
    /* reopening truncates the tail; appending continues cleanly */
    cr_assert_eq(market_journal_open(path, valid, durability, &j, NULL), ANM_OK);
    cr_assert_eq(market_journal_append(j, b.data, b.size), ANM_OK);
    cr_assert_eq(market_journal_commit(j), ANM_OK);
    market_journal_destroy(&j);
    s.n = 0;
    cr_assert_eq(market_journal_read(path, count_record, &s, &valid, &torn), ANM_OK);
    cr_assert_eq(s.n, 4);
    cr_assert_eq(torn, 0);
    market_bytes_free(&b);
    anm_test_rmtree(dir);
    free(dir);
}

Test(journal, torn_tail_is_truncated_process_mode) { torn_tail(MARKET_DURABILITY_PROCESS); }
Test(journal, torn_tail_is_truncated_power_mode) { torn_tail(MARKET_DURABILITY_POWER); }

Test(journal, corrupted_crc_ends_the_journal)
{
    char *dir = anm_test_tmpdir("journal");
    char path[512];
    snprintf(path, sizeof path, "%s/j.log", dir);
    market_journal *j = NULL;
    cr_assert_eq(market_journal_open(path, 0, MARKET_DURABILITY_POWER, &j, NULL), ANM_OK);
    market_journal_append(j, "abcdef", 6);
    market_journal_append(j, "ghijkl", 6);
    market_journal_commit(j);
    market_journal_destroy(&j);
    FILE *f = fopen(path, "r+b");
    fseek(f, 14 + 8 + 2, SEEK_SET); /* a byte of the second payload */
    fputc('X', f);
    fclose(f);
    seen s = {0};
    uint64_t valid, torn;
    cr_assert_eq(market_journal_read(path, count_record, &s, &valid, &torn), ANM_OK);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(valid, 14);
    cr_assert_eq(torn, 14);
    anm_test_rmtree(dir);
    free(dir);
}

Test(journal, events_round_trip)
{
    market_bytes b = {0};
    market_order_spec spec = {.client_order_id = 99, .participant = 3, .der = MARKET_NO_DER,
                              .product = {2, 1622628000000}, .side = MARKET_REQUIREMENT,
                              .price_ticks = -250, .availability_ticks = 12, .quantity = 2500,
                              .min_quantity = 1000, .valid_until_ms = 1622627000000};
    cr_assert_eq(market_event_encode_replace(&b, 5, 1ull << 40 | 17, &spec), ANM_OK);
    market_event e;
    cr_assert_eq(market_event_decode(b.data, b.size, &e), ANM_OK);
    cr_assert_eq(e.type, MARKET_EVENT_REPLACE);
    cr_assert_eq(e.order_id, 1ull << 40 | 17);
    cr_assert_eq(e.spec.product.zone, 2);
    cr_assert_eq(e.spec.product.period_start_ms, 1622628000000);
    cr_assert_eq(e.spec.price_ticks, -250);
    cr_assert_eq(e.spec.side, MARKET_REQUIREMENT);
    cr_assert_eq(e.spec.valid_until_ms, 1622627000000);
    cr_assert_eq(market_event_decode(b.data, b.size - 1, &e), ANM_EPARSE, "short payload refused");
    double headroom[2] = {2.0, 2.4};
    char names[2][32] = {"T1", "T2/c7"};
    uint32_t der[2] = {1, 2};
    uint16_t con[2] = {0, 1};
    double val[2] = {0.5, 0.8};
    cr_assert_eq(market_event_encode_statement(&b, 9, (market_product){1, 0}, 2, headroom,
                                               (const char(*)[32])names, 2, der, con, val),
                 ANM_OK);
    cr_assert_eq(market_event_decode(b.data, b.size, &e), ANM_OK);
    market_statement *st = market_event_statement(&e);
    cr_assert_not_null(st);
    cr_assert_eq(market_statement_headroom_mw(st, 1), 2.4);
    cr_assert_str_eq(market_statement_constraint_name(st, 1), "T2/c7");
    cr_assert_eq(market_statement_sensitivity(st, 2, 1), 0.8);
    cr_assert_eq(market_statement_sensitivity(st, 2, 0), 0.0);
    market_statement_destroy(&st);
    market_bytes_free(&b);
}
