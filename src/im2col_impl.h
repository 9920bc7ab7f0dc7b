/* im2col for one image, both float types (included by im2col.c). */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

void FN(fc_im2col_)(const fc_conv_desc *d, const T *x, int64_t c0, int64_t nc, T *col)
{
    const int64_t hw_out = d->h_out * d->w_out, hw_in = d->h_in * d->w_in;
    const int64_t taps = nc * d->kh * d->kw;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (taps * hw_out > (1 << 16))
#endif
    for (int64_t r = 0; r < taps; ++r) {
        const int64_t kw = r % d->kw, kh = (r / d->kw) % d->kh, c = r / (d->kw * d->kh);
        const int64_t off = kw * d->dil_w - d->pad_left;
        int64_t lo, hi;
        fc_valid_cols(off, d->stride_w, d->w_in, d->w_out, &lo, &hi);
        T *dst = col + r * hw_out;
        const T *xc = x + (c0 + c) * hw_in;
        for (int64_t oh = 0; oh < d->h_out; ++oh, dst += d->w_out) {
            const int64_t ih = oh * d->stride_h - d->pad_top + kh * d->dil_h;
            if (ih < 0 || ih >= d->h_in) {
                memset(dst, 0, (size_t)d->w_out * sizeof(T));
                continue;
            }
            const T *xr = xc + ih * d->w_in + off;
            for (int64_t ow = 0; ow < lo; ++ow) dst[ow] = 0;
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = xr[ow * d->stride_w];
            for (int64_t ow = hi; ow < d->w_out; ++ow) dst[ow] = 0;
        }
    }
}

#undef FN
#undef CAT
#undef CAT_
