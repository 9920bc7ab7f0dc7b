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
#define VSTREAM _mm256_stream_pd
#define VACT_KIND(kind, x) fc_act4_kind_f64(kind, x, 0.0, 0.0)
#define MLOAD(p) _mm256_loadu_si256((const __m256i *)(p))
#define VEVEN(a, b) _mm256_unpacklo_pd(a, b)
#define VODD(a, b) _mm256_unpackhi_pd(a, b)
#define VUNPERM(v) _mm256_permute4x64_pd(v, 0xD8)
#define VTRANSPOSE fc_avx2_tr4_f64
#define VDEINT2 fc_avx2_deint2_f64
