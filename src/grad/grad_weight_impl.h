/*
 * The weight-gradient driver (fastconv_grad.h: fc_grad_weight_*), written
 * once for both float types (T, SFX) and included twice by grad_weight.c.
 *
 * grad_W[g, o, c, kh, kw] = sum over positions q = (n, oy, ox) of
 *   dZ[n, g*cog + o, oy, ox] * X[n, g*cig + c, oy*sh + kh*dh - pt, ox*sw + kw*dw - pl]
 * is, per group and tap row kh, the GEMM C[j][o] = sum_q B_q[j] A_q[o] with
 * j = (kw, c).  Both operands are made position-major once per call, so that
 * the micro-kernels (grad_weight_kern.h) read them without any per-tile
 * packing:
 *   A: dZ as (positions, output channels), each group's channels padded with
 *      zeros to the tile width: the activation's derivative is applied here,
 *      while the gradient is read (the fused path), and the bias gradient
 *      reduced in the same pass;
 *   B: X channels-last with its padding materialised (zeros), so B_q for a
 *      tile of consecutive (kw, c) is a contiguous run at a computed address:
 *      consecutive j are consecutive in memory when groups = 1 and the
 *      horizontal dilation is 1 (the tile then runs over kw as well),
 *      otherwise a tile stays within one kw.
 * Each output tile is owned by one thread and summed over the positions in
 * a fixed order (blocks of whole output rows), so the result does not depend
 * on the thread count; the tiles accumulate in registers over a block and
 * into a channels-last buffer C between blocks, transposed to OIHW (or HWIO)
 * at the end.
 */
#define GW_CAT_(a, b) a##b
#define GW_CAT(a, b) GW_CAT_(a, b)
#define GWF(name) GW_CAT(name, SFX)

typedef double (*GWF(gw_plane_fn_))(const T *, const T *, T *, int64_t, int, int, T, T);

/* The kernel set of a call, a function of its geometry alone (the workspace
 * query, the main loop and the store all ask): the ISA's own, or where a
 * group has few output channels the set whose tile width pads them least
 * (AVX-512's 32-wide tiles would run 4x the FMAs on 8 channels). */
static const GW_CAT(fc_gw_kernels_, SFX) *GWF(gw_kernels_)(const fc_conv_desc *d)
{
    const int isa = gw_isa();
    if (isa == FC_ISA_PORTABLE) return &GW_CAT(fc_gw_kernels_portable_, SFX);
    const int64_t cog = d->c_out / d->groups;
    if (cog <= GW_CAT(fc_gw_kernels_avx2n_, SFX).nr) return &GW_CAT(fc_gw_kernels_avx2n_, SFX);
    if (isa == FC_ISA_AVX2 || cog <= GW_CAT(fc_gw_kernels_avx2_, SFX).nr)
        return &GW_CAT(fc_gw_kernels_avx2_, SFX);
    return &GW_CAT(fc_gw_kernels_avx512_, SFX);
}

static void GWF(gw_layout_)(const fc_conv_desc *d, int mr, int nr, int nthr, gw_layout *L)
{
    const int64_t groups = d->groups;
    L->cig = d->c_in / groups;
    L->cog = d->c_out / groups;
    L->hp = (d->h_out - 1) * d->stride_h + (d->kh - 1) * d->dil_h + 1;
    L->wp = (d->w_out - 1) * d->stride_w + (d->kw - 1) * d->dil_w + 1;
    L->mp = (L->cog + nr - 1) / nr * nr;
    L->mt = groups * L->mp;
    L->x_elems = gw_round8(d->n * L->hp * L->wp * d->c_in);
    L->a_elems = gw_round8(d->n * d->h_out * d->w_out * L->mt);
    /* A small enough to stay in L2 as a whole: each thread takes whole tile
     * panels (one tap row, MR rows of (kw, c), every output channel) over all
     * the positions, whole images per kernel call; else the positions go in
     * blocks of rows (each thread passes all its tiles over a block while it
     * is in L2).  (Panels written straight into an OIHW grad_weight were
     * slower: each row a scatter over C_out pages.) */
    L->panel_major = (double)d->n * d->h_out * d->w_out * L->mt * sizeof(T) <= GW_PANEL_MAJOR_BYTES;
    /* enough channel units for the threads: unit-major (see the main loop) */
    const int64_t units = groups * ((L->cig + mr - 1) / mr);
    L->unit_major = L->panel_major && units >= 2 * nthr && L->cig >= mr;
    L->unit_elems = gw_round8((int64_t)mr * d->kh * d->kw * L->mp);
    L->c_elems = L->unit_major ? L->unit_elems * nthr
                               : gw_round8(groups * d->kh * d->kw * L->cig * L->mp);
}

