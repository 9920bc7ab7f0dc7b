/*
 * The Winograd F(4x4, 3x3) and F(2x2, 3x3) tile kernels, written once over a vector
 * vocabulary (see winograd_kern.h for the layouts).  Included by winograd.c
 * (portable: V is the scalar T, VL 1), winograd_avx2.c and winograd_avx512.c
 * with:
 *   T, V, VL, VLOAD, VSTORE, VSET1, VZERO, VADD, VSUB, VMUL,
 *   VFMA(a, b, c) = a * b + c, VFNMA(a, b, c) = c - a * b,
 *   VRELU(x, z) = x < 0 ? 0 : x (NaN and -0.0 kept),
 *   VSTORE_N(p, v, n): the first n < VL lanes (unused when VL == 1),
 *   ACT_SERIAL: fc_activate_serial_f32 or _f64, KFN(name): the function names;
 * optionally WG_NV (vectors of output channels in a GEMM tile: the SIMD
 * GEMM is only made with it) and WG_STORE_NCHW_ROW(a, o, nl, i, r) (the
 * ISA's NCHW store of one row of a tile, 4 vectors; a scalar scatter otherwise).
 *
 * Transforms (Lavin and Gray, points 0, +-1, +-2, inf): V = B^T d B,
 * Y = A^T M A with
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
 *          0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * and F(2x2, 3x3) (points 0, +-1, inf; no multiplications in the transforms):
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T = [1 1 1 0; 0 1 -1 -1]
 * (G, for the weights, is in winograd.c).
 */

/* B^T along one line of 6 values. */
#define WG_BT(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5)                     \
    do {                                                                       \
        const V a_ = VFNMA(c4, d2, d4), b_ = VFNMA(c4, d1, d3);  /* d4-4d2, d3-4d1 */ \
        const V e_ = VSUB(d4, d2), f_ = VMUL(c2, VSUB(d3, d1));                \
        o0 = VFMA(c4, d0, VFNMA(c5, d2, d4));                                  \
        o1 = VADD(a_, b_);                                                     \
        o2 = VSUB(a_, b_);                                                     \
        o3 = VADD(e_, f_);                                                     \
        o4 = VSUB(e_, f_);                                                     \
        o5 = VFMA(c4, d1, VFNMA(c5, d3, d5));                                  \
    } while (0)

/* A^T along one line of 6 values. */
#define WG_AT(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3)                          \
    do {                                                                       \
        const V s1_ = VADD(m1, m2), d1_ = VSUB(m1, m2);                        \
        const V s2_ = VADD(m3, m4), d2_ = VSUB(m3, m4);                        \
        o0 = VADD(VADD(m0, s1_), s2_);                                         \
        o1 = VFMA(c2, d2_, d1_);                                               \
        o2 = VFMA(c4, s2_, s1_);                                               \
        o3 = VADD(VFMA(c8, d2_, d1_), m5);                                     \
    } while (0)

static void KFN(wino_in4_)(const T *s, int64_t lr, int64_t lc, int64_t nc, T *v, int64_t ldxi)
{
    const V c2 = VSET1((T)2), c4 = VSET1((T)4), c5 = VSET1((T)5);
    for (int64_t ic = 0; ic < nc; ic += VL) {
        V t[6][6];
        for (int k = 0; k < 6; ++k) {   /* down column k */
            const T *p = s + k * lc + ic;
            const V d0 = VLOAD(p), d1 = VLOAD(p + lr), d2 = VLOAD(p + 2 * lr);
            const V d3 = VLOAD(p + 3 * lr), d4 = VLOAD(p + 4 * lr), d5 = VLOAD(p + 5 * lr);
            WG_BT(d0, d1, d2, d3, d4, d5, t[0][k], t[1][k], t[2][k], t[3][k], t[4][k], t[5][k]);
        }
        for (int i = 0; i < 6; ++i) {   /* along row i */
            V w0, w1, w2, w3, w4, w5;
            WG_BT(t[i][0], t[i][1], t[i][2], t[i][3], t[i][4], t[i][5], w0, w1, w2, w3, w4, w5);
            T *q = v + (int64_t)(6 * i) * ldxi + ic;
            VSTORE(q, w0);
            VSTORE(q + ldxi, w1);
            VSTORE(q + 2 * ldxi, w2);
            VSTORE(q + 3 * ldxi, w3);
            VSTORE(q + 4 * ldxi, w4);
            VSTORE(q + 5 * ldxi, w5);
        }
    }
}

