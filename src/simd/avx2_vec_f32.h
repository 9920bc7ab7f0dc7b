/*
 * The template scheme for dtype x ISA (the families' units follow it; the
 * AVX-512 B tiles of conv_direct_avx512.c, written per type, are the
 * exception: docs/DESIGN.md, known debt 4):
 *   a unit <family>_<isa>.c includes, once per float type,
 *     simd/<isa>_vec_<dtype>.h   T (the float type), SFX (f32/f64), V (the
 *                                vector), VL (its lanes) and the V* operations,
 *     <family>_impl.h            the template: names its functions FN(name),
 *                                i.e. name##SFX via CAT(a, b), and uses only
 *                                these names for vector code,
 *     simd/<isa>_vec_undef.h     undoes the vocabulary for the next type.
 *   Portable templates take T and SFX from the unit itself.  One vocabulary
 *   per ISA x dtype: a family that needs an operation adds it here, for both
 *   types and to the _undef.h (docs/DESIGN.md, source tree).
 *
 * This file: the AVX2 float32 vocabulary.  A superset: each template uses
 * what it needs.  Only for *_avx2.c units.
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
#define VSTREAM _mm256_stream_ps
#define VACT_KIND(kind, x) fc_act8_kind_f32(kind, x, 0.0f, 0.0f)   /* a kind, no parameters */
#define MLOAD(p) _mm256_loadu_si256((const __m256i *)(p))          /* lane masks */
#define VEVEN(a, b) _mm256_shuffle_ps(a, b, 0x88)   /* even / odd lanes of (a, b), per 128 bits */
#define VODD(a, b) _mm256_shuffle_ps(a, b, 0xDD)
#define VUNPERM(v) _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8))
#define VTRANSPOSE fc_avx2_tr8_f32   /* avx2_shuffle.h */
#define VDEINT2 fc_avx2_deint2_f32