size_t GW_CAT(fc_grad_weight_workspace_, SFX)(const fc_conv_desc *d)
{
    gw_layout L;
    GWF(gw_layout_)(d, GWF(gw_kernels_)(d)->mr, GWF(gw_kernels_)(d)->nr, gw_threads(d), &L);
    return (size_t)(L.x_elems + L.a_elems + L.c_elems) * sizeof(T);
}

/* B: rows [r0, r1) of the padded channels-last input (row r = image r / hp,
 * padded row r % hp). */
static void GWF(gw_pack_x_)(const fc_conv_desc *d, const gw_layout *L, const T *x,
                            const int64_t *xs, T *xp, int64_t r)
{
    const int64_t C = d->c_in, wp = L->wp;
    const int64_t nn = r / L->hp, iy = r % L->hp - d->pad_top;
    T *dst = xp + r * wp * C;
    if (iy < 0 || iy >= d->h_in) {
        memset(dst, 0, (size_t)(wp * C) * sizeof(T));
        return;
    }
    const int64_t lo = gw_clamp(d->pad_left, 0, wp);
    const int64_t hi = gw_clamp(d->pad_left + d->w_in, lo, wp);
    memset(dst, 0, (size_t)(lo * C) * sizeof(T));
    memset(dst + hi * C, 0, (size_t)((wp - hi) * C) * sizeof(T));
    const T *src = x + nn * xs[0] + iy * xs[2] + (lo - d->pad_left) * xs[3];
    const int64_t sc = xs[1], sw = xs[3];
    dst += lo * C;
    if (sc <= sw) {   /* channels-last source: rows copied as they are */
        for (int64_t ix = 0; ix < hi - lo; ++ix)
            for (int64_t c = 0; c < C; ++c) dst[ix * C + c] = src[ix * sw + c * sc];
    } else {          /* NCHW: 16 channel rows at a time, interleaved */
        for (int64_t c0 = 0; c0 < C; c0 += 16) {
            const int64_t nc = C - c0 < 16 ? C - c0 : 16;
            for (int64_t ix = 0; ix < hi - lo; ++ix)
                for (int64_t cc = 0; cc < nc; ++cc)
                    dst[ix * C + c0 + cc] = src[(c0 + cc) * sc + ix * sw];
        }
    }
}

/* A: channels [c0, c0 + nc) (nc <= GW_CB) of the derivative-multiplied
 * gradient into its position-major buffer (and gz_out, dense NCHW); their
 * bias gradient when gbias. */
