/* Direct convolution: the fused path (activation in the epilogue).
 * Packing, driver and portable kernels; see conv_direct_impl.h and conv_kern.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/conv_common.h"
#include "core/conv_kern.h"
#include "conv/small/conv_small.h"
#include "conv/first/conv_first.h"
#include "conv/pointwise/conv_1x1.h"
#include "conv/depthwise/conv_depthwise_nhwc.h"
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

/* Driver modes (conv_direct_impl.h, pick_mode_): MODE_A, 1x1 stride-1 NCHW
 * calls on the A tiles (6 output channels x pixel vectors, layout A);
 * MODE_DIRECT, the B tiles (pixels x 64-byte blocks of output channels,
 * layout B) reading x in place; MODE_FOLD, B tiles over a copy with the kw
 * taps folded into the channels (few input channels); MODE_NHWC, B tiles
 * over a channels-last (pre-activated) copy of x. */
enum { MODE_A, MODE_DIRECT, MODE_FOLD, MODE_NHWC };
/* Kernel families of a call's plan (conv_direct_impl.h, families_), in the
 * order they are tried. */
enum { FAM_DEPTHWISE, FAM_DEPTHWISE_NHWC, FAM_SMALL, FAM_SMALL_NHWC, FAM_FIRST, FAM_S1X1,
       FAM_DIRECT };

/* ---- the direct family's kernel table (its ISA variants) -------------- */

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define FC_X86_DISPATCH 1
#else
#define FC_X86_DISPATCH 0
#endif

/* The register blocking of the AVX-512 B tiles for this CPU (conv_direct_avx512.c):
 * 4 x 6 zmm (24 accumulators) on Intel, whose AVX-512 cores (Xeon Skylake-SP
 * to Sapphire Rapids) have two 512-bit FMA pipes: on the Ice Lake server the 16
 * accumulators of 2 x 8 cannot keep both busy (ResNet/VGG 3x3 layers +3-20 %,
 * benchmarks/NOTES.md, perf-avx512-icl).  2 x 8 elsewhere: on the Zen 4 it was
 * written on (512-bit ops on 256-bit pipes, the AVX2 peak) 4 x 6 measured
 * slower.  Other AVX-512 CPUs (Zen 5, ...) were not measured; they keep 2 x 8. */
#if FC_X86_DISPATCH
static const fc_kernel_table *avx512_blocking_for_cpu(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_is("intel")) return &fc_kernels_avx512_4x6;
    return &fc_kernels_avx512_2x8;
}

/* At load time, before any thread reads the table. */
__attribute__((constructor)) static void fc_pick_avx512_blocking(void)
{
    fc_kernels_avx512 = *avx512_blocking_for_cpu();
}
#endif

const fc_kernel_table *fc_kernels(void)
{
#if FC_X86_DISPATCH
    switch (fc_isa_variant(FC_FAM_DIRECT)) {
    case FC_ISA_AVX512: return &fc_kernels_avx512;
    case FC_ISA_AVX2: return &fc_kernels_avx2;
    default: break;
    }
#endif
    return &fc_kernels_portable;
}

const char *fc_kernel_name(void) { return fc_kernels()->name; }

int fc_force_kernels(const char *name)
{
    int level = -2;
    const int cpu = fc_isa_get_info().cpu;
    if (!strcmp(name, "default")) level = -1;
    else if (!strcmp(name, "portable")) level = FC_ISA_PORTABLE;
#if FC_X86_DISPATCH
    else if (!strcmp(name, "avx2+fma") && cpu >= FC_ISA_AVX2) level = FC_ISA_AVX2;
    else if (cpu == FC_ISA_AVX512
             && (!strcmp(name, "avx512") || !strcmp(name, "avx512_2x8")
                 || !strcmp(name, "avx512_4x6")))
        level = FC_ISA_AVX512;
#endif
    if (level == -2) return 0;
    (void)cpu;
#if FC_X86_DISPATCH
    /* "avx512" and "default": the blocking for this CPU; the others one of them */
    if (cpu == FC_ISA_AVX512)
        fc_kernels_avx512 = !strcmp(name, "avx512_2x8")   ? fc_kernels_avx512_2x8
                            : !strcmp(name, "avx512_4x6") ? fc_kernels_avx512_4x6
                                                          : *avx512_blocking_for_cpu();
#endif
    return fc_force_isa(level);
}

#undef FC_X86_DISPATCH

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
#include "conv/direct/conv_direct_impl.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "conv/direct/conv_direct_impl.h"
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

const char *fc_conv2d_direct_plan(const fc_conv_desc *d, const int64_t *xstrides,
                                  const fc_activation *pre, size_t elem_size, int y_nhwc,
                                  size_t *workspace)
{
    static const char *const names[] = {"depthwise", "depthwise_nhwc", "small", "small_nhwc",
                                        "first", "strided_1x1", "direct"};
    _Static_assert(sizeof names / sizeof *names == FAM_DIRECT + 1, "a name per family");
    const int fam = elem_size == sizeof(float)
                        ? conv_plan_f32(d, xstrides, y_nhwc, pre, workspace)
                        : conv_plan_f64(d, xstrides, y_nhwc, pre, workspace);
    return names[fam];
}

size_t fc_conv2d_direct_workspace_ex(const fc_conv_desc *d, const int64_t *xstrides,
                                     const fc_activation *pre, size_t elem_size, int y_nhwc)
{
    return elem_size == sizeof(float) ? conv_workspace_ex_f32(d, xstrides, y_nhwc, pre)
                                      : conv_workspace_ex_f64(d, xstrides, y_nhwc, pre);
}
