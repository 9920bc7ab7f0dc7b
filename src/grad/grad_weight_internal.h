/* Private interface between grad_weight.c and its per-ISA micro-kernels
 * (grad_weight_kern.h). */
#ifndef FASTCONV_GRAD_WEIGHT_INTERNAL_H
#define FASTCONV_GRAD_WEIGHT_INTERNAL_H

#include <stdint.h>
#include <string.h>

#define FC_GW_MR_MAX 12

typedef void (*fc_gw_kern_f32)(const float *a, int64_t lda, const float *b, int64_t ldx,
                               int64_t ldrow, int64_t rows, int64_t img_rows, int64_t ldimg,
                               int64_t cols, float *c, int64_t ldc, int acc_in);
typedef void (*fc_gw_kern_f64)(const double *a, int64_t lda, const double *b, int64_t ldx,
                               int64_t ldrow, int64_t rows, int64_t img_rows, int64_t ldimg,
                               int64_t cols, double *c, int64_t ldc, int acc_in);

/* A kernel set: tiles of mr x nr (mr rows broadcast from the input, nr output
 * channels in vectors); kern[m] does a tile of m <= mr rows. */
typedef struct {
    int mr, nr;
    void (*tr16)(const float *const *rows, float *dst, int64_t ldd, int nk, int no);
    fc_gw_kern_f32 kern[FC_GW_MR_MAX + 1];
} fc_gw_kernels_f32;
typedef struct {
    int mr, nr;
    void (*tr16)(const double *const *rows, double *dst, int64_t ldd, int nk, int no);
    fc_gw_kern_f64 kern[FC_GW_MR_MAX + 1];
} fc_gw_kernels_f64;

extern const fc_gw_kernels_f32 fc_gw_kernels_portable_f32, fc_gw_kernels_avx2_f32,
    fc_gw_kernels_avx512_f32;
extern const fc_gw_kernels_f64 fc_gw_kernels_portable_f64, fc_gw_kernels_avx2_f64,
    fc_gw_kernels_avx512_f64;
/* AVX2's narrow tiles (12 rows x one ymm), for few output channels per group */
extern const fc_gw_kernels_f32 fc_gw_kernels_avx2n_f32;
extern const fc_gw_kernels_f64 fc_gw_kernels_avx2n_f64;

#endif
