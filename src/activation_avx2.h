/*
 * Vector activations for AVX2 kernels: 8 floats / 4 doubles at a time.
 *
 * Include only from *_avx2.c translation units (compiled with -mavx2 -mfma).
 * fc_act8_f32/fc_act4_f64 must give the same results as the scalar
 * activations in activation_impl.h to within a few ulp, with the same NaN,
 * infinity and signed-zero behaviour.
 *
 * PLACEHOLDER: the transcendental kinds go through the scalar code for now;
 * the vectorised exp/tanh/erf replace this.
 */
#ifndef FASTCONV_ACTIVATION_AVX2_H
#define FASTCONV_ACTIVATION_AVX2_H

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>

#include "fastconv.h"

static inline __m256 fc_act8_f32(__m256 x, const fc_activation *a)
{
    switch (a->kind) {
    case FC_ACT_IDENTITY:
        return x;
    case FC_ACT_RELU: /* x < 0 ? 0 : x, NaN and -0.0 kept */
        return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ), x);
    default: {
        float buf[8];
        _mm256_storeu_ps(buf, x);
        fc_activate_serial_f32(buf, buf, 8, a);
        return _mm256_loadu_ps(buf);
    }
    }
}

static inline __m256d fc_act4_f64(__m256d x, const fc_activation *a)
{
    switch (a->kind) {
    case FC_ACT_IDENTITY:
        return x;
    case FC_ACT_RELU:
        return _mm256_andnot_pd(_mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_LT_OQ), x);
    default: {
        double buf[4];
        _mm256_storeu_pd(buf, x);
        fc_activate_serial_f64(buf, buf, 4, a);
        return _mm256_loadu_pd(buf);
    }
    }
}
#endif
#endif
