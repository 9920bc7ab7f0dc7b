/*
 * The Winograd driver, written once for both float types: included by
 * winograd.c with T and SFX.  See winograd.c for the plan and winograd_kern.h
 * for the layouts.
 */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

/* U of every group from w (OIHW order through strides ws), G g G^T in double
 * (G of the pack's tile size).  One work item per (group, panel of P output
 * channels): input channel by input channel, so that w is read along its rows
 * (one stream per output channel) and each of the NXI planes of U is written
 * front to back; the
 * padding columns are zeroed in passing (the buffer may be a reused one). */
static void FN(wino_transform_weight_)(fc_wino_weight *p, const T *w, const int64_t *ws)
{
    const int64_t cin = p->cin_g, cout = p->cout_g, ocp = p->ocp, P = FC_WINO_P(T);
    const int64_t E = FC_WINO_E(T);
    const int tile = p->tile, nxi = p->nxi;
    const int64_t xi_stride = p->xi_stride, g_stride = nxi * xi_stride, ps = p->panel_stride;
    T *u = (T *)p->u;
    const int64_t npanels = (ocp + P - 1) / P, nwork = p->groups * npanels;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nwork > 1 && cin * cout >= 8192)
#endif
    for (int64_t gp = 0; gp < nwork; ++gp) {
        const int64_t g = gp / npanels, pb = (gp % npanels) * P;
        const int64_t pe = pb + P < ocp ? pb + P : ocp;
        for (int64_t ic = 0; ic < cin; ++ic)
        for (int64_t o0 = pb; o0 < pe; o0 += E) {
            /* E output channels side by side (the e loops vectorise), in double */
            double gk[9][64 / sizeof(T)], tm[18][64 / sizeof(T)], t6[36][64 / sizeof(T)];
            for (int64_t e = 0; e < E; ++e) {
                const int64_t o = o0 + e;
                const T *src = w + (g * cout + (o < cout ? o : 0)) * ws[0] + ic * ws[1];
                for (int a = 0; a < 3; ++a)
                    for (int c = 0; c < 3; ++c)
                        gk[3 * a + c][e] = o < cout ? (double)src[a * ws[2] + c * ws[3]] : 0.0;
            }
            if (tile == 4) {
                for (int c = 0; c < 3; ++c)   /* G along the kernel's rows */
                    for (int64_t e = 0; e < E; ++e)
                        WINO_G_LINE(gk[c][e], gk[3 + c][e], gk[6 + c][e], tm[c][e],
                                    tm[3 + c][e], tm[6 + c][e], tm[9 + c][e], tm[12 + c][e],
                                    tm[15 + c][e]);
                for (int a = 0; a < 6; ++a)   /* and along its columns */
                    for (int64_t e = 0; e < E; ++e)
                        WINO_G_LINE(tm[3 * a][e], tm[3 * a + 1][e], tm[3 * a + 2][e],
                                    t6[6 * a][e], t6[6 * a + 1][e], t6[6 * a + 2][e],
                                    t6[6 * a + 3][e], t6[6 * a + 4][e], t6[6 * a + 5][e]);
            } else {   /* F(2x2): t6[4 * a + b] */
                for (int c = 0; c < 3; ++c)
                    for (int64_t e = 0; e < E; ++e)
                        WINO_G2_LINE(gk[c][e], gk[3 + c][e], gk[6 + c][e], tm[c][e],
                                     tm[3 + c][e], tm[6 + c][e], tm[9 + c][e]);
                for (int a = 0; a < 4; ++a)
                    for (int64_t e = 0; e < E; ++e)
                        WINO_G2_LINE(tm[3 * a][e], tm[3 * a + 1][e], tm[3 * a + 2][e],
                                     t6[4 * a][e], t6[4 * a + 1][e], t6[4 * a + 2][e],
                                     t6[4 * a + 3][e]);
            }
            const int64_t panel = o0 / P, pw = ocp - panel * P < P ? ocp - panel * P : P;
            T *dst = u + g * g_stride + panel * ps + ic * pw + (o0 - panel * P);
            for (int xi = 0; xi < nxi; ++xi)
                for (int64_t e = 0; e < E; ++e) dst[xi * xi_stride + e] = (T)t6[xi][e];
        }
    }
}

