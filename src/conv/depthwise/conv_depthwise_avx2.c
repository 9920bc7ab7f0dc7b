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

/* Even and odd elements of the concatenation (a, b). */
static inline void dw_deint2_f32(__m256 a, __m256 b, __m256 *e, __m256 *o)
{
    const __m256 e0 = _mm256_shuffle_ps(a, b, 0x88), o0 = _mm256_shuffle_ps(a, b, 0xDD);
    *e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e0), 0xD8));
    *o = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o0), 0xD8));
}
static inline void dw_deint2_f64(__m256d a, __m256d b, __m256d *e, __m256d *o)
{
    *e = _mm256_permute4x64_pd(_mm256_unpacklo_pd(a, b), 0xD8);
    *o = _mm256_permute4x64_pd(_mm256_unpackhi_pd(a, b), 0xD8);
}

/* 8x8 / 4x4 transposes in registers. */
static inline void dw_tr8_f32(__m256 *r)
{
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}
static inline void dw_tr4_f64(__m256d *r)
{
    const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

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

#define T float
#define SFX f32
#define V __m256
#define VL 8
#define VLOADU _mm256_loadu_ps
#define VSTOREU _mm256_storeu_ps
#define VSTREAM _mm256_stream_ps
#define VSET1 _mm256_set1_ps
#define VFMA _mm256_fmadd_ps
#define VZERO _mm256_setzero_ps
#define VACT(kind, v) fc_act8_kind_f32(kind, v, 0.0f, 0.0f)
#define MI int32_t
#define MLOAD(p) _mm256_loadu_si256((const __m256i *)(p))
#define VMASKLOAD _mm256_maskload_ps
#define VEVEN(a, b) _mm256_shuffle_ps(a, b, 0x88)
#define VODD(a, b) _mm256_shuffle_ps(a, b, 0xDD)
#define VUNPERM(v) _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8))
#define VTRANSPOSE dw_tr8_f32
#define dw_deint2 dw_deint2_f32
#include "conv/depthwise/conv_depthwise_avx2_impl.h"
#undef T
#undef SFX
#undef V
#undef VL
#undef VLOADU
#undef VSTOREU
#undef VSTREAM
#undef VSET1
#undef VFMA
#undef VZERO
#undef VACT
#undef MI
#undef MLOAD
#undef VMASKLOAD
#undef VEVEN
#undef VODD
#undef VUNPERM
#undef VTRANSPOSE
#undef dw_deint2

#define T double
#define SFX f64
#define V __m256d
#define VL 4
#define VLOADU _mm256_loadu_pd
#define VSTOREU _mm256_storeu_pd
#define VSTREAM _mm256_stream_pd
#define VSET1 _mm256_set1_pd
#define VFMA _mm256_fmadd_pd
#define VZERO _mm256_setzero_pd
#define VACT(kind, v) fc_act4_kind_f64(kind, v, 0.0, 0.0)
#define MI int64_t
#define MLOAD(p) _mm256_loadu_si256((const __m256i *)(p))
#define VMASKLOAD _mm256_maskload_pd
#define VEVEN(a, b) _mm256_unpacklo_pd(a, b)
#define VODD(a, b) _mm256_unpackhi_pd(a, b)
#define VUNPERM(v) _mm256_permute4x64_pd(v, 0xD8)
#define VTRANSPOSE dw_tr4_f64
#define dw_deint2 dw_deint2_f64
#include "conv/depthwise/conv_depthwise_avx2_impl.h"
#undef T
#undef SFX
#undef V
#undef VL
#undef VLOADU
#undef VSTOREU
#undef VSTREAM
#undef VSET1
#undef VFMA
#undef VZERO
#undef VACT
#undef MI
#undef MLOAD
#undef VMASKLOAD
#undef VEVEN
#undef VODD
#undef VUNPERM
#undef VTRANSPOSE
#undef dw_deint2

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
