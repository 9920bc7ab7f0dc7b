/* The strided-1x1 kernel for one float type (included by conv_1x1_avx2.c
 * with T, SFX, V, VL and the vector macros defined).  See conv_1x1.h. */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)
#define OB1 (2 * VL)   /* output channels of a packed B block: two vectors */


/* OB1 channels (noc valid) x P pixels (np valid; rows of xd from px, K long). */
static inline __attribute__((always_inline)) void
FN(s1_tile_)(const T *px, int64_t K, const T *w, const T *bias, T *y, int64_t ldy, int np,
             int noc, const fc_activation *act, const int P)
{
    const V b0 = VLOAD(bias), b1 = VLOAD(bias + VL);
    V c00 = b0, c01 = b1, c10 = b0, c11 = b1, c20 = b0, c21 = b1;
    V c30 = b0, c31 = b1, c40 = b0, c41 = b1, c50 = b0, c51 = b1;
    const T *p0 = px, *p1 = px + (np > 1) * K, *p2 = px + (np > 2) * 2 * K;
    const T *p3 = px + (np > 3) * 3 * K, *p4 = px + (np > 4) * 4 * K;
    const T *p5 = px + (np > 5) * 5 * K;
#pragma GCC unroll 4
    for (int64_t k = 0; k < K; ++k) {
        const V w0 = VLOAD(w), w1 = VLOAD(w + VL);
        V x;
        w += OB1;
        x = VBCAST(p0 + k); c00 = VFMA(w0, x, c00); c01 = VFMA(w1, x, c01);
        x = VBCAST(p1 + k); c10 = VFMA(w0, x, c10); c11 = VFMA(w1, x, c11);
        x = VBCAST(p2 + k); c20 = VFMA(w0, x, c20); c21 = VFMA(w1, x, c21);
        x = VBCAST(p3 + k); c30 = VFMA(w0, x, c30); c31 = VFMA(w1, x, c31);
        x = VBCAST(p4 + k); c40 = VFMA(w0, x, c40); c41 = VFMA(w1, x, c41);
        if (P > 5) {
            x = VBCAST(p5 + k); c50 = VFMA(w0, x, c50); c51 = VFMA(w1, x, c51);
        }
    }
    if (act->kind == FC_ACT_RELU) {   /* else identity (fc_act_in_tile, conv_kern.h) */
        const V z = VSET1((T)0);
        c00 = VRELU(c00, z); c01 = VRELU(c01, z); c10 = VRELU(c10, z); c11 = VRELU(c11, z);
        c20 = VRELU(c20, z); c21 = VRELU(c21, z); c30 = VRELU(c30, z); c31 = VRELU(c31, z);
        c40 = VRELU(c40, z); c41 = VRELU(c41, z); c50 = VRELU(c50, z); c51 = VRELU(c51, z);
    }
#if VL == 8
    if (np == P && noc == OB1) {
        FN(fc_store6_)(y, ldy, c00, c10, c20, c30, c40, c50, P);
        FN(fc_store6_)(y + VL * ldy, ldy, c01, c11, c21, c31, c41, c51, P);
        return;
    }
#endif
    _Alignas(32) T buf[6][OB1];
    VSTORE(buf[0], c00); VSTORE(buf[0] + VL, c01);
    VSTORE(buf[1], c10); VSTORE(buf[1] + VL, c11);
    VSTORE(buf[2], c20); VSTORE(buf[2] + VL, c21);
    VSTORE(buf[3], c30); VSTORE(buf[3] + VL, c31);
    VSTORE(buf[4], c40); VSTORE(buf[4] + VL, c41);
    VSTORE(buf[5], c50); VSTORE(buf[5] + VL, c51);
    for (int o = 0; o < noc; ++o)
        for (int j = 0; j < np; ++j) y[o * ldy + j] = buf[j][o];
}

