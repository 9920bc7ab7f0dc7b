/* Max pooling, compiled with -mavx2 -mfma on x86 (pool_max_impl.h); pool.c
 * calls these when the CPU has AVX2 and FASTCONV_DISABLE_SIMD is unset. */
#if defined(__x86_64__) || defined(_M_X64)
#ifdef _OPENMP
#include <omp.h>
#endif
#define FC_MAXPOOL_ISA avx2
#include "pool/pool_max_impl.h"
#else
#include "pool/pool_internal.h"
int fc_maxpool_separable_avx2_f32(const float *x, float *y, const fc_pool_params *p,
                                  const fc_pool_tap_range *rows)
{
    (void)x; (void)y; (void)p; (void)rows;
    return FC_POOL_EINVAL;
}
int fc_maxpool_separable_avx2_f64(const double *x, double *y, const fc_pool_params *p,
                                  const fc_pool_tap_range *rows)
{
    (void)x; (void)y; (void)p; (void)rows;
    return FC_POOL_EINVAL;
}
int fc_maxpool_flat_avx2_f32(const float *x, float *y, const fc_pool_params *p)
{
    (void)x; (void)y; (void)p;
    return FC_POOL_EINVAL;
}
int fc_maxpool_flat_avx2_f64(const double *x, double *y, const fc_pool_params *p)
{
    (void)x; (void)y; (void)p;
    return FC_POOL_EINVAL;
}
#endif
