/* Max pooling, written once for each instruction set (included by pool.c
 * for the baseline build and by pool_avx2.c, compiled with -mavx2 -mfma: the
 * compiler vectorises the same loops 8 floats wide there).  FC_MAXPOOL_ISA
 * names the set; pool.c picks one at run time (see pool_internal.h). */
#include <math.h>
#include <stdlib.h>

#include "pool/pool_internal.h"

#define FC_MAXPOOL_CAT_(a, b, c) fc_maxpool_##a##_##b##_##c
#define FC_MAXPOOL_CAT(a, b, c) FC_MAXPOOL_CAT_(a, b, c)
#define FC_MAXPOOL_NAME(kind, SUFFIX) FC_MAXPOOL_CAT(kind, FC_MAXPOOL_ISA, SUFFIX)

/* Max pooling, separable: per output row, the maximum over the window's
 * rows of whole input rows (one contiguous, vectorisable pass per tap row)
 * into a row buffer framed by -inf for the left / right padding, then the
 * maximum over the window's columns of that buffer, with no bounds tests.
 * kh + kw passes per output row instead of kh * kw scattered taps per output
 * element (5-10x the element-wise loop on the ImageNet maps of the ONNX
 * models).  Same results: padding never wins, an all-padding window gives
 * -inf, NaN wins (the NaN of the input, as the comparison below keeps it). */
#define FC_MAXNAN(m, v) ((((m) != (m)) | ((m) > (v))) ? (m) : (v))

/* acc[c] = max(acc[c], src[c]) (NaN wins); yr[j] = max(yr[j], b[j * sw]).
 * Branch-free bodies, restrict pointers: vectorised by the compiler. */
#define FC_DEFINE_MAX_PASSES(SUFFIX, T)                                             \
static inline void max_into_##SUFFIX(T *restrict acc, const T *restrict src, int64_t n)    \
{                                                                                   \
    for (int64_t c = 0; c < n; c++) acc[c] = FC_MAXNAN(acc[c], src[c]);             \
}                                                                                   \
static inline void max_strided_into_##SUFFIX(T *restrict yr, const T *restrict b,          \
                                      int64_t n, int64_t sw)                        \
{                                                                                   \
    if (sw == 1) {                                                                  \
        for (int64_t j = 0; j < n; j++) yr[j] = FC_MAXNAN(yr[j], b[j]);             \
    } else if (sw == 2) {                                                           \
        for (int64_t j = 0; j < n; j++) yr[j] = FC_MAXNAN(yr[j], b[2 * j]);         \
    } else {                                                                        \
        for (int64_t j = 0; j < n; j++) yr[j] = FC_MAXNAN(yr[j], b[j * sw]);        \
    }                                                                               \
}

FC_DEFINE_MAX_PASSES(f32, float)
FC_DEFINE_MAX_PASSES(f64, double)

#define FC_DEFINE_MAXPOOL_SEPARABLE(SUFFIX, T)                                      \
int FC_MAXPOOL_NAME(separable, SUFFIX)(const T *x, T *y, const fc_pool_params *p,    \
                                        const fc_pool_tap_range *rows)              \
{                                                                                   \
    const int64_t planes = p->n * p->c, h = p->h, w = p->w, oh = p->oh, ow = p->ow;  \
    const int64_t sh = p->sh, sw = p->sw, dh = p->dh, dw = p->dw, kw = p->kw;       \
    const int64_t pt = p->pad_top, pl = p->pad_left;                                \
    /* the row buffer: [0, pl) and [pl + w, len) are -inf */                        \
    const int64_t span = (ow - 1) * sw + (kw - 1) * dw + 1;                         \
    const int64_t len = span > pl + w ? span : pl + w;                              \
    const int64_t work = planes * oh * ow * p->kh * p->kw;                          \
    int failed = 0;                                                                 \
    (void)work;                                                                     \
    _Pragma("omp parallel if(work >= FC_POOL_PARALLEL_MIN) reduction(| : failed)")  \
    {                                                                               \
        T *buf = (T *)malloc(sizeof(T) * (size_t)len);                              \
        if (!buf) failed = 1;                                                       \
        else {                                                                      \
            for (int64_t c = 0; c < len; c++) buf[c] = (T)-INFINITY;                \
            T *mid = buf + pl;                                                      \
            int64_t q;                                                              \
            _Pragma("omp for schedule(static)")                                     \
            for (q = 0; q < planes; q++) {                                          \
                const T *xp = x + q * h * w;                                        \
                T *yp = y + q * oh * ow;                                            \
                for (int64_t i = 0; i < oh; i++) {                                  \
                    const fc_pool_tap_range ri = rows[i];                                   \
                    const int64_t row0 = i * sh - pt;                               \
                    if (ri.hi <= ri.lo) {                                           \
                        for (int64_t c = 0; c < w; c++) mid[c] = (T)-INFINITY;      \
                    } else {                                                        \
                        const T *x0 = xp + (row0 + ri.lo * dh) * w;                 \
                        for (int64_t c = 0; c < w; c++) mid[c] = x0[c];             \
                        for (int64_t r = ri.lo + 1; r < ri.hi; r++)                 \
                            max_into_##SUFFIX(mid, xp + (row0 + r * dh) * w, w);    \
                    }                                                               \
                    T *yr = yp + i * ow;                                            \
                    for (int64_t j = 0; j < ow; j++) yr[j] = buf[j * sw];               \
                    for (int64_t s = 1; s < kw; s++)                                \
                        max_strided_into_##SUFFIX(yr, buf + s * dw, ow, sw);        \
                }                                                                   \
            }                                                                       \
        }                                                                           \
        free(buf);                                                                  \
    }                                                                               \
    return failed ? FC_POOL_ENOMEM : FC_POOL_OK;                                    \
}

