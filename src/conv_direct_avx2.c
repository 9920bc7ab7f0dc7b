/*
 * AVX2+FMA micro-kernels of the direct convolution (compiled with -mavx2
 * -mfma on x86; empty elsewhere).  Chosen at run time by dispatch.c.
 * The tiles are described in conv_kern.h; here: 12 accumulators, 2 weight or
 * input vectors, 1 broadcast register.
 */
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "activation_avx2.h"
#include "conv_kern.h"

/* ---- float32 ---- */
#define T float
#define SFX f32
#define V __m256
#define VL 8
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VSTOREA _mm256_store_ps
#define VBCAST _mm256_broadcast_ss
#define VSET1 _mm256_set1_ps
#define VFMA _mm256_fmadd_ps
#define VACT fc_act8_f32
/* relu as fc_act8_kind_f32 does it: x < 0 ? 0 : x, NaN and -0.0 kept */
#define VRELU(x, z) _mm256_andnot_ps(_mm256_cmp_ps(x, z, _CMP_LT_OQ), x)
#define VMASKLOAD _mm256_maskload_ps
#define VMASKSTORE _mm256_maskstore_ps
#include "conv_avx2_impl.h"
#undef T
#undef SFX
#undef V
#undef VL
#undef VLOAD
#undef VSTORE
#undef VSTOREA
#undef VBCAST
#undef VSET1
#undef VFMA
#undef VACT
#undef VRELU
#undef VMASKLOAD
#undef VMASKSTORE

/* ---- float64 ---- */
#define T double
#define SFX f64
#define V __m256d
#define VL 4
#define VLOAD _mm256_loadu_pd
#define VSTORE _mm256_storeu_pd
#define VSTOREA _mm256_store_pd
#define VBCAST _mm256_broadcast_sd
#define VSET1 _mm256_set1_pd
#define VFMA _mm256_fmadd_pd
#define VACT fc_act4_f64
#define VRELU(x, z) _mm256_andnot_pd(_mm256_cmp_pd(x, z, _CMP_LT_OQ), x)
#define VMASKLOAD(p, m) _mm256_maskload_pd(p, m)
#define VMASKSTORE(p, m, v) _mm256_maskstore_pd(p, m, v)
#include "conv_avx2_impl.h"

const fc_kernel_table fc_kernels_avx2 = {
    "avx2+fma", 6, 1, tileB_avx2_f32, tileB_avx2_f64, tileA_avx2_f32, tileA_avx2_f64,
    nhwc_avx2_f32, nhwc_avx2_f64,
};
#endif
