/*
 * Depthwise convolution (groups == c_in, any channel multiplier, kernel,
 * stride, dilation and padding), activation fused: memory-bound, so each
 * input value is read from memory once and each output written once (see
 * conv_depthwise_avx2_impl.h).  Both float types run the AVX2+FMA kernels
 * (conv_depthwise_avx2.c) where the CPU has them, else the portable ones here
 * (conv_depthwise_impl.h, conv_depthwise_port.h).
 *
 * Callers: the direct driver (conv_direct_impl.h) tries fc_conv2d_depthwise_*
 * first when groups == c_in and there is no pre-activation, and falls back on
 * FC_EINVAL.
 */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "activation/activation_internal.h"
#include "core/conv_common.h"
#include "conv/depthwise/conv_depthwise_internal.h"
#include "fastconv.h"

#define T float
#define SFX f32
#include "conv/depthwise/conv_depthwise_impl.h"
#include "conv/depthwise/conv_depthwise_port.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "conv/depthwise/conv_depthwise_impl.h"
#include "conv/depthwise/conv_depthwise_port.h"
#undef T
#undef SFX

int fc_conv2d_depthwise_f32(const fc_conv_desc *d, const float *x, const float *w,
                            const float *bias, float *y, const fc_activation *post)
{
    if (!fc_dw_is_depthwise(d)) return FC_EINVAL;
    if (fc_isa_variant(FC_FAM_DW_NCHW) == FC_ISA_AVX2) {
        const int rc = fc_dw_avx2_f32(d, x, w, bias, y, post);
        if (rc != FC_EINVAL) return rc;
    }
    return dw_portable_f32(d, x, w, bias, y, post);
}

int fc_conv2d_depthwise_f64(const fc_conv_desc *d, const double *x, const double *w,
                            const double *bias, double *y, const fc_activation *post)
{
    if (!fc_dw_is_depthwise(d)) return FC_EINVAL;
    if (fc_isa_variant(FC_FAM_DW_NCHW) == FC_ISA_AVX2) {
        const int rc = fc_dw_avx2_f64(d, x, w, bias, y, post);
        if (rc != FC_EINVAL) return rc;
    }
    return dw_portable_f64(d, x, w, bias, y, post);
}
