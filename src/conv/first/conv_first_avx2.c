/*
 * The first-layer direct convolution, AVX2+FMA (see conv_first.h).  Compiled
 * with -mavx2 -mfma on x86 (stubs elsewhere); conv_direct_impl.h calls it only
 * when fc_first_wanted() says so and AVX2+FMA kernels are in use.
 */
#include "conv/first/conv_first.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "activation/activation_internal.h"
#include "core/conv_common.h"
#include "core/conv_kern.h"

/* Above this many FLOPs the output rows are split over threads. */
#define FC_FIRST_PARALLEL_MIN_FLOPS 2.0e6

#define FC_FIRST_ENTRY fc_conv_first_avx2_

/* ---- float32 ---- */
#define FC_FIRST_F32 1
#include "simd/avx2_vec_f32.h"
#include "conv/first/conv_first_impl.h"
#include "simd/avx2_vec_undef.h"
#undef FC_FIRST_F32

/* ---- float64 ---- */
#include "simd/avx2_vec_f64.h"
#include "conv/first/conv_first_impl.h"
#include "simd/avx2_vec_undef.h"
#undef FC_FIRST_ENTRY

#else /* not x86: never wanted */
int fc_conv_first_avx2_f32(const fc_conv_desc *d, const float *x, const struct fc_packed *pk,
                           const float *bias, float *y, const fc_activation *post, void *ws)
{
    (void)d; (void)x; (void)pk; (void)bias; (void)y; (void)post; (void)ws;
    return FC_EINVAL;
}
int fc_conv_first_avx2_f64(const fc_conv_desc *d, const double *x, const struct fc_packed *pk,
                           const double *bias, double *y, const fc_activation *post, void *ws)
{
    (void)d; (void)x; (void)pk; (void)bias; (void)y; (void)post; (void)ws;
    return FC_EINVAL;
}
#endif
