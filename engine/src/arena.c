/* arena.c: bump allocation over a list of blocks, reused after reset. */
#include "engine/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16u
#define ARENA_DEFAULT_BLOCK (64u * 1024u)

typedef struct arena_block {
    struct arena_block *next;
    size_t size; /* usable bytes in data */
    size_t used;
    _Alignas(16) unsigned char data[];
} arena_block;

struct anm_arena {
    arena_block *first;   /* every block, in allocation order */
    arena_block *current; /* the block being filled */
    size_t block_size;
    size_t used;
    size_t reserved;
};

anm_arena *anm_arena_new(size_t block_size)
{
    anm_arena *arena = calloc(1, sizeof *arena);
    if (arena == NULL)
        return NULL;
    arena->block_size = block_size ? block_size : ARENA_DEFAULT_BLOCK;
    return arena;
}

void anm_arena_destroy(anm_arena **arena)
{
    if (arena == NULL || *arena == NULL)
        return;
    arena_block *block = (*arena)->first;
    while (block != NULL) {
        arena_block *next = block->next;
        free(block);
        block = next;
    }
    free(*arena);
    *arena = NULL;
}

static arena_block *block_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(arena_block))
        return NULL;
    arena_block *block = malloc(sizeof(arena_block) + size);
    if (block == NULL)
        return NULL;
    block->next = NULL;
    block->size = size;
    block->used = 0;
    return block;
}

void *anm_arena_alloc(anm_arena *arena, size_t size)
{
    if (size > SIZE_MAX - ARENA_ALIGN)
        return NULL;
    size_t rounded = (size + (ARENA_ALIGN - 1)) & ~(size_t)(ARENA_ALIGN - 1);
    if (rounded == 0)
        rounded = ARENA_ALIGN;
    arena_block *block = arena->current;
    /* walk forward through blocks kept from before a reset */
    while (block != NULL && block->size - block->used < rounded) {
        if (block->next == NULL)
            break;
        block = block->next;
        block->used = 0;
    }
    if (block == NULL || block->size - block->used < rounded) {
        size_t size_new = rounded > arena->block_size ? rounded : arena->block_size;
        arena_block *fresh = block_new(size_new);
        if (fresh == NULL)
            return NULL;
        arena->reserved += size_new;
        if (block == NULL)
            arena->first = fresh;
        else
            block->next = fresh;
        block = fresh;
    }
    arena->current = block;
    void *p = block->data + block->used;
    block->used += rounded;
    arena->used += rounded;
    return p;
}

void *anm_arena_calloc(anm_arena *arena, size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    void *p = anm_arena_alloc(arena, count * size);
    if (p != NULL)
        memset(p, 0, count * size);
    return p;
}

char *anm_arena_strdup(anm_arena *arena, const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = anm_arena_alloc(arena, n);
    if (copy != NULL)
        memcpy(copy, s, n);
    return copy;
}

void anm_arena_reset(anm_arena *arena)
{
    arena->current = arena->first;
    if (arena->first != NULL)
        arena->first->used = 0;
    arena->used = 0;
}

size_t anm_arena_used(const anm_arena *arena)
{
    return arena->used;
}

size_t anm_arena_reserved(const anm_arena *arena)
{
    return arena->reserved;
}
