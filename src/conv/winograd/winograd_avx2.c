/*
 * The Winograd kernels with AVX2+FMA (winograd_kern.h): the GEMM tile is
 * 2 ymm of output channels x 6 tiles (12 accumulators of the 16 registers,
 * as the direct path's AVX2 tile), the transforms 8 float / 4 double
 * channels at a time, NCHW rows stored 128 bits at a time (float32).
 * Compiled with -mavx2 -mfma; chosen at run time by winograd.c when the
 * direct kernels' set is the AVX2 one.  Empty on other architectures.
 */
#include "conv/winograd/winograd_kern.h"

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

/* NCHW: row i of the tile for channel l is (r[0][l], ..., r[3][l]): a 4 x 4
 * transpose inside each 128-bit lane puts channel 4k + e's row in lane k of
 * e[e]; stored 128 bits at a time (as the AVX-512 store, winograd_avx512.c). */
static inline __attribute__((always_inline)) void
wg_store_nchw_row_avx2_f32(const fc_wino_out_args *a, int64_t o, int64_t nl, int i,
                           const __m256 *r)
{
    const int64_t ldc = a->ldc;
    const __m256 a0 = _mm256_unpacklo_ps(r[0], r[1]), a1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 b0 = _mm256_unpacklo_ps(r[2], r[3]), b1 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 e[4] = {_mm256_shuffle_ps(a0, b0, 0x44), _mm256_shuffle_ps(a0, b0, 0xEE),
                         _mm256_shuffle_ps(a1, b1, 0x44), _mm256_shuffle_ps(a1, b1, 0xEE)};
    __m128 rows[8];
    for (int q = 0; q < 4; ++q) {
        rows[q] = _mm256_castps256_ps128(e[q]);
        rows[4 + q] = _mm256_extractf128_ps(e[q], 1);
    }
    float *y = (float *)a->y + o * ldc + i * a->ldr;
    if (a->ncols == 4) {
        for (int64_t l = 0; l < nl; ++l) _mm_storeu_ps(y + l * ldc, rows[l]);
    } else {
        const __m128i m = _mm_cmpgt_epi32(_mm_set1_epi32(a->ncols), _mm_setr_epi32(0, 1, 2, 3));
        for (int64_t l = 0; l < nl; ++l) _mm_maskstore_ps(y + l * ldc, m, rows[l]);
    }
}
#define WG_STORE_NCHW_ROW(a, o, nl, i, r) wg_store_nchw_row_avx2_f32(a, o, nl, i, r)

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
#include "conv/winograd/winograd_kern_impl.h"
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
#undef WG_STORE_NCHW_ROW

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
#include "conv/winograd/winograd_kern_impl.h"

const fc_wino_kernels fc_wino_avx2 = FC_WINO_KERNELS("avx2+fma", avx2);
#endif
