/*
 * Winograd F(m x m, 3x3) convolution, m = 4 or 2: the driver, the weight
 * transform, the tile-size plan and the portable kernels (the AVX2 and
 * AVX-512 ones are in winograd_avx2.c and winograd_avx512.c, chosen to follow
 * the direct kernels' set, dispatch.c).  One driver for both tile sizes: m,
 * the patch size m + 2 and the NXI = (m + 2)^2 transformed positions are
 * fields of the plan; the transforms are the kernel set's for that m.
 *
 * The output is cut into m x m tiles (the last row and column of tiles
 * partial), each computed from an (m+2) x (m+2) input patch.  The tiles of all images
 * are numbered in one sequence and cut into blocks of TB tiles; a work item
 * is (group, block, block of output channels) and runs on one thread:
 *  1. gather: for each tile row the block touches, its m + 2 input rows are
 *     copied channels-last into a small per-thread buffer (zeros for the
 *     padding, the pre-activation applied once per copied value);
 *  2. input transform: each tile's NXI transformed values per channel go to
 *     V[xi][t][ic];
 *  3. NXI GEMMs M[xi] (TB x oc) = V[xi] (TB x cin) U[xi] (cin x oc), the
 *     accumulators over every input channel in registers (no partial sums);
 *  4. output transform per tile, bias and activation added, one store.
 * V and M of a block are sized to stay in the per-core L2 (the budget below),
 * so the GEMMs read V from cache; TB is as large as that allows because
 * every U[xi] is streamed once per block (for 128+ channels U no longer fits
 * in L2: bigger blocks mean fewer passes over it).  The blocks are as many
 * as a multiple of the thread count so that the threads get equal shares.
 * A thread that gets the next output-channel block of the same tile block
 * keeps its V (schedule(static) hands each thread consecutive items).
 */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/conv_kern.h"
#include "conv/winograd/winograd.h"
#include "conv/winograd/winograd_kern.h"

struct fc_wino_weight {
    size_t elem;                  /* 4 or 8 */
    int tile, nxi;                /* m (4 or 2) and (m + 2)^2 */
    int64_t groups, cin_g, cout_g, ocp;
    /* elements between panels and between xi planes: a vector more than
     * packed, so that the NXI planes (and the panels) written side by side by
     * the transform are not a power of two apart (they were 1 MiB apart for
     * 512 channels, every store in one L2 set: 0.8 GB/s) */
    int64_t panel_stride, xi_stride;
    void *u;                      /* [group][xi][panel][ic][pw], see winograd_kern.h */
};

