/*
 * Peak single-precision FMA throughput: 12 independent chains of
 * _mm256_fmadd_ps per thread (enough to cover FMA latency x issue width on
 * current x86 cores: 4 cycles x 2 pipes = 8 in flight), on 1 thread and on
 * every thread (OpenMP).  Prints GFLOP/s (one FMA on 8 lanes = 16 FLOP).
 *
 *   gcc -O2 -mavx2 -mfma -fopenmp -Isrc benchmarks/peak_fma.c src/peak/peak_avx2.c \
 *       -o /tmp/peak_fma && /tmp/peak_fma
 *
 * Best of several repetitions: the machine may be shared.
 */
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

/* The library's own probe (src/peak/peak_avx2.c): iters x 12 independent FMAs,
 * every chain opaque to the compiler; returns a value that depends on all. */
float fc_fma_chains_avx2(long iters);

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
            float v = fc_fma_chains_avx2(iters);
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
