/*
 * Run-time CPU dispatch and threading configuration.
 *
 * The AVX2+FMA and AVX-512 kernels live in *_avx2.c and *_avx512.c files
 * compiled with their own -m flags; the rest of the library is baseline code,
 * so the module imports on any x86-64.  One instruction-set level
 * (fc_isa_level) is decided here, once, at the first call, and every kernel
 * family reads its variant from it (fc_isa_variant):
 *   - portable when FASTCONV_DISABLE_SIMD is set (not 0), the CPU lacks
 *     AVX2+FMA, or this is not an x86-64 GCC/Clang build;
 *   - else AVX-512 when the CPU and OS have AVX-512 F/BW/DQ/VL and it is
 *     wanted: by default (FC_AVX512_BY_DEFAULT 1, below), unless
 *     FASTCONV_DISABLE_AVX512 is set (not 0);
 *   - else AVX2+FMA.
 * fc_force_isa (tests, benchmarks, through fc_force_kernels) replaces the
 * level for every family.
 */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/conv_kern.h"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define FC_X86_DISPATCH 1
#else
#define FC_X86_DISPATCH 0
#endif

/* The CPU probes: only the decision below reads them. */
static int cpu_has_avx2_fma(void)
{
#if FC_X86_DISPATCH
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* AVX-512 F/BW/DQ/VL usable: the CPU has them and the OS saves the opmask and
 * all 32 zmm registers (XCR0 bits 1, 2, 5, 6, 7). */
static int cpu_has_avx512(void)
{
#if FC_X86_DISPATCH
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
          && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
          && cpu_has_avx2_fma()))
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

/* AVX-512 is on by default wherever the CPU and OS have it: on the Zen 4 the
 * tiles were written on they beat the AVX2 tiles on every ResNet/VGG 3x3
 * layer in three alternating runs (benchmarks/NOTES.md, perf-D).
 * FASTCONV_DISABLE_AVX512=1 keeps AVX2; a build with -DFC_AVX512_BY_DEFAULT=0
 * makes AVX-512 opt-in (FASTCONV_ENABLE_AVX512=1). */
#ifndef FC_AVX512_BY_DEFAULT
#define FC_AVX512_BY_DEFAULT 1
#endif

/* The decision and its inputs in one word, so that a thread never reads half
 * of it: bit 0 set once made, bits 1-2 the level chosen, 3-4 the CPU's widest
 * level, 5 FASTCONV_DISABLE_SIMD, 6 FASTCONV_DISABLE_AVX512, 7 AVX-512
 * wanted.  Two threads making it at once compute the same word. */
#define W_MADE 1
enum { W_LEVEL = 1, W_CPU = 3, W_NO_SIMD = 5, W_NO_AVX512 = 6, W_WANT512 = 7 };   /* shifts */

static int decided;          /* the word; 0 until made */
static int forced = -1;      /* the level fc_force_isa set, -1: none */

#if defined(__GNUC__) || defined(__clang__)
#define LOAD(v) __atomic_load_n(&(v), __ATOMIC_RELAXED)
#define STORE(v, x) __atomic_store_n(&(v), (x), __ATOMIC_RELAXED)
#else   /* aligned int accesses are single instructions on the targets of such builds */
#define LOAD(v) (*(volatile int *)&(v))
#define STORE(v, x) (*(volatile int *)&(v) = (x))
#endif

static int decide(void)
{
    const int cpu = !cpu_has_avx2_fma() ? FC_ISA_PORTABLE
                    : cpu_has_avx512()  ? FC_ISA_AVX512
                                        : FC_ISA_AVX2;
    const int no_simd = env_set("FASTCONV_DISABLE_SIMD");
    const int no_avx512 = env_set("FASTCONV_DISABLE_AVX512");
    const int want512 = !no_avx512 && (FC_AVX512_BY_DEFAULT || env_set("FASTCONV_ENABLE_AVX512"));
    const int level = no_simd || cpu == FC_ISA_PORTABLE  ? FC_ISA_PORTABLE
                      : want512 && cpu == FC_ISA_AVX512 ? FC_ISA_AVX512
                                                        : FC_ISA_AVX2;
    return W_MADE | level << W_LEVEL | cpu << W_CPU | no_simd << W_NO_SIMD
           | no_avx512 << W_NO_AVX512 | want512 << W_WANT512;
}

