/* Which calls the first-layer kernel takes (baseline code).  See conv_first.h. */
#include "conv_first.h"

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

/* Must match the layout in conv_first_impl.h. */
size_t fc_first_workspace(const fc_conv_desc *d, size_t elem)
{
    const int64_t vl = (int64_t)(32 / elem), s = d->stride_w;
    const int64_t nvec = (d->w_out + vl - 1) / vl;
    const int64_t J = nvec * vl + ((d->kw - 1) * d->dil_w) / s;
    const int64_t Hp = (d->h_out - 1) * d->stride_h + (d->kh - 1) * d->dil_h + 1;
    const size_t xp = (size_t)(d->c_in * Hp * s * J + vl) * elem;
    const size_t off = (size_t)(d->kh * d->kw * d->c_in) * sizeof(int64_t);
    return xp + off + 128;   /* room to align both parts to 64 bytes */
}
