/*
 * The direct convolution, written once for both float types (included by
 * conv_direct.c with T and SFX defined): weight packing, the blocked and
 * threaded driver, and the portable micro-kernels.  See conv_kern.h for the
 * two register tiles.
 *
 * Driver modes (chosen per call):
 *  A      1x1, stride 1, no padding, no pre-activation: GEMM straight on NCHW.
 *  DIRECT no padding, no pre-activation: B tiles read NCHW x in place.
 *  FOLD   few input channels, groups 1: x is unfolded along kw into
 *         [n][h_in][w_out][kw*c_in] (zeros where padded), then a kh x 1 conv
 *         with kw*c_in channels per tap (the C=3 first layers).
 *  NHWC   everything else: x copied channels-last (pre-activated on the way);
 *         padded taps point to a zero buffer.  No padded tensor is made.
 * One OpenMP parallel region per call: the copy, a barrier, then the tiles,
 * split over (image, group, band of pixel tiles, block of output channels).
 */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)
#define OB FC_OB(T)
#define TAP FC_TA_PIX(T)

/* ---- portable micro-kernels ------------------------------------------- */

static void FN(tileB_port_)(const fc_tileB_args *a)
{
    T acc[FC_TB_P][FC_OB(T)];
    const T *bias = (const T *)a->bias, *w = (const T *)a->w;
    const T *const *pp = (const T *const *)a->ptrs;
    for (int j = 0; j < FC_TB_P; ++j)
        for (int o = 0; o < OB; ++o) acc[j][o] = bias[o];
    for (int64_t t = 0; t < a->ntaps; ++t, pp += FC_TB_P) {
        /* the end pixels that read only padding at this tap are left out */
        const int skip = a->tapskip ? a->tapskip[t] : 0;
        const int j0 = skip & 1, j1 = a->npix - (skip >> 1);
        for (int64_t k = 0; k < a->kc; ++k, w += OB) {
            const int64_t off = k * a->xs;
            for (int j = j0; j < j1; ++j) {
                const T xv = pp[j][off];
                for (int o = 0; o < OB; ++o) acc[j][o] += w[o] * xv;
            }
        }
    }
    T *y = (T *)a->y;
    for (int j = 0; j < a->npix; ++j) {
        const int px = j + a->rot < a->npix ? j + a->rot : j + a->rot - a->npix;
        FN(fc_activate_serial_)(acc[j], acc[j], (size_t)a->noc, a->act);
        for (int o = 0; o < a->noc; ++o) y[o * a->ldy + px * a->ldp] = acc[j][o];
    }
}

static void FN(tileA_port_)(const fc_tileA_args *a)
{
    for (int64_t p0 = 0; p0 < a->npix; p0 += TAP) {
        T acc[FC_TA_OC][FC_TA_PIX(T)];
        const T *bias = (const T *)a->bias, *w = (const T *)a->w, *x = (const T *)a->x + p0;
        const int np = (int)fc_min64(TAP, a->npix - p0);
        for (int o = 0; o < FC_TA_OC; ++o)
            for (int p = 0; p < TAP; ++p) acc[o][p] = bias[o];
        for (int64_t k = 0; k < a->k; ++k, w += FC_TA_OC) {
            const T *xr = x + k * a->ldx;
            T xv[FC_TA_PIX(T)];
            for (int p = 0; p < TAP; ++p) xv[p] = p < np ? xr[p] : (T)0;
            for (int o = 0; o < FC_TA_OC; ++o)
                for (int p = 0; p < TAP; ++p) acc[o][p] += w[o] * xv[p];
        }
        T *y = (T *)a->y + p0;
        for (int o = 0; o < a->noc; ++o)
            FN(fc_activate_serial_)(acc[o], y + o * a->ldy, (size_t)np, a->act);
    }
}

static void FN(nhwc_port_)(const T *src, int64_t C, int64_t cstride, int64_t W, T *dst)
{
    int64_t c = 0;
    for (; c + 8 <= C; c += 8) {
        const T *s0 = src + c * cstride;
        for (int64_t w = 0; w < W; ++w)
            for (int i = 0; i < 8; ++i) dst[w * C + c + i] = s0[i * cstride + w];
    }
    for (; c < C; ++c)
        for (int64_t w = 0; w < W; ++w) dst[w * C + c] = src[c * cstride + w];
}

/* ---- packing ----------------------------------------------------------- */

/* Layout B of one OB-block from dense OIHW rows (the kernel table's packB,
 * conv_kern.h): the portable version.  The OB rows are read as OB streams,
 * each moving forward; one accumulator per lane keeps the finite test
 * (v - v is NaN for inf and NaN) off a serial dependency chain. */
static int FN(packB_port_)(const T *src, int64_t rs, int nrows, int64_t cin, int64_t taps,
                           T *dst)
{
    T chk[FC_OB(T)];
    for (int o = 0; o < OB; ++o) chk[o] = (T)0;
    for (int64_t ic = 0; ic < cin; ++ic)
        for (int64_t t = 0; t < taps; ++t) {
            T *dd = dst + (t * cin + ic) * OB;
            const T *sp = src + ic * taps + t;
            for (int o = 0; o < OB; ++o) {
                const T v = o < nrows ? sp[o * rs] : (T)0;
                dd[o] = v;
                chk[o] += v - v;
            }
        }
    int ok = 1;
    for (int o = 0; o < OB; ++o) ok &= chk[o] == (T)0;
    return ok;
}

/* Lines of layout B from o-contiguous rows (the kernel table's linesB,
 * conv_kern.h): the portable version, the finite test on the bits
 * (conv_common.h). */
static int FN(linesB_port_)(const T *const *src, int n, T *dst)
{
    CAT(fc_bits_, SFX) bad[FC_OB(T)];
    for (int o = 0; o < OB; ++o) bad[o] = 0;
    for (int k = 0; k < n; ++k) {
        memcpy(dst + k * OB, src[k], sizeof(T) * FC_OB(T));   /* constant size: inlined */
        CAT(fc_nonfinite_or_, SFX)(bad, src[k], FC_OB(T));
    }
    CAT(fc_bits_, SFX) any = 0;
    for (int o = 0; o < OB; ++o) any |= bad[o];
    return !(any & CAT(FC_BITS_TOP_, SFX));
}

/* Shapes of the packed layouts (no buffers). */
static void FN(packed_geometry_)(const fc_conv_desc *d, fc_packed *pk)
{
    memset(pk, 0, sizeof *pk);
    const int64_t G = d->groups, cout_g = d->c_out / G, cin_g = d->c_in / G;
    pk->elem = sizeof(T);
    pk->c_out = d->c_out; pk->cin_g = cin_g; pk->kh = d->kh; pk->kw = d->kw;
    pk->groups = G; pk->cout_g = cout_g;
    pk->nob = (cout_g + OB - 1) / OB;
    pk->noa = d->kh * d->kw == 1 ? (cout_g + FC_TA_OC - 1) / FC_TA_OC : 0;
}

static size_t FN(wb_elems_)(const fc_packed *pk)
{
    return (size_t)(pk->groups * pk->nob * pk->kh * pk->kw * pk->cin_g * OB);
}

static size_t FN(wa_elems_)(const fc_packed *pk)
{
    return (size_t)(pk->groups * pk->noa * pk->cin_g * FC_TA_OC);
}

/* Threads for packing `bytes` of weights: one below FC_PACK_PARALLEL_BYTES
 * (waking the team costs more than the copy), fastconv's count above. */
static int FN(pack_threads_)(size_t bytes, int64_t blocks)
{
#ifdef _OPENMP
    if (bytes < FC_PACK_PARALLEL_BYTES) return 1;
    return (int)fc_max64(1, fc_min64(omp_get_max_threads(), blocks));
#else
    (void)bytes; (void)blocks;
    return 1;
#endif
}

/* Block gb (= group * nob + oc block) of layout B ([kh][kw][ic][OB]) into
 * dst.  w[o][i][h][v] at w + o*ws[0] + i*ws[1] + h*ws[2] + v*ws[3].  Dense
 * OIHW rows go to the kernel set's blocked transpose; o-contiguous weights (a
 * view of HWIO) are line copies; anything else a scalar loop.  Returns
 * whether the block's weights are all finite. */
static int FN(pack_block_)(const fc_kernel_table *kt, const T *w, const int64_t *ws,
                           const fc_packed *pk, int64_t gb, T *dst)
{
    const int64_t nob = pk->nob, cin_g = pk->cin_g, cout_g = pk->cout_g;
    const int64_t KW = pk->kw, taps = pk->kh * pk->kw;
    const int64_t g = gb / nob, b = gb % nob;
    const int nrows = (int)fc_min64(OB, cout_g - b * OB);
    const T *src = w + (g * cout_g + b * OB) * ws[0];
    if (ws[3] == 1 && ws[2] == KW && ws[1] == taps)
        return CAT(kt->packB_, SFX)(src, ws[0], nrows, cin_g, taps, dst);
    T chk[FC_OB(T)];
    for (int o = 0; o < OB; ++o) chk[o] = (T)0;
    for (int64_t kh = 0; kh < pk->kh; ++kh)
        for (int64_t kw = 0; kw < KW; ++kw)
            for (int64_t ic = 0; ic < cin_g; ++ic) {
                T *dd = dst + ((kh * KW + kw) * cin_g + ic) * OB;
                const T *sp = src + ic * ws[1] + kh * ws[2] + kw * ws[3];
                if (ws[0] == 1) {
                    memcpy(dd, sp, (size_t)nrows * sizeof(T));
                    for (int o = nrows; o < OB; ++o) dd[o] = (T)0;
                } else {
                    for (int o = 0; o < OB; ++o) dd[o] = o < nrows ? sp[o * ws[0]] : (T)0;
                }
                for (int o = 0; o < OB; ++o) chk[o] += dd[o] - dd[o];
            }
    int ok = 1;
    for (int o = 0; o < OB; ++o) ok &= chk[o] == (T)0;
    return ok;
}

/* Rows [r, r + n) of group g's output channels in o-contiguous weights
 * (ws[0] == 1: a view of HWIO), row r being tap r / cin_g, input channel
 * r % cin_g, into rows[]: one division for the run, not two per row (with a
 * 32-channel block group a row is two 64-byte pieces, and the divisions took
 * most of the item's packing: 6.5 GB/s from L2, benchmarks/NOTES.md,
 * session 12). */
static void FN(hwio_rows_)(const T *w, const int64_t *ws, const fc_packed *pk, int64_t g,
                           int64_t r, int n, const T **rows)
{
    int64_t t = r / pk->cin_g, ic = r % pk->cin_g;
    const T *tap = w + g * pk->cout_g + (t / pk->kw) * ws[2] + (t % pk->kw) * ws[3];
    for (int k = 0; k < n; ++k) {
        rows[k] = tap + ic * ws[1];
        if (++ic == pk->cin_g) {
            ic = 0;
            ++t;
            tap = w + g * pk->cout_g + (t / pk->kw) * ws[2] + (t % pk->kw) * ws[3];
        }
    }
}