static void GWF(gw_pack_dz_)(const fc_conv_desc *d, const gw_layout *L, const T *g,
                             const int64_t *gs, const T *v, const fc_activation *act,
                             int from_output, T *ap, T *gz_out, T *gbias, int64_t c0, int64_t nc)
{
    const int64_t hw = d->h_out * d->w_out, wo = d->w_out, mt = L->mt;
    const int kind = act ? act->kind : FC_ACT_IDENTITY;
    const T p0 = act ? (T)act->p0 : (T)0, p1 = act ? (T)act->p1 : (T)0;
    const GWF(gw_plane_fn_) plane = fc_act_grad_avx2() ? GW_CAT(fc_act_grad_plane_avx2_, SFX)
                                                       : GW_CAT(fc_act_grad_plane_portable_, SFX);
    const int dense = gs[3] == 1 && gs[2] == wo;
    T tmp[GW_CB][GW_PCH], tg[GW_PCH], tv[GW_PCH];
    double bsum[GW_CB];
    int64_t col[GW_CB];
    for (int64_t cc = 0; cc < nc; ++cc) {
        const int64_t c = c0 + cc;
        bsum[cc] = 0;
        col[cc] = c / L->cog * L->mp + c % L->cog;
    }
    if (gs[1] == 1 && gs[3] == d->c_out) {
        /* channels-last g (an NHWC call): a position's nc channels are one
         * run, GW_PCH positions' runs one derivative pass (the per-channel
         * path above read them element by element, a quarter of a small
         * NHWC layer's backward; benchmarks/NOTES.md, training step) */
        T *flat = &tmp[0][0];
        T fg[GW_CB * GW_PCH], fv[GW_CB * GW_PCH];
        const int whole = nc == d->c_out && gs[2] == wo * d->c_out;
        for (int64_t nn = 0; nn < d->n; ++nn)
            for (int64_t q0 = 0; q0 < hw; q0 += GW_PCH) {
                const int64_t len = hw - q0 < GW_PCH ? hw - q0 : GW_PCH;
                const T *gp, *vp = NULL;
                if (whole) {   /* the chunk's positions are one run too */
                    gp = g + nn * gs[0] + q0 * d->c_out;
                    if (v) vp = v + nn * gs[0] + q0 * d->c_out;
                } else {
                    for (int64_t i = 0; i < len; ++i) {
                        const int64_t q = q0 + i;
                        const int64_t o = nn * gs[0] + q / wo * gs[2] + q % wo * gs[3] + c0;
                        memcpy(fg + i * nc, g + o, (size_t)nc * sizeof(T));
                        if (v) memcpy(fv + i * nc, v + o, (size_t)nc * sizeof(T));
                    }
                    gp = fg;
                    vp = v ? fv : NULL;
                }
                (void)plane(gp, vp, flat, len * nc, kind, from_output, p0, p1);
                T *dst = ap + (nn * hw + q0) * mt;
                for (int64_t i = 0; i < len; ++i, dst += mt)
                    for (int64_t cc = 0; cc < nc; ++cc) {
                        const T z = flat[i * nc + cc];
                        dst[col[cc]] = z;
                        bsum[cc] += (double)z;
                    }
                if (gz_out)
                    for (int64_t cc = 0; cc < nc; ++cc) {
                        T *zo = gz_out + (nn * d->c_out + c0 + cc) * hw + q0;
                        for (int64_t i = 0; i < len; ++i) zo[i] = flat[i * nc + cc];
                    }
            }
        if (gbias)
            for (int64_t cc = 0; cc < nc; ++cc) gbias[c0 + cc] = (T)bsum[cc];
        return;
    }
    for (int64_t nn = 0; nn < d->n; ++nn)
        for (int64_t q0 = 0; q0 < hw; q0 += GW_PCH) {
            const int64_t len = hw - q0 < GW_PCH ? hw - q0 : GW_PCH;
            for (int64_t cc = 0; cc < nc; ++cc) {
                const int64_t off = nn * gs[0] + (c0 + cc) * gs[1];
                const T *gp, *vp = NULL;
                if (dense) {
                    gp = g + off + q0;
                    if (v) vp = v + off + q0;
                } else {
                    for (int64_t i = 0; i < len; ++i) {
                        const int64_t q = q0 + i, o = off + q / wo * gs[2] + q % wo * gs[3];
                        tg[i] = g[o];
                        if (v) tv[i] = v[o];
                    }
                    gp = tg;
                    vp = v ? tv : NULL;
                }
                bsum[cc] += plane(gp, vp, tmp[cc], len, kind, from_output, p0, p1);
                if (gz_out)
                    memcpy(gz_out + (nn * d->c_out + c0 + cc) * hw + q0, tmp[cc],
                           (size_t)len * sizeof(T));
            }
            T *dst = ap + (nn * hw + q0) * mt;
            for (int64_t i = 0; i < len; ++i, dst += mt)
                for (int64_t cc = 0; cc < nc; ++cc) dst[col[cc]] = tmp[cc][i];
        }
    if (gbias)
        for (int64_t cc = 0; cc < nc; ++cc) gbias[c0 + cc] = (T)bsum[cc];
}

