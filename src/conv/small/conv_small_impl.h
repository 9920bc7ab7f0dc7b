/* The small-problem kernel for one float type (included by conv_small_avx2.c
 * with T, SFX, V, VL and the vector macros defined).  See conv_small.h. */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

/* One job of the small kernel ("s" job): a block of output channels of one
 * image, with what its row loops read. */
typedef struct {
    const T *x;      /* image n, first channel of the group */
    const T *xlo, *xhi;  /* the whole input: border blocks load whole vectors inside it */
    const T *w;      /* OIHW weights of the block's first output channel */
    const T *bias;   /* bias of that channel, or NULL */
    T *y;            /* y at (n, oc0, 0, 0) */
    int64_t C, H, W, KH, KW, sh, dh, dw, pt, pl, wo, hwo, wocs;
    int finite;      /* no inf or NaN weight: the rows of padding may be skipped */
    const fc_activation *act;
} FN(sjob_);


/* The KW taps of one input row into the accumulators.  LD (the load kind):
 * 0 plain loads, 1 plain loads and the lane mask (padding and columns past
 * the end read as 0), 2 masked loads.  KWC (KW as a compile-time constant):
 * the kernel width when it is one of the unrolled ones, else 0. */
static inline __attribute__((always_inline)) void
FN(small_taps_)(V acc[4][4], const T *row, const T *wk, int64_t KW, int64_t dw, int64_t wocs,
                MASKT mk[][4][VL], const int NOC, const int NV, const int LD, const int KWC)
{
    if (KWC) KW = KWC;   /* a constant: the tap loop unrolls (not with masks: registers) */
#pragma GCC unroll 3
    for (int64_t kw = 0; kw < KW; ++kw) {
        if (!KWC && kw == KW) break;
        const T *r = row + kw * dw;
        const T *wp = wk + kw;
#define SMALL_LOADX(v)                                                                        \
    (LD == 0 ? VLOAD(r + (v) * VL)                                                            \
     : LD == 1 ? VAND(VLOAD(r + (v) * VL), VCASTI(_mm256_load_si256((const VI *)mk[kw][v])))  \
               : VMASKLOAD(r + (v) * VL, _mm256_load_si256((const VI *)mk[kw][v])))
        if (NV <= 3) {   /* x in registers, one weight at a time */
            V xv[4];
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) xv[v] = SMALL_LOADX(v);
#pragma GCC unroll 4
            for (int o = 0; o < NOC; ++o) {
                const V wv = VBCAST(wp + o * wocs);
#pragma GCC unroll 4
                for (int v = 0; v < NV; ++v) acc[o][v] = VFMA(wv, xv[v], acc[o][v]);
            }
        } else {         /* weights in registers, one x vector at a time */
            V wv[4];
#pragma GCC unroll 4
            for (int o = 0; o < NOC; ++o) wv[o] = VBCAST(wp + o * wocs);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) {
                const V xv = SMALL_LOADX(v);
#pragma GCC unroll 4
                for (int o = 0; o < NOC; ++o) acc[o][v] = VFMA(wv[o], xv, acc[o][v]);
            }
        }
#undef SMALL_LOADX
    }
}

/* small_taps_ with masked loads, any NOC and NV, on acc[o * 4 + v] in memory. */
static __attribute__((noinline)) void FN(small_row_masked_)(V *acc, const T *row, const T *wk,
                                                           int64_t KW, int64_t dw, int64_t wocs,
                                                           MASKT mk[][4][VL], int noc, int nv)
{
    for (int64_t kw = 0; kw < KW; ++kw)
        for (int v = 0; v < nv; ++v) {
            const V xv = VMASKLOAD(row + kw * dw + v * VL,
                                   _mm256_load_si256((const VI *)mk[kw][v]));
            for (int o = 0; o < noc; ++o)
                acc[o * 4 + v] = VFMA(VBCAST(wk + kw + o * wocs), xv, acc[o * 4 + v]);
        }
}

/* Output rows [oh0, oh1) of NOC channels x NV vectors of columns from ow0
 * (nvalid of them are real).  EDGE: lane masks on every load and store. */