/* F(2x2): B^T and A^T along one line. */
#define WG_BT2(d0, d1, d2, d3, o0, o1, o2, o3)                                 \
    do {                                                                       \
        o0 = VSUB(d0, d2);                                                     \
        o1 = VADD(d1, d2);                                                     \
        o2 = VSUB(d2, d1);                                                     \
        o3 = VSUB(d1, d3);                                                     \
    } while (0)
#define WG_AT2(m0, m1, m2, m3, o0, o1)                                         \
    do {                                                                       \
        o0 = VADD(VADD(m0, m1), m2);                                           \
        o1 = VSUB(VSUB(m1, m2), m3);                                           \
    } while (0)

static void KFN(wino_in2_)(const T *s, int64_t lr, int64_t lc, int64_t nc, T *v, int64_t ldxi)
{
    for (int64_t ic = 0; ic < nc; ic += VL) {
        V t[4][4];
        for (int k = 0; k < 4; ++k) {   /* down column k */
            const T *p = s + k * lc + ic;
            const V d0 = VLOAD(p), d1 = VLOAD(p + lr), d2 = VLOAD(p + 2 * lr);
            const V d3 = VLOAD(p + 3 * lr);
            WG_BT2(d0, d1, d2, d3, t[0][k], t[1][k], t[2][k], t[3][k]);
        }
        for (int i = 0; i < 4; ++i) {   /* along row i */
            V w0, w1, w2, w3;
            WG_BT2(t[i][0], t[i][1], t[i][2], t[i][3], w0, w1, w2, w3);
            T *q = v + (int64_t)(4 * i) * ldxi + ic;
            VSTORE(q, w0);
            VSTORE(q + ldxi, w1);
            VSTORE(q + 2 * ldxi, w2);
            VSTORE(q + 3 * ldxi, w3);
        }
    }
}

/* Row i (4 vectors, r[j] = column j; F(2x2) fills r[0..1] and zeros the rest) of one tile's outputs, lanes [o, o + nl), to y. */
static inline void KFN(wino_store_row_)(const fc_wino_out_args *a, int64_t o, int64_t nl, int i,
                                        const V *r)
{
#if VL > 1
    if (a->ldc == 1) {   /* NHWC: a tile pixel's channels are contiguous */
        T *y = (T *)a->y + o + i * a->ldr;
        for (int j = 0; j < a->ncols; ++j) {
            if (nl == VL)
                VSTORE(y + j * a->ldw, r[j]);
            else
                VSTORE_N(y + j * a->ldw, r[j], nl);
        }
        return;
    }
#endif
#ifdef WG_STORE_NCHW_ROW
    if (a->ldw == 1) {
        WG_STORE_NCHW_ROW(a, o, nl, i, r);
        return;
    }
#endif
    T buf[4 * VL];
    for (int j = 0; j < 4; ++j) VSTORE(buf + j * VL, r[j]);
    T *y = (T *)a->y + i * a->ldr;
    for (int64_t l = 0; l < nl; ++l)
        for (int j = 0; j < a->ncols; ++j) y[(o + l) * a->ldc + j * a->ldw] = buf[j * VL + l];
}

