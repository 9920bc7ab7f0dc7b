/* Which calls the small-problem kernel takes (baseline code: called before
 * the AVX2 kernel itself is known to be usable).  See conv_small.h. */
#include "conv/small/conv_small.h"

int fc_small_wanted(const fc_conv_desc *d, const fc_activation *pre, size_t elem)
{
    (void)elem;
    if (pre && pre->kind != FC_ACT_IDENTITY) return 0;
    if (d->stride_w != 1 || d->kw > FC_SMALL_MAX_KW) return 0;
    const int64_t cout_g = d->c_out / d->groups;
    const double flops = 2.0 * (double)d->n * (double)d->c_out * (double)(d->h_out * d->w_out)
                         * (double)(d->c_in / d->groups) * (double)(d->kh * d->kw);
    /* The general B tile computes 16 (f32) channels: at 8 or fewer most lanes
     * are wasted.  Tiny problems: the general driver's set-up (bias copy,
     * pointer tables, parallel region) costs more than the FMAs. */
    if (cout_g <= 8) return 1;
    if (cout_g < 16 && flops < 1.0e6) return 1;
    return 0;
}
