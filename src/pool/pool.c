/* 2-D max / average pooling over NCHW planes or NHWC arrays; see pool.h for the contract. */
#include "pool/pool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastconv.h"
#include "pool/pool_internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

typedef fc_pool_tap_range tap_range;

/* Taps t in [0, k) with 0 <= start + t*dil < lim. */
static void taps_inside(int64_t start, int64_t dil, int64_t k, int64_t lim,
                        int64_t *lo, int64_t *hi)
{
    int64_t a = 0, b = k;
    if (start < 0)
        a = (-start + dil - 1) / dil;
    if (start + (k - 1) * dil >= lim)
        b = (lim - 1 - start) < 0 ? 0 : (lim - 1 - start) / dil + 1;
    if (b < a)
        b = a;
    *lo = a;
    *hi = b;
}

/* One axis of the window geometry: out entries, input extent `size`. */
static void axis_table(tap_range *t, int64_t out, int64_t size, int64_t k,
                       int64_t stride, int64_t dil, int64_t pad_lo, int64_t pad_hi)
{
    for (int64_t i = 0; i < out; i++) {
        int64_t start = i * stride - pad_lo;
        int64_t plo, phi;
        taps_inside(start, dil, k, size, &t[i].lo, &t[i].hi);
        taps_inside(start + pad_lo, dil, k, size + pad_lo + pad_hi, &plo, &phi);
        t[i].padded = phi - plo;
    }
}

/* The row and column tap tables of a call (rows: oh entries, then ow of the
 * columns), or NULL when out of memory; freed by the caller. */
static tap_range *pool_tables(const fc_pool_params *p)
{
    tap_range *rows = (tap_range *)malloc(sizeof(tap_range) * (size_t)(p->oh + p->ow + 1));
    if (!rows)
        return NULL;
    axis_table(rows, p->oh, p->h, p->kh, p->sh, p->dh, p->pad_top, p->pad_bottom);
    axis_table(rows + p->oh, p->ow, p->w, p->kw, p->sw, p->dw, p->pad_left, p->pad_right);
    return rows;
}

static int check_params(const void *x, const void *y, const fc_pool_params *p)
{
    if (!p || !x || !y)
        return FC_POOL_EINVAL;
    if (p->n < 0 || p->c < 0 || p->h < 1 || p->w < 1 || p->oh < 0 || p->ow < 0)
        return FC_POOL_EINVAL;
    if (p->kh < 1 || p->kw < 1 || p->sh < 1 || p->sw < 1 || p->dh < 1 || p->dw < 1)
        return FC_POOL_EINVAL;
    if (p->pad_top < 0 || p->pad_bottom < 0 || p->pad_left < 0 || p->pad_right < 0)
        return FC_POOL_EINVAL;
    if (p->mode != FC_POOL_MAX && p->mode != FC_POOL_AVG)
        return FC_POOL_EINVAL;
    return FC_POOL_OK;
}

/* The baseline max-pooling bodies. */
#define FC_MAXPOOL_ISA port
#include "pool/pool_max_impl.h"

/* The ISA decision of fastconv._core (dispatch.c, which this module does
 * not link: a copy of its state here would not follow fc_force_kernels),
 * bound by fastconv._pool when it is imported; NULL until then: portable. */
static int (*isa_variant)(int family);

void fc_pool_bind_isa(int (*variant)(int family)) { isa_variant = variant; }

int fc_pool_isa_variant(void)
{
    return isa_variant ? isa_variant(FC_FAM_POOL) : FC_ISA_PORTABLE;
}

/* The AVX2 bodies where they are the family's variant (on x86 only: the
 * level is portable elsewhere).  Max is exact: both give the same results,
 * the AVX2 ones 8 floats per step. */
static int use_avx2(void)
{
#if defined(__x86_64__) || defined(_M_X64)
    return fc_pool_isa_variant() == FC_ISA_AVX2;
#else
    return 0;
#endif
}


