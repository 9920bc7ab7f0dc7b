/* Private interface between act_grad.c and act_grad_avx2.c. */
#ifndef FASTCONV_ACT_GRAD_INTERNAL_H
#define FASTCONV_ACT_GRAD_INTERNAL_H

#include <stdint.h>

#include "fastconv.h"

/* One (channel, image) plane of fc_act_grad_*: gz = g * f'(v) over len
 * values (gz NULL or g for identity); returns the sum of gz. */
double fc_act_grad_plane_portable_f32(const float *g, const float *v, float *gz, int64_t len,
                                      int kind, int from_output, float p0, float p1);
double fc_act_grad_plane_portable_f64(const double *g, const double *v, double *gz,
                                      int64_t len, int kind, int from_output, double p0,
                                      double p1);
/* The same compiled with AVX2+FMA; call only when fc_act_grad_avx2(). */
double fc_act_grad_plane_avx2_f32(const float *g, const float *v, float *gz, int64_t len,
                                  int kind, int from_output, float p0, float p1);
double fc_act_grad_plane_avx2_f64(const double *g, const double *v, double *gz, int64_t len,
                                  int kind, int from_output, double p0, double p1);

/* The AVX2 planes are the family's variant at the level now (dispatch.c). */
static inline int fc_act_grad_avx2(void)
{
    return fc_isa_variant(FC_FAM_ACT_GRAD) == FC_ISA_AVX2;
}

#endif
