/* The portable depthwise driver and row kernel, both float types
 * (included by conv_depthwise.c with T and SFX defined). */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

#define DW_CHUNK 256

static int FN(dw_portable_)(const fc_conv_desc *d, const T *x, const T *w, const T *bias,
                            T *y, const fc_activation *post)
{
#ifdef _OPENMP
    const int nthreads = omp_get_max_threads();
#else
    const int nthreads = 1;
#endif
    const fc_dw_geom g = fc_dw_plan(d, nthreads);
    const int64_t s = d->stride_w, L = g.L, sL = s * L, KW = d->kw, KH = d->kh;
    const int64_t items = d->n * d->c_in * g.nblk;
    /* rows of padding are not in buf: their taps are skipped, which is exact
     * unless a weight is inf or NaN (then they add w * 0 = NaN, as zero padding does) */
    const int finite = fc_rows_padded(d) ? FN(fc_all_finite_)(w, d->c_out * KH * KW) : 1;
    const size_t buf_bytes = (size_t)(g.buf_rows * sL) * sizeof(T);
    const double work = 2.0 * (double)(d->n * d->c_out * d->h_out * d->w_out) * (double)(KH * KW);
    int err = 0;
    (void)work;
#ifdef _OPENMP
#pragma omp parallel if (work > 2.0e5 && items > 1)
#endif
    {
        T *buf = (T *)malloc(buf_bytes);
        T acc[DW_CHUNK];
        if (!buf) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            err = 1;
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
            if (ih_lo < ih_hi)
                FN(dw_fill_)(d, &g, x + (n * d->c_in + ic) * d->h_in * d->w_in, ih_lo, ih_hi, buf);
            for (int64_t m = 0; m < g.mult; ++m) {
                const int64_t oc = ic * g.mult + m;
                const T *wo = w + oc * KH * KW;
                const T b = bias ? bias[oc] : (T)0;
                for (int64_t oh = oh0; oh < oh1; ++oh) {
                    T *yr = y + ((n * d->c_out + oc) * d->h_out + oh) * d->w_out;
                    for (int64_t ow0 = 0; ow0 < d->w_out; ow0 += DW_CHUNK) {
                        const int64_t cw = fc_min64(DW_CHUNK, d->w_out - ow0);
                        for (int64_t i = 0; i < cw; ++i) acc[i] = b;
                        for (int64_t kh = 0; kh < KH; ++kh) {
                            const int64_t ih = oh * d->stride_h - d->pad_top + kh * d->dil_h;
                            if (ih < ih_lo || ih >= ih_hi) {
                                for (int64_t j = 0; j < KW && !finite; ++j) {
                                    const T pw = wo[kh * KW + j] * (T)0;
                                    for (int64_t i = 0; i < cw; ++i) acc[i] += pw;
                                }
                                continue;
                            }
                            const T *r = buf + (ih - ih_lo) * sL + ow0;
                            for (int64_t j = 0; j < KW; ++j) {
                                const T wv = wo[kh * KW + j];
                                const T *q = r + ((j * d->dil_w) % s) * L + (j * d->dil_w) / s;
                                for (int64_t i = 0; i < cw; ++i) acc[i] += wv * q[i];
                            }
                        }
                        FN(fc_activate_serial_)(acc, yr + ow0, (size_t)cw, post);
                    }
                }
            }
        }
        free(buf);
    }
    return err ? FC_ENOMEM : FC_OK;
}

#undef DW_CHUNK
#undef FN
#undef CAT
#undef CAT_