/* The same body for both dtypes; the average accumulates in double. */
#define FC_DEFINE_POOL2D(SUFFIX, T)                                                 \
int fc_pool2d_##SUFFIX(const T *x, T *y, const fc_pool_params *p)                   \
{                                                                                   \
    int rc = check_params(x, y, p);                                                 \
    if (rc != FC_POOL_OK)                                                           \
        return rc;                                                                  \
    const int64_t planes = p->n * p->c, h = p->h, w = p->w, oh = p->oh, ow = p->ow;  \
    if (planes == 0 || oh == 0 || ow == 0)                                          \
        return FC_POOL_OK;                                                          \
    tap_range *rows = pool_tables(p);                                               \
    if (!rows)                                                                      \
        return FC_POOL_ENOMEM;                                                      \
    tap_range *cols = rows + oh;                                                    \
    if (p->mode == FC_POOL_MAX) {                                                   \
        const int flat = p->sh == 1 && p->sw == 1;                                  \
        if (use_avx2())                                                             \
            rc = flat ? fc_maxpool_flat_avx2_##SUFFIX(x, y, p)                      \
                      : fc_maxpool_separable_avx2_##SUFFIX(x, y, p, rows);          \
        else                                                                        \
            rc = flat ? fc_maxpool_flat_port_##SUFFIX(x, y, p)                      \
                      : fc_maxpool_separable_port_##SUFFIX(x, y, p, rows);          \
        free(rows);                                                                 \
        return rc;                                                                  \
    }                                                                               \
    const int64_t sh = p->sh, sw = p->sw, dh = p->dh, dw = p->dw;                   \
    const int64_t pt = p->pad_top, pl = p->pad_left;                                \
    const int is_max = p->mode == FC_POOL_MAX, incl = p->count_include_pad != 0;    \
    const int64_t work = planes * oh * ow * p->kh * p->kw;                          \
    int64_t q;                                                                      \
    (void)work;                                                                     \
    _Pragma("omp parallel for schedule(static) if(work >= FC_POOL_PARALLEL_MIN)")   \
    for (q = 0; q < planes; q++) {                                                  \
        const T *xp = x + q * h * w;                                                \
        T *yp = y + q * oh * ow;                                                    \
        for (int64_t i = 0; i < oh; i++) {                                          \
            const tap_range ri = rows[i];                                           \
            const int64_t row0 = i * sh - pt;                                       \
            for (int64_t j = 0; j < ow; j++) {                                      \
                const tap_range cj = cols[j];                                       \
                const int64_t col0 = j * sw - pl;                                   \
                if (is_max) {                                                       \
                    T m = (T)-INFINITY;                                             \
                    int nan = 0;                                                    \
                    for (int64_t r = ri.lo; r < ri.hi; r++) {                       \
                        const T *xr = xp + (row0 + r * dh) * w;                     \
                        for (int64_t s = cj.lo; s < cj.hi; s++) {                   \
                            const T v = xr[col0 + s * dw];                          \
                            m = v > m ? v : m;                                      \
                            nan |= v != v;                                          \
                        }                                                           \
                    }                                                               \
                    yp[i * ow + j] = nan ? (T)NAN : m;                              \
                } else {                                                            \
                    double acc = 0.0;                                               \
                    for (int64_t r = ri.lo; r < ri.hi; r++) {                       \
                        const T *xr = xp + (row0 + r * dh) * w;                     \
                        for (int64_t s = cj.lo; s < cj.hi; s++)                     \
                            acc += (double)xr[col0 + s * dw];                       \
                    }                                                               \
                    const int64_t cnt = incl ? ri.padded * cj.padded                \
                                             : (ri.hi - ri.lo) * (cj.hi - cj.lo);   \
                    yp[i * ow + j] = cnt > 0 ? (T)(acc / (double)cnt) : (T)0;       \
                }                                                                   \
            }                                                                       \
        }                                                                           \
    }                                                                               \
    free(rows);                                                                     \
    return FC_POOL_OK;                                                              \
}

FC_DEFINE_POOL2D(f32, float)
FC_DEFINE_POOL2D(f64, double)

/* Channels per block of the channels-last bodies: the running maxima or sums
 * (and their taps, backward) of one output pixel live in these small arrays. */
#define FC_POOL_CBLOCK 64

/* The forward on (n, h, w, c) arrays: per output pixel, the window's channel
 * vectors reduced in the NCHW body's tap order (rows, then columns), so both
 * layouts give the same values; the channel loops run over contiguous memory
 * (the digits CNN's NHWC average pooling: 85 us through the NCHW body plus two
 * transposing copies, benchmarks/NOTES.md "small layers, session 10"). */