/* Rows [r0, r1) of blocks [b0, b1) of group g's layout B from o-contiguous
 * weights, into dst (block b at dst + (b - b0) * wbs, row r at r * OB in it),
 * in chunks of FC_PACK_ROWS rows: a chunk's rows are read once (they stay in
 * L1), each block getting its pieces as one contiguous run of
 * FC_PACK_ROWS * 64 bytes, and the rows FC_PF_ROWS ahead are prefetched.
 * Row by row (each row's pieces to every block at once) the blocks' write
 * streams were a multiple of 4 KB apart (9 * 512 * 64 bytes for 512x512x3x3),
 * all in the same L1 sets: 3.5 GB/s against a 12 GB/s copy; block by block,
 * each block read a 64-byte piece of every row, 2 KB apart, at ~0.8 GB/s
 * (benchmarks/NOTES.md, training step).  A work item packing its own block
 * group (pack_in_item) takes every row of a few blocks, C_out apart: hence
 * the prefetches (16, 32 and 64 rows ahead measured: 32 ~5 % the fastest,
 * session 11).  Returns whether they are all finite. */
#define FC_PACK_ROWS FC_LINES_MAX
#define FC_PF_ROWS 32
static int FN(pack_b_rows_)(const T *w, const int64_t *ws, const fc_packed *pk, int64_t g,
                            int64_t r0, int64_t r1, int64_t b0, int64_t b1, int64_t wbs,
                            T *dst)
{
    const int64_t pf_bytes = (b1 - b0) * OB * (int64_t)sizeof(T);
    const fc_kernel_table *kt = fc_kernels();
    int finite = 1;
    for (int64_t c0 = r0; c0 < r1; c0 += FC_PACK_ROWS) {
        const int nr = (int)fc_min64(FC_PACK_ROWS, r1 - c0);
        const T *src[FC_PACK_ROWS], *pfr[FC_PACK_ROWS];
        FN(hwio_rows_)(w, ws, pk, g, c0, nr, src);
        const int npf = (int)fc_max64(0, fc_min64(nr, r1 - (c0 + FC_PF_ROWS)));
        FN(hwio_rows_)(w, ws, pk, g, c0 + FC_PF_ROWS, npf, pfr);
        for (int k = 0; k < npf; ++k) {
            const char *pf = (const char *)(pfr[k] + b0 * OB);
            for (int64_t l = 0; l < pf_bytes; l += 64) __builtin_prefetch(pf + l, 0, 3);
        }
        for (int64_t b = b0; b < b1; ++b) {
            T *dd = dst + (b - b0) * wbs + c0 * OB;
            const int nv = (int)fc_max64(0, fc_min64(OB, pk->cout_g - b * OB));
            if (nv == OB) {   /* whole lines: the kernel set's copy */
                const T *lp[FC_PACK_ROWS];
                for (int k = 0; k < nr; ++k) lp[k] = src[k] + b * OB;
                finite &= CAT(kt->linesB_, SFX)(lp, nr, dd);
                continue;
            }
            for (int k = 0; k < nr; ++k) {   /* the last, partial block: zeros past cout_g */
                for (int o = 0; o < OB; ++o) dd[k * OB + o] = o < nv ? src[k][b * OB + o] : (T)0;
                finite &= CAT(fc_all_finite_, SFX)(dd + k * OB, nv);
            }
        }
    }
    return finite;
}

/* All of layout B from o-contiguous weights, threaded over chunks of rows.
 * Returns whether every weight is finite. */
static int FN(pack_b_hwio_)(const T *w, const int64_t *ws, const fc_packed *pk, T *wb)
{
    const int64_t nob = pk->nob, per_g = pk->kh * pk->kw * pk->cin_g;
    const int64_t blk = per_g * OB, nch = (per_g + FC_PACK_ROWS - 1) / FC_PACK_ROWS;
    const int nthr = FN(pack_threads_)(FN(wb_elems_)(pk) * sizeof(T), pk->groups * nch);
    int finite = 1;
    (void)nthr;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthr) if (nthr > 1) reduction(& : finite)
#endif
    for (int64_t u = 0; u < pk->groups * nch; ++u) {
        const int64_t g = u / nch, r0 = u % nch * FC_PACK_ROWS;
        const int64_t r1 = fc_min64(per_g, r0 + FC_PACK_ROWS);
        finite &= FN(pack_b_rows_)(w, ws, pk, g, r0, r1, 0, nob, blk, wb + g * nob * blk);
    }
    return finite;
}

/* Whether strides ws are those of a dense OIHW array of cin_g x kh x kw rows. */
static int FN(dense_oihw_)(int64_t cin_g, int64_t kh, int64_t kw, const int64_t *ws)
{
    return ws[3] == 1 && ws[2] == kw && ws[1] == kh * kw && ws[0] == cin_g * kh * kw;
}

/* Layout B into wb: [group][oc block][kh][kw][ic][OB], threaded over the
 * blocks for big weights.  Returns whether every weight is finite
 * (fc_packed.finite). */
static int FN(pack_b_)(const T *w, const int64_t *ws, const fc_packed *pk, T *wb)
{
    if (ws[0] == 1 && pk->cout_g > 1) return FN(pack_b_hwio_)(w, ws, pk, wb);
    const fc_kernel_table *kt = fc_kernels();
    const int64_t nblk = pk->groups * pk->nob, blk = pk->kh * pk->kw * pk->cin_g * OB;
    const int nthr = FN(pack_threads_)(FN(wb_elems_)(pk) * sizeof(T), nblk);
    int finite = 1;
    (void)nthr;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthr) if (nthr > 1) reduction(& : finite)
#endif
    for (int64_t gb = 0; gb < nblk; ++gb)
        finite &= FN(pack_block_)(kt, w, ws, pk, gb, wb + gb * blk);
    return finite;
}

/* Layout A (1x1 weights) into wa: [group][oc block of 6][ic][6].  From
 * layout B when it is packed (wb non-NULL): per input channel a 6-channel
 * block is one or two short copies out of B's 64-byte lines, a sixth of the
 * instructions of reading the 6 scattered OIHW values (512x256 1x1: 2.5x
 * faster pack_weight, benchmarks/NOTES.md); else straight from w. */
static void FN(pack_a_)(const T *w, const int64_t *ws, const fc_packed *pk, const T *wb, T *wa)
{
    const int64_t G = pk->groups, noa = pk->noa, nob = pk->nob, cin_g = pk->cin_g;
    const int64_t cout_g = pk->cout_g;
    const int nthr = FN(pack_threads_)(FN(wa_elems_)(pk) * sizeof(T), G * noa);
    (void)nthr;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthr) if (nthr > 1)
#endif
    for (int64_t gb = 0; gb < G * noa; ++gb) {
        const int64_t g = gb / noa, b = gb % noa, oc0 = b * FC_TA_OC;
        T *dst = wa + gb * cin_g * FC_TA_OC;
        if (wb) {
            /* channels [oc0, oc0 + n1) from B block b1, the rest from b1 + 1
             * (B is zero past cout_g; past its last block, zeros here) */
            const int64_t b1 = oc0 / OB, o1 = oc0 % OB;
            const int n1 = (int)fc_min64(FC_TA_OC, OB - o1), n2 = FC_TA_OC - n1;
            const int has2 = n2 > 0 && b1 + 1 < nob;
            const T *s1 = wb + (g * nob + b1) * cin_g * OB + o1;
            const T *s2 = s1 - o1 + cin_g * OB;
            /* n1 is 6, 4 or 2 (OB is a multiple of 8): constant-size copies,
             * inlined (a libc call per 24 bytes doubled the pack's time) */
#define FC_PACK_A_COPY(N1)                                                                 \
    for (int64_t ic = 0; ic < cin_g; ++ic, dst += FC_TA_OC, s1 += OB, s2 += OB) {          \
        memcpy(dst, s1, (N1) * sizeof(T));                                                 \
        if ((N1) < FC_TA_OC) {                                                             \
            if (has2) memcpy(dst + (N1), s2, (FC_TA_OC - (N1)) * sizeof(T));                \
            else memset(dst + (N1), 0, (FC_TA_OC - (N1)) * sizeof(T));                      \
        }                                                                                  \
    }
            if (n1 == 6) FC_PACK_A_COPY(6)
            else if (n1 == 4) FC_PACK_A_COPY(4)
            else FC_PACK_A_COPY(2)
#undef FC_PACK_A_COPY
            continue;
        }
        const int nrows = (int)fc_min64(FC_TA_OC, cout_g - oc0);
        const T *src = w + (g * cout_g + oc0) * ws[0];
        for (int64_t ic = 0; ic < cin_g; ++ic) {
            const T *sp = src + ic * ws[1];
            for (int o = 0; o < FC_TA_OC; ++o)
                dst[ic * FC_TA_OC + o] = o < nrows ? sp[o * ws[0]] : (T)0;
        }
    }
}

/* A dense OIHW copy of w (any strides) into raw: a memcpy when w is dense
 * OIHW; else blocks of FC_OIHW_BLK output x FC_OIHW_BLK input channels, all
 * taps, so that each source cache line (HWIO's run of output channels) is
 * read once per block and each destination run (one output channel's
 * block x taps values) is written whole: NumPy's element-wise transposing
 * copy of a 512x512x3x3 HWIO view ran at ~0.5 GB/s (benchmarks/NOTES.md,
 * training step). */
#define FC_OIHW_BLK 16
void FN(fc_weight_to_oihw_)(const fc_conv_desc *d, const T *w, const int64_t *ws, T *raw)
{
    const int64_t cin_g = d->c_in / d->groups, taps = d->kh * d->kw, co = d->c_out;
    if (FN(dense_oihw_)(cin_g, d->kh, d->kw, ws)) {
        memcpy(raw, w, (size_t)(co * cin_g * taps) * sizeof(T));
        return;
    }
    int64_t toff[64];
    const int small_taps = taps <= 64;
    if (small_taps)
        for (int64_t t = 0; t < taps; ++t) toff[t] = (t / d->kw) * ws[2] + (t % d->kw) * ws[3];
    const int64_t nob = (co + FC_OIHW_BLK - 1) / FC_OIHW_BLK;
    const int64_t nib = (cin_g + FC_OIHW_BLK - 1) / FC_OIHW_BLK;
    const int nthr = FN(pack_threads_)((size_t)(co * cin_g * taps) * sizeof(T), nob);
    (void)nthr;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthr) if (nthr > 1)
