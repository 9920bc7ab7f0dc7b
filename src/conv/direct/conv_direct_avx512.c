/*
 * AVX-512 (F/BW/DQ/VL) B tiles of the direct convolution, chosen at run time
 * by dispatch.c when the CPU and the OS support them (FASTCONV_DISABLE_AVX512=1
 * keeps AVX2).  Compiled with -mavx512f -mavx512bw -mavx512dq
 * -mavx512vl -mfma; empty on other architectures.
 *
 * Same packed weights as the other kernel sets (OB = 64 bytes of output
 * channels per block, one zmm), so a PackedWeight serves every ISA.  A tile is
 * TNB blocks (zmm vectors of output channels) x TP pixels (broadcasts), one
 * template (conv_direct_avx512_impl.h) instantiated for two blockings, and
 * dispatch.c copies one of the two tables into fc_kernels_avx512 for the CPU:
 *
 *  2 x 8  (16 accumulators; per input channel 2 weight loads + 8 broadcasts
 *         for 16 FMAs): written on a Zen 4, whose 512-bit FMAs run on its two
 *         256-bit pipes (peak = the AVX2 one, ~116 GFLOP/s); there it and the
 *         AVX2 tile both reach the peak on L1-resident data, 2 x 12 (12 pixel
 *         pointers: GPR spills) and 4 x 6 measured slower, and the layers ran
 *         2-15 % faster than AVX2 (benchmarks/NOTES.md perf-C, perf-D).  Kept
 *         for every CPU but Intel's.
 *  4 x 6  (24 accumulators; 4 weight loads + 6 broadcasts for 24 FMAs, 29 of
 *         the 32 zmm, no spills; each weight stream prefetched 32 input
 *         channels ahead): Intel, whose AVX-512 cores have two 512-bit FMA
 *         pipes (Ice Lake server: 512-bit peak ~165 against ~100 for 256-bit
 *         FMAs).  With 16 accumulators and 10 loads per 16 FMAs the 2 x 8 tile
 *         ran the ResNet/VGG 3x3 layers at ~57 % of the 512-bit peak there;
 *         4 x 6 ran them 10-20 % faster (resnet_3x3_512 +3 %: even with the
 *         prefetch its 1.2 MB weight panel per tile streams from L3), ahead
 *         of ONNX Runtime on the ResNet layers, behind on VGG and batch8
 *         (NCHW copy and stores, NOTES.md).  Tried there and slower: 3 x 8, 3 x 9
 *         (a 64-channel layer is 3 + 1 blocks), 4 x 7 (28 + 4 + 1 zmm: one
 *         accumulator spilled), 2 x 12 and 2 x 14 (pointer GPRs).
 *         benchmarks/NOTES.md perf-avx512-icl.
 *
 * The 1x1 GEMM tile (A) is here for float32 (6 channels x 64 pixels); its
 * float64 version and the NCHW->NHWC copy are the AVX2 ones.
 */
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "core/conv_kern.h"

/* out[c] = (r[0][c], ..., r[15][c]): 16 x 16 transpose. */
static inline __attribute__((always_inline)) void tr16(const __m512 *r, __m512 *out)
{
    __m512 t[16], u[16];
    for (int k = 0; k < 8; ++k) {
        t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int q = 0; q < 4; ++q) {
        u[4 * q + 0] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
        u[4 * q + 1] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0xEE);
        u[4 * q + 2] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44);
        u[4 * q + 3] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xEE);
    }
    for (int m = 0; m < 4; ++m) {
        const __m512 v0 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x88);
        const __m512 w0 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x88);
        const __m512 v1 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xDD);
        const __m512 w1 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xDD);
        out[m] = _mm512_shuffle_f32x4(v0, w0, 0x88);
        out[8 + m] = _mm512_shuffle_f32x4(v0, w0, 0xDD);
        out[4 + m] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        out[12 + m] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
    }
}

