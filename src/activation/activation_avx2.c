/* The standalone activation pass with AVX2+FMA (see activation_avx2.h).
 * Compiled with -mavx2 -mfma on x86 only; chosen at run time by activation.c. */
#include "activation/activation_internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <string.h>

#include "activation/activation_avx2.h"

/* Full vectors, then the tail through a zero-padded buffer, so that every
 * element gets exactly the vector result. */
#define F32_LOOP(KIND)                                                             \
    case KIND: {                                                                   \
        size_t i = 0;                                                              \
        for (; i + 8 <= n; i += 8)                                                 \
            _mm256_storeu_ps(y + i, fc_act8_kind_f32(KIND, _mm256_add_ps(          \
                                        _mm256_loadu_ps(x + i), vb), p0, p1));     \
        if (i < n) {                                                               \
            float buf[8] = {0};                                                    \
            memcpy(buf, x + i, (n - i) * sizeof(float));                           \
            _mm256_storeu_ps(buf, fc_act8_kind_f32(KIND, _mm256_add_ps(            \
                                      _mm256_loadu_ps(buf), vb), p0, p1));         \
            memcpy(y + i, buf, (n - i) * sizeof(float));                           \
        }                                                                          \
        break;                                                                     \
    }

void fc_act_array_avx2_f32(const float *x, float *y, size_t n, float b,
                           const fc_activation *act)
{
    const int kind = act ? act->kind : FC_ACT_IDENTITY;
    const float p0 = act ? (float)act->p0 : 0.0f, p1 = act ? (float)act->p1 : 0.0f;
    const __m256 vb = _mm256_set1_ps(b);
    switch (kind) {
    F32_LOOP(FC_ACT_RELU) F32_LOOP(FC_ACT_RELU6) F32_LOOP(FC_ACT_LEAKY_RELU)
    F32_LOOP(FC_ACT_ELU) F32_LOOP(FC_ACT_SELU) F32_LOOP(FC_ACT_SIGMOID)
    F32_LOOP(FC_ACT_HARDSIGMOID) F32_LOOP(FC_ACT_TANH) F32_LOOP(FC_ACT_SOFTPLUS)
    F32_LOOP(FC_ACT_SOFTSIGN) F32_LOOP(FC_ACT_SILU) F32_LOOP(FC_ACT_HARDSWISH)
    F32_LOOP(FC_ACT_GELU) F32_LOOP(FC_ACT_GELU_TANH) F32_LOOP(FC_ACT_MISH)
    default: /* identity (+ bias): memory-bound, the portable loop is as fast */
        fc_act_array_portable_f32(x, y, n, b, act);
        break;
    }
}

#define F64_LOOP(KIND)                                                             \
    case KIND: {                                                                   \
        size_t i = 0;                                                              \
        for (; i + 4 <= n; i += 4)                                                 \
            _mm256_storeu_pd(y + i, fc_act4_kind_f64(KIND, _mm256_add_pd(          \
                                        _mm256_loadu_pd(x + i), vb), p0, p1));     \
        if (i < n) fc_act_array_portable_f64(x + i, y + i, n - i, b, act);         \
        break;                                                                     \
    }

void fc_act_array_avx2_f64(const double *x, double *y, size_t n, double b,
                           const fc_activation *act)
{
    const int kind = act ? act->kind : FC_ACT_IDENTITY;
    const double p0 = act ? act->p0 : 0.0, p1 = act ? act->p1 : 0.0;
    const __m256d vb = _mm256_set1_pd(b);
    switch (kind) {
    F64_LOOP(FC_ACT_RELU) F64_LOOP(FC_ACT_RELU6) F64_LOOP(FC_ACT_LEAKY_RELU)
    F64_LOOP(FC_ACT_HARDSIGMOID) F64_LOOP(FC_ACT_SOFTSIGN) F64_LOOP(FC_ACT_HARDSWISH)
    default: /* identity and the transcendental kinds: scalar libm, exact */
        fc_act_array_portable_f64(x, y, n, b, act);
        break;
    }
}

#else /* not x86-64: never called (the level is portable), defined for the linker */

void fc_act_array_avx2_f32(const float *x, float *y, size_t n, float b,
                           const fc_activation *act)
{
    fc_act_array_portable_f32(x, y, n, b, act);
}

void fc_act_array_avx2_f64(const double *x, double *y, size_t n, double b,
                           const fc_activation *act)
{
    fc_act_array_portable_f64(x, y, n, b, act);
}
#endif
