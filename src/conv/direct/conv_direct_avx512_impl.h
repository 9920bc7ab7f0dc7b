/*
 * The AVX-512 B tiles (conv_kern.h) for one register blocking, written once
 * for both float types: included by conv_direct_avx512.c once per blocking
 * with TNB (zmm vectors of output channels, 1..4), TP (pixels, broadcast),
 * TPFD (0, or how many input channels ahead each weight stream is prefetched
 * into L1: one line per block per channel) and TSFX (the name suffix, e.g.
 * _2x8) defined.  Defines
 * tileB_avx512_f32<TSFX> and tileB_avx512_f64<TSFX>; needs tr16 (the 16 x 16
 * transpose) from the including file.
 */
#define TCAT_(a, b) a##b
#define TCAT(a, b) TCAT_(a, b)
#define TILE(name) TCAT(name, TSFX)

/* One tap: kc input channels into pixels [J0, J1) of the tile (the others
 * read only padding there); NV, J0, J1 constants after inlining.  One
 * definition for both types (LANES elements per zmm). */
#define FC_DEF_TAP(SFX, T, V, LANES, LOADU, SET1, FMADD)                                  \
    static inline __attribute__((always_inline)) const T *TILE(tap_##SFX)(               \
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
            if (TPFD)                                                                      \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v)                       \
                    _mm_prefetch((const char *)(w + v * wbs + TPFD * LANES), _MM_HINT_T0); \
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
        case 0: w = TILE(tap_##SFX)(acc, w, pp, kc, xs, wbs, NV, 0, P); break;             \
        case 1: w = TILE(tap_##SFX)(acc, w, pp, kc, xs, wbs, NV, 1, P); break;             \
        case 2: w = TILE(tap_##SFX)(acc, w, pp, kc, xs, wbs, NV, 0, P - 1); break;         \
        default: w = TILE(tap_##SFX)(acc, w, pp, kc, xs, wbs, NV, 1, P - 1); break;        \
        }                                                                                  \
    }

/* NV vectors of channels x P pixels, both constants after inlining; SKIP:
 * honour a->tapskip (only when npix == P). */
static inline __attribute__((always_inline)) void TILE(tileB_f32_body)(const fc_tileB_args *a,
                                                                      const int NV,
                                                                      const int P,
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
        if (nv <= 0) break;
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

/* The body for a tile's shape, all constants: fewer channel blocks than TNB
 * (the last tile of an output-channel group), whole tiles of TP or TP - 1
 * pixels (with or without tapskip), small or uneven tails (extra pixels
 * unstored).  One dispatch for both types. */
#define FC_TILEB_DISPATCH(BODY)                                                           \
    {                                                                                      \
        const int skip = a->tapskip != NULL;                                               \
        if (a->nb < TNB) {                                                                 \
            if (TNB > 3 && a->nb == 3) BODY(a, TNB > 3 ? 3 : 1, TP, 0);                    \
            else if (TNB > 2 && a->nb == 2) BODY(a, TNB > 2 ? 2 : 1, TP, 0);               \
            else BODY(a, 1, TP, 0);                                                        \
        }                                                                                  \
        else if (a->npix == TP && skip) BODY(a, TNB, TP, 1);                               \
        else if (a->npix == TP) BODY(a, TNB, TP, 0);                                       \
        else if (a->npix == TP - 1 && skip) BODY(a, TNB, TP - 1, 1);                       \
        else if (a->npix == TP - 1) BODY(a, TNB, TP - 1, 0);                               \
        else BODY(a, TNB, TP, 0);                                                          \
    }

static void TILE(tileB_avx512_f32)(const fc_tileB_args *a) FC_TILEB_DISPATCH(TILE(tileB_f32_body))

/* ---- float64 (8 channels per zmm) ---- */

static inline __attribute__((always_inline)) void TILE(tileB_f64_body)(const fc_tileB_args *a,
                                                                      const int NV,
                                                                      const int P,
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

static void TILE(tileB_avx512_f64)(const fc_tileB_args *a) FC_TILEB_DISPATCH(TILE(tileB_f64_body))

#undef FC_TAPS
#undef FC_TILEB_DISPATCH
#undef TILE
#undef TCAT
#undef TCAT_
