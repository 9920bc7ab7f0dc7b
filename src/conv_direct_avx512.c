/*
 * AVX-512 (F/BW/DQ/VL) B tiles of the direct convolution, chosen at run time
 * by dispatch.c when the CPU and the OS support them (FASTCONV_DISABLE_AVX512=1
 * keeps AVX2).  Compiled with -mavx512f -mavx512bw -mavx512dq
 * -mavx512vl -mfma; empty on other architectures.
 *
 * Same packed weights as the other kernel sets (OB = 64 bytes of output
 * channels per block, one zmm), so a PackedWeight serves every ISA.  A tile is
 * TNB blocks (zmm vectors of output channels) x TP pixels (broadcasts),
 * 2 x 8 = 16 zmm accumulators: per input channel 2 weight loads + 8
 * broadcasts for 16 FMAs of 16 lanes (0.63 loads per FMA against 0.67 for
 * the AVX2 16 x 6 tile, a quarter fewer weight bytes per FLOP, half the
 * instructions per FLOP).  2 x 12 (24 accumulators, 12 pixel pointers: GPR
 * spills) and 4 x 6 measured slower.  On the Zen 4 it was written on, the
 * micro-kernel and the AVX2 one both reach the FMA peak (~116 GFLOP/s) on
 * L1-resident data; whole layers first measured within +-5% of AVX2 either
 * way, later 2-15 % faster in three alternating runs of the 3x3 layers (the
 * 8-pixel tile needs fewer passes over the weights, which stream from L2),
 * so it is the default where available.  See benchmarks/NOTES.md.
 * The 1x1 GEMM tile (A) is here for float32 (6 channels x 64 pixels); its
 * float64 version and the NCHW->NHWC copy are the AVX2 ones.
 */
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "conv_kern.h"

#ifndef FC_AVX512_TNB
#define FC_AVX512_TNB 2
#endif
#ifndef FC_AVX512_TP
#define FC_AVX512_TP 8
#endif
#define TNB FC_AVX512_TNB
#define TP FC_AVX512_TP

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

/* ---- float32 ---- */

/* One tap: kc input channels into pixels [J0, J1) of the tile (the others
 * read only padding there); NV, P, J0, J1 constants after inlining.  One
 * definition for both types (LANES elements per zmm). */
#define FC_DEF_TAP(SFX, T, V, LANES, LOADU, SET1, FMADD)                                  \
    static inline __attribute__((always_inline)) const T *tap_##SFX(                     \
        V acc[TNB][TP], const T *w, const T *const *pp, int64_t kc, int64_t xs,            \
        int64_t wbs, const int NV, const int J0, const int J1)                             \
    {                                                                                      \
        const T *p[TP];                                                                    \
        _Pragma("GCC unroll 16") for (int j = J0; j < J1; ++j) p[j] = pp[j];               \
        int64_t off = 0;                                                                   \
        _Pragma("GCC unroll 2") for (int64_t k = 0; k < kc; ++k)                           \
        {                                                                                  \
            V wv[TNB];                                                                     \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) wv[v] = LOADU(w + v * wbs); \
            w += LANES;                                                                    \
            _Pragma("GCC unroll 16") for (int j = J0; j < J1; ++j)                         \
            {                                                                              \
                const V x = SET1(p[j][off]);                                               \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v)                       \
                    acc[v][j] = FMADD(wv[v], x, acc[v][j]);                                \
            }                                                                              \
            off += xs;                                                                     \
        }                                                                                  \
        return w;                                                                          \
    }
FC_DEF_TAP(f32, float, __m512, 16, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps)
FC_DEF_TAP(f64, double, __m512d, 8, _mm512_loadu_pd, _mm512_set1_pd, _mm512_fmadd_pd)
#undef FC_DEF_TAP

/* The taps of a tile body: all pixels, or without pixel 0 and/or pixel P - 1
 * where a->tapskip says they read only padding (SKIP: a constant). */
