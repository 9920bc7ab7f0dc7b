/*
 * The small-problem direct convolution, AVX2+FMA (see conv_small.h).
 * Compiled with -mavx2 -mfma on x86 (empty elsewhere); conv_direct_impl.h
 * calls it only when fc_small_wanted() says so and AVX2+FMA is in use.
 */
#include "conv/small/conv_small.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "activation/activation_avx2.h"
#include "core/conv_common.h"

/* ---- float32 ---- */
#include "simd/avx2_vec_f32.h"
#include "conv/small/conv_small_impl.h"
#include "simd/avx2_vec_undef.h"

/* ---- float64 ---- */
#include "simd/avx2_vec_f64.h"
#include "conv/small/conv_small_impl.h"
#include "simd/avx2_vec_undef.h"

#else /* not x86: never wanted */
int fc_conv_small_avx2_f32(const fc_conv_desc *d, const float *x, const float *w,
                           const float *bias, float *y, const fc_activation *post)
{
    (void)d; (void)x; (void)w; (void)bias; (void)y; (void)post;
    return FC_EINVAL;
}
int fc_conv_small_avx2_f64(const fc_conv_desc *d, const double *x, const double *w,
                           const double *bias, double *y, const fc_activation *post)
{
    (void)d; (void)x; (void)w; (void)bias; (void)y; (void)post;
    return FC_EINVAL;
}
#endif