static fc_wino_weight *FN(wino_pack_)(const fc_conv_desc *d, const T *w, const int64_t *wstrides,
                                      int tile)
{
    if (tile != 2 && tile != 4) return NULL;
    fc_wino_weight *p = (fc_wino_weight *)calloc(1, sizeof *p);
    if (!p) return NULL;
    wino_weight_init(p, d, sizeof(T), tile);
    p->u = fc_alloc64(wino_weight_elems(p) * sizeof(T));
    if (!p->u) {
        free(p);
        return NULL;
    }
    int64_t dense[4] = {p->cin_g * 9, 9, 3, 1};
    FN(wino_transform_weight_)(p, w, wstrides ? wstrides : dense);
    return p;
}

fc_wino_weight *FN(fc_winograd_pack_)(const fc_conv_desc *d, const T *w, const int64_t *wstrides,
                                      int tile)
{
    return FN(wino_pack_)(d, w, wstrides, tile);
}

/* The m + 2 input rows of one tile-row segment (ns tiles from tile column tw0)
 * of image n, group g, channels-last into s (row stride lr, column stride
 * cin), zeros in the padding, pre-activated. */
static void FN(wino_stage_)(const wino_plan *pl, const T *x, const int64_t *xs, int64_t n,
                            int64_t g, int64_t th, int64_t tw0, int64_t ns, T *s, int64_t lr,
                            const fc_activation *pre, const fc_kernel_table *dk)
{
    const fc_conv_desc *d = pl->d;
    const int64_t cin = pl->cin, ncols = pl->m * ns + 2;
    const int64_t r0 = pl->m * th - d->pad_top, c0 = pl->m * tw0 - d->pad_left;
    const int64_t cs = c0 > 0 ? c0 : 0, ce = c0 + ncols < d->w_in ? c0 + ncols : d->w_in;
    const int act = pre && pre->kind != FC_ACT_IDENTITY;
    for (int r = 0; r < pl->a; ++r) {
        T *dst = s + r * lr;
        const int64_t ih = r0 + r;
        if (ih < 0 || ih >= d->h_in || ce <= cs) {
            memset(dst, 0, (size_t)(ncols * cin) * sizeof(T));
            continue;
        }
        if (cs > c0) memset(dst, 0, (size_t)((cs - c0) * cin) * sizeof(T));
        if (c0 + ncols > ce) memset(dst + (ce - c0) * cin, 0, (size_t)((c0 + ncols - ce) * cin) * sizeof(T));
        T *q = dst + (cs - c0) * cin;
        const T *src = x + n * xs[0] + g * cin * xs[1] + ih * xs[2] + cs * xs[3];
        const int64_t nw = ce - cs;
        if (xs[3] == 1) {            /* NCHW rows: the direct path's transpose kernel */
            dk->FN(nhwc_)(src, cin, xs[1], nw, q);
        } else if (xs[1] == 1) {     /* channels-last */
            for (int64_t c = 0; c < nw; ++c)
                memcpy(q + c * cin, src + c * xs[3], (size_t)cin * sizeof(T));
        } else {
            for (int64_t c = 0; c < nw; ++c)
                for (int64_t ic = 0; ic < cin; ++ic) q[c * cin + ic] = src[c * xs[3] + ic * xs[1]];
        }
        if (act) FN(fc_activate_serial_)(q, q, (size_t)(nw * cin), pre);
    }
}

