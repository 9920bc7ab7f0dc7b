/*
 * The channels-last depthwise kernel for one float type and instruction set
 * (see conv_depthwise_nhwc.h), included by conv_depthwise_nhwc.c (portable),
 * conv_depthwise_nhwc_avx2.c and conv_depthwise_nhwc_avx512.c with T, SFX, V,
 * VL, VLOAD, VSTORE, VZERO, VFMA, VRELU(x, zero) (the avx2_vec_*.h /
 * avx512_vec_*.h vocabulary), VRELU6(x) (x > 6 ? 6 : x < 0 ? 0 : x, NaN and
 * -0.0 kept) and FC_DWN_ENTRY (the entry's name before the type suffix)
 * defined; DWN_NV and DWN_P* (the tile shapes), SFMA (a scalar FMA) and
 * VKEEP (see below) may be.
 *
 * Work item: one (image, band of output rows); an output row is
 *
 *  - interior pixels (every kw tap inside the input row): tiles of P
 *    consecutive pixels x NV vectors of VL channels.  For the unrolled shapes
 *    (kw 3, 5, 7 at stride 1, kw 3, 5 at stride 2, no dilation) each kernel
 *    row loads its KW x NV weight vectors once and every input column the tile
 *    reaches once, each feeding the (up to KW) pixels that use it: 3x3 stride
 *    1, P = 8: 10 loads per 24 FMAs and vector of channels, besides the 3
 *    weights.  Other shapes loop over the taps at run time (one load per
 *    FMA).  The rest of the row's interior: tiles of 4, 2, 1 pixels.
 *  - edge pixels (some tap in the left/right padding): one pixel x NV vectors
 *    over the taps inside the row.
 *  - channels: blocks of NV vectors, then single vectors, and when VL does
 *    not divide C a last vector at C - VL that overlaps the one before (the
 *    channels it shares are computed twice, the same values stored twice).
 *  - kernel rows in the top/bottom padding are left out of the loops: exact
 *    when every weight is finite.  Otherwise (inf or NaN weights: such taps add
 *    w * 0 = NaN, as torch's zero padding does) the rows that touch the
 *    padding, and channel counts below VL (conv_depthwise_nhwc.c sends those
 *    to a narrower set where there is one), take a loop over every tap and
 *    all the row's pixels that accumulates in the output row (dwn_row_slow_).
 *
 * Bias initialises the accumulators; identity, relu and relu6 are applied in
 * registers before the single store, the other activations as one pass over
 * each output row just written (in L1), by the shared activation loops.
 */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

#if defined(__GNUC__) || defined(__clang__)
#define DWN_AI static inline __attribute__((always_inline))
#define DWN_PRAGMA(x) _Pragma(#x)
#define DWN_UNROLL(n) DWN_PRAGMA(GCC unroll n)
#else
#define DWN_AI static inline
#define DWN_UNROLL(n)
#endif

/* Tile shapes: channel vectors, pixels per shape (by register count: P * NV
 * accumulators + KW * NV weights + NV inputs). */
#ifndef DWN_NV
#define DWN_NV 1
#endif
#ifndef DWN_P3
#define DWN_P3 8        /* kw 3, stride 1 */
#endif
#ifndef DWN_P3S2
#define DWN_P3S2 8      /* kw 3, stride 2 */
#endif
#ifndef DWN_P5
#define DWN_P5 8        /* kw 5, strides 1 and 2 */
#endif
#ifndef DWN_P7
#define DWN_P7 6        /* kw 7, stride 1 */
#endif
#ifndef DWN_PG
#define DWN_PG 8        /* run-time shapes */
#endif
/* SFMA(a, b, c): a * b + c on scalars, rounded as VFMA rounds it (the
 * channels past the last whole vector, which the other widths' kernels may
 * take in a vector: the same bits at every width). */
#ifndef SFMA
#define SFMA(a, b, c) ((a) * (b) + (c))
#endif
/* VKEEP(v): v stays in a register (not folded back into each FMA as a
 * memory operand: three loads of every input, cache-line-splitting ones for
 * the 16-byte-aligned arrays NumPy allocates); a no-op where not defined. */
#ifndef VKEEP
#define VKEEP(v) ((void)0)
#endif
#define DWN_PMAX 16
#define DWN_NVMAX 4
#define DWN_KWMAX 8

