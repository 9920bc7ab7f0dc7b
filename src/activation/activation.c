/* Standalone activation passes (the "separate" path and the im2col epilogue). */
#include "activation/activation_internal.h"
#include "core/conv_kern.h"
#include "fastconv.h"

/* Elements per parallel work item: big enough to amortise scheduling. */
#define FC_ACT_BLOCK ((size_t)16384)

#define T float
#define SFX f32
#include "activation/activation_impl.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "activation/activation_impl.h"
#undef T
#undef SFX
