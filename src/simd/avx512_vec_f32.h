/*
 * The vector vocabulary of the AVX-512 float32 kernel templates that are
 * written on avx2_vec_f32.h's names (conv_first_impl.h): include this, then a
 * template, then avx512_vec_undef.h.  Only what those templates use; only
 * for *_avx512.c units.
 */
#define T float
#define SFX f32
#define V __m512
#define VL 16
#define VLOAD _mm512_loadu_ps
#define VSTORE _mm512_storeu_ps
#define VBCAST(p) _mm512_set1_ps(*(p))
#define VSET1 _mm512_set1_ps
#define VZERO _mm512_setzero_ps
#define VFMA _mm512_fmadd_ps
/* relu as the scalar code does it: x < 0 ? 0 : x, NaN and -0.0 kept */
#define VRELU(x, z) _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, z, _CMP_NLT_UQ), x)
