/*
 * Depthwise convolution, AVX2+FMA kernels for float32 and float64 (the scheme
 * is in conv_depthwise_avx2_impl.h).  Compiled with -mavx2 -mfma on x86
 * only; chosen at run time by conv_depthwise.c.
 */
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "activation/activation_internal.h"
#include "core/conv_common.h"
#include "conv/depthwise/conv_depthwise_internal.h"
#include "fastconv.h"

#if defined(__x86_64__) || defined(_M_X64)
#include "activation/activation_avx2.h"
#include "simd/avx2_shuffle.h"

/* Streaming (non-temporal) stores for outputs larger than this. */
#ifndef DWV_NT
#define DWV_NT 0   /* measured: no gain on one thread (see NOTES.md) */
#endif
#ifndef DWV_NT_BYTES
#define DWV_NT_BYTES 4.0e6
#endif

/* Channels-last kernel for output rows at most this wide. */
#ifndef DWC_MAX_W
#define DWC_MAX_W 16
#endif

/* Tile shapes (4 or 2 output rows x NV vectors), chosen by measurement. */
#ifndef DWV_K3S1_NV
#define DWV_K3S1_NV 1
#define DWV_K3S1_RM 4
#define DWV_K3S2_NV 2
#define DWV_K3S2_RM 2
#define DWV_K5S1_NV 2
#define DWV_K5S1_RM 4
#define DWV_K5S2_NV 2
#define DWV_K5S2_RM 4
#endif

#include "simd/avx2_vec_f32.h"
#include "conv/depthwise/conv_depthwise_avx2_impl.h"
#include "simd/avx2_vec_undef.h"

#include "simd/avx2_vec_f64.h"
#include "conv/depthwise/conv_depthwise_avx2_impl.h"
#include "simd/avx2_vec_undef.h"

int fc_dw_avx2_f32(const fc_conv_desc *d, const float *x, const float *w, const float *bias,
                   float *y, const fc_activation *post)
{
    return fc_dw_avx2_f32_impl(d, x, w, bias, y, post);
}
int fc_dw_avx2_f64(const fc_conv_desc *d, const double *x, const double *w, const double *bias,
                   double *y, const fc_activation *post)
{
    return fc_dw_avx2_f64_impl(d, x, w, bias, y, post);
}

#else /* not x86-64: never called */
int fc_dw_avx2_f32(const fc_conv_desc *d, const float *x, const float *w, const float *bias,
                   float *y, const fc_activation *post)
{
    (void)d; (void)x; (void)w; (void)bias; (void)y; (void)post;
    return FC_EINVAL;
}
int fc_dw_avx2_f64(const fc_conv_desc *d, const double *x, const double *w, const double *bias,
                   double *y, const fc_activation *post)
{
    (void)d; (void)x; (void)w; (void)bias; (void)y; (void)post;
    return FC_EINVAL;
}
#endif