static int64_t wino_round(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

static size_t wino_weight_elems(const fc_wino_weight *p)
{
    return (size_t)(p->groups * p->nxi * p->xi_stride);
}

static void wino_weight_init(fc_wino_weight *p, const fc_conv_desc *d, size_t elem, int tile)
{
    p->elem = elem;
    p->tile = tile;
    p->nxi = (tile + 2) * (tile + 2);
    p->groups = d->groups;
    p->cin_g = d->c_in / d->groups;
    p->cout_g = d->c_out / d->groups;
    p->ocp = wino_round(p->cout_g, 64 / (int64_t)elem);
    const int64_t E = 64 / (int64_t)elem, P = 256 / (int64_t)elem;
    const int64_t npanels = (p->ocp + P - 1) / P;
    p->panel_stride = P * p->cin_g + E;
    p->xi_stride = (npanels - 1) * p->panel_stride + (p->ocp - (npanels - 1) * P) * p->cin_g + E;
    p->u = NULL;
}

int fc_winograd_supported(const fc_conv_desc *d)
{
    return d->kh == 3 && d->kw == 3 && d->stride_h == 1 && d->stride_w == 1 && d->dil_h == 1
           && d->dil_w == 1 && d->groups > 0;
}

void fc_winograd_free(fc_wino_weight *u)
{
    if (!u) return;
    fc_free64(u->u);
    free(u);
}

size_t fc_winograd_weight_bytes(const fc_wino_weight *u)
{
    return wino_weight_elems(u) * u->elem;
}

int fc_winograd_weight_tile(const fc_wino_weight *u) { return u->tile; }

/* One line of G g for F(4x4) (G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
 * 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]), in double. */
#define WINO_G_LINE(g0, g1, g2, o0, o1, o2, o3, o4, o5)                        \
    do {                                                                       \
        const double a_ = (g0) + (g2), b_ = (g0) / 24 + (g2) / 6;              \
        (o0) = (g0) / 4;                                                       \
        (o1) = -(a_ + (g1)) / 6;                                               \
        (o2) = -(a_ - (g1)) / 6;                                               \
        (o3) = b_ + (g1) / 12;                                                 \
        (o4) = b_ - (g1) / 12;                                                 \
        (o5) = (g2);                                                           \
    } while (0)

/* One line of G g for F(2x2) (G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]). */
#define WINO_G2_LINE(g0, g1, g2, o0, o1, o2, o3)                               \
    do {                                                                       \
        const double a_ = ((g0) + (g2)) / 2;                                   \
        (o0) = (g0);                                                           \
        (o1) = a_ + (g1) / 2;                                                  \
        (o2) = a_ - (g1) / 2;                                                  \
        (o3) = (g2);                                                           \
    } while (0)

/* ---- the plan ------------------------------------------------------------ */

/* Bytes of V + M per thread the tile block is sized for: most of the
 * 1.25 MB L2 of the Ice Lake server it was tuned on, with room for the
 * weights' panel and the gathered rows. */
#define WINO_BUDGET_DEFAULT ((size_t)1024 * 1024)
#define WINO_TB_MAX 120

static int wino_tune_tb = 0, wino_tune_tile = 0, wino_tune_kc = 0;
static size_t wino_tune_budget = 0;

void fc_winograd_tune_kc(int kc) { wino_tune_kc = kc; }

void fc_winograd_tune(int tiles_per_block, size_t budget_bytes, int tile)
{
    wino_tune_tb = tiles_per_block > 0 ? tiles_per_block : 0;
    wino_tune_budget = budget_bytes;
    wino_tune_tile = tile == 2 || tile == 4 ? tile : 0;
}

typedef struct {
    const fc_conv_desc *d;
    int m, a, nxi;                /* tile size, patch size m + 2, a^2 */
    int64_t cin, cout, icp, ocp;
    int64_t tiles_h, tiles_w, ntiles;
    int64_t tb, nblocks, ocb, nob;
    int64_t kc;                   /* input channels per GEMM call */
    int threads;
    int64_t stage_lr, stage_elems, thread_elems;
    size_t bias_bytes, workspace;
} wino_plan;

/* Tiles per block for bytes_per_tile of V + M: all nt in one block if they
 * fit the budget, else a multiple of the GEMM's 6 tiles (>= 4). */
static int64_t wino_block_tiles(size_t budget, int64_t bytes_per_tile, int64_t nt)
{
    int64_t tb = (int64_t)(budget / (size_t)bytes_per_tile);
    if (tb > WINO_TB_MAX) tb = WINO_TB_MAX;
    if (tb >= nt) return nt;
    return tb >= 12 ? tb / 6 * 6 : (tb < 4 ? 4 : tb);
}

static void wino_make_plan(wino_plan *pl, const fc_conv_desc *d, size_t elem, int tile)
{
    const int64_t E = 64 / (int64_t)elem, P = 256 / (int64_t)elem;
    pl->d = d;
    pl->m = tile;
    pl->a = tile + 2;
    pl->nxi = pl->a * pl->a;
    const int64_t nxi = pl->nxi;
    pl->cin = d->c_in / d->groups;
    pl->cout = d->c_out / d->groups;
    pl->icp = wino_round(pl->cin, E);
    pl->ocp = wino_round(pl->cout, E);
    pl->tiles_h = (d->h_out + tile - 1) / tile;
    pl->tiles_w = (d->w_out + tile - 1) / tile;
    pl->ntiles = d->n * pl->tiles_h * pl->tiles_w;
#ifdef _OPENMP
    int threads = omp_get_max_threads();
#else
    int threads = 1;
#endif
    pl->threads = threads;
    const size_t budget = wino_tune_budget ? wino_tune_budget : WINO_BUDGET_DEFAULT;
    const int64_t nt = pl->ntiles > 0 ? pl->ntiles : 1;
    pl->ocb = pl->ocp <= 2 * P ? pl->ocp : 2 * P;
    int64_t tb = wino_block_tiles(budget, nxi * (int64_t)elem * (pl->icp + pl->ocb), nt);
    if (pl->ocb > P) {
        /* half the output channels per item if that makes fewer blocks: every
         * block streams all of U (from L3 when U is larger than L2), while
         * the items of one block share its V (consecutive on one thread) */
        const int64_t tb1 = wino_block_tiles(budget, nxi * (int64_t)elem * (pl->icp + P), nt);
        if ((nt + tb1 - 1) / tb1 < (nt + tb - 1) / tb) {
            pl->ocb = P;
            tb = tb1;
        }
    }
    if (wino_tune_tb) tb = wino_tune_tb;
    if (tb > nt) tb = nt;
    int64_t nblocks = (nt + tb - 1) / tb;
    pl->nob = (pl->ocp + pl->ocb - 1) / pl->ocb;
    if (d->groups * nblocks * pl->nob < threads && pl->ocb > P) {
        pl->ocb = P;   /* few tiles: share the output channels among the threads */
        pl->nob = (pl->ocp + P - 1) / P;
    }
    const int64_t per_block = d->groups * pl->nob;
    if (threads > 1 && !wino_tune_tb && (per_block * nblocks) % threads) {
        /* blocks so that the items divide evenly among the threads */
        int64_t want = nblocks;
        while ((per_block * want) % threads && want < nt) ++want;
        tb = (nt + want - 1) / want;
        nblocks = (nt + tb - 1) / tb;
    }
    pl->tb = tb;
    pl->nblocks = nblocks;
    /* Past 128 input channels a panel of U (cin rows of 256 bytes) no longer
     * fits the 48 KB L1 and every 6-tile GEMM call would read it from L2
     * (4 vectors per 24 FMAs: L2's bandwidth, not the FMAs, was the limit on
     * 256 channels): slices of 64 rows (16 KB) then, each read from L2 once
     * for all the block's tiles (1.2-1.25x on 256 -> 256 at 14 x 14, F(2x2)
     * and F(4x4), benchmarks/NOTES.md; 64 and 128 rows measured alike). */
    pl->kc = wino_tune_kc > 0 ? wino_tune_kc
             : (wino_tune_kc < 0 || pl->cin <= 128 ? pl->cin : 64);
    if (pl->kc >= pl->cin) pl->kc = pl->cin > 0 ? pl->cin : 1;
    const int64_t seg = tb < pl->tiles_w ? tb : pl->tiles_w;
    pl->stage_lr = (tile * seg + 2) * pl->cin;
    pl->stage_elems = wino_round(pl->a * pl->stage_lr + E, E);   /* + a vector read past the end */
    pl->thread_elems = pl->stage_elems + nxi * tb * (pl->icp + pl->ocb);
    pl->bias_bytes = (size_t)wino_round(d->groups * pl->ocp * (int64_t)elem, 64);
    pl->workspace = pl->bias_bytes + (size_t)threads * (size_t)pl->thread_elems * elem;
}

size_t fc_winograd_workspace(const fc_conv_desc *d, size_t elem_size, int tile)
{
    if (!fc_winograd_supported(d) || (tile != 0 && tile != 2 && tile != 4)) return 0;
    wino_plan pl;
    wino_make_plan(&pl, d, elem_size, tile ? tile : fc_winograd_choose_tile(d));
    return pl.ntiles && d->c_out ? pl.workspace : 0;
}

/* F(2x2) where it measured faster than F(4x4) (benchmarks/NOTES.md,
 * "Winograd tile size", benchmarks/winograd_tile_grid.py): many channels per
 * group on a small image.  There F(4x4)'s U (4x the weights: 9.4 MB for
 * 256 -> 256) streams from L3 for a handful of tiles, where F(2x2)'s (16/9 the
 * weights) serves 3-4x as many tiles per pass; and a 14 x 14 output is 3.5
 * tiles of 4 (31 % of F(4x4)'s work on padding) but 7 whole tiles of 2.  At
 * 28 x 28 and above, or with fewer channels, F(4x4)'s 4x fewer
 * multiplications win (F(2x2)'s: 2.25x).  The measured batches (1-8) did not
 * move the boundary.  Without a spatial size (a pack made before any input)
 * the channels decide: 256 -> 256 and more is F(2x2) (the 14 x 14 and 7 x 7
 * stages of the ResNets). */
int fc_winograd_choose_tile(const fc_conv_desc *d)
{
    if (wino_tune_tile) return wino_tune_tile;
    const int64_t g = d->groups > 0 ? d->groups : 1;
    const int64_t chans = (d->c_in / g) * (d->c_out / g);   /* per group, cin x cout */
    if (d->h_out <= 0 || d->w_out <= 0) return chans >= 256 * 256 ? 2 : 4;
    const int64_t area = d->h_out * d->w_out;
    if (chans >= 256 * 256 && area <= 14 * 14) return 2;
    if (chans >= 128 * 128 && area <= 7 * 7) return 2;
    return 4;
}

/* ---- the portable kernels ------------------------------------------------ */

#define VL 1
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VSET1(c) (c)
#define VZERO() ((T)0)
#define VADD(a, b) ((a) + (b))
#define VSUB(a, b) ((a) - (b))
#define VMUL(a, b) ((a) * (b))
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VFNMA(a, b, c) ((c) - (a) * (b))
#define VRELU(x, z) ((x) < (z) ? (z) : (x))

#define T float
#define V float
#define KFN(name) name##port_f32
#define ACT_SERIAL fc_activate_serial_f32
#include "conv/winograd/winograd_kern_impl.h"
#undef T
#undef V
#undef KFN
#undef ACT_SERIAL

#define T double
#define V double
#define KFN(name) name##port_f64
#define ACT_SERIAL fc_activate_serial_f64
#include "conv/winograd/winograd_kern_impl.h"
#undef T
#undef V
#undef KFN
#undef ACT_SERIAL

/* m[t][o] (+)= sum_k v[t][k] u[k][o]: the o loop vectorises for the baseline ISA. */
#define WINO_GEMM_PORT(T, SFX)                                                 \
    static void wino_gemm_port_##SFX(const T *v, int64_t ldv, int nt, const T *u, \
                                     int64_t ldu, int64_t no, int64_t k, T *m, int64_t ldm, \
                                     int add)                                  \
    {                                                                          \
        for (int t = 0; t < nt; ++t) {                                         \
            T acc[FC_WINO_P(float)];                                           \
            for (int64_t o = 0; o < no; ++o) acc[o] = add ? m[t * ldm + o] : 0; \
            const T *vt = v + t * ldv;                                         \
            for (int64_t kk = 0; kk < k; ++kk) {                               \
                const T xv = vt[kk];                                           \
                const T *ur = u + kk * ldu;                                    \
                for (int64_t o = 0; o < no; ++o) acc[o] += xv * ur[o];         \
            }                                                                  \
            for (int64_t o = 0; o < no; ++o) m[t * ldm + o] = acc[o];          \
        }                                                                      \
    }
WINO_GEMM_PORT(float, f32)
WINO_GEMM_PORT(double, f64)

const fc_wino_kernels fc_wino_portable = FC_WINO_KERNELS("portable", port);

static const fc_wino_kernels *wino_kernels(void)
{
#if defined(__x86_64__) || defined(_M_X64)
    switch (fc_isa_variant(FC_FAM_WINOGRAD)) {
    case FC_ISA_AVX512: return &fc_wino_avx512;
    case FC_ISA_AVX2: return &fc_wino_avx2;
    default: break;
    }
#endif
    return &fc_wino_portable;
}

const char *fc_winograd_kernel_name(void) { return wino_kernels()->name; }

/* ---- the driver, for both float types ------------------------------------- */

#define T float
#define SFX f32
#include "conv/winograd/winograd_drv.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "conv/winograd/winograd_drv.h"
#undef T
#undef SFX