/* Above this many FLOPs the bands are shared among the threads. */
#ifndef DWN_PARALLEL_MIN_FLOPS
#define DWN_PARALLEL_MIN_FLOPS 5.0e5
#endif

typedef struct {
    const fc_conv_desc *d;
    const T *x;                  /* image 0 */
    int64_t xsn, xsh, xsw;
    const T *w, *b;              /* [tap][C] weights, C biases */
    T *y;
    int64_t C, KH, KW, SH, SW, DH, DW, PT, PL;
    int64_t ow_lo, ow_hi;        /* interior output columns [ow_lo, ow_hi) */
    int kind;                    /* applied in registers: identity, relu or relu6 */
    int late;                    /* post applied to each row after its stores */
    int pre_relu, finite;
    const fc_activation *post;
} FN(dwn_ctx_);

/* P pixels x NV vectors of channels.  xr: x at the first kernel row the
 * tile reads (nkh rows, DH * xsh apart), the column of pixel 0's first tap
 * and the tile's first channel; wt: the weights of that row (KW * C apart per
 * row) at that channel; bias at that channel; yp: the output of pixel 0.
 * KW > 0: that many taps, unrolled, SW and DW the stride and dilation.
 * KW == 0: the context's shape at run time, taps kw0 <= kw < kw0 + nkw (xr
 * at tap kw0's column). */
DWN_AI void FN(dwn_tile_)(const FN(dwn_ctx_) *c, const T *xr, const T *wt, int64_t nkh,
                          int64_t kw0, int64_t nkw, const T *bias, T *yp, const int P,
                          const int NV, const int KW, const int SW, const int DW,
                          const int PRE)
{
    const int64_t C = c->C, xsw = c->xsw, rstep = c->DH * c->xsh, wstep = c->KW * C;
    const V z = VZERO();
    (void)z;   /* (unused where VRELU ignores it) */
    V acc[DWN_PMAX][DWN_NVMAX];
    DWN_UNROLL(4)
    for (int v = 0; v < NV; ++v) {
        const V bv = VLOAD(bias + v * VL);
        DWN_UNROLL(16)
        for (int p = 0; p < P; ++p) acc[p][v] = bv;
    }
    for (int64_t kh = 0; kh < nkh; ++kh, xr += rstep, wt += wstep) {
        if (KW > 0) {
            V wv[DWN_KWMAX][DWN_NVMAX];
            DWN_UNROLL(8)
            for (int j = 0; j < KW; ++j)
                DWN_UNROLL(4)
                for (int v = 0; v < NV; ++v) {
                    wv[j][v] = VLOAD(wt + j * C + v * VL);
                    VKEEP(wv[j][v]);
                }
            /* input column i (from pixel 0's first tap) feeds pixel (i - j DW) / SW at
             * tap j; one running pointer (offsets i * xsw would take a register each) */
            const T *xi = xr;
            DWN_UNROLL(32)
            for (int i = 0; i < (P - 1) * SW + (KW - 1) * DW + 1; ++i, xi += xsw) {
                int used = 0;
                DWN_UNROLL(8)
                for (int j = 0; j < KW; ++j) {
                    const int q = i - j * DW;
                    used |= q >= 0 && q % SW == 0 && q / SW < P;
                }
                if (!used) continue;
                V xv[DWN_NVMAX];
                DWN_UNROLL(4)
                for (int v = 0; v < NV; ++v) {
                    xv[v] = VLOAD(xi + v * VL);
                    VKEEP(xv[v]);
                    if (PRE) xv[v] = VRELU(xv[v], z);
                }
                DWN_UNROLL(8)
                for (int j = 0; j < KW; ++j) {
                    const int q = i - j * DW;
                    if (q < 0 || q % SW != 0 || q / SW >= P) continue;
                    DWN_UNROLL(4)
                    for (int v = 0; v < NV; ++v)
                        acc[q / SW][v] = VFMA(xv[v], wv[j][v], acc[q / SW][v]);
                }
            }
        } else {
            const int64_t ps = c->SW * xsw, ts = c->DW * xsw;
            for (int64_t kw = 0; kw < nkw; ++kw) {
                const T *wk = wt + (kw0 + kw) * C;
                const T *q = xr + kw * ts;
                V wv[DWN_NVMAX];
                DWN_UNROLL(4)
                for (int v = 0; v < NV; ++v) wv[v] = VLOAD(wk + v * VL);
                DWN_UNROLL(16)
                for (int p = 0; p < P; ++p)
                    DWN_UNROLL(4)
                    for (int v = 0; v < NV; ++v) {
                        V xv = VLOAD(q + p * ps + v * VL);
                        if (PRE) xv = VRELU(xv, z);
                        acc[p][v] = VFMA(xv, wv[v], acc[p][v]);
                    }
            }
        }
    }
    if (c->kind == FC_ACT_RELU) {
        DWN_UNROLL(16)
        for (int p = 0; p < P; ++p)
            DWN_UNROLL(4)
            for (int v = 0; v < NV; ++v) acc[p][v] = VRELU(acc[p][v], z);
    } else if (c->kind == FC_ACT_RELU6) {
        DWN_UNROLL(16)
        for (int p = 0; p < P; ++p)
            DWN_UNROLL(4)
            for (int v = 0; v < NV; ++v) acc[p][v] = VRELU6(acc[p][v]);
    }
    DWN_UNROLL(16)
    for (int p = 0; p < P; ++p)
        DWN_UNROLL(4)
        for (int v = 0; v < NV; ++v) VSTORE(yp + p * C + v * VL, acc[p][v]);
}