#define FC_DEFINE_POOL2D_NHWC(SUFFIX, T)                                            \
int fc_pool2d_nhwc_##SUFFIX(const T *x, T *y, const fc_pool_params *p)              \
{                                                                                   \
    int rc = check_params(x, y, p);                                                 \
    if (rc != FC_POOL_OK)                                                           \
        return rc;                                                                  \
    const int64_t n = p->n, c = p->c, h = p->h, w = p->w, oh = p->oh, ow = p->ow;   \
    if (n == 0 || c == 0 || oh == 0 || ow == 0)                                     \
        return FC_POOL_OK;                                                          \
    tap_range *rows = pool_tables(p);                                               \
    if (!rows)                                                                      \
        return FC_POOL_ENOMEM;                                                      \
    tap_range *cols = rows + oh;                                                    \
    const int64_t sh = p->sh, sw = p->sw, dh = p->dh, dw = p->dw;                   \
    const int64_t pt = p->pad_top, pl = p->pad_left;                                \
    const int is_max = p->mode == FC_POOL_MAX, incl = p->count_include_pad != 0;    \
    const int64_t work = n * c * oh * ow * p->kh * p->kw, tasks = n * oh;           \
    int64_t t;                                                                      \
    (void)work;                                                                     \
    _Pragma("omp parallel for schedule(static) if(work >= FC_POOL_PARALLEL_MIN)")   \
    for (t = 0; t < tasks; t++) {                                                   \
        const int64_t b = t / oh, i = t % oh;                                       \
        const tap_range ri = rows[i];                                               \
        const int64_t row0 = i * sh - pt;                                           \
        const T *xb = x + b * h * w * c;                                            \
        for (int64_t j = 0; j < ow; j++) {                                          \
            const tap_range cj = cols[j];                                           \
            const int64_t col0 = j * sw - pl;                                       \
            T *yv = y + (t * ow + j) * c;                                           \
            const int64_t cnt = incl ? ri.padded * cj.padded                        \
                                     : (ri.hi - ri.lo) * (cj.hi - cj.lo);           \
            for (int64_t c0 = 0; c0 < c; c0 += FC_POOL_CBLOCK) {                    \
                const int64_t nc = c - c0 < FC_POOL_CBLOCK ? c - c0 : FC_POOL_CBLOCK; \
                if (is_max) {                                                       \
                    T m[FC_POOL_CBLOCK];                                            \
                    unsigned char nan[FC_POOL_CBLOCK];                              \
                    for (int64_t k = 0; k < nc; k++) {                              \
                        m[k] = (T)-INFINITY;                                        \
                        nan[k] = 0;                                                 \
                    }                                                               \
                    for (int64_t r = ri.lo; r < ri.hi; r++)                         \
                        for (int64_t s = cj.lo; s < cj.hi; s++) {                   \
                            const T *xv = xb + ((row0 + r * dh) * w + col0 + s * dw) * c + c0; \
                            for (int64_t k = 0; k < nc; k++) {                      \
                                const T v = xv[k];                                  \
                                m[k] = v > m[k] ? v : m[k];                         \
                                nan[k] |= v != v;                                   \
                            }                                                       \
                        }                                                           \
                    for (int64_t k = 0; k < nc; k++)                                \
                        yv[c0 + k] = nan[k] ? (T)NAN : m[k];                        \
                } else {                                                            \
                    double acc[FC_POOL_CBLOCK];                                     \
                    for (int64_t k = 0; k < nc; k++)                                \
                        acc[k] = 0.0;                                               \
                    for (int64_t r = ri.lo; r < ri.hi; r++)                         \
                        for (int64_t s = cj.lo; s < cj.hi; s++) {                   \
                            const T *xv = xb + ((row0 + r * dh) * w + col0 + s * dw) * c + c0; \
                            for (int64_t k = 0; k < nc; k++)                        \
                                acc[k] += (double)xv[k];                            \
                        }                                                           \
                    for (int64_t k = 0; k < nc; k++)                                \
                        yv[c0 + k] = cnt > 0 ? (T)(acc[k] / (double)cnt) : (T)0;    \
                }                                                                   \
            }                                                                       \
        }                                                                           \
    }                                                                               \
    free(rows);                                                                     \
    return FC_POOL_OK;                                                              \
}

