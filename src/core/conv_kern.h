/*
 * Internal interface between the direct-convolution driver (conv_direct.c,
 * portable C) and its micro-kernels (portable ones in conv_direct.c, AVX2+FMA
 * ones in conv_direct_avx2.c), chosen at run time by dispatch.c.
 *
 * Two register tiles, both "2 vectors x 6" (12 accumulators of 16 regs):
 *
 *  B  (every convolution): OB output channels (16 f32 / 8 f64, the vector
 *     lanes) x 6 output pixels (broadcast).  Weights packed
 *     [group][oc block][kh][kw][ic][OB]; the 6 pixels are consecutive flat
 *     output indices (they may straddle rows); for each tap the driver gives one
 *     input pointer per pixel, or a pointer to a zero buffer where the tap
 *     falls in the padding, so the FMA loop has no branches.  Taps in the
 *     padding for every pixel are left out of the tile's tap range, and
 *     the tiles leave out an end pixel's FMAs at a tap in the left/right
 *     padding (tapskip, rot below).  The tile is stored
 *     transposed into the NCHW output.
 *
 *  A  (1x1, stride 1, no padding: a GEMM on the NCHW arrays): 6 output
 *     channels (broadcast) x 2 vectors of pixels (16 f32 / 8 f64).  Weights
 *     packed [group][oc block of 6][ic][6].  Stores straight into NCHW rows.
 *
 * Both tiles start from the bias and apply relu (or nothing) to the
 * accumulators before the single store; the other activations run as one
 * pass over the output at the end of the call (fc_act_in_tile).
 */
#ifndef FASTCONV_CONV_KERN_H
#define FASTCONV_CONV_KERN_H

#include <stddef.h>
#include <stdint.h>

#include "fastconv.h"

/* Whether a kernel applies `a` to its accumulators (identity, relu: a max
 * next to the FMAs) or leaves it to one pass over the whole output at the end
 * of its parallel region (fc_activate_team_*): the costly kinds are bound by
 * their own dependency chains, not by memory, and measured faster in one long
 * pass than tile by tile or work item by work item (benchmarks/NOTES.md,
 * perf-E: 20 % on mobilenet_pw with silu on 2 threads). */
static inline int fc_act_in_tile(const fc_activation *a)
{
    return a->kind == FC_ACT_IDENTITY || a->kind == FC_ACT_RELU;
}

#define FC_TB_P 6                      /* pixels of a B tile */
#define FC_OB(T) ((int)(64 / sizeof(T))) /* output channels of a B tile */
#define FC_TA_OC 6                     /* output channels of an A tile */
#define FC_TA_PIX(T) ((int)(64 / sizeof(T))) /* pixels of an A tile */

typedef struct {
    const void *const *ptrs; /* [ntaps][FC_TB_P] input pointers (zero buffer in padding) */
    int64_t ntaps, kc, xs;   /* taps, channels per tap, element stride between channels */
    const void *w;           /* [ntaps][kc][OB] */
    const void *bias;        /* OB values */
    void *y;                 /* output at (oc0, p0) */
    int64_t ldy;             /* elements between output channels (1: NHWC output) */
    int64_t ldp;             /* elements between output pixels (1: NCHW output) */
    int npix, noc;           /* valid pixels (<= tile_p) and channels (<= nb * OB) */
    int nb;                  /* OB-blocks in this tile (<= tile_nb of the table) */
    int64_t wbs;             /* elements between the weights of consecutive blocks */
    const fc_activation *act;
    /* Column padding (NULL and 0 where there is none): tapskip[t]
     * bit 0: pixel 0 reads only padding at tap t, bit 1: pixel npix - 1 does,
     * so its FMAs can go; rot: the pointer columns are the pixels rotated by
     * rot (column j is pixel p0 + (j + rot) % npix), which puts a tile's
     * row start at j = 0 and the previous row's end at j = npix - 1. */
    const unsigned char *tapskip;
    int rot;
} fc_tileB_args;

typedef struct {
    const void *x;           /* x[ic][p0] */
    int64_t ldx;             /* elements between input channels */
    int64_t k;               /* input channels */
    const void *w;           /* [k][6] */
    const void *bias;        /* 6 values */
    void *y;                 /* output at (oc0, p0) */
    int64_t ldy;
    int64_t npix;            /* pixels from p0: tiles of 16 f32 / 8 f64, the last partial */
    int noc;                 /* valid channels (<= 6) */
    const fc_activation *act;
} fc_tileA_args;

