/* Which calls the strided-1x1 kernel takes (baseline code).  See conv_1x1.h. */
#include "conv/pointwise/conv_1x1.h"

#ifndef FC_1X1S_MAX_DENSE_PIXELS
#define FC_1X1S_MAX_DENSE_PIXELS 196
#endif

int fc_1x1s_wanted(const fc_conv_desc *d, const fc_activation *pre, size_t elem)
{
    (void)elem;
    if (pre && pre->kind != FC_ACT_IDENTITY) return 0;
    if (d->kh != 1 || d->kw != 1 || d->groups != 1) return 0;
    if (d->c_out < 16) return 0;   /* the small kernel's ground */
    const int strided = d->stride_h != 1 || d->stride_w != 1;
    const int padded = d->pad_top != 0 || d->pad_left != 0 || d->h_out != d->h_in
                       || d->w_out != d->w_in;
    /* stride 1 without padding: the GEMM tile (16-pixel vectors) reads NCHW in
     * place, but small images waste its lanes (7x7: 49 pixels in 64 lanes) */
    if (!strided && !padded && d->h_out * d->w_out > FC_1X1S_MAX_DENSE_PIXELS) return 0;
    /* the gathered block stays small (L2) */
    if (d->h_out * d->w_out * d->c_in * (int64_t)elem > (4 << 20)) return 0;
    return 1;
}

size_t fc_1x1s_workspace(const fc_conv_desc *d, size_t elem)
{
    return (size_t)(d->h_out * d->w_out * d->c_in) * elem + 64;
}
