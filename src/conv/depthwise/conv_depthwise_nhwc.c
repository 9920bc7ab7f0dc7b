/*
 * The channels-last depthwise convolution (see conv_depthwise_nhwc.h): which
 * calls it takes, the repacking of the weights, the choice of the kernel set
 * (fc_isa_variant(FC_FAM_DW_NHWC), dispatch.c: AVX-512, AVX2+FMA or portable), and the
 * portable kernels (baseline code, any architecture: GCC/Clang vector
 * extensions of 16 bytes, which become SSE2 or NEON; one element at a time
 * with other compilers).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/conv_common.h"
#include "conv/depthwise/conv_depthwise_nhwc.h"
#include "core/conv_kern.h"
#include "fastconv.h"

int fc_dw_nhwc_wanted(const fc_conv_desc *d, const int64_t *xs, const fc_activation *pre,
                      size_t elem)
{
    if (pre && pre->kind != FC_ACT_IDENTITY && pre->kind != FC_ACT_RELU) return 0;
    /* fewer channels than one 16-byte vector (float32 c_in 2, 3) would run one
     * lane at a time: 3x slower than the NCHW kernel on transposed copies */
    return xs && xs[1] == 1 && d->groups >= 2 && d->c_in * (int64_t)elem >= 16 && d->groups == d->c_in && d->c_out == d->c_in
           && d->kh > 0 && d->kw > 0 && d->stride_h > 0 && d->stride_w > 0 && d->dil_h > 0
           && d->dil_w > 0 && d->n >= 0 && d->h_out >= 0 && d->w_out >= 0;
}

/* The family's variant (dispatch.c), or a narrower one when the channels
 * do not fill its vectors (fewer channels than lanes take a slow scalar path
 * in each set): AVX-512 (64-byte vectors), AVX2 (32), portable (16).  The
 * AVX-512 and AVX2 kernels compute the same bits. */
static int dwn_run(const fc_dwn_args *a, size_t elem)
{
#if defined(__x86_64__) || defined(_M_X64)
    const int64_t C = a->d->c_in, lanes16 = (int64_t)(16 / elem);
    const int v = fc_isa_variant(FC_FAM_DW_NHWC);
    if (v == FC_ISA_AVX512 && C >= 4 * lanes16)
        return elem == 4 ? fc_dwn_avx512_f32(a) : fc_dwn_avx512_f64(a);
    if (v >= FC_ISA_AVX2 && C >= 2 * lanes16)
        return elem == 4 ? fc_dwn_avx2_f32(a) : fc_dwn_avx2_f64(a);
#endif
    return elem == 4 ? fc_dwn_portable_f32(a) : fc_dwn_portable_f64(a);
}

/* w[c][0][kh][kw] (strides ws) -> dst[(kh * KW + kw) * C + c], then the C
 * biases (zeros without); 1 when every weight is finite. */
#define DWN_ENTRY(T, SFX)                                                                    \
    static int dwn_repack_##SFX(const fc_conv_desc *d, const T *w, const int64_t *ws,        \
                                const T *bias, T *dst)                                       \
    {                                                                                        \
        const int64_t C = d->c_in, KW = d->kw, taps = d->kh * d->kw;                         \
        for (int64_t t = 0; t < taps; ++t) {                                                 \
            const T *src = w + (t / KW) * ws[2] + (t % KW) * ws[3];                          \
            T *o = dst + t * C;                                                              \
            if (ws[0] == 1) memcpy(o, src, (size_t)C * sizeof(T));                           \
            else for (int64_t c = 0; c < C; ++c) o[c] = src[c * ws[0]];                      \
        }                                                                                    \
        for (int64_t c = 0; c < C; ++c) dst[taps * C + c] = bias ? bias[c] : (T)0;           \
        return fc_all_finite_##SFX(dst, taps * C);                                           \
    }                                                                                        \
    int fc_conv2d_depthwise_nhwc_##SFX(const fc_conv_desc *d, const T *x, const int64_t *xs, \
                                       const T *w, const int64_t *ws, const T *bias, T *y,   \
                                       const fc_activation *post, const fc_activation *pre)  \
    {                                                                                        \
        static const fc_activation ident = {FC_ACT_IDENTITY, 0.0, 0.0};                      \
        if (!fc_dw_nhwc_wanted(d, xs, pre, sizeof(T))) return FC_EINVAL;                                \
        if (post && (post->kind < 0 || post->kind >= FC_ACT_COUNT)) return FC_EINVAL;        \
        if (d->n == 0 || d->h_out == 0 || d->w_out == 0) return FC_OK;                       \
        const int64_t C = d->c_in, taps = d->kh * d->kw;                                     \
        T *buf = (T *)fc_alloc64((size_t)((taps + 1) * C) * sizeof(T));                      \
        if (!buf) return FC_ENOMEM;                                                          \
        fc_dwn_args a;                                                                       \
        a.d = d;                                                                             \
        a.x = x;                                                                             \
        a.xsn = xs[0]; a.xsh = xs[2]; a.xsw = xs[3];                                         \
        a.finite = dwn_repack_##SFX(d, w, ws, bias, buf);                                    \
        a.w = buf;                                                                           \
        a.y = y;                                                                             \
        a.post = post ? post : &ident;                                                       \
        a.pre_relu = pre && pre->kind == FC_ACT_RELU;                                        \
        const int rc = dwn_run(&a, sizeof(T));                                               \
        fc_free64(buf);                                                                      \
        return rc;                                                                           \
    }
