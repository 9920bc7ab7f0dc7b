/*
 * Depthwise convolution, AVX2+FMA kernels for one float type: included by
 * conv_depthwise_avx2.c between simd/avx2_vec_<dtype>.h and
 * simd/avx2_vec_undef.h (the shared vocabulary: VLOAD, VSTORE, VFMA, ...,
 * MASKT / MLOAD / VMASKLOAD for lane masks, VEVEN / VODD / VUNPERM for
 * stride 2, VTRANSPOSE, VDEINT2, VACT_KIND(kind, v)).
 *
 * Three kernels, chosen per call (fc_dw_avx2_*_impl at the end):
 *
 * 1. Row kernels (3x3 and 5x5, stride 1 and 2, no dilation).  Work item:
 *    (image, input channel, block of output rows), in groups of output rows
 *    whose input rows are given as pointers straight into x (no copy; rows in
 *    the vertical padding point at a zero row).  Tile: R output rows x NV
 *    vectors of VL columns sharing the input rows they overlap (3x3 stride 1:
 *    R = 4, 6 input rows, 18 loads and 36 FMAs per 4 output vectors, the 9
 *    weights in registers).  Vectors whose taps all fall inside the row use
 *    plain loads; the edge vectors (and the partial last one) use lane-masked
 *    loads with masks precomputed per call: no branch in the FMA loop.  Stride
 *    2 splits two loads per tap pair into even / odd lanes in-lane and puts
 *    the lanes back once per output vector.
 * 2. Narrow planes: channels in the lanes (dwc_*): transposed blocks of VL
 *    channels in a zero-padded channels-last buffer, 8 output pixels per tile.
 * 3. Anything else (dilation, other kernels / strides): the input rows are
 *    copied into a zero-padded buffer split by column phase (padded column k
 *    at phase k % s, slot k / s), so every tap is one unaligned load.
 *
 * Bias initialises the accumulators; identity / relu / relu6 are applied in
 * registers before the single store, the other activations in place on the
 * rows just written (still in L1).  Every output channel of a multiplier
 * group is computed from the same input rows while they are hot.
 */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

#define DWV_MAXR 8
#define DWV_MAXV 4
#define DWV_AI static inline __attribute__((always_inline))

/* One group of output rows: its input row pointers and its column plan. */
typedef struct {
    const T *const *rp;   /* input row i of the group (i = r * SH + kh); column 0 at the
                           * first tap of output column 0 (direct) or padded column 0 */
    int64_t L;            /* phase row length (buffer mode) */
    int64_t w_out;
    const T *wt;          /* KH x KW weights */
    T bias;
    T *y;                 /* output row of the group's first row */
    int64_t nrows;        /* rows of the group */
    int safe_last;        /* no spill past the group's last row (end of a block) */
    int spill_ok;         /* a partial vector may spill into the next row */
    int64_t nl, ni, nfull, rem;   /* edge / interior / full vectors, last partial width */
    const MASKT *masks;      /* direct mode: KW lane masks per edge vector */
    int nt;               /* full vectors are aligned: streaming stores */
} FN(dwv_args_);

/* Mask lanes per edge vector: KW loads (stride 1) or two per tap pair (stride 2). */
#define DWV_MS(KW, SW) ((SW) == 1 ? (KW) : ((KW) + 1) / 2 * 2)

/* One tile: R rows x NV vectors at column col.  MASK: lane-masked loads
 * (direct-mode edge vectors; mk: their masks).  rem > 0: partial last vector.
 * Direct stride 2: each pair of taps (2p, 2p+1) comes from two loads at
 * padded column 2 col + 2p split into even and odd lanes in-lane (EVEN/ODD);
 * the accumulators hold the columns in that lane order, put back (UNPERM)
 * before the store. */
