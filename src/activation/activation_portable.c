/* The portable activation loops (activation_portable_impl.h): their own
 * unit, so that the dispatch (activation.c) and the vector units that fall
 * back on them (activation_avx2.c, activation_avx512.c) all use it and it
 * uses none of them. */
#include <math.h>

#include "activation/activation_internal.h"
#include "fastconv.h"

#define T float
#define SFX f32
#define M(fn) fn##f
#include "activation/activation_portable_impl.h"
#undef T
#undef SFX
#undef M
#undef CAT_
#undef CAT
#undef FN

#define T double
#define SFX f64
#define M(fn) fn
#include "activation/activation_portable_impl.h"
#undef T
#undef SFX
#undef M
