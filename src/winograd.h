/*
 * Winograd F(4x4, 3x3) convolution (winograd.c): 3x3 kernels, stride 1,
 * dilation 1, any padding and groups, float32 and float64, NCHW or NHWC.
 *
 * y = post(conv(pad(pre(x)), w) + bias) as fc_conv2d_direct_*, computed as
 * 36 batched GEMMs between transformed 6x6 input tiles and transformed
 * weights (U = G g G^T, made once by fc_winograd_pack_*), with the bias and
 * activation applied in the output transform (the output written once) and
 * the pre-activation applied once per input value as the tiles are gathered.
 * Its rounding differs from the direct path's (the transforms add and scale
 * values of different tiles' pixels): see docs/DESIGN.md, "Winograd".
 */
#ifndef FASTCONV_WINOGRAD_H
#define FASTCONV_WINOGRAD_H

#include "fastconv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Transformed weights (opaque), for any input size and padding. */
typedef struct fc_wino_weight fc_wino_weight;

/* Whether the Winograd path computes d: kh == kw == 3, stride 1, dilation 1. */
int fc_winograd_supported(const fc_conv_desc *d);

/* Only c_out, c_in, groups of d are used (kh == kw == 3 assumed); w is read
 * through element strides wstrides = {o, i, h, w} (NULL: dense OIHW).  NULL
 * when out of memory. */
fc_wino_weight *fc_winograd_pack_f32(const fc_conv_desc *d, const float *w,
                                     const int64_t *wstrides);
fc_wino_weight *fc_winograd_pack_f64(const fc_conv_desc *d, const double *w,
                                     const int64_t *wstrides);
void fc_winograd_free(fc_wino_weight *u);
size_t fc_winograd_weight_bytes(const fc_wino_weight *u);

/* Bytes a call allocates for its tiles (all threads of the call together,
 * at the current thread count). */
size_t fc_winograd_workspace(const fc_conv_desc *d, size_t elem_size);

/* x read through element strides xstrides = {n, c, h, w} (NULL: dense NCHW);
 * y dense NCHW, or NHWC when y_nhwc.  u made for d's channels and groups
 * and for this float type (FC_EINVAL otherwise, or when d is not supported). */
int fc_winograd_f32(const fc_conv_desc *d, const float *x, const int64_t *xstrides,
                    const fc_wino_weight *u, const float *bias, float *y, int y_nhwc,
                    const fc_activation *post, const fc_activation *pre);
int fc_winograd_f64(const fc_conv_desc *d, const double *x, const int64_t *xstrides,
                    const fc_wino_weight *u, const double *bias, double *y, int y_nhwc,
                    const fc_activation *post, const fc_activation *pre);
/* w transformed for this call into *s (grown as needed and kept for the
 * next call, as fc_conv2d_raw_* keep theirs; one call at a time per scratch). */
int fc_winograd_raw_f32(const fc_conv_desc *d, const float *x, const int64_t *xstrides,
                        const float *w, const int64_t *wstrides, const float *bias, float *y,
                        int y_nhwc, const fc_activation *post, const fc_activation *pre,
                        fc_scratch *s);
int fc_winograd_raw_f64(const fc_conv_desc *d, const double *x, const int64_t *xstrides,
                        const double *w, const int64_t *wstrides, const double *bias,
                        double *y, int y_nhwc, const fc_activation *post,
                        const fc_activation *pre, fc_scratch *s);

/* The Winograd kernel set in use (follows fc_kernel_name: "avx512",
 * "avx2+fma" or "portable"). */
const char *fc_winograd_kernel_name(void);

/* Benchmarks/tuning: tiles per block (0: the automatic choice) and the
 * per-thread cache budget in bytes of the transformed tiles (0: default). */
void fc_winograd_tune(int tiles_per_block, size_t budget_bytes);

#ifdef __cplusplus
}
#endif
#endif
