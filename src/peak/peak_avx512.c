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

#define PEAK_FN fc_fma_chains_avx512
#define PEAK_V __m512
#define PEAK_SET1 _mm512_set1_ps
#define PEAK_FMADD _mm512_fmadd_ps
#define PEAK_ADD _mm512_add_ps
#define PEAK_LANE0(x) _mm512_cvtss_f32(x)
#define PEAK_REG(x) "v"(x)
#include "peak/peak_chains_impl.h"
#endif
