/*
 * Channels-last (NHWC) depthwise convolution: groups == c_in == c_out (channel
 * multiplier 1), any kernel size, stride, dilation and padding, activation
 * fused, x read in place through its strides, y written dense NHWC.
 *
 * Channels are contiguous in NHWC, so they are the vector lanes: a register
 * tile is P consecutive output pixels of one row x NV vectors of channels,
 * every kh x kw tap accumulated in registers, then bias + activation and one
 * store (conv_depthwise_nhwc_impl.h).  The kernel sets follow the direct
 * driver's choice (dispatch.c): conv_depthwise_nhwc_avx512.c,
 * conv_depthwise_nhwc_avx2.c, and the portable one in conv_depthwise_nhwc.c,
 * all from the one template.
 *
 * Callers: the direct driver (conv_direct_impl.h: conv_raw_ for raw weights,
 * fc_conv2d_packed_ex_ with the pack's OIHW copy) when y is NHWC and
 * fc_dw_nhwc_wanted() says so.
 */
#ifndef FASTCONV_CONV_DEPTHWISE_NHWC_H
#define FASTCONV_CONV_DEPTHWISE_NHWC_H

#include <stddef.h>
#include <stdint.h>

#include "fastconv.h"

/* Whether the kernel takes the call: groups == c_in == c_out >= 2, at least
 * 16 bytes of channels (c_in * elem >= 16: float32 from 4 channels, float64
 * from 2), x's channels contiguous (xs: x's element strides in (n, c, h, w)
 * order, xs[1] == 1), and pre NULL, identity or relu (applied to the loaded
 * inputs; the padding stays zero).  The caller checks that y is dense NHWC. */
int fc_dw_nhwc_wanted(const fc_conv_desc *d, const int64_t *xs, const fc_activation *pre,
                      size_t elem);

/* y (dense NHWC) = post(conv(pad(pre(x)), w) + bias); bias may be NULL, post
 * and pre NULL for identity.  w[c][0][kh][kw] at w + c*ws[0] + kh*ws[2] +
 * kw*ws[3] (OIHW order, any strides: dense OIHW, or a view of HWIO weights).
 * Allocates only a repacked copy of the weights and bias ((kh*kw + 1) * c_in
 * values).  FC_EINVAL when not wanted (nothing written), FC_ENOMEM. */
int fc_conv2d_depthwise_nhwc_f32(const fc_conv_desc *d, const float *x, const int64_t *xs,
                                 const float *w, const int64_t *ws, const float *bias,
                                 float *y, const fc_activation *post,
                                 const fc_activation *pre);
int fc_conv2d_depthwise_nhwc_f64(const fc_conv_desc *d, const double *x, const int64_t *xs,
                                 const double *w, const int64_t *ws, const double *bias,
                                 double *y, const fc_activation *post,
                                 const fc_activation *pre);

/* One call as the kernel sets see it. */
typedef struct {
    const fc_conv_desc *d;
    const void *x;                 /* x[n][c][h][w] at x + n*xsn + c + h*xsh + w*xsw */
    int64_t xsn, xsh, xsw;
    const void *w;                 /* [kh * kw][c_in] weights, then c_in biases (0 without) */
    void *y;                       /* dense (n, h_out, w_out, c_in) */
    const fc_activation *post;     /* not NULL */
    int pre_relu;                  /* relu on every loaded input value */
    int finite;                    /* no inf or NaN weight: taps in the padding may be skipped */
} fc_dwn_args;

int fc_dwn_portable_f32(const fc_dwn_args *a);
int fc_dwn_portable_f64(const fc_dwn_args *a);
int fc_dwn_avx2_f32(const fc_dwn_args *a);
int fc_dwn_avx2_f64(const fc_dwn_args *a);
int fc_dwn_avx512_f32(const fc_dwn_args *a);
int fc_dwn_avx512_f64(const fc_dwn_args *a);

#endif