DWN_ENTRY(float, f32)
DWN_ENTRY(double, f64)
#undef DWN_ENTRY

/* ---- the portable kernels ------------------------------------------------ */

#define FC_DWN_ENTRY fc_dwn_portable_

#if (defined(__GNUC__) || defined(__clang__)) && !defined(FC_DWN_SCALAR)
typedef float dwn_vf32 __attribute__((vector_size(16)));
typedef int32_t dwn_vi32 __attribute__((vector_size(16)));
typedef double dwn_vf64 __attribute__((vector_size(16)));
typedef int64_t dwn_vi64 __attribute__((vector_size(16)));

static inline dwn_vf32 dwn_load_f32(const float *p) { dwn_vf32 v; memcpy(&v, p, sizeof v); return v; }
static inline void dwn_store_f32(float *p, dwn_vf32 v) { memcpy(p, &v, sizeof v); }
static inline dwn_vf64 dwn_load_f64(const double *p) { dwn_vf64 v; memcpy(&v, p, sizeof v); return v; }
static inline void dwn_store_f64(double *p, dwn_vf64 v) { memcpy(p, &v, sizeof v); }
/* x < 0 ? 0 : x (NaN and -0.0 kept); then x > 6 ? 6 : x for relu6 */
static inline dwn_vf32 dwn_relu_f32(dwn_vf32 x)
{
    const dwn_vi32 m = (dwn_vi32)(x < (dwn_vf32){0, 0, 0, 0});
    return (dwn_vf32)((dwn_vi32)x & ~m);
}
static inline dwn_vf32 dwn_relu6_f32(dwn_vf32 x)
{
    const dwn_vf32 six = {6, 6, 6, 6};
    const dwn_vi32 m = (dwn_vi32)(x > six);
    return dwn_relu_f32((dwn_vf32)(((dwn_vi32)x & ~m) | ((dwn_vi32)six & m)));
}
static inline dwn_vf64 dwn_relu_f64(dwn_vf64 x)
{
    const dwn_vi64 m = (dwn_vi64)(x < (dwn_vf64){0, 0});
    return (dwn_vf64)((dwn_vi64)x & ~m);
}
static inline dwn_vf64 dwn_relu6_f64(dwn_vf64 x)
{
    const dwn_vf64 six = {6, 6};
    const dwn_vi64 m = (dwn_vi64)(x > six);
    return dwn_relu_f64((dwn_vf64)(((dwn_vi64)x & ~m) | ((dwn_vi64)six & m)));
}

#define T float
#define SFX f32
#define V dwn_vf32
#define VL 4
#define VLOAD dwn_load_f32
#define VSTORE dwn_store_f32
#define VZERO() ((dwn_vf32){0, 0, 0, 0})
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VRELU(x, z) dwn_relu_f32(x)
#define VRELU6 dwn_relu6_f32
#include "conv/depthwise/conv_depthwise_nhwc_impl.h"
#undef T
#undef SFX
#undef V
#undef VL
#undef VLOAD
#undef VSTORE
#undef VZERO
#undef VFMA
#undef VRELU
#undef VRELU6

#define T double
#define SFX f64
#define V dwn_vf64
#define VL 2
#define VLOAD dwn_load_f64
#define VSTORE dwn_store_f64
#define VZERO() ((dwn_vf64){0, 0})
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VRELU(x, z) dwn_relu_f64(x)
#define VRELU6 dwn_relu6_f64
#include "conv/depthwise/conv_depthwise_nhwc_impl.h"
#undef T
#undef SFX
#undef V
#undef VL
#undef VLOAD
#undef VSTORE
#undef VZERO
#undef VFMA
#undef VRELU
#undef VRELU6

#else /* other compilers: one element per "vector" */

#define DWN_SCALAR_VOCAB(TT)                                                                 \
    static inline TT dwn_relu_##TT(TT x) { return x < (TT)0 ? (TT)0 : x; }                   \
    static inline TT dwn_relu6_##TT(TT x) { return dwn_relu_##TT(x > (TT)6 ? (TT)6 : x); }
DWN_SCALAR_VOCAB(float)
DWN_SCALAR_VOCAB(double)
#undef DWN_SCALAR_VOCAB

#define VL 1
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VZERO() ((V)0)
#define VFMA(a, b, c) ((a) * (b) + (c))

#define T float
#define SFX f32
#define V float
#define VRELU(x, z) dwn_relu_float(x)
#define VRELU6 dwn_relu6_float
#include "conv/depthwise/conv_depthwise_nhwc_impl.h"
#undef T
#undef SFX
#undef V
#undef VRELU
#undef VRELU6

#define T double
#define SFX f64
#define V double
#define VRELU(x, z) dwn_relu_double(x)
#define VRELU6 dwn_relu6_double
#include "conv/depthwise/conv_depthwise_nhwc_impl.h"
#undef T
#undef SFX
#undef V
#undef VRELU
#undef VRELU6

#undef VL
#undef VLOAD
#undef VSTORE
#undef VZERO
#undef VFMA
#endif

#undef FC_DWN_ENTRY