static inline __attribute__((always_inline)) void
FN(small_rows_)(const FN(sjob_) *j, int64_t ow0, int nvalid, int64_t oh0, int64_t oh1,
                const int NOC, const int NV, const int EDGE, const int KWC)
{
    const int64_t C = j->C, H = j->H, W = j->W, KH = j->KH, KW = j->KW;
    const int64_t dh = j->dh, dw = j->dw, wocs = j->wocs, hwo = j->hwo;
    _Alignas(32) MASKT mk[EDGE ? FC_SMALL_MAX_KW : 1][4][VL];
    if (EDGE) {
        for (int v = 0; v < NV; ++v)
            for (int l = 0; l < VL; ++l) {
                const int col = v * VL + l;
                for (int64_t kw = 0; kw < KW; ++kw) {
                    const int64_t iw = ow0 + col - j->pl + kw * dw;
                    mk[kw][v][l] = (col < nvalid && iw >= 0 && iw < W) ? -1 : 0;
                }
            }
    }
    for (int64_t oh = oh0; oh < oh1; ++oh) {
        V acc[4][4];
#pragma GCC unroll 4
        for (int o = 0; o < NOC; ++o) {
            const V b = j->bias ? VSET1(j->bias[o]) : VZERO();
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) acc[o][v] = b;
        }
        const int64_t ih0 = oh * j->sh - j->pt;
        for (int64_t ic = 0; ic < C; ++ic) {
            for (int64_t kh = 0; kh < KH; ++kh) {
                const int64_t ih = ih0 + kh * dh;
                if ((uint64_t)ih >= (uint64_t)H) {
                    /* a row of padding adds w * 0: nothing, unless a weight is inf
                     * or NaN, which must give NaN as the zero-padded definition
                     * does (docs/DESIGN.md, padding skip; the driver's rule too) */
                    if (!j->finite) {
                        const T *wk = j->w + (ic * KH + kh) * KW;
#pragma GCC unroll 4
                        for (int o = 0; o < NOC; ++o)
                            for (int64_t kw = 0; kw < KW; ++kw) {
                                const V p = VSET1(wk[o * wocs + kw]);
#pragma GCC unroll 4
                                for (int v = 0; v < NV; ++v) acc[o][v] = VFMA(p, VZERO(), acc[o][v]);
                            }
                    }
                    continue;
                }
                /* may point left of the row in a border block: masked lanes only */
                const T *row = j->x + ((ic * H + ih) * W + ow0 - j->pl);
                const T *wk = j->w + (ic * KH + kh) * KW;
                if (!EDGE) {
                    FN(small_taps_)(acc, row, wk, KW, dw, wocs, mk, NOC, NV, 0, KWC);
                } else if (row < j->xlo || row + (KW - 1) * dw + NV * VL > j->xhi) {
                    /* near either end of x: masked loads, nothing read outside; out of
                     * line on a copy so that acc stays in registers on the hot paths */
                    V t[16];
#pragma GCC unroll 4
                    for (int o = 0; o < NOC; ++o)
#pragma GCC unroll 4
                        for (int v = 0; v < NV; ++v) t[o * 4 + v] = acc[o][v];
                    FN(small_row_masked_)(t, row, wk, KW, dw, wocs, mk, NOC, NV);
#pragma GCC unroll 4
                    for (int o = 0; o < NOC; ++o)
#pragma GCC unroll 4
                        for (int v = 0; v < NV; ++v) acc[o][v] = t[o * 4 + v];
                } else if (EDGE == 1) {   /* no padding: the extra lanes are never stored */
                    FN(small_taps_)(acc, row, wk, KW, dw, wocs, mk, NOC, NV, 0, KWC);
                } else {
                    FN(small_taps_)(acc, row, wk, KW, dw, wocs, mk, NOC, NV, 1, 0);
                }
            }
        }
        const fc_activation *act = j->act;
        if (act->kind == FC_ACT_RELU) {
            const V z = VZERO();
#pragma GCC unroll 4
            for (int o = 0; o < NOC; ++o)
#pragma GCC unroll 4
                for (int v = 0; v < NV; ++v) acc[o][v] = VRELU(acc[o][v], z);
        } else if (act->kind != FC_ACT_IDENTITY) {
            V t[16];   /* a copy: acc itself must stay in registers */
#pragma GCC unroll 4
            for (int o = 0; o < NOC; ++o)
#pragma GCC unroll 4
                for (int v = 0; v < NV; ++v) t[o * NV + v] = acc[o][v];
            VACT_TILE(t, NOC * NV, act);
#pragma GCC unroll 4
            for (int o = 0; o < NOC; ++o)
#pragma GCC unroll 4
                for (int v = 0; v < NV; ++v) acc[o][v] = t[o * NV + v];
        }
        T *yr = j->y + oh * j->wo + ow0;
        /* A partial last vector may be stored whole when its extra lanes land
         * in rows this item writes later (it has every column: ow0 == 0). */
        const int spill = EDGE && ow0 == 0
                          && (oh + 1) * j->wo + (NV * VL - nvalid) <= oh1 * j->wo;
#pragma GCC unroll 4
        for (int o = 0; o < NOC; ++o)
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) {
                if (EDGE && (v + 1) * VL > nvalid && !spill) {
                    /* the partial vector through L1 (vmaskmov stores are slow on AMD) */
                    _Alignas(32) T buf[VL];
                    VSTORE(buf, acc[o][v]);
                    const int rem = nvalid - v * VL;
                    /* unrolled: a counted loop here becomes a memmove call */
#pragma GCC unroll 8
                    for (int l = 0; l < VL; ++l)
                        if (l < rem) yr[o * hwo + v * VL + l] = buf[l];
                }
                else
                    VSTORE(yr + o * hwo + v * VL, acc[o][v]);
            }
    }
}