static int FN(wino_run_)(const fc_conv_desc *d, const T *x, const int64_t *xstrides,
                         const fc_wino_weight *u, const T *bias, T *y, int y_nhwc,
                         const fc_activation *post, const fc_activation *pre)
{
    if (!fc_winograd_supported(d) || !u || u->elem != sizeof(T) || u->groups != d->groups
        || u->cin_g != d->c_in / d->groups || u->cout_g != d->c_out / d->groups)
        return FC_EINVAL;
    wino_plan pl;
    wino_make_plan(&pl, d, sizeof(T), u->tile);
    if (pl.ntiles == 0 || d->c_out == 0) return FC_OK;
    const int64_t dense[4] = {d->c_in * d->h_in * d->w_in, d->h_in * d->w_in, d->w_in, 1};
    const int64_t *xs = xstrides ? xstrides : dense;
    const int64_t E = FC_WINO_E(T), P = FC_WINO_P(T);
    const int64_t G = d->groups, cin = pl.cin, cout = pl.cout, ocp = u->ocp, icp = pl.icp;
    const int64_t TB = pl.tb, ldm = pl.ocb, ldv = icp;
    const int64_t per_thread = pl.thread_elems;
    unsigned char *ws = (unsigned char *)fc_alloc64(pl.workspace);
    if (!ws) return FC_ENOMEM;
    T *bpad = NULL;
    if (bias) {   /* per group, padded to E with zeros: the output transform reads vectors */
        bpad = (T *)ws;
        memset(bpad, 0, (size_t)(G * ocp) * sizeof(T));
        for (int64_t g = 0; g < G; ++g)
            memcpy(bpad + g * ocp, bias + g * cout, (size_t)cout * sizeof(T));
    }
    T *tbuf = (T *)(ws + pl.bias_bytes);
    const fc_wino_kernels *wk = wino_kernels();
    const fc_wino_transforms *tr = pl.m == 4 ? &wk->f4 : &wk->f2;
    const int tile = pl.m, nxi = pl.nxi;
    const int64_t kc = pl.kc;
    const fc_kernel_table *dk = fc_kernels();
    const int64_t tpi = pl.tiles_h * pl.tiles_w;
    const int64_t nitems = G * pl.nblocks * pl.nob;
    const int64_t ldxi_v = TB * ldv;
    (void)E;
#ifdef _OPENMP
#pragma omp parallel num_threads(pl.threads)
#endif
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num();
#else
        const int tid = 0;
#endif
        T *s = tbuf + tid * per_thread;
        T *v = s + pl.stage_elems;
        T *m = v + nxi * TB * ldv;
        memset(s, 0, (size_t)pl.stage_elems * sizeof(T));
        int64_t have_g = -1, have_b = -1;   /* the tile block whose V this thread holds */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t it = 0; it < nitems; ++it) {
            const int64_t g = it / (pl.nblocks * pl.nob);
            const int64_t blk = (it / pl.nob) % pl.nblocks, ob = it % pl.nob;
            const int64_t t0 = blk * TB, t1 = t0 + TB < pl.ntiles ? t0 + TB : pl.ntiles;
            const int64_t nt = t1 - t0;
            if (have_g != g || have_b != blk) {   /* gather and transform the block's tiles */
                for (int64_t t = t0; t < t1;) {
                    const int64_t n = t / tpi, th = (t % tpi) / pl.tiles_w, tw = t % pl.tiles_w;
                    const int64_t ns = pl.tiles_w - tw < t1 - t ? pl.tiles_w - tw : t1 - t;
                    FN(wino_stage_)(&pl, x, xs, n, g, th, tw, ns, s, pl.stage_lr, pre, dk);
                    for (int64_t j = 0; j < ns; ++j)
                        tr->FN(in_)(s + tile * j * cin, pl.stage_lr, cin, cin,
                                    v + (t - t0 + j) * ldv, ldxi_v);
                    t += ns;
                }
                have_g = g;
                have_b = blk;
            }
            /* the NXI GEMMs of this item's output channels [oc0, oc1) */
            const int64_t oc0 = ob * pl.ocb, oc1 = oc0 + pl.ocb < ocp ? oc0 + pl.ocb : ocp;
            const T *ug = (const T *)u->u + g * nxi * u->xi_stride;
            for (int xi = 0; xi < nxi; ++xi) {
                const T *ux = ug + xi * u->xi_stride;
                for (int64_t o = oc0; o < oc1; o += P) {
                    const int64_t pw = ocp - o < P ? ocp - o : P;
                    const int64_t no = oc1 - o < pw ? oc1 - o : pw;
                    const T *up = ux + o / P * u->panel_stride;
                    /* input channels in slices whose rows of the panel stay in
                     * L1 for all the block's tiles (a 256-channel panel is 64 KB) */
                    for (int64_t k0 = 0; k0 < cin; k0 += kc) {
                        const int64_t kn = cin - k0 < kc ? cin - k0 : kc;
                        for (int64_t t = 0; t < nt; t += 6)
                            wk->FN(gemm_)(v + xi * ldxi_v + t * ldv + k0, ldv,
                                          (int)(nt - t < 6 ? nt - t : 6), up + k0 * pw, pw, no,
                                          kn, m + (t * nxi + xi) * ldm + (o - oc0), nxi * ldm,
                                          k0 > 0);
                    }
                }
            }
            /* the output transform, bias and activation, one store */
            const int64_t noc = (oc1 < cout ? oc1 : cout) - oc0;
            if (noc <= 0) continue;
            for (int64_t t = t0; t < t1; ++t) {
                const int64_t n = t / tpi, th = (t % tpi) / pl.tiles_w, tw = t % pl.tiles_w;
                const int64_t oh = tile * th, ow = tile * tw, ch = g * cout + oc0;
                fc_wino_out_args a;
                a.m = m + (t - t0) * nxi * ldm;
                a.ldxi = ldm;
                a.bias = bpad ? bpad + g * ocp + oc0 : NULL;
                if (y_nhwc) {
                    a.y = y + ((n * d->h_out + oh) * d->w_out + ow) * d->c_out + ch;
                    a.ldc = 1;
                    a.ldr = d->w_out * d->c_out;
                    a.ldw = d->c_out;
                } else {
                    a.y = y + ((n * d->c_out + ch) * d->h_out + oh) * d->w_out + ow;
                    a.ldc = d->h_out * d->w_out;
                    a.ldr = d->w_out;
                    a.ldw = 1;
                }
                a.nrows = (int)(d->h_out - oh < tile ? d->h_out - oh : tile);
                a.ncols = (int)(d->w_out - ow < tile ? d->w_out - ow : tile);
                a.noc = noc;
                a.act = post;
                tr->FN(out_)(&a);
            }
        }
    }
    fc_free64(ws);
    return FC_OK;
}

