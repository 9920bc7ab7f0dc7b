/*
 * exp(y) for y <= 0 and sigmoid(x), written once over a vector width:
 * activation_avx2.h includes it for 8 floats (__m256), activation_avx512.c
 * for 16 (__m512).  Both widths run the same operations in the same order,
 * so they give the same bits for every element.
 *
 * The includer defines: VF (the vector type), VM (the type of a comparison
 * result), VNAME(name) (the function name for this width), VSET1(c), VADD,
 * VSUB, VMUL, VDIV, VMAX(a, b), VFMA(a, b, c) = a * b + c,
 * VFNMA(a, b, c) = c - a * b, VNEG_ABS(x) = x with its sign bit set,
 * VPOW2_BITS(t, k) = the float whose bits are (bits(t) << 23) + k,
 * VCMP(a, b, pred) with a _CMP_* predicate, VKEEP(m, v) = v where m else +0,
 * VSET_WHERE(v, m, w) = w where m else v.
 */

/* exp(y) for y <= 0 (or NaN), denormal results included, with a short
 * dependency chain and few FMA-pipe operations: what limits sigmoid and silu
 * is latency (the out-of-order window holds only a few of these chains) and
 * the FMA pipes they share with the convolution, not the operation count.
 * n = round(y / ln 2) by the 1.5 * 2^23 trick (n also lands in the low bits
 * of t, no conversion); exp(r) = 1 + r + r^2 q(r), q of degree 4 fitted for
 * this file (relative error 3.6e-9 on |r| <= ln2/2), evaluated by Estrin's
 * scheme; one scaling by 2^(n+64) (normal for every n >= -150, so exact)
 * and the final multiplication by 2^-64 is the only rounding, gradual
 * underflow included. */
static inline VF VNAME(exp_nonpos)(VF y)
{
    y = VMAX(VSET1(-104.0f), y);   /* NaN kept */
    const VF magic = VSET1(12582912.0f);   /* 1.5 * 2^23 */
    const VF t = VFMA(y, VSET1(1.44269504088896341f), magic);
    const VF n = VSUB(t, magic);
    VF r = VFNMA(n, VSET1(0.693145751953125f), y);
    r = VFNMA(n, VSET1(1.42860682030941723e-6f), r);
    const VF r2 = VMUL(r, r);
    const VF q0 = VFMA(r, VSET1(0.16666518154529153), VSET1(0.49999988585202443));
    const VF q1 = VFMA(r, VSET1(0.00836895347516663), VSET1(0.0416695326856281));
    const VF q = VFMA(VMUL(r2, r2), VSET1(0.001375163286692962), VFMA(r2, q1, q0));
    const VF e = VADD(VFMA(r2, q, r), VSET1(1.0f));
    /* t's bits are 0x4B400000 + n: shifted by 23 only n << 23 is left */
    return VMUL(VMUL(e, VPOW2_BITS(t, (127 + 64) << 23)), VSET1(0x1p-64f));
}

/* sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) below, e = exp(-|x|):
 * no overflow, and the negative tail keeps its denormals down to where
 * 1 + exp(-x) overflows in float, below which the result is 0 (as torch's and
 * the scalar 1 / (1 + exp(-x)) give). */
static inline VF VNAME(sigmoid)(VF x)
{
    const VF e = VNAME(exp_nonpos)(VNEG_ABS(x));   /* exp(-|x|) */
    const VM tail = VCMP(x, VSET1(-88.72283935546875f), _CMP_NLE_UQ);
    const VM pos = VCMP(x, VSET1(0.0f), _CMP_GE_OQ);
    return VDIV(VSET_WHERE(VKEEP(tail, e), pos, VSET1(1.0f)), VADD(e, VSET1(1.0f)));
}
