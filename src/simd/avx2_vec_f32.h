/*
 * The vector vocabulary of the AVX2 float32 kernel templates (conv_*_impl.h):
 * include this, then a template, then avx2_vec_undef.h.  A superset: each
 * template uses what it needs.  Only for *_avx2.c units.
 */
#define T float
#define SFX f32
#define V __m256
#define VI __m256i
#define VL 8
#define MASKT int32_t
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VSTOREA _mm256_store_ps
#define VBCAST _mm256_broadcast_ss
#define VSET1 _mm256_set1_ps
#define VZERO _mm256_setzero_ps
#define VFMA _mm256_fmadd_ps
#define VAND _mm256_and_ps
#define VCASTI _mm256_castsi256_ps
#define VMASKLOAD _mm256_maskload_ps
#define VMASKSTORE _mm256_maskstore_ps
#define VACT_TILE fc_act8_tile_f32
#define VACT fc_act8_f32
/* relu as the scalar code does it: x < 0 ? 0 : x, NaN and -0.0 kept */
#define VRELU(x, z) _mm256_andnot_ps(_mm256_cmp_ps(x, z, _CMP_LT_OQ), x)
