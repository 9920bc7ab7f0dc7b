/* The weight gradient of a convolution (fastconv_grad.h: fc_grad_weight_*):
 * the driver (grad_weight_impl.h), the run-time choice of micro-kernels and
 * the portable ones (grad_weight_kern.h with scalar "vectors"). */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "activation/act_grad_internal.h"
#include "activation/activation_internal.h"
#include "core/conv_kern.h"
#include "fastconv_grad.h"
#include "grad/grad_weight_internal.h"

/* Output channels per A-pack work item, positions per derivative chunk. */
#define GW_CB 16
#define GW_PCH 256
/* Positions per block of the main loop (whole output rows, at least one):
 * the block of A (positions x output channels) stays in L2 while every tile
 * of the thread passes over it. */
#define GW_BLOCK_POS 256
/* Multiply-adds below which one thread does it all. */
#define GW_PAR_MIN_FLOPS 2e6

/* A (positions x output channels) of at most this many bytes: panel-major
 * order (grad_weight_impl.h). */
#define GW_PANEL_MAJOR_BYTES ((size_t)1 << 18)

typedef struct {
    int panel_major, unit_major;   /* the loop order, see gw_layout_ */
    int64_t unit_elems;   /* a unit-major thread's buffer */
    int64_t cig, cog;     /* channels per group */
    int64_t hp, wp;       /* the padded input's extent (what the taps reach) */
    int64_t mp, mt;       /* a group's output channels padded to the tile width; all groups */
    int64_t x_elems, a_elems, c_elems;   /* workspace parts */
} gw_layout;

static int64_t gw_round8(int64_t n) { return (n + 7) & ~(int64_t)7; }   /* 64-byte parts */

static int64_t gw_clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

static int gw_threads(const fc_conv_desc *d)
{
#ifdef _OPENMP
    const double flops = 2.0 * (double)d->n * d->h_out * d->w_out * d->c_out
                         * (d->c_in / d->groups) * d->kh * d->kw;
    return flops < GW_PAR_MIN_FLOPS ? 1 : omp_get_max_threads();
#else
    (void)d;
    return 1;
#endif
}

static void *gw_scratch_get(fc_scratch *s, size_t n)
{
    if (s->p && s->bytes >= n) return s->p;
    fc_free64(s->p);
    s->bytes = 0;
    s->p = fc_alloc64(n ? n : 64);
    if (s->p) s->bytes = n;
    return s->p;
}

static void gw_scratch_free(fc_scratch *s)
{
    fc_free64(s->p);
    s->p = NULL;
    s->bytes = 0;
}

/* FC_ISA_AVX512, FC_ISA_AVX2 or FC_ISA_PORTABLE: the family's variant at
 * the level every family follows (dispatch.c). */
static int gw_isa(void) { return fc_isa_variant(FC_FAM_GRAD_WEIGHT); }

const char *fc_grad_weight_kernel_name(void)
{
    static const char *names[] = {"portable", "avx2+fma", "avx512"};
    return names[gw_isa()];
}

/* the portable micro-kernels: 4 x 8 scalars */
#define GWK_MR 4
#define GWK_NRV 8
#define VL 1
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VBCAST(p) (*(p))
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VADD(a, b) ((a) + (b))

#define T float
#define V float
#define VZERO() 0.0f
#define GWK_SFX portable_f32
#define GWK_TSFX f32
#include "grad/grad_weight_kern.h"
#undef T
#undef V
#undef VZERO
#undef GWK_SFX
#undef GWK_TSFX

#define T double
#define V double
#define VZERO() 0.0
#define GWK_SFX portable_f64
#define GWK_TSFX f64
#include "grad/grad_weight_kern.h"
#undef T
#undef V
#undef VZERO
#undef GWK_SFX
#undef GWK_TSFX

#define T float
#define SFX f32
#include "grad/grad_weight_impl.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "grad/grad_weight_impl.h"
#undef T
#undef SFX
