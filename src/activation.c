/* Standalone activation passes (the "separate" path and the im2col epilogue). */
#include <math.h>

#include "activation_internal.h"
#include "conv_kern.h"
#include "fastconv.h"

/* The run-time choice of the AVX2 loops: dispatch.c's CPU check and
 * FASTCONV_DISABLE_SIMD switch, the ones that rule every kernel. */
static int fc_act_simd_probe(void)
{
#if defined(__x86_64__) || defined(_M_X64)
    return !fc_simd_disabled_by_env() && fc_cpu_has_avx2_fma();
#else
    return 0;
#endif
}

int fc_act_simd(void)
{
    static int cached = -1;   /* a benign race: every thread computes the same */
    if (cached < 0) cached = fc_act_simd_probe();
    return cached;
}

int fc_act_avx512(void)
{
#if defined(__x86_64__) || defined(_M_X64)
    return fc_kernels() == &fc_kernels_avx512;
#else
    return 0;
#endif
}

/* Elements per parallel work item: big enough to amortise scheduling. */
#define FC_ACT_BLOCK ((size_t)16384)

#define T float
#define SFX f32
#define M(fn) fn##f
#include "activation_impl.h"
#undef T
#undef SFX
#undef M

#define T double
#define SFX f64
#define M(fn) fn
#include "activation_impl.h"
#undef T
#undef SFX
#undef M