typedef void (*FN(small_fn_))(const FN(sjob_) *, int64_t, int, int64_t, int64_t);

#define SMALL_INST(NOC, NV, EDGE)                                                           \
    static void FN(CAT(CAT(CAT(small_, NOC), CAT(_, NV)), CAT(_, EDGE)))(                   \
        const FN(sjob_) *j, int64_t ow0, int nvalid, int64_t oh0, int64_t oh1)              \
    {                                                                                       \
        if (j->KW == 3 && NV < 4) FN(small_rows_)(j, ow0, nvalid, oh0, oh1, NOC, NV, EDGE, 3); \
        else FN(small_rows_)(j, ow0, nvalid, oh0, oh1, NOC, NV, EDGE, 0);                   \
    }
#define SMALL_INST_NV(NOC, NV) SMALL_INST(NOC, NV, 0) SMALL_INST(NOC, NV, 1) \
    SMALL_INST(NOC, NV, 2)
#define SMALL_INST_OC(NOC) SMALL_INST_NV(NOC, 1) SMALL_INST_NV(NOC, 2) SMALL_INST_NV(NOC, 3) \
    SMALL_INST_NV(NOC, 4)
SMALL_INST_OC(1)
SMALL_INST_OC(2)
SMALL_INST_OC(3)
SMALL_INST_OC(4)
#define SMALL_REF(NOC, NV) {FN(CAT(CAT(CAT(small_, NOC), CAT(_, NV)), _0)), \
                            FN(CAT(CAT(CAT(small_, NOC), CAT(_, NV)), _1)), \
                            FN(CAT(CAT(CAT(small_, NOC), CAT(_, NV)), _2))}
#define SMALL_REF_OC(NOC) {SMALL_REF(NOC, 1), SMALL_REF(NOC, 2), SMALL_REF(NOC, 3), \
                           SMALL_REF(NOC, 4)}
static const FN(small_fn_) FN(small_tab_)[4][4][3] = {
    SMALL_REF_OC(1), SMALL_REF_OC(2), SMALL_REF_OC(3), SMALL_REF_OC(4)};
#undef SMALL_INST
#undef SMALL_INST_NV
#undef SMALL_INST_OC
#undef SMALL_REF
#undef SMALL_REF_OC

/* One work item: image n, group g, output-channel block b, column block c,
 * rows [oh0, oh1). */
