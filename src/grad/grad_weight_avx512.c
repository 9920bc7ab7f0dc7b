/* The weight-gradient micro-kernels with AVX-512 (see grad_weight_kern.h):
 * tiles of 12 input rows x 2 zmm of output channels (24 accumulators), the
 * input values broadcast from memory.  Chosen at run time by grad_weight.c;
 * on other architectures empty tables, never chosen. */
#include <stddef.h>

#include "grad/grad_weight_internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#define GWK_MR 12
#define GWK_NRV 2

/* The 16 x 16 float transpose in registers: unpack, shuffle within 128-bit
 * lanes, then two rounds of 128-bit lane shuffles; the k < nk of rows o < no
 * stored (masked).  Reads 16 values of every row: the rows of C are padded
 * to 32 output channels (NR), so 16 from any block start are there. */
static void tr16_avx512_f32(const float *const *rows, float *dst, int64_t ldd, int nk, int no)
{
    __m512 r[16], t[16];
    for (int k = 0; k < 16; ++k) r[k] = _mm512_loadu_ps(rows[k < nk ? k : 0]);
    for (int k = 0; k < 16; k += 2) {
        t[k] = _mm512_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm512_unpackhi_ps(r[k], r[k + 1]);
    }
    for (int k = 0; k < 16; k += 4) {
        r[k] = _mm512_shuffle_ps(t[k], t[k + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[k + 1] = _mm512_shuffle_ps(t[k], t[k + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[k + 2] = _mm512_shuffle_ps(t[k + 1], t[k + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[k + 3] = _mm512_shuffle_ps(t[k + 1], t[k + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int h = 0; h < 16; h += 8)
        for (int k = 0; k < 4; ++k) {
            t[h + k] = _mm512_shuffle_f32x4(r[h + k], r[h + k + 4], 0x88);
            t[h + k + 4] = _mm512_shuffle_f32x4(r[h + k], r[h + k + 4], 0xdd);
        }
    for (int k = 0; k < 8; ++k) {
        r[k] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0x88);
        r[k + 8] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0xdd);
    }
    const __mmask16 m = (__mmask16)((1u << nk) - 1u);
    if (nk == 16)
        for (int o = 0; o < no; ++o) _mm512_storeu_ps(dst + o * ldd, r[o]);
    else
        for (int o = 0; o < no; ++o) _mm512_mask_storeu_ps(dst + o * ldd, m, r[o]);
}

#define T float
#define GWK_TR16 tr16_avx512_f32
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
#include "grad/grad_weight_kern.h"
#include "grad/grad_weight_kern_undef.h"
#undef GWK_TR16

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
#include "grad/grad_weight_kern.h"
#else
const fc_gw_kernels_f32 fc_gw_kernels_avx512_f32 = {0, 0, NULL, {NULL}};
const fc_gw_kernels_f64 fc_gw_kernels_avx512_f64 = {0, 0, NULL, {NULL}};
#endif
