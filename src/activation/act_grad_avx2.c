/* The activation-derivative pass compiled with AVX2+FMA (see act_grad_impl.h);
 * chosen at run time by act_grad.c.  The piecewise-linear kinds vectorise as
 * the compiler finds them; float32 silu and sigmoid from z, whose scalar expf
 * would dominate the pass, get the vector sigmoid of activation_avx2.h.  On
 * other architectures the generic code is compiled without the flags (and
 * never chosen). */
#include <math.h>
#include <string.h>

#include "activation/act_grad_internal.h"
#include "fastconv.h"

#define T float
#define SFX avx2gen_f32
#define M(fn) fn##f
#include "activation/act_grad_impl.h"
#undef T
#undef SFX
#undef M

#define T double
#define SFX avx2_f64
#define M(fn) fn
#include "activation/act_grad_impl.h"
#undef T
#undef SFX
#undef M

#if defined(__x86_64__) || defined(_M_X64)
#include "activation/activation_avx2.h"

/* gz = g * f'(x) for silu / sigmoid on 8 floats: torch's formulas with the
 * vector sigmoid (a few ulp from the scalar one). */
static inline __m256 dact8_(int kind, __m256 g, __m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 s = fc_act8_kind_f32(FC_ACT_SIGMOID, x, 0.0f, 0.0f);
    const __m256 oms = _mm256_sub_ps(one, s);
    if (kind == FC_ACT_SIGMOID) return _mm256_mul_ps(_mm256_mul_ps(g, oms), s);
    return _mm256_mul_ps(_mm256_mul_ps(g, s), _mm256_fmadd_ps(x, oms, one));
}

static double vec_plane_(const float *g, const float *v, float *gz, int64_t len, int kind)
{
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= len; i += 8) {
        const __m256 r = dact8_(kind, _mm256_loadu_ps(g + i), _mm256_loadu_ps(v + i));
        _mm256_storeu_ps(gz + i, r);
        acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(r)));
        acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(r, 1)));
    }
    double lanes[8];
    _mm256_storeu_pd(lanes, acc0);
    _mm256_storeu_pd(lanes + 4, acc1);
    if (i < len) {   /* the tail through a zero-padded vector: the same formula */
        float bg[8] = {0}, bv[8] = {0}, br[8];
        memcpy(bg, g + i, (size_t)(len - i) * sizeof(float));
        memcpy(bv, v + i, (size_t)(len - i) * sizeof(float));
        _mm256_storeu_ps(br, dact8_(kind, _mm256_loadu_ps(bg), _mm256_loadu_ps(bv)));
        memcpy(gz + i, br, (size_t)(len - i) * sizeof(float));
        for (int64_t j = 0; j < len - i; ++j) lanes[0] += (double)br[j];
    }
    double s = 0;
    for (int l = 0; l < 8; ++l) s += lanes[l];
    return s;
}

double fc_act_grad_plane_avx2_f32(const float *g, const float *v, float *gz, int64_t len,
                                  int kind, int from_output, float p0, float p1)
{
    if (!from_output && (kind == FC_ACT_SILU || kind == FC_ACT_SIGMOID))
        return vec_plane_(g, v, gz, len, kind);
    return fc_act_grad_plane_avx2gen_f32(g, v, gz, len, kind, from_output, p0, p1);
}
#else
double fc_act_grad_plane_avx2_f32(const float *g, const float *v, float *gz, int64_t len,
                                  int kind, int from_output, float p0, float p1)
{
    return fc_act_grad_plane_avx2gen_f32(g, v, gz, len, kind, from_output, p0, p1);
}
#endif
