/* Which calls the first-layer kernel takes (baseline code).  See conv_first.h. */
#include "conv/first/conv_first.h"

int fc_first_wanted(const fc_conv_desc *d, const fc_activation *pre, size_t elem)
{
    const int64_t vl = (int64_t)(32 / elem);
    if (pre && pre->kind != FC_ACT_IDENTITY) return 0;
    if (d->groups != 1 || d->c_in >= 8) return 0;
    if (d->c_out < 16) return 0;                 /* the small kernel's ground */
    if (d->w_out < 2 * vl) return 0;             /* lanes wasted: the B tiles do better */
    if (d->stride_w > 8 || d->kw > 32) return 0;
    if (d->kh * d->kw * d->c_in > 4096) return 0;
    if (d->kh * d->kw == 1) return 0;            /* 1x1: the GEMM paths */
    return 1;
}
