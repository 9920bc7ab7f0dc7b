/* im2col (unfold): the data movement of the GEMM path. */
#include <string.h>

#include "core/conv_common.h"
#include "fastconv.h"

/* Row arithmetic of huge (validated) strides and paddings can exceed int64. */
#ifdef __SIZEOF_INT128__
typedef __int128 fc_wide;
#else
typedef int64_t fc_wide;  /* may overflow only for absurd strides or paddings */
#endif

/* fc_valid_cols (conv_common.h) for any int64 tap offset and padding: the
 * output columns [lo, hi) with 0 <= o * stride + tap - pad_left < w_in. */
static inline void fc_im2col_valid_cols(int64_t tap, int64_t pad_left, int64_t stride,
                                        int64_t w_in, int64_t w_out, int64_t *lo, int64_t *hi)
{
    const fc_wide off = (fc_wide)tap - (fc_wide)pad_left;
    /* lo = ceil(-off / stride) clamped to >= 0; hi = floor((w_in - 1 - off) / stride) + 1 */
    fc_wide l = 0, h;
    if (off < 0) l = (-off + stride - 1) / stride;
    const fc_wide top = (fc_wide)w_in - 1 - off;
    h = top < 0 ? 0 : top / stride + 1;
    if (h > w_out) h = w_out;
    if (l > w_out) l = w_out;
    *lo = (int64_t)l;
    *hi = (int64_t)(h > l ? h : l);
}

#define T float
#define SFX f32
#include "im2col/im2col_impl.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "im2col/im2col_impl.h"
#undef T
#undef SFX
