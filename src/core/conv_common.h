/* Index arithmetic shared by the direct and im2col kernels. */
#ifndef FASTCONV_CONV_COMMON_H
#define FASTCONV_CONV_COMMON_H

#include <stdint.h>
#include <string.h>

#include "fastconv.h"

static inline int64_t fc_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* A hint to fetch the line at p for writing (no-op where the compiler has no builtin). */
#if defined(__GNUC__) || defined(__clang__)
#define FC_PREFETCH_W(p) __builtin_prefetch((p), 1, 2)
#else
#define FC_PREFETCH_W(p) ((void)(p))
#endif

static inline int64_t fc_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t fc_max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* The output columns [*lo, *hi) of [0, w_out) whose tap at input offset
 * `off` (= kw * dilation - pad_left) lands inside the row: 0 <= o*stride + off < w_in.
 * Computing the range once per tap keeps every inner loop free of bounds tests. */
static inline void fc_valid_cols(int64_t off, int64_t stride, int64_t w_in, int64_t w_out,
                                 int64_t *lo, int64_t *hi)
{
    int64_t l = -fc_floor_div(off, stride);              /* ceil(-off / stride) */
    int64_t h = fc_floor_div(w_in - 1 - off, stride) + 1;
    l = fc_min64(fc_max64(l, 0), w_out);   /* a tap left of every window: empty range */
    h = fc_min64(h, w_out);
    *lo = l;
    *hi = h > l ? h : l;
}

/* Whether some output row has a kernel row wholly in the top or bottom padding
 * (kernels that skip such rows must still honour inf/NaN weights there). */
static inline int fc_rows_padded(const fc_conv_desc *d)
{
    return d->pad_top > 0
           || (d->h_out - 1) * d->stride_h - d->pad_top + (d->kh - 1) * d->dil_h >= d->h_in;
}

/* No inf or NaN among w[0..n): w - w is 0 for finite values, NaN otherwise.
 * Skipping a tap that reads only padding is exact just when this holds. */
static inline int fc_all_finite_f32(const float *w, int64_t n)
{
    int finite = 1;
    for (int64_t i = 0; i < n; ++i) finite &= w[i] - w[i] == 0.0f;
    return finite;
}

/* The same test on a value's bits, for lane-wise loops the compiler
 * vectorises (integer OR, where a float sum of v - v is a reduction -O3 must
 * not reorder, so it stayed scalar): the exponent field plus one unit of it
 * carries into the top bit just when the field is all ones (inf, NaN).  OR
 * the results over a run: the run is finite iff FC_BITS_TOP stays clear. */
typedef uint32_t fc_bits_f32;
typedef uint64_t fc_bits_f64;
#define FC_BITS_TOP_f32 ((fc_bits_f32)1 << 31)
#define FC_BITS_TOP_f64 ((fc_bits_f64)1 << 63)
/* bad[i] |= the bits' test of v[i], i < n <= 64 bytes of values (a
 * compile-time n: one vector or a few). */
static inline void fc_nonfinite_or_f32(fc_bits_f32 *bad, const float *v, int n)
{
    fc_bits_f32 u[16];
    memcpy(u, v, (size_t)n * sizeof *u);
    for (int i = 0; i < n; ++i) bad[i] |= (u[i] & 0x7f800000u) + 0x00800000u;
}

static inline void fc_nonfinite_or_f64(fc_bits_f64 *bad, const double *v, int n)
{
    fc_bits_f64 u[8];
    memcpy(u, v, (size_t)n * sizeof *u);
    for (int i = 0; i < n; ++i)
        bad[i] |= (u[i] & 0x7ff0000000000000ull) + 0x0010000000000000ull;
}

static inline int fc_all_finite_f64(const double *w, int64_t n)
{
    int finite = 1;
    for (int64_t i = 0; i < n; ++i) finite &= w[i] - w[i] == 0.0;
    return finite;
}

#endif
