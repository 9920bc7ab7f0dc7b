/*
 * Peak single-precision FMA throughput: 12 independent chains of
 * _mm256_fmadd_ps per thread (enough to cover FMA latency x issue width on
 * current x86 cores: 4 cycles x 2 pipes = 8 in flight), on 1 thread and on
 * every thread (OpenMP).  Prints GFLOP/s (one FMA on 8 lanes = 16 FLOP).
 *
 *   gcc -O2 -mavx2 -mfma -fopenmp benchmarks/peak_fma.c -o /tmp/peak_fma && /tmp/peak_fma
 *
 * Best of several repetitions: the machine may be shared.
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* iters x 12 FMAs; returns a value that depends on every chain. */
static float fma_chains(long iters, float seed)
{
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    __m256 c0 = _mm256_set1_ps(seed), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    __m256 c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
    for (long i = 0; i < iters; ++i) {
        c0 = _mm256_fmadd_ps(c0, a, b);   c1 = _mm256_fmadd_ps(c1, a, b);
        c2 = _mm256_fmadd_ps(c2, a, b);   c3 = _mm256_fmadd_ps(c3, a, b);
        c4 = _mm256_fmadd_ps(c4, a, b);   c5 = _mm256_fmadd_ps(c5, a, b);
        c6 = _mm256_fmadd_ps(c6, a, b);   c7 = _mm256_fmadd_ps(c7, a, b);
        c8 = _mm256_fmadd_ps(c8, a, b);   c9 = _mm256_fmadd_ps(c9, a, b);
        c10 = _mm256_fmadd_ps(c10, a, b); c11 = _mm256_fmadd_ps(c11, a, b);
        /* Opaque to the compiler, so it can neither merge the chains (they
         * start equal and would be computed once) nor drop any of them. */
        __asm__ volatile("" : "+x"(c0), "+x"(c1), "+x"(c2), "+x"(c3), "+x"(c4), "+x"(c5));
        __asm__ volatile("" : "+x"(c6), "+x"(c7), "+x"(c8), "+x"(c9), "+x"(c10), "+x"(c11));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

/* Best GFLOP/s over `reps` runs of `iters` iterations on `threads` threads. */
static double measure(int threads, long iters, int reps)
{
    double best = 0;
    volatile float sink = 0;
    for (int r = 0; r < reps; ++r) {
        double t0 = now();
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
        {
            float v = fma_chains(iters, 1.0f + (float)r);
#ifdef _OPENMP
#pragma omp atomic
#endif
            sink += v;
        }
        double dt = now() - t0;
        double gflops = (double)threads * (double)iters * 12.0 * 16.0 / dt * 1e-9;
        if (gflops > best) best = gflops;
    }
    (void)sink;
    return best;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 20000000L;
    int reps = argc > 2 ? atoi(argv[2]) : 10;
#ifdef _OPENMP
    int all = omp_get_max_threads();
#else
    int all = 1;
#endif
    measure(1, iters / 10, 2);   /* warm up: clocks, page-in */
    printf("peak FMA (AVX2, fp32), 12 chains: 1 thread %.1f GFLOP/s\n", measure(1, iters, reps));
    if (all > 1)
        printf("peak FMA (AVX2, fp32), 12 chains: %d threads %.1f GFLOP/s\n", all,
               measure(all, iters, reps));
    return 0;
}
