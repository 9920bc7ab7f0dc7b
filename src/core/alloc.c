/* 64-byte aligned allocation for every kernel family's buffers (packed
 * weights, workspaces, per-thread scratch): its own unit, used by all of them
 * and using none. */
#include <stdint.h>
#include <stdlib.h>

#include "core/conv_kern.h"

void *fc_alloc64(size_t bytes)
{
    unsigned char *raw = (unsigned char *)malloc(bytes + 64 + sizeof(void *));
    if (!raw) return NULL;
    uintptr_t a = ((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63;
    ((void **)a)[-1] = raw;
    return (void *)a;
}

void fc_free64(void *p)
{
    if (p) free(((void **)p)[-1]);
}

/* Workspaces a family allocated itself because the caller passed none (the
 * plan's bytes, fc_conv2d_direct_workspace_ex): tests read it to see that the
 * plan's bytes are what the run uses (tests/test_plan.py). */
static long workspace_fallbacks;

void fc_note_workspace_fallback(void)
{
#if defined(__GNUC__) || defined(__clang__)
    __atomic_add_fetch(&workspace_fallbacks, 1, __ATOMIC_RELAXED);
#else
    ++workspace_fallbacks;   /* (a test counter: a lost count only fails a test) */
#endif
}

long fc_workspace_fallbacks(void)
{
#if defined(__GNUC__) || defined(__clang__)
    return __atomic_load_n(&workspace_fallbacks, __ATOMIC_RELAXED);
#else
    return workspace_fallbacks;
#endif
}
