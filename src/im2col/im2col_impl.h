/* im2col for one image, both float types (included by im2col.c). */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

/* Output rows [oh0, oh1) of channels [c0, c0 + nc): col is
 * (nc * kh * kw, (oh1 - oh0) * w_out), zeros where a tap hits padding.
 * Row indices are computed in a form that cannot overflow int64 for any
 * description that passed the Python checks (huge strides and paddings).
 * The blocks stay on the calling thread: they are small, memory-bound, and
 * interleaved with the (multithreaded) BLAS GEMM, whose threads would fight
 * an OpenMP team still spinning after its region. */
void FN(fc_im2col_rows_)(const fc_conv_desc *d, const T *x, int64_t c0, int64_t nc,
                         int64_t oh0, int64_t oh1, T *col)
{
    const int64_t nrows = oh1 - oh0, len = nrows * d->w_out, hw_in = d->h_in * d->w_in;
    const int64_t taps = nc * d->kh * d->kw;
    for (int64_t r = 0; r < taps; ++r) {
        const int64_t kw = r % d->kw, kh = (r / d->kw) % d->kh, c = r / (d->kw * d->kh);
        const int64_t off = kw * d->dil_w - d->pad_left;
        int64_t lo, hi;
        fc_im2col_valid_cols(kw * d->dil_w, d->pad_left, d->stride_w, d->w_in, d->w_out, &lo, &hi);
        T *dst = col + r * len;
        const T *xc = x + (c0 + c) * hw_in;
        const int64_t base = kh * d->dil_h - d->pad_top;
        for (int64_t oh = oh0; oh < oh1; ++oh, dst += d->w_out) {
            /* ih = oh * stride_h + base, in a type wide enough for huge strides */
            const fc_wide ihw = (fc_wide)oh * (fc_wide)d->stride_h + (fc_wide)base;
            const int valid = ihw >= 0 && ihw < (fc_wide)d->h_in;
            const int64_t ih = valid ? (int64_t)ihw : 0;
            if (!valid) {
                memset(dst, 0, (size_t)d->w_out * sizeof(T));
                continue;
            }
            const T *xr = xc + ih * d->w_in;
            for (int64_t ow = 0; ow < lo; ++ow) dst[ow] = 0;
            if (d->stride_w == 1)
                memcpy(dst + lo, xr + (lo + off), (size_t)(hi - lo) * sizeof(T));
            else
                for (int64_t ow = lo, iw = lo < hi ? (int64_t)((fc_wide)lo * d->stride_w + off) : 0;
                     ow < hi; ++ow, iw += (ow < hi ? d->stride_w : 0))
                    dst[ow] = xr[iw];
            for (int64_t ow = hi; ow < d->w_out; ++ow) dst[ow] = 0;
        }
    }
}

#undef FN
#undef CAT
#undef CAT_
