/*
 * The channels-last depthwise convolution, AVX2+FMA (see conv_depthwise_nhwc.h
 * and the template conv_depthwise_nhwc_impl.h).  Compiled with -mavx2 -mfma on
 * x86 (stubs elsewhere); conv_depthwise_nhwc.c calls it only when the
 * AVX2+FMA kernel set is in use.
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

#include "activation/activation_avx2.h"
#include "activation/activation_internal.h"
#include "core/conv_common.h"
#include "core/conv_kern.h"

#define FC_DWN_ENTRY fc_dwn_avx2_
/* Tile shapes (16 ymm): 1 vector of channels x P pixels, + KW weights and 1
 * input in registers. */
#ifndef DWN_NV
#define DWN_NV 1
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
#define VKEEP(v) __asm__("" : "+x"(v))
#endif

#include "simd/avx2_vec_f32.h"
#define VRELU6 fc_v8_relu6
#define SFMA fmaf
#include "conv/depthwise/conv_depthwise_nhwc_impl.h"
#undef VRELU6
#undef SFMA
#include "simd/avx2_vec_undef.h"

#include "simd/avx2_vec_f64.h"
#define VRELU6 fc_v4_relu6
#define SFMA fma
#include "conv/depthwise/conv_depthwise_nhwc_impl.h"
#undef VRELU6
#undef SFMA
#include "simd/avx2_vec_undef.h"

#else /* not x86: never called */
int fc_dwn_avx2_f32(const fc_dwn_args *a)
{
    (void)a;
    return FC_EINVAL;
}
int fc_dwn_avx2_f64(const fc_dwn_args *a)
{
    (void)a;
    return FC_EINVAL;
}
#endif
