/*
 * The small-problem direct convolution, AVX2+FMA (see conv_small.h).
 * Compiled with -mavx2 -mfma on x86 (empty elsewhere); conv_direct_impl.h
 * calls it only when fc_small_wanted() says so and AVX2+FMA is in use.
 */
#include "conv_small.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "activation_avx2.h"
#include "conv_common.h"

/* ---- float32 ---- */
#define T float
#define SFX f32
#define V __m256
#define VL 8
#define VI __m256i
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VBCAST _mm256_broadcast_ss
#define VSET1 _mm256_set1_ps
#define VZERO _mm256_setzero_ps
#define VFMA _mm256_fmadd_ps
#define VMASKLOAD _mm256_maskload_ps
#define VMASKSTORE _mm256_maskstore_ps
#define VACTK(x, a) fc_act8_kind_f32((a)->kind, x, (float)(a)->p0, (float)(a)->p1)
#define VRELU(x, z) _mm256_andnot_ps(_mm256_cmp_ps(x, z, _CMP_LT_OQ), x)
#define MASKT int32_t
#define VAND _mm256_and_ps
#define VCASTI _mm256_castsi256_ps
#include "conv_small_impl.h"
#undef T
#undef SFX
#undef V
#undef VL
#undef VI
#undef VLOAD
#undef VSTORE
#undef VBCAST
#undef VSET1
#undef VZERO
#undef VFMA
#undef VMASKLOAD
#undef VMASKSTORE
#undef VACTK
#undef VRELU
#undef MASKT
#undef VAND
#undef VCASTI

/* ---- float64 ---- */
#define T double
#define SFX f64
#define V __m256d
#define VL 4
#define VI __m256i
#define VLOAD _mm256_loadu_pd
#define VSTORE _mm256_storeu_pd
#define VBCAST _mm256_broadcast_sd
#define VSET1 _mm256_set1_pd
#define VZERO _mm256_setzero_pd
#define VFMA _mm256_fmadd_pd
#define VMASKLOAD _mm256_maskload_pd
#define VMASKSTORE _mm256_maskstore_pd
#define VACTK(x, a) fc_act4_f64(x, a)
#define VRELU(x, z) _mm256_andnot_pd(_mm256_cmp_pd(x, z, _CMP_LT_OQ), x)
#define MASKT int64_t
#define VAND _mm256_and_pd
#define VCASTI _mm256_castsi256_pd
#include "conv_small_impl.h"

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
