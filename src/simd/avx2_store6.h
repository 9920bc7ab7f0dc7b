/*
 * Register tile -> NCHW store: the transpose that turns a tile of output
 * channels x 5 or 6 pixels (one vector per pixel) into rows of the output.
 * Shared by the AVX2 tiles (conv_avx2_impl.h, conv_1x1_impl.h).
 */
#ifndef FASTCONV_AVX2_STORE6_H
#define FASTCONV_AVX2_STORE6_H
#include <immintrin.h>
#include <stdint.h>

/* y[o * ldy + j] = r_j[o] for 8 channels o, P = 5 or 6 pixels j. */
static inline __attribute__((always_inline)) void fc_store6_f32(float *y, int64_t ldy, __m256 r0,
                                                              __m256 r1,
                                                              __m256 r2, __m256 r3, __m256 r4, __m256 r5, int P)
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

/* y[o * ldy + j] = r_j[o] for 4 channels o, P = 5 or 6 pixels j. */
static inline __attribute__((always_inline)) void fc_store6_f64(double *y, int64_t ldy, __m256d r0, __m256d r1,
                                                              __m256d r2, __m256d r3, __m256d r4, __m256d r5, int P)
{
    const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    const __m256d t4 = _mm256_unpacklo_pd(r4, r5), t5 = _mm256_unpackhi_pd(r4, r5);
    _mm256_storeu_pd(y + 0 * ldy, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm256_storeu_pd(y + 1 * ldy, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm256_storeu_pd(y + 2 * ldy, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm256_storeu_pd(y + 3 * ldy, _mm256_permute2f128_pd(t1, t3, 0x31));
    const __m128d l4 = _mm256_castpd256_pd128(t4), l5 = _mm256_castpd256_pd128(t5);
    const __m128d h4 = _mm256_extractf128_pd(t4, 1), h5 = _mm256_extractf128_pd(t5, 1);
    if (P == 6) {
        _mm_storeu_pd(y + 0 * ldy + 4, l4); _mm_storeu_pd(y + 1 * ldy + 4, l5);
        _mm_storeu_pd(y + 2 * ldy + 4, h4); _mm_storeu_pd(y + 3 * ldy + 4, h5);
    } else {
        _mm_store_sd(y + 0 * ldy + 4, l4); _mm_store_sd(y + 1 * ldy + 4, l5);
        _mm_store_sd(y + 2 * ldy + 4, h4); _mm_store_sd(y + 3 * ldy + 4, h5);
    }
}

#endif
