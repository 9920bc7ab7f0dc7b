/*
 * Run-time CPU dispatch and threading configuration.
 *
 * The AVX2+FMA kernels live in *_avx2.c files compiled with -mavx2 -mfma; the
 * rest of the library is baseline code, so the module imports on any x86-64.
 * The choice is made once, at the first call: AVX2+FMA when the CPU has both
 * (GCC/Clang __builtin_cpu_supports) and FASTCONV_DISABLE_SIMD is unset or 0;
 * the portable kernels otherwise (and always on other architectures).
 */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "dispatch.h"

int fc_cpu_has_avx2_fma(void)
{
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* AVX-512 F/BW/DQ/VL usable: the CPU has them and the OS saves the opmask and
 * all 32 zmm registers (XCR0 bits 1, 2, 5, 6, 7). */
int fc_cpu_has_avx512(void)
{
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
          && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
          && fc_cpu_has_avx2_fma()))
        return 0;
    unsigned int a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if (!(c & (1u << 27))) return 0;   /* OSXSAVE: xgetbv usable */
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    return (lo & 0xE6u) == 0xE6u;
#else
    return 0;
#endif
}

static int env_set(const char *name)
{
    const char *e = getenv(name);
    return e && *e && strcmp(e, "0") != 0;
}

int fc_avx512_disabled_by_env(void) { return env_set("FASTCONV_DISABLE_AVX512"); }

/* The AVX-512 tiles are used wherever the CPU and OS have them: on this Zen 4
 * they beat the AVX2 tiles on every ResNet/VGG 3x3 layer in three alternating
 * runs (benchmarks/NOTES.md, perf-D).  FASTCONV_DISABLE_AVX512=1 keeps AVX2;
 * a build with -DFC_AVX512_BY_DEFAULT=0 makes them opt-in
 * (FASTCONV_ENABLE_AVX512=1). */
#ifndef FC_AVX512_BY_DEFAULT
#define FC_AVX512_BY_DEFAULT 1
#endif

int fc_avx512_wanted(void)
{
    return !fc_avx512_disabled_by_env()
           && (FC_AVX512_BY_DEFAULT || env_set("FASTCONV_ENABLE_AVX512"));
}

int fc_simd_disabled_by_env(void)
{
    const char *e = getenv("FASTCONV_DISABLE_SIMD");
    return e && *e && strcmp(e, "0") != 0;
}

/* The register blocking of the AVX-512 B tiles for this CPU (conv_direct_avx512.c):
 * 4 x 6 zmm (24 accumulators) on Intel, whose AVX-512 cores (Xeon Skylake-SP
 * to Sapphire Rapids) have two 512-bit FMA pipes: on the Ice Lake server the 16
 * accumulators of 2 x 8 cannot keep both busy (ResNet/VGG 3x3 layers +3-20 %,
 * benchmarks/NOTES.md, perf-avx512-icl).  2 x 8 elsewhere: on the Zen 4 it was
 * written on (512-bit ops on 256-bit pipes, the AVX2 peak) 4 x 6 measured
 * slower.  Other AVX-512 CPUs (Zen 5, ...) were not measured; they keep 2 x 8. */
static const fc_kernel_table *avx512_blocking_for_cpu(void)
{
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_is("intel")) return &fc_kernels_avx512_4x6;
    return &fc_kernels_avx512_2x8;
#else
    return NULL;
#endif
}

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
/* At load time, before any thread reads the table. */
__attribute__((constructor)) static void fc_pick_avx512_blocking(void)
{
    fc_kernels_avx512 = *avx512_blocking_for_cpu();
}
#endif

static const fc_kernel_table *chosen;

static const fc_kernel_table *choose(void)
{
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    if (!fc_simd_disabled_by_env() && fc_cpu_has_avx2_fma()) {
        if (fc_avx512_wanted() && fc_cpu_has_avx512()) return &fc_kernels_avx512;
        return &fc_kernels_avx2;
    }
#endif
    return &fc_kernels_portable;
}

const fc_kernel_table *fc_kernels(void)
{
    /* a race here is benign: every thread computes the same pointer */
    const fc_kernel_table *k = chosen;
    if (!k) chosen = k = choose();
    return k;
}

const char *fc_kernel_name(void) { return fc_kernels()->name; }

int fc_force_kernels(const char *name)
{
    const fc_kernel_table *k = NULL;
    if (!strcmp(name, "portable")) k = &fc_kernels_portable;
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    else if (!strcmp(name, "avx2+fma") && fc_cpu_has_avx2_fma()) k = &fc_kernels_avx2;
    else if (fc_cpu_has_avx512()
             && (!strcmp(name, "avx512") || !strcmp(name, "avx512_2x8")
                 || !strcmp(name, "avx512_4x6"))) {
        /* "avx512": the blocking for this CPU; the others one of them (tests) */
        fc_kernels_avx512 = !strcmp(name, "avx512_2x8")   ? fc_kernels_avx512_2x8
                            : !strcmp(name, "avx512_4x6") ? fc_kernels_avx512_4x6
                                                          : *avx512_blocking_for_cpu();
        k = &fc_kernels_avx512;
    }
#endif
    if (!k) return 0;
    chosen = k;
    return 1;
}

int fc_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fc_get_num_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void fc_set_num_threads(int n)
{
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads(n);
#else
    (void)n;
#endif
}