int CAT(fc_conv_1x1s_avx2_, SFX)(const fc_conv_desc *d, const T *x, const struct fc_packed *pk,
                                  const T *bias, T *y, const fc_activation *post, void *ws)
{
    static const fc_activation ident = {FC_ACT_IDENTITY, 0.0, 0.0};
    if (!post) post = &ident;
    if (!pk || pk->elem != sizeof(T) || d->groups != 1 || pk->kh != 1 || pk->kw != 1
        || pk->cin_g != d->c_in || pk->c_out != d->c_out || pk->nob * OB1 < d->c_out)
        return FC_EINVAL;
    const int64_t K = d->c_in, HWo = d->h_out * d->w_out, HWi = d->h_in * d->w_in;
    const int64_t nob = pk->nob;
    void *own = NULL;
    if (!ws) {
        fc_note_workspace_fallback();
        own = ws = fc_alloc64(fc_1x1s_workspace(d, sizeof(T)));
        if (!ws) return FC_ENOMEM;
    }
    T *xd = (T *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    /* pixel tiles of pbase + 1 (the first pextra) and pbase pixels */
    const int64_t ntiles = (HWo + 5) / 6, pbase = HWo / ntiles, pextra = HWo % ntiles;
    const double flops = 2.0 * (double)(d->c_out * HWo) * (double)K;
#ifdef _OPENMP
    const int par = flops > FC_1X1S_PARALLEL_MIN_FLOPS && omp_get_max_threads() > 1;
#else
    (void)flops;
#endif
    const T *wb = (const T *)pk->wb;
    /* relu in the tiles, the other kinds in one pass over each image's
     * output at the end of its parallel region (conv_kern.h) */
    const int late_act = !fc_act_in_tile(post);
    const fc_activation *tile_act = late_act ? &ident : post;
    for (int64_t n = 0; n < d->n; ++n) {
        const T *x0 = x + n * K * HWi;
        T *y0 = y + n * d->c_out * HWo;
        /* gather, on the calling thread (a few us; no barrier inside the
         * parallel region): xd[p][k] = x0[k][ih][iw], 0 in the padding */
        for (int64_t k0 = 0; k0 < K; k0 += 16) {
            const int64_t k1 = fc_min64(K, k0 + 16);
            for (int64_t oh = 0; oh < d->h_out; ++oh) {
                const int64_t ih = oh * d->stride_h - d->pad_top;
                for (int64_t ow = 0; ow < d->w_out; ++ow) {
                    const int64_t iw = ow * d->stride_w - d->pad_left;
                    T *dst = xd + (oh * d->w_out + ow) * K;
                    if ((uint64_t)ih >= (uint64_t)d->h_in || (uint64_t)iw >= (uint64_t)d->w_in) {
                        for (int64_t k = k0; k < k1; ++k) dst[k] = (T)0;
                    } else {
                        const T *src = x0 + ih * d->w_in + iw;
                        for (int64_t k = k0; k < k1; ++k) dst[k] = src[k * HWi];
                    }
                }
            }
        }
#ifdef _OPENMP
#pragma omp parallel if (par)
#endif
        {
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (int64_t b = 0; b < nob; ++b) {
                _Alignas(32) T bb[OB1];
                const int noc = (int)fc_min64(OB1, d->c_out - b * OB1);
                for (int o = 0; o < OB1; ++o) bb[o] = (bias && o < noc) ? bias[b * OB1 + o] : (T)0;
                const T *w = wb + b * K * OB1;
                T *yb = y0 + b * OB1 * HWo;
                for (int64_t t = 0; t < ntiles; ++t) {
                    const int64_t p0 = t * pbase + fc_min64(t, pextra);
                    const int np = (int)(pbase + (t < pextra));
                    if (np == 5)
                        FN(s1_tile_)(xd + p0 * K, K, w, bb, yb + p0, HWo, np, noc, tile_act, 5);
                    else
                        FN(s1_tile_)(xd + p0 * K, K, w, bb, yb + p0, HWo, np, noc, tile_act, 6);
                }
            }   /* (the worksharing loop's barrier: the image is written) */
            if (late_act) FN(fc_activate_team_)(y0, y0, (size_t)(d->c_out * HWo), post);
        }
    }
    fc_free64(own);
    return FC_OK;
}

#undef OB1
#undef FN
#undef CAT
#undef CAT_