#endif
    for (int64_t ob = 0; ob < nob; ++ob) {
        const int64_t o0 = ob * FC_OIHW_BLK, o1 = fc_min64(o0 + FC_OIHW_BLK, co);
        for (int64_t ib = 0; ib < nib; ++ib) {
            const int64_t i0 = ib * FC_OIHW_BLK, i1 = fc_min64(i0 + FC_OIHW_BLK, cin_g);
            for (int64_t o = o0; o < o1; ++o)
                for (int64_t i = i0; i < i1; ++i) {
                    const T *sp = w + o * ws[0] + i * ws[1];
                    T *dp = raw + (o * cin_g + i) * taps;
                    if (small_taps)
                        for (int64_t t = 0; t < taps; ++t) dp[t] = sp[toff[t]];
                    else
                        for (int64_t t = 0; t < taps; ++t)
                            dp[t] = sp[(t / d->kw) * ws[2] + (t % d->kw) * ws[3]];
                }
        }
    }
}

/* Whether packed weights keep an OIHW copy: depthwise candidates for
 * fc_conv2d_depthwise_*, few-output-channel weights for the small kernel
 * (conv_small.h). */
static int FN(keeps_oihw_)(const fc_packed *pk)
{
    return pk->cin_g == 1
           || FC_SMALL_KEEP_OIHW(pk->cout_g,
                                 pk->c_out * pk->cin_g * pk->kh * pk->kw * (int64_t)sizeof(T));
}

/* Every layout pk keeps, from w: the OIHW copy, B (and its finite flag), A. */
static void FN(fill_packed_)(const fc_conv_desc *d, const T *w, const int64_t *ws, fc_packed *pk)
{
    if (pk->raw) FN(fc_weight_to_oihw_)(d, w, ws, (T *)pk->raw);
    pk->finite = FN(pack_b_)(w, ws, pk, (T *)pk->wb);
    if (pk->wa) FN(pack_a_)(w, ws, pk, (const T *)pk->wb, (T *)pk->wa);
}

/* A pack of d's geometry with its buffers, nothing in them yet. */
static fc_packed *FN(alloc_packed_)(const fc_conv_desc *d)
{
    fc_packed *pk = (fc_packed *)calloc(1, sizeof *pk);
    if (!pk) return NULL;
    FN(packed_geometry_)(d, pk);
    T *wb = (T *)fc_alloc64(FN(wb_elems_)(pk) * sizeof(T));
    T *wa = pk->noa ? (T *)fc_alloc64(FN(wa_elems_)(pk) * sizeof(T)) : NULL;
    T *raw = FN(keeps_oihw_)(pk)
                 ? (T *)fc_alloc64((size_t)(d->c_out * pk->cin_g * d->kh * d->kw) * sizeof(T))
                 : NULL;
    pk->wb = wb; pk->wa = wa; pk->raw = raw;
    if (!wb || (pk->noa && !wa) || (FN(keeps_oihw_)(pk) && !raw)) {
        fc_packed_free(pk);
        return NULL;
    }
    return pk;
}

/* w[o][i][h][v] at w + o*ws[0] + i*ws[1] + h*ws[2] + v*ws[3] (OIHW order, any
 * strides: a dense OIHW array, or a view of HWIO weights). */
fc_packed *FN(fc_pack_weight_strided_)(const fc_conv_desc *d, const T *w, const int64_t *ws)
{
    fc_packed *pk = FN(alloc_packed_)(d);
    if (pk) FN(fill_packed_)(d, w, ws, pk);
    return pk;
}

/* Whether d (and the float type) is pk's geometry, as a repack needs. */
static int FN(repack_fits_)(const fc_packed *pk, const fc_conv_desc *d)
{
    return pk && pk->elem == sizeof(T) && d->groups > 0 && pk->groups == d->groups
           && pk->c_out == d->c_out && pk->cin_g * d->groups == d->c_in && pk->kh == d->kh
           && pk->kw == d->kw;
}

/* New values of the same geometry into pk's buffers (what
 * pack_weight(..., out=) does): nothing allocated, so no first touch of fresh
 * pages, which cost a fresh pack of 1x1 weights more than the packing itself
 * (benchmarks/NOTES.md, perf-raw).  FC_EINVAL when d is not pk's geometry. */
int FN(fc_repack_weight_strided_)(fc_packed *pk, const fc_conv_desc *d, const T *w,
                                  const int64_t *ws)
{
    if (!FN(repack_fits_)(pk, d)) return FC_EINVAL;
    FN(fill_packed_)(d, w, ws, pk);
    return FC_OK;
}

/* The weights pk holds, back out of layout B (which holds every weight
 * exactly, zeros past c_out) into dst[o][i][h][v] at dst + o*ds[0] + i*ds[1]
 * + h*ds[2] + v*ds[3]: a pack keeps no copy of its source, and this rebuilds
 * one only when asked for (PackedWeight.weight: the im2col and separate
 * methods, pickling), so pack_weight writes one layout less (docs/DESIGN.md,
 * packed layouts).  Rows of B are runs of output channels: HWIO-ordered dst
 * (ds[0] == 1) gets line copies, any other a scalar loop. */
void FN(fc_unpack_weight_)(const fc_packed *pk, T *dst, const int64_t *ds)
{
    const int64_t KW = pk->kw, taps = pk->kh * pk->kw, cin_g = pk->cin_g;
    const int64_t blk = taps * cin_g * OB;
    for (int64_t gb = 0; gb < pk->groups * pk->nob; ++gb) {
        const int64_t g = gb / pk->nob, b = gb % pk->nob;
        const int64_t o0 = g * pk->cout_g + b * OB;
        const int nv = (int)fc_min64(OB, pk->cout_g - b * OB);
        const T *src = (const T *)pk->wb + gb * blk;
        for (int64_t t = 0; t < taps; ++t)
            for (int64_t ic = 0; ic < cin_g; ++ic) {
                const T *sp = src + (t * cin_g + ic) * OB;
                T *dp = dst + o0 * ds[0] + ic * ds[1] + (t / KW) * ds[2] + (t % KW) * ds[3];
                if (ds[0] == 1) memcpy(dp, sp, (size_t)nv * sizeof(T));
                else
                    for (int o = 0; o < nv; ++o) dp[o * ds[0]] = sp[o];
            }
    }
}

fc_packed *FN(fc_pack_weight_)(const fc_conv_desc *d, const T *w)
{
    const int64_t ws[4] = {d->c_in / d->groups * d->kh * d->kw, d->kh * d->kw, d->kw, 1};
    return FN(fc_pack_weight_strided_)(d, w, ws);
}

/* ---- the driver -------------------------------------------------------- */



/* xs: element strides of x in (n, c, h, w) order; y_nhwc: output channels-last. */
static int FN(pick_mode_)(const fc_conv_desc *d, const fc_activation *pre, const fc_packed *pk,
                          const int64_t *xs, int y_nhwc)
{
    const int pre_id = !pre || pre->kind == FC_ACT_IDENTITY;
    const int nopad = d->pad_top == 0 && d->pad_left == 0
                      && (d->h_out - 1) * d->stride_h + (d->kh - 1) * d->dil_h < d->h_in
                      && (d->w_out - 1) * d->stride_w + (d->kw - 1) * d->dil_w < d->w_in;
    if (pre_id && nopad && d->kh == 1 && d->kw == 1 && d->stride_h == 1 && d->stride_w == 1
        && pk->wa && d->h_out == d->h_in && d->w_out == d->w_in
        && xs[3] == 1 && xs[2] == d->w_in && !y_nhwc)
        return MODE_A;
    if (pre_id && nopad) return MODE_DIRECT;
    if (d->groups == 1 && d->c_in < 8 && d->kw > 1) return MODE_FOLD;
    /* channels-last x: the tiles read it in place, padded taps from the zero buffer */
    if (pre_id && xs[1] == 1) return MODE_DIRECT;
    return MODE_NHWC;
}

static void FN(dense_strides_)(const fc_conv_desc *d, int64_t *xs)
{
    xs[3] = 1; xs[2] = d->w_in; xs[1] = d->h_in * d->w_in; xs[0] = d->c_in * xs[1];
}

static int64_t FN(ceil_div_)(int64_t a, int64_t b) { return (a + b - 1) / b; }

static double FN(image_flops_)(const fc_conv_desc *d)   /* of one image */
{
    return 2.0 * (double)d->c_out * (double)(d->h_out * d->w_out)
           * (double)(d->c_in / d->groups) * (double)(d->kh * d->kw);
}

/* Batches whose input goes through a copy (NHWC or folded) are computed one
 * image at a time when an image is big enough to keep every thread busy: the
 * copy of one image stays in L2 between the copy and the tiles that read it
 * (a batch of 8 128x28x28 images is 3.2 MB; one is 0.4 MB). */
static int FN(image_by_image_)(const fc_conv_desc *d, int mode)
{
    return d->n > 1 && (mode == MODE_NHWC || mode == MODE_FOLD) && FN(image_flops_)(d) >= 1.0e7;
}

/* Elements of one input row's copy (NHWC or folded; 0: x is read in place). */
static int64_t FN(copy_row_elems_)(const fc_conv_desc *d, int mode)
{
    return mode == MODE_NHWC ? d->w_in * d->c_in
           : mode == MODE_FOLD ? d->w_out * d->kw * d->c_in : 0;
}

/* Threads of the driver's parallel region for d. */
static int FN(driver_threads_)(const fc_conv_desc *d)
{
#ifdef _OPENMP
    return (double)d->n * FN(image_flops_)(d) > FC_PARALLEL_MIN_FLOPS ? omp_get_max_threads() : 1;
#else
    (void)d;
    return 1;
#endif
}

/* Batches of small images whose input goes through a copy are split by image
 * among the threads: a thread copies an image into a buffer of its own (in
 * its L2) just before its tiles read it, every item of that image in a row.
 * With the copy shared by the team (every row, a barrier, then tiles of any
 * image), tiles read lines the other core had just written, and one image at
 * a time (image_by_image_) forks the team per image: ResNet's 64-channel
 * 16x16 layer, batch 8, ran 1.1x faster on 2 threads than on 1, NCHW, where
 * the same layer in NHWC (read in place) ran 1.9x (benchmarks/NOTES.md,
 * training step, session 11).  Whole images per thread: enough of them for
 * balance.  The buffers are the threads' own (allocated in the region), not
 * the workspace, whose size does not depend on the thread count. */
#define FC_PRIVATE_IMAGE_BYTES (512 * 1024)
/* (an image of more work is shared by the team well enough: 2 x 256x14x14
 * images, 231 MFLOP each, ran ~4 % slower one per thread; 19 MFLOP images
 * ran up to 1.8x faster) */
#define FC_PRIVATE_IMAGE_MAX_FLOPS 1.0e8
static int FN(private_images_)(const fc_conv_desc *d, int mode, int nthr)
{
    const int64_t bytes = d->h_in * FN(copy_row_elems_)(d, mode) * (int64_t)sizeof(T);
    return bytes > 0 && bytes <= FC_PRIVATE_IMAGE_BYTES
           && FN(image_flops_)(d) < FC_PRIVATE_IMAGE_MAX_FLOPS
           && d->n >= 2 && d->n >= nthr && (d->n % nthr == 0 || d->n >= 4 * nthr);
}

