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

int fc_simd_disabled_by_env(void)
{
    const char *e = getenv("FASTCONV_DISABLE_SIMD");
    return e && *e && strcmp(e, "0") != 0;
}

static const fc_kernel_table *chosen;

static const fc_kernel_table *choose(void)
{
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    if (!fc_simd_disabled_by_env() && fc_cpu_has_avx2_fma()) return &fc_kernels_avx2;
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