/* out[c] = (r[0][c], ..., r[7][c]): 8 x 8 transpose of doubles. */
static inline __attribute__((always_inline)) void tr8d(const __m512d *r, __m512d *out)
{
    __m512d t[8], u[8];
    for (int k = 0; k < 4; ++k) {   /* per 128-bit lane: (r[2k][2i], r[2k+1][2i]) and odd */
        t[2 * k] = _mm512_unpacklo_pd(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_pd(r[2 * k], r[2 * k + 1]);
    }
    for (int q = 0; q < 2; ++q) {   /* lanes 0, 2 (0x88) and 1, 3 (0xDD) of two rows pairs */
        u[4 * q + 0] = _mm512_shuffle_f64x2(t[4 * q], t[4 * q + 2], 0x88);
        u[4 * q + 1] = _mm512_shuffle_f64x2(t[4 * q], t[4 * q + 2], 0xDD);
        u[4 * q + 2] = _mm512_shuffle_f64x2(t[4 * q + 1], t[4 * q + 3], 0x88);
        u[4 * q + 3] = _mm512_shuffle_f64x2(t[4 * q + 1], t[4 * q + 3], 0xDD);
    }
    out[0] = _mm512_shuffle_f64x2(u[0], u[4], 0x88);
    out[4] = _mm512_shuffle_f64x2(u[0], u[4], 0xDD);
    out[2] = _mm512_shuffle_f64x2(u[1], u[5], 0x88);
    out[6] = _mm512_shuffle_f64x2(u[1], u[5], 0xDD);
    out[1] = _mm512_shuffle_f64x2(u[2], u[6], 0x88);
    out[5] = _mm512_shuffle_f64x2(u[2], u[6], 0xDD);
    out[3] = _mm512_shuffle_f64x2(u[3], u[7], 0x88);
    out[7] = _mm512_shuffle_f64x2(u[3], u[7], 0xDD);
}

/* Layout B of one block (conv_kern.h, packB): per LANES columns one LANES x
 * LANES transpose of the block's rows (masked loads at the row ends, zero
 * rows past nrows), each column an aligned 64-byte line of dst.  The finite
 * test: v - v summed lane-wise (NaN for inf and NaN), two chains.  One
 * definition for both types. */
#define FC_DEF_PACKB(SFX, T, V, LANES, MASKT, MASKZ_LOADU, TR, STORE, ADD, SUB, SETZERO,   \
                     CMP_MASK, FULL)                                                       \
    static int packB_avx512_##SFX(const T *src, int64_t rs, int nrows, int64_t cin,       \
                                  int64_t taps, T *dst)                                    \
    {                                                                                      \
        const int64_t K = cin * taps;                                                      \
        V bad0 = SETZERO(), bad1 = SETZERO();                                              \
        int64_t ic = 0, t = 0; /* column k0 is ic * taps + t */                            \
        for (int64_t k0 = 0; k0 < K; k0 += LANES) {                                        \
            const int nc = K - k0 < LANES ? (int)(K - k0) : LANES;                         \
            const MASKT m = nc == LANES ? (MASKT)FULL : (MASKT)((1u << nc) - 1);           \
            V r[LANES], c[LANES];                                                          \
            _Pragma("GCC unroll 16") for (int o = 0; o < LANES; ++o)                       \
            {                                                                              \
                r[o] = o < nrows ? MASKZ_LOADU(m, src + o * rs + k0) : SETZERO();          \
                if (o & 1) bad1 = ADD(bad1, SUB(r[o], r[o]));                              \
                else bad0 = ADD(bad0, SUB(r[o], r[o]));                                    \
            }                                                                              \
            TR(r, c);                                                                      \
            for (int j = 0; j < nc; ++j) {                                                 \
                STORE(dst + (t * cin + ic) * LANES, c[j]);                                 \
                if (++t == taps) { t = 0; ++ic; }                                          \
            }                                                                              \
        }                                                                                  \
        return CMP_MASK(ADD(bad0, bad1), SETZERO(), _CMP_EQ_OQ) == (MASKT)FULL;            \
    }

