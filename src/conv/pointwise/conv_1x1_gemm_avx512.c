/*
 * The 1x1 GEMM, AVX-512 float32 (see conv_1x1_gemm.h).  Compiled with the
 * AVX-512 flags on x86 (a stub elsewhere); conv_1x1_gemm.c calls it only when
 * the AVX-512 kernel set is in use.
 */
#include "conv/pointwise/conv_1x1_gemm.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define MR FC_1X1G_MR
#define NVMAX 4                       /* zmm of pixels per tile */
#define TILE_PX (16 * NVMAX)
/* weights of an output-channel group, bytes: they stay in L2 (1.25 MB on the
 * Ice Lake this was tuned on) across the group's pixel tiles */
#define GROUP_W_BYTES (384 * 1024)
/* below this many FLOPs one thread (the team's start costs more) */
#define PARALLEL_MIN_FLOPS 2.0e6

/* One MR x (16 NV) tile over input channels [k0, k0 + kc): x at (k0, p0), w
 * at the block's row k0 (packed: wp[b][k][o]; else the plain row-major
 * matrix, rows lda apart, its rows past noc never read), y and r at (6 b,
 * p0).  first: start from bias (NULL: zero) (+ r); else from y's partial
 * sums.  last: clamp and store the final values. */
static inline __attribute__((always_inline)) void
tile(const float *x, int64_t HW, const float *w, int64_t kc, float *y, const float *bias,
     const float *r, int first, int last, int clamp, __m512 lo, __m512 hi, int noc,
     const int NV, const int PART, __mmask16 mlast, const int PACKED, int64_t lda)
{
    __m512 acc[MR][NVMAX];
    const float *wr[MR];   /* unpacked: each row's pointer (rows past noc: row 0) */
#pragma GCC unroll 6
    for (int o = 0; o < MR; ++o) wr[o] = w + (PACKED || o >= noc ? 0 : o * lda);
    if (first) {
#pragma GCC unroll 6
        for (int o = 0; o < MR; ++o) {
            const __m512 b = bias ? _mm512_set1_ps(bias[o]) : _mm512_setzero_ps();
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) acc[o][v] = b;
        }
        if (r) {
#pragma GCC unroll 6
            for (int o = 0; o < MR; ++o) {
                if (o >= noc) break;
#pragma GCC unroll 4
                for (int v = 0; v < NV; ++v) {
                    const float *rp = r + o * HW + 16 * v;
                    const __m512 rv = (PART && v == NV - 1) ? _mm512_maskz_loadu_ps(mlast, rp)
                                                            : _mm512_loadu_ps(rp);
                    acc[o][v] = _mm512_add_ps(acc[o][v], rv);
                }
            }
        }
    } else {
#pragma GCC unroll 6
        for (int o = 0; o < MR; ++o) {
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) {
                const float *yp = y + o * HW + 16 * v;
                acc[o][v] = o >= noc ? _mm512_setzero_ps()
                            : (PART && v == NV - 1) ? _mm512_maskz_loadu_ps(mlast, yp)
                                                    : _mm512_loadu_ps(yp);
            }
        }
    }
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; ++k) {
        const float *xr = x + k * HW;
        __m512 xv[NVMAX];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
            xv[v] = (PART && v == NV - 1) ? _mm512_maskz_loadu_ps(mlast, xr + 16 * v)
                                          : _mm512_loadu_ps(xr + 16 * v);
#pragma GCC unroll 6
        for (int o = 0; o < MR; ++o) {
            const __m512 wv = _mm512_set1_ps(PACKED ? w[o] : wr[o][k]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) acc[o][v] = _mm512_fmadd_ps(wv, xv[v], acc[o][v]);
        }
        if (PACKED) w += MR;
    }
    if (last && clamp) {
        /* max(lo, v), min(hi, v): the second operand is returned for NaN,
         * so NaN passes through (as the conv2d tiles' relu) */
#pragma GCC unroll 6
        for (int o = 0; o < MR; ++o)
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v)
                acc[o][v] = _mm512_min_ps(hi, _mm512_max_ps(lo, acc[o][v]));
    }
#pragma GCC unroll 6
    for (int o = 0; o < MR; ++o) {
        if (o >= noc) break;
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
            float *yp = y + o * HW + 16 * v;
            if (PART && v == NV - 1) _mm512_mask_storeu_ps(yp, mlast, acc[o][v]);
            else _mm512_storeu_ps(yp, acc[o][v]);
        }
    }
}

/* The tile for `npx` (<= 64) pixels: NV and the tail mask by value. */
#define DEF_TILE_ANY(NAME, PACKED)                                                          \
static void NAME(const float *x, int64_t HW, const float *w, int64_t kc, float *y,          \
                 const float *bias, const float *r, int first, int last, int clamp,         \
                 __m512 lo, __m512 hi, int noc, int npx, int64_t lda)                       \
{                                                                                           \
    if (npx == TILE_PX) {                                                                   \
        tile(x, HW, w, kc, y, bias, r, first, last, clamp, lo, hi, noc, 4, 0, 0xFFFF,       \
             PACKED, lda);                                                                  \
        return;                                                                             \
    }                                                                                       \
    const int nv = (npx + 15) / 16;                                                         \
    const __mmask16 m = (npx % 16) ? (__mmask16)((1u << (npx % 16)) - 1) : (__mmask16)0xFFFF;\
    switch (nv) {                                                                           \
    case 1: tile(x, HW, w, kc, y, bias, r, first, last, clamp, lo, hi, noc, 1, 1, m,        \
                 PACKED, lda); break;                                                       \
    case 2: tile(x, HW, w, kc, y, bias, r, first, last, clamp, lo, hi, noc, 2, 1, m,        \
                 PACKED, lda); break;                                                       \
    case 3: tile(x, HW, w, kc, y, bias, r, first, last, clamp, lo, hi, noc, 3, 1, m,        \
                 PACKED, lda); break;                                                       \
    default: tile(x, HW, w, kc, y, bias, r, first, last, clamp, lo, hi, noc, 4, 1, m,       \
                  PACKED, lda); break;                                                      \
    }                                                                                       \
}
DEF_TILE_ANY(tile_packed, 1)
DEF_TILE_ANY(tile_plain, 0)

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* The driver of both entry points: wp packed (lda 0) or plain row-major
 * (rows lda apart). */