/* Every channel of P pixels (C >= VL): blocks of NV vectors, single vectors,
 * then the last vector at C - VL. */
DWN_AI void FN(dwn_channels_)(const FN(dwn_ctx_) *c, const T *xr, const T *wt, int64_t nkh,
                              int64_t kw0, int64_t nkw, T *yp, const int P, const int NV,
                              const int KW, const int SW, const int DW, const int PRE)
{
    const int64_t C = c->C;
    int64_t c0 = 0;
    if (NV > 1)
        for (; c0 + NV * VL <= C; c0 += NV * VL)
            FN(dwn_tile_)(c, xr + c0, wt + c0, nkh, kw0, nkw, c->b + c0, yp + c0, P, NV, KW, SW,
                          DW, PRE);
    for (; c0 + VL <= C; c0 += VL)
        FN(dwn_tile_)(c, xr + c0, wt + c0, nkh, kw0, nkw, c->b + c0, yp + c0, P, 1, KW, SW, DW,
                      PRE);
    if (c0 < C) {
        c0 = C - VL;
        FN(dwn_tile_)(c, xr + c0, wt + c0, nkh, kw0, nkw, c->b + c0, yp + c0, P, 1, KW, SW, DW,
                      PRE);
    }
}

/* The interior pixels of one output row: tiles of P, then of 4, 2 and 1 for
 * the rest.  xrow: x at the first kernel row's input row (column 0, channel
 * 0); wt: that row's weights; yr: the output row. */
DWN_AI void FN(dwn_span_)(const FN(dwn_ctx_) *c, const T *xrow, const T *wt, int64_t nkh,
                          T *yr, const int KW, const int SW, const int DW, const int P,
                          const int NV, const int PRE)
{
    const int64_t hi = c->ow_hi, C = c->C, KWr = c->KW;
    /* pixel ow's first tap: column ow * SW - PL (>= 0 in the interior) */
    const int64_t ps = c->SW * c->xsw, x0 = -c->PL * c->xsw;
    int64_t ow = c->ow_lo;
    for (; ow + P <= hi; ow += P)
        FN(dwn_channels_)(c, xrow + (x0 + ow * ps), wt, nkh, 0, KWr, yr + ow * C, P, NV, KW, SW,
                          DW, PRE);
    if (P > 4 && ow + 4 <= hi) {
        FN(dwn_channels_)(c, xrow + (x0 + ow * ps), wt, nkh, 0, KWr, yr + ow * C, 4, NV, KW, SW,
                          DW, PRE);
        ow += 4;
    }
    if (P > 2 && ow + 2 <= hi) {
        FN(dwn_channels_)(c, xrow + (x0 + ow * ps), wt, nkh, 0, KWr, yr + ow * C, 2, NV, KW, SW,
                          DW, PRE);
        ow += 2;
    }
    if (ow < hi)
        FN(dwn_channels_)(c, xrow + (x0 + ow * ps), wt, nkh, 0, KWr, yr + ow * C, 1, NV, KW, SW,
                          DW, PRE);
}

