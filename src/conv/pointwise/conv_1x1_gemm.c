/* The 1x1 GEMM's entry point (baseline code): whether the AVX-512
 * implementation runs here.  See conv_1x1_gemm.h. */
#include "conv/pointwise/conv_1x1_gemm.h"
#include "fastconv.h"

int fc_1x1g_available(void)
{
#if defined(__x86_64__) || defined(_M_X64)
    return fc_isa_variant(FC_FAM_1X1_GEMM) == FC_ISA_AVX512;
#else
    return 0;
#endif
}

int fc_conv1x1_gemm_f32(const fc_1x1g_desc *d, const float *x, const float *wp,
                        const float *bias, const float *res, float *y)
{
    if (!fc_1x1g_available()) return 1;
    return fc_conv1x1_gemm_avx512_f32(d, x, wp, bias, res, y);
}

int fc_gemm_plain_f32(int64_t M, int64_t K, int64_t N, const float *a, int64_t lda,
                      const float *b, float *c)
{
    if (!fc_1x1g_available() || M <= 0 || K <= 0 || N <= 0 || !a || !b || !c) return 1;
    return fc_gemm_plain_avx512_f32(M, K, N, a, lda, b, c);
}