#define FC_TAPS(SFX)                                                                      \
    for (int64_t t = 0; t < ntaps; ++t, pp += TP) {                                        \
        switch (SKIP ? a->tapskip[t] : 0) {                                                \
        case 0: w = tap_##SFX(acc, w, pp, kc, xs, wbs, NV, 0, P); break;                   \
        case 1: w = tap_##SFX(acc, w, pp, kc, xs, wbs, NV, 1, P); break;                   \
        case 2: w = tap_##SFX(acc, w, pp, kc, xs, wbs, NV, 0, P - 1); break;               \
        default: w = tap_##SFX(acc, w, pp, kc, xs, wbs, NV, 1, P - 1); break;              \
        }                                                                                  \
    }

/* NV vectors of channels x P pixels, both constants after inlining; SKIP:
 * honour a->tapskip (only when npix == P). */
static inline __attribute__((always_inline)) void tileB_f32_body(const fc_tileB_args *a,
                                                                const int NV, const int P,
                                                                const int SKIP)
{
    __m512 acc[TNB][TP];
    const float *bias = (const float *)a->bias;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
        const __m512 b = _mm512_loadu_ps(bias + 16 * v);
#pragma GCC unroll 16
        for (int j = 0; j < P; ++j) acc[v][j] = b;
    }
    const float *w = (const float *)a->w;
    const int64_t wbs = a->wbs, kc = a->kc, xs = a->xs, ntaps = a->ntaps;
    const float *const *pp = (const float *const *)a->ptrs;
    FC_TAPS(f32)
    /* identity or relu (fc_act_in_tile, conv_kern.h) */
    if (a->act->kind == FC_ACT_RELU) {   /* x < 0 ? 0 : x, NaN and -0.0 kept */
        const __m512 z = _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
#pragma GCC unroll 16
            for (int j = 0; j < P; ++j)
                acc[v][j] = _mm512_mask_mov_ps(acc[v][j],
                                               _mm512_cmp_ps_mask(acc[v][j], z, _CMP_LT_OQ), z);
    }
    float *y = (float *)a->y;
    const int npix = a->npix, noc = a->noc, rot = a->rot;
    if (a->ldy == 1) {   /* NHWC: each pixel's channels are contiguous */
        const int64_t ldp = a->ldp;
        int64_t at[TP];   /* where pixel column j goes */
#pragma GCC unroll 16
        for (int j = 0; j < P; ++j) at[j] = (j + rot < npix ? j + rot : j + rot - npix) * ldp;
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
            const int nv = noc - 16 * v;
            if (nv <= 0) break;
            const __mmask16 m = nv >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nv) - 1);
            if (nv >= 16) {
#pragma GCC unroll 16
                for (int j = 0; j < P; ++j)
                    if (j < npix) _mm512_storeu_ps(y + at[j] + 16 * v, acc[v][j]);
            } else {
                for (int j = 0; j < npix; ++j)
                    _mm512_mask_storeu_ps(y + at[j] + 16 * v, m, acc[v][j]);
            }
        }
        return;
    }
    /* NCHW: transpose each 16-channel vector's P pixels into rows of pixels */
    const int64_t ldy = a->ldy;
    const __mmask16 pm = (__mmask16)((1u << npix) - 1);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
        __m512 r[16], o[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; ++j) r[j] = acc[v][j < P ? j : 0];
        tr16(r, o);
        if (rot) {   /* memory pixel m is column (m - rot) mod npix */
            const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3,
                                                  2, 1, 0);
            const __m512i back = _mm512_sub_epi32(lane, _mm512_set1_epi32(rot));
            const __m512i idx = _mm512_mask_add_epi32(back, _mm512_cmplt_epi32_mask(
                                                                back, _mm512_setzero_si512()),
                                                      back, _mm512_set1_epi32(npix));
#pragma GCC unroll 16
            for (int c = 0; c < 16; ++c) o[c] = _mm512_permutexvar_ps(idx, o[c]);
        }
        const int nv = noc - 16 * v;
        if (nv >= 16 && npix == 8) {   /* rows of 8 pixels: plain 256-bit stores */
#pragma GCC unroll 16
            for (int c = 0; c < 16; ++c) _mm256_storeu_ps(y + (16 * v + c) * ldy,
                                                          _mm512_castps512_ps256(o[c]));
        } else if (nv >= 16) {
#pragma GCC unroll 16
            for (int c = 0; c < 16; ++c) _mm512_mask_storeu_ps(y + (16 * v + c) * ldy, pm, o[c]);
        } else {
            for (int c = 0; c < nv; ++c) _mm512_mask_storeu_ps(y + (16 * v + c) * ldy, pm, o[c]);
        }
    }
}

