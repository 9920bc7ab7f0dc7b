/*
 * The strided-1x1 convolution, AVX2+FMA (see conv_1x1.h).  Compiled with
 * -mavx2 -mfma on x86 (stubs elsewhere); conv_direct_impl.h calls it only when
 * fc_1x1s_wanted() says so and SIMD kernels are in use.
 */
#include "conv/pointwise/conv_1x1.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/conv_common.h"
#include "core/conv_kern.h"

/* Above this many FLOPs the output channel blocks are split over threads. */
#define FC_1X1S_PARALLEL_MIN_FLOPS 1.0e6

#include "simd/avx2_store6.h"

/* ---- float32 ---- */
#include "simd/avx2_vec_f32.h"
#include "conv/pointwise/conv_1x1_impl.h"
#include "simd/avx2_vec_undef.h"

/* ---- float64 ---- */
#include "simd/avx2_vec_f64.h"
#include "conv/pointwise/conv_1x1_impl.h"
#include "simd/avx2_vec_undef.h"

#else /* not x86: never wanted */
int fc_conv_1x1s_avx2_f32(const fc_conv_desc *d, const float *x, const struct fc_packed *pk,
                          const float *bias, float *y, const fc_activation *post, void *ws)
{
    (void)d; (void)x; (void)pk; (void)bias; (void)y; (void)post; (void)ws;
    return FC_EINVAL;
}
int fc_conv_1x1s_avx2_f64(const fc_conv_desc *d, const double *x, const struct fc_packed *pk,
                          const double *bias, double *y, const fc_activation *post, void *ws)
{
    (void)d; (void)x; (void)pk; (void)bias; (void)y; (void)post; (void)ws;
    return FC_EINVAL;
}
#endif