static void KFN(wino_out4_)(const fc_wino_out_args *a)
{
    const V c2 = VSET1((T)2), c4 = VSET1((T)4), c8 = VSET1((T)8), z = VZERO();
    const T *m = (const T *)a->m, *bias = (const T *)a->bias;
    const int64_t ldxi = a->ldxi, noc = a->noc;
    const int kind = a->act ? a->act->kind : FC_ACT_IDENTITY;
    const int nrows = a->nrows;
    for (int64_t o = 0; o < noc; o += VL) {
        V t[4][6];
        for (int k = 0; k < 6; ++k) {   /* down column k */
            const T *p = m + k * ldxi + o;
            const V m0 = VLOAD(p), m1 = VLOAD(p + 6 * ldxi), m2 = VLOAD(p + 12 * ldxi);
            const V m3 = VLOAD(p + 18 * ldxi), m4 = VLOAD(p + 24 * ldxi), m5 = VLOAD(p + 30 * ldxi);
            WG_AT(m0, m1, m2, m3, m4, m5, t[0][k], t[1][k], t[2][k], t[3][k]);
        }
        const V b = bias ? VLOAD(bias + o) : z;
        const int64_t nl = noc - o < VL ? noc - o : VL;
        if (kind == FC_ACT_IDENTITY || kind == FC_ACT_RELU) {
            for (int i = 0; i < nrows; ++i) {   /* along row i, stored at once */
                V r[4];
                WG_AT(t[i][0], t[i][1], t[i][2], t[i][3], t[i][4], t[i][5], r[0], r[1], r[2], r[3]);
                for (int j = 0; j < 4; ++j) r[j] = VADD(r[j], b);
                if (kind == FC_ACT_RELU)
                    for (int j = 0; j < 4; ++j) r[j] = VRELU(r[j], z);
                KFN(wino_store_row_)(a, o, nl, i, r);
            }
        } else {
            /* the project's activation loops on the tile's rows while they are in L1 */
            T buf[16 * VL];
            for (int i = 0; i < nrows; ++i) {
                V r[4];
                WG_AT(t[i][0], t[i][1], t[i][2], t[i][3], t[i][4], t[i][5], r[0], r[1], r[2], r[3]);
                for (int j = 0; j < 4; ++j) VSTORE(buf + (4 * i + j) * VL, VADD(r[j], b));
            }
            ACT_SERIAL(buf, buf, (size_t)(4 * nrows * VL), a->act);
            for (int i = 0; i < nrows; ++i) {
                V r[4];
                for (int j = 0; j < 4; ++j) r[j] = VLOAD(buf + (4 * i + j) * VL);
                KFN(wino_store_row_)(a, o, nl, i, r);
            }
        }
    }
}

static void KFN(wino_out2_)(const fc_wino_out_args *a)
{
    const V z = VZERO();
    const T *m = (const T *)a->m, *bias = (const T *)a->bias;
    const int64_t ldxi = a->ldxi, noc = a->noc;
    const int kind = a->act ? a->act->kind : FC_ACT_IDENTITY;
    const int nrows = a->nrows;
    for (int64_t o = 0; o < noc; o += VL) {
        V t[2][4], r[2][4];
        for (int k = 0; k < 4; ++k) {   /* down column k */
            const T *p = m + k * ldxi + o;
            WG_AT2(VLOAD(p), VLOAD(p + 4 * ldxi), VLOAD(p + 8 * ldxi), VLOAD(p + 12 * ldxi),
                   t[0][k], t[1][k]);
        }
        const V b = bias ? VLOAD(bias + o) : z;
        const int64_t nl = noc - o < VL ? noc - o : VL;
        for (int i = 0; i < 2; ++i) {   /* along row i */
            WG_AT2(t[i][0], t[i][1], t[i][2], t[i][3], r[i][0], r[i][1]);
            r[i][0] = VADD(r[i][0], b);
            r[i][1] = VADD(r[i][1], b);
            r[i][2] = r[i][3] = z;
        }
        if (kind == FC_ACT_RELU)
            for (int i = 0; i < 2; ++i)
                for (int j = 0; j < 2; ++j) r[i][j] = VRELU(r[i][j], z);
        else if (kind != FC_ACT_IDENTITY) {   /* the project's activation loops, in L1 */
            T buf[4 * VL];
            for (int i = 0; i < 2; ++i)
                for (int j = 0; j < 2; ++j) VSTORE(buf + (2 * i + j) * VL, r[i][j]);
            ACT_SERIAL(buf, buf, (size_t)(2 * nrows * VL), a->act);
            for (int i = 0; i < 2; ++i)
                for (int j = 0; j < 2; ++j) r[i][j] = VLOAD(buf + (2 * i + j) * VL);
        }
        for (int i = 0; i < nrows; ++i) KFN(wino_store_row_)(a, o, nl, i, r[i]);
    }
}

