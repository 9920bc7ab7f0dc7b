/*
 * Vector activations for AVX2 kernels: 8 floats / 4 doubles at a time.
 *
 * Include only from *_avx2.c translation units (compiled with -mavx2 -mfma).
 * fc_act8_f32/fc_act4_f64 give the results of the scalar activations in
 * activation_impl.h to within a few ulp, with the same NaN, infinity and
 * signed-zero behaviour, and keep denormal results (no flush to zero).
 *
 * float32: every kind is vectorised.  exp/expm1 use a Cody-Waite reduction
 * x = n ln2 + r, |r| <= ln2/2, and the degree-7 Taylor polynomial of expm1(r)
 * (truncation < 0.3 ulp); tanh(x) = -t / (t + 2) with t = expm1(-2|x|), which
 * has no cancellation anywhere; log1p(u) = log(1 + u) + correction, with log
 * through the atanh series; erf is a least-squares (near-minimax) fit of
 * erf(z)/z in z^2 on [0, 0.92] and of erfc(z) exp(z^2) in z on [0.92, 3.92]
 * (coefficients fitted for this file, absolute error < 1e-9).  Operation order
 * around the transcendental functions follows the scalar code, so that the
 * roundings outside them are the same.
 *
 * float64: the piecewise-linear kinds are vectorised, the transcendental ones
 * go through the scalar libm code, one element at a time (exact agreement).
 */
#ifndef FASTCONV_ACTIVATION_AVX2_H
#define FASTCONV_ACTIVATION_AVX2_H

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#include <math.h>

#include "fastconv.h"

#define FC_V8(c) _mm256_set1_ps((float)(c))

/* |x| and copysign(|m|, x) by the sign bit. */
static inline __m256 fc_v8_abs(__m256 x) { return _mm256_andnot_ps(FC_V8(-0.0f), x); }
static inline __m256 fc_v8_copysign(__m256 mag, __m256 sgn)
{
    const __m256 s = FC_V8(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(s, mag), _mm256_and_ps(s, sgn));
}

/* r and n with x = n ln2 + r, |r| <= ~ln2/2; p = expm1(r). */
static inline __m256 fc_v8_expm1_red(__m256 x, __m256 *n_out)
{
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, FC_V8(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, FC_V8(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, FC_V8(1.42860682030941723e-6f), r);
    __m256 p = FC_V8(1.0 / 5040);
    p = _mm256_fmadd_ps(p, r, FC_V8(1.0 / 720));
    p = _mm256_fmadd_ps(p, r, FC_V8(1.0 / 120));
    p = _mm256_fmadd_ps(p, r, FC_V8(1.0 / 24));
    p = _mm256_fmadd_ps(p, r, FC_V8(1.0 / 6));
    p = _mm256_fmadd_ps(p, r, FC_V8(0.5));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r);
    *n_out = n;
    return p;
}

/* 2^n for integral float n in [-126, 127]. */
static inline __m256 fc_v8_pow2i(__m256 n)
{
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}

/* exp(x): overflow to +inf, gradual underflow through the denormals, NaN kept. */
static inline __m256 fc_v8_exp(__m256 x)
{
    x = _mm256_min_ps(FC_V8(89.0f), x);   /* min/max(const, x) keep a NaN x */
    x = _mm256_max_ps(FC_V8(-104.0f), x);
    __m256 n;
    const __m256 p = fc_v8_expm1_red(x, &n);
    const __m256 e = _mm256_add_ps(p, FC_V8(1.0f));
    /* n in [-150, 128]: scale in two exact steps so that only the last rounds. */
    const __m256 n1 = _mm256_round_ps(_mm256_mul_ps(n, FC_V8(0.5f)),
                                      _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    const __m256 n2 = _mm256_sub_ps(n, n1);
    return _mm256_mul_ps(_mm256_mul_ps(e, fc_v8_pow2i(n1)), fc_v8_pow2i(n2));
}

/* expm1(x) = 2^n expm1(r) + 2^n - 1, one rounding through the fma; expm1(-0) = -0. */
static inline __m256 fc_v8_expm1(__m256 x)
{
    __m256 xc = _mm256_min_ps(FC_V8(89.0f), x);
    xc = _mm256_max_ps(FC_V8(-20.0f), xc);   /* below -17.4 expm1 is -1 in float */
    __m256 n;
    const __m256 p = fc_v8_expm1_red(xc, &n);
    const __m256 s = fc_v8_pow2i(_mm256_sub_ps(n, FC_V8(1.0f)));   /* 2^(n-1) */
    const __m256 y = _mm256_mul_ps(_mm256_fmadd_ps(s, p, _mm256_sub_ps(s, FC_V8(0.5f))),
                                   FC_V8(2.0f));
    /* |x| < 1e-8: expm1(x) rounds to x; this keeps -0 and the denormals exact. */
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(fc_v8_abs(x), FC_V8(1e-8f), _CMP_LT_OQ));
}

