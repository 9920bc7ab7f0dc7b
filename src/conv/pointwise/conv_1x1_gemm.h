/*
 * 1x1 convolution (stride 1, no padding, groups 1) of NCHW float32 images as
 * a cache-blocked GEMM, AVX-512, for the ONNX inference session
 * (fastconv/onnx):
 *
 *     y[n][m][p] = clamp(sum_k w[m][k] * x[n][k][p] + bias[m] (+ res[n][m][p]), lo, hi)
 *
 * m < M output channels, k < K input channels, p < HW pixels.  The optional
 * residual `res` is the other operand of a following Add (ResNet's joins),
 * added before the clamp (lo = 0, hi = inf is ReLU; -inf, inf the identity).
 *
 * Register tile: 6 output channels x 4 zmm (64 pixels), 24 accumulators; per
 * input channel 4 pixel-vector loads from x's row (NCHW, read in place) and 6
 * broadcast weights.  Cache blocking (why the conv2d 1x1 tile, which runs the
 * whole K for one 6 x 64 tile at a time, reaches only 60-85 GFLOP/s): K is
 * split into blocks of <= FC_1X1G_KC channels, so the x panel of one pixel
 * tile (KC x 64 floats, 32 KB) stays in L1 while all the output channel
 * blocks of a group pass over it, the group's weights (<= ~384 KB) stay in L2
 * across the pixel tiles, partial sums go through y between K blocks.
 * Work items (pixel tile x output-channel group) are spread over OpenMP
 * threads; each writes its own part of y, so no barrier.
 *
 * Weights are packed once by the caller: wp[b][k][o] = w[6 b + o][k], zero
 * for 6 b + o >= M (b < ceil(M / 6)); bias has ceil(M / 6) * 6 entries.
 * x, y and res are dense per image: channel stride HW, image strides x_img,
 * y_img, r_img (y_img > M * HW: y is a channel slice of a wider tensor).
 * y must not overlap x; it may be res itself (each element of res is read
 * before the same element of y is written, by the same thread).
 */
#ifndef FASTCONV_CONV_1X1_GEMM_H
#define FASTCONV_CONV_1X1_GEMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FC_1X1G_MR 6        /* output channels per register tile */
#define FC_1X1G_KC 128      /* input channels per K block */

typedef struct {
    int64_t n, K, M, HW;
    int64_t x_img, y_img, r_img;   /* image strides in elements */
    float lo, hi;                  /* the clamp after the sum */
} fc_1x1g_desc;

/* 1 where the kernel runs here: the ISA level is AVX-512
 * (fc_isa_variant(FC_FAM_1X1_GEMM), dispatch.c: the CPU has it and neither
 * the environment nor fc_force_kernels turned it off) and this is an x86 build. */
int fc_1x1g_available(void);

/* 0: done; 1: declined (not available, or bad sizes: nothing written). */
int fc_conv1x1_gemm_f32(const fc_1x1g_desc *d, const float *x, const float *wp,
                        const float *bias, const float *res, float *y);

/* c = a b with a plain row-major M x K matrix (rows lda >= K elements apart),
 * b dense K x N and c dense M x N (not overlapping a or b): the same kernel
 * and blocking, the 6 rows of a register tile broadcast from a's rows as
 * they are (no packing: the input gradient's GEMM reads a layer's HWIO
 * kernel, new at every training step; fastconv/grad.py).  0: done; 1:
 * declined as above. */
int fc_gemm_plain_f32(int64_t M, int64_t K, int64_t N, const float *a, int64_t lda,
                      const float *b, float *c);

/* The AVX-512 implementation (conv_1x1_gemm_avx512.c); a stub returning 1
 * where it is not compiled for x86. */
int fc_conv1x1_gemm_avx512_f32(const fc_1x1g_desc *d, const float *x, const float *wp,
                               const float *bias, const float *res, float *y);

int fc_gemm_plain_avx512_f32(int64_t M, int64_t K, int64_t N, const float *a, int64_t lda,
                             const float *b, float *c);

#ifdef __cplusplus
}
#endif

#endif
