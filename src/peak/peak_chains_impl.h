/*
 * The FMA-throughput probe's body, one definition for every vector width
 * (peak_avx2.c, peak_avx512.c define the names below, then include this):
 * 12 independent chains of FMAs, each kept opaque to the compiler by an
 * empty asm statement (equal chains would otherwise be merged and the FMA
 * count overstated).
 *   PEAK_FN      the function's name        PEAK_V     the vector type
 *   PEAK_SET1    broadcast a float          PEAK_FMADD a * b + c
 *   PEAK_ADD     lane-wise sum              PEAK_LANE0 lane 0 as a float
 *   PEAK_REG(r)  r as an asm operand in a PEAK_V register ("x"(r), "v"(r))
 */
#define FC_OPAQUE6(a, b, c, d, e, f)                                                    \
    __asm__ volatile("" : "+" PEAK_REG(a), "+" PEAK_REG(b), "+" PEAK_REG(c),          \
                     "+" PEAK_REG(d), "+" PEAK_REG(e), "+" PEAK_REG(f))

float PEAK_FN(long iters)
{
    const PEAK_V a = PEAK_SET1(0.999999f), b = PEAK_SET1(1e-7f);
    PEAK_V c0 = PEAK_SET1(1.0f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    PEAK_V c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
    for (long i = 0; i < iters; ++i) {
        c0 = PEAK_FMADD(c0, a, b);   c1 = PEAK_FMADD(c1, a, b);
        c2 = PEAK_FMADD(c2, a, b);   c3 = PEAK_FMADD(c3, a, b);
        c4 = PEAK_FMADD(c4, a, b);   c5 = PEAK_FMADD(c5, a, b);
        c6 = PEAK_FMADD(c6, a, b);   c7 = PEAK_FMADD(c7, a, b);
        c8 = PEAK_FMADD(c8, a, b);   c9 = PEAK_FMADD(c9, a, b);
        c10 = PEAK_FMADD(c10, a, b); c11 = PEAK_FMADD(c11, a, b);
        FC_OPAQUE6(c0, c1, c2, c3, c4, c5);
        FC_OPAQUE6(c6, c7, c8, c9, c10, c11);
    }
    PEAK_V s = PEAK_ADD(PEAK_ADD(PEAK_ADD(c0, c1), PEAK_ADD(c2, c3)),
                        PEAK_ADD(PEAK_ADD(c4, c5), PEAK_ADD(c6, c7)));
    s = PEAK_ADD(s, PEAK_ADD(PEAK_ADD(c8, c9), PEAK_ADD(c10, c11)));
    return PEAK_LANE0(s);
}
#undef FC_OPAQUE6