typedef void (*FN(dwn_span_fn_))(const FN(dwn_ctx_) *, const T *, const T *, int64_t, T *);

/* The unrolled shapes and the run-time one, each without and with the
 * pre-activation. */
#define DWN_SPAN(NAME, KW, SW, DW, P)                                                         \
    static void FN(NAME##_)(const FN(dwn_ctx_) *c, const T *xr, const T *wt, int64_t nkh,     \
                            T *yr)                                                            \
    { FN(dwn_span_)(c, xr, wt, nkh, yr, KW, SW, DW, P, DWN_NV, 0); }                          \
    static void FN(NAME##_pre_)(const FN(dwn_ctx_) *c, const T *xr, const T *wt, int64_t nkh, \
                                T *yr)                                                        \
    { FN(dwn_span_)(c, xr, wt, nkh, yr, KW, SW, DW, P, DWN_NV, 1); }
DWN_SPAN(dwn_k3s1, 3, 1, 1, DWN_P3)
DWN_SPAN(dwn_k3s2, 3, 2, 1, DWN_P3S2)
DWN_SPAN(dwn_k5s1, 5, 1, 1, DWN_P5)
DWN_SPAN(dwn_k5s2, 5, 2, 1, DWN_P5)
DWN_SPAN(dwn_k7s1, 7, 1, 1, DWN_P7)
DWN_SPAN(dwn_kgen, 0, 1, 1, DWN_PG)
#undef DWN_SPAN

/* An edge pixel (some tap in the left/right padding), every weight finite:
 * the taps inside the row only. */
static void FN(dwn_edge_)(const FN(dwn_ctx_) *c, const T *xrow, const T *wt, int64_t nkh,
                          T *yr, int64_t ow)
{
    const int64_t iw0 = ow * c->SW - c->PL, w_in = c->d->w_in, DW = c->DW;
    /* taps kw with 0 <= iw0 + kw DW < w_in */
    const int64_t kl = iw0 >= 0 ? 0 : (-iw0 + DW - 1) / DW;
    const int64_t kh_ = w_in - iw0 <= 0 ? 0 : fc_min64(c->KW, (w_in - iw0 + DW - 1) / DW);
    const int64_t nkw = kh_ > kl ? kh_ - kl : 0;
    const T *xr = nkw ? xrow + (iw0 + kl * DW) * c->xsw : xrow;
    if (c->pre_relu)
        FN(dwn_channels_)(c, xr, wt, nkh, kl, nkw, yr + ow * c->C, 1, DWN_NV, 0, 1, 1, 1);
    else
        FN(dwn_channels_)(c, xr, wt, nkh, kl, nkw, yr + ow * c->C, 1, DWN_NV, 0, 1, 1, 0);
}

/* y[k] = SFMA(x[k], w[k], y[k]) for k < C (x NULL: a zero input). */
DWN_AI void FN(dwn_axpy_)(const T *x, const T *w, T *y, int64_t C, const int PRE)
{
    const int64_t CV = C / VL * VL;
    const V z = VZERO();
    (void)z;
    if (!x) {
        for (int64_t k = 0; k < CV; k += VL) VSTORE(y + k, VFMA(z, VLOAD(w + k), VLOAD(y + k)));
        for (int64_t k = CV; k < C; ++k) y[k] = SFMA((T)0, w[k], y[k]);
        return;
    }
    for (int64_t k = 0; k < CV; k += VL) {
        V xv = VLOAD(x + k);
        if (PRE) xv = VRELU(xv, z);
        VSTORE(y + k, VFMA(xv, VLOAD(w + k), VLOAD(y + k)));
    }
    for (int64_t k = CV; k < C; ++k) {
        T xv = x[k];
        if (PRE && xv < (T)0) xv = (T)0;
        y[k] = SFMA(xv, w[k], y[k]);
    }
}

/* A whole output row, any channel count, inf/NaN weights: every tap, in the
 * tiles' order, over all the row's pixels at a time (accumulated in the
 * output row; the pixels are independent chains); taps in the padding add
 * w * 0 unless every weight is finite. */
