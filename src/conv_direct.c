/* Direct convolution: the fused path (activation in the epilogue).
 * Packing, driver and portable kernels; see conv_direct_impl.h and conv_kern.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "conv_common.h"
#include "conv_kern.h"
#include "conv_small.h"
#include "conv_first.h"
#include "conv_1x1.h"
#include "conv_depthwise_nhwc.h"
#include "fastconv.h"

/* Below this many FLOPs a call stays on one thread: waking a team costs more.
 * 1 MFLOP is ~10 us of one core; a libgomp fork/join is a few us on an idle
 * machine.  (Not measurable on the shared dev machine, see benchmarks/NOTES.md.) */
#define FC_PARALLEL_MIN_FLOPS 1.0e6
/* Channels-last copies above this size are made band group by band group
 * (about the L2 of one core here). */
#define FC_BAND_GROUP_BYTES ((int64_t)1 << 20)

/* Weights above this many bytes are packed by fastconv's threads (a 2-thread
 * fork/join costs a few us; 256 KB copy in ~15 us on one core). */
#define FC_PACK_PARALLEL_BYTES ((size_t)256 * 1024)

/* Driver modes, see conv_direct_impl.h. */
enum { MODE_A, MODE_DIRECT, MODE_FOLD, MODE_NHWC };

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

static size_t fc_round64(size_t n) { return (n + 63) & ~(size_t)63; }

/* At least n bytes of s, 64-byte aligned (the contents are not kept when it
 * grows); NULL when out of memory (s is then empty). */
static void *fc_scratch_get(fc_scratch *s, size_t n)
{
    if (s->p && s->bytes >= n) return s->p;
    fc_free64(s->p);
    s->bytes = 0;
    s->p = fc_alloc64(n);
    if (s->p) s->bytes = n;
    return s->p;
}

void fc_scratch_release(fc_scratch *s)
{
    fc_free64(s->p);
    s->p = NULL;
    s->bytes = 0;
}

void fc_packed_free(fc_packed *p)
{
    if (!p) return;
    fc_free64(p->wb);
    fc_free64(p->wa);
    fc_free64(p->raw);
    free(p);
}

size_t fc_packed_bytes(const fc_packed *p)
{
    const size_t taps = (size_t)(p->kh * p->kw), G = (size_t)p->groups, cin = (size_t)p->cin_g;
    const size_t ob = 64 / p->elem;
    return p->elem * (G * (size_t)p->nob * taps * cin * ob + G * (size_t)p->noa * cin * 6);
}

#define T float
#define SFX f32
#include "conv_direct_impl.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "conv_direct_impl.h"
#undef T
#undef SFX

const fc_kernel_table fc_kernels_portable = {
    "portable", FC_TB_P, 1, tileB_port_f32, tileB_port_f64, tileA_port_f32, tileA_port_f64,
    nhwc_port_f32, nhwc_port_f64, packB_port_f32, packB_port_f64, linesB_port_f32,
    linesB_port_f64,
};

size_t fc_conv2d_direct_workspace(const fc_conv_desc *d, const fc_activation *pre,
                                  size_t elem_size)
{
    return elem_size == sizeof(float) ? conv_workspace_f32(d, pre) : conv_workspace_f64(d, pre);
}

size_t fc_conv2d_direct_workspace_ex(const fc_conv_desc *d, const int64_t *xstrides,
                                     const fc_activation *pre, size_t elem_size)
{
    return elem_size == sizeof(float) ? conv_workspace_ex_f32(d, xstrides, pre)
                                      : conv_workspace_ex_f64(d, xstrides, pre);
}