static int decision(void)
{
    int w = LOAD(decided);
    if (!w) {
        w = decide();
        STORE(decided, w);
    }
    return w;
}

int fc_isa(void)
{
    const int f = LOAD(forced);
    return f >= 0 ? f : (decision() >> W_LEVEL) & 3;
}

fc_isa_info fc_isa_get_info(void)
{
    const int w = decision(), f = LOAD(forced);
    fc_isa_info i;
    i.chosen = (w >> W_LEVEL) & 3;
    i.level = f >= 0 ? f : i.chosen;
    i.cpu = (w >> W_CPU) & 3;
    i.no_simd = (w >> W_NO_SIMD) & 1;
    i.no_avx512 = (w >> W_NO_AVX512) & 1;
    i.avx512_wanted = (w >> W_WANT512) & 1;
    i.forced = f >= 0;
    return i;
}

/* The variant of each family at each level: the one table of which code runs
 * where (FC_ISA_NONE: the family is not used; its calls go to another). */
#define P FC_ISA_PORTABLE
#define A2 FC_ISA_AVX2
#define A5 FC_ISA_AVX512
#define N FC_ISA_NONE
static const struct {
    const char *name;
    signed char at[3];   /* at the portable, AVX2 and AVX-512 levels */
} families[FC_FAM_COUNT] = {
    [FC_FAM_DIRECT] = {"direct tiles", {P, A2, A5}},
    [FC_FAM_DW_NCHW] = {"depthwise NCHW", {P, A2, A2}},
    [FC_FAM_DW_NHWC] = {"depthwise NHWC", {P, A2, A5}},
    /* the small, first-layer and strided-1x1 kernels have no portable build:
     * the direct driver's portable tiles take their calls */
    [FC_FAM_SMALL] = {"small", {N, A2, A2}},
    [FC_FAM_FIRST] = {"first layer", {N, A2, A5}},
    /* under AVX-512 the driver's B tiles ran these layers 1.5-2.6x faster
     * (benchmarks/NOTES.md, session 12) */
    [FC_FAM_1X1S] = {"1x1 strided", {N, A2, N}},
    [FC_FAM_1X1_GEMM] = {"1x1 gemm", {N, N, A5}},
    [FC_FAM_ACT] = {"activations", {P, A2, A5}},
    [FC_FAM_ACT_GRAD] = {"activation gradients", {P, A2, A2}},
    [FC_FAM_GRAD_WEIGHT] = {"weight gradient", {P, A2, A5}},
    [FC_FAM_POOL] = {"pooling", {P, A2, A2}},
    [FC_FAM_WINOGRAD] = {"winograd", {P, A2, A5}},
    [FC_FAM_PEAK] = {"fma peak probe", {N, A2, A5}},
};
#undef P
#undef A2
#undef A5
#undef N

int fc_isa_variant_at(int family, int level)
{
    if (family < 0 || family >= FC_FAM_COUNT || level < FC_ISA_PORTABLE || level > FC_ISA_AVX512)
        return FC_ISA_NONE;
    return families[family].at[level];
}

/* The variant each family was last handed, plus 2 (0: not asked since the
 * last fc_isa_reset_asked); written only when it changes, so the threads of
 * a team asking at once do not pass the line to and fro. */
static int asked[FC_FAM_COUNT];

int fc_isa_variant(int family)
{
    const int v = fc_isa_variant_at(family, fc_isa());
    if (family >= 0 && family < FC_FAM_COUNT && LOAD(asked[family]) != v + 2)
        STORE(asked[family], v + 2);
    return v;
}

int fc_isa_asked(int family)
{
    return family < 0 || family >= FC_FAM_COUNT ? -2 : LOAD(asked[family]) - 2;
}

void fc_isa_reset_asked(void)
{
    for (int f = 0; f < FC_FAM_COUNT; ++f) STORE(asked[f], 0);
}

const char *fc_isa_family_name(int family)
{
    return family < 0 || family >= FC_FAM_COUNT ? NULL : families[family].name;
}

const char *fc_isa_name(int level)
{
    switch (level) {
    case FC_ISA_PORTABLE: return "portable";
    case FC_ISA_AVX2: return "avx2";
    case FC_ISA_AVX512: return "avx512";
    default: return "none";
    }
}

int fc_force_isa(int level)
{
    if (level < -1 || level > FC_ISA_AVX512) return 0;
    if (level > fc_isa_get_info().cpu) return 0;
    STORE(forced, level);
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
