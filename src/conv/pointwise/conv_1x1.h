/*
 * 1x1 convolutions, groups 1, that the GEMM tile (A, conv_kern.h) does not
 * take or takes badly (conv_1x1_avx2.c): stride > 1 or padding (ResNet's
 * downsampling shortcuts), and stride 1 on small images (<= 196 output
 * pixels: A's 16-pixel vectors waste 15/64 lanes at 7x7; measured 71 -> 103
 * GFLOP/s for 512->2048 at 7x7, 100 -> 108 for 256->1024 at 14x14, while at
 * 28x28 A stays better, 109 vs 103).
 *
 * The pixels the convolution reads are gathered once into a dense
 * channels-last block xd[pixel][c_in] (zero rows for padded pixels; 49 x 256
 * floats = 50 KB for ResNet's 256->512 /2 at 14x14), then the 16-channel x
 * 6-pixel register tile (weights from the packed B layout, [oc/16][c_in][16];
 * pixels broadcast from xd rows, no pointer tables) runs with the output
 * channel block outermost: the block's weights (c_in x 64 bytes) stay in L1
 * across all its pixel tiles while xd streams from L2.  Pixel tiles of 6 and 5
 * (no pixel computed twice); the tile is transposed in registers into the
 * NCHW output, bias and activation applied on the accumulators.
 */
#ifndef FASTCONV_CONV_1X1_H
#define FASTCONV_CONV_1X1_H

#include <stddef.h>

#include "fastconv.h"

struct fc_packed;

/* Whether the strided-1x1 kernel takes this call (dense NCHW in and out;
 * that SIMD kernels are in use is checked by the caller). */
int fc_1x1s_wanted(const fc_conv_desc *d, const fc_activation *pre, size_t elem);

/* Bytes of workspace it uses (the gathered block); allocated inside if none. */
size_t fc_1x1s_workspace(const fc_conv_desc *d, size_t elem);

/* y = post(conv(x, w) + bias) with the packed weights' B layout; bias may be
 * NULL.  FC_EINVAL: declined (the caller takes its general path). */
int fc_conv_1x1s_avx2_f32(const fc_conv_desc *d, const float *x, const struct fc_packed *pk,
                          const float *bias, float *y, const fc_activation *post, void *ws);
int fc_conv_1x1s_avx2_f64(const fc_conv_desc *d, const double *x, const struct fc_packed *pk,
                          const double *bias, double *y, const fc_activation *post, void *ws);

#endif