int FN(fc_winograd_)(const fc_conv_desc *d, const T *x, const int64_t *xstrides,
                     const fc_wino_weight *u, const T *bias, T *y, int y_nhwc,
                     const fc_activation *post, const fc_activation *pre)
{
    return FN(wino_run_)(d, x, xstrides, u, bias, y, y_nhwc, post, pre);
}

int FN(fc_winograd_raw_)(const fc_conv_desc *d, const T *x, const int64_t *xstrides,
                         const T *w, const int64_t *wstrides, const T *bias, T *y, int y_nhwc,
                         const fc_activation *post, const fc_activation *pre, fc_scratch *s)
{
    if (!fc_winograd_supported(d)) return FC_EINVAL;
    fc_wino_weight u;
    wino_weight_init(&u, d, sizeof(T), fc_winograd_choose_tile(d));
    const size_t need = wino_weight_elems(&u) * sizeof(T);
    if (!s->p || s->bytes < need) {   /* kept for the next call: no fresh pages then */
        fc_scratch_release(s);
        s->p = fc_alloc64(need);
        if (!s->p) return FC_ENOMEM;
        s->bytes = need;
    }
    u.u = s->p;
    int64_t dense[4] = {u.cin_g * 9, 9, 3, 1};
    FN(wino_transform_weight_)(&u, w, wstrides ? wstrides : dense);
    return FN(wino_run_)(d, x, xstrides, &u, bias, y, y_nhwc, post, pre);
}

#undef FN
#undef CAT
#undef CAT_
