/* The weight-gradient micro-kernels with AVX2+FMA (see grad_weight_kern.h),
 * the input values broadcast from memory, in two shapes per type: tiles of
 * 6 input rows x 2 ymm of output channels (12 accumulators), and narrow ones
 * of 12 rows x 1 ymm (8 floats / 4 doubles) for layers of few output channels
 * per group (the digits CNN's 8), whose A the wide tiles would pad with zeros
 * to 16 or 32 columns: 2-4x the FMAs and the pack (benchmarks/NOTES.md, "small
 * layers, session 10").  Chosen at run time by grad_weight.c; on other
 * architectures empty tables, never chosen. */
#include <stddef.h>

#include "grad/grad_weight_internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

/* Each type's vocabulary once, then both shapes: the wide set as
 * fc_gw_kernels_avx2_<type>, the narrow one as fc_gw_kernels_avx2n_<type>. */
#define T float
#define V __m256
#define VL 8
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VBCAST(p) _mm256_set1_ps(*(p))
#define VFMA _mm256_fmadd_ps
#define VADD _mm256_add_ps
#define VZERO _mm256_setzero_ps
#define GWK_TSFX f32
#define GWK_SFX avx2_f32
#define GWK_MR 6
#define GWK_NRV 2
#include "grad/grad_weight_kern.h"
#undef GWK_SFX
#undef GWK_MR
#undef GWK_NRV
#define GWK_SFX avx2n_f32
#define GWK_MR 12
#define GWK_NRV 1
#include "grad/grad_weight_kern.h"
#undef GWK_MR
#undef GWK_NRV
#include "grad/grad_weight_kern_undef.h"

#define T double
#define V __m256d
#define VL 4
#define VLOAD _mm256_loadu_pd
#define VSTORE _mm256_storeu_pd
#define VBCAST(p) _mm256_set1_pd(*(p))
#define VFMA _mm256_fmadd_pd
#define VADD _mm256_add_pd
#define VZERO _mm256_setzero_pd
#define GWK_TSFX f64
#define GWK_SFX avx2_f64
#define GWK_MR 6
#define GWK_NRV 2
#include "grad/grad_weight_kern.h"
#undef GWK_SFX
#undef GWK_MR
#undef GWK_NRV
#define GWK_SFX avx2n_f64
#define GWK_MR 12
#define GWK_NRV 1
#include "grad/grad_weight_kern.h"
#else
const fc_gw_kernels_f32 fc_gw_kernels_avx2_f32 = {0, 0, NULL, {NULL}};
const fc_gw_kernels_f64 fc_gw_kernels_avx2_f64 = {0, 0, NULL, {NULL}};
const fc_gw_kernels_f32 fc_gw_kernels_avx2n_f32 = {0, 0, NULL, {NULL}};
const fc_gw_kernels_f64 fc_gw_kernels_avx2n_f64 = {0, 0, NULL, {NULL}};
#endif
