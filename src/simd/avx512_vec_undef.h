/* Undoes avx512_vec_f32.h / avx512_vec_f64.h. */
#undef T
#undef SFX
#undef V
#undef VL
#undef VLOAD
#undef VSTORE
#undef VBCAST
#undef VSET1
#undef VZERO
#undef VFMA
#undef VRELU
