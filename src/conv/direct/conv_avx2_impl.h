/* The AVX2 tiles for one float type (included by conv_direct_avx2.c). */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

/* lane mask for the first n (0..2*VL) elements of two vectors */
static inline __m256i FN(lane_mask_)(int n, int half)
{
    /* element size in 32-bit units: 1 for float, 2 for double */
    const int per = (int)(sizeof(T) / 4);
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i lim = _mm256_set1_epi32((n - half * VL) * per);
    return _mm256_cmpgt_epi32(lim, idx);
}

#if VL == 8

/* o[j] = (r[0][j], ..., r[7][j]): an 8 x 8 transpose. */
static inline __attribute__((always_inline)) void FN(tr_)(const V *r, V *o)
{
    const V t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const V t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const V t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const V t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const V u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const V u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const V u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const V u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    o[0] = _mm256_permute2f128_ps(u0, u4, 0x20); o[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    o[2] = _mm256_permute2f128_ps(u2, u6, 0x20); o[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    o[4] = _mm256_permute2f128_ps(u0, u4, 0x31); o[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    o[6] = _mm256_permute2f128_ps(u2, u6, 0x31); o[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* Rows r0..r7 (8 pixels of 8 channels) stored as np (<= 8) pixels of 8
 * channels at d, d + C, ...: an 8 x 8 transpose. */
static inline __attribute__((always_inline)) void FN(nhwc_store8x8_)(
    V r0, V r1, V r2, V r3, V r4, V r5, V r6, V r7, T *d, int64_t C, int np)
{
    const V r[8] = {r0, r1, r2, r3, r4, r5, r6, r7};
    V o[8];
    FN(tr_)(r, o);
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j)
        if (j < np) VSTORE(d + j * C, o[j]);
}

static void FN(nhwc_avx2_)(const T *src, int64_t C, int64_t cs, int64_t W, T *dst)
{
    int64_t c = 0;
    /* the last (W % 8) pixels: masked loads (never past the row), same transpose */
    const int nt = (int)(W % 8);
    const __m256i tail = FN(lane_mask_)(nt, 0);
    for (; c + 8 <= C; c += 8) {
        const T *s = src + c * cs;
        int64_t w = 0;
        for (; w + 8 <= W; w += 8)
            FN(nhwc_store8x8_)(VLOAD(s + w), VLOAD(s + cs + w), VLOAD(s + 2 * cs + w),
                               VLOAD(s + 3 * cs + w), VLOAD(s + 4 * cs + w),
                               VLOAD(s + 5 * cs + w), VLOAD(s + 6 * cs + w),
                               VLOAD(s + 7 * cs + w), dst + w * C + c, C, 8);
        if (nt)
            FN(nhwc_store8x8_)(_mm256_maskload_ps(s + w, tail),
                               _mm256_maskload_ps(s + cs + w, tail),
                               _mm256_maskload_ps(s + 2 * cs + w, tail),
                               _mm256_maskload_ps(s + 3 * cs + w, tail),
                               _mm256_maskload_ps(s + 4 * cs + w, tail),
                               _mm256_maskload_ps(s + 5 * cs + w, tail),
                               _mm256_maskload_ps(s + 6 * cs + w, tail),
                               _mm256_maskload_ps(s + 7 * cs + w, tail), dst + w * C + c, C, nt);
    }
    for (; c < C; ++c)
        for (int64_t w = 0; w < W; ++w) dst[w * C + c] = src[c * cs + w];
}
#else

/* o[j] = (r[0][j], ..., r[3][j]): a 4 x 4 transpose. */
static inline __attribute__((always_inline)) void FN(tr_)(const V *r, V *o)
{
    const V t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const V t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    o[0] = _mm256_permute2f128_pd(t0, t2, 0x20); o[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    o[2] = _mm256_permute2f128_pd(t0, t2, 0x31); o[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

static void FN(nhwc_avx2_)(const T *src, int64_t C, int64_t cs, int64_t W, T *dst)
{
    int64_t c = 0;
    for (; c + 4 <= C; c += 4) {
        const T *s = src + c * cs;
        int64_t w = 0;
        for (; w + 4 <= W; w += 4) {
            const V r0 = VLOAD(s + w), r1 = VLOAD(s + cs + w);
            const V r2 = VLOAD(s + 2 * cs + w), r3 = VLOAD(s + 3 * cs + w);
            const V t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
            const V t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
            T *d = dst + w * C + c;
            VSTORE(d + 0 * C, _mm256_permute2f128_pd(t0, t2, 0x20));
            VSTORE(d + 1 * C, _mm256_permute2f128_pd(t1, t3, 0x20));
            VSTORE(d + 2 * C, _mm256_permute2f128_pd(t0, t2, 0x31));
            VSTORE(d + 3 * C, _mm256_permute2f128_pd(t1, t3, 0x31));
        }
        for (; w < W; ++w)
            for (int i = 0; i < 4; ++i) dst[w * C + c + i] = s[i * cs + w];
    }
    for (; c < C; ++c)
        for (int64_t w = 0; w < W; ++w) dst[w * C + c] = src[c * cs + w];
}
#endif

#if VL == 8
#define PK_ADD _mm256_add_ps
#define PK_SUB _mm256_sub_ps
#define PK_NONZERO(v) _mm256_movemask_ps(_mm256_cmp_ps(v, VZERO(), _CMP_NEQ_UQ))
#else
#define PK_ADD _mm256_add_pd
#define PK_SUB _mm256_sub_pd
#define PK_NONZERO(v) _mm256_movemask_pd(_mm256_cmp_pd(v, VZERO(), _CMP_NEQ_UQ))
#endif

/* Layout B of one block of OB = 2 VL rows (conv_kern.h, packB): per VL
 * columns, a VL x VL transpose of each half of the rows; each column's two
 * vectors are one aligned 64-byte line of dst.  The finite test: v - v summed
 * lane-wise (NaN for inf and NaN), two chains. */
static int FN(packB_avx2_)(const T *src, int64_t rs, int nrows, int64_t cin, int64_t taps,
                           T *dst)
{
    const int64_t K = cin * taps;
    V bad0 = VZERO(), bad1 = VZERO();
    int64_t ic = 0, t = 0;   /* column k0 is ic * taps + t */
    for (int64_t k0 = 0; k0 < K; k0 += VL) {
        const int nc = K - k0 < VL ? (int)(K - k0) : VL;
        const VI m = FN(lane_mask_)(nc, 0);
        T *dp[VL];
        for (int j = 0; j < nc; ++j) {
            dp[j] = dst + (t * cin + ic) * (2 * VL);
            if (++t == taps) { t = 0; ++ic; }
        }
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
            V r[VL], o[VL];
#pragma GCC unroll 8
            for (int i = 0; i < VL; ++i) {
                const int row = h * VL + i;
                const T *sp = src + row * rs + k0;
                r[i] = row >= nrows ? VZERO() : nc == VL ? VLOAD(sp) : VMASKLOAD(sp, m);
                if (i & 1) bad1 = PK_ADD(bad1, PK_SUB(r[i], r[i]));
                else bad0 = PK_ADD(bad0, PK_SUB(r[i], r[i]));
            }
            FN(tr_)(r, o);
#pragma GCC unroll 8
            for (int j = 0; j < VL; ++j)
                if (j < nc) VSTOREA(dp[j] + h * VL, o[j]);
        }
    }
    return !PK_NONZERO(PK_ADD(bad0, bad1));
}
/* conv_kern.h, linesB: each line two vectors, the finite test as packB's. */
static int FN(linesB_avx2_)(const T *const *src, int n, T *dst)
{
    V bad0 = VZERO(), bad1 = VZERO();
    for (int k = 0; k < n; ++k) {
        const V a = VLOAD(src[k]), b = VLOAD(src[k] + VL);
        VSTOREA(dst + k * 2 * VL, a);
        VSTOREA(dst + k * 2 * VL + VL, b);
        bad0 = PK_ADD(bad0, PK_SUB(a, a));
        bad1 = PK_ADD(bad1, PK_SUB(b, b));
    }
    return !PK_NONZERO(PK_ADD(bad0, bad1));
}
#undef PK_ADD
#undef PK_SUB
#undef PK_NONZERO


/* relu on the 12 accumulators c00..c51; the tiles get identity or relu
 * (fc_act_in_tile, conv_kern.h). */
#define FC_TILE_ACT12(ACTP)                                                              \
    if ((ACTP)->kind == FC_ACT_RELU) {                                                   \
        const V z_ = VSET1((T)0);                                                        \
        c00 = VRELU(c00, z_); c01 = VRELU(c01, z_); c10 = VRELU(c10, z_);                \
        c11 = VRELU(c11, z_); c20 = VRELU(c20, z_); c21 = VRELU(c21, z_);                \
        c30 = VRELU(c30, z_); c31 = VRELU(c31, z_); c40 = VRELU(c40, z_);                \
        c41 = VRELU(c41, z_); c50 = VRELU(c50, z_); c51 = VRELU(c51, z_);                \
    }

/* One input channel of one tap into pixel j's two accumulators, when j is in
 * [J0, J1) (the others read only padding there: conv_kern.h, tapskip). */
#define FC_PIX6(j, J0, J1, pj, cj0, cj1)                                                 \
    if ((J0) <= (j) && (j) < (J1)) {                                                     \
        const V x_ = VBCAST(pj + off);                                                   \
        cj0 = VFMA(w0, x_, cj0); cj1 = VFMA(w1, x_, cj1);                                \
    }
#define FC_TAP6(J0, J1)                                                                  \
    _Pragma("GCC unroll 4")                                                              \
    for (int64_t k = 0; k < kc; ++k) {                                                   \
        const V w0 = VLOAD(w), w1 = VLOAD(w + VL);                                       \
        w += 2 * VL;                                                                     \
        FC_PIX6(0, J0, J1, p0, c00, c01) FC_PIX6(1, J0, J1, p1, c10, c11)               \
        FC_PIX6(2, J0, J1, p2, c20, c21) FC_PIX6(3, J0, J1, p3, c30, c31)               \
        FC_PIX6(4, J0, J1, p4, c40, c41) FC_PIX6(5, J0, J1, p5, c50, c51)               \
        off += xs;                                                                       \
    }

/* P (5 or 6, a constant after inlining) pixels x 2 vectors of channels; SKIP:
 * honour a->tapskip (only when npix == P). */
static inline __attribute__((always_inline)) void FN(tileB_body_)(const fc_tileB_args *a,
                                                                 const int P, const int SKIP)
{
    const T *bias = (const T *)a->bias;
    const V b0 = VLOAD(bias), b1 = VLOAD(bias + VL);
    V c00 = b0, c01 = b1, c10 = b0, c11 = b1, c20 = b0, c21 = b1;
    V c30 = b0, c31 = b1, c40 = b0, c41 = b1, c50 = b0, c51 = b1;
    const T *w = (const T *)a->w;
    const T *const *pp = (const T *const *)a->ptrs;
    const int64_t kc = a->kc, xs = a->xs, ntaps = a->ntaps;
    for (int64_t t = 0; t < ntaps; ++t, pp += 6) {
        const T *p0 = pp[0], *p1 = pp[1], *p2 = pp[2], *p3 = pp[3], *p4 = pp[4], *p5 = pp[5];
        int64_t off = 0;
        switch (SKIP ? a->tapskip[t] : 0) {
        case 0: FC_TAP6(0, P) break;
        case 1: FC_TAP6(1, P) break;
        case 2: FC_TAP6(0, P - 1) break;
        default: FC_TAP6(1, P - 1) break;
        }
    }
    if (a->rot) {   /* back to memory order: pixel m is column (m - rot) mod npix */
        const V r0[6] = {c00, c10, c20, c30, c40, c50}, r1[6] = {c01, c11, c21, c31, c41, c51};
        V m0[6], m1[6];
        const int n = a->npix, rot = a->rot;
        for (int m = 0; m < 6; ++m) {
            const int j = m < n ? (m - rot + n) % n : m;
            m0[m] = r0[j]; m1[m] = r1[j];
        }
        c00 = m0[0]; c10 = m0[1]; c20 = m0[2]; c30 = m0[3]; c40 = m0[4]; c50 = m0[5];
        c01 = m1[0]; c11 = m1[1]; c21 = m1[2]; c31 = m1[3]; c41 = m1[4]; c51 = m1[5];
    }
    FC_TILE_ACT12(a->act)
    T *y = (T *)a->y;
    const int64_t ldy = a->ldy;
    if (ldy == 1) {   /* NHWC output: each pixel's channels are contiguous */
        const int64_t ldp = a->ldp;
        const V r[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
        if (a->noc == 2 * VL) {
            for (int j = 0; j < a->npix; ++j) {
                VSTORE(y + j * ldp, r[2 * j]);
                VSTORE(y + j * ldp + VL, r[2 * j + 1]);
            }
        } else {
            const __m256i m0 = FN(lane_mask_)(a->noc, 0), m1 = FN(lane_mask_)(a->noc, 1);
            for (int j = 0; j < a->npix; ++j) {
                VMASKSTORE(y + j * ldp, m0, r[2 * j]);
                VMASKSTORE(y + j * ldp + VL, m1, r[2 * j + 1]);
            }
        }
        return;
    }
    if (a->npix == P && a->noc == 2 * VL) {
        FN(fc_store6_)(y, ldy, c00, c10, c20, c30, c40, c50, P);
        FN(fc_store6_)(y + VL * ldy, ldy, c01, c11, c21, c31, c41, c51, P);
        return;
    }
    /* partial tile: transpose through L1, buf[pixel][oc] -> y[oc][pixel] */
    _Alignas(32) T buf[6][2 * VL];
    VSTOREA(buf[0], c00); VSTOREA(buf[0] + VL, c01);
    VSTOREA(buf[1], c10); VSTOREA(buf[1] + VL, c11);
    VSTOREA(buf[2], c20); VSTOREA(buf[2] + VL, c21);
    VSTOREA(buf[3], c30); VSTOREA(buf[3] + VL, c31);
    VSTOREA(buf[4], c40); VSTOREA(buf[4] + VL, c41);
    VSTOREA(buf[5], c50); VSTOREA(buf[5] + VL, c51);
    for (int o = 0; o < a->noc; ++o)
        for (int j = 0; j < a->npix; ++j) y[o * ldy + j * a->ldp] = buf[j][o];
}

static void FN(tileB_avx2_)(const fc_tileB_args *a)
{
    const int skip = a->tapskip != NULL;
    if (a->npix == 6) {
        if (skip) FN(tileB_body_)(a, 6, 1);
        else FN(tileB_body_)(a, 6, 0);
    } else if (a->npix == 5) {
        if (skip) FN(tileB_body_)(a, 5, 1);
        else FN(tileB_body_)(a, 5, 0);
    } else {
        FN(tileB_body_)(a, 6, 0);
    }
}

#define TA_BODY(LOADX0, LOADX1)                                                 \
    for (int64_t k = 0; k < kk; ++k) {                                          \
        const T *xr = x + k * ldx;                                              \
        const V x0 = LOADX0, x1 = LOADX1;                                       \
        V wv;                                                                   \
        wv = VBCAST(w + 0); c00 = VFMA(wv, x0, c00); c01 = VFMA(wv, x1, c01);  \
        wv = VBCAST(w + 1); c10 = VFMA(wv, x0, c10); c11 = VFMA(wv, x1, c11);  \
        wv = VBCAST(w + 2); c20 = VFMA(wv, x0, c20); c21 = VFMA(wv, x1, c21);  \
        wv = VBCAST(w + 3); c30 = VFMA(wv, x0, c30); c31 = VFMA(wv, x1, c31);  \
        wv = VBCAST(w + 4); c40 = VFMA(wv, x0, c40); c41 = VFMA(wv, x1, c41);  \
        wv = VBCAST(w + 5); c50 = VFMA(wv, x0, c50); c51 = VFMA(wv, x1, c51);  \
        w += 6;                                                                 \
    }

static inline void FN(tileA_one_)(const fc_tileA_args *a, const T *x, T *y, int np)
{
    const T *bias = (const T *)a->bias;
    V c00 = VSET1(bias[0]), c01 = c00, c10 = VSET1(bias[1]), c11 = c10;
    V c20 = VSET1(bias[2]), c21 = c20, c30 = VSET1(bias[3]), c31 = c30;
    V c40 = VSET1(bias[4]), c41 = c40, c50 = VSET1(bias[5]), c51 = c50;
    const T *w = (const T *)a->w;
    const int64_t kk = a->k, ldx = a->ldx;
    if (np == 2 * VL) {
#pragma GCC unroll 2
        TA_BODY(VLOAD(xr), VLOAD(xr + VL))
    } else {
        const __m256i m0 = FN(lane_mask_)(np, 0), m1 = FN(lane_mask_)(np, 1);
        TA_BODY(VMASKLOAD(xr, m0), VMASKLOAD(xr + VL, m1))
    }
    FC_TILE_ACT12(a->act)
    const int64_t ldy = a->ldy;
    const int noc = a->noc;
    if (np == 2 * VL && noc == 6) {
        VSTORE(y, c00); VSTORE(y + VL, c01);
        VSTORE(y + ldy, c10); VSTORE(y + ldy + VL, c11);
        VSTORE(y + 2 * ldy, c20); VSTORE(y + 2 * ldy + VL, c21);
        VSTORE(y + 3 * ldy, c30); VSTORE(y + 3 * ldy + VL, c31);
        VSTORE(y + 4 * ldy, c40); VSTORE(y + 4 * ldy + VL, c41);
        VSTORE(y + 5 * ldy, c50); VSTORE(y + 5 * ldy + VL, c51);
        return;
    }
    V r[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    if (np == 2 * VL) {
        for (int o = 0; o < noc; ++o) {
            VSTORE(y + o * ldy, r[2 * o]);
            VSTORE(y + o * ldy + VL, r[2 * o + 1]);
        }
    } else {
        const __m256i m0 = FN(lane_mask_)(np, 0), m1 = FN(lane_mask_)(np, 1);
        for (int o = 0; o < noc; ++o) {
            VMASKSTORE(y + o * ldy, m0, r[2 * o]);
            VMASKSTORE(y + o * ldy + VL, m1, r[2 * o + 1]);
        }
    }
}

static void FN(tileA_avx2_)(const fc_tileA_args *a)
{
    const T *x = (const T *)a->x;
    T *y = (T *)a->y;
    int64_t p = 0;
    for (; p + 2 * VL <= a->npix; p += 2 * VL) FN(tileA_one_)(a, x + p, y + p, 2 * VL);
    if (p < a->npix) FN(tileA_one_)(a, x + p, y + p, (int)(a->npix - p));
}
#undef TA_BODY
#undef FC_TILE_ACT12
#undef FC_TAP6
#undef FC_PIX6
#undef FN
#undef CAT
#undef CAT_