FC_DEF_PACKB(f32, float, __m512, 16, __mmask16, _mm512_maskz_loadu_ps, tr16, _mm512_store_ps,
             _mm512_add_ps, _mm512_sub_ps, _mm512_setzero_ps, _mm512_cmp_ps_mask, 0xFFFF)
FC_DEF_PACKB(f64, double, __m512d, 8, __mmask8, _mm512_maskz_loadu_pd, tr8d, _mm512_store_pd,
             _mm512_add_pd, _mm512_sub_pd, _mm512_setzero_pd, _mm512_cmp_pd_mask, 0xFF)
#undef FC_DEF_PACKB

/* conv_kern.h, linesB: a line is one vector; the finite test as packB's. */
#define FC_DEF_LINESB(SFX, T, V, LOADU, STORE, ADD, SUB, SETZERO, CMP_MASK, MASKT, FULL)  \
    static int linesB_avx512_##SFX(const T *const *src, int n, T *dst)                    \
    {                                                                                      \
        V bad0 = SETZERO(), bad1 = SETZERO();                                              \
        const int lanes = (int)(64 / sizeof(T));                                           \
        int k = 0;                                                                         \
        for (; k + 1 < n; k += 2) {                                                        \
            const V a = LOADU(src[k]), b = LOADU(src[k + 1]);                              \
            STORE(dst + k * lanes, a);                                                     \
            STORE(dst + (k + 1) * lanes, b);                                               \
            bad0 = ADD(bad0, SUB(a, a));                                                   \
            bad1 = ADD(bad1, SUB(b, b));                                                   \
        }                                                                                  \
        if (k < n) {                                                                       \
            const V a = LOADU(src[k]);                                                     \
            STORE(dst + k * lanes, a);                                                     \
            bad0 = ADD(bad0, SUB(a, a));                                                   \
        }                                                                                  \
        return CMP_MASK(ADD(bad0, bad1), SETZERO(), _CMP_EQ_OQ) == (MASKT)FULL;            \
    }
FC_DEF_LINESB(f32, float, __m512, _mm512_loadu_ps, _mm512_store_ps, _mm512_add_ps,
              _mm512_sub_ps, _mm512_setzero_ps, _mm512_cmp_ps_mask, __mmask16, 0xFFFF)
FC_DEF_LINESB(f64, double, __m512d, _mm512_loadu_pd, _mm512_store_pd, _mm512_add_pd,
              _mm512_sub_pd, _mm512_setzero_pd, _mm512_cmp_pd_mask, __mmask8, 0xFF)
#undef FC_DEF_LINESB

/* ---- B tiles ---- */

#define TNB 2
#define TP 8
#define TPFD 0
#define TSFX _2x8
#include "conv/direct/conv_direct_avx512_impl.h"
#undef TNB
#undef TP
#undef TPFD
#undef TSFX

#define TNB 4
#define TP 6
#define TPFD 32
#define TSFX _4x6
#include "conv/direct/conv_direct_avx512_impl.h"
#undef TNB
#undef TP
#undef TPFD
#undef TSFX

/* ---- A tile (1x1 GEMM), float32: 6 output channels x NV zmm of pixels ----
 * 24 accumulators: per input channel NV loads and 6 broadcasts for 6 NV FMAs
 * (0.42 loads per FMA at NV = 4, against 0.67 for the AVX2 6 x 16 tile), and
 * 64 pixels per pass over the channel block's weights. */