/* The body for a tile's shape, all constants: whole tiles of TP or TP - 1
 * pixels (with or without tapskip), small or uneven tails (extra pixels
 * unstored), a single channel block.  One dispatch for both types. */
#define FC_TILEB_DISPATCH(BODY)                                                           \
    {                                                                                      \
        const int skip = a->tapskip != NULL;                                               \
        if (a->nb < TNB) BODY(a, 1, TP, 0);                                                \
        else if (a->npix == TP && skip) BODY(a, TNB, TP, 1);                               \
        else if (a->npix == TP) BODY(a, TNB, TP, 0);                                       \
        else if (a->npix == TP - 1 && skip) BODY(a, TNB, TP - 1, 1);                       \
        else if (a->npix == TP - 1) BODY(a, TNB, TP - 1, 0);                               \
        else BODY(a, TNB, TP, 0);                                                          \
    }

static void tileB_avx512_f32(const fc_tileB_args *a) FC_TILEB_DISPATCH(tileB_f32_body)

/* ---- float64 (8 channels per zmm) ---- */

static inline __attribute__((always_inline)) void tileB_f64_body(const fc_tileB_args *a,
                                                                const int NV, const int P,
                                                                const int SKIP)
{
    __m512d acc[TNB][TP];
    const double *bias = (const double *)a->bias;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
        const __m512d b = _mm512_loadu_pd(bias + 8 * v);
#pragma GCC unroll 16
        for (int j = 0; j < P; ++j) acc[v][j] = b;
    }
    const double *w = (const double *)a->w;
    const int64_t wbs = a->wbs, kc = a->kc, xs = a->xs, ntaps = a->ntaps;
    const double *const *pp = (const double *const *)a->ptrs;
    FC_TAPS(f64)
    if (a->act->kind == FC_ACT_RELU) {   /* else identity (fc_act_in_tile) */
        const __m512d z = _mm512_setzero_pd();
        for (int v = 0; v < NV; ++v)
            for (int j = 0; j < P; ++j)
                acc[v][j] = _mm512_mask_mov_pd(acc[v][j],
                                               _mm512_cmp_pd_mask(acc[v][j], z, _CMP_LT_OQ), z);
    }
    double *y = (double *)a->y;
    const int npix = a->npix, noc = a->noc, rot = a->rot;
    int at[TP];   /* the pixel of column j (a->rot) */
    for (int j = 0; j < P; ++j) at[j] = j + rot < npix ? j + rot : j + rot - npix;
    if (a->ldy == 1) {
        const int64_t ldp = a->ldp;
        for (int v = 0; v < NV; ++v) {
            const int nv = noc - 8 * v;
            if (nv <= 0) break;
            const __mmask8 m = nv >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << nv) - 1);
            for (int j = 0; j < P; ++j)
                if (j < npix) _mm512_mask_storeu_pd(y + at[j] * ldp + 8 * v, m, acc[v][j]);
        }
        return;
    }
    /* NCHW: through an L1 buffer */
    _Alignas(64) double buf[TP][8 * TNB];
    for (int v = 0; v < NV; ++v)
        for (int j = 0; j < P; ++j) _mm512_store_pd(buf[j] + 8 * v, acc[v][j]);
    const int64_t ldy = a->ldy;
    for (int o = 0; o < noc; ++o)
        for (int j = 0; j < npix; ++j) y[o * ldy + at[j]] = buf[j][o];
}

static void tileB_avx512_f64(const fc_tileB_args *a) FC_TILEB_DISPATCH(tileB_f64_body)

#undef FC_TAPS
#undef FC_TILEB_DISPATCH

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

const fc_kernel_table fc_kernels_avx512 = {
    "avx512", TP, TNB, tileB_avx512_f32, tileB_avx512_f64, tileA_avx512_f32, tileA_f64,
    nhwc_f32, nhwc_f64, packB_avx512_f32, packB_avx512_f64,
};
#endif