#ifdef WG_NV
/* m[t][o] (+)= sum_k v[t][k] u[k][o]: NT (<= 6) tiles broadcast x NV vectors
 * of output channels, the k of this call in the accumulators (started from m
 * when add: the same sequence of FMAs as one call over all k). */
static inline __attribute__((always_inline)) void
KFN(wino_tile_)(const T *v, int64_t ldv, const T *u, int64_t ldu, int64_t k, T *m,
                int64_t ldm, int add, const int NT, const int NV)
{
    V acc[6][WG_NV];
#pragma GCC unroll 6
    for (int j = 0; j < NT; ++j)
#pragma GCC unroll 4
        for (int b = 0; b < NV; ++b) acc[j][b] = add ? VLOAD(m + j * ldm + b * VL) : VZERO();
    const T *v0 = v, *v1 = v + ldv, *v2 = v + 2 * ldv, *v3 = v + 3 * ldv;
    const T *v4 = v + 4 * ldv, *v5 = v + 5 * ldv;
#pragma GCC unroll 2
    for (int64_t kk = 0; kk < k; ++kk) {
        V w[WG_NV];
#pragma GCC unroll 4
        for (int b = 0; b < NV; ++b) w[b] = VLOAD(u + kk * ldu + b * VL);
#define WG_ROW(J, P)                                                           \
        if (NT > J) {                                                          \
            const V x_ = VSET1(P[kk]);                                         \
            _Pragma("GCC unroll 4")                                            \
            for (int b = 0; b < NV; ++b) acc[J][b] = VFMA(x_, w[b], acc[J][b]); \
        }
        WG_ROW(0, v0) WG_ROW(1, v1) WG_ROW(2, v2) WG_ROW(3, v3) WG_ROW(4, v4) WG_ROW(5, v5)
#undef WG_ROW
    }
#pragma GCC unroll 6
    for (int j = 0; j < NT; ++j)
#pragma GCC unroll 4
        for (int b = 0; b < NV; ++b) VSTORE(m + j * ldm + b * VL, acc[j][b]);
}

#define WG_CASE_NT(NT)                                                         \
    case NT:                                                                   \
        switch (nv) {                                                          \
        WG_CASE_NV(NT, 1) WG_CASE_NV(NT, 2) WG_CASE_NV3(NT) WG_CASE_NV4(NT)   \
        default: break;                                                        \
        }                                                                      \
        break;
#define WG_CASE_NV(NT, NV)                                                     \
    case NV: KFN(wino_tile_)(v, ldv, u + o, ldu, k, m + o, ldm, add, NT, NV); break;
#if WG_NV >= 4
#define WG_CASE_NV3(NT) WG_CASE_NV(NT, 3)
#define WG_CASE_NV4(NT) WG_CASE_NV(NT, 4)
#else
#define WG_CASE_NV3(NT)
#define WG_CASE_NV4(NT)
#endif

static void KFN(wino_gemm_)(const T *v, int64_t ldv, int nt, const T *u, int64_t ldu,
                            int64_t no, int64_t k, T *m, int64_t ldm, int add)
{
    for (int64_t o = 0; o < no; o += WG_NV * VL) {
        const int nv = (int)((no - o) / VL < WG_NV ? (no - o) / VL : WG_NV);
        switch (nt) {
        WG_CASE_NT(1) WG_CASE_NT(2) WG_CASE_NT(3) WG_CASE_NT(4) WG_CASE_NT(5) WG_CASE_NT(6)
        default: break;
        }
    }
}
#undef WG_CASE_NT
#undef WG_CASE_NV
#undef WG_CASE_NV3
#undef WG_CASE_NV4
#endif

#undef WG_BT
#undef WG_AT
#undef WG_BT2
#undef WG_AT2
