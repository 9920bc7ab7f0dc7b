/*
 * First-layer direct convolution (conv_first_avx2.c): few input channels
 * (RGB images), any kernel size, stride, dilation and padding, groups 1.
 *
 * The general driver folds such layers along kw into a channels-last copy and
 * runs the 16-channel x 6-pixel B tile on it, whose transposed store, pointer
 * tables and the copy itself cost ~20% on ResNet's 7x7/2 conv1.  Here instead:
 *
 *  - x is copied, one band of output rows at a time (each thread its own, no
 *    barrier), into a zero-padded, phase-split buffer:
 *    xp[c][padded row][phase f][j] = xpad[c][row][s * j + f] (s = stride_w),
 *    so that for every tap (c, kh, kw) the inputs of VL consecutive output
 *    columns are VL consecutive floats (phase (kw * dw) % s, offset
 *    (kw * dw) / s): one unaligned load, whatever the stride.
 *  - the register tile is 4 output channels (weights broadcast, read straight
 *    from the packed B layout) x up to 3 vectors of output columns:
 *    12 accumulators; per tap 1 offset + 3 x loads + 4 broadcasts for 12 FMAs,
 *    no branch, every tap of the (c, kh, kw) window in one flat loop.
 *  - outputs are stored straight into the NCHW rows (no transpose), bias and
 *    activation applied in registers.
 */
#ifndef FASTCONV_CONV_FIRST_H
#define FASTCONV_CONV_FIRST_H

#include <stddef.h>

#include "fastconv.h"

struct fc_packed;

/* Whether the first-layer kernel takes this call (dense NCHW in and out, SIMD
 * kernels in use is checked by the caller). */
int fc_first_wanted(const fc_conv_desc *d, const fc_activation *pre, size_t elem);

/* It uses no caller workspace: it allocates a band of phase rows per thread
 * itself, C x ((16 - 1) * stride_h + (kh - 1) * dil_h + 1) rows (the
 * workspace queries count 0 bytes for it, conv_direct_impl.h). */

/* y = post(conv(pad(x), w) + bias) with the packed weights' B layout; bias may
 * be NULL.  FC_EINVAL: declined (the caller takes its general path). */
int fc_conv_first_avx2_f32(const fc_conv_desc *d, const float *x, const struct fc_packed *pk,
                           const float *bias, float *y, const fc_activation *post, void *ws);
int fc_conv_first_avx2_f64(const fc_conv_desc *d, const double *x, const struct fc_packed *pk,
                           const double *bias, double *y, const fc_activation *post, void *ws);
/* The same on AVX-512 (conv_first_avx512.c), when that kernel set is in use. */
int fc_conv_first_avx512_f32(const fc_conv_desc *d, const float *x, const struct fc_packed *pk,
                             const float *bias, float *y, const fc_activation *post, void *ws);
int fc_conv_first_avx512_f64(const fc_conv_desc *d, const double *x, const struct fc_packed *pk,
                             const double *bias, double *y, const fc_activation *post,
                             void *ws);

#endif
