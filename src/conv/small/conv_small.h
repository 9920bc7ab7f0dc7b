/*
 * The small-problem direct convolution (conv_small_avx2.c): few output
 * channels and/or tiny problems, where the general B tile (16 output channels
 * x 6 pixels) wastes most lanes and its per-call set-up (packing, workspace,
 * pointer tables, a parallel region) costs more than the arithmetic.
 *
 * Vectorised along the output width: 1-4 output channels (broadcast weights,
 * read straight from OIHW: no packing) x 1-4 vectors of consecutive output
 * columns, all accumulators in registers; bias, activation and the store in
 * the epilogue.  Stride along the width must be 1 (any stride along the
 * height, any dilation, padding by lane masks).  No allocation; a parallel
 * region only above FC_SMALL_PARALLEL_MIN_FLOPS.
 */
#ifndef FASTCONV_CONV_SMALL_H
#define FASTCONV_CONV_SMALL_H

#include <stddef.h>

#include "fastconv.h"

/* Above this many FLOPs the rows are split over threads. */
#define FC_SMALL_PARALLEL_MIN_FLOPS 2.0e6
/* Kernel widths up to this (a border block keeps its lane masks per kw). */
#define FC_SMALL_MAX_KW 16

/* Whether fc_pack_weight keeps an OIHW copy for the small kernel: few
 * output channels per group and small weights. */
#define FC_SMALL_KEEP_OIHW(cout_g, bytes) ((cout_g) < 16 && (bytes) <= (1 << 20))

/* Whether the small kernel takes this call (elem: 4 or 8; pre may be NULL). */
int fc_small_wanted(const fc_conv_desc *d, const fc_activation *pre, size_t elem);

/* y = post(conv(pad(x), w) + bias), w in OIHW; bias may be NULL.  Only for
 * calls fc_small_wanted accepted (AVX2+FMA present). */
int fc_conv_small_avx2_f32(const fc_conv_desc *d, const float *x, const float *w,
                           const float *bias, float *y, const fc_activation *post);
int fc_conv_small_avx2_f64(const fc_conv_desc *d, const double *x, const double *w,
                           const double *bias, double *y, const fc_activation *post);

#endif
