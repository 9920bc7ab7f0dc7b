/*
 * The FMA-throughput probe behind fastconv's "% of peak" figures, compiled
 * into the library so that a benchmark measures the ceiling on the machine
 * and in the run it reports (clocks differ between hosts and over time).
 * Same method as benchmarks/peak_fma.c: 12 independent chains of 256-bit FMAs.
 */
#include "fastconv.h"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define PEAK_FN fc_fma_chains_avx2
#define PEAK_V __m256
#define PEAK_SET1 _mm256_set1_ps
#define PEAK_FMADD _mm256_fmadd_ps
#define PEAK_ADD _mm256_add_ps
#define PEAK_LANE0(x) _mm_cvtss_f32(_mm256_castps256_ps128(x))
#define PEAK_REG(x) "x"(x)
#include "peak/peak_chains_impl.h"
#endif
