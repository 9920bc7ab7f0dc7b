/* The weight-gradient micro-kernels with AVX-512 (see grad_weight_kern.h):
 * tiles of 12 input rows x 2 zmm of output channels (24 accumulators), the
 * input values broadcast from memory.  Chosen at run time by grad_weight.c;
 * on other architectures empty tables, never chosen. */
#include <stddef.h>

#include "grad_weight_internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#define GWK_MR 12
#define GWK_NRV 2

#define T float
#define V __m512
#define VL 16
#define VLOAD _mm512_loadu_ps
#define VSTORE _mm512_storeu_ps
#define VBCAST(p) _mm512_set1_ps(*(p))
#define VFMA _mm512_fmadd_ps
#define VADD _mm512_add_ps
#define VZERO _mm512_setzero_ps
#define GWK_SFX avx512_f32
#define GWK_TSFX f32
#include "grad_weight_kern.h"
#undef T
#undef V
#undef VL
#undef VLOAD
#undef VSTORE
#undef VBCAST
#undef VFMA
#undef VADD
#undef VZERO
#undef GWK_SFX
#undef GWK_TSFX

#define T double
#define V __m512d
#define VL 8
#define VLOAD _mm512_loadu_pd
#define VSTORE _mm512_storeu_pd
#define VBCAST(p) _mm512_set1_pd(*(p))
#define VFMA _mm512_fmadd_pd
#define VADD _mm512_add_pd
#define VZERO _mm512_setzero_pd
#define GWK_SFX avx512_f64
#define GWK_TSFX f64
#include "grad_weight_kern.h"
#else
const fc_gw_kernels_f32 fc_gw_kernels_avx512_f32 = {0, 0, {NULL}};
const fc_gw_kernels_f64 fc_gw_kernels_avx512_f64 = {0, 0, {NULL}};
#endif