/* The tile panel j_t of group gi: its first row j0 = kw * cig + c in C, the
 * offset of that row in a padded input position (boff) and its rows (mr). */
static inline void GWF(gw_panel_)(const fc_conv_desc *d, const gw_layout *L, int contiguous,
                                  int MR, int64_t ct, int64_t gi, int64_t j_t, int64_t *j0,
                                  int64_t *boff, int64_t *mr)
{
    const int64_t cig = L->cig;
    if (contiguous) {   /* the rows run over (kw, c) */
        *j0 = j_t * MR;
        *mr = d->kw * cig - *j0 < MR ? d->kw * cig - *j0 : MR;
        *boff = *j0;
    } else {            /* within one kw */
        const int64_t kw = j_t / ct, c0 = j_t % ct * MR;
        *mr = cig - c0 < MR ? cig - c0 : MR;
        *j0 = kw * cig + c0;
        *boff = kw * d->dil_w * d->c_in + gi * cig + c0;
    }
}

/* Channels [c0, c0 + nc) of group gi from a channels-last buffer (row of
 * (tap, c) at src + (tap * tap_rows + c - c0) * mp, output channels along the
 * row) into grad_weight: OIHW in blocks of 16 output channels x 16 of
 * (c, kh, kw) (whole lines written), or HWIO rows as they are. */
static void GWF(gw_store_rows_)(const fc_conv_desc *d, const gw_layout *L, const T *src,
                                int64_t tap_rows, int64_t gi, int64_t c0, int64_t nc, T *gw,
                                int gw_hwio)
{
    void (*tr16)(const T *const *, T *, int64_t, int, int) = GWF(gw_kernels_)(d)->tr16;
    const int64_t cig = L->cig, cog = L->cog, mp = L->mp, taps = d->kh * d->kw;
    if (gw_hwio) {   /* (kH, kW, cig, C_out) */
        for (int64_t tap = 0; tap < taps; ++tap)
            for (int64_t c = 0; c < nc; ++c)
                memcpy(gw + (tap * cig + c0 + c) * d->c_out + gi * cog,
                       src + (tap * tap_rows + c) * mp, (size_t)cog * sizeof(T));
        return;
    }
    const int64_t K = cig * taps, nk_all = nc * taps;
    const T *rows[16];
    for (int64_t o0 = 0; o0 < cog; o0 += 16) {
        const int64_t no = cog - o0 < 16 ? cog - o0 : 16;
        T *dst = gw + (gi * cog + o0) * K + c0 * taps;
        for (int64_t k0 = 0; k0 < nk_all; k0 += 16) {
            const int64_t nk = nk_all - k0 < 16 ? nk_all - k0 : 16;
            for (int64_t kk = 0; kk < nk; ++kk) {   /* k = c * taps + tap */
                const int64_t c = (k0 + kk) / taps, tap = (k0 + kk) % taps;
                rows[kk] = src + (tap * tap_rows + c) * mp + o0;
            }
            tr16(rows, dst + k0, K, (int)nk, (int)no);
        }
    }
}

/* C (every panel, channels-last) into grad_weight, shared by the threads of
 * the team (an orphaned worksharing loop over groups and channel blocks). */
static void GWF(gw_store_all_)(const fc_conv_desc *d, const gw_layout *L, const T *cw, T *gw,
                               int gw_hwio)
{
    const int64_t cig = L->cig, cb = (cig + 15) / 16, taps = d->kh * d->kw;
#pragma omp for schedule(static)
    for (int64_t u = 0; u < d->groups * cb; ++u) {
        const int64_t gi = u / cb, c0 = u % cb * 16;
        GWF(gw_store_rows_)(d, L, cw + (gi * taps * cig + c0) * L->mp, cig, gi, c0,
                            cig - c0 < 16 ? cig - c0 : 16, gw, gw_hwio);
    }
}