/* fc_v8_exp_nonpos (exp(y) for y <= 0) and fc_v8_sigmoid, from the code
 * shared with the AVX-512 pass (activation_vexp_impl.h). */
#define VF __m256
#define VM __m256
#define VNAME(name) fc_v8_##name
#define VSET1(c) FC_V8(c)
#define VADD _mm256_add_ps
#define VSUB _mm256_sub_ps
#define VMUL _mm256_mul_ps
#define VDIV _mm256_div_ps
#define VMAX _mm256_max_ps
#define VFMA _mm256_fmadd_ps
#define VFNMA _mm256_fnmadd_ps
#define VNEG_ABS(x) _mm256_or_ps((x), FC_V8(-0.0f))
#define VPOW2_BITS(t, k) _mm256_castsi256_ps(_mm256_add_epi32( \
    _mm256_slli_epi32(_mm256_castps_si256(t), 23), _mm256_set1_epi32(k)))
#define VCMP _mm256_cmp_ps
#define VKEEP(m, v) _mm256_and_ps((v), (m))
#define VSET_WHERE(v, m, w) _mm256_blendv_ps((v), (w), (m))
#include "activation/activation_vexp_impl.h"
#undef VF
#undef VM
#undef VNAME
#undef VSET1
#undef VADD
#undef VSUB
#undef VMUL
#undef VDIV
#undef VMAX
#undef VFMA
#undef VFNMA
#undef VNEG_ABS
#undef VPOW2_BITS
#undef VCMP
#undef VKEEP
#undef VSET_WHERE

/* tanh through t = expm1(-2|x|): tanh|x| = -t / (t + 2). */
static inline __m256 fc_v8_tanh(__m256 x)
{
    const __m256 t = fc_v8_expm1(_mm256_mul_ps(fc_v8_abs(x), FC_V8(-2.0f)));
    const __m256 m = _mm256_div_ps(_mm256_xor_ps(t, FC_V8(-0.0f)), _mm256_add_ps(t, FC_V8(2.0f)));
    return fc_v8_copysign(m, x);
}

/* log(w) for w >= 1 (finite or +inf), NaN kept. */
static inline __m256 fc_v8_log_ge1(__m256 w)
{
    const __m256i wi = _mm256_castps_si256(w);
    /* Split w = 2^k m with m in [sqrt(1/2), sqrt(2)). */
    const __m256i off = _mm256_set1_epi32(0x3f3504f3);   /* bits of sqrt(1/2) */
    const __m256i k = _mm256_srai_epi32(_mm256_sub_epi32(wi, off), 23);
    const __m256 m = _mm256_castsi256_ps(_mm256_sub_epi32(wi, _mm256_slli_epi32(k, 23)));
    const __m256 kf = _mm256_cvtepi32_ps(k);
    /* log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716. */
    const __m256 f = _mm256_sub_ps(m, FC_V8(1.0f));
    const __m256 s = _mm256_div_ps(f, _mm256_add_ps(m, FC_V8(1.0f)));
    const __m256 s2 = _mm256_mul_ps(s, s);
    __m256 q = FC_V8(2.0 / 11);
    q = _mm256_fmadd_ps(q, s2, FC_V8(2.0 / 9));
    q = _mm256_fmadd_ps(q, s2, FC_V8(2.0 / 7));
    q = _mm256_fmadd_ps(q, s2, FC_V8(2.0 / 5));
    q = _mm256_fmadd_ps(q, s2, FC_V8(2.0 / 3));
    q = _mm256_mul_ps(_mm256_mul_ps(q, s2), s);                 /* 2 atanh(s) - 2s */
    /* 2s = f - s f, computed as f - s*f without cancellation trouble. */
    const __m256 two_s = _mm256_fnmadd_ps(s, f, f);
    __m256 r = _mm256_fmadd_ps(kf, FC_V8(1.42860682030941723e-6f), q);
    r = _mm256_add_ps(r, two_s);
    r = _mm256_fmadd_ps(kf, FC_V8(0.693145751953125f), r);
    /* +inf and NaN come back as themselves. */
    const __m256 special = _mm256_cmp_ps(w, FC_V8(INFINITY), _CMP_NLT_UQ);
    return _mm256_blendv_ps(r, w, special);
}

