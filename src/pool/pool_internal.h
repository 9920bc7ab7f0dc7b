/* Shared by pool.c and the max-pooling bodies (pool_max_impl.h). */
#ifndef FASTCONV_POOL_INTERNAL_H
#define FASTCONV_POOL_INTERNAL_H

#include <stdint.h>

#include "pool/pool.h"

/* Per output row (or column) index: the taps [lo, hi) that land inside the
 * input, and how many land inside the padded extent (for count_include_pad). */
typedef struct {
    int64_t lo, hi, padded;
} fc_pool_tap_range;

/* Below this many taps in total the call runs on one thread. */
#define FC_POOL_PARALLEL_MIN 65536

/* Max pooling of a whole call (p checked, oh / ow >= 1): strided windows
 * (rows: the row table) or stride 1 both ways (flat), per instruction set:
 * port (baseline flags) and avx2 (pool_avx2.c; 0-returning stubs off x86 --
 * never called there). */
#define FC_DECLARE_MAXPOOL(ISA)                                                     \
    int fc_maxpool_separable_##ISA##_f32(const float *x, float *y, const fc_pool_params *p, \
                                         const fc_pool_tap_range *rows);           \
    int fc_maxpool_separable_##ISA##_f64(const double *x, double *y,               \
                                         const fc_pool_params *p,                  \
                                         const fc_pool_tap_range *rows);           \
    int fc_maxpool_flat_##ISA##_f32(const float *x, float *y, const fc_pool_params *p); \
    int fc_maxpool_flat_##ISA##_f64(const double *x, double *y, const fc_pool_params *p);
FC_DECLARE_MAXPOOL(port)
FC_DECLARE_MAXPOOL(avx2)

#endif
