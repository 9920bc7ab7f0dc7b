/*
 * The weight-gradient micro-kernels (grad_weight.c), written once and
 * compiled per instruction set: grad_weight.c (portable, scalar "vectors"),
 * grad_weight_avx2.c, grad_weight_avx512.c.  The includer defines
 *   T, V, VL (lanes), VLOAD, VSTORE, VBCAST(const T *), VFMA(a, b, c) = a*b + c,
 *   VADD, VZERO, GWK_MR (rows of the tile), GWK_NRV (vectors per tile row),
 *   GWK_SFX (the name suffix of the kernel table).
 *
 * One call: the tile C[i][o] (i < mr <= GWK_MR, o < GWK_NRV * VL) of the
 * weight gradient, summed over the positions of `rows` output rows of `cols`
 * positions each:
 *   C[i][o] (+)= sum_q  B_q[i] * A_q[o]
 * A_q = a + q * lda (the derivative-multiplied grad_output, position-major,
 * output channels contiguous), B_q = b + (r / img_rows) * ldimg
 * + (r % img_rows) * ldrow + x * ldx (the padded channels-last input at the
 * tap: the tile's rows are consecutive; `rows` may span several images of
 * img_rows rows each, ldimg apart, whose positions follow each other in A).
 * The tile stays in registers over all the positions; C is written
 * (acc_in = 0) or added to once: a batch of small images is one call, not
 * one load-add-store of C per image (ResNet's 2x2 stage summed 4 positions
 * per store, benchmarks/NOTES.md, training step).
 */
#define GWK_CAT_(a, b) a##b
#define GWK_CAT(a, b) GWK_CAT_(a, b)

static inline __attribute__((always_inline)) void
GWK_CAT(gwk_body_, GWK_SFX)(const int mr, const T *a, int64_t lda, const T *b, int64_t ldx,
                            int64_t ldrow, int64_t rows, int64_t img_rows, int64_t ldimg,
                            int64_t cols, T *c, int64_t ldc, int acc_in)
{
    V acc[GWK_MR][GWK_NRV];
#pragma GCC unroll 16
    for (int i = 0; i < GWK_MR; ++i)
#pragma GCC unroll 8
        for (int v = 0; v < GWK_NRV; ++v) acc[i][v] = VZERO();
    const T *bimg = b;
    for (int64_t r = 0, ri = 0; r < rows; ++r) {
        const T *bq = bimg + ri * ldrow;
        if (++ri == img_rows) {
            ri = 0;
            bimg += ldimg;
        }
        for (int64_t x = 0; x < cols; ++x, a += lda, bq += ldx) {
            V av[GWK_NRV];
#pragma GCC unroll 8
            for (int v = 0; v < GWK_NRV; ++v) av[v] = VLOAD(a + v * VL);
#pragma GCC unroll 16
            for (int i = 0; i < GWK_MR; ++i) {
                if (i < mr) {
                    const V bb = VBCAST(bq + i);
#pragma GCC unroll 8
                    for (int v = 0; v < GWK_NRV; ++v) acc[i][v] = VFMA(bb, av[v], acc[i][v]);
                }
            }
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < GWK_MR; ++i) {
        if (i < mr) {
#pragma GCC unroll 8
            for (int v = 0; v < GWK_NRV; ++v) {
                T *cp = c + (int64_t)i * ldc + v * VL;
                VSTORE(cp, acc_in ? VADD(VLOAD(cp), acc[i][v]) : acc[i][v]);
            }
        }
    }
}

#define GWK_DEF(MRC)                                                                        \
    static void GWK_CAT(GWK_CAT(gwk_, GWK_SFX), _##MRC)(                                    \
        const T *a, int64_t lda, const T *b, int64_t ldx, int64_t ldrow, int64_t rows,     \
        int64_t img_rows, int64_t ldimg, int64_t cols, T *c, int64_t ldc, int acc_in)       \
    {                                                                                       \
        GWK_CAT(gwk_body_, GWK_SFX)(MRC, a, lda, b, ldx, ldrow, rows, img_rows, ldimg, cols, \
                                    c, ldc, acc_in);                                        \
    }

GWK_DEF(1) GWK_DEF(2) GWK_DEF(3) GWK_DEF(4)
#if GWK_MR > 4
GWK_DEF(5) GWK_DEF(6)
#endif
#if GWK_MR > 6
GWK_DEF(7) GWK_DEF(8) GWK_DEF(9) GWK_DEF(10) GWK_DEF(11) GWK_DEF(12)
#endif

/* dst[o * ldd + k] = rows[k][o] for k < nk, o < no (<= 16 each): a block of
 * the OIHW store; an includer may define GWK_TR16 with its own (in
 * registers). */
#ifndef GWK_TR16
static void GWK_CAT(gwk_tr16_, GWK_SFX)(const T *const *rows, T *dst, int64_t ldd, int nk,
                                        int no)
{
    T t[16][16];
    for (int k = 0; k < nk; ++k) memcpy(t[k], rows[k], (size_t)no * sizeof(T));
    for (int o = 0; o < no; ++o)
        for (int k = 0; k < nk; ++k) dst[o * ldd + k] = t[k][o];
}
#define GWK_TR16_FN GWK_CAT(gwk_tr16_, GWK_SFX)
#else
#define GWK_TR16_FN GWK_TR16
#endif

#define GWK_K(MRC) GWK_CAT(GWK_CAT(gwk_, GWK_SFX), _##MRC)
const GWK_CAT(fc_gw_kernels_, GWK_TSFX) GWK_CAT(fc_gw_kernels_, GWK_SFX) = {
    GWK_MR, GWK_NRV * VL, GWK_TR16_FN,
    {NULL, GWK_K(1), GWK_K(2), GWK_K(3), GWK_K(4),
#if GWK_MR > 4
     GWK_K(5), GWK_K(6),
#endif
#if GWK_MR > 6
     GWK_K(7), GWK_K(8), GWK_K(9), GWK_K(10), GWK_K(11), GWK_K(12),
#endif
    }};

#undef GWK_K
#undef GWK_TR16_FN
#undef GWK_DEF
#undef GWK_CAT
#undef GWK_CAT_
