/* test_arena.c: alignment, reuse after reset, large blocks and overflow checks. */
#include "engine/arena.h"

#include <criterion/criterion.h>
#include <stdalign.h>
#include <stdint.h>
#include <string.h>

Test(arena, allocations_are_16_byte_aligned_and_disjoint)
{
    anm_arena *arena = anm_arena_new(256);
    cr_assert_not_null(arena);
    unsigned char *p[200];
    size_t sizes[200];
    for (size_t i = 0; i < 200; i++) {
        sizes[i] = (i * 7) % 61; /* 0..60 bytes, odd sizes included */
        p[i] = anm_arena_alloc(arena, sizes[i]);
        cr_assert_not_null(p[i]);
        cr_expect_eq((uintptr_t)p[i] % 16, 0, "allocation %zu of %zu bytes at %p", i, sizes[i],
                     (void *)p[i]);
        memset(p[i], (int)(i & 0xff), sizes[i]);
    }
    cr_expect_geq(16, alignof(max_align_t), "16 bytes suits any object on this platform");
    for (size_t i = 0; i < 200; i++) {
        for (size_t j = 0; j < sizes[i]; j++)
            cr_assert_eq(p[i][j], (unsigned char)(i & 0xff), "allocation %zu was overwritten", i);
    }
    for (size_t i = 1; i < 200; i++)
        cr_expect_neq(p[i], p[i - 1], "even zero-byte allocations are distinct");
    anm_arena_destroy(&arena);
}

Test(arena, used_and_reserved_account_in_aligned_units)
{
    anm_arena *arena = anm_arena_new(1024);
    cr_expect_eq(anm_arena_used(arena), 0);
    cr_expect_eq(anm_arena_reserved(arena), 0, "nothing reserved before the first allocation");
    cr_assert_not_null(anm_arena_alloc(arena, 1));
    cr_expect_eq(anm_arena_used(arena), 16);
    cr_expect_eq(anm_arena_reserved(arena), 1024);
    cr_assert_not_null(anm_arena_alloc(arena, 17));
    cr_expect_eq(anm_arena_used(arena), 48);
    anm_arena_destroy(&arena);
    anm_arena *default_size = anm_arena_new(0);
    cr_assert_not_null(anm_arena_alloc(default_size, 8));
    cr_expect_eq(anm_arena_reserved(default_size), 64 * 1024, "0 means 64 KiB blocks");
    anm_arena_destroy(&default_size);
}

/* One "message" of work: small and large allocations across several blocks. */
static void workload(anm_arena *arena)
{
    static const size_t sizes[] = {100, 900, 40, 5000, 16, 700, 700, 3000, 1, 1000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = anm_arena_alloc(arena, sizes[i]);
        cr_assert_not_null(p);
        memset(p, 0x5a, sizes[i]);
    }
}

Test(arena, reset_reuses_blocks_without_new_reservation)
{
    anm_arena *arena = anm_arena_new(1024);
    workload(arena);
    size_t reserved = anm_arena_reserved(arena);
    size_t used = anm_arena_used(arena);
    cr_expect_gt(reserved, 1024, "the workload spans several blocks");
    for (int round = 0; round < 50; round++) {
        anm_arena_reset(arena);
        cr_expect_eq(anm_arena_used(arena), 0);
        workload(arena);
        cr_expect_eq(anm_arena_reserved(arena), reserved, "round %d reserved more memory", round);
        cr_expect_eq(anm_arena_used(arena), used);
    }
    anm_arena_destroy(&arena);
}

Test(arena, first_allocation_after_reset_is_the_first_block_again)
{
    anm_arena *arena = anm_arena_new(512);
    void *first = anm_arena_alloc(arena, 32);
    for (int i = 0; i < 40; i++)
        anm_arena_alloc(arena, 100);
    anm_arena_reset(arena);
    cr_expect_eq(anm_arena_alloc(arena, 32), first);
    anm_arena_destroy(&arena);
}

Test(arena, large_allocations_get_their_own_block)
{
    anm_arena *arena = anm_arena_new(1024);
    size_t big = 1u << 20;
    unsigned char *p = anm_arena_alloc(arena, big);
    cr_assert_not_null(p);
    memset(p, 1, big); /* ASan catches a block smaller than promised */
    cr_expect_eq(anm_arena_reserved(arena), big);
    unsigned char *small = anm_arena_alloc(arena, 10);
    cr_assert_not_null(small);
    cr_expect_eq(anm_arena_reserved(arena), big + 1024);
    cr_expect_eq(p[big - 1], 1, "the small allocation did not land inside the large one");
    anm_arena_destroy(&arena);
}

Test(arena, overflowing_sizes_fail_cleanly)
{
    anm_arena *arena = anm_arena_new(1024);
    cr_expect_null(anm_arena_alloc(arena, SIZE_MAX));
    cr_expect_null(anm_arena_alloc(arena, SIZE_MAX - 8));
    cr_expect_null(anm_arena_calloc(arena, SIZE_MAX / 2, 3), "count * size overflows");
    cr_expect_null(anm_arena_calloc(arena, (SIZE_MAX >> 4) + 1, 16));
    cr_expect_eq(anm_arena_used(arena), 0, "failed allocations take nothing");
    cr_expect_not_null(anm_arena_alloc(arena, 64), "the arena still works");
    anm_arena_destroy(&arena);
}

Test(arena, calloc_zeroes_reused_memory)
{
    anm_arena *arena = anm_arena_new(1024);
    unsigned char *dirty = anm_arena_alloc(arena, 512);
    memset(dirty, 0xff, 512);
    anm_arena_reset(arena);
    unsigned char *clean = anm_arena_calloc(arena, 64, 8);
    cr_assert_eq(clean, dirty, "the same memory comes back");
    for (size_t i = 0; i < 512; i++)
        cr_assert_eq(clean[i], 0, "byte %zu not zeroed", i);
    anm_arena_destroy(&arena);
}

Test(arena, strdup_copies)
{
    anm_arena *arena = anm_arena_new(64);
    char source[] = "feeder33";
    char *copy = anm_arena_strdup(arena, source);
    source[0] = 'X';
    cr_expect_str_eq(copy, "feeder33");
    char *empty = anm_arena_strdup(arena, "");
    cr_expect_str_eq(empty, "");
    anm_arena_destroy(&arena);
}

Test(arena, destroy_is_idempotent)
{
    anm_arena *arena = anm_arena_new(64);
    anm_arena_alloc(arena, 10);
    anm_arena_destroy(&arena);
    cr_expect_null(arena);
    anm_arena_destroy(&arena);
    anm_arena_destroy(NULL);
}
