/*
 * The FMA-throughput probe behind fastconv's "% of peak" figures, compiled
 * into the library so that a benchmark measures the ceiling on the machine
 * and in the run it reports (clocks differ between hosts and over time).
 * Same method as benchmarks/peak_fma.c: 12 independent chains of 256-bit FMAs.
 */
#include "fastconv.h"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* The empty asm statements make every chain opaque: equal chains would
 * otherwise be merged by the compiler and the FMA count overstated. */
#define FC_OPAQUE6(a, b, c, d, e, f) \
    __asm__ volatile("" : "+x"(a), "+x"(b), "+x"(c), "+x"(d), "+x"(e), "+x"(f))

float fc_fma_chains_avx2(long iters)
{
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    __m256 c0 = _mm256_set1_ps(1.0f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    __m256 c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
    for (long i = 0; i < iters; ++i) {
        c0 = _mm256_fmadd_ps(c0, a, b);   c1 = _mm256_fmadd_ps(c1, a, b);
        c2 = _mm256_fmadd_ps(c2, a, b);   c3 = _mm256_fmadd_ps(c3, a, b);
        c4 = _mm256_fmadd_ps(c4, a, b);   c5 = _mm256_fmadd_ps(c5, a, b);
        c6 = _mm256_fmadd_ps(c6, a, b);   c7 = _mm256_fmadd_ps(c7, a, b);
        c8 = _mm256_fmadd_ps(c8, a, b);   c9 = _mm256_fmadd_ps(c9, a, b);
        c10 = _mm256_fmadd_ps(c10, a, b); c11 = _mm256_fmadd_ps(c11, a, b);
        FC_OPAQUE6(c0, c1, c2, c3, c4, c5);
        FC_OPAQUE6(c6, c7, c8, c9, c10, c11);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    return _mm_cvtss_f32(_mm256_castps256_ps128(s));
}
#endif