/* Whether d's weights (as layout B) are at least 4x the batch's input: the
 * part of weight_major_ that does not depend on the weights' form or the
 * threads, so that the workspace query (mode_workspace_) agrees with it. */
static int FN(weights_dwarf_input_)(const fc_conv_desc *d)
{
    const int64_t G = d->groups, nob = (d->c_out / G + OB - 1) / OB;
    const double wbytes = (double)(G * nob * d->kh * d->kw * (d->c_in / G) * OB)
                          * (double)sizeof(T);
    const double xbytes = (double)(d->n * d->c_in * d->h_in * d->w_in) * (double)sizeof(T);
    return wbytes >= 4.0 * xbytes;
}

/* OB-blocks of layout B a work item takes (whole tiles of NBT blocks, about
 * 256 KB of weights: they stay in L2 over the item's tiles). */
static int64_t FN(block_group_)(const fc_packed *pk, int NBT)
{
    const int64_t wblk = pk->kh * pk->kw * pk->cin_g * OB * (int64_t)sizeof(T);
    const int64_t ogs = fc_max64(1, fc_min64(pk->nob, (int64_t)(256 * 1024) / wblk));
    return fc_min64(pk->nob, FN(ceil_div_)(ogs, NBT) * NBT);
}

/* Raw weights (fc_packed.src) much bigger than the batch's input, with a
 * block group for every thread: each work item is one block group of output
 * channels over the whole batch, packed into its thread's slot of wb just
 * before its tiles read it, so that layout B never goes through memory.
 * ResNet-18's last stages in training (9.4 MB of 512x512x3x3 weights for 8
 * images of 2x2) spent more on writing and reading B than on their tiles
 * (benchmarks/NOTES.md, training step, session 11). */
static int FN(weight_major_)(const fc_conv_desc *d, const fc_packed *pk, int mode, int nthr,
                             int NBT)
{
    return pk->src && mode != MODE_A && FN(weights_dwarf_input_)(d)
           && pk->groups * pk->nob >= nthr * FN(block_group_)(pk, NBT);
}

static size_t FN(mode_workspace_)(const fc_conv_desc *d, const fc_activation *pre,
                                  const int64_t *xs)
{
    fc_packed fake = {0};
    fake.wa = (d->kh == 1 && d->kw == 1) ? (void *)&fake : NULL;
    const int mode = FN(pick_mode_)(d, pre, &fake, xs, 0);
    /* one image when the driver goes image by image (not when it may take
     * the call weight-major, weight_major_) */
    const int64_t n = FN(image_by_image_)(d, mode) && !FN(weights_dwarf_input_)(d) ? 1 : d->n;
    return (size_t)(n * d->h_in * FN(copy_row_elems_)(d, mode)) * sizeof(T);
}

/* The small-problem kernel (conv_small.h) takes dense NCHW calls it wants,
 * where its family runs (fc_isa_variant, dispatch.c: not at the portable
 * level). */
static int FN(small_takes_)(const fc_conv_desc *d, const fc_activation *pre)
{
    return fc_isa_variant(FC_FAM_SMALL) != FC_ISA_NONE && fc_small_wanted(d, pre, sizeof(T));
}

/* The first-layer kernel (conv_first.h) takes few-input-channel layers. */
static int FN(first_takes_)(const fc_conv_desc *d, const fc_activation *pre)
{
    return fc_isa_variant(FC_FAM_FIRST) != FC_ISA_NONE && fc_first_wanted(d, pre, sizeof(T));
}

/* The strided-1x1 kernel (conv_1x1.h) takes 1x1 layers with stride or
 * padding at the AVX2 level only: its tile is AVX2's (16 channels x 6
 * pixels), and under AVX-512 the driver's B tiles ran those layers 1.5-2.6x
 * faster (ResNet's 256->512 stride-2 downsample: 126 -> 67 us on a Zen 5;
 * with the AVX2 set the driver was 0.7-1.4x as fast: benchmarks/NOTES.md,
 * session 12). */
static int FN(s1x1_takes_)(const fc_conv_desc *d, const fc_activation *pre)
{
    return fc_isa_variant(FC_FAM_1X1S) == FC_ISA_AVX2 && fc_1x1s_wanted(d, pre, sizeof(T));
}

/* Row r = (n, ih) of x into channels-last xt[r][w][c], pre-activated. */
static void FN(to_nhwc_row_)(const fc_kernel_table *kt, const fc_conv_desc *d, const T *x,
                             const int64_t *xs, T *dst, int64_t r, const fc_activation *pre)
{
    const int64_t C = d->c_in, H = d->h_in, W = d->w_in, n = r / H, h = r % H;
    const T *src = x + n * xs[0] + h * xs[2];
    const int act = pre && pre->kind != FC_ACT_IDENTITY;
    if (xs[1] == 1 && xs[3] == C) {   /* a channels-last row: copy (or activate) it */
        if (act) FN(fc_activate_serial_)(src, dst, (size_t)(W * C), pre);
        else memcpy(dst, src, (size_t)(W * C) * sizeof(T));
        return;
    }
    if (xs[3] == 1) {
        /* the next row's C short pieces (a cold batch image comes from
         * DRAM, and C interleaved streams defeat the hardware prefetcher):
         * +1.5 % on batch8_3x3_128, NOTES.md */
        if (r + 1 < d->n * H) {
            const T *next = h + 1 < H ? src + xs[2] : x + (n + 1) * xs[0];
            const int64_t lines = (W * (int64_t)sizeof(T) + 63) / 64;
            for (int64_t c = 0; c < C; ++c)
                for (int64_t l = 0; l <= lines; ++l)
                    __builtin_prefetch((const char *)(next + c * xs[1]) + 64 * l, 0, 2);
        }
        CAT(kt->nhwc_, SFX)(src, C, xs[1], W, dst);
    } else {
        for (int64_t w = 0; w < W; ++w)
            for (int64_t c = 0; c < C; ++c) dst[w * C + c] = src[c * xs[1] + w * xs[3]];
    }
    if (act) FN(fc_activate_serial_)(dst, dst, (size_t)(W * C), pre);
}

/* Row r = (n, ih) of x unfolded along kw: xt[r][ow][kw * C + c]. */
static void FN(fold_row_)(const fc_conv_desc *d, const T *x, const int64_t *xs, T *dst,
                          int64_t r, const fc_activation *pre)
{
    const int64_t C = d->c_in, H = d->h_in, W = d->w_in, n = r / H, h = r % H;
    const int64_t KC = d->kw * C, cs = xs[1], ws = xs[3];
    const T *src = x + n * xs[0] + h * xs[2];
    /* columns whose whole window is inside the row: [lo, hi) */
    const int64_t sw = d->stride_w, dw = d->dil_w, pl = d->pad_left, KW = d->kw;
    const int64_t lo = fc_min64(d->w_out, (pl + sw - 1) / sw);
    int64_t hi = W - 1 - (KW - 1) * dw + pl < 0 ? 0 : (W - 1 - (KW - 1) * dw + pl) / sw + 1;
    hi = fc_max64(lo, fc_min64(hi, d->w_out));
    for (int64_t ow = 0; ow < d->w_out; ++ow) {
        if (ow == lo && hi > lo) {   /* interior: no bounds tests */
            for (int64_t c = 0; c < C; ++c) {
                const T *sc = src + c * cs - pl * ws;
                for (int64_t o2 = lo; o2 < hi; ++o2) {
                    const T *s2 = sc + o2 * sw * ws;
                    T *o = dst + o2 * KC + c;
                    for (int64_t kw = 0; kw < KW; ++kw) o[kw * C] = s2[kw * dw * ws];
                }
            }
            ow = hi - 1;
            continue;
        }
        for (int64_t kw = 0; kw < KW; ++kw) {
            const int64_t iw = ow * sw - pl + kw * dw;
            T *o = dst + ow * KC + kw * C;
            if (iw < 0 || iw >= W)
                for (int64_t c = 0; c < C; ++c) o[c] = (T)0;
            else
                for (int64_t c = 0; c < C; ++c) o[c] = src[c * cs + iw * ws];
        }
    }
    if (pre && pre->kind != FC_ACT_IDENTITY) {
        /* zeros of the padding must stay zero: activate only real values */
        for (int64_t ow = 0; ow < d->w_out; ++ow)
            for (int64_t kw = 0; kw < d->kw; ++kw) {
                const int64_t iw = ow * d->stride_w - d->pad_left + kw * d->dil_w;
                if (iw >= 0 && iw < W)
                    FN(fc_activate_serial_)(dst + ow * KC + kw * C, dst + ow * KC + kw * C,
                                            (size_t)C, pre);
            }
    }
}

/* Input row r (image r / h_in) copied for the tiles into dst. */
static void FN(copy_row_)(const fc_kernel_table *kt, const fc_conv_desc *d, int mode,
                          const T *x, const int64_t *xs, T *dst, int64_t r,
                          const fc_activation *pre)
{
    if (mode == MODE_NHWC) FN(to_nhwc_row_)(kt, d, x, xs, dst, r, pre);
    else FN(fold_row_)(d, x, xs, dst, r, pre);
}

/* Geometry of what the B tiles read. */
typedef struct {
    int64_t H, W, ps, xs;          /* rows, columns, pixel stride, channel stride */
    int64_t rs;                    /* row stride */
    int64_t kh, kw, sh, sw, dh, dw, pt, pl;
    int64_t img, grp;              /* element offsets of one image, one group */
    int64_t kc;                    /* channels per tap */
} FN(geom_);

/* tab[tap][j] for the np pixels from p0, column j pixel p0 + (j + rot) % np;
 * columns np..P-1 repeat column 0 (computed, never stored; not the zero
 * buffer, which is only kc long and DIRECT strides by the channel stride). */
/* Pixels whose window lies inside the input get base + one offset per tap
 * (FC_PTR_TAPS of them precomputed): the bounds checks per tap and pixel were
 * most of the driver's time on layers of few channels per tap (the digits
 * CNN's 8: the table took longer than the tile, benchmarks/NOTES.md "small
 * layers, session 10"). */
