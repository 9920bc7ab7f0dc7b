/* The float64 twin of avx512_vec_f32.h. */
#define T double
#define SFX f64
#define V __m512d
#define VL 8
#define VLOAD _mm512_loadu_pd
#define VSTORE _mm512_storeu_pd
#define VBCAST(p) _mm512_set1_pd(*(p))
#define VSET1 _mm512_set1_pd
#define VZERO _mm512_setzero_pd
#define VFMA _mm512_fmadd_pd
#define VRELU(x, z) _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(x, z, _CMP_NLT_UQ), x)
