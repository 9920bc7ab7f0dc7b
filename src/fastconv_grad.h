/*
 * fastconv: the C interface of the backward-pass helpers (gradients).
 *
 * Plain C over raw buffers, like fastconv.h: the Python layer (grad.py)
 * validates every argument.  The input gradient runs on the forward kernels
 * (fastconv.h); the weight gradient has its own (grad_weight.c).
 */
#ifndef FASTCONV_GRAD_H
#define FASTCONV_GRAD_H

#include <stddef.h>
#include <stdint.h>

#include "fastconv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The activation's derivative applied to an incoming gradient, torch's
 * conventions at every kink and for NaN/inf (relu'(0) = 0, relu6 and
 * hardsigmoid 0 at their break points, hardswish'(-3) = 0, hardswish'(3) = 1,
 * leaky_relu'(0) = slope, elu'(0) = alpha):
 *
 *   gz[i] = g[i] * f'(z[i])
 *
 * where v holds z (from_output = 0) or y = f(z) (from_output = 1, only for the
 * kinds fc_act_grad_has_output_form accepts).  The arrays are (outer,
 * channels, inner) = (N, C, H*W); gz may be g (in place) and may be NULL when
 * the kind is identity (then nothing is written and v is not read).  When
 * gbias is not NULL, gbias[c] = sum of gz over channel c, summed in double in
 * one order for any thread count (the same pass: the bias gradient).  Threads
 * split the channels. */
void fc_act_grad_f32(const float *g, const float *v, float *gz, int64_t outer, int64_t channels,
                     int64_t inner, const fc_activation *act, int from_output, float *gbias);
void fc_act_grad_f64(const double *g, const double *v, double *gz, int64_t outer,
                     int64_t channels, int64_t inner, const fc_activation *act, int from_output,
                     double *gbias);

/* Whether f' can be had from f's output y for this activation and its
 * parameters (identity, relu, relu6, leaky_relu with slope >= 0, elu with
 * alpha > 0, selu, sigmoid, tanh): y determines z's branch there. */
int fc_act_grad_has_output_form(const fc_activation *act);

/* col2im, the adjoint of fc_im2col_rows: for one image, adds col (nc * kh *
 * kw, (oh1 - oh0) * w_out), the columns of output rows [oh0, oh1), into
 * channels [c0, c0 + nc) of x (c_in, h_in, w_in), the entries whose tap hits
 * padding dropped.  x is accumulated into, not cleared.  Threads split the
 * channels (no two write the same element). */
void fc_col2im_rows_f32(const fc_conv_desc *d, const float *col, int64_t c0, int64_t nc,
                        int64_t oh0, int64_t oh1, float *x);
void fc_col2im_rows_f64(const fc_conv_desc *d, const double *col, int64_t c0, int64_t nc,
                        int64_t oh0, int64_t oh1, double *x);
/* col2im of whole images at once: col (nc * kh * kw, n_img * h_out * w_out),
 * image i's columns at i * h_out * w_out within each row (one GEMM's result
 * for a batch of images), added into channels [c0, c0 + nc) of the n_img
 * dense (c_in, h_in, w_in) images at x.  Rows in (channel, kh, kw) order, or
 * (kh, kw, channel) when tap_major (the GEMM of an HWIO weight).  Threads
 * split (image, channel). */
void fc_col2im_images_f32(const fc_conv_desc *d, const float *col, int64_t n_img, int64_t c0,
                          int64_t nc, int tap_major, float *x);
void fc_col2im_images_f64(const fc_conv_desc *d, const double *col, int64_t n_img, int64_t c0,
                          int64_t nc, int tap_major, double *x);

/* Batch normalisation in training mode (batchnorm.c) over (outer, channels,
 * inner) dense data (NCHW: (N, C, H*W); channels-last: (N*H*W, C, 1)):
 * mean and biased var per channel, inv_std = 1 / sqrt(var + eps),
 * xhat = (x - mean) * inv_std, y = xhat * gamma + beta (gamma, beta NULL: 1
 * and 0).  The backward: gbeta = sum g, ggamma = sum g * xhat per channel and,
 * when dx is not NULL, dx = gamma * inv_std * (g - mean(g) - xhat *
 * mean(g * xhat)).  Sums in double; threads split the channels. */
void fc_bn_train_forward_f32(const float *x, int64_t outer, int64_t channels, int64_t inner,
                             const float *gamma, const float *beta, double eps, float *xhat,
                             float *y, float *mean, float *var, float *inv_std);