static int gemm_drive(const fc_1x1g_desc *d, const float *x, const float *wp, int64_t lda,
                      const float *bias, const float *res, float *y)
{
    const int64_t K = d->K, M = d->M, HW = d->HW;
    if (d->n < 0 || K <= 0 || M <= 0 || HW <= 0 || !x || !wp || !y || (lda && lda < K)
        || d->x_img < K * HW || d->y_img < M * HW || (res && d->r_img < M * HW))
        return 1;
    if (d->n == 0) return 0;
    const int64_t nb = ceil_div(M, MR), ntile = ceil_div(HW, TILE_PX);
    const int64_t nk = ceil_div(K, FC_1X1G_KC), kc = ceil_div(K, nk);
    int64_t mcb = GROUP_W_BYTES / (MR * K * (int64_t)sizeof(float));
    mcb = mcb < 1 ? 1 : mcb > nb ? nb : mcb;
    int nthr = 1;
    const double flops = 2.0 * (double)d->n * (double)M * (double)K * (double)HW;
#ifdef _OPENMP
    const int par = flops > PARALLEL_MIN_FLOPS && omp_get_max_threads() > 1;
    if (par) nthr = omp_get_max_threads();
#else
    (void)flops;
#endif
    /* enough items for every thread (a few each): smaller channel groups */
    while (mcb > 1 && d->n * ceil_div(nb, mcb) * ntile < 3 * nthr) mcb = ceil_div(mcb, 2);
    const int64_t ngroup = ceil_div(nb, mcb), nitems = d->n * ngroup * ntile;
    const int clamp = !(isinf(d->lo) && d->lo < 0 && isinf(d->hi) && d->hi > 0);
    const __m512 lo = _mm512_set1_ps(d->lo), hi = _mm512_set1_ps(d->hi);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (par)
#endif
    for (int64_t it = 0; it < nitems; ++it) {
        /* pixel tiles innermost: a thread's consecutive items share weights */
        const int64_t t = it % ntile, g = (it / ntile) % ngroup, n = it / (ntile * ngroup);
        const int64_t p0 = t * TILE_PX;
        const int npx = (int)(HW - p0 < TILE_PX ? HW - p0 : TILE_PX);
        const int64_t b0 = g * mcb, b1 = b0 + mcb < nb ? b0 + mcb : nb;
        const float *xi = x + n * d->x_img + p0;
        float *yi = y + n * d->y_img + p0;
        const float *ri = res ? res + n * d->r_img + p0 : NULL;
        for (int64_t kb = 0; kb < nk; ++kb) {
            const int64_t k0 = kb * kc, kn = K - k0 < kc ? K - k0 : kc;
            for (int64_t b = b0; b < b1; ++b) {
                const int noc = (int)(M - b * MR < MR ? M - b * MR : MR);
                const float *bb = bias ? bias + b * MR : NULL;
                const float *ri_b = ri ? ri + b * MR * HW : NULL;
                if (lda)
                    tile_plain(xi + k0 * HW, HW, wp + b * MR * lda + k0, kn, yi + b * MR * HW,
                               bb, ri_b, kb == 0, kb == nk - 1, clamp, lo, hi, noc, npx, lda);
                else
                    tile_packed(xi + k0 * HW, HW, wp + (b * K + k0) * MR, kn, yi + b * MR * HW,
                                bb, ri_b, kb == 0, kb == nk - 1, clamp, lo, hi, noc, npx, 0);
            }
        }
    }
    return 0;
}

int fc_conv1x1_gemm_avx512_f32(const fc_1x1g_desc *d, const float *x, const float *wp,
                               const float *bias, const float *res, float *y)
{
    if (!bias) return 1;
    return gemm_drive(d, x, wp, 0, bias, res, y);
}

int fc_gemm_plain_avx512_f32(int64_t M, int64_t K, int64_t N, const float *a, int64_t lda,
                             const float *b, float *c)
{
    if (lda <= 0) return 1;
    const fc_1x1g_desc d = {1, K, M, N, K * N, M * N, 0, -INFINITY, INFINITY};
    return gemm_drive(&d, b, a, lda, NULL, NULL, c);
}

#else /* not x86: never available */
int fc_conv1x1_gemm_avx512_f32(const fc_1x1g_desc *d, const float *x, const float *wp,
                               const float *bias, const float *res, float *y)
{
    (void)d; (void)x; (void)wp; (void)bias; (void)res; (void)y;
    return 1;
}

int fc_gemm_plain_avx512_f32(int64_t M, int64_t K, int64_t N, const float *a, int64_t lda,
                             const float *b, float *c)
{
    (void)M; (void)K; (void)N; (void)a; (void)lda; (void)b; (void)c;
    return 1;
}
#endif