FC_DEFINE_POOL2D_NHWC(f32, float)
FC_DEFINE_POOL2D_NHWC(f64, double)

/* ---- backward ----------------------------------------------------------- */

/* NCHW: one plane at a time (planes never share gradient elements, so the
 * threads split them).  NHWC: one (image, channel block) at a time, the
 * channel loop innermost so that it runs over contiguous memory. */
#define FC_DEFINE_POOL2D_BACKWARD(SUFFIX, T)                                        \
int fc_pool2d_backward_##SUFFIX(const T *x, const T *gy, T *gx,                     \
                                const fc_pool_params *p, int channels_last)         \
{                                                                                   \
    int rc = check_params(gy, gx, p);                                               \
    if (rc != FC_POOL_OK)                                                           \
        return rc;                                                                  \
    if (p->mode == FC_POOL_MAX && !x)                                               \
        return FC_POOL_EINVAL;                                                      \
    const int64_t n = p->n, c = p->c, h = p->h, w = p->w, oh = p->oh, ow = p->ow;   \
    if (n == 0 || c == 0)                                                           \
        return FC_POOL_OK;                                                          \
    tap_range *rows = pool_tables(p);                                               \
    if (!rows)                                                                      \
        return FC_POOL_ENOMEM;                                                      \
    tap_range *cols = rows + oh;                                                    \
    const int64_t sh = p->sh, sw = p->sw, dh = p->dh, dw = p->dw;                   \
    const int64_t pt = p->pad_top, pl = p->pad_left;                                \
    const int is_max = p->mode == FC_POOL_MAX, incl = p->count_include_pad != 0;    \
    const int64_t work = n * c * (oh * ow * p->kh * p->kw + h * w);                 \
    (void)work;                                                                     \
    if (!channels_last) {                                                           \
        const int64_t planes = n * c;                                               \
        int64_t q;                                                                  \
        _Pragma("omp parallel for schedule(static) if(work >= FC_POOL_PARALLEL_MIN)") \
        for (q = 0; q < planes; q++) {                                              \
            const T *xp = is_max ? x + q * h * w : NULL;                            \
            const T *gp = gy + q * oh * ow;                                         \
            T *dp = gx + q * h * w;                                                 \
            for (int64_t e = 0; e < h * w; e++)                                     \
                dp[e] = (T)0;                                                       \
            for (int64_t i = 0; i < oh; i++) {                                      \
                const tap_range ri = rows[i];                                       \
                const int64_t row0 = i * sh - pt;                                   \
                for (int64_t j = 0; j < ow; j++) {                                  \
                    const tap_range cj = cols[j];                                   \
                    const int64_t col0 = j * sw - pl;                               \
                    const T g = gp[i * ow + j];                                     \
                    if (is_max) {                                                   \
                        T m = (T)-INFINITY;                                         \
                        int64_t best = -1;                                          \
                        for (int64_t r = ri.lo; r < ri.hi; r++) {                   \
                            const int64_t off = (row0 + r * dh) * w + col0;         \
                            for (int64_t s = cj.lo; s < cj.hi; s++) {               \
                                const T v = xp[off + s * dw];                       \
                                if (v != v || (m == m && (v > m || best < 0))) {    \
                                    m = v;                                          \
                                    best = off + s * dw;                            \
                                }                                                   \
                            }                                                       \
                        }                                                           \
                        if (best >= 0)                                              \
                            dp[best] += g;                                          \
                    } else {                                                        \
                        const int64_t cnt = incl ? ri.padded * cj.padded            \
                                                 : (ri.hi - ri.lo) * (cj.hi - cj.lo); \
                        if (cnt <= 0)                                               \
                            continue;                                               \
                        const T share = (T)((double)g / (double)cnt);               \
                        for (int64_t r = ri.lo; r < ri.hi; r++) {                   \
                            T *dr = dp + (row0 + r * dh) * w + col0;                \
                            for (int64_t s = cj.lo; s < cj.hi; s++)                 \
                                dr[s * dw] += share;                                \
                        }                                                           \
                    }                                                               \
                }                                                                   \
            }                                                                       \
        }                                                                           \
    } else {                                                                        \
        const int64_t nblk = (c + FC_POOL_CBLOCK - 1) / FC_POOL_CBLOCK;             \
        const int64_t tasks = n * nblk;                                             \
        int64_t t;                                                                  \
        _Pragma("omp parallel for schedule(static) if(work >= FC_POOL_PARALLEL_MIN)") \
        for (t = 0; t < tasks; t++) {                                               \
            const int64_t b = t / nblk, c0 = (t % nblk) * FC_POOL_CBLOCK;           \
            const int64_t nc = c - c0 < FC_POOL_CBLOCK ? c - c0 : FC_POOL_CBLOCK;   \
            const T *xb = is_max ? x + b * h * w * c + c0 : NULL;                   \
            const T *gb = gy + b * oh * ow * c + c0;                                \
            T *db = gx + b * h * w * c + c0;                                        \
            T m[FC_POOL_CBLOCK];                                                    \
            int64_t best[FC_POOL_CBLOCK];                                           \
            for (int64_t e = 0; e < h * w; e++)                                     \
                for (int64_t k = 0; k < nc; k++)                                    \
                    db[e * c + k] = (T)0;                                           \
            for (int64_t i = 0; i < oh; i++) {                                      \
                const tap_range ri = rows[i];                                       \
                const int64_t row0 = i * sh - pt;                                   \
                for (int64_t j = 0; j < ow; j++) {                                  \
                    const tap_range cj = cols[j];                                   \
                    const int64_t col0 = j * sw - pl;                               \
                    const T *g = gb + (i * ow + j) * c;                             \
                    if (is_max) {                                                   \
                        for (int64_t k = 0; k < nc; k++) {                          \
                            m[k] = (T)-INFINITY;                                    \
                            best[k] = -1;                                           \
                        }                                                           \
                        for (int64_t r = ri.lo; r < ri.hi; r++) {                   \
                            for (int64_t s = cj.lo; s < cj.hi; s++) {               \
                                const int64_t pix = (row0 + r * dh) * w + col0 + s * dw; \
                                const T *xv = xb + pix * c;                         \
                                for (int64_t k = 0; k < nc; k++) {                  \
                                    const T v = xv[k];                              \
                                    /* first max wins; NaN sticks, a later NaN */   \
                                    /* replaces it (torch) */                       \
                                    const int take = v != v ||                      \
                                        (m[k] == m[k] && (v > m[k] || best[k] < 0)); \
                                    if (take) {                                     \
                                        m[k] = v;                                   \
                                        best[k] = pix;                              \
                                    }                                               \
                                }                                                   \
                            }                                                       \
                        }                                                           \
                        for (int64_t k = 0; k < nc; k++)                            \
                            if (best[k] >= 0)                                       \
                                db[best[k] * c + k] += g[k];                        \
                    } else {                                                        \
                        const int64_t cnt = incl ? ri.padded * cj.padded            \
                                                 : (ri.hi - ri.lo) * (cj.hi - cj.lo); \
                        if (cnt <= 0)                                               \
                            continue;                                               \
                        /* each output's share once (a division per tap was */    \
                        /* most of a small layer's backward) */                    \
                        T share[FC_POOL_CBLOCK];                                    \
                        for (int64_t k = 0; k < nc; k++)                            \
                            share[k] = (T)((double)g[k] / (double)cnt);             \
                        for (int64_t r = ri.lo; r < ri.hi; r++) {                   \
                            for (int64_t s = cj.lo; s < cj.hi; s++) {               \
                                T *dv = db + ((row0 + r * dh) * w + col0 + s * dw) * c; \
                                for (int64_t k = 0; k < nc; k++)                    \
                                    dv[k] += share[k];                              \
                            }                                                       \
                        }                                                           \
                    }                                                               \
                }                                                                   \
            }                                                                       \
        }                                                                           \
    }                                                                               \
    free(rows);                                                                     \
    return FC_POOL_OK;                                                              \
}

FC_DEFINE_POOL2D_BACKWARD(f32, float)
FC_DEFINE_POOL2D_BACKWARD(f64, double)
