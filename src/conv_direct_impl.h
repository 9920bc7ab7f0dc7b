/*
 * The portable direct convolution, written once for both float types
 * (included by conv_direct.c with T and SFX defined).
 *
 * Work unit: one output row (n, oc, oh), split into chunks of ROW_CHUNK
 * columns accumulated in a local buffer that stays in L1.  Bias starts the
 * sum, every tap adds a contiguous (stride 1) run, and the activation is
 * applied on the way from the buffer to the output: the output is written
 * exactly once.  Taps that hit padding are excluded by loop bounds, never by
 * tests in the inner loop, and no padded copy of the input is made.
 */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

#ifndef ROW_CHUNK
#define ROW_CHUNK 256
#endif

static void FN(conv_row_)(const fc_conv_desc *d, const T *x, const T *w, const T *bias,
                          T *y, const fc_activation *post, int64_t row)
{
    const int64_t cin_g = d->c_in / d->groups, cout_g = d->c_out / d->groups;
    const int64_t hw_in = d->h_in * d->w_in, ksz = d->kh * d->kw;
    const int64_t oh = row % d->h_out, t = row / d->h_out;
    const int64_t oc = t % d->c_out, n = t / d->c_out;
    const T *xg = x + (n * d->c_in + (oc / cout_g) * cin_g) * hw_in;
    const T *wo = w + oc * cin_g * ksz;
    T *yrow = y + row * d->w_out;
    T acc[ROW_CHUNK];

    for (int64_t ow0 = 0; ow0 < d->w_out; ow0 += ROW_CHUNK) {
        const int64_t cw = fc_min64(ROW_CHUNK, d->w_out - ow0);
        const T b = bias ? bias[oc] : (T)0;
        for (int64_t i = 0; i < cw; ++i) acc[i] = b;
        for (int64_t kh = 0; kh < d->kh; ++kh) {
            const int64_t ih = oh * d->stride_h - d->pad_top + kh * d->dil_h;
            if (ih < 0 || ih >= d->h_in) continue;
            for (int64_t kw = 0; kw < d->kw; ++kw) {
                const int64_t off = kw * d->dil_w - d->pad_left;
                int64_t lo, hi;
                fc_valid_cols(off, d->stride_w, d->w_in, d->w_out, &lo, &hi);
                lo = fc_max64(lo, ow0);
                hi = fc_min64(hi, ow0 + cw);
                if (lo >= hi) continue;
                for (int64_t ic = 0; ic < cin_g; ++ic) {
                    const T wv = wo[ic * ksz + kh * d->kw + kw];
                    const T *xr = xg + ic * hw_in + ih * d->w_in + off;
                    T *a = acc - ow0;
                    if (d->stride_w == 1)
                        for (int64_t ow = lo; ow < hi; ++ow) a[ow] += wv * xr[ow];
                    else
                        for (int64_t ow = lo; ow < hi; ++ow) a[ow] += wv * xr[ow * d->stride_w];
                }
            }
        }
        FN(fc_activate_serial_)(acc, yrow + ow0, (size_t)cw, post);
    }
}

size_t FN(conv_workspace_)(const fc_conv_desc *d, const fc_activation *pre)
{
    if (!pre || pre->kind == FC_ACT_IDENTITY) return 0;
    return (size_t)(d->n * d->c_in * d->h_in * d->w_in) * sizeof(T);
}

int FN(fc_conv2d_direct_)(const fc_conv_desc *d, const T *x, const T *w, const T *bias,
                          T *y, const fc_activation *post, const fc_activation *pre,
                          void *workspace)
{
    if (FN(conv_workspace_)(d, pre)) {
        if (!workspace) return FC_EINVAL;
        /* ResNet v2 order: f is applied once per input value, and the
         * padding zeros, never materialised, are never passed through f. */
        T *xa = (T *)workspace;
        FN(fc_activate_)(x, xa, (size_t)(d->n * d->c_in * d->h_in * d->w_in), pre);
        x = xa;
    }
    const int64_t rows = d->n * d->c_out * d->h_out;
    const double flops = 2.0 * (double)rows * (double)d->w_out * (double)(d->c_in / d->groups)
                         * (double)(d->kh * d->kw);
    (void)flops;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (flops > FC_PARALLEL_MIN_FLOPS)
#endif
    for (int64_t row = 0; row < rows; ++row)
        FN(conv_row_)(d, x, w, bias, y, post, row);
    return FC_OK;
}

#undef FN
#undef CAT
#undef CAT_