static inline __attribute__((always_inline)) void tileA_f32_body(const fc_tileA_args *a,
                                                                const float *x, float *y,
                                                                const int NV, const int PART,
                                                                __mmask16 mlast)
{
    __m512 acc[6][4];
    const float *bias = (const float *)a->bias;
#pragma GCC unroll 6
    for (int o = 0; o < 6; ++o) {
        const __m512 b = _mm512_set1_ps(bias[o]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[o][v] = b;
    }
    const float *w = (const float *)a->w;
    const int64_t kk = a->k, ldx = a->ldx;
#pragma GCC unroll 2
    for (int64_t k = 0; k < kk; ++k) {
        const float *xr = x + k * ldx;
        __m512 xv[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
            xv[v] = (PART && v == NV - 1) ? _mm512_maskz_loadu_ps(mlast, xr + 16 * v)
                                          : _mm512_loadu_ps(xr + 16 * v);
#pragma GCC unroll 6
        for (int o = 0; o < 6; ++o) {
            const __m512 wv = _mm512_set1_ps(w[o]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) acc[o][v] = _mm512_fmadd_ps(wv, xv[v], acc[o][v]);
        }
        w += 6;
    }
    /* identity or relu (fc_act_in_tile, conv_kern.h) */
    if (a->act->kind == FC_ACT_RELU) {   /* x < 0 ? 0 : x, NaN and -0.0 kept */
        const __m512 z = _mm512_setzero_ps();
#pragma GCC unroll 6
        for (int o = 0; o < 6; ++o)
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v)
                acc[o][v] = _mm512_mask_mov_ps(acc[o][v],
                                               _mm512_cmp_ps_mask(acc[o][v], z, _CMP_LT_OQ), z);
    }
    const int64_t ldy = a->ldy;
    const int noc = a->noc;
#pragma GCC unroll 6
    for (int o = 0; o < 6; ++o) {
        if (o >= noc) break;
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
            if (PART && v == NV - 1)
                _mm512_mask_storeu_ps(y + o * ldy + 16 * v, mlast, acc[o][v]);
            else
                _mm512_storeu_ps(y + o * ldy + 16 * v, acc[o][v]);
        }
    }
}

static void tileA_avx512_f32(const fc_tileA_args *a)
{
    const float *x = (const float *)a->x;
    float *y = (float *)a->y;
    int64_t p = 0;
    for (; p + 64 <= a->npix; p += 64) tileA_f32_body(a, x + p, y + p, 4, 0, 0xFFFF);
    const int rem = (int)(a->npix - p);
    if (rem <= 0) return;
    const int nv = (rem + 15) / 16;
    const __mmask16 m = (rem % 16) ? (__mmask16)((1u << (rem % 16)) - 1) : (__mmask16)0xFFFF;
    switch (nv) {
    case 1: tileA_f32_body(a, x + p, y + p, 1, 1, m); break;
    case 2: tileA_f32_body(a, x + p, y + p, 2, 1, m); break;
    case 3: tileA_f32_body(a, x + p, y + p, 3, 1, m); break;
    default: tileA_f32_body(a, x + p, y + p, 4, 1, m); break;
    }
}

/* The rest is the AVX2 set's (float64 A tiles: a secondary path). */
static void tileA_f64(const fc_tileA_args *a) { fc_kernels_avx2.tileA_f64(a); }
static void nhwc_f32(const float *s, int64_t C, int64_t cs, int64_t W, float *d)
{
    fc_kernels_avx2.nhwc_f32(s, C, cs, W, d);
}
static void nhwc_f64(const double *s, int64_t C, int64_t cs, int64_t W, double *d)
{
    fc_kernels_avx2.nhwc_f64(s, C, cs, W, d);
}

/* The two register blockings of the set (dispatch.c picks one for the CPU
 * into fc_kernels_avx512); everything but the B tiles is shared. */
#define FC_AVX512_TABLE(P, NB, SFX)                                                       \
    {"avx512", P, NB, tileB_avx512_f32##SFX, tileB_avx512_f64##SFX, tileA_avx512_f32,      \
     tileA_f64, nhwc_f32, nhwc_f64, packB_avx512_f32, packB_avx512_f64, linesB_avx512_f32,    \
     linesB_avx512_f64}
const fc_kernel_table fc_kernels_avx512_2x8 = FC_AVX512_TABLE(8, 2, _2x8);
const fc_kernel_table fc_kernels_avx512_4x6 = FC_AVX512_TABLE(6, 4, _4x6);
/* the set in use: the copy dispatch.c makes of one of the two at load time */
fc_kernel_table fc_kernels_avx512 = FC_AVX512_TABLE(8, 2, _2x8);
#undef FC_AVX512_TABLE
#endif
