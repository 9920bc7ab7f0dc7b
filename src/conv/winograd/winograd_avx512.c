/*
 * The Winograd kernels with AVX-512 (winograd_kern.h): the GEMM tile is
 * 4 zmm of output channels x 6 tiles (24 accumulators, as the direct
 * path's 4 x 6 tile for Intel's two 512-bit FMA pipes), the transforms 16
 * float / 8 double channels at a time.  Compiled with the AVX-512 flags;
 * chosen at run time by winograd.c when the direct kernels' set is the
 * AVX-512 one.  Empty on other architectures.
 */
#include "conv/winograd/winograd_kern.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#define WG_NV 4

/* NCHW: row i of the tile for channel l is (r[0][l], ..., r[3][l]): a 4 x 4
 * transpose inside each 128-bit lane puts channel 4k + e's row in lane k of
 * e<e>; stored 128 bits at a time (masked 512-bit stores measured slower). */
static inline __attribute__((always_inline)) void
wg_store_nchw_row_f32(const fc_wino_out_args *a, int64_t o, int64_t nl, int i, const __m512 *r)
{
    const int64_t ldc = a->ldc;
    const __m512 a0 = _mm512_unpacklo_ps(r[0], r[1]), a1 = _mm512_unpackhi_ps(r[0], r[1]);
    const __m512 b0 = _mm512_unpacklo_ps(r[2], r[3]), b1 = _mm512_unpackhi_ps(r[2], r[3]);
    const __m512 e[4] = {_mm512_shuffle_ps(a0, b0, 0x44), _mm512_shuffle_ps(a0, b0, 0xEE),
                         _mm512_shuffle_ps(a1, b1, 0x44), _mm512_shuffle_ps(a1, b1, 0xEE)};
    float *y = (float *)a->y + o * ldc + i * a->ldr;
    if (a->ncols == 4 && nl == 16) {
        for (int q = 0; q < 4; ++q) {
            _mm_storeu_ps(y + q * ldc, _mm512_castps512_ps128(e[q]));
            _mm_storeu_ps(y + (4 + q) * ldc, _mm512_extractf32x4_ps(e[q], 1));
            _mm_storeu_ps(y + (8 + q) * ldc, _mm512_extractf32x4_ps(e[q], 2));
            _mm_storeu_ps(y + (12 + q) * ldc, _mm512_extractf32x4_ps(e[q], 3));
        }
        return;
    }
    const __mmask8 wm = (__mmask8)((1u << a->ncols) - 1u);
    __m128 rows[16];
    for (int q = 0; q < 4; ++q) {
        rows[q] = _mm512_castps512_ps128(e[q]);
        rows[4 + q] = _mm512_extractf32x4_ps(e[q], 1);
        rows[8 + q] = _mm512_extractf32x4_ps(e[q], 2);
        rows[12 + q] = _mm512_extractf32x4_ps(e[q], 3);
    }
    for (int64_t l = 0; l < nl; ++l) _mm_mask_storeu_ps(y + l * ldc, wm, rows[l]);
}
#define WG_STORE_NCHW_ROW(a, o, nl, i, r) wg_store_nchw_row_f32(a, o, nl, i, r)

#define T float
#define V __m512
#define VL 16
#define VLOAD _mm512_loadu_ps
#define VSTORE _mm512_storeu_ps
#define VSTORE_N(p, v, n) _mm512_mask_storeu_ps((p), (__mmask16)((1u << (n)) - 1u), (v))
#define VSET1 _mm512_set1_ps
#define VZERO _mm512_setzero_ps
#define VADD _mm512_add_ps
#define VSUB _mm512_sub_ps
#define VMUL _mm512_mul_ps
#define VFMA _mm512_fmadd_ps
#define VFNMA _mm512_fnmadd_ps
#define VRELU(x, z) _mm512_mask_mov_ps((x), _mm512_cmp_ps_mask((x), (z), _CMP_LT_OQ), (z))
#define ACT_SERIAL fc_activate_serial_f32
#define KFN(name) name##avx512_f32
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
#define V __m512d
#define VL 8
#define VLOAD _mm512_loadu_pd
#define VSTORE _mm512_storeu_pd
#define VSTORE_N(p, v, n) _mm512_mask_storeu_pd((p), (__mmask8)((1u << (n)) - 1u), (v))
#define VSET1 _mm512_set1_pd
#define VZERO _mm512_setzero_pd
#define VADD _mm512_add_pd
#define VSUB _mm512_sub_pd
#define VMUL _mm512_mul_pd
#define VFMA _mm512_fmadd_pd
#define VFNMA _mm512_fnmadd_pd
#define VRELU(x, z) _mm512_mask_mov_pd((x), _mm512_cmp_pd_mask((x), (z), _CMP_LT_OQ), (z))
#define ACT_SERIAL fc_activate_serial_f64
#define KFN(name) name##avx512_f64
#include "conv/winograd/winograd_kern_impl.h"

const fc_wino_kernels fc_wino_avx512 = FC_WINO_KERNELS("avx512", avx512);
#endif
