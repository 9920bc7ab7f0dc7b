/* 2-D max / average pooling over NCHW planes (float32 and float64).
 *
 * One window-iteration scheme serves both modes and both dtypes: output
 * element (i, j) of a plane reads the taps
 *     row = i*sh - pad_top  + r*dh,  r in [0, kh)
 *     col = j*sw - pad_left + s*dw,  s in [0, kw)
 * Taps outside the input are skipped (max: they never win, like -inf padding
 * in torch; avg: they add nothing). The average is divided by
 *   count_include_pad != 0: the number of taps inside the padded extent
 *       [-pad_top, h + pad_bottom) x [-pad_left, w + pad_right)
 *       (torch.nn.AvgPool2d, count_include_pad=True, incl. ceil_mode windows);
 *   count_include_pad == 0: the number of taps inside the input
 *       (Keras/TensorFlow "same" average pooling).
 * A window with no tap inside the input yields -inf (max) or 0 (avg).
 * NaN propagates through max.  The caller chooses oh/ow (floor or ceil mode).
 * (Max pooling computes the same windows separably, rows then columns, with
 * baseline and AVX2 bodies: pool_max_impl.h.)
 *
 * x is (n, c, h, w) and y is (n, c, oh, ow), both C-contiguous.
 * Returns 0 on success, FC_POOL_EINVAL for invalid arguments, FC_POOL_ENOMEM
 * when the small per-call tables cannot be allocated.
 */
#ifndef FASTCONV_POOL_H
#define FASTCONV_POOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FC_POOL_MAX 0
#define FC_POOL_AVG 1

#define FC_POOL_OK 0
#define FC_POOL_EINVAL -1
#define FC_POOL_ENOMEM -2

typedef struct {
    int64_t n, c, h, w;         /* input: batch, channels, height, width */
    int64_t oh, ow;             /* output height, width */
    int64_t kh, kw;             /* window */
    int64_t sh, sw;             /* strides (>= 1) */
    int64_t dh, dw;             /* dilation (>= 1) */
    int64_t pad_top, pad_bottom, pad_left, pad_right;   /* >= 0 */
    int mode;                   /* FC_POOL_MAX or FC_POOL_AVG */
    int count_include_pad;      /* avg only */
} fc_pool_params;

int fc_pool2d_f32(const float *x, float *y, const fc_pool_params *p);
int fc_pool2d_f64(const double *x, double *y, const fc_pool_params *p);

/* The same on channels-last arrays: x (n, h, w, c), y (n, oh, ow, c), both
 * C-contiguous; the same values as fc_pool2d on the transposed arrays. */
int fc_pool2d_nhwc_f32(const float *x, float *y, const fc_pool_params *p);
int fc_pool2d_nhwc_f64(const double *x, double *y, const fc_pool_params *p);

/* The backward of fc_pool2d: gx = d(sum(gy * pool(x))) / dx, written whole
 * (gx is cleared first).  Same window scheme and parameters as the forward.
 * Max: each output's gradient goes to one tap, the first maximum of its
 * window in row-major tap order, or the last NaN when the window holds NaN
 * (torch's max_pool2d rule); a window with no tap inside the input passes
 * nothing.  Average: gy / count goes to every tap inside the input, count as
 * in the forward (count_include_pad).
 *
 * channels_last == 0: x, gx are (n, c, h, w) and gy is (n, c, oh, ow);
 * channels_last != 0: x, gx are (n, h, w, c) and gy is (n, oh, ow, c);
 * all C-contiguous, gx not overlapping x or gy.  x is only read for max.
 * Returns as fc_pool2d. */
int fc_pool2d_backward_f32(const float *x, const float *gy, float *gx, const fc_pool_params *p,
                           int channels_last);
int fc_pool2d_backward_f64(const double *x, const double *gy, double *gx,
                           const fc_pool_params *p, int channels_last);

/* The pooling family's variant follows fastconv._core's ISA decision
 * (fc_isa_variant, dispatch.c): fastconv._pool binds that function here when
 * it is imported.  fc_pool_isa_variant: the variant now (an fc_isa_level;
 * portable until bound). */
void fc_pool_bind_isa(int (*variant)(int family));
int fc_pool_isa_variant(void);

#ifdef __cplusplus
}
#endif

#endif /* FASTCONV_POOL_H */
