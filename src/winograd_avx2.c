/*
 * The Winograd kernels with AVX2+FMA (winograd_kern.h): the GEMM tile is
 * 2 ymm of output channels x 6 tiles (12 accumulators of the 16 registers,
 * as the direct path's AVX2 tile), the transforms 8 float / 4 double
 * channels at a time.  Compiled with -mavx2 -mfma; chosen at run time by
 * winograd.c when the direct kernels' set is the AVX2 one.  Empty on other
 * architectures.
 */
#include "winograd_kern.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#define WG_NV 2

static inline __m256i wg_mask8(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline __m256i wg_mask4d(int n)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}

#define T float
#define V __m256
#define VL 8
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VSTORE_N(p, v, n) _mm256_maskstore_ps((p), wg_mask8((int)(n)), (v))
#define VSET1 _mm256_set1_ps
#define VZERO _mm256_setzero_ps
#define VADD _mm256_add_ps
#define VSUB _mm256_sub_ps
#define VMUL _mm256_mul_ps
#define VFMA _mm256_fmadd_ps
#define VFNMA _mm256_fnmadd_ps
#define VRELU(x, z) _mm256_andnot_ps(_mm256_cmp_ps((x), (z), _CMP_LT_OQ), (x))
#define ACT_SERIAL fc_activate_serial_f32
#define KFN(name) name##avx2_f32
#include "winograd_kern_impl.h"
#undef T
#undef V
#undef VL
#undef VLOAD
#undef VSTORE
#undef VSTORE_N
#undef VSET1
#undef VZERO
#undef VADD
#undef VSUB
#undef VMUL
#undef VFMA
#undef VFNMA
#undef VRELU
#undef ACT_SERIAL
#undef KFN

#define T double
#define V __m256d
#define VL 4
#define VLOAD _mm256_loadu_pd
#define VSTORE _mm256_storeu_pd
#define VSTORE_N(p, v, n) _mm256_maskstore_pd((p), wg_mask4d((int)(n)), (v))
#define VSET1 _mm256_set1_pd
#define VZERO _mm256_setzero_pd
#define VADD _mm256_add_pd
#define VSUB _mm256_sub_pd
#define VMUL _mm256_mul_pd
#define VFMA _mm256_fmadd_pd
#define VFNMA _mm256_fnmadd_pd
#define VRELU(x, z) _mm256_andnot_pd(_mm256_cmp_pd((x), (z), _CMP_LT_OQ), (x))
#define ACT_SERIAL fc_activate_serial_f64
#define KFN(name) name##avx2_f64
#include "winograd_kern_impl.h"

const fc_wino_kernels fc_wino_avx2 = {
    "avx2+fma", wino_in_avx2_f32, wino_in_avx2_f64, wino_gemm_avx2_f32,
    wino_gemm_avx2_f64, wino_out_avx2_f32, wino_out_avx2_f64,
};
#endif
