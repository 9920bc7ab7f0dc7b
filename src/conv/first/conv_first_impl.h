/* The first-layer kernel for one float type and instruction set (included by
 * conv_first_avx2.c and conv_first_avx512.c with T, SFX, V, VL, the vector
 * macros, FC_FIRST_ENTRY (the entry's name before the type suffix) and, for
 * float32, FC_FIRST_F32 defined).  See conv_first.h. */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)
#define FOB ((int64_t)(64 / sizeof(T)))   /* output channels of a packed B block */
#ifndef FIRST_OC
#define FIRST_OC 4                          /* output channels of a register tile */
#endif

typedef struct {
    const T *xp;            /* phase buffer of the image */
    const int64_t *off;     /* [nt] offset of each tap (kh, kw, c order) from a row base */
    int64_t nt;             /* taps */
    int64_t rs;             /* elements between padded rows */
    const T *wb;            /* packed B weights */
    const T *bias;          /* or NULL */
    T *y;                   /* image's output */
    int64_t c_out, h_out, w_out, sh, nvec;
    const fc_activation *act;
} FN(fjob_);


/* FIRST_OC output channels (noc valid) x N vectors from column vector v0
 * of output row oh; last: the last vector holds only `tail` valid columns. */
static inline __attribute__((always_inline)) void
FN(first_tile_)(const FN(fjob_) *j, const T *xrow, const T *w, const T *bias4, T *y, int noc,
                int tail, const int N)
{
    V c[FIRST_OC][3];
#pragma GCC unroll 8
    for (int o = 0; o < FIRST_OC; ++o) {
        const V b = VSET1(bias4[o]);
#pragma GCC unroll 3
        for (int v = 0; v < N; ++v) c[o][v] = b;
    }
    const int64_t *off = j->off;
    const int64_t nt = j->nt;
#pragma GCC unroll 2
    for (int64_t t = 0; t < nt; ++t) {
        const T *xr = xrow + off[t];
        V xv[3];
#pragma GCC unroll 3
        for (int v = 0; v < N; ++v) xv[v] = VLOAD(xr + v * VL);
#pragma GCC unroll 8
        for (int o = 0; o < FIRST_OC; ++o) {
            const V wv = VBCAST(w + o);
#pragma GCC unroll 3
            for (int v = 0; v < N; ++v) c[o][v] = VFMA(wv, xv[v], c[o][v]);
        }
        w += FOB;
    }
    if (j->act->kind == FC_ACT_RELU) {   /* else identity (fc_act_in_tile, conv_kern.h) */
        const V z = VSET1((T)0);
#pragma GCC unroll 8
        for (int o = 0; o < FIRST_OC; ++o)
#pragma GCC unroll 3
            for (int v = 0; v < N; ++v) c[o][v] = VRELU(c[o][v], z);
    }
    const int64_t ldy = j->h_out * j->w_out;
    if (noc == FIRST_OC && tail == VL) {
#pragma GCC unroll 8
        for (int o = 0; o < FIRST_OC; ++o)
#pragma GCC unroll 3
            for (int v = 0; v < N; ++v) VSTORE(y + o * ldy + v * VL, c[o][v]);
        return;
    }
    /* partial tile: through memory (runtime indices on c would keep the
     * accumulators out of registers in the loop above) */
    _Alignas(64) T buf[FIRST_OC][3][VL];
#pragma GCC unroll 8
    for (int o = 0; o < FIRST_OC; ++o)
#pragma GCC unroll 3
        for (int v = 0; v < N; ++v) VSTORE(buf[o][v], c[o][v]);
    for (int o = 0; o < noc; ++o) {
        for (int v = 0; v < N - 1; ++v) VSTORE(y + o * ldy + v * VL, VLOAD(buf[o][v]));
        T *yl = y + o * ldy + (N - 1) * VL;
        for (int i = 0; i < tail; ++i) yl[i] = buf[o][N - 1][i];
    }
}

