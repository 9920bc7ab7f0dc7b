/*
 * The strided-1x1 convolution, AVX2+FMA (see conv_1x1.h).  Compiled with
 * -mavx2 -mfma on x86 (stubs elsewhere); conv_direct_impl.h calls it only when
 * fc_1x1s_wanted() says so and SIMD kernels are in use.
 */
#include "conv_1x1.h"

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

/* Above this many FLOPs the output channel blocks are split over threads. */
#define FC_1X1S_PARALLEL_MIN_FLOPS 1.0e6

/* y[o * ldy + j] = r_j[o] for 8 channels o, P = 5 or 6 pixels j (float32). */
static inline __attribute__((always_inline)) void s1_store_f32(float *y, int64_t ldy, __m256 r0,
                                                               __m256 r1, __m256 r2, __m256 r3,
                                                               __m256 r4, __m256 r5, int P)
{
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m128 l4 = _mm256_castps256_ps128(t4), l5 = _mm256_castps256_ps128(t5);
    const __m128 h4 = _mm256_extractf128_ps(t4, 1), h5 = _mm256_extractf128_ps(t5, 1);
    _mm_storeu_ps(y + 0 * ldy, _mm256_castps256_ps128(u0));
    _mm_storeu_ps(y + 1 * ldy, _mm256_castps256_ps128(u1));
    _mm_storeu_ps(y + 2 * ldy, _mm256_castps256_ps128(u2));
    _mm_storeu_ps(y + 3 * ldy, _mm256_castps256_ps128(u3));
    _mm_storeu_ps(y + 4 * ldy, _mm256_extractf128_ps(u0, 1));
    _mm_storeu_ps(y + 5 * ldy, _mm256_extractf128_ps(u1, 1));
    _mm_storeu_ps(y + 6 * ldy, _mm256_extractf128_ps(u2, 1));
    _mm_storeu_ps(y + 7 * ldy, _mm256_extractf128_ps(u3, 1));
    if (P == 6) {
        _mm_storel_pi((__m64 *)(y + 0 * ldy + 4), l4); _mm_storeh_pi((__m64 *)(y + 1 * ldy + 4), l4);
        _mm_storel_pi((__m64 *)(y + 2 * ldy + 4), l5); _mm_storeh_pi((__m64 *)(y + 3 * ldy + 4), l5);
        _mm_storel_pi((__m64 *)(y + 4 * ldy + 4), h4); _mm_storeh_pi((__m64 *)(y + 5 * ldy + 4), h4);
        _mm_storel_pi((__m64 *)(y + 6 * ldy + 4), h5); _mm_storeh_pi((__m64 *)(y + 7 * ldy + 4), h5);
    } else {
        _mm_store_ss(y + 0 * ldy + 4, l4); _mm_store_ss(y + 1 * ldy + 4, _mm_movehl_ps(l4, l4));
        _mm_store_ss(y + 2 * ldy + 4, l5); _mm_store_ss(y + 3 * ldy + 4, _mm_movehl_ps(l5, l5));
        _mm_store_ss(y + 4 * ldy + 4, h4); _mm_store_ss(y + 5 * ldy + 4, _mm_movehl_ps(h4, h4));
        _mm_store_ss(y + 6 * ldy + 4, h5); _mm_store_ss(y + 7 * ldy + 4, _mm_movehl_ps(h5, h5));
    }
}

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
#include "conv_1x1_impl.h"
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
#include "conv_1x1_impl.h"

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
