/*
 * The channels-last depthwise convolution, AVX-512 (see conv_depthwise_nhwc.h
 * and the template conv_depthwise_nhwc_impl.h, here on 64-byte vectors).
 * Compiled with the AVX-512 flags on x86 (stubs elsewhere);
 * conv_depthwise_nhwc.c calls it only when the AVX-512 kernel set is in use.
 */
#include "conv/depthwise/conv_depthwise_nhwc.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "activation/activation_internal.h"
#include "core/conv_common.h"
#include "core/conv_kern.h"

#define FC_DWN_ENTRY fc_dwn_avx512_
/* Tile shapes (32 zmm): 2 vectors of channels x P pixels, + 2 KW weights and
 * 2 inputs in registers; measured on the 112x112x32 3x3 layer (P 4, 8, 10,
 * and 1 vector x 8, 12, 16 pixels: within 5 % of each other but 4 pixels). */
#ifndef DWN_NV
#define DWN_NV 2
#define DWN_P3 8
#define DWN_P3S2 8
#define DWN_P5 8
#define DWN_P7 6
#define DWN_PG 8
#endif
/* an empty asm that takes v in a vector register: each input loaded once and
 * used by every pixel it feeds (GCC otherwise folds it into each FMA as a
 * memory operand; 30 % slower on NumPy's 16-byte-aligned arrays, whose
 * vectors straddle cache lines) */
#if defined(__GNUC__) || defined(__clang__)
#define VKEEP(v) __asm__("" : "+v"(v))
#endif

/* x > 6 ? 6 : x < 0 ? 0 : x, NaN and -0.0 kept (fc_v8_relu6 on 16 lanes) */
static inline __m512 dwn_relu6_f32(__m512 x)
{
    const __m512 six = _mm512_set1_ps(6.0f), zero = _mm512_setzero_ps();
    x = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, six, _CMP_GT_OQ), six);
    return _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, zero, _CMP_LT_OQ), zero);
}
static inline __m512d dwn_relu6_f64(__m512d x)
{
    const __m512d six = _mm512_set1_pd(6.0), zero = _mm512_setzero_pd();
    x = _mm512_mask_mov_pd(x, _mm512_cmp_pd_mask(x, six, _CMP_GT_OQ), six);
    return _mm512_mask_mov_pd(x, _mm512_cmp_pd_mask(x, zero, _CMP_LT_OQ), zero);
}

#include "simd/avx512_vec_f32.h"
#define VRELU6 dwn_relu6_f32
#define SFMA fmaf
#include "conv/depthwise/conv_depthwise_nhwc_impl.h"
#undef VRELU6
#undef SFMA
#include "simd/avx512_vec_undef.h"

#include "simd/avx512_vec_f64.h"
#define VRELU6 dwn_relu6_f64
#define SFMA fma
#include "conv/depthwise/conv_depthwise_nhwc_impl.h"
#undef VRELU6
#undef SFMA
#include "simd/avx512_vec_undef.h"

#else /* not x86: never called */
int fc_dwn_avx512_f32(const fc_dwn_args *a)
{
    (void)a;
    return FC_EINVAL;
}
int fc_dwn_avx512_f64(const fc_dwn_args *a)
{
    (void)a;
    return FC_EINVAL;
}
#endif