/* Output row oh, all channels. */
static void FN(first_row_)(const FN(fjob_) *j, int64_t oh, int64_t ohb)
{
    const T *xrow = j->xp + ohb * j->sh * j->rs;   /* ohb: row within the band buffer */
    const int64_t nvec = j->nvec, nt = j->nt;
    const int last_tail = (int)(j->w_out - (nvec - 1) * VL);
    const int64_t nob = (j->c_out + FOB - 1) / FOB;
    _Alignas(64) T bias4[FIRST_OC];
    for (int64_t b = 0; b < nob; ++b) {
        for (int64_t m = 0; m < FOB; m += FIRST_OC) {
            const int64_t oc0 = b * FOB + m;
            if (oc0 >= j->c_out) break;
            const int noc = (int)fc_min64(FIRST_OC, j->c_out - oc0);
            for (int o = 0; o < FIRST_OC; ++o) bias4[o] = (j->bias && o < noc) ? j->bias[oc0 + o] : (T)0;
            const T *w = j->wb + b * nt * FOB + m;
            T *y = j->y + (oc0 * j->h_out + oh) * j->w_out;
            int64_t v = 0;
            while (v < nvec) {
                const int64_t rem = nvec - v;
                const int n = rem == 4 ? 2 : (int)fc_min64(3, rem);
                const int tail = v + n == nvec ? last_tail : VL;
                if (n == 3) FN(first_tile_)(j, xrow + v * VL, w, bias4, y + v * VL, noc, tail, 3);
                else if (n == 2) FN(first_tile_)(j, xrow + v * VL, w, bias4, y + v * VL, noc, tail, 2);
                else FN(first_tile_)(j, xrow + v * VL, w, bias4, y + v * VL, noc, tail, 1);
                v += n;
            }
        }
    }
}

/* Padded row r (all phases) of channel c of image x0 into dst. */
static void FN(first_phase_row_)(const fc_conv_desc *d, const T *x0, int64_t c, int64_t r,
                                 int64_t J, T *dst)
{
    const int64_t s = d->stride_w, ih = r - d->pad_top, W = d->w_in, pl = d->pad_left;
    if (ih < 0 || ih >= d->h_in) {
        memset(dst, 0, (size_t)(s * J) * sizeof(T));
        return;
    }
    const T *src = x0 + (c * d->h_in + ih) * W;
    for (int64_t f = 0; f < s; ++f) {
        T *o = dst + f * J;
        /* column q = s * j + f - pl of the row: inside for j in [lo, hi) */
        int64_t lo = 0, hi = J;
        while (lo < J && s * lo + f - pl < 0) ++lo;
        while (hi > lo && s * (hi - 1) + f - pl >= W) --hi;
        for (int64_t i = 0; i < lo; ++i) o[i] = (T)0;
        const T *sp = src + f - pl;
        if (s == 1) {
            memcpy(o + lo, sp + lo, (size_t)(hi - lo) * sizeof(T));
        } else if (s == 2) {
            int64_t i = lo;
#ifdef FC_FIRST_F32   /* 256-bit deinterleave (AVX2; AVX-512 has it too) */
            for (; i + 8 <= hi && 2 * i + 16 + f - pl <= W; i += 8) {
                const __m256 a = _mm256_loadu_ps(sp + 2 * i), b = _mm256_loadu_ps(sp + 2 * i + 8);
                const __m256 e = _mm256_shuffle_ps(a, b, 0x88);   /* a0 a2 b0 b2 | a4 a6 b4 b6 */
                _mm256_storeu_ps(o + i, _mm256_castpd_ps(_mm256_permute4x64_pd(
                                            _mm256_castps_pd(e), 0xD8)));
            }
#endif
            for (; i < hi; ++i) o[i] = sp[2 * i];
        } else {
            for (int64_t i = lo; i < hi; ++i) o[i] = sp[s * i];
        }
        for (int64_t i = hi; i < J; ++i) o[i] = (T)0;
    }
}

