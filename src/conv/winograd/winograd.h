/*
 * Winograd F(m x m, 3x3) convolution, m = 4 or 2 (winograd.c): 3x3 kernels,
 * stride 1, dilation 1, any padding and groups, float32 and float64, NCHW or
 * NHWC.
 *
 * y = post(conv(pad(pre(x)), w) + bias) as fc_conv2d_direct_*, computed as
 * (m+2)^2 batched GEMMs between transformed (m+2)x(m+2) input tiles and
 * transformed weights (U = G g G^T, made once by fc_winograd_pack_* for one
 * tile size), with the bias and
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

/* Transformed weights (opaque) for one tile size, any input size and padding. */
typedef struct fc_wino_weight fc_wino_weight;

/* Whether the Winograd path computes d: kh == kw == 3, stride 1, dilation 1. */
int fc_winograd_supported(const fc_conv_desc *d);

/* The tile size m (4 or 2) that pays for d, by the rule measured in
 * benchmarks/NOTES.md ("Winograd tile size"); d->h_out <= 0 or d->w_out <= 0
 * means the spatial size is unknown (a pack made before any input is seen):
 * then the choice rests on the channels alone.  Raw (plain-weight) calls
 * use it. */
int fc_winograd_choose_tile(const fc_conv_desc *d);

/* Only c_out, c_in, groups of d are used (kh == kw == 3 assumed); w is read
 * through element strides wstrides = {o, i, h, w} (NULL: dense OIHW); tile 4
 * or 2.  NULL when out of memory or tile is neither. */
fc_wino_weight *fc_winograd_pack_f32(const fc_conv_desc *d, const float *w,
                                     const int64_t *wstrides, int tile);
fc_wino_weight *fc_winograd_pack_f64(const fc_conv_desc *d, const double *w,
                                     const int64_t *wstrides, int tile);
void fc_winograd_free(fc_wino_weight *u);
size_t fc_winograd_weight_bytes(const fc_wino_weight *u);
int fc_winograd_weight_tile(const fc_wino_weight *u);

/* Bytes a call with tile size tile (4 or 2; 0: fc_winograd_choose_tile's, as
 * a raw call) allocates for its tiles (all threads of the call together, at
 * the current thread count); 0 for any other tile. */
size_t fc_winograd_workspace(const fc_conv_desc *d, size_t elem_size, int tile);

/* x read through element strides xstrides = {n, c, h, w} (NULL: dense NCHW);
 * y dense NCHW, or NHWC when y_nhwc.  u made for d's channels and groups
 * and for this float type (FC_EINVAL otherwise, or when d is not supported);
 * the tile size is u's. */
int fc_winograd_f32(const fc_conv_desc *d, const float *x, const int64_t *xstrides,
                    const fc_wino_weight *u, const float *bias, float *y, int y_nhwc,
                    const fc_activation *post, const fc_activation *pre);
int fc_winograd_f64(const fc_conv_desc *d, const double *x, const int64_t *xstrides,
                    const fc_wino_weight *u, const double *bias, double *y, int y_nhwc,
                    const fc_activation *post, const fc_activation *pre);
/* w transformed for this call, for fc_winograd_choose_tile(d)'s tile size,
 * into *s (grown as needed and kept for the next call, as fc_conv2d_raw_*
 * keep theirs; one call at a time per scratch). */
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

/* Benchmarks/tuning/tests: tiles per block (0: the automatic choice), the
 * per-thread cache budget in bytes of the transformed tiles (0: default) and
 * the tile size fc_winograd_choose_tile answers (2 or 4; 0: its rule). */
void fc_winograd_tune(int tiles_per_block, size_t budget_bytes, int tile);
/* Benchmarks/tests: input channels per GEMM call (0: the plan's, < 0: all). */
void fc_winograd_tune_kc(int kc);

#ifdef __cplusplus
}
#endif
#endif
