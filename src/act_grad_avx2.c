/* The activation-derivative pass compiled with AVX2+FMA (see act_grad_impl.h);
 * chosen at run time by act_grad.c.  On other architectures the same code is
 * compiled without the flags (and never chosen). */
#include <math.h>
#include <string.h>

#include "act_grad_internal.h"
#include "fastconv.h"

#define T float
#define SFX avx2_f32
#define M(fn) fn##f
#include "act_grad_impl.h"
#undef T
#undef SFX
#undef M

#define T double
#define SFX avx2_f64
#define M(fn) fn
#include "act_grad_impl.h"
#undef T
#undef SFX
#undef M
