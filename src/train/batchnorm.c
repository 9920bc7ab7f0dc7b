/* Batch normalisation in training mode (fastconv_grad.h): the batch
 * statistics, the normalised input and the output in three passes over x,
 * and the backward in two over (g, xhat), per channel, threaded over
 * channels.  The layers did this with ~8 NumPy passes each way, a tenth of
 * a ResNet-18 training step (benchmarks/NOTES.md, training step).
 *
 * The data is (outer, channels, inner): NCHW is (N, C, H*W), channels-last
 * (N*H*W, C, 1).  Sums are accumulated in double. */
#include <math.h>
#include <string.h>

#include "fastconv_grad.h"

/* Values below which one thread does it all. */
#define FC_BN_PAR_MIN ((int64_t)1 << 15)
/* Channels per work item for channels-last data (inner == 1). */
#define FC_BN_CBLK 64

/* Sums over n values with 8 double lanes (a dependency chain per lane that
 * the compiler vectorises; a single accumulator is one add per 4 cycles). */
#define DEF_BN_SUMS(T, SFX)                                                                 \
static inline void bn_sums_##SFX(const T *a, const T *b, int64_t n, T shift, double *s1,     \
                                 double *s2)                                                \
{                                                                                           \
    double l1[8] = {0}, l2[8] = {0};                                                        \
    int64_t i = 0;                                                                          \
    for (; i + 8 <= n; i += 8)                                                              \
        for (int l = 0; l < 8; ++l) {                                                       \
            const double u = (double)(a[i + l] - shift);                                    \
            l1[l] += u;                                                                     \
            l2[l] += b ? (double)(a[i + l] * b[i + l]) : u * u;                             \
        }                                                                                   \
    for (; i < n; ++i) {                                                                    \
        const double u = (double)(a[i] - shift);                                            \
        l1[0] += u;                                                                         \
        l2[0] += b ? (double)(a[i] * b[i]) : u * u;                                         \
    }                                                                                       \
    for (int l = 0; l < 8; ++l) {                                                           \
        *s1 += l1[l];                                                                       \
        *s2 += l2[l];                                                                       \
    }                                                                                       \
}
DEF_BN_SUMS(float, f32)
DEF_BN_SUMS(double, f64)

#define DEF_BN(T, SFX)                                                                      \
void fc_bn_train_forward_##SFX(const T *x, int64_t outer, int64_t channels, int64_t inner,    \
                              const T *gamma, const T *beta, double eps, T *xhat, T *y,      \
                              T *mean, T *var, T *inv_std)                                   \
{                                                                                           \
    const double cnt = (double)(outer * inner);                                             \
    const int par = outer * channels * inner > FC_BN_PAR_MIN;                               \
    (void)par;                                                                              \
    if (inner > 1 || channels == 1) {                                                       \
        _Pragma("omp parallel for schedule(static) if (par)")                               \
        for (int64_t c = 0; c < channels; ++c) {                                            \
            double s = 0, q = 0, s0 = 0, q0 = 0;                                            \
            for (int64_t n = 0; n < outer; ++n)                                             \
                bn_sums_##SFX(x + (n * channels + c) * inner, NULL, inner, (T)0, &s, &q0);  \
            const T m = (T)(s / cnt);                                                       \
            for (int64_t n = 0; n < outer; ++n)                                             \
                bn_sums_##SFX(x + (n * channels + c) * inner, NULL, inner, m, &s0, &q);     \
            const T v = (T)(q / cnt);                                                       \
            const T is = (T)(1.0 / sqrt((double)(v + (T)eps)));                             \
            const T ga = gamma ? gamma[c] : (T)1, be = beta ? beta[c] : (T)0;               \
            for (int64_t n = 0; n < outer; ++n) {                                           \
                const int64_t off = (n * channels + c) * inner;                             \
                for (int64_t i = 0; i < inner; ++i) {                                       \
                    const T h = (x[off + i] - m) * is;                                      \
                    xhat[off + i] = h;                                                      \
                    y[off + i] = h * ga + be;                                               \
                }                                                                           \
            }                                                                               \
            mean[c] = m;                                                                    \
            var[c] = v;                                                                     \
            inv_std[c] = is;                                                                \
        }                                                                                   \
        return;                                                                             \
    }                                                                                       \
    const int64_t ncb = (channels + FC_BN_CBLK - 1) / FC_BN_CBLK;                           \
    _Pragma("omp parallel for schedule(static) if (par && ncb > 1)")                        \
    for (int64_t cb = 0; cb < ncb; ++cb) {                                                  \
        const int64_t c0 = cb * FC_BN_CBLK;                                                 \
        const int64_t nc = channels - c0 < FC_BN_CBLK ? channels - c0 : FC_BN_CBLK;         \
        double s[FC_BN_CBLK], q[FC_BN_CBLK];                                                \
        T m[FC_BN_CBLK], is[FC_BN_CBLK], ga[FC_BN_CBLK], be[FC_BN_CBLK];                    \
        for (int64_t j = 0; j < nc; ++j) s[j] = q[j] = 0;                                   \
        for (int64_t n = 0; n < outer; ++n)                                                 \
            for (int64_t j = 0; j < nc; ++j) s[j] += (double)x[n * channels + c0 + j];      \
        for (int64_t j = 0; j < nc; ++j) m[j] = (T)(s[j] / cnt);                            \
        for (int64_t n = 0; n < outer; ++n)                                                 \
            for (int64_t j = 0; j < nc; ++j) {                                              \
                const T d = x[n * channels + c0 + j] - m[j];                                \
                q[j] += (double)(d * d);                                                    \
            }                                                                               \
        for (int64_t j = 0; j < nc; ++j) {                                                  \
            const T v = (T)(q[j] / cnt);                                                    \
            is[j] = (T)(1.0 / sqrt((double)(v + (T)eps)));                                  \
            ga[j] = gamma ? gamma[c0 + j] : (T)1;                                           \
            be[j] = beta ? beta[c0 + j] : (T)0;                                             \
            mean[c0 + j] = m[j];                                                            \
            var[c0 + j] = v;                                                                \
            inv_std[c0 + j] = is[j];                                                        \
        }                                                                                   \
        for (int64_t n = 0; n < outer; ++n)                                                 \
            for (int64_t j = 0; j < nc; ++j) {                                              \
                const int64_t off = n * channels + c0 + j;                                  \
                const T h = (x[off] - m[j]) * is[j];                                        \
                xhat[off] = h;                                                              \
                y[off] = h * ga[j] + be[j];                                                 \
            }                                                                               \
    }                                                                                       \
}                                                                                           \
                                                                                            \
