/*
 * Depthwise convolution, AVX2+FMA float32 kernel (see conv_depthwise_impl.h
 * for the scheme).  Compiled with -mavx2 -mfma on x86 only; chosen at run
 * time by conv_depthwise.c.  Each output row is computed 32 columns (four
 * vectors) at a time: per tap, one broadcast weight and four loads from the
 * phase-split row buffer, then the activation on the registers and one store.
 */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "conv_common.h"
#include "conv_depthwise_internal.h"
#include "fastconv.h"

#if defined(__x86_64__) || defined(_M_X64)
#include "activation_avx2.h"

#define T float
#define SFX f32
#include "conv_depthwise_impl.h"
#undef T
#undef SFX

/* One output row: rp[k]/wr[k] are the nk valid kernel rows (buffer row, weights). */
typedef struct {
    const float *rp[64];
    const float *wr[64];
    int nk;
    const int64_t *toff;  /* per kernel column: offset in the phase-split row */
    int64_t kw;
    float b;
    float *yr;
    int64_t w_out;
    float p0, p1;
} dw_row_args;

/* Store the nv <= 4 vectors of c starting at column ow, cut at w_out. */
static inline __attribute__((always_inline)) void dw_store(float *yr, int64_t ow, int64_t w_out,
                                                           __m256 *c)
{
    for (int v = 0; v < 4; ++v) {
        const int64_t o = ow + 8 * v;
        if (o + 8 <= w_out) {
            _mm256_storeu_ps(yr + o, c[v]);
        } else if (o < w_out) {   /* the buffer is padded to whole chunks; the output is not */
            float tmp[8];
            _mm256_storeu_ps(tmp, c[v]);
            memcpy(yr + o, tmp, (size_t)(w_out - o) * sizeof(float));
        }
    }
}

/* One output row, 32 columns (four independent FMA chains) at a time. */
static inline __attribute__((always_inline)) void dw_row(const dw_row_args *a, int kind)
{
    const int64_t KW = a->kw, w_out = a->w_out;
    const __m256 vb = _mm256_set1_ps(a->b);
    for (int64_t ow = 0; ow < w_out; ow += 32) {
        __m256 c[4] = {vb, vb, vb, vb};
        for (int k = 0; k < a->nk; ++k) {
            const float *r = a->rp[k] + ow, *wk = a->wr[k];
            for (int64_t j = 0; j < KW; ++j) {
                const __m256 wv = _mm256_broadcast_ss(wk + j);
                const float *q = r + a->toff[j];
                for (int v = 0; v < 4; ++v)
                    c[v] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(q + 8 * v), c[v]);
            }
        }
        for (int v = 0; v < 4; ++v) c[v] = fc_act8_kind_f32(kind, c[v], a->p0, a->p1);
        dw_store(a->yr, ow, w_out, c);
    }
}

/* Two output rows with the same number of valid kernel rows: eight chains,
 * enough to hide the FMA latency. */
static inline __attribute__((always_inline)) void dw_row2_k(const dw_row_args *a,
                                                            const dw_row_args *b, int kind,
                                                            const int64_t KW)
{
    const int64_t w_out = a->w_out;
    const __m256 vb = _mm256_set1_ps(a->b);
    for (int64_t ow = 0; ow < w_out; ow += 32) {
        __m256 c[4] = {vb, vb, vb, vb}, e[4] = {vb, vb, vb, vb};
        for (int k = 0; k < a->nk; ++k) {
            const float *r = a->rp[k] + ow, *wk = a->wr[k];
            const float *r2 = b->rp[k] + ow, *wk2 = b->wr[k];
            for (int64_t j = 0; j < KW; ++j) {
                const __m256 wv = _mm256_broadcast_ss(wk + j), wv2 = _mm256_broadcast_ss(wk2 + j);
                const float *q = r + a->toff[j], *q2 = r2 + a->toff[j];
                for (int v = 0; v < 4; ++v) {
                    c[v] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(q + 8 * v), c[v]);
                    e[v] = _mm256_fmadd_ps(wv2, _mm256_loadu_ps(q2 + 8 * v), e[v]);
                }
            }
        }
        for (int v = 0; v < 4; ++v) c[v] = fc_act8_kind_f32(kind, c[v], a->p0, a->p1);
        dw_store(a->yr, ow, w_out, c);
        for (int v = 0; v < 4; ++v) e[v] = fc_act8_kind_f32(kind, e[v], a->p0, a->p1);
        dw_store(b->yr, ow, w_out, e);
    }
}

/* 3-wide kernels (the common case) with the tap loop unrolled. */
static inline __attribute__((always_inline)) void dw_row2(const dw_row_args *a,
                                                          const dw_row_args *b, int kind)
{
    if (a->kw == 3)
        dw_row2_k(a, b, kind, 3);
    else
        dw_row2_k(a, b, kind, a->kw);
}

#define DW_ROW_KIND(K)                                                   \
    static void dw_row_##K(const dw_row_args *a, const dw_row_args *b)   \
    {                                                                    \
        if (b) dw_row2(a, b, K); else dw_row(a, K);                      \
    }