static void FN(small_item_)(const fc_conv_desc *d, const T *x, const T *w, const T *bias,
                            T *y, const fc_activation *post, int finite, int64_t n, int64_t g,
                            int64_t b, int64_t c, int64_t oh0, int64_t oh1, int64_t nb, int nv)
{
    const int64_t G = d->groups, cin_g = d->c_in / G, cout_g = d->c_out / G;
    const int64_t q = cout_g / nb, rem = cout_g % nb;
    const int64_t oc0 = b * q + (b < rem ? b : rem);
    const int noc = (int)(q + (b < rem));
    const int64_t taps = d->kh * d->kw, hwo = d->h_out * d->w_out;
    const int64_t ocg = g * cout_g + oc0;   /* absolute output channel */
    FN(sjob_) j;
    j.x = x + (n * d->c_in + g * cin_g) * d->h_in * d->w_in;
    j.xlo = x;
    j.xhi = x + d->n * d->c_in * d->h_in * d->w_in;
    j.w = w + ocg * cin_g * taps;
    j.bias = bias ? bias + ocg : NULL;
    j.y = y + (n * d->c_out + ocg) * hwo;
    j.C = cin_g; j.H = d->h_in; j.W = d->w_in; j.KH = d->kh; j.KW = d->kw;
    j.sh = d->stride_h; j.dh = d->dil_h; j.dw = d->dil_w; j.pt = d->pad_top; j.pl = d->pad_left;
    j.wo = d->w_out; j.hwo = hwo; j.wocs = cin_g * taps; j.act = post; j.finite = finite;
    const int64_t cols = (int64_t)nv * VL, ow0 = c * cols;
    const int nvalid = (int)fc_min64(cols, d->w_out - ow0);
    /* 0: every lane real and inside the row; 1: only columns past w_out;
     * 2: some real columns read the padding */
    const int pad = ow0 - d->pad_left < 0
                    || ow0 + nvalid - 1 - d->pad_left + (d->kw - 1) * d->dil_w >= d->w_in;
    const int edge = pad ? 2 : nvalid < cols ? 1 : 0;
    FN(small_tab_)[noc - 1][nv - 1][edge](&j, ow0, nvalid, oh0, oh1);
}

int FN(fc_conv_small_avx2_)(const fc_conv_desc *d, const T *x, const T *w, const T *bias,
                            T *y, const fc_activation *post)
{
    static const fc_activation ident = {FC_ACT_IDENTITY, 0.0, 0.0};
    if (d->stride_w != 1 || d->kw > FC_SMALL_MAX_KW) return FC_EINVAL;
    if (!post) post = &ident;
    const int64_t G = d->groups, cout_g = d->c_out / G;
    const int64_t nb = (cout_g + 3) / 4;              /* channel blocks of 3-4 */
    const int64_t maxoc = (cout_g + nb - 1) / nb;
    const int64_t nvw = (d->w_out + VL - 1) / VL;
    const int nv = (int)fc_min64(maxoc == 4 ? 3 : 4, nvw);
    const int64_t ncb = (d->w_out + nv * VL - 1) / (nv * VL);
    const int64_t ho = d->h_out;
    const int finite = fc_rows_padded(d) ? FN(fc_all_finite_)(w, d->c_out * (d->c_in / G) * d->kh * d->kw)
                                         : 1;
    const double flops = 2.0 * (double)d->n * (double)d->c_out * (double)(ho * d->w_out)
                         * (double)(d->c_in / G) * (double)(d->kh * d->kw);
    int nthr = 1;
#ifdef _OPENMP
    if (flops > FC_SMALL_PARALLEL_MIN_FLOPS) nthr = omp_get_max_threads();
#endif
    if (nthr <= 1) {   /* no parallel region, no allocation */
        for (int64_t n = 0; n < d->n; ++n)
            for (int64_t g = 0; g < G; ++g)
                for (int64_t b = 0; b < nb; ++b)
                    for (int64_t c = 0; c < ncb; ++c)
                        FN(small_item_)(d, x, w, bias, y, post, finite, n, g, b, c, 0, ho, nb, nv);
        return FC_OK;
    }
#ifdef _OPENMP
    const int64_t outer = d->n * G * nb * ncb;
    int64_t rows = ho;
    while (rows > 1 && outer * ((ho + rows - 1) / rows) < 8 * nthr) rows = (rows + 1) / 2;
    const int64_t nrb = (ho + rows - 1) / rows, nitems = outer * nrb;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t it = 0; it < nitems; ++it) {
        int64_t r = it;
        const int64_t rb = r % nrb; r /= nrb;
        const int64_t c = r % ncb; r /= ncb;
        const int64_t b = r % nb; r /= nb;
        const int64_t g = r % G, n = r / G;
        FN(small_item_)(d, x, w, bias, y, post, finite, n, g, b, c, rb * rows,
                        fc_min64(ho, rb * rows + rows), nb, nv);
    }
#endif
    return FC_OK;
}

#undef FN
#undef CAT
#undef CAT_
