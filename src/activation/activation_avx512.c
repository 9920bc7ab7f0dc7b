/* The standalone activation pass with AVX-512: sigmoid and silu, 16 floats
 * at a time, from the same code as the AVX2 ones (activation_vexp_impl.h),
 * so the same bits; every other kind, and float64, take the AVX2 loops.
 * Compiled with the AVX-512 flags on x86 only; chosen at run time by
 * activation.c when the AVX-512 kernel set is the one in use.
 *
 * Why only these two: they are the costly kinds the fused path spends most
 * of its activation time in (silu on mobilenet_pw is about as long as the
 * convolution), and they are bound by their dependency chains, not by the
 * FMA pipes' width: on Zen 4 a 512-bit operation takes one scheduler entry
 * for two halves, so twice the elements fit in the out-of-order window
 * (0.46 -> 0.34 ns per element, NOTES.md). */
#include "activation/activation_internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#define VF __m512
#define VM __mmask16
#define VNAME(name) fc_v16_##name
#define VSET1(c) _mm512_set1_ps((float)(c))
#define VADD _mm512_add_ps
#define VSUB _mm512_sub_ps
#define VMUL _mm512_mul_ps
#define VDIV _mm512_div_ps
#define VMAX _mm512_max_ps
#define VFMA _mm512_fmadd_ps
#define VFNMA _mm512_fnmadd_ps
#define VNEG_ABS(x) _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(x), \
                                                        _mm512_set1_epi32((int)0x80000000u)))
#define VPOW2_BITS(t, k) _mm512_castsi512_ps(_mm512_add_epi32( \
    _mm512_slli_epi32(_mm512_castps_si512(t), 23), _mm512_set1_epi32(k)))
#define VCMP _mm512_cmp_ps_mask
#define VKEEP(m, v) _mm512_maskz_mov_ps((m), (v))
#define VSET_WHERE(v, m, w) _mm512_mask_mov_ps((v), (m), (w))
#include "activation/activation_vexp_impl.h"

static inline __m512 act16(int kind, __m512 x)
{
    return kind == FC_ACT_SIGMOID ? fc_v16_sigmoid(x) : _mm512_mul_ps(x, fc_v16_sigmoid(x));
}

/* Full vectors, then the tail with masked loads and stores. */
#define LOOP16(KIND)                                                                 \
    case KIND: {                                                                     \
        size_t i = 0;                                                                \
        for (; i + 16 <= n; i += 16)                                                 \
            _mm512_storeu_ps(y + i, act16(KIND, _mm512_add_ps(_mm512_loadu_ps(x + i), vb))); \
        if (i < n) {                                                                 \
            const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);                   \
            _mm512_mask_storeu_ps(y + i, m, act16(KIND, _mm512_add_ps(              \
                                                 _mm512_maskz_loadu_ps(m, x + i), vb))); \
        }                                                                            \
        break;                                                                       \
    }

void fc_act_array_avx512_f32(const float *x, float *y, size_t n, float b,
                             const fc_activation *act)
{
    const __m512 vb = _mm512_set1_ps(b);
    switch (act ? act->kind : FC_ACT_IDENTITY) {
    LOOP16(FC_ACT_SIGMOID)
    LOOP16(FC_ACT_SILU)
    default:
        fc_act_array_avx2_f32(x, y, n, b, act);
        break;
    }
}

#else /* not x86-64: never called, defined for the linker */

void fc_act_array_avx512_f32(const float *x, float *y, size_t n, float b,
                             const fc_activation *act)
{
    fc_act_array_portable_f32(x, y, n, b, act);
}
#endif

void fc_act_array_avx512_f64(const double *x, double *y, size_t n, double b,
                             const fc_activation *act)
{
    fc_act_array_avx2_f64(x, y, n, b, act);
}
