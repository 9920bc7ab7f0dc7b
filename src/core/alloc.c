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
