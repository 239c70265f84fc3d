/*
 * arena.h: a bump allocator for scratch memory with a clear lifetime (one
 * message, one Monte Carlo block, one settlement period).
 *
 * Allocations are 16-byte aligned and live until anm_arena_reset or
 * anm_arena_destroy; there is no per-allocation free. Blocks are kept
 * across resets, so a reset arena reused for the same work allocates
 * nothing from the system. Not thread-safe: one arena per thread.
 */
#ifndef ANM_ENGINE_ARENA_H
#define ANM_ENGINE_ARENA_H

#include <stddef.h>

typedef struct anm_arena anm_arena;

/* New arena whose blocks are at least block_size bytes (0: 64 KiB). NULL on ENOMEM. */
anm_arena *anm_arena_new(size_t block_size);

/* Frees every block and the arena; sets *arena to NULL. Safe on NULL and *NULL. */
void anm_arena_destroy(anm_arena **arena);

/* size bytes, 16-byte aligned, uninitialised; NULL on ENOMEM or overflow. */
void *anm_arena_alloc(anm_arena *arena, size_t size);

/* count * size bytes, zeroed; NULL on ENOMEM or overflow. */
void *anm_arena_calloc(anm_arena *arena, size_t count, size_t size);

/* A copy of s in the arena; NULL on ENOMEM. */
char *anm_arena_strdup(anm_arena *arena, const char *s);

/* Forgets every allocation; keeps the blocks for reuse. */
void anm_arena_reset(anm_arena *arena);

/* Bytes handed out since the last reset, and bytes held from the system. */
size_t anm_arena_used(const anm_arena *arena);
size_t anm_arena_reserved(const anm_arena *arena);

#endif