#define FC_PTR_TAPS 64
static void FN(ptr_table_)(const FN(geom_) *g, const T *base, const T *zero, int64_t p0,
                           int np, int rot, int P, int64_t wo, const T **tab)
{
    const int64_t ntaps = g->kh * g->kw;
    const int64_t hspan = (g->kh - 1) * g->dh, wspan = (g->kw - 1) * g->dw;
    int64_t toff[FC_PTR_TAPS];
    const int offs = ntaps <= FC_PTR_TAPS;
    if (offs)
        for (int64_t kh = 0; kh < g->kh; ++kh)
            for (int64_t kw = 0; kw < g->kw; ++kw)
                toff[kh * g->kw + kw] = kh * g->dh * g->rs + kw * g->dw * g->ps;
    int64_t oh = (p0 + rot) / wo, ow = (p0 + rot) % wo;
    for (int j = 0; j < P; ++j) {
        if (rot && j == np - rot) { oh = p0 / wo; ow = p0 % wo; }
        if (j >= np) {
            for (int64_t t = 0; t < ntaps; ++t) tab[t * P + j] = tab[t * P];
            continue;
        }
        const int64_t ih0 = oh * g->sh - g->pt, iw0 = ow * g->sw - g->pl;
        if (offs && ih0 >= 0 && ih0 + hspan < g->H && iw0 >= 0 && iw0 + wspan < g->W) {
            const T *pb = base + ih0 * g->rs + iw0 * g->ps;
            for (int64_t t = 0; t < ntaps; ++t) tab[t * P + j] = pb + toff[t];
            if (++ow == wo) { ow = 0; ++oh; }
            continue;
        }
        for (int64_t kh = 0; kh < g->kh; ++kh) {
            const int64_t ih = ih0 + kh * g->dh;
            const int rok = (uint64_t)ih < (uint64_t)g->H;
            for (int64_t kw = 0; kw < g->kw; ++kw) {
                const int64_t iw = iw0 + kw * g->dw;
                const int ok = rok && (uint64_t)iw < (uint64_t)g->W;
                tab[(kh * g->kw + kw) * P + j] = ok ? base + ih * g->rs + iw * g->ps : zero;
            }
        }
        if (++ow == wo) { ow = 0; ++oh; }
    }
}

static int FN(tap_dead_)(const T *const *row, int P, const T *zero)
{
    for (int j = 0; j < P; ++j)
        if (row[j] != zero) return 0;
    return 1;
}

/* One past the last input row read by the tiles of bands [0, b) (n == 1):
 * rows are copied group by group in that order. */
static int64_t FN(band_rows_end_)(const fc_conv_desc *d, int64_t b, int64_t band, int64_t pbase,
                                  int64_t pextra, int64_t ntiles)
{
    const int64_t t = fc_min64(ntiles, b * band);
    const int64_t p_end = t * pbase + fc_min64(t, pextra);   /* first pixel not covered */
    if (p_end <= 0) return 0;
    const int64_t oh = (p_end - 1) / d->w_out;                /* last output row touched */
    const int64_t ih = oh * d->stride_h - d->pad_top + (d->kh - 1) * d->dil_h + 1;
    return fc_max64(0, fc_min64(d->h_in, ih));
}

/* Whether strides xs (NULL: dense) lay x out as dense NCHW, the strides of
 * size-1 dimensions aside: an NHWC input of one channel is one. */
static int FN(nchw_layout_)(const fc_conv_desc *d, const int64_t *xs)
{
    if (!xs) return 1;
    int64_t dense[4];
    FN(dense_strides_)(d, dense);
    const int64_t ext[4] = {d->n, d->c_in, d->h_in, d->w_in};
    for (int i = 0; i < 4; ++i)
        if (ext[i] > 1 && xs[i] != dense[i]) return 0;
    return 1;
}

/* A channels-last output of a layer the small kernel wants, from an input
 * laid out as NCHW (nchw_layout_), or a small one of any layout gathered into
 * NCHW: that kernel into an NCHW buffer, then one transposing pass into y.  The B tiles compute 16 channels of which such a
 * layer has at most 8, from a pointer table per 6 pixels that costs more
 * than their FMAs at one input channel (the digits CNN's first layer, NHWC:
 * benchmarks/NOTES.md "small layers, session 10").  The weights from the
 * pack's OIHW copy (which packs of one input channel per group keep) or the
 * raw call's source.  FC_EINVAL: not such a call. */
#define FC_SMALL_GATHER_BYTES (256 * 1024)
/* The buffer small_to_nhwc_ needs (weights, NCHW result, gathered input):
 * 0 when it does not take the call. */
static size_t FN(small_nhwc_bytes_)(const fc_conv_desc *d, const int64_t *xs,
                                    const fc_activation *pre)
{
    if (d->groups != 1 || !FN(small_takes_)(d, pre)) return 0;
    const size_t xbytes = FN(nchw_layout_)(d, xs)
                              ? 0 : (size_t)(d->n * d->c_in * d->h_in * d->w_in) * sizeof(T);
    if (xbytes > FC_SMALL_GATHER_BYTES) return 0;
    return fc_round64((size_t)(d->c_out * d->c_in * d->kh * d->kw) * sizeof(T))
           + fc_round64((size_t)(d->n * d->c_out * d->h_out * d->w_out) * sizeof(T)) + xbytes;
}

/* buf: small_nhwc_bytes_ bytes, or NULL (allocated here). */
static int FN(small_to_nhwc_)(const fc_conv_desc *d, const T *x, const int64_t *xs,
                              const fc_packed *pk, const T *bias, T *y,
                              const fc_activation *post, const fc_activation *pre, void *buf_in)
{
    const size_t bytes = FN(small_nhwc_bytes_)(d, xs, pre);
    if (!bytes || (!pk->raw && !pk->src)) return FC_EINVAL;
    const int64_t taps = d->kh * d->kw, cin = d->c_in, hwo = d->h_out * d->w_out;
    const int64_t hwi = d->h_in * d->w_in;
    const size_t wbytes = (size_t)(d->c_out * cin * taps) * sizeof(T);
    const size_t ybytes = (size_t)(d->n * d->c_out * hwo) * sizeof(T);
    if (!buf_in) fc_note_workspace_fallback();
    char *buf = buf_in ? (char *)buf_in : (char *)fc_alloc64(bytes);
    if (!buf) return FC_ENOMEM;
    T *w = (T *)buf, *yt = (T *)(buf + fc_round64(wbytes));
    if (pk->raw) memcpy(w, pk->raw, wbytes);
    else FN(fc_weight_to_oihw_)(d, (const T *)pk->src, pk->src_ws, w);
    if (!FN(nchw_layout_)(d, xs)) {   /* pixel by pixel: a pixel's channels are one run in NHWC */
        T *xt = (T *)(buf + fc_round64(wbytes) + fc_round64(ybytes));
        for (int64_t i = 0; i < d->n; ++i)
            for (int64_t h = 0; h < d->h_in; ++h)
                for (int64_t v = 0; v < d->w_in; ++v) {
                    const T *sp = x + i * xs[0] + h * xs[2] + v * xs[3];
                    T *dp = xt + i * cin * hwi + h * d->w_in + v;
                    for (int64_t c = 0; c < cin; ++c) dp[c * hwi] = sp[c * xs[1]];
                }
        x = xt;
    }
    const int rc = CAT(fc_conv_small_avx2_, SFX)(d, x, w, bias, yt, post);
    if (rc == FC_OK) {   /* per image, blocks of 16 pixels: each channel row read in runs */
        const int64_t C = d->c_out;
        for (int64_t i = 0; i < d->n; ++i) {
            const T *src = yt + i * C * hwo;
            T *dst = y + i * hwo * C;
            for (int64_t q0 = 0; q0 < hwo; q0 += 16) {
                const int64_t nq = hwo - q0 < 16 ? hwo - q0 : 16;
                for (int64_t o = 0; o < C; ++o) {
                    const T *sr = src + o * hwo + q0;
                    T *dc = dst + q0 * C + o;
                    for (int64_t q = 0; q < nq; ++q) dc[q * C] = sr[q];
                }
            }
        }
    }
    if (!buf_in) fc_free64(buf);
    return rc;
}

/* ---- the plan: which family takes a call, and its workspace -------------
 *
 * The kernel families, most specialised first, the direct driver's tiles
 * last; the first whose takes() accepts a call runs it, and its workspace()
 * is the exact workspace the call needs (docs/DESIGN.md, "Kernel families").
 * fc_conv2d_packed_ex_, conv_raw_ and the workspace queries all read this
 * one plan, so a family never declines after a buffer was sized for it, and
 * adding a family is one row here. */
typedef struct {
    const fc_conv_desc *d;
    const int64_t *xs;          /* element strides of x (n, c, h, w) */
    int dense;                  /* x is dense NCHW */
    int y_nhwc;                 /* the output is channels-last */
    const fc_activation *pre;
    int oihw;                   /* an OIHW array of the weights is at hand (fc_packed.raw) */
    int src;                    /* the caller's weights are (fc_packed.src, a raw call) */
} FN(call_);

static int FN(pre_identity_)(const fc_activation *pre)
{
    return !pre || pre->kind == FC_ACT_IDENTITY;
}

/* depthwise (conv_depthwise.c): groups == c_in, NCHW in and out, from OIHW */
static int FN(depthwise_takes_)(const FN(call_) *c)
{
    return c->oihw && c->dense && !c->y_nhwc && FN(pre_identity_)(c->pre)
           && c->d->groups == c->d->c_in && c->d->c_out % c->d->groups == 0;
}

/* channels-last depthwise (conv_depthwise_nhwc.h), from OIHW */
static int FN(depthwise_nhwc_takes_)(const FN(call_) *c)
{
    return c->oihw && c->y_nhwc && fc_dw_nhwc_wanted(c->d, c->xs, c->pre, sizeof(T));
}

/* the small-problem kernel (conv_small.h), NCHW in and out, from OIHW */
static int FN(small_nchw_takes_)(const FN(call_) *c)
{
    return c->oihw && c->dense && !c->y_nhwc && FN(small_takes_)(c->d, c->pre);
}

/* the same for a channels-last output, through an NCHW buffer (small_to_nhwc_) */
static int FN(small_nhwc_takes_)(const FN(call_) *c)
{
    return c->y_nhwc && (c->oihw || c->src) && FN(small_nhwc_bytes_)(c->d, c->xs, c->pre) > 0;
}
static size_t FN(small_nhwc_workspace_)(const FN(call_) *c)
{
    return FN(small_nhwc_bytes_)(c->d, c->xs, c->pre);
}

/* the first-layer kernel (conv_first.h): its per-thread band buffers are its
 * own (sized by the thread count), no workspace */
static int FN(first_layer_takes_)(const FN(call_) *c)
{
    return c->dense && !c->y_nhwc && FN(first_takes_)(c->d, c->pre);
}

/* the strided-1x1 kernel (conv_1x1.h) */
static int FN(strided_1x1_takes_)(const FN(call_) *c)
{
    return c->dense && !c->y_nhwc && FN(s1x1_takes_)(c->d, c->pre);
}
static size_t FN(strided_1x1_workspace_)(const FN(call_) *c)
{
    return fc_1x1s_workspace(c->d, sizeof(T));
}

