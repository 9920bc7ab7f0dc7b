/* Ends one instantiation of grad_weight_kern.h: its includer's vocabulary
 * (the element type, the vector macros and the kernel-table suffixes). */
#undef T
#undef V
#undef VL
#undef VLOAD
#undef VSTORE
#undef VBCAST
#undef VFMA
#undef VADD
#undef VZERO
#undef GWK_SFX
#undef GWK_TSFX
