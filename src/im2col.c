/* im2col (unfold): the data movement of the GEMM path. */
#include <string.h>

#include "conv_common.h"
#include "fastconv.h"

#define T float
#define SFX f32
#include "im2col_impl.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "im2col_impl.h"
#undef T
#undef SFX