/* the direct driver's tiles: every call */
static int FN(direct_takes_)(const FN(call_) *c) { (void)c; return 1; }
static size_t FN(direct_workspace_)(const FN(call_) *c)
{
    /* none when the driver gives each thread images of its own (its buffers,
     * sized by the thread count: private_images_), as the driver decides it
     * (the same pack layouts, the thread count now) */
    fc_packed fake;
    FN(packed_geometry_)(c->d, &fake);
    fake.wa = fake.noa ? (void *)&fake : NULL;
    fake.src = c->src ? (const void *)&fake : NULL;
    const int mode = FN(pick_mode_)(c->d, c->pre, &fake, c->xs, c->y_nhwc);
    const int nthr = FN(driver_threads_)(c->d);
    if (!FN(weight_major_)(c->d, &fake, mode, nthr, fc_kernels()->tile_nb)
        && FN(private_images_)(c->d, mode, nthr))
        return 0;
    return FN(mode_workspace_)(c->d, c->pre, c->xs);
}

static size_t FN(no_workspace_)(const FN(call_) *c) { (void)c; return 0; }

/* Each family's run, one signature: the call, x, the pack (OIHW in pk->raw for
 * the families that read it), bias, y, the post-activation and the plan's
 * workspace (or NULL: a family that needs one allocates it,
 * fc_note_workspace_fallback). */
#define FC_RUN_ARGS const FN(call_) *c, const T *x, const fc_packed *pk, const T *bias, T *y, \
                    const fc_activation *post, void *workspace
static int FN(depthwise_run_)(FC_RUN_ARGS)
{
    (void)workspace;
    return FN(fc_conv2d_depthwise_)(c->d, x, (const T *)pk->raw, bias, y, post);
}
static int FN(depthwise_nhwc_run_)(FC_RUN_ARGS)
{
    const int64_t rs[4] = {pk->kh * pk->kw, pk->kh * pk->kw, pk->kw, 1};   /* dense OIHW */
    (void)workspace;
    return FN(fc_conv2d_depthwise_nhwc_)(c->d, x, c->xs, (const T *)pk->raw, rs, bias, y, post,
                                         c->pre);
}
static int FN(small_run_)(FC_RUN_ARGS)
{
    (void)workspace;
    return CAT(fc_conv_small_avx2_, SFX)(c->d, x, (const T *)pk->raw, bias, y, post);
}
static int FN(small_nhwc_run_)(FC_RUN_ARGS)
{
    return FN(small_to_nhwc_)(c->d, x, c->xs, pk, bias, y, post, c->pre, workspace);
}
static int FN(first_run_)(FC_RUN_ARGS)
{
    /* the AVX-512 build of the template where that set is in use: 1.7x the
     * AVX2 one on ResNet's conv1 (benchmarks/NOTES.md, first layer) */
#if defined(__x86_64__) || defined(_M_X64)
    if (fc_isa_variant(FC_FAM_FIRST) == FC_ISA_AVX512)
        return CAT(fc_conv_first_avx512_, SFX)(c->d, x, pk, bias, y, post, workspace);
#endif
    return CAT(fc_conv_first_avx2_, SFX)(c->d, x, pk, bias, y, post, workspace);
}
static int FN(strided_1x1_run_)(FC_RUN_ARGS)
{
    return CAT(fc_conv_1x1s_avx2_, SFX)(c->d, x, pk, bias, y, post, workspace);
}
static int FN(direct_run_)(FC_RUN_ARGS);   /* the driver, below */

static const struct {
    int family;
    int (*takes)(const FN(call_) *c);
    size_t (*workspace)(const FN(call_) *c);
    int (*run)(FC_RUN_ARGS);
} FN(families_)[] = {
    {FAM_DEPTHWISE, FN(depthwise_takes_), FN(no_workspace_), FN(depthwise_run_)},
    {FAM_DEPTHWISE_NHWC, FN(depthwise_nhwc_takes_), FN(no_workspace_), FN(depthwise_nhwc_run_)},
    {FAM_SMALL, FN(small_nchw_takes_), FN(no_workspace_), FN(small_run_)},
    {FAM_SMALL_NHWC, FN(small_nhwc_takes_), FN(small_nhwc_workspace_), FN(small_nhwc_run_)},
    {FAM_FIRST, FN(first_layer_takes_), FN(no_workspace_), FN(first_run_)},
    {FAM_S1X1, FN(strided_1x1_takes_), FN(strided_1x1_workspace_), FN(strided_1x1_run_)},
    {FAM_DIRECT, FN(direct_takes_), FN(direct_workspace_), FN(direct_run_)},
};

/* The family that takes c (an index of families_) and its workspace bytes. */
static int FN(plan_)(const FN(call_) *c, size_t *workspace)
{
    int i = 0;
    while (!FN(families_)[i].takes(c)) ++i;   /* (the last row takes every call) */
    if (workspace) *workspace = FN(families_)[i].workspace(c);
    return i;
}

/* What fc_conv2d_packed_ex_ plans for d with a pack from fc_pack_weight
 * (an OIHW copy where keeps_oihw_ keeps one): the workspace query. */
static int FN(plan_for_pack_)(const fc_conv_desc *d, const int64_t *xs_in, int y_nhwc,
                              const fc_activation *pre, size_t *workspace)
{
    fc_packed pk;
    int64_t dense[4];
    FN(packed_geometry_)(d, &pk);
    FN(dense_strides_)(d, dense);
    const int64_t *xs = xs_in ? xs_in : dense;
    const FN(call_) c = {d, xs, !memcmp(xs, dense, sizeof dense), y_nhwc, pre,
                         FN(keeps_oihw_)(&pk), 0};
    return FN(plan_)(&c, workspace);
}

int FN(conv_plan_)(const fc_conv_desc *d, const int64_t *xs, int y_nhwc,
                   const fc_activation *pre, size_t *workspace)
{
    return FN(families_)[FN(plan_for_pack_)(d, xs, y_nhwc, pre, workspace)].family;
}

size_t FN(conv_workspace_)(const fc_conv_desc *d, const fc_activation *pre)
{
    size_t ws;
    FN(plan_for_pack_)(d, NULL, 0, pre, &ws);
    return ws;
}

/* xs: strides of x (n, c, h, w), NULL for dense NCHW; y_nhwc: the output
 * channels-last. */
size_t FN(conv_workspace_ex_)(const fc_conv_desc *d, const int64_t *xs, int y_nhwc,
                              const fc_activation *pre)
{
    size_t ws;
    FN(plan_for_pack_)(d, xs, y_nhwc, pre, &ws);
    return ws;
}

/* x: element strides xs (n, c, h, w) or NULL for dense NCHW; y dense, NCHW
 * or (y_nhwc) NHWC. */
int FN(fc_conv2d_packed_ex_)(const fc_conv_desc *d, const T *x, const int64_t *xs_in,
                             const fc_packed *pk, const T *bias, T *y, int y_nhwc,
                             const fc_activation *post, const fc_activation *pre,
                             void *workspace)
{
    static const fc_activation ident = {FC_ACT_IDENTITY, 0.0, 0.0};
    if (!pk || pk->elem != sizeof(T) || pk->c_out != d->c_out || pk->groups != d->groups
        || pk->kh != d->kh || pk->kw != d->kw || pk->cin_g * d->groups != d->c_in)
        return FC_EINVAL;
    if (!post) post = &ident;
    int64_t xs[4];
    FN(dense_strides_)(d, xs);
    const int dense = !xs_in || !memcmp(xs_in, xs, sizeof xs);
    if (xs_in) memcpy(xs, xs_in, sizeof xs);
    const FN(call_) call = {d, xs, dense, y_nhwc, pre, pk->raw != NULL, pk->src != NULL};
    return FN(families_)[FN(plan_)(&call, NULL)].run(&call, x, pk, bias, y, post, workspace);
}

