/* Direct convolution: the fused path (activation in the epilogue). */
#include <math.h>

#include "conv_common.h"
#include "fastconv.h"

/* Below this many FLOPs a call stays on one thread: waking a team costs more. */
#define FC_PARALLEL_MIN_FLOPS 2.0e5

#define T float
#define SFX f32
#include "conv_direct_impl.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "conv_direct_impl.h"
#undef T
#undef SFX

size_t fc_conv2d_direct_workspace(const fc_conv_desc *d, const fc_activation *pre,
                                  size_t elem_size)
{
    return elem_size == sizeof(float) ? conv_workspace_f32(d, pre) : conv_workspace_f64(d, pre);
}