int GW_CAT(fc_grad_weight_, SFX)(const fc_conv_desc *d, const T *x, const int64_t *xstrides,
                                 const T *g, const int64_t *gstrides, const T *v,
                                 const fc_activation *act, int from_output, T *gw, int gw_hwio,
                                 T *gbias, T *gz_out, fc_scratch *s)
{
    const GW_CAT(fc_gw_kernels_, SFX) *K = GWF(gw_kernels_)(d);
    gw_layout L;
    const int nthr = gw_threads(d);
    GWF(gw_layout_)(d, K->mr, K->nr, nthr, &L);
    const int64_t xdense[4] = {d->c_in * d->h_in * d->w_in, d->h_in * d->w_in, d->w_in, 1};
    const int64_t gdense[4] = {d->c_out * d->h_out * d->w_out, d->h_out * d->w_out, d->w_out, 1};
    const int64_t *xs = xstrides ? xstrides : xdense, *gs = gstrides ? gstrides : gdense;
    const size_t bytes = (size_t)(L.x_elems + L.a_elems + L.c_elems) * sizeof(T);
    fc_scratch own = {NULL, 0};
    if (!s) s = &own;
    if (!gw_scratch_get(s, bytes)) return FC_ENOMEM;
    T *xp = (T *)s->p, *ap = xp + L.x_elems, *cw = ap + L.a_elems;

    const int64_t groups = d->groups, KH = d->kh, KW = d->kw, C = d->c_in;
    const int64_t cig = L.cig, cog = L.cog, mp = L.mp, mt = L.mt;
    const int64_t ho = d->h_out, wo = d->w_out, hw = ho * wo;
    const int MR = K->mr, NR = K->nr;
    const int contiguous = groups == 1 && d->dil_w == 1;
    const int64_t ct = (cig + MR - 1) / MR;
    const int64_t jt = contiguous ? (KW * cig + MR - 1) / MR : KW * ct;
    const int64_t ot = mp / NR;
    const int64_t ntiles = groups * KH * jt * ot;
    const int64_t rb = gw_clamp(GW_BLOCK_POS / wo, 1, ho);
    const int64_t xrows = d->n * L.hp, cblocks = (d->c_out + GW_CB - 1) / GW_CB;
    const int64_t img_x = L.hp * L.wp * C;   /* elements between x's padded images */

#pragma omp parallel num_threads(nthr) if (nthr > 1)
    {
        int tid = 0, nt = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
#pragma omp for schedule(static) nowait
        for (int64_t r = 0; r < xrows; ++r) GWF(gw_pack_x_)(d, &L, x, xs, xp, r);
#pragma omp for schedule(static) nowait
        for (int64_t b = 0; b < cblocks; ++b) {
            const int64_t c0 = b * GW_CB;
            GWF(gw_pack_dz_)(d, &L, g, gs, v, act, from_output, ap, gz_out, gbias, c0,
                             d->c_out - c0 < GW_CB ? d->c_out - c0 : GW_CB);
        }
        if (mp > cog) {   /* the tile padding of each group's channels: zeros */
#pragma omp for schedule(static) nowait
            for (int64_t q = 0; q < d->n * hw; ++q)
                for (int64_t gi = 0; gi < groups; ++gi)
                    memset(ap + q * mt + gi * mp + cog, 0, (size_t)(mp - cog) * sizeof(T));
        }
#pragma omp barrier
        if (L.unit_major) {
            /* a unit: MR channels of one group, every tap, every output channel,
             * over all the positions, in the thread's own buffer (in L2), then
             * written out: grad_weight is written once, no C for all of it */
            T *buf = cw + tid * L.unit_elems;
            /* an HWIO grad_weight whose rows are the tiles' rows as they are
             * (one group, no padding columns): the tiles store into it
             * directly, no pass through buf (a quarter of the 512-channel
             * 2x2 layer's time, benchmarks/NOTES.md, training step) */
            const int direct = gw_hwio && groups == 1 && mp == d->c_out;
            const int64_t ldc = direct ? d->c_out : mp;
#pragma omp for schedule(dynamic, 1)
            for (int64_t u = 0; u < groups * ct; ++u) {
                const int64_t gi = u / ct, c0 = u % ct * MR;
                const int64_t mr = cig - c0 < MR ? cig - c0 : MR;
                for (int64_t kh = 0; kh < KH; ++kh)
                    for (int64_t kw = 0; kw < KW; ++kw) {
                        T *cp = direct ? gw + ((kh * KW + kw) * cig + c0) * d->c_out
                                       : buf + (kh * KW + kw) * MR * mp;
                        const int64_t boff = kw * d->dil_w * C + gi * cig + c0;
                        /* every image in one call (their positions follow each
                         * other in A; x's padded images are img_x apart) */
                        const T *a = ap + gi * mp;
                        const T *b = xp + kh * d->dil_h * L.wp * C + boff;
                        for (int64_t o_t = 0; o_t < ot; ++o_t)
                            K->kern[mr](a + o_t * NR, mt, b, d->stride_w * C,
                                        d->stride_h * L.wp * C, d->n * ho, ho, img_x, wo,
                                        cp + o_t * NR, ldc, 0);
                    }
                if (!direct) GWF(gw_store_rows_)(d, &L, buf, MR, gi, c0, mr, gw, gw_hwio);
            }
        } else if (L.panel_major) {
            const int64_t npanels = groups * KH * jt;
#pragma omp for schedule(static)
            for (int64_t u = 0; u < npanels; ++u) {
                const int64_t j_t = u % jt, kh = u / jt % KH, gi = u / jt / KH;
                int64_t j0, boff, mr;
                GWF(gw_panel_)(d, &L, contiguous, MR, ct, gi, j_t, &j0, &boff, &mr);
                T *cp = cw + ((gi * KH + kh) * KW * cig + j0) * mp;
                const T *a = ap + gi * mp;
                const T *b = xp + kh * d->dil_h * L.wp * C + boff;
                for (int64_t o_t = 0; o_t < ot; ++o_t)   /* every image in one call */
                    K->kern[mr](a + o_t * NR, mt, b, d->stride_w * C, d->stride_h * L.wp * C,
                                d->n * ho, ho, img_x, wo, cp + o_t * NR, mp, 0);
            }
        } else {
            const int64_t t0 = ntiles * tid / nt, t1 = ntiles * (tid + 1) / nt;
            for (int64_t nn = 0; nn < d->n; ++nn)
                for (int64_t oy0 = 0; oy0 < ho; oy0 += rb) {
                    const int64_t rows = ho - oy0 < rb ? ho - oy0 : rb;
                    const int acc_in = nn > 0 || oy0 > 0;
                    for (int64_t t = t0; t < t1; ++t) {
                        int64_t u = t;
                        const int64_t o_t = u % ot;
                        u /= ot;
                        const int64_t j_t = u % jt;
                        u /= jt;
                        const int64_t kh = u % KH, gi = u / KH;
                        int64_t j0, boff, mr;
                        GWF(gw_panel_)(d, &L, contiguous, MR, ct, gi, j_t, &j0, &boff, &mr);
                        const T *a = ap + (nn * hw + oy0 * wo) * mt + gi * mp + o_t * NR;
                        const T *b = xp + ((nn * L.hp + oy0 * d->stride_h + kh * d->dil_h) * L.wp) * C
                                     + boff;
                        T *c = cw + ((gi * KH + kh) * KW * cig + j0) * mp + o_t * NR;
                        K->kern[mr](a, mt, b, d->stride_w * C, d->stride_h * L.wp * C, rows,
                                    rows, 0, wo, c, mp, acc_in);
                    }
                }
        }
        if (!L.unit_major) {
#pragma omp barrier
            GWF(gw_store_all_)(d, &L, cw, gw, gw_hwio);
        }
    }
    if (own.p) gw_scratch_free(&own);
    return FC_OK;
}

#undef GWF
#undef GW_CAT
#undef GW_CAT_
