/* One optimizer step over a variable (fastconv_grad.h): SGD (plain, momentum,
 * Nesterov) and Adam (AMSGrad too) in one pass over w, g and the state, with
 * the decoupled weight decay folded in, threaded over blocks.  The Python
 * optimizers did the same arithmetic as 4-11 NumPy operations per chunk,
 * crossing the Python threads' GIL for each: a tenth of a ResNet-18 training
 * step on 2 threads (benchmarks/NOTES.md, "optimizer step in C").
 *
 * Each value goes through the same float operations, in the same order, as
 * the NumPy reference in fastconv/optimizers.py (this file is compiled
 * without FMA and in ISO C mode, so nothing is contracted): the two give the
 * same bits, which tests/test_optimizers.py checks. */
#include <math.h>

#include "fastconv_grad.h"

/* Elements below which one thread does it all, and per work item. */
#define FC_OPT_PAR_MIN ((int64_t)1 << 16)
#define FC_OPT_BLOCK ((int64_t)1 << 13)

#define DEF_OPT(T, SFX, SQRT)                                                               \
static void opt_block_##SFX(const fc_opt_step *s, int64_t n, T *restrict w,                 \
                            const T *restrict g, T *restrict m, T *restrict v,              \
                            T *restrict vhat)                                               \
{                                                                                           \
    const T lr = (T)s->lr, mom = (T)s->momentum, decay = (T)s->decay;                      \
    if (decay != (T)1)                                                                      \
        for (int64_t i = 0; i < n; ++i)                                                     \
            w[i] = w[i] * decay;                                                            \
    if (s->kind == FC_OPT_SGD) {                                                            \
        if (m == NULL) {                                                                    \
            for (int64_t i = 0; i < n; ++i)                                                 \
                w[i] = w[i] - g[i] * lr;                                                    \
        } else if (s->nesterov) {                                                           \
            for (int64_t i = 0; i < n; ++i) {                                               \
                const T u = g[i] * lr, mi = m[i] * mom - u;                                 \
                m[i] = mi;                                                                  \
                w[i] = w[i] + (mi * mom - u);                                               \
            }                                                                               \
        } else {                                                                            \
            for (int64_t i = 0; i < n; ++i) {                                               \
                const T mi = m[i] * mom - g[i] * lr;                                        \
                m[i] = mi;                                                                  \
                w[i] = w[i] + mi;                                                           \
            }                                                                               \
        }                                                                                   \
        return;                                                                             \
    }                                                                                       \
    const T c1 = (T)s->beta_1c, c2 = (T)s->beta_2c, eps = (T)s->epsilon;                   \
    for (int64_t i = 0; i < n; ++i) {                                                       \
        const T gi = g[i];                                                                  \
        const T mi = m[i] + (gi - m[i]) * c1;                                               \
        T vi = v[i] + (gi * gi - v[i]) * c2;                                                \
        m[i] = mi;                                                                          \
        v[i] = vi;                                                                          \
        if (vhat) {   /* np.maximum: NaN wins */                                            \
            const T h = vhat[i];                                                            \
            vi = (h >= vi || h != h) ? h : vi;                                              \
            vhat[i] = vi;                                                                   \
        }                                                                                   \
        w[i] = w[i] - (mi * lr) / (SQRT(vi) + eps);                                         \
    }                                                                                       \
}                                                                                           \
                                                                                            \
void fc_opt_step_##SFX(const fc_opt_step *s, int64_t n, T *w, const T *g, T *m, T *v,       \
                       T *vhat)                                                             \
{                                                                                           \
    const int64_t nb = (n + FC_OPT_BLOCK - 1) / FC_OPT_BLOCK;                               \
    const int par = n >= FC_OPT_PAR_MIN;                                                    \
    (void)par;                                                                              \
    _Pragma("omp parallel for schedule(static) if (par)")                                   \
    for (int64_t b = 0; b < nb; ++b) {                                                      \
        const int64_t i0 = b * FC_OPT_BLOCK;                                                \
        const int64_t len = n - i0 < FC_OPT_BLOCK ? n - i0 : FC_OPT_BLOCK;                  \
        opt_block_##SFX(s, len, w + i0, g + i0, m ? m + i0 : NULL, v ? v + i0 : NULL,       \
                        vhat ? vhat + i0 : NULL);                                           \
    }                                                                                       \
}

DEF_OPT(float, f32, sqrtf)
DEF_OPT(double, f64, sqrt)