/* log1p(u) for u >= 0: log(w) + (u - (w - 1)) / w with w = 1 + u rounded. */
static inline __m256 fc_v8_log1p_pos(__m256 u)
{
    const __m256 w = _mm256_add_ps(u, FC_V8(1.0f));
    const __m256 c = _mm256_div_ps(_mm256_sub_ps(u, _mm256_sub_ps(w, FC_V8(1.0f))), w);
    const __m256 r = _mm256_add_ps(fc_v8_log_ge1(w), c);
    /* The correction is NaN for u = +inf; log1p(inf) = inf. */
    return _mm256_blendv_ps(r, u, _mm256_cmp_ps(u, FC_V8(INFINITY), _CMP_EQ_OQ));
}

/* erf(z), |error| < 1 ulp + 1e-9. */
static inline __m256 fc_v8_erf(__m256 z)
{
    const __m256 a = _mm256_min_ps(FC_V8(3.92f), fc_v8_abs(z));   /* NaN kept */
    /* |z| < 0.921875: z P(z^2). */
    const __m256 a2 = _mm256_mul_ps(a, a);
    __m256 p = FC_V8(8.409586389980034e-05);
    p = _mm256_fmadd_ps(p, a2, FC_V8(-0.0008153378735517097));
    p = _mm256_fmadd_ps(p, a2, FC_V8(0.005202132773487166));
    p = _mm256_fmadd_ps(p, a2, FC_V8(-0.026859935050887053));
    p = _mm256_fmadd_ps(p, a2, FC_V8(0.11283707879068153));
    p = _mm256_fmadd_ps(p, a2, FC_V8(-0.3761263488599853));
    p = _mm256_fmadd_ps(p, a2, FC_V8(1.1283791668859406));
    const __m256 small = _mm256_mul_ps(p, a);
    /* Otherwise 1 - exp(-z^2) g(z), g = erfc exp(z^2) fitted in t = z - 2.4609375;
     * exp(-(hi + lo)) = exp(-hi) (1 - lo) with hi + lo = z^2 exactly. */
    const __m256 t = _mm256_sub_ps(a, FC_V8(2.4609375f));
    __m256 g = FC_V8(-3.390931755684091e-05);
    g = _mm256_fmadd_ps(g, t, FC_V8(-7.805540046819598e-05));
    g = _mm256_fmadd_ps(g, t, FC_V8(-0.00017235747094028947));
    g = _mm256_fmadd_ps(g, t, FC_V8(0.0002343847329977876));
    g = _mm256_fmadd_ps(g, t, FC_V8(-0.0006739543702624287));
    g = _mm256_fmadd_ps(g, t, FC_V8(0.0026933006472275576));
    g = _mm256_fmadd_ps(g, t, FC_V8(-0.008393051866466043));
    g = _mm256_fmadd_ps(g, t, FC_V8(0.025887261417720873));
    g = _mm256_fmadd_ps(g, t, FC_V8(-0.07633594122094904));
    g = _mm256_fmadd_ps(g, t, FC_V8(0.21374901926694778));
    const __m256 lo = _mm256_fmsub_ps(a, a, a2);
    const __m256 e = fc_v8_exp(_mm256_xor_ps(a2, FC_V8(-0.0f)));
    const __m256 ec = _mm256_fnmadd_ps(e, lo, e);
    const __m256 big = _mm256_fnmadd_ps(ec, g, FC_V8(1.0f));
    const __m256 r = _mm256_blendv_ps(small, big, _mm256_cmp_ps(a, FC_V8(0.921875f), _CMP_GE_OQ));
    return fc_v8_copysign(r, z);
}

static inline __m256 fc_v8_relu6(__m256 x)
{
    const __m256 zero = _mm256_setzero_ps(), six = FC_V8(6.0f);
    x = _mm256_blendv_ps(x, six, _mm256_cmp_ps(x, six, _CMP_GT_OQ));
    return _mm256_blendv_ps(x, zero, _mm256_cmp_ps(x, zero, _CMP_LT_OQ));
}

static inline __m256 fc_v8_softplus(__m256 x, __m256 beta, __m256 threshold)
{
    const __m256 bx = _mm256_mul_ps(x, beta);
    const __m256 r = _mm256_div_ps(fc_v8_log1p_pos(fc_v8_exp(bx)), beta);
    return _mm256_blendv_ps(r, x, _mm256_cmp_ps(bx, threshold, _CMP_GT_OQ));
}