DW_ROW_KIND(0) DW_ROW_KIND(1) DW_ROW_KIND(2) DW_ROW_KIND(3) DW_ROW_KIND(4) DW_ROW_KIND(5)
DW_ROW_KIND(6) DW_ROW_KIND(7) DW_ROW_KIND(8) DW_ROW_KIND(9) DW_ROW_KIND(10) DW_ROW_KIND(11)
DW_ROW_KIND(12) DW_ROW_KIND(13) DW_ROW_KIND(14) DW_ROW_KIND(15)
static void (*const dw_rows[FC_ACT_COUNT])(const dw_row_args *, const dw_row_args *) = {
    dw_row_0, dw_row_1, dw_row_2, dw_row_3, dw_row_4, dw_row_5, dw_row_6, dw_row_7,
    dw_row_8, dw_row_9, dw_row_10, dw_row_11, dw_row_12, dw_row_13, dw_row_14, dw_row_15};

int fc_dw_avx2_f32(const fc_conv_desc *d, const float *x, const float *w, const float *bias,
                   float *y, const fc_activation *post)
{
    if (d->kh > 64) return FC_EINVAL;   /* the row arguments hold 64 kernel rows */
    const int kind = post ? post->kind : FC_ACT_IDENTITY;
    if (kind < 0 || kind >= FC_ACT_COUNT) return FC_EINVAL;
    void (*const row)(const dw_row_args *, const dw_row_args *) = dw_rows[kind];
#ifdef _OPENMP
    const int nthreads = omp_get_max_threads();
#else
    const int nthreads = 1;
#endif
    const fc_dw_geom g = fc_dw_plan(d, nthreads);
    const int64_t s = d->stride_w, L = g.L, sL = s * L, KW = d->kw, KH = d->kh;
    const int64_t items = d->n * d->c_in * g.nblk;
    const size_t buf_bytes = (size_t)(g.buf_rows * sL) * sizeof(float);
    const double work = 2.0 * (double)(d->n * d->c_out * d->h_out * d->w_out) * (double)(KH * KW);
    int64_t *toff = (int64_t *)malloc((size_t)KW * sizeof(int64_t));
    if (!toff) return FC_ENOMEM;
    for (int64_t j = 0; j < KW; ++j) toff[j] = ((j * d->dil_w) % s) * L + (j * d->dil_w) / s;
    int err = 0;
    (void)work;
#ifdef _OPENMP
#pragma omp parallel if (work > 2.0e5 && items > 1)
#endif
    {
        float *buf = (float *)malloc(buf_bytes);
        if (!buf) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            err = 1;
        }
        dw_row_args ab[2];
        for (int i = 0; i < 2; ++i) {
            ab[i].toff = toff;
            ab[i].kw = KW;
            ab[i].w_out = d->w_out;
            ab[i].p0 = post ? (float)post->p0 : 0.0f;
            ab[i].p1 = post ? (float)post->p1 : 0.0f;
        }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t it = 0; it < items; ++it) {
            if (!buf) continue;
            const int64_t blk = it % g.nblk, t = it / g.nblk, ic = t % d->c_in, n = t / d->c_in;
            const int64_t oh0 = blk * g.rows_blk, oh1 = fc_min64(d->h_out, oh0 + g.rows_blk);
            const int64_t ih_lo = fc_max64(0, oh0 * d->stride_h - d->pad_top);
            const int64_t ih_hi = fc_min64(d->h_in, (oh1 - 1) * d->stride_h - d->pad_top +
                                                        (KH - 1) * d->dil_h + 1);
            const float *xc = x + (n * d->c_in + ic) * d->h_in * d->w_in;
            int64_t filled = ih_lo;   /* rows are copied just before first use, while hot */
            for (int64_t m = 0; m < g.mult; ++m) {
                const int64_t oc = ic * g.mult + m;
                const float *wo = w + oc * KH * KW;
                ab[0].b = ab[1].b = bias ? bias[oc] : 0.0f;
                for (int64_t oh = oh0; oh < oh1; oh += 2) {
                    const int nr = oh + 1 < oh1 ? 2 : 1;
                    if (m == 0) {
                        const int64_t need = fc_min64(ih_hi, (oh + nr - 1) * d->stride_h -
                                                                 d->pad_top + (KH - 1) * d->dil_h + 1);
                        if (need > filled) {
                            dw_fill_f32(d, &g, xc, filled, need, buf + (filled - ih_lo) * sL);
                            filled = need;
                        }
                    }
                    for (int i = 0; i < nr; ++i) {
                        dw_row_args *a = &ab[i];
                        int nk = 0;
                        for (int64_t kh = 0; kh < KH; ++kh) {
                            const int64_t ih = (oh + i) * d->stride_h - d->pad_top + kh * d->dil_h;
                            if (ih < ih_lo || ih >= ih_hi) continue;
                            a->rp[nk] = buf + (ih - ih_lo) * sL;
                            a->wr[nk] = wo + kh * KW;
                            ++nk;
                        }
                        a->nk = nk;
                        a->yr = y + ((n * d->c_out + oc) * d->h_out + oh + i) * d->w_out;
                    }
                    if (nr == 2 && ab[0].nk == ab[1].nk) {
                        row(&ab[0], &ab[1]);
                    } else {
                        for (int i = 0; i < nr; ++i) row(&ab[i], NULL);
                    }
                }
            }
        }
        free(buf);
    }
    free(toff);
    return err ? FC_ENOMEM : FC_OK;
}

#else /* not x86-64: never called */
int fc_dw_avx2_f32(const fc_conv_desc *d, const float *x, const float *w, const float *bias,
                   float *y, const fc_activation *post)
{
    (void)d; (void)x; (void)w; (void)bias; (void)y; (void)post;
    return FC_EINVAL;
}
#endif
