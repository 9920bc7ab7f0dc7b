/* col2im (fastconv_grad.h): the adjoint of im2col.c's unfold, for the GEMM
 * path of the input gradient and of conv_transpose2d. */
#include <string.h>

#include "fastconv_grad.h"

/* Rows of an image column-matrix per thread work item: below this much work
 * one thread does it all. */
#define FC_COL2IM_PAR_MIN ((int64_t)1 << 16)

/* The output columns [lo, hi) whose tap lands inside the row: 0 <= o * stride
 * + off < w_in (the validated sizes keep this in int64: see im2col.c). */
static inline void col2im_valid(int64_t off, int64_t stride, int64_t w_in, int64_t w_out,
                                int64_t *lo, int64_t *hi)
{
    int64_t l = off < 0 ? (-off + stride - 1) / stride : 0;
    const int64_t top = w_in - 1 - off;
    int64_t h = top < 0 ? 0 : top / stride + 1;
    if (h > w_out) h = w_out;
    if (l > w_out) l = w_out;
    *lo = l;
    *hi = h > l ? h : l;
}

/* Adds the columns of output rows [oh0, oh1) of one channel (col: its kh * kw
 * rows, tap t's at col + t * step) into xc (h_in, w_in). */
#define DEF_COL2IM(T, SFX)                                                                \
static void col2im_channel_##SFX(const fc_conv_desc *d, const T *col, int64_t step,      \
                                 int64_t oh0, int64_t oh1, T *xc)                         \
{                                                                                         \
    for (int64_t kh = 0; kh < d->kh; ++kh)                                                \
        for (int64_t kw = 0; kw < d->kw; ++kw) {                                          \
            const T *src = col + (kh * d->kw + kw) * step;                                \
            const int64_t off = kw * d->dil_w - d->pad_left;                              \
            int64_t lo, hi;                                                               \
            col2im_valid(off, d->stride_w, d->w_in, d->w_out, &lo, &hi);                  \
            for (int64_t oh = oh0; oh < oh1; ++oh, src += d->w_out) {                     \
                const int64_t ih = oh * d->stride_h + kh * d->dil_h - d->pad_top;         \
                if (ih < 0 || ih >= d->h_in) continue;                                    \
                T *xr = xc + ih * d->w_in + off;                                          \
                if (d->stride_w == 1)                                                     \
                    for (int64_t ow = lo; ow < hi; ++ow) xr[ow] += src[ow];               \
                else                                                                      \
                    for (int64_t ow = lo; ow < hi; ++ow) xr[ow * d->stride_w] += src[ow]; \
            }                                                                             \
        }                                                                                 \
}                                                                                         \
                                                                                          \
void fc_col2im_rows_##SFX(const fc_conv_desc *d, const T *col, int64_t c0, int64_t nc,          \
                          int64_t oh0, int64_t oh1, T *x)                                 \
{                                                                                         \
    const int64_t len = (oh1 - oh0) * d->w_out, hw_in = d->h_in * d->w_in;                \
    const int64_t taps = d->kh * d->kw;                                                   \
    const int par = nc > 1 && nc * taps * len > FC_COL2IM_PAR_MIN;                        \
    (void)par;                                                                            \
    _Pragma("omp parallel for schedule(static) if (par)")                                 \
    for (int64_t c = 0; c < nc; ++c)                                                      \
        col2im_channel_##SFX(d, col + c * taps * len, len, oh0, oh1, x + (c0 + c) * hw_in); \
}                                                                                         \
                                                                                          \
void fc_col2im_images_##SFX(const fc_conv_desc *d, const T *col, int64_t n_img, int64_t c0, \
                            int64_t nc, int tap_major, T *x)                              \
{                                                                                         \
    const int64_t len = d->h_out * d->w_out, hw_in = d->h_in * d->w_in;                   \
    const int64_t taps = d->kh * d->kw, ld = n_img * len;                                 \
    const int64_t cstep = tap_major ? ld : taps * ld, tstep = tap_major ? nc * ld : ld;   \
    const int64_t items = n_img * nc;                                                     \
    const int par = items > 1 && items * taps * len > FC_COL2IM_PAR_MIN;                  \
    (void)par;                                                                            \
    _Pragma("omp parallel for schedule(static) if (par)")                                 \
    for (int64_t it = 0; it < items; ++it) {                                              \
        const int64_t i = it / nc, c = it % nc;                                           \
        col2im_channel_##SFX(d, col + c * cstep + i * len, tstep, 0, d->h_out,            \
                             x + (i * d->c_in + c0 + c) * hw_in);                         \
    }                                                                                     \
}

DEF_COL2IM(float, f32)
DEF_COL2IM(double, f64)