/* The direct driver's tiles (the plan's last row). */
static int FN(direct_run_)(FC_RUN_ARGS)
{
    static const fc_activation ident = {FC_ACT_IDENTITY, 0.0, 0.0};
    const fc_conv_desc *d = c->d;
    const int64_t *xs = c->xs;
    const int y_nhwc = c->y_nhwc;
    const fc_activation *pre = c->pre;
    const fc_kernel_table *kt = fc_kernels();
    const int mode = FN(pick_mode_)(d, pre, pk, xs, y_nhwc);
    const int nthr = FN(driver_threads_)(d);
    const int wmaj = FN(weight_major_)(d, pk, mode, nthr, kt->tile_nb);
    const int priv = !wmaj && FN(private_images_)(d, mode, nthr);
    const int by_image = FN(image_by_image_)(d, mode) && !priv && !wmaj;
    fc_packed packed_now;   /* pk with layout B packed here (raw weights) */
    if (pk->src && (by_image || mode == MODE_A)) {
        packed_now = *pk;
        packed_now.src = NULL;
        packed_now.finite = FN(pack_b_)((const T *)pk->src, pk->src_ws, pk, (T *)pk->wb);
        pk = &packed_now;
    }
    if (by_image) {
        fc_conv_desc d1 = *d;
        d1.n = 1;
        const int64_t ys = d->c_out * d->h_out * d->w_out;
        for (int64_t i = 0; i < d->n; ++i) {
            const int rc = FN(fc_conv2d_packed_ex_)(&d1, x + i * xs[0], xs, pk, bias, y + i * ys,
                                                    y_nhwc, post, pre, workspace);
            if (rc != FC_OK) return rc;
        }
        return FC_OK;
    }
    const int64_t G = d->groups, cin_g = pk->cin_g, cout_g = pk->cout_g;
    const int64_t hwo = d->h_out * d->w_out, hwi = d->h_in * d->w_in;

    /* the bias, padded to whole blocks (zeros without a bias) */
    const int64_t nbias = G * fc_max64(pk->nob * OB, pk->noa * FC_TA_OC);
    T *bpad = (T *)fc_alloc64((size_t)nbias * sizeof(T));
    if (!bpad) return FC_ENOMEM;
    /* bpad is laid out per group with stride nbias / G */
    const int64_t bstride = nbias / G;
    for (int64_t g = 0; g < G; ++g)
        for (int64_t o = 0; o < bstride; ++o)
            bpad[g * bstride + o] = (bias && o < cout_g) ? bias[g * cout_g + o] : (T)0;

    /* what the B tiles read */
    FN(geom_) gm;
    T *xt = NULL, *zero = NULL;
    int own_ws = 0;
    /* (private images: the threads' own buffers instead) */
    size_t ws_bytes = priv ? 0 : FN(mode_workspace_)(d, pre, xs);
    if (ws_bytes) {
        xt = (T *)workspace;
        if (!xt) {
            xt = (T *)fc_alloc64(ws_bytes);
            own_ws = 1;
            fc_note_workspace_fallback();
        }
    }
    gm.kc = mode == MODE_FOLD ? d->kw * cin_g : cin_g;
    zero = (T *)fc_alloc64((size_t)gm.kc * sizeof(T) + 64);
    if ((ws_bytes && !xt) || !zero) {
        if (own_ws) fc_free64(xt);
        fc_free64(zero); fc_free64(bpad);
        return FC_ENOMEM;
    }
    memset(zero, 0, (size_t)gm.kc * sizeof(T) + 64);
    gm.sh = d->stride_h; gm.sw = d->stride_w; gm.dh = d->dil_h; gm.dw = d->dil_w;
    gm.pt = d->pad_top; gm.pl = d->pad_left; gm.kh = d->kh; gm.kw = d->kw;
    gm.H = d->h_in; gm.W = d->w_in;
    switch (mode) {
    case MODE_DIRECT:   /* x in place, whatever its strides */
        gm.ps = xs[3]; gm.rs = xs[2]; gm.xs = xs[1]; gm.img = xs[0]; gm.grp = cin_g * xs[1];
        break;
    case MODE_FOLD:
        gm.W = d->w_out; gm.kw = 1; gm.sw = 1; gm.pl = 0; gm.dw = 1;
        gm.ps = gm.kc; gm.rs = d->w_out * gm.kc; gm.xs = 1;
        gm.img = d->h_in * d->w_out * gm.kc; gm.grp = 0;
        break;
    default: /* NHWC; (MODE_A does not use gm) */
        gm.ps = d->c_in; gm.rs = d->w_in * d->c_in; gm.xs = 1; gm.img = hwi * d->c_in;
        gm.grp = cin_g;
        break;
    }
    const T *xsrc = (mode == MODE_DIRECT || mode == MODE_A) ? x : xt;
    const int64_t ntaps = gm.kh * gm.kw;
    const int P = kt->tile_p, NBT = kt->tile_nb;

    /* work items */
#ifdef _OPENMP
    const int par = nthr > 1;
#endif
    int64_t ntiles, band, nbands, ogs, nog, nitems, pbase = 0, pextra = 0;
    if (mode == MODE_A) {
        ntiles = FN(ceil_div_)(hwo, TAP);
        const int64_t wblk = cin_g * FC_TA_OC * (int64_t)sizeof(T);
        ogs = fc_max64(1, fc_min64(pk->noa, (int64_t)(256 * 1024) / wblk));
        band = 8;
    } else {
        /* tiles of pbase + 1 pixels (the first pextra) and pbase: none wasted */
        ntiles = FN(ceil_div_)(hwo, P);
        pbase = hwo / ntiles;
        pextra = hwo % ntiles;
        ogs = FN(block_group_)(pk, NBT);
        band = 16;
    }
    nog = FN(ceil_div_)(mode == MODE_A ? pk->noa : pk->nob, ogs);
    /* enough items for every thread (several each), bands never tiny */
    while (band > 1 && d->n * G * nog * FN(ceil_div_)(ntiles, band) < 4 * nthr) band /= 2;
    nbands = FN(ceil_div_)(ntiles, band);
    nitems = d->n * G * nbands * nog;
    const int64_t nrows = d->n * d->h_in;
    int failed = 0;
    /* Tiles of a top or bottom output row skip the kernel rows that fall wholly
     * in the padding (a third of a 3x3 tile's FMAs; 7x7 layers: +9 %, 28x28:
     * +2 %, NOTES.md perf-F).  Adding w * 0 changes nothing but the sign of an
     * exact zero when w is finite; an inf or NaN weight must still give NaN
     * there, as the zero-padded definition (and the reference) does. */
    /* Raw weights: a run of work items packs its blocks just before its
     * tiles read them, into its thread's slot of wb (ogs blocks; the slot
     * stays in L2 between items, nothing is written back), when no other run
     * reads them: one image and one band of tiles (small images with many
     * channels, whose weights are big next to their pixels), or every image
     * and band of one block group (weight_major_); else all blocks here. */
    const int pack_in_item = pk->src && G * pk->nob >= nthr * ogs
                             && (d->n * nbands == 1 || wmaj);
    if (pk->src && !pack_in_item) {
        packed_now = *pk;
        packed_now.src = NULL;
        packed_now.finite = FN(pack_b_)((const T *)pk->src, pk->src_ws, pk, (T *)pk->wb);
        pk = &packed_now;
    }
    /* (with pack_in_item: whether the item's own blocks are finite, below) */
    const int skip_dead = pack_in_item || pk->finite;
    /* ... and the FMAs of a tile's end pixels at the taps that read the left or
     * right padding for them (conv_kern.h, tapskip) */
    const int hpad = d->pad_left > 0
                     || (d->w_out - 1) * d->stride_w - d->pad_left + (d->kw - 1) * d->dil_w
                            >= d->w_in;
    const int colskip = skip_dead && hpad && mode != MODE_FOLD;
    /* relu in the tiles, the other kinds in one pass at the end (conv_kern.h) */
    const int late_act = !fc_act_in_tile(post);
    const fc_activation *tile_act = late_act ? &ident : post;
    /* An image whose channels-last copy is bigger than L2 (VGG's 64 x 224 x 224
     * is 12.8 MB) is copied and computed in groups of tile bands, each group's
     * input rows copied just before its tiles read them; otherwise the copy
     * makes a round trip through L3/DRAM between the two phases. */
    int64_t ngroups = 1, bpg = nbands;
    if (mode == MODE_NHWC && d->n == 1 && G == 1 && !pack_in_item
        && (int64_t)ws_bytes > FC_BAND_GROUP_BYTES) {
        const int64_t row_bytes = d->w_in * d->c_in * (int64_t)sizeof(T);
        const int64_t band_px = band * (pbase + 1);
        /* output rows a group may span, then input rows, within FC_BAND_GROUP_BYTES / 2 */
        const int64_t rows_fit = fc_max64(1, (FC_BAND_GROUP_BYTES / 2) / row_bytes);
        const int64_t out_rows = fc_max64(1, (rows_fit - (d->kh - 1) * d->dil_h) / d->stride_h);
        bpg = fc_max64(1, out_rows * d->w_out / band_px);
        bpg = fc_max64(bpg, nthr);   /* at least a band per thread per group */
        ngroups = FN(ceil_div_)(nbands, bpg);
    }

    /* items run in runs of `per` on one thread: an image's, with private
     * images; a block group's (every image and band), packing in the items */
    const int64_t per = priv ? G * nbands * nog : pack_in_item ? d->n * nbands : 1;
#ifdef _OPENMP
#pragma omp parallel if (par) reduction(| : failed)
#endif
    {
        const int64_t row_elems = FN(copy_row_elems_)(d, mode);
        if ((mode == MODE_NHWC || mode == MODE_FOLD) && ngroups == 1 && !priv) {
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (int64_t r = 0; r < nrows; ++r)
                FN(copy_row_)(kt, d, mode, x, xs, xt + r * row_elems, r, pre);
        }
        T *own_img = priv ? (T *)fc_alloc64((size_t)(d->h_in * row_elems) * sizeof(T)) : NULL;
        if (priv && !own_img) failed = 1;
        const T **tab = NULL;
        unsigned char *tapskip = NULL;
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        T *slot = pack_in_item ? (T *)pk->wb + (int64_t)tid * ogs * ntaps * gm.kc * OB : NULL;
        int slot_fin = 1;   /* whether the slot's blocks are all finite */
        if (mode != MODE_A) {
            /* the tap flags after the table, in the same allocation */
            tab = (const T **)malloc((size_t)(ntaps * P) * sizeof(T *) + (size_t)ntaps);
            if (!tab) failed = 1;
            else tapskip = (unsigned char *)(tab + ntaps * P);
        }
        fc_tileB_args ab;
        fc_tileA_args aa;
        ab.ntaps = ntaps; ab.kc = gm.kc; ab.xs = gm.xs; ab.act = tile_act;
        ab.ldy = y_nhwc ? 1 : hwo;
        ab.ldp = y_nhwc ? d->c_out : 1;
        ab.wbs = ntaps * gm.kc * OB;
        ab.ptrs = (const void *const *)tab;
        ab.tapskip = NULL;
        ab.rot = 0;
        aa.ldx = xs[1]; aa.k = cin_g; aa.ldy = hwo; aa.act = tile_act;
        for (int64_t grp = 0; grp < ngroups; ++grp) {
            /* items of bands [grp * bpg, (grp + 1) * bpg) (n == 1, G == 1 when grouped) */
            const int64_t it0 = grp * bpg * nog;
            const int64_t it1 = ngroups == 1 ? nitems : fc_min64(nitems, (grp + 1) * bpg * nog);
            if (ngroups > 1) {
                /* input rows this group reads that the previous groups did not */
                const int64_t r0 = grp ? FN(band_rows_end_)(d, grp * bpg, band, pbase, pextra,
                                                            ntiles)
                                       : 0;
                const int64_t r1 = grp + 1 == ngroups
                                       ? d->h_in
                                       : FN(band_rows_end_)(d, (grp + 1) * bpg, band, pbase,
                                                            pextra, ntiles);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
                for (int64_t r = r0; r < r1; ++r)
                    FN(copy_row_)(kt, d, mode, x, xs, xt + r * row_elems, r, pre);
            }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1) nowait
#endif
            for (int64_t u = it0 / per; u < it1 / per; ++u)   /* (per divides both) */
            for (int64_t it = u * per; it < (u + 1) * per; ++it) {
                if (failed) continue;
                if (priv && it == u * per)   /* image u into this thread's buffer */
                    for (int64_t h = 0; h < d->h_in; ++h)
                        FN(copy_row_)(kt, d, mode, x, xs, own_img + h * row_elems,
                                      u * d->h_in + h, pre);
                int64_t og, bnd, g, n;
                if (pack_in_item) {   /* runs of (image, band) for one (group, block group) */
                    const int64_t q = it % per, v = it / per;
                    og = v % nog; g = v / nog; bnd = q % nbands; n = q / nbands;
                } else {
                    int64_t r = it;
                    og = r % nog; r /= nog;
                    bnd = r % nbands; r /= nbands;
                    g = r % G;
                    n = r / G;
                }
                const int64_t t0 = bnd * band, t1 = fc_min64(ntiles, t0 + band);
                if (mode == MODE_A) {
                    T *yg = y + (n * d->c_out + g * cout_g) * hwo;
                    const int64_t b0 = og * ogs, b1 = fc_min64(pk->noa, b0 + ogs);
                    const T *xg = x + n * xs[0] + g * cin_g * xs[1];
                    for (int64_t b = b0; b < b1; ++b) {
                        aa.w = (const T *)pk->wa + (g * pk->noa + b) * cin_g * FC_TA_OC;
                        aa.bias = bpad + g * bstride + b * FC_TA_OC;
                        aa.noc = (int)fc_min64(FC_TA_OC, cout_g - b * FC_TA_OC);
                        const int64_t p0 = t0 * TAP;
                        aa.x = xg + p0;
                        aa.y = yg + b * FC_TA_OC * hwo + p0;
                        aa.npix = fc_min64(t1 * TAP, hwo) - p0;
                        CAT(kt->tileA_, SFX)(&aa);
                    }
                } else {
                    /* y at (n, channel g * cout_g, pixel 0) */
                    T *yg = y_nhwc ? y + n * hwo * d->c_out + g * cout_g
                                   : y + (n * d->c_out + g * cout_g) * hwo;
                    const int64_t b0 = og * ogs, b1 = fc_min64(pk->nob, b0 + ogs);
                    const T *base = (priv ? own_img : xsrc + n * gm.img) + g * gm.grp;
                    int item_skip = skip_dead, item_colskip = colskip;
                    /* the weights of blocks b0.. at wg, wbs apart */
                    const T *wg = (const T *)pk->wb + (g * pk->nob + b0) * ab.wbs;
                    if (pack_in_item) {
                        if (it == u * per && pk->src_ws[0] == 1) {   /* the run's first */
                            slot_fin = FN(pack_b_rows_)((const T *)pk->src, pk->src_ws, pk, g, 0,
                                                        ntaps * gm.kc, b0, b1, ab.wbs, slot);
                        } else if (it == u * per) {
                            slot_fin = 1;
                            for (int64_t b = b0; b < b1; ++b)
                                slot_fin &= FN(pack_block_)(kt, (const T *)pk->src, pk->src_ws,
                                                            pk, g * pk->nob + b,
                                                            slot + (b - b0) * ab.wbs);
                        }
                        item_skip = slot_fin;
                        item_colskip = slot_fin && colskip;
                        wg = slot;
                    }
                    for (int64_t t = t0; t < t1; ++t) {
                        const int64_t p0 = t * pbase + fc_min64(t, pextra);
                        const int np = (int)(pbase + (t < pextra));
                        /* a tile across a row end starts at the next row's first
                         * pixel, so both border pixels are at its ends */
                        const int64_t ow0 = p0 % d->w_out;
                        const int rot = item_colskip && ow0 && ow0 + np > d->w_out
                                                && np <= d->w_out
                                            ? (int)(d->w_out - ow0) : 0;
                        FN(ptr_table_)(&gm, base, zero, p0, np, rot, P, d->w_out, tab);
                        ab.npix = np;
                        ab.rot = rot;
                        int64_t tb = 0, te = ntaps;
                        if (item_skip) {   /* taps that read only padding, for every pixel */
                            while (tb < te && FN(tap_dead_)(tab + tb * P, P, zero)) ++tb;
                            while (te > tb && FN(tap_dead_)(tab + (te - 1) * P, P, zero)) --te;
                        }
                        ab.ntaps = te - tb;
                        ab.ptrs = (const void *const *)(tab + tb * P);
                        if (item_colskip) {   /* taps where an end pixel reads only padding */
                            int any = 0;
                            for (int64_t k = tb; k < te; ++k) {
                                const T *const *c = tab + k * P;
                                tapskip[k - tb] = (unsigned char)((c[0] == zero)
                                                                  | (c[np - 1] == zero) << 1);
                                any |= tapskip[k - tb];
                            }
                            ab.tapskip = any ? tapskip : NULL;
                        }
                        if (!y_nhwc) {
                            /* the next tile's output lines, for writing: a cold output
                             * (a batch's next image, a big image) otherwise stalls the
                             * tile's stores (+1.2-1.9 % on batch8 and VGG, NOTES.md) */
                            const int64_t pn = p0 + np;
                            const int64_t o1 = fc_min64(cout_g, b1 * OB);
                            if (pn < hwo)
                                for (int64_t o = b0 * OB; o < o1; ++o)
                                    FC_PREFETCH_W(yg + o * hwo + pn);
                        }
                        for (int64_t b = b0; b < b1; b += NBT) {
                            ab.nb = (int)fc_min64(NBT, b1 - b);
                            ab.w = wg + (b - b0) * ab.wbs + tb * gm.kc * OB;
                            ab.bias = bpad + g * bstride + b * OB;
                            ab.noc = (int)fc_min64((int64_t)ab.nb * OB, cout_g - b * OB);
                            ab.y = yg + b * OB * ab.ldy + p0 * ab.ldp;
                            CAT(kt->tileB_, SFX)(&ab);
                        }
                    }
                }
            }
        }   /* groups */
        if (late_act) {   /* y is dense: n * c_out * hwo values in either layout */
#ifdef _OPENMP
#pragma omp barrier
#endif
            FN(fc_activate_team_)(y, y, (size_t)(d->n * d->c_out * hwo), post);
        }
        free((void *)tab);
        fc_free64(own_img);
    }
    if (own_ws) fc_free64(xt);
    fc_free64(zero);
    fc_free64(bpad);
    return failed ? FC_ENOMEM : FC_OK;
}