typedef struct {
    const char *name;
    int tile_p;              /* max pixels of a B tile (the ptrs table's row length) */
    int tile_nb;             /* max OB-blocks of output channels in a B tile */
    /* B tiles: tile_p pixels x tile_nb blocks of OB output channels, weights in
     * layout B; A tiles: FC_TA_OC output channels x pixel vectors, layout A
     * (1x1 stride-1 NCHW: the driver's MODE_A) */
    void (*tileB_f32)(const fc_tileB_args *);
    void (*tileB_f64)(const fc_tileB_args *);
    void (*tileA_f32)(const fc_tileA_args *);
    void (*tileA_f64)(const fc_tileA_args *);
    /* dst[w][c] = src[c * cstride + w] for c < C, w < W (NCHW row -> NHWC row) */
    void (*nhwc_f32)(const float *src, int64_t C, int64_t cstride, int64_t W, float *dst);
    void (*nhwc_f64)(const double *src, int64_t C, int64_t cstride, int64_t W, double *dst);
    /* One OB-block of layout B from dense OIHW rows (fc_pack_block_*, conv_direct_impl.h):
     * dst[(t * cin + ic) * OB + o] = src[o * rs + ic * taps + t] for o < nrows, 0 for
     * nrows <= o < OB (dst 64-byte aligned); returns 1 when every value is finite. */
    int (*packB_f32)(const float *src, int64_t rs, int nrows, int64_t cin, int64_t taps,
                     float *dst);
    int (*packB_f64)(const double *src, int64_t rs, int nrows, int64_t cin, int64_t taps,
                     double *dst);
    /* n <= FC_LINES_MAX 64-byte lines of layout B from o-contiguous (HWIO) rows
     * (pack_b_rows_, conv_direct_impl.h): dst[k * OB + o] = src[k][o] for
     * k < n, o < OB (dst 64-byte aligned, src any); returns 1 when every
     * value is finite. */
    int (*linesB_f32)(const float *const *src, int n, float *dst);
    int (*linesB_f64)(const double *const *src, int n, double *dst);
} fc_kernel_table;
#define FC_LINES_MAX 16

/* The table of the ISA level in use (fc_isa_variant(FC_FAM_DIRECT), dispatch.c). */
const fc_kernel_table *fc_kernels(void);

extern const fc_kernel_table fc_kernels_portable; /* conv_direct.c */
#if defined(__x86_64__) || defined(_M_X64)
extern const fc_kernel_table fc_kernels_avx2;     /* conv_direct_avx2.c */
/* conv_direct_avx512.c: the AVX-512 set in use, a copy of one of its two B-tile
 * register blockings (2 x 8 or 4 x 6 zmm, see there), picked for the CPU by
 * dispatch.c when the library is loaded (before any thread can read it). */
extern fc_kernel_table fc_kernels_avx512;
extern const fc_kernel_table fc_kernels_avx512_2x8, fc_kernels_avx512_4x6;
#endif
#define FC_TB_PMAX 16                  /* no table has tile_p above this */

/* Packed weights (opaque in fastconv.h). */
struct fc_packed {
    size_t elem;                       /* 4 or 8 */
    int64_t c_out, cin_g, kh, kw, groups, cout_g;
    int64_t nob;                       /* OB blocks per group (layout B) */
    int64_t noa;                       /* 6-blocks per group (layout A), 0 if absent */
    void *wb;                          /* layout B */
    void *wa;                          /* layout A (1x1 weights only) or NULL */
    void *raw;                         /* OIHW copy for the depthwise kernel, or NULL */
    int finite;                        /* no inf or NaN weight (taps may be skipped) */
    /* Raw-weight calls (conv_raw_*): layout B not packed yet; wb is room for
     * it.  The driver packs each block in the work item that reads it when
     * every block has one reader, else all of it before its tiles. */
    const void *src;                   /* OIHW-order weights, or NULL: wb is packed */
    int64_t src_ws[4];                 /* their element strides */
};

void *fc_alloc64(size_t bytes);
void fc_free64(void *p);
/* A family allocates the workspace it was not given (core/alloc.c). */
void fc_note_workspace_fallback(void);

#endif