int CAT(FC_FIRST_ENTRY, SFX)(const fc_conv_desc *d, const T *x, const struct fc_packed *pk,
                                   const T *bias, T *y, const fc_activation *post, void *ws)
{
    static const fc_activation ident = {FC_ACT_IDENTITY, 0.0, 0.0};
    (void)ws;   /* per-thread band buffers, allocated here (conv_first.h) */
    if (!post) post = &ident;
    if (!pk || pk->elem != sizeof(T) || d->groups != 1 || pk->kh != d->kh || pk->kw != d->kw
        || pk->cin_g != d->c_in || pk->c_out != d->c_out)
        return FC_EINVAL;
    const int64_t C = d->c_in, KH = d->kh, KW = d->kw, s = d->stride_w;
    const int64_t nvec = (d->w_out + VL - 1) / VL;
    const int64_t nt = KH * KW * C;
    const double flops = 2.0 * (double)(d->c_out * d->h_out * d->w_out) * (double)nt;
    int nthr = 1;
#ifdef _OPENMP
    const int par = flops > FC_FIRST_PARALLEL_MIN_FLOPS && omp_get_max_threads() > 1;
    if (par) nthr = omp_get_max_threads();
#else
    (void)flops;
#endif
    /* bands of br output rows: each thread copies the padded input rows of its
     * band into its own phase buffer, then computes the band (no barrier
     * between the copy and the FMAs: a descheduled thread holds one band) */
    int64_t br = fc_min64(16, d->h_out);
    while (br > 2 && (d->h_out + br - 1) / br < 4 * nthr) br /= 2;
    const int64_t nbands = (d->h_out + br - 1) / br;
    /* phase row length: the last vector's loads at the largest tap offset */
    const int64_t J = nvec * VL + ((KW - 1) * d->dil_w) / s;
    const int64_t rs = s * J;
    const int64_t Hb = (br - 1) * d->stride_h + (KH - 1) * d->dil_h + 1;
    const int64_t plane = Hb * rs;
    int64_t *off = (int64_t *)malloc((size_t)nt * sizeof(int64_t));
    if (!off) return FC_ENOMEM;
    for (int64_t kh = 0; kh < KH; ++kh)
        for (int64_t kw = 0; kw < KW; ++kw)
            for (int64_t c = 0; c < C; ++c) {
                const int64_t q = kw * d->dil_w;
                off[(kh * KW + kw) * C + c] = c * plane + kh * d->dil_h * rs + (q % s) * J + q / s;
            }
    FN(fjob_) jb;
    jb.off = off; jb.nt = nt; jb.rs = rs; jb.wb = (const T *)pk->wb;
    jb.bias = bias; jb.c_out = d->c_out; jb.h_out = d->h_out; jb.w_out = d->w_out;
    jb.sh = d->stride_h; jb.nvec = nvec;
    /* relu in the tiles, the other kinds in one pass at the end (conv_kern.h) */
    const int late_act = !fc_act_in_tile(post);
    jb.act = late_act ? &ident : post;
    const int64_t chw = C * d->h_in * d->w_in, kchw = d->c_out * d->h_out * d->w_out;
    const int64_t nitems = d->n * nbands;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel if (par) reduction(| : failed)
#endif
    {
        T *xp = (T *)fc_alloc64((size_t)(C * plane + VL) * sizeof(T));
        if (!xp) failed = 1;
        FN(fjob_) j = jb;
        j.xp = xp;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t it = 0; it < nitems; ++it) {
            if (!xp) continue;
            const int64_t n = it / nbands, oh0 = (it % nbands) * br;
            const int64_t oh1 = fc_min64(d->h_out, oh0 + br);
            /* padded rows from oh0 * stride_h: Hb of them (zeros past the input) */
            for (int64_t c = 0; c < C; ++c)
                for (int64_t r = 0; r < Hb; ++r)
                    FN(first_phase_row_)(d, x + n * chw, c, oh0 * d->stride_h + r, J,
                                         xp + c * plane + r * rs);
            j.y = y + n * kchw;
            for (int64_t oh = oh0; oh < oh1; ++oh)
                FN(first_row_)(&j, oh, oh - oh0);
        }   /* (the worksharing loop's barrier: every row is written) */
        if (late_act) FN(fc_activate_team_)(y, y, (size_t)(d->n * kchw), post);
        fc_free64(xp);
    }
    free(off);
    return failed ? FC_ENOMEM : FC_OK;
}

#undef FOB
#undef FIRST_OC
#undef FN
#undef CAT
#undef CAT_
