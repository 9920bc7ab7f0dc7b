/* Private interface between activation.c and activation_avx2.c. */
#ifndef FASTCONV_ACTIVATION_INTERNAL_H
#define FASTCONV_ACTIVATION_INTERNAL_H

#include <stddef.h>

#include "fastconv.h"

/* y[i] = f(x[i] + b), the portable loops (activation.c). */
void fc_act_array_portable_f32(const float *x, float *y, size_t n, float b,
                               const fc_activation *act);
void fc_act_array_portable_f64(const double *x, double *y, size_t n, double b,
                               const fc_activation *act);

/* The same with AVX2+FMA (activation_avx2.c); call only at the AVX2 level
 * (fc_isa_variant(FC_FAM_ACT), dispatch.c). */
void fc_act_array_avx2_f32(const float *x, float *y, size_t n, float b,
                           const fc_activation *act);
void fc_act_array_avx2_f64(const double *x, double *y, size_t n, double b,
                           const fc_activation *act);

/* The same with AVX-512 for the kinds that gain from it, the AVX2 loops for
 * the others (activation_avx512.c); call only at the AVX-512 level. */
void fc_act_array_avx512_f32(const float *x, float *y, size_t n, float b,
                             const fc_activation *act);
void fc_act_array_avx512_f64(const double *x, double *y, size_t n, double b,
                             const fc_activation *act);

#endif
