/*
 * Internal interface between the Winograd driver (winograd.c) and its
 * kernels (portable ones in winograd.c, winograd_avx2.c, winograd_avx512.c),
 * chosen at run time to follow the direct kernels' choice (dispatch.c).
 *
 * Two tile sizes, F(m x m, 3x3) with m = 4 (6x6 input patch, NXI = 36
 * transformed positions xi) and m = 2 (4x4 patch, NXI = 16); the GEMM does
 * not depend on m, the transforms do (fc_wino_transforms, one set per m).
 *
 * Layouts (E = elements of 64 bytes: 16 float / 8 double; P = 4 E):
 *  V  transformed input tiles of a block of TB tiles: v[xi][t][ICp], xi the
 *     NXI positions of the (m+2)x(m+2) transform, ICp = cin_g rounded up to E
 *     (the lanes past cin_g hold garbage and are never read).
 *  U  transformed weights of a group: u[xi][panel][ic][pw], panels of P
 *     output channels (the last one narrower: OCp - P * panel, OCp = cout_g
 *     rounded up to E, zeros past cout_g), panels and xi planes a vector
 *     further apart than packed (fc_wino_weight's strides, winograd.c).
 *  M  GEMM results m[t][xi][ldm] (ldm a multiple of E), the output channels
 *     of one work item.
 */
#ifndef FASTCONV_WINOGRAD_KERN_H
#define FASTCONV_WINOGRAD_KERN_H

#include <stdint.h>

#include "fastconv.h"

#define FC_WINO_E(T) ((int64_t)(64 / sizeof(T)))
#define FC_WINO_P(T) ((int64_t)(256 / sizeof(T)))

typedef struct {
    const void *m;        /* M at (xi = 0, tile, first channel) */
    int64_t ldxi;         /* elements between xi planes of M */
    const void *bias;     /* padded bias at the first channel (E-multiple readable), or NULL */
    void *y;              /* output at (first channel, tile's first row and column) */
    int64_t ldc, ldr, ldw; /* element strides of y: channel, row, column */
    int nrows, ncols;     /* valid output rows and columns of the tile (1..m) */
    int64_t noc;          /* channels to write */
    const fc_activation *act;
} fc_wino_out_args;

/* The transforms of one tile size m. */
typedef struct {
    /* One tile, all nc channels: s[r * lds_r + c * lds_c + ic] the (m+2)x(m+2)
     * input patch (lds_c >= nc, readable up to a vector past nc) ->
     * v[xi * ldxi + ic]. */
    void (*in_f32)(const float *s, int64_t lds_r, int64_t lds_c, int64_t nc, float *v,
                   int64_t ldxi);
    void (*in_f64)(const double *s, int64_t lds_r, int64_t lds_c, int64_t nc, double *v,
                   int64_t ldxi);
    /* The output transform of one tile (m[xi * ldxi + o]), bias, activation, store. */
    void (*out_f32)(const fc_wino_out_args *a);
    void (*out_f64)(const fc_wino_out_args *a);
} fc_wino_transforms;

typedef struct {
    const char *name;
    fc_wino_transforms f4, f2;   /* F(4x4, 3x3) and F(2x2, 3x3) */
    /* m[t * ldm + o] = sum_k v[t * ldv + k] * u[k * ldu + o] for t < nt (<= 6),
     * o < no (a multiple of E, <= P); add: m += that sum, each result's FMAs
     * continuing in k order from m (calls over consecutive ranges of k give
     * the bits of one call over all of them). */
    void (*gemm_f32)(const float *v, int64_t ldv, int nt, const float *u, int64_t ldu,
                     int64_t no, int64_t k, float *m, int64_t ldm, int add);
    void (*gemm_f64)(const double *v, int64_t ldv, int nt, const double *u, int64_t ldu,
                     int64_t no, int64_t k, double *m, int64_t ldm, int add);
} fc_wino_kernels;

/* A kernel set's table, from the functions winograd_kern_impl.h made with KFN. */
#define FC_WINO_KERNELS(name, sfx)                                             \
    {name,                                                                     \
     {wino_in4_##sfx##_f32, wino_in4_##sfx##_f64, wino_out4_##sfx##_f32, wino_out4_##sfx##_f64}, \
     {wino_in2_##sfx##_f32, wino_in2_##sfx##_f64, wino_out2_##sfx##_f32, wino_out2_##sfx##_f64}, \
     wino_gemm_##sfx##_f32, wino_gemm_##sfx##_f64}

extern const fc_wino_kernels fc_wino_portable;  /* winograd.c */
#if defined(__x86_64__) || defined(_M_X64)
extern const fc_wino_kernels fc_wino_avx2;      /* winograd_avx2.c */
extern const fc_wino_kernels fc_wino_avx512;    /* winograd_avx512.c */
#endif

#endif
