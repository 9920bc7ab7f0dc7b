/*
 * AVX2+FMA micro-kernels of the direct convolution (compiled with -mavx2
 * -mfma on x86; empty elsewhere).  Chosen at run time by dispatch.c.
 * The tiles are described in conv_kern.h; here: 12 accumulators, 2 weight or
 * input vectors, 1 broadcast register.
 */
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "simd/avx2_store6.h"
#include "core/conv_kern.h"

/* ---- float32 ---- */
#include "simd/avx2_vec_f32.h"
#include "conv/direct/conv_avx2_impl.h"
#include "simd/avx2_vec_undef.h"

/* ---- float64 ---- */
#include "simd/avx2_vec_f64.h"
#include "conv/direct/conv_avx2_impl.h"
#include "simd/avx2_vec_undef.h"

const fc_kernel_table fc_kernels_avx2 = {
    "avx2+fma", 6, 1, tileB_avx2_f32, tileB_avx2_f64, tileA_avx2_f32, tileA_avx2_f64,
    nhwc_avx2_f32, nhwc_avx2_f64, packB_avx2_f32, packB_avx2_f64, linesB_avx2_f32,
    linesB_avx2_f64,
};
#endif
