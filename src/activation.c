/* Standalone activation passes (the "separate" path and the im2col epilogue). */
#include <math.h>

#include "activation_internal.h"
#include "conv_kern.h"
#include "fastconv.h"

/* Elements per parallel work item: big enough to amortise scheduling. */
#define FC_ACT_BLOCK ((size_t)16384)

#define T float
#define SFX f32
#define M(fn) fn##f
#include "activation_impl.h"
#undef T
#undef SFX
#undef M

#define T double
#define SFX f64
#define M(fn) fn
#include "activation_impl.h"
#undef T
#undef SFX
#undef M
