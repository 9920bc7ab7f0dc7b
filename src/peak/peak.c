/* fc_fma_peak_gflops: the machine's float32 FMA ceiling, measured with the
 * vector width of the ISA level in use (peak_avx2.c, peak_avx512.c). */
#include <time.h>

#include "fastconv.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define FC_HAVE_PEAK_PROBE 1
float fc_fma_chains_avx2(long iters);
float fc_fma_chains_avx512(long iters);
#endif

static double fc_now(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    struct timespec t;
    timespec_get(&t, TIME_UTC);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
#endif
}

double fc_fma_peak_gflops(int threads, long iters, int reps)
{
#ifdef FC_HAVE_PEAK_PROBE
    /* the ceiling of the kernels that run: 512-bit FMAs for the AVX-512 set
     * (twice the 256-bit rate where a core has two 512-bit pipes), 256-bit
     * for AVX2, none for the portable C (0: unknown) */
    const int v = fc_isa_variant(FC_FAM_PEAK);
    if (v == FC_ISA_NONE || threads < 1 || iters < 1 || reps < 1)
        return 0.0;
    const int wide = v == FC_ISA_AVX512;
    const double lanes = wide ? 16.0 : 8.0;
    volatile float sink = 0.0f;
    double best = 0.0;
    for (int r = 0; r < reps; ++r) {
        const double t0 = fc_now();
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
        {
            float v = wide ? fc_fma_chains_avx512(iters) : fc_fma_chains_avx2(iters);
#ifdef _OPENMP
#pragma omp atomic
#endif
            sink += v;
        }
        const double dt = fc_now() - t0;
#ifdef _OPENMP
        const int ran = threads;
#else
        const int ran = 1;
#endif
        const double g = (double)ran * (double)iters * 12.0 * 2.0 * lanes / dt * 1e-9;
        if (g > best) best = g;
    }
    (void)sink;
    return best;
#else
    (void)threads; (void)iters; (void)reps;
    return 0.0;   /* no probe for this architecture: callers report the peak unmeasured */
#endif
}