DWV_AI void FN(dwv_tile_)(const FN(dwv_args_) *a, const int64_t col, const V *wreg, const V vb,
                          const int kind, const int KH, const int KW, const int SH,
                          const int SW, const int R, const int NV, const int WREG,
                          const int DIRECT, const int MASK, const MASKT *mk, const int64_t rem,
                          const int safe_last)
{
    const int64_t L = a->L, w_out = a->w_out;
    const T *wt = a->wt;
    V acc[DWV_MAXR][DWV_MAXV];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[r][v] = vb;
    const int NI = (R - 1) * SH + KH;
    if (DIRECT && SW == 2) {
#pragma GCC unroll 24
        for (int i = 0; i < NI; ++i) {
            const T *row = a->rp[i] + 2 * col;
#pragma GCC unroll 4
            for (int p = 0; p < (KW + 1) / 2; ++p) {
                V ev[DWV_MAXV], od[DWV_MAXV];
#pragma GCC unroll 4
                for (int v = 0; v < NV; ++v) {
                    const T *q = row + 2 * p + 2 * VL * v;
                    const V A = MASK ? VMASKLOAD(q, MLOAD(mk + (2 * p) * VL)) : VLOAD(q);
                    const V B = MASK ? VMASKLOAD(q + VL, MLOAD(mk + (2 * p + 1) * VL))
                                     : VLOAD(q + VL);
                    ev[v] = VEVEN(A, B);
                    od[v] = VODD(A, B);
                }
#pragma GCC unroll 8
                for (int r = 0; r < R; ++r) {
                    const int kh = i - r * SH;
                    if (kh < 0 || kh >= KH) continue;
                    const V w0 = WREG ? wreg[kh * KW + 2 * p] : VSET1(wt[kh * KW + 2 * p]);
#pragma GCC unroll 4
                    for (int v = 0; v < NV; ++v) acc[r][v] = VFMA(w0, ev[v], acc[r][v]);
                    if (2 * p + 1 < KW) {
                        const V w1 = WREG ? wreg[kh * KW + 2 * p + 1]
                                          : VSET1(wt[kh * KW + 2 * p + 1]);
#pragma GCC unroll 4
                        for (int v = 0; v < NV; ++v) acc[r][v] = VFMA(w1, od[v], acc[r][v]);
                    }
                }
            }
        }
    } else {
#pragma GCC unroll 24
        for (int i = 0; i < NI; ++i) {
            const T *row = a->rp[i] + col;
#pragma GCC unroll 8
            for (int j = 0; j < KW; ++j) {
                const T *q = row + (j % SW) * L + j / SW;
                V xv[DWV_MAXV];
#pragma GCC unroll 4
                for (int v = 0; v < NV; ++v)
                    xv[v] = MASK ? VMASKLOAD(q + v * VL, MLOAD(mk + j * VL)) : VLOAD(q + v * VL);
#pragma GCC unroll 8
                for (int r = 0; r < R; ++r) {
                    const int kh = i - r * SH;
                    if (kh < 0 || kh >= KH) continue;
                    const V wv = WREG ? wreg[kh * KW + j] : VSET1(wt[kh * KW + j]);
#pragma GCC unroll 4
                    for (int v = 0; v < NV; ++v) acc[r][v] = VFMA(wv, xv[v], acc[r][v]);
                }
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        T *yr = a->y + r * w_out + col;
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
            V o = VACT_KIND(kind, acc[r][v]);
            if (DIRECT && SW == 2) o = VUNPERM(o);
            if (rem && (!a->spill_ok || (r == R - 1 && safe_last))) {
                T tmp[VL];
                VSTORE(tmp, o);
                for (int64_t e = 0; e < rem; ++e) yr[e] = tmp[e];
            } else if (DWV_NT && !rem && a->nt) {
                VSTREAM(yr + v * VL, o);
            } else {
                /* a partial vector spills into the next row, written after it */
                VSTORE(yr + v * VL, o);
            }
        }
    }
}

/* R output rows (group row offset t), all columns: the partial vector first
 * (its spill is overwritten by the next row's stores), then left edges,
 * interior, right edges. */
DWV_AI void FN(dwv_rows_)(const FN(dwv_args_) *g, const int64_t t, const V *wreg, const V vb,
                          const int kind, const int KH, const int KW, const int SH, const int SW,
                          const int R, const int NV, const int WREG, const int DIRECT,
                          const int safe_last)
{
    FN(dwv_args_) a = *g;
    a.rp = g->rp + t * SH;
    a.y = g->y + t * g->w_out;
    const int64_t nl = DIRECT ? a.nl : 0, ni = DIRECT ? a.ni : a.nfull, nfull = a.nfull;
    const MASKT *mk = a.masks;
    const int MS = DWV_MS(KW, SW) * VL;
    if (a.rem) {
        const MASKT *m = DIRECT ? mk + (nfull - ni) * MS : NULL;
        FN(dwv_tile_)(&a, nfull * VL, wreg, vb, kind, KH, KW, SH, SW, R, 1, WREG, DIRECT,
                      DIRECT, m, a.rem, safe_last);
    }
    int64_t v = 0;
    if (DIRECT)
        for (; v < nl; ++v)
            FN(dwv_tile_)(&a, v * VL, wreg, vb, kind, KH, KW, SH, SW, R, 1, WREG, 1, 1,
                          mk + v * MS, 0, 0);
    const int64_t ie = nl + ni;
    for (; v + NV <= ie; v += NV)
        FN(dwv_tile_)(&a, v * VL, wreg, vb, kind, KH, KW, SH, SW, R, NV, WREG, DIRECT, 0, NULL,
                      0, 0);
    if (NV > 1)
        for (; v < ie; ++v)
            FN(dwv_tile_)(&a, v * VL, wreg, vb, kind, KH, KW, SH, SW, R, 1, WREG, DIRECT, 0,
                          NULL, 0, 0);
    if (DIRECT)
        for (; v < nfull; ++v)
            FN(dwv_tile_)(&a, v * VL, wreg, vb, kind, KH, KW, SH, SW, R, 1, WREG, 1, 1,
                          mk + (v - ni) * MS, 0, 0);
}

/* The group's rows: RM at a time, then pairs, then one. */
DWV_AI void FN(dwv_run_)(const FN(dwv_args_) *a, const int kind, const int KH, const int KW,
                         const int SH, const int SW, const int NV, const int WREG,
                         const int DIRECT, const int RM)
{
    V wreg[9];
    if (WREG)
        for (int t = 0; t < KH * KW; ++t) wreg[t] = VSET1(a->wt[t]);
    const V vb = VSET1(a->bias);
    const int64_t n = a->nrows;
    int64_t t = 0;
    if (RM > 2)
        for (; t + RM <= n; t += RM)
            FN(dwv_rows_)(a, t, wreg, vb, kind, KH, KW, SH, SW, RM, NV, WREG, DIRECT,
                          t + RM == n && a->safe_last);
    for (; t + 2 <= n; t += 2)
        FN(dwv_rows_)(a, t, wreg, vb, kind, KH, KW, SH, SW, 2, NV, WREG, DIRECT,
                      t + 2 == n && a->safe_last);
    if (t < n)
        FN(dwv_rows_)(a, t, wreg, vb, kind, KH, KW, SH, SW, 1, NV, WREG, DIRECT, a->safe_last);
}

/* The unrolled shapes x the kinds done in registers (identity, relu, relu6). */
#define DWV_SHAPE(NAME, KH, KW, SH, SW, NV, WREG, RM)                                        \
    static void FN(NAME##_id_)(const FN(dwv_args_) *a)                                     \
    { FN(dwv_run_)(a, FC_ACT_IDENTITY, KH, KW, SH, SW, NV, WREG, 1, RM); }                  \
    static void FN(NAME##_relu_)(const FN(dwv_args_) *a)                                   \
    { FN(dwv_run_)(a, FC_ACT_RELU, KH, KW, SH, SW, NV, WREG, 1, RM); }                      \
    static void FN(NAME##_relu6_)(const FN(dwv_args_) *a)                                  \
    { FN(dwv_run_)(a, FC_ACT_RELU6, KH, KW, SH, SW, NV, WREG, 1, RM); }
DWV_SHAPE(dwv_k3s1, 3, 3, 1, 1, DWV_K3S1_NV, 1, DWV_K3S1_RM)
DWV_SHAPE(dwv_k3s2, 3, 3, 2, 2, DWV_K3S2_NV, 1, DWV_K3S2_RM)
DWV_SHAPE(dwv_k5s1, 5, 5, 1, 1, DWV_K5S1_NV, 0, DWV_K5S1_RM)
DWV_SHAPE(dwv_k5s2, 5, 5, 2, 2, DWV_K5S2_NV, 0, DWV_K5S2_RM)
#undef DWV_SHAPE

typedef void (*FN(dwv_fn_))(const FN(dwv_args_) *);

/* Any shape (buffer mode): one output row, four vectors at a time, run-time
 * tap loops; toff[j]: offset of kernel column j in the phase-split row. */
static void FN(dwv_generic_)(const FN(dwv_args_) *a, int64_t KH, int64_t KW, int64_t SH,
                             int64_t dh, const int64_t *toff)
{
    const int64_t w_out = a->w_out;
    const V vb = VSET1(a->bias);
    for (int64_t t = 0; t < a->nrows; ++t) {
        T *yr = a->y + t * w_out;
        for (int64_t col = 0; col < w_out; col += 4 * VL) {
            V acc[4] = {vb, vb, vb, vb};
            for (int64_t kh = 0; kh < KH; ++kh) {
                const T *row = a->rp[t * SH + kh * dh] + col;
                const T *wk = a->wt + kh * KW;
                for (int64_t j = 0; j < KW; ++j) {
                    const V wv = VSET1(wk[j]);
                    const T *q = row + toff[j];
                    for (int v = 0; v < 4; ++v) acc[v] = VFMA(wv, VLOAD(q + v * VL), acc[v]);
                }
            }
            for (int v = 0; v < 4; ++v) {
                const int64_t o = col + v * VL;
                if (o + VL <= w_out) {
                    VSTORE(yr + o, acc[v]);
                } else if (o < w_out) {
                    T tmp[VL];
                    VSTORE(tmp, acc[v]);
                    for (int64_t e = 0; e < w_out - o; ++e) yr[o + e] = tmp[e];
                }
            }
        }
    }
}

/* Buffer row for input row ih of plane xc: zeros outside the image; padded
 * column k (x column k - pl) at phase k % s, slot k / s.  tmp: s * L scratch. */
static void FN(dwv_fill_row_)(const T *xc, int64_t ih, int64_t h_in, int64_t w_in, int64_t pl,
                              int64_t s, int64_t L, T *br, T *tmp)
{
    const int64_t P = s * L;
    if (ih < 0 || ih >= h_in) {
        const V z = VZERO();
        for (int64_t k = 0; k < P; k += VL) VSTORE(br + k, z);
        return;
    }
    const T *xr = xc + ih * w_in;
    T *pr = s == 1 ? br : tmp;
    const int64_t a = fc_min64(pl, P);
    const int64_t len = fc_max64(0, fc_min64(w_in, P - a));
    /* left zeros, the row, right zeros (P is a multiple of VL) */
    const V z = VZERO();
    int64_t k = 0;
    for (; k + VL <= a; k += VL) VSTORE(pr + k, z);
    for (; k < a; ++k) pr[k] = 0;
    int64_t e = 0;
    for (; e + VL <= len; e += VL) VSTORE(pr + a + e, VLOAD(xr + e));
    for (; e < len; ++e) pr[a + e] = xr[e];
    k = a + len;
    for (; k < P && (k % VL); ++k) pr[k] = 0;
    for (; k < P; k += VL) VSTORE(pr + k, z);
    if (s == 2) {
        for (int64_t j = 0; j < L; j += VL) {
            V ev, od;
            VDEINT2(VLOAD(tmp + 2 * j), VLOAD(tmp + 2 * j + VL), &ev, &od);
            VSTORE(br + j, ev);
            VSTORE(br + L + j, od);
        }
    } else if (s > 2) {
        for (int64_t p = 0; p < s; ++p)
            for (int64_t j = 0; j < L; ++j) br[p * L + j] = tmp[p + s * j];
    }
}

/* ---- Narrow planes: channels in the vector lanes ------------------------
 * For planes a few vectors wide (7x7, 14x14) the row kernel above spends
 * its time on edges, masks and per-row work.  Here a block of VL channels is
 * transposed (VLxVL in registers) into a zero-padded channels-last buffer
 * [padded row][padded column][VL], every output pixel is then VL channels x
 * taps FMAs with plain loads (any kernel, stride, dilation; 8 pixels per tile,
 * the weights as [tap][VL] vectors), and the pixel-major result is transposed
 * back into the VL output planes.  Multiplier 1 and c_in % VL == 0 only. */
typedef struct {
    int64_t Hp, Wp;      /* padded rows / columns the outputs need */
    int64_t pt, pl;
} FN(dwc_geom_);

static int64_t FN(dwc_buf_elems_)(const fc_conv_desc *d, FN(dwc_geom_) *g)
{
    g->Hp = (d->h_out - 1) * d->stride_h + (d->kh - 1) * d->dil_h + 1;
    g->Wp = (d->w_out - 1) * d->stride_w + (d->kw - 1) * d->dil_w + 1;
    g->pt = d->pad_top;
    g->pl = d->pad_left;
    /* + slack: the last tile of a row runs up to 7 pixels past it */
    return (g->Hp * g->Wp + 8 * d->stride_w + 8) * VL;
}

/* VL rows (stride ss) of n <= VL elements -> n vectors of VL lanes at dst, dst + VL, ... */
DWV_AI void FN(dwc_tr_in_)(const T *src, int64_t ss, int64_t n, T *dst)
{
    static const MASKT tail[2 * VL] = {-1, -1, -1, -1,
#if VL == 8
                                    -1, -1, -1, -1, 0, 0, 0, 0,
#endif
                                    0, 0, 0, 0};
    V r[VL];
    if (n == VL) {
#pragma GCC unroll 8
        for (int l = 0; l < VL; ++l) r[l] = VLOAD(src + l * ss);
        VTRANSPOSE(r);
#pragma GCC unroll 8
        for (int l = 0; l < VL; ++l) VSTORE(dst + l * VL, r[l]);
    } else {
        const __m256i m = MLOAD(tail + VL - n);
#pragma GCC unroll 8
        for (int l = 0; l < VL; ++l) r[l] = VMASKLOAD(src + l * ss, m);
        VTRANSPOSE(r);
#pragma GCC unroll 8
        for (int l = 0; l < VL; ++l)
            if (l < n) VSTORE(dst + l * VL, r[l]);
    }
}

/* Channels-last tiles: P (7 or 8) pixels of one output row, the taps unrolled. */
DWV_AI void FN(dwc_compute_)(const T *buf, T *obuf, const T *wpk, const V vb, int64_t h_out,
                             int64_t w_out, int64_t Wp, int64_t sh, const int KH, const int KW,
                             const int SW, int kind, const int P)
{
    for (int64_t oh = 0; oh < h_out; ++oh) {
        const T *rb = buf + oh * sh * Wp * VL;
        T *ob = obuf + oh * w_out * VL;
        for (int64_t ow = 0; ow < w_out; ow += P) {
            V acc[8];
#pragma GCC unroll 8
            for (int p = 0; p < P; ++p) acc[p] = vb;
#pragma GCC unroll 5
            for (int kh = 0; kh < KH; ++kh) {
                const T *row = rb + (kh * Wp + ow * SW) * VL;
#pragma GCC unroll 5
                for (int kw = 0; kw < KW; ++kw) {
                    const V wv = VLOAD(wpk + (kh * KW + kw) * VL);
#pragma GCC unroll 8
                    for (int p = 0; p < P; ++p)
                        acc[p] = VFMA(wv, VLOAD(row + (p * SW + kw) * VL), acc[p]);
                }
            }
            if (kind == FC_ACT_RELU) {
#pragma GCC unroll 8
                for (int p = 0; p < P; ++p) acc[p] = VACT_KIND(FC_ACT_RELU, acc[p]);
            } else if (kind == FC_ACT_RELU6) {
#pragma GCC unroll 8
                for (int p = 0; p < P; ++p) acc[p] = VACT_KIND(FC_ACT_RELU6, acc[p]);
            }
#pragma GCC unroll 8
            for (int p = 0; p < P; ++p) VSTORE(ob + (ow + p) * VL, acc[p]);
        }
    }
}

static void FN(dwc_compute_g_)(const T *buf, T *obuf, const T *wpk, const V vb, int64_t h_out,
                               int64_t w_out, int64_t Wp, int64_t sh, int64_t sw, int64_t KH,
                               int64_t KW, int64_t dh, int64_t dwl, int kind)
{
    for (int64_t oh = 0; oh < h_out; ++oh) {
        const T *rb = buf + oh * sh * Wp * VL;
        T *ob = obuf + oh * w_out * VL;
        for (int64_t ow = 0; ow < w_out; ow += 8) {
            V acc[8];
            for (int p = 0; p < 8; ++p) acc[p] = vb;
            const T *wt = wpk;
            for (int64_t kh = 0; kh < KH; ++kh) {
                const T *row = rb + (kh * dh * Wp + ow * sw) * VL;
                for (int64_t kw = 0; kw < KW; ++kw, wt += VL) {
                    const V wv = VLOAD(wt);
                    const T *q = row + kw * dwl * VL;
#pragma GCC unroll 8
                    for (int p = 0; p < 8; ++p)
                        acc[p] = VFMA(wv, VLOAD(q + p * sw * VL), acc[p]);
                }
            }
            if (kind == FC_ACT_RELU) {
#pragma GCC unroll 8
                for (int p = 0; p < 8; ++p) acc[p] = VACT_KIND(FC_ACT_RELU, acc[p]);
            } else if (kind == FC_ACT_RELU6) {
#pragma GCC unroll 8
                for (int p = 0; p < 8; ++p) acc[p] = VACT_KIND(FC_ACT_RELU6, acc[p]);
            }
#pragma GCC unroll 8
            for (int p = 0; p < 8; ++p) VSTORE(ob + (ow + p) * VL, acc[p]);
        }
    }
}

/* One block of VL channels of image n: x planes -> buf -> obuf -> y planes. */
static void FN(dwc_block_)(const fc_conv_desc *d, const FN(dwc_geom_) *g, const T *xb,
                           const T *wb, const T *bias, T *yb, int kind,
                           const fc_activation *post, T *buf, T *obuf, T *wpk)
{
    const int64_t h_in = d->h_in, w_in = d->w_in, hw_in = h_in * w_in;
    const int64_t h_out = d->h_out, w_out = d->w_out, hw_out = h_out * w_out;
    const int64_t KH = d->kh, KW = d->kw, taps = KH * KW;
    const int64_t sh = d->stride_h, sw = d->stride_w, dh = d->dil_h, dwl = d->dil_w;
    const int64_t Wp = g->Wp;
    /* weights [tap][VL] */
    for (int64_t t = 0; t < taps; t += VL)
        FN(dwc_tr_in_)(wb + t, taps, fc_min64(VL, taps - t), wpk + t * VL);
    /* input: rows of VL planes, VL columns at a time, transposed */
    const int64_t r0 = fc_max64(0, -g->pt), r1 = fc_min64(h_in, g->Hp - g->pt);
    const int64_t c1 = fc_min64(w_in, Wp - g->pl);
    for (int64_t ih = r0; ih < r1; ++ih) {
        T *br = buf + ((ih + g->pt) * Wp + g->pl) * VL;
        for (int64_t iw = 0; iw < c1; iw += VL)
            FN(dwc_tr_in_)(xb + ih * w_in + iw, hw_in, fc_min64(VL, c1 - iw), br + iw * VL);
    }
    /* compute: 8 output pixels of a row per tile (the last one spills into
     * the next row's pixels of obuf, computed after it) */
    const V vb = bias ? VLOAD(bias) : VZERO();
    /* 7-pixel tiles where they divide the row and 8 do not (7, 14, 21, 28 wide) */
    const int p7 = w_out % 7 == 0 && w_out % 8 != 0;
#define DWC_SHAPE(K, S)                                                                        \
    if (KH == K && KW == K && dh == 1 && dwl == 1 && sw == S) {                              \
        if (p7)                                                                              \
            FN(dwc_compute_)(buf, obuf, wpk, vb, h_out, w_out, Wp, sh, K, K, S, kind, 7);    \
        else                                                                                 \
            FN(dwc_compute_)(buf, obuf, wpk, vb, h_out, w_out, Wp, sh, K, K, S, kind, 8);    \
    } else
    DWC_SHAPE(3, 1) DWC_SHAPE(3, 2) DWC_SHAPE(5, 1) DWC_SHAPE(5, 2)
#undef DWC_SHAPE
        FN(dwc_compute_g_)(buf, obuf, wpk, vb, h_out, w_out, Wp, sh, sw, KH, KW, dh, dwl, kind);
    /* output: VL pixels at a time, transposed into the VL planes */
    for (int64_t q = 0; q < hw_out; q += VL) {
        const int64_t nv = fc_min64(VL, hw_out - q);
        V r[VL];
        for (int l = 0; l < VL; ++l) r[l] = VLOAD(obuf + (q + l) * VL);
        VTRANSPOSE(r);
        if (nv == VL) {
            for (int l = 0; l < VL; ++l) VSTORE(yb + l * hw_out + q, r[l]);
        } else {
            for (int l = 0; l < VL; ++l) {
                T tmp[VL];
                VSTORE(tmp, r[l]);
                for (int64_t e = 0; e < nv; ++e) yb[l * hw_out + q + e] = tmp[e];
            }
        }
    }
    if (kind != FC_ACT_IDENTITY && kind != FC_ACT_RELU && kind != FC_ACT_RELU6)
        FN(fc_activate_serial_)(yb, yb, (size_t)(VL * hw_out), post);
}

static int FN(dwc_run_)(const fc_conv_desc *d, const T *x, const T *w, const T *bias, T *y,
                        const fc_activation *post, int kind, int nthreads)
{
    FN(dwc_geom_) g;
    const int64_t belems = FN(dwc_buf_elems_)(d, &g);
    const int64_t hw_out = d->h_out * d->w_out;
    /* obuf: whole rows of 8-pixel tiles */
    const int64_t oelems = (hw_out + 16) * VL;
    const int64_t taps = d->kh * d->kw;
    const int64_t nb = d->c_in / VL, items = d->n * nb;
    const double flops = 2.0 * (double)(d->n * d->c_out * hw_out) * (double)taps;
    const int par = nthreads > 1 && flops > 4.0e5 && items > 1;
    int64_t chunk = (int64_t)(3.0e4 / (flops / (double)items + 1.0)) + 1;
    if (chunk > items / (2 * nthreads)) chunk = fc_max64(1, items / (2 * nthreads));
    int err = 0;
#ifdef _OPENMP
#pragma omp parallel if (par)
#endif
    {
        T *buf = (T *)calloc((size_t)(belems + oelems + taps * VL), sizeof(T));
        if (!buf) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            err = 1;
        }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, chunk)
#endif
        for (int64_t it = 0; it < items; ++it) {
            if (!buf) continue;
            const int64_t n = it / nb, c0 = (it % nb) * VL;
            FN(dwc_block_)(d, &g, x + (n * d->c_in + c0) * d->h_in * d->w_in, w + c0 * taps,
                           bias ? bias + c0 : NULL, y + (n * d->c_out + c0) * hw_out, kind, post,
                           buf, buf + belems, buf + belems + oelems);
        }
        free(buf);
    }
    return err ? FC_ENOMEM : FC_OK;
}

static int CAT(FN(fc_dw_avx2_), _impl)(const fc_conv_desc *d, const T *x, const T *w,
                                      const T *bias, T *y, const fc_activation *post)
{
    const int kind = post ? post->kind : FC_ACT_IDENTITY;
    if (kind < 0 || kind >= FC_ACT_COUNT) return FC_EINVAL;
#ifdef _OPENMP
    const int nthreads = omp_get_max_threads();
#else
    const int nthreads = 1;
#endif
    const int64_t KH = d->kh, KW = d->kw, SH = d->stride_h, SW = d->stride_w;
    const int64_t dh = d->dil_h, dw = d->dil_w, pl = d->pad_left;
    const int64_t mult = d->c_out / d->groups;
    const int64_t h_in = d->h_in, w_in = d->w_in, h_out = d->h_out, w_out = d->w_out;
    const int64_t nvec = (w_out + VL - 1) / VL, nfull = w_out / VL, rem = w_out - nfull * VL;

    /* Narrow planes: channels in the lanes. */
    if (mult == 1 && d->c_in % VL == 0 && d->pad_left >= 0 &&
        (w_out <= DWC_MAX_W || (w_out <= 32 && KH * KW >= 20)) &&
        d->pad_top >= 0)
        return FN(dwc_run_)(d, x, w, bias, y, post, kind, nthreads);

    /* Shape: an unrolled one, else the generic tile. */
    int shape = -1;
    if (dh == 1 && dw == 1 && KH == KW && SH == SW) {
        if (KH == 3 && SH == 1) shape = 0;
        else if (KH == 3 && SH == 2) shape = 1;
        else if (KH == 5 && SH == 1) shape = 2;
        else if (KH == 5 && SH == 2) shape = 3;
    }
    /* Direct mode (stride 1): x rows read in place, masked loads on the edge
     * vectors, zero rows for the vertical padding.  Buffer mode otherwise. */
    const int direct = shape >= 0;
    static const FN(dwv_fn_) fns[4][3] = {
        {FN(dwv_k3s1_id_), FN(dwv_k3s1_relu_), FN(dwv_k3s1_relu6_)},
        {FN(dwv_k3s2_id_), FN(dwv_k3s2_relu_), FN(dwv_k3s2_relu6_)},
        {FN(dwv_k5s1_id_), FN(dwv_k5s1_relu_), FN(dwv_k5s1_relu6_)},
        {FN(dwv_k5s2_id_), FN(dwv_k5s2_relu_), FN(dwv_k5s2_relu6_)},
    };
    int in_regs = kind == FC_ACT_IDENTITY || kind == FC_ACT_RELU || kind == FC_ACT_RELU6;
    if (shape < 0) in_regs = kind == FC_ACT_IDENTITY;
    const FN(dwv_fn_) fn = shape < 0 ? NULL
                           : fns[shape][kind == FC_ACT_RELU ? 1 : kind == FC_ACT_RELU6 ? 2 : 0];
    /* output rows per group (the input rows they share are set up once) */
    static const int64_t group_rows[4] = {DWV_K3S1_RM, DWV_K3S2_RM, DWV_K5S1_RM, DWV_K5S2_RM};
    const int64_t G = shape < 0 ? 4 : fc_max64(4, group_rows[shape]);

    /* Buffer mode: phase rows of whole vectors of output columns plus the taps. */
    const int64_t L = (nvec * VL + ((KW - 1) * dw) / SW + VL - 1) / VL * VL;
    const int64_t sL = SW * L;
    /* Direct mode: vectors whose taps all fall inside the row are interior. */
    int64_t nl = 0, ni = 0;
    if (direct) {
        /* vector v reads x columns [v VL SW - pl, v VL SW - pl + ext) */
        const int64_t ext = SW == 1 ? (KW - 1) + VL : 2 * ((KW - 1) / 2) + 2 * VL;
        const int64_t vlo = (pl + VL * SW - 1) / (VL * SW);
        const int64_t hi = w_in - ext + pl;   /* largest interior start column */
        const int64_t vhi = hi < 0 ? -1 : fc_min64(nfull - 1, hi / (VL * SW));
        if (vlo <= vhi) { nl = vlo; ni = vhi - vlo + 1; }
        else { nl = nfull; ni = 0; }
    }
    const int64_t nedge = nvec - ni;

    /* Work split: planes x row blocks (multiples of 4 rows), enough items
     * for the threads; the buffer stays within ~64 K elements. */
    const double flops = 2.0 * (double)(d->n * d->c_out * h_out * w_out) * (double)(KH * KW);
    const int par = nthreads > 1 && flops > 4.0e5;
    const int64_t planes = d->n * d->c_in;
    int64_t nblk = 1;
    if (par && planes < 4 * (int64_t)nthreads)
        nblk = (4 * (int64_t)nthreads + planes - 1) / planes;
    int64_t rows = (h_out + nblk - 1) / nblk;
    if (rows > G) rows = (rows + G - 1) / G * G;
    if (!direct) {
        const int64_t cap = fc_max64(G, (65536 / sL) / SH / G * G);
        if (rows > cap) rows = cap;
    }
    nblk = (h_out + rows - 1) / rows;
    const int64_t buf_rows = direct ? 0 : (rows - 1) * SH + (KH - 1) * dh + 1;
    const int64_t items = planes * nblk;
    const double item_flops = flops / (double)items;
    int64_t chunk = (int64_t)(3.0e4 / (item_flops + 1.0)) + 1;
    if (chunk > items / (2 * nthreads)) chunk = fc_max64(1, items / (2 * nthreads));
    const int64_t NIMAX = (G - 1) * SH + (KH - 1) * dh + 1;   /* input rows of a group */
    if (NIMAX > 256 || KW > 64) return FC_EINVAL;

    int64_t toff[64];
    if (shape < 0)
        for (int64_t j = 0; j < KW; ++j) toff[j] = ((j * dw) % SW) * L + (j * dw) / SW;
    /* Shared read-only data: the edge masks and a zero row. */
    MASKT *masks = NULL;
    T *zrow = NULL;
    if (direct) {
        const int64_t ms = DWV_MS(KW, SW);
        masks = (MASKT *)malloc((size_t)(nedge * ms * VL) * sizeof(MASKT) + 1);
        zrow = (T *)calloc((size_t)(w_in + 2 * VL), sizeof(T));
        if (!masks || !zrow) {
            free(masks); free(zrow);
            return FC_ENOMEM;
        }
        for (int64_t e = 0; e < nedge; ++e) {
            const int64_t v = e < nl ? e : e + ni;
            for (int64_t j = 0; j < ms; ++j)   /* stride 2: load j at 2 v VL + (j / 2) 2 + (j % 2) VL */
                for (int64_t l = 0; l < VL; ++l) {
                    const int64_t c = SW == 1 ? v * VL + l - pl + j
                                              : 2 * v * VL - pl + (j / 2) * 2 + (j % 2) * VL + l;
                    masks[(e * ms + j) * VL + l] = (c >= 0 && c < w_in) ? (MASKT)-1 : 0;
                }
        }
    }
    const size_t buf_elems = direct ? 1 : (size_t)(buf_rows * sL) + (size_t)sL + 64;
    int err = 0;
#ifdef _OPENMP
#pragma omp parallel if (par)
#endif
    {
        T *buf = (T *)malloc(buf_elems * sizeof(T));
        T *tmp = buf ? buf + buf_rows * sL : NULL;
        if (!buf) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            err = 1;
        }
        const T *rp[256];
        FN(dwv_args_) a;
        a.rp = rp;
        a.L = L;
        a.w_out = w_out;
        a.nl = nl;
        a.ni = ni;
        a.nfull = nfull;
        a.rem = rem;
        a.masks = masks;
        a.spill_ok = VL - rem <= w_out;
        a.nt = DWV_NT && ((uintptr_t)y % 32 == 0) && (w_out % VL == 0) &&
               (double)(d->n * d->c_out * h_out * w_out) * sizeof(T) > DWV_NT_BYTES;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, chunk)
#endif
        for (int64_t it = 0; it < items; ++it) {
            if (!buf) continue;
            const int64_t blk = it % nblk, pc = it / nblk, ic = pc % d->c_in, n = pc / d->c_in;
            const int64_t oh0 = blk * rows, oh1 = fc_min64(h_out, oh0 + rows);
            const int64_t ih0 = oh0 * SH - d->pad_top;   /* input row of buffer row 0 */
            const T *xc = x + (n * d->c_in + ic) * h_in * w_in;
            int64_t filled = 0;
            for (int64_t t0 = 0; t0 < oh1 - oh0; t0 += G) {
                const int64_t t1 = fc_min64(oh1 - oh0, t0 + G);
                const int64_t nin = (t1 - t0 - 1) * SH + (KH - 1) * dh + 1;
                if (direct) {
                    for (int64_t i = 0; i < nin; ++i) {
                        const int64_t ih = ih0 + t0 * SH + i;
                        rp[i] = ((ih >= 0 && ih < h_in) ? xc + ih * w_in : zrow) - pl;
                    }
                } else {
                    const int64_t need = t0 * SH + nin;
                    for (; filled < need; ++filled)
                        FN(dwv_fill_row_)(xc, ih0 + filled, h_in, w_in, pl, SW, L,
                                          buf + filled * sL, tmp);
                    for (int64_t i = 0; i < nin; ++i) rp[i] = buf + (t0 * SH + i) * sL;
                }
                a.nrows = t1 - t0;
                a.safe_last = t1 == oh1 - oh0;
                for (int64_t m = 0; m < mult; ++m) {
                    const int64_t oc = ic * mult + m;
                    a.wt = w + oc * KH * KW;
                    a.bias = bias ? bias[oc] : (T)0;
                    a.y = y + ((n * d->c_out + oc) * h_out + oh0 + t0) * w_out;
                    if (fn)
                        fn(&a);
                    else
                        FN(dwv_generic_)(&a, KH, KW, SH, dh, toff);
                    if (!in_regs)
                        FN(fc_activate_serial_)(a.y, a.y, (size_t)((t1 - t0) * w_out), post);
                }
            }
        }
        free(buf);
    }
    free(masks);
    free(zrow);
    return err ? FC_ENOMEM : FC_OK;
}

#undef DWV_AI
#undef DWV_MAXR
#undef DWV_MAXV
#undef FN
#undef CAT
#undef CAT_