static void FN(dwn_row_slow_)(const FN(dwn_ctx_) *c, const T *ximg, int64_t oh, T *yr)
{
    const fc_conv_desc *d = c->d;
    const int64_t C = c->C, CV = C / VL * VL, Wo = d->w_out;
    const V z = VZERO();
    (void)z;
    for (int64_t ow = 0; ow < Wo; ++ow) {
        for (int64_t k = 0; k < CV; k += VL) VSTORE(yr + ow * C + k, VLOAD(c->b + k));
        for (int64_t k = CV; k < C; ++k) yr[ow * C + k] = c->b[k];
    }
    for (int64_t kh = 0; kh < c->KH; ++kh) {
        const int64_t ih = oh * c->SH - c->PT + kh * c->DH;
        const int row_in = ih >= 0 && ih < d->h_in;
        if (!row_in && c->finite) continue;
        for (int64_t kw = 0; kw < c->KW; ++kw) {
            const T *wk = c->w + (kh * c->KW + kw) * C;
            int64_t lo = 0, hi = 0;   /* the pixels whose tap (kh, kw) is inside x */
            if (row_in) fc_valid_cols(kw * c->DW - c->PL, c->SW, d->w_in, Wo, &lo, &hi);
            if (!c->finite) {
                for (int64_t ow = 0; ow < lo; ++ow) FN(dwn_axpy_)(NULL, wk, yr + ow * C, C, 0);
                for (int64_t ow = hi; ow < Wo; ++ow) FN(dwn_axpy_)(NULL, wk, yr + ow * C, C, 0);
            }
            if (lo >= hi) continue;
            const T *xp = ximg + ih * c->xsh + (lo * c->SW - c->PL + kw * c->DW) * c->xsw;
            const int64_t ps = c->SW * c->xsw;
            if (c->pre_relu)
                for (int64_t ow = lo; ow < hi; ++ow, xp += ps)
                    FN(dwn_axpy_)(xp, wk, yr + ow * C, C, 1);
            else
                for (int64_t ow = lo; ow < hi; ++ow, xp += ps)
                    FN(dwn_axpy_)(xp, wk, yr + ow * C, C, 0);
        }
    }
    if (c->kind == FC_ACT_RELU) {
        for (int64_t ow = 0; ow < Wo; ++ow) {
            T *yp = yr + ow * C;
            for (int64_t k = 0; k < CV; k += VL) VSTORE(yp + k, VRELU(VLOAD(yp + k), z));
            for (int64_t k = CV; k < C; ++k) yp[k] = yp[k] < (T)0 ? (T)0 : yp[k];
        }
    } else if (c->kind == FC_ACT_RELU6) {
        for (int64_t ow = 0; ow < Wo; ++ow) {
            T *yp = yr + ow * C;
            for (int64_t k = 0; k < CV; k += VL) VSTORE(yp + k, VRELU6(VLOAD(yp + k)));
            for (int64_t k = CV; k < C; ++k)
                yp[k] = yp[k] > (T)6 ? (T)6 : yp[k] < (T)0 ? (T)0 : yp[k];
        }
    }
}

/* Output row oh of image n. */
static void FN(dwn_row_)(const FN(dwn_ctx_) *c, FN(dwn_span_fn_) span, int64_t n, int64_t oh)
{
    const fc_conv_desc *d = c->d;
    const int64_t C = c->C, Wo = d->w_out, KH = c->KH, DH = c->DH;
    const T *ximg = c->x + n * c->xsn;
    T *yr = c->y + (n * d->h_out + oh) * Wo * C;
    /* kernel rows [kl, kh_) inside the input */
    const int64_t ih0 = oh * c->SH - c->PT;
    const int64_t kl = ih0 >= 0 ? 0 : (-ih0 + DH - 1) / DH;
    const int64_t kh_ = d->h_in - ih0 <= 0 ? 0 : fc_min64(KH, (d->h_in - ih0 + DH - 1) / DH);
    const int64_t nkh = kh_ > kl ? kh_ - kl : 0;
    if (C < VL || (!c->finite && (nkh < KH || c->ow_lo > 0 || c->ow_hi < Wo))) {
        FN(dwn_row_slow_)(c, ximg, oh, yr);
    } else {
        const T *xrow = nkh ? ximg + (ih0 + kl * DH) * c->xsh : ximg;
        const T *wt = c->w + kl * c->KW * C;
        for (int64_t ow = 0; ow < c->ow_lo; ++ow) FN(dwn_edge_)(c, xrow, wt, nkh, yr, ow);
        span(c, xrow, wt, nkh, yr);
        for (int64_t ow = c->ow_hi; ow < Wo; ++ow) FN(dwn_edge_)(c, xrow, wt, nkh, yr, ow);
    }
    if (c->late) FN(fc_activate_serial_)(yr, yr, (size_t)(Wo * C), c->post);
}

