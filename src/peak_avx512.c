/*
 * The 512-bit FMA-throughput probe: the same method as peak_avx2.c (12
 * independent chains, opaque to the compiler) with zmm registers.  Used by
 * fc_fma_peak_gflops (peak.c) when the AVX-512 kernels run: a core with two
 * 512-bit FMA pipes (Intel Xeon Skylake-SP .. Sapphire Rapids) does twice the
 * work per cycle of its 256-bit FMAs on them (~1.7x at the lower AVX-512
 * clock: ~100 -> ~170 GFLOP/s on one core of the Ice Lake server,
 * benchmarks/NOTES.md perf-avx512-icl), so a 256-bit figure would overstate
 * "% of peak"; on a Zen 4
 * (512-bit ops split into two 256-bit halves) both probes agree.  12 chains
 * cover two pipes of 4-cycle latency with room to spare.
 */
#include "fastconv.h"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define FC_OPAQUE6(a, b, c, d, e, f) \
    __asm__ volatile("" : "+v"(a), "+v"(b), "+v"(c), "+v"(d), "+v"(e), "+v"(f))

float fc_fma_chains_avx512(long iters)
{
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    __m512 c0 = _mm512_set1_ps(1.0f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    __m512 c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
    for (long i = 0; i < iters; ++i) {
        c0 = _mm512_fmadd_ps(c0, a, b);   c1 = _mm512_fmadd_ps(c1, a, b);
        c2 = _mm512_fmadd_ps(c2, a, b);   c3 = _mm512_fmadd_ps(c3, a, b);
        c4 = _mm512_fmadd_ps(c4, a, b);   c5 = _mm512_fmadd_ps(c5, a, b);
        c6 = _mm512_fmadd_ps(c6, a, b);   c7 = _mm512_fmadd_ps(c7, a, b);
        c8 = _mm512_fmadd_ps(c8, a, b);   c9 = _mm512_fmadd_ps(c9, a, b);
        c10 = _mm512_fmadd_ps(c10, a, b); c11 = _mm512_fmadd_ps(c11, a, b);
        FC_OPAQUE6(c0, c1, c2, c3, c4, c5);
        FC_OPAQUE6(c6, c7, c8, c9, c10, c11);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                             _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
    return _mm512_cvtss_f32(s);
}
#endif
