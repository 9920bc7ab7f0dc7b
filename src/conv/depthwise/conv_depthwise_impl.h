/*
 * Depthwise convolution, the parts shared by the portable and AVX2 kernels
 * (included by conv_depthwise.c for float and double, and by
 * conv_depthwise_avx2.c for float, with T and SFX defined).
 *
 * Work item: one (image, input channel, block of output rows).  The input
 * rows the block needs are copied once into a small buffer, padded with the
 * horizontal zeros and split by column phase (column k of the padded row goes
 * to phase k % stride_w, slot k / stride_w), so that for every stride and
 * dilation each tap of a run of output columns reads a contiguous run of the
 * buffer: no bounds tests, no gathers.  Every output of the channel's
 * multiplier group is then computed from that buffer, activation fused, and
 * written once.  Vertical padding is handled by loop bounds.
 */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

#ifndef FC_DW_GEOM_DEFINED
#define FC_DW_GEOM_DEFINED
/* The buffer geometry and the work split of one call. */
typedef struct {
    int64_t mult;        /* outputs per input channel */
    int64_t L;           /* elements per phase row (covers w_out rounded up to 32 plus taps) */
    int64_t rows_blk;    /* output rows per work item */
    int64_t nblk;        /* row blocks per channel */
    int64_t buf_rows;    /* input rows a block needs at most */
} fc_dw_geom;

static inline int fc_dw_is_depthwise(const fc_conv_desc *d)
{
    return d->groups == d->c_in && d->groups > 0 && d->c_out % d->groups == 0 &&
           d->kh > 0 && d->kw > 0 && d->stride_h > 0 && d->stride_w > 0 &&
           d->dil_h > 0 && d->dil_w > 0 && d->h_out > 0 && d->w_out > 0;
}

static inline fc_dw_geom fc_dw_plan(const fc_conv_desc *d, int nthreads)
{
    fc_dw_geom g;
    const int64_t s = d->stride_w;
    g.mult = d->c_out / d->groups;
    g.L = (d->w_out + 31) / 32 * 32 + ((d->kw - 1) * d->dil_w) / s + 1;
    /* Blocks: enough items for every thread (channels x row blocks), and a
     * buffer that stays within L2 (~32 K elements). */
    const int64_t planes = d->n * d->c_in;
    int64_t nblk = 1;
    if (planes < 4 * (int64_t)nthreads) nblk = (4 * (int64_t)nthreads + planes - 1) / planes;
    int64_t rows = (d->h_out + nblk - 1) / nblk;
    const int64_t cap = (32768 / (s * g.L)) / d->stride_h;
    if (cap >= 1 && rows > cap) rows = cap;
    if (rows < 1) rows = 1;
    g.rows_blk = rows;
    g.nblk = (d->h_out + rows - 1) / rows;
    g.buf_rows = (rows - 1) * d->stride_h + (d->kh - 1) * d->dil_h + 1;
    return g;
}
#endif

/* Fill the buffer with input rows [ih_lo, ih_hi) of one channel plane xc:
 * row r, phase p, slot j holds padded column p + s j (zero outside). */
static void FN(dw_fill_)(const fc_conv_desc *d, const fc_dw_geom *g, const T *xc,
                         int64_t ih_lo, int64_t ih_hi, T *buf)
{
    const int64_t s = d->stride_w, L = g->L, pl = d->pad_left, w_in = d->w_in;
    for (int64_t ih = ih_lo; ih < ih_hi; ++ih) {
        const T *xr = xc + ih * w_in;
        T *br = buf + (ih - ih_lo) * s * L;
        if (s == 1) {
            /* slots [0, pl) and [pl + w_in, L) are zero, the middle is the row */
            const int64_t a = fc_min64(pl, L), b = fc_max64(a, fc_min64(pl + w_in, L));
            for (int64_t j = 0; j < a; ++j) br[j] = 0;
            memcpy(br + a, xr + (a - pl), (size_t)(b - a) * sizeof(T));
            for (int64_t j = b; j < L; ++j) br[j] = 0;
        } else {
            for (int64_t p = 0; p < s; ++p) {
                T *bp = br + p * L;
                for (int64_t j = 0; j < L; ++j) {
                    const int64_t c = p + s * j - pl;
                    bp[j] = (c >= 0 && c < w_in) ? xr[c] : (T)0;
                }
            }
        }
    }
}

#undef FN
#undef CAT
#undef CAT_