FC_DEFINE_MAXPOOL_SEPARABLE(f32, float)
FC_DEFINE_MAXPOOL_SEPARABLE(f64, double)

/* Stride 1 both ways (Inception's 3 x 3 "same" branch pools, on 7 x 7 to
 * 28 x 28 maps, where the row-by-row passes above cost more in loop
 * overhead than in maxima): each pass runs over the whole plane at once.
 * Vertical: per window row a, the output rows whose tap row is inside the
 * input form one range, read from one contiguous block of input rows: one
 * flat pass into v (oh x w, -inf elsewhere).  Horizontal: z = the maximum of
 * v shifted by s * dw over the flat plane, right for every column whose
 * taps all lie in its row (the interior ones); those are copied to y, the
 * few border columns computed tap by tap from v. */
#define FC_DEFINE_MAXPOOL_FLAT(SUFFIX, T)                                           \
int FC_MAXPOOL_NAME(flat, SUFFIX)(const T *x, T *y, const fc_pool_params *p)         \
{                                                                                   \
    const int64_t planes = p->n * p->c, h = p->h, w = p->w, oh = p->oh, ow = p->ow;  \
    const int64_t dh = p->dh, dw = p->dw, kh = p->kh, kw = p->kw;                   \
    const int64_t pt = p->pad_top, pl = p->pad_left;                                \
    const int64_t reach = (kw - 1) * dw, flat = oh * w - reach;                     \
    /* interior output columns: j - pl >= 0 and j - pl + reach < w */              \
    int64_t j0 = pl, j1 = w - reach + pl;                                           \
    if (j1 > ow) j1 = ow;                                                           \
    if (j0 > j1) j0 = j1;                                                           \
    const int64_t work = planes * oh * ow * kh * kw;                                \
    int failed = 0;                                                                 \
    (void)work;                                                                     \
    _Pragma("omp parallel if(work >= FC_POOL_PARALLEL_MIN) reduction(| : failed)")  \
    {                                                                               \
        T *v = (T *)malloc(sizeof(T) * (size_t)(2 * oh * w));                       \
        if (!v) failed = 1;                                                         \
        else {                                                                      \
            T *z = v + oh * w;                                                      \
            int64_t q;                                                              \
            _Pragma("omp for schedule(static)")                                     \
            for (q = 0; q < planes; q++) {                                          \
                const T *xp = x + q * h * w;                                        \
                T *yp = y + q * oh * ow;                                            \
                for (int64_t c = 0; c < oh * w; c++) v[c] = (T)-INFINITY;           \
                for (int64_t a = 0; a < kh; a++) {                                  \
                    const int64_t off = a * dh - pt;                                \
                    const int64_t i0 = off < 0 ? -off : 0;                          \
                    const int64_t i1 = h - off < oh ? h - off : oh;                 \
                    if (i1 > i0)                                                    \
                        max_into_##SUFFIX(v + i0 * w, xp + (i0 + off) * w, (i1 - i0) * w); \
                }                                                                   \
                if (flat > 0 && j1 > j0) {                                          \
                    for (int64_t c = 0; c < flat; c++) z[c] = v[c];                 \
                    for (int64_t s = 1; s < kw; s++)                                \
                        max_into_##SUFFIX(z, v + s * dw, flat);                     \
                }                                                                   \
                for (int64_t i = 0; i < oh; i++) {                                  \
                    const T *vr = v + i * w;                                        \
                    T *yr = yp + i * ow;                                            \
                    for (int64_t j = 0; j < ow; j++) {                              \
                        if (j == j0 && j1 > j0) {                                   \
                            const T *zr = z + i * w - pl;                           \
                            for (; j < j1; j++) yr[j] = zr[j];                      \
                            if (j >= ow) break;                                     \
                        }                                                           \
                        T m = (T)-INFINITY;                                         \
                        for (int64_t s = 0; s < kw; s++) {                          \
                            const int64_t c = j - pl + s * dw;                      \
                            if (c >= 0 && c < w) m = FC_MAXNAN(m, vr[c]);           \
                        }                                                           \
                        yr[j] = m;                                                  \
                    }                                                               \
                }                                                                   \
            }                                                                       \
        }                                                                           \
        free(v);                                                                    \
    }                                                                               \
    return failed ? FC_POOL_ENOMEM : FC_POOL_OK;                                    \
}

FC_DEFINE_MAXPOOL_FLAT(f32, float)
FC_DEFINE_MAXPOOL_FLAT(f64, double)