/* One vector of a given kind; with a constant kind the switch folds away. */
static inline __m256 fc_act8_kind_f32(int kind, __m256 x, float p0, float p1)
{
    const __m256 zero = _mm256_setzero_ps(), one = FC_V8(1.0f);
    switch (kind) {
    case FC_ACT_RELU: /* x < 0 ? 0 : x, NaN and -0.0 kept */
        return _mm256_andnot_ps(_mm256_cmp_ps(x, zero, _CMP_LT_OQ), x);
    case FC_ACT_RELU6:
        return fc_v8_relu6(x);
    case FC_ACT_LEAKY_RELU:
        return _mm256_blendv_ps(_mm256_mul_ps(x, _mm256_set1_ps(p0)), x,
                                _mm256_cmp_ps(x, zero, _CMP_GT_OQ));
    case FC_ACT_ELU:
        return _mm256_blendv_ps(_mm256_mul_ps(_mm256_set1_ps(p0), fc_v8_expm1(x)), x,
                                _mm256_cmp_ps(x, zero, _CMP_GT_OQ));
    case FC_ACT_SELU: {
        const __m256 neg = _mm256_mul_ps(FC_V8(1.6732632423543772848170429916717f), fc_v8_expm1(x));
        return _mm256_mul_ps(FC_V8(1.0507009873554804934193349852946f),
                             _mm256_blendv_ps(neg, x, _mm256_cmp_ps(x, zero, _CMP_GT_OQ)));
    }
    case FC_ACT_SIGMOID:
        return fc_v8_sigmoid(x);
    case FC_ACT_HARDSIGMOID:
        return _mm256_div_ps(fc_v8_relu6(_mm256_add_ps(x, FC_V8(3.0f))), FC_V8(6.0f));
    case FC_ACT_TANH:
        return fc_v8_tanh(x);
    case FC_ACT_SOFTPLUS:
        return fc_v8_softplus(x, _mm256_set1_ps(p0), _mm256_set1_ps(p1));
    case FC_ACT_SOFTSIGN:
        return _mm256_div_ps(x, _mm256_add_ps(one, fc_v8_abs(x)));
    case FC_ACT_SILU:
        return _mm256_mul_ps(x, fc_v8_sigmoid(x));
    case FC_ACT_HARDSWISH:
        return _mm256_div_ps(_mm256_mul_ps(x, fc_v8_relu6(_mm256_add_ps(x, FC_V8(3.0f)))),
                             FC_V8(6.0f));
    case FC_ACT_GELU: {
        const __m256 e = fc_v8_erf(_mm256_mul_ps(x, FC_V8(0.70710678118654752440f)));
        return _mm256_mul_ps(_mm256_mul_ps(FC_V8(0.5f), x), _mm256_add_ps(one, e));
    }
    case FC_ACT_GELU_TANH: {
        /* (T)0.044715 * x * x * x, x + that, k * that: the scalar order, no fma. */
        __m256 c = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(FC_V8(0.044715f), x), x), x);
        c = _mm256_mul_ps(FC_V8(0.79788456080286535588f), _mm256_add_ps(x, c));
        return _mm256_mul_ps(_mm256_mul_ps(FC_V8(0.5f), x), _mm256_add_ps(one, fc_v8_tanh(c)));
    }
    case FC_ACT_MISH: {
        /* tanh(log1p(u)) = u (u + 2) / (u (u + 2) + 2), u = e^x; x > 20 gives x. */
        const __m256 u = fc_v8_exp(x);
        const __m256 q = _mm256_mul_ps(u, _mm256_add_ps(u, FC_V8(2.0f)));
        const __m256 r = _mm256_mul_ps(x, _mm256_div_ps(q, _mm256_add_ps(q, FC_V8(2.0f))));
        return _mm256_blendv_ps(r, x, _mm256_cmp_ps(x, FC_V8(20.0f), _CMP_GT_OQ));
    }
    default:
        return x;
    }
}

static inline __m256 fc_act8_f32(__m256 x, const fc_activation *a)
{
    return fc_act8_kind_f32(a->kind, x, (float)a->p0, (float)a->p1);
}

/* True for the kinds fc_act4_kind_f64 computes in vector registers. */
static inline int fc_act4_is_vector_kind(int kind)
{
    return kind == FC_ACT_IDENTITY || kind == FC_ACT_RELU || kind == FC_ACT_RELU6 ||
           kind == FC_ACT_LEAKY_RELU || kind == FC_ACT_HARDSIGMOID ||
           kind == FC_ACT_SOFTSIGN || kind == FC_ACT_HARDSWISH;
}

