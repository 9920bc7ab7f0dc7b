/* The float64 twin of avx2_vec_f32.h. */
#define T double
#define SFX f64
#define V __m256d
#define VI __m256i
#define VL 4
#define MASKT int64_t
#define VLOAD _mm256_loadu_pd
#define VSTORE _mm256_storeu_pd
#define VSTOREA _mm256_store_pd
#define VBCAST _mm256_broadcast_sd
#define VSET1 _mm256_set1_pd
#define VZERO _mm256_setzero_pd
#define VFMA _mm256_fmadd_pd
#define VAND _mm256_and_pd
#define VCASTI _mm256_castsi256_pd
#define VMASKLOAD _mm256_maskload_pd
#define VMASKSTORE _mm256_maskstore_pd
#define VACT_TILE fc_act4_tile_f64
#define VACT fc_act4_f64
#define VRELU(x, z) _mm256_andnot_pd(_mm256_cmp_pd(x, z, _CMP_LT_OQ), x)