void fc_bn_train_backward_##SFX(const T *g, const T *xhat, int64_t outer, int64_t channels,   \
                               int64_t inner, const T *gamma, const T *inv_std, T *gbeta,    \
                               T *ggamma, T *dx)                                             \
{                                                                                           \
    const double cnt = (double)(outer * inner);                                             \
    const int par = outer * channels * inner > FC_BN_PAR_MIN;                               \
    (void)par;                                                                              \
    if (inner > 1 || channels == 1) {                                                       \
        _Pragma("omp parallel for schedule(static) if (par)")                               \
        for (int64_t c = 0; c < channels; ++c) {                                            \
            double sb = 0, sg = 0;                                                          \
            for (int64_t n = 0; n < outer; ++n) {                                           \
                const int64_t off = (n * channels + c) * inner;                             \
                bn_sums_##SFX(g + off, xhat + off, inner, (T)0, &sb, &sg);                  \
            }                                                                               \
            gbeta[c] = (T)sb;                                                               \
            ggamma[c] = (T)sg;                                                              \
            if (!dx) continue;                                                              \
            const T mb = (T)(sb / cnt), mg = (T)(sg / cnt);                                 \
            const T k = (gamma ? gamma[c] : (T)1) * inv_std[c];                             \
            for (int64_t n = 0; n < outer; ++n) {                                           \
                const int64_t off = (n * channels + c) * inner;                             \
                for (int64_t i = 0; i < inner; ++i)                                         \
                    dx[off + i] = (g[off + i] - (xhat[off + i] * mg + mb)) * k;             \
            }                                                                               \
        }                                                                                   \
        return;                                                                             \
    }                                                                                       \
    const int64_t ncb = (channels + FC_BN_CBLK - 1) / FC_BN_CBLK;                           \
    _Pragma("omp parallel for schedule(static) if (par && ncb > 1)")                        \
    for (int64_t cb = 0; cb < ncb; ++cb) {                                                  \
        const int64_t c0 = cb * FC_BN_CBLK;                                                 \
        const int64_t nc = channels - c0 < FC_BN_CBLK ? channels - c0 : FC_BN_CBLK;         \
        double sb[FC_BN_CBLK], sg[FC_BN_CBLK];                                              \
        T mb[FC_BN_CBLK], mg[FC_BN_CBLK], k[FC_BN_CBLK];                                    \
        for (int64_t j = 0; j < nc; ++j) sb[j] = sg[j] = 0;                                 \
        for (int64_t n = 0; n < outer; ++n)                                                 \
            for (int64_t j = 0; j < nc; ++j) {                                              \
                const int64_t off = n * channels + c0 + j;                                  \
                sb[j] += (double)g[off];                                                    \
                sg[j] += (double)(g[off] * xhat[off]);                                      \
            }                                                                               \
        for (int64_t j = 0; j < nc; ++j) {                                                  \
            gbeta[c0 + j] = (T)sb[j];                                                       \
            ggamma[c0 + j] = (T)sg[j];                                                      \
            mb[j] = (T)(sb[j] / cnt);                                                       \
            mg[j] = (T)(sg[j] / cnt);                                                       \
            k[j] = (gamma ? gamma[c0 + j] : (T)1) * inv_std[c0 + j];                        \
        }                                                                                   \
        if (!dx) continue;                                                                  \
        for (int64_t n = 0; n < outer; ++n)                                                 \
            for (int64_t j = 0; j < nc; ++j) {                                              \
                const int64_t off = n * channels + c0 + j;                                  \
                dx[off] = (g[off] - (xhat[off] * mg[j] + mb[j])) * k[j];                    \
            }                                                                               \
    }                                                                                       \
}

DEF_BN(float, f32)
DEF_BN(double, f64)