void fc_bn_train_forward_f64(const double *x, int64_t outer, int64_t channels, int64_t inner,
                             const double *gamma, const double *beta, double eps, double *xhat,
                             double *y, double *mean, double *var, double *inv_std);
void fc_bn_train_backward_f32(const float *g, const float *xhat, int64_t outer,
                              int64_t channels, int64_t inner, const float *gamma,
                              const float *inv_std, float *gbeta, float *ggamma, float *dx);
void fc_bn_train_backward_f64(const double *g, const double *xhat, int64_t outer,
                              int64_t channels, int64_t inner, const double *gamma,
                              const double *inv_std, double *gbeta, double *ggamma, double *dx);

/* One optimizer step on a variable of n dense elements (optimizer_step.c),
 * Keras's rules in the order of the NumPy reference (fastconv/optimizers.py):
 * first w *= decay (when decay != 1: the decoupled weight decay), then
 *   FC_OPT_SGD, m NULL:  w -= g * lr
 *   FC_OPT_SGD:          m = m * momentum - g * lr; w += m
 *                        (nesterov: w += m * momentum - g * lr, the new m)
 *   FC_OPT_ADAM:         m += (g - m) * beta_1c; v += (g * g - v) * beta_2c;
 *                        (vhat not NULL: vhat = max(vhat, v), used for v)
 *                        w -= m * lr / (sqrt(v) + epsilon)
 * with lr the step's alpha for Adam (lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)),
 * beta_1c = 1 - beta_1, beta_2c = 1 - beta_2; every constant is rounded to
 * the element type first.  Threads split large variables into blocks. */
enum { FC_OPT_SGD = 0, FC_OPT_ADAM = 1 };
typedef struct {
    int kind, nesterov;
    double lr, momentum, beta_1c, beta_2c, epsilon, decay;
} fc_opt_step;
void fc_opt_step_f32(const fc_opt_step *s, int64_t n, float *w, const float *g, float *m,
                     float *v, float *vhat);
void fc_opt_step_f64(const fc_opt_step *s, int64_t n, double *w, const double *g, double *m,
                     double *v, double *vhat);

/* The weight gradient of the convolution d (grad_weight.c):
 *
 *   gw[g*cog + o, c, kh, kw] = sum over n, oy, ox of dZ[n, g*cog + o, oy, ox] *
 *       x[n, g*cig + c, oy*stride_h + kh*dil_h - pad_top, ox*stride_w + kw*dil_w - pad_left]
 *
 * (zero outside x), dZ = g * f'(v) as fc_act_grad_* defines it (act NULL or
 * identity: dZ = g, v not read).  x and g (and v, with g's strides) are read
 * through element strides {n, c, h, w} (NULL: dense NCHW).  gw is dense OIHW
 * (c_out, c_in / groups, kh, kw), or HWIO (kh, kw, c_in / groups, c_out) when
 * gw_hwio, and is overwritten.  gbias (not NULL): the bias gradient, the sum
 * of dZ per channel; gz_out (not NULL): dZ written as a dense NCHW array, for
 * the input gradient.  The result does not depend on the thread count.  s: a
 * scratch kept between calls (grown as needed, see fastconv.h), or NULL to
 * allocate inside.  Returns FC_OK or FC_ENOMEM. */
int fc_grad_weight_f32(const fc_conv_desc *d, const float *x, const int64_t *xstrides,
                       const float *g, const int64_t *gstrides, const float *v,
                       const fc_activation *act, int from_output, float *gw, int gw_hwio,
                       float *gbias, float *gz_out, fc_scratch *s);
int fc_grad_weight_f64(const fc_conv_desc *d, const double *x, const int64_t *xstrides,
                       const double *g, const int64_t *gstrides, const double *v,
                       const fc_activation *act, int from_output, double *gw, int gw_hwio,
                       double *gbias, double *gz_out, fc_scratch *s);
/* The scratch bytes those take. */
size_t fc_grad_weight_workspace_f32(const fc_conv_desc *d);
size_t fc_grad_weight_workspace_f64(const fc_conv_desc *d);
/* The micro-kernels chosen: "avx512", "avx2+fma" or "portable". */
const char *fc_grad_weight_kernel_name(void);

#ifdef __cplusplus
}
#endif
#endif /* FASTCONV_GRAD_H */
