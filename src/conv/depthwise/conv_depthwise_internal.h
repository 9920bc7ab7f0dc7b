/* Private interface between conv_depthwise.c and conv_depthwise_avx2.c. */
#ifndef FASTCONV_CONV_DEPTHWISE_INTERNAL_H
#define FASTCONV_CONV_DEPTHWISE_INTERNAL_H
#include "fastconv.h"

/* The AVX2 float32 depthwise kernel; the description is already checked. */
int fc_dw_avx2_f32(const fc_conv_desc *d, const float *x, const float *w, const float *bias,
                   float *y, const fc_activation *post);
int fc_dw_avx2_f64(const fc_conv_desc *d, const double *x, const double *w, const double *bias,
                   double *y, const fc_activation *post);
#endif