static inline __m256d fc_v4_relu6(__m256d x)
{
    const __m256d zero = _mm256_setzero_pd(), six = _mm256_set1_pd(6.0);
    x = _mm256_blendv_pd(x, six, _mm256_cmp_pd(x, six, _CMP_GT_OQ));
    return _mm256_blendv_pd(x, zero, _mm256_cmp_pd(x, zero, _CMP_LT_OQ));
}

static inline __m256d fc_act4_kind_f64(int kind, __m256d x, double p0, double p1)
{
    const __m256d zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0);
    (void)p1;
    switch (kind) {
    case FC_ACT_IDENTITY:
        return x;
    case FC_ACT_RELU:
        return _mm256_andnot_pd(_mm256_cmp_pd(x, zero, _CMP_LT_OQ), x);
    case FC_ACT_RELU6:
        return fc_v4_relu6(x);
    case FC_ACT_LEAKY_RELU:
        return _mm256_blendv_pd(_mm256_mul_pd(x, _mm256_set1_pd(p0)), x,
                                _mm256_cmp_pd(x, zero, _CMP_GT_OQ));
    case FC_ACT_HARDSIGMOID:
        return _mm256_div_pd(fc_v4_relu6(_mm256_add_pd(x, _mm256_set1_pd(3.0))),
                             _mm256_set1_pd(6.0));
    case FC_ACT_SOFTSIGN:
        return _mm256_div_pd(x, _mm256_add_pd(one, _mm256_andnot_pd(_mm256_set1_pd(-0.0), x)));
    case FC_ACT_HARDSWISH:
        return _mm256_div_pd(_mm256_mul_pd(x, fc_v4_relu6(_mm256_add_pd(x, _mm256_set1_pd(3.0)))),
                             _mm256_set1_pd(6.0));
    default: {
        /* Transcendental kinds: the scalar libm code, for float64 accuracy. */
        double buf[4];
        fc_activation a = {kind, p0, p1};
        _mm256_storeu_pd(buf, x);
        fc_activate_serial_f64(buf, buf, 4, &a);
        return _mm256_loadu_pd(buf);
    }
    }
}

static inline __m256d fc_act4_f64(__m256d x, const fc_activation *a)
{
    return fc_act4_kind_f64(a->kind, x, a->p0, a->p1);
}

#undef FC_V8

/* The activation over a register tile that a kernel has spilled to memory,
 * once per tile and out of line (so the call costs the FMA loop no registers).
 * float32 hoists the kind switch out of the loop: each case is a straight run
 * of vector code, as in the standalone pass. */
#define FC_ACT8_TILE_CASE(K) \
    case K: for (int i = 0; i < n; ++i) r[i] = fc_act8_kind_f32(K, r[i], p0, p1); break;
static __attribute__((noinline, unused)) void fc_act8_tile_f32(__m256 *r, int n,
                                                               const fc_activation *a)
{
    const float p0 = (float)a->p0, p1 = (float)a->p1;
    switch (a->kind) {
    FC_ACT8_TILE_CASE(FC_ACT_RELU) FC_ACT8_TILE_CASE(FC_ACT_RELU6)
    FC_ACT8_TILE_CASE(FC_ACT_LEAKY_RELU) FC_ACT8_TILE_CASE(FC_ACT_ELU)
    FC_ACT8_TILE_CASE(FC_ACT_SELU) FC_ACT8_TILE_CASE(FC_ACT_SIGMOID)
    FC_ACT8_TILE_CASE(FC_ACT_HARDSIGMOID) FC_ACT8_TILE_CASE(FC_ACT_TANH)
    FC_ACT8_TILE_CASE(FC_ACT_SOFTPLUS) FC_ACT8_TILE_CASE(FC_ACT_SOFTSIGN)
    FC_ACT8_TILE_CASE(FC_ACT_SILU) FC_ACT8_TILE_CASE(FC_ACT_HARDSWISH)
    FC_ACT8_TILE_CASE(FC_ACT_GELU) FC_ACT8_TILE_CASE(FC_ACT_GELU_TANH)
    FC_ACT8_TILE_CASE(FC_ACT_MISH)
    default:
        for (int i = 0; i < n; ++i) r[i] = fc_act8_f32(r[i], a);
    }
}
#undef FC_ACT8_TILE_CASE

static __attribute__((noinline, unused)) void fc_act4_tile_f64(__m256d *r, int n,
                                                               const fc_activation *a)
{
    for (int i = 0; i < n; ++i) r[i] = fc_act4_f64(r[i], a);
}

#endif
#endif
