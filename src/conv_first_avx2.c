/*
 * The first-layer direct convolution, AVX2+FMA (see conv_first.h).  Compiled
 * with -mavx2 -mfma on x86 (stubs elsewhere); conv_direct_impl.h calls it only
 * when fc_first_wanted() says so and AVX2+FMA kernels are in use.
 */
#include "conv_first.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "activation_avx2.h"
#include "conv_common.h"
#include "conv_kern.h"

/* Above this many FLOPs the output rows are split over threads. */
#define FC_FIRST_PARALLEL_MIN_FLOPS 2.0e6

/* ---- float32 ---- */
#define T float
#define SFX f32
#define V __m256
#define VL 8
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VBCAST _mm256_broadcast_ss
#define VSET1 _mm256_set1_ps
#define VFMA _mm256_fmadd_ps
#define VACT fc_act8_f32
#define VRELU(x, z) _mm256_andnot_ps(_mm256_cmp_ps(x, z, _CMP_LT_OQ), x)
#include "conv_first_impl.h"
#undef T
#undef SFX
#undef V
#undef VL
#undef VLOAD
#undef VSTORE
#undef VBCAST
#undef VSET1
#undef VFMA
#undef VACT
#undef VRELU

/* ---- float64 ---- */
#define T double
#define SFX f64
#define V __m256d
#define VL 4
#define VLOAD _mm256_loadu_pd
#define VSTORE _mm256_storeu_pd
#define VBCAST _mm256_broadcast_sd
#define VSET1 _mm256_set1_pd
#define VFMA _mm256_fmadd_pd
#define VACT fc_act4_f64
#define VRELU(x, z) _mm256_andnot_pd(_mm256_cmp_pd(x, z, _CMP_LT_OQ), x)
#include "conv_first_impl.h"

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