int FN(fc_conv2d_packed_)(const fc_conv_desc *d, const T *x, const fc_packed *pk,
                          const T *bias, T *y, const fc_activation *post,
                          const fc_activation *pre, void *workspace)
{
    return FN(fc_conv2d_packed_ex_)(d, x, NULL, pk, bias, y, 0, post, pre, workspace);
}

/* ---- raw weights: packed for this call into a kept scratch ---------------- */

/* x: strides xs_in (NULL: dense NCHW); w: OIHW order, strides ws_in (NULL:
 * dense OIHW).  Only the layouts this call reads are packed, into s (grown
 * as needed, kept by the caller for its next call), and the workspace is
 * taken from s when the caller gave none.  Nothing outlives the call. */
static int FN(conv_raw_)(const fc_conv_desc *d, const T *x, const int64_t *xs_in, const T *w,
                         const int64_t *ws_in, const T *bias, T *y, int y_nhwc,
                         const fc_activation *post, const fc_activation *pre, void *workspace,
                         fc_scratch *s)
{
    fc_packed pk;
    FN(packed_geometry_)(d, &pk);
    const int64_t taps = d->kh * d->kw;
    const int64_t wd[4] = {pk.cin_g * taps, taps, d->kw, 1};
    const int64_t *ws = ws_in ? ws_in : wd;
    const int w_oihw = !memcmp(ws, wd, sizeof wd);
    int64_t xd[4], xs[4];
    FN(dense_strides_)(d, xd);
    memcpy(xs, xs_in ? xs_in : xd, sizeof xs);
    const FN(call_) call = {d, xs, !memcmp(xs, xd, sizeof xd), y_nhwc, pre, 1, 1};
    size_t wsb = 0;
    const int fam = FN(families_)[FN(plan_)(&call, &wsb)].family;
    const size_t raw_bytes = (size_t)(d->c_out * pk.cin_g * taps) * sizeof(T);
    if (fam == FAM_DEPTHWISE_NHWC)   /* it reads w through its strides */
        return FN(fc_conv2d_depthwise_nhwc_)(d, x, xs, w, ws, bias, y, post, pre);
    if (fam == FAM_DEPTHWISE || fam == FAM_SMALL) {   /* they read dense OIHW */
        const T *wo = w;
        if (!w_oihw) {
            T *raw = (T *)fc_scratch_get(s, raw_bytes);
            if (!raw) return FC_ENOMEM;
            FN(fc_weight_to_oihw_)(d, w, ws, raw);
            wo = raw;
        }
        if (fam == FAM_DEPTHWISE) return FN(fc_conv2d_depthwise_)(d, x, wo, bias, y, post);
        return CAT(fc_conv_small_avx2_, SFX)(d, x, wo, bias, y, post);
    }
    if (fam == FAM_SMALL_NHWC) {   /* the small kernel through an NCHW buffer, kept in s */
        void *buf = fc_scratch_get(s, wsb);
        if (!buf) return FC_ENOMEM;
        pk.src = w;
        memcpy(pk.src_ws, ws, sizeof pk.src_ws);
        return FN(small_to_nhwc_)(d, x, xs, &pk, bias, y, post, pre, buf);
    }
    size_t off_a, off_ws, total;
    /* layout A only where the driver's MODE_A will read it, layout B otherwise
     * and for the first-layer and strided-1x1 kernels */
    fc_packed fake = pk;
    fake.wa = pk.noa ? (void *)&fake : NULL;
    const int first = fam == FAM_FIRST, s1x1 = fam == FAM_S1X1;
    const int want_a = pk.noa && FN(pick_mode_)(d, pre, &fake, xs, y_nhwc) == MODE_A;
    const int want_b = !want_a || first || s1x1;
    if (workspace) wsb = 0;   /* the caller's (the plan's bytes) */
    off_a = (want_b ? fc_round64(FN(wb_elems_)(&pk) * sizeof(T)) : 0);
    off_ws = off_a + (want_a ? fc_round64(FN(wa_elems_)(&pk) * sizeof(T)) : 0);
    total = off_ws + wsb;
    char *base = (char *)fc_scratch_get(s, total ? total : 64);
    if (!base) return FC_ENOMEM;
    if (want_b) {
        pk.wb = base;
        if (first || s1x1 || want_a) {   /* their kernels read a packed B */
            pk.finite = FN(pack_b_)(w, ws, &pk, (T *)pk.wb);
        } else {                          /* the driver packs it (fc_packed.src) */
            pk.src = w;
            memcpy(pk.src_ws, ws, sizeof pk.src_ws);
        }
    }
    if (want_a) {
        pk.wa = base + off_a;
        FN(pack_a_)(w, ws, &pk, (const T *)pk.wb, (T *)pk.wa);
    }
    if (!workspace && wsb) workspace = base + off_ws;
    /* pk.raw stays NULL: the kernels that read OIHW were tried above */
    return FN(fc_conv2d_packed_ex_)(d, x, xs, &pk, bias, y, y_nhwc, post, pre, workspace);
}

int FN(fc_conv2d_raw_)(const fc_conv_desc *d, const T *x, const int64_t *xs, const T *w,
                       const int64_t *ws, const T *bias, T *y, int y_nhwc,
                       const fc_activation *post, const fc_activation *pre, fc_scratch *s)
{
    return FN(conv_raw_)(d, x, xs, w, ws, bias, y, y_nhwc, post, pre, NULL, s);
}

int FN(fc_conv2d_direct_)(const fc_conv_desc *d, const T *x, const T *w, const T *bias,
                          T *y, const fc_activation *post, const fc_activation *pre,
                          void *workspace)
{
    fc_scratch s = {NULL, 0};
    const int rc = FN(conv_raw_)(d, x, NULL, w, NULL, bias, y, 0, post, pre, workspace, &s);
    fc_scratch_release(&s);
    return rc;
}

/* The same with x and w of any strides (OIHW order for w) and y NCHW or NHWC. */
int FN(fc_conv2d_direct_ex_)(const fc_conv_desc *d, const T *x, const int64_t *xs,
                             const T *w, const int64_t *wstr, const T *bias, T *y,
                             int y_nhwc, const fc_activation *post,
                             const fc_activation *pre, void *workspace)
{
    fc_scratch s = {NULL, 0};
    const int rc = FN(conv_raw_)(d, x, xs, w, wstr, bias, y, y_nhwc, post, pre, workspace, &s);
    fc_scratch_release(&s);
    return rc;
}

#undef TAP
#undef OB
#undef FN
#undef CAT
#undef CAT_
#undef FC_RUN_ARGS