int CAT(FC_DWN_ENTRY, SFX)(const fc_dwn_args *a)
{
    const fc_conv_desc *d = a->d;
    FN(dwn_ctx_) c;
    c.d = d;
    c.x = (const T *)a->x;
    c.xsn = a->xsn; c.xsh = a->xsh; c.xsw = a->xsw;
    c.C = d->c_in; c.KH = d->kh; c.KW = d->kw; c.SH = d->stride_h; c.SW = d->stride_w;
    c.DH = d->dil_h; c.DW = d->dil_w; c.PT = d->pad_top; c.PL = d->pad_left;
    c.w = (const T *)a->w;
    c.b = c.w + c.KH * c.KW * c.C;
    c.y = (T *)a->y;
    c.post = a->post;
    const int kind = a->post->kind;
    c.late = kind != FC_ACT_IDENTITY && kind != FC_ACT_RELU && kind != FC_ACT_RELU6;
    c.kind = c.late ? FC_ACT_IDENTITY : kind;
    c.pre_relu = a->pre_relu;
    c.finite = a->finite;
    /* interior: the first tap's column >= 0 and the last one's < w_in */
    int64_t lo0, hi0, lo1, hi1;
    fc_valid_cols(-c.PL, c.SW, d->w_in, d->w_out, &lo0, &hi0);
    fc_valid_cols((c.KW - 1) * c.DW - c.PL, c.SW, d->w_in, d->w_out, &lo1, &hi1);
    c.ow_lo = fc_max64(lo0, lo1);
    c.ow_hi = fc_max64(c.ow_lo, fc_min64(hi0, hi1));

    FN(dwn_span_fn_) span;
    const int pre = c.pre_relu;
    if (c.DW == 1 && c.KW == 3 && c.SW == 1) span = pre ? FN(dwn_k3s1_pre_) : FN(dwn_k3s1_);
    else if (c.DW == 1 && c.KW == 3 && c.SW == 2) span = pre ? FN(dwn_k3s2_pre_) : FN(dwn_k3s2_);
    else if (c.DW == 1 && c.KW == 5 && c.SW == 1) span = pre ? FN(dwn_k5s1_pre_) : FN(dwn_k5s1_);
    else if (c.DW == 1 && c.KW == 5 && c.SW == 2) span = pre ? FN(dwn_k5s2_pre_) : FN(dwn_k5s2_);
    else if (c.DW == 1 && c.KW == 7 && c.SW == 1) span = pre ? FN(dwn_k7s1_pre_) : FN(dwn_k7s1_);
    else span = pre ? FN(dwn_kgen_pre_) : FN(dwn_kgen_);

    /* bands of output rows: about 4 per thread when the call is threaded */
    const int64_t Ho = d->h_out;
    const double flops = 2.0 * (double)(d->n * c.C * Ho * d->w_out) * (double)(c.KH * c.KW);
#ifdef _OPENMP
    const int nthr = omp_get_max_threads();
#else
    const int nthr = 1;
#endif
    const int par = nthr > 1 && flops > DWN_PARALLEL_MIN_FLOPS;
    int64_t per_image = 1;
    if (par && d->n < 4 * (int64_t)nthr) per_image = fc_min64(Ho, (4 * nthr + d->n - 1) / d->n);
    const int64_t rows = (Ho + per_image - 1) / per_image;
    const int64_t nb = (Ho + rows - 1) / rows, items = d->n * nb;
    (void)par;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (par && items > 1)
#endif
    for (int64_t it = 0; it < items; ++it) {
        const int64_t n = it / nb, oh0 = (it % nb) * rows, oh1 = fc_min64(Ho, oh0 + rows);
        for (int64_t oh = oh0; oh < oh1; ++oh) FN(dwn_row_)(&c, span, n, oh);
    }
    return FC_OK;
}

#undef DWN_PMAX
#undef DWN_NVMAX
#undef DWN_KWMAX
#undef DWN_AI
#undef DWN_UNROLL
#undef DWN_PRAGMA
#undef FN
#undef CAT
#undef CAT_
