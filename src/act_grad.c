/* The activation-derivative pass of the backward (fastconv_grad.h). */
#include <math.h>
#include <string.h>

#include "act_grad_internal.h"
#include "activation_internal.h"
#include "fastconv_grad.h"

#define T float
#define SFX portable_f32
#define M(fn) fn##f
#include "act_grad_impl.h"
#undef T
#undef SFX
#undef M

#define T double
#define SFX portable_f64
#define M(fn) fn
#include "act_grad_impl.h"
#undef T
#undef SFX
#undef M

int fc_act_grad_has_output_form(const fc_activation *act)
{
    switch (act ? act->kind : FC_ACT_IDENTITY) {
    case FC_ACT_IDENTITY: case FC_ACT_RELU: case FC_ACT_RELU6: case FC_ACT_SELU:
    case FC_ACT_SIGMOID: case FC_ACT_TANH:
        return 1;
    case FC_ACT_LEAKY_RELU: return act->p0 >= 0;   /* a negative slope folds y > 0 */
    case FC_ACT_ELU:        return act->p0 > 0;    /* alpha <= 0: y <= 0 for z > 0 too */
    default:                return 0;
    }
}

/* Values per parallel work item below which one thread does it all. */
#define FC_GRAD_PAR_MIN ((int64_t)1 << 15)

#define DEF_ACT_GRAD(T, SFX)                                                            \
void fc_act_grad_##SFX(const T *g, const T *v, T *gz, int64_t outer, int64_t channels,   \
                       int64_t inner, const fc_activation *act, int from_output,        \
                       T *gbias)                                                        \
{                                                                                       \
    const int kind = act ? act->kind : FC_ACT_IDENTITY;                                 \
    const T p0 = act ? (T)act->p0 : (T)0, p1 = act ? (T)act->p1 : (T)0;                 \
    double (*plane)(const T *, const T *, T *, int64_t, int, int, T, T) =               \
        fc_act_simd() ? fc_act_grad_plane_avx2_##SFX : fc_act_grad_plane_portable_##SFX; \
    if (kind == FC_ACT_IDENTITY && !gbias && (!gz || gz == g)) return;                  \
    const int par = outer * channels * inner > FC_GRAD_PAR_MIN && channels > 1;         \
    (void)par;                                                                          \
    _Pragma("omp parallel for schedule(static) if (par)")                               \
    for (int64_t c = 0; c < channels; ++c) {                                            \
        double s = 0;                                                                   \
        for (int64_t n = 0; n < outer; ++n) {                                           \
            const int64_t off = (n * channels + c) * inner;                             \
            s += plane(g + off, v ? v + off : NULL, gz ? gz + off : NULL, inner, kind,  \
                       from_output, p0, p1);                                            \
        }                                                                               \
        if (gbias) gbias[c] = (T)s;                                                     \
    }                                                                                   \
}

DEF_ACT_GRAD(float, f32)
DEF_ACT_GRAD(double, f64)
