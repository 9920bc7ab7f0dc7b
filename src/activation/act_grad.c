/* The activation-derivative pass of the backward (fastconv_grad.h). */
#include <math.h>
#include <string.h>

#include "activation/act_grad_internal.h"
#include "activation/activation_internal.h"
#include "fastconv_grad.h"

#define T float
#define SFX portable_f32
#define M(fn) fn##f
#include "activation/act_grad_impl.h"
#undef T
#undef SFX
#undef M

#define T double
#define SFX portable_f64
#define M(fn) fn
#include "activation/act_grad_impl.h"
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
/* Values per call of the plane loop when the layout does not matter (no bias
 * sums): one call per (outer, channel) row of `inner` values cost ~20x the
 * loop itself for inner = 1 (the layers' activation backward;
 * benchmarks/NOTES.md, training step). */
#define FC_GRAD_CHUNK ((int64_t)1 << 14)
/* Channels per work item when inner == 1 (channels-last bias sums). */
#define FC_GRAD_CBLK 64

#define DEF_ACT_GRAD(T, SFX)                                                            \
void fc_act_grad_##SFX(const T *g, const T *v, T *gz, int64_t outer, int64_t channels,   \
                       int64_t inner, const fc_activation *act, int from_output,        \
                       T *gbias)                                                        \
{                                                                                       \
    const int kind = act ? act->kind : FC_ACT_IDENTITY;                                 \
    const T p0 = act ? (T)act->p0 : (T)0, p1 = act ? (T)act->p1 : (T)0;                 \
    double (*plane)(const T *, const T *, T *, int64_t, int, int, T, T) =               \
        fc_act_grad_avx2() ? fc_act_grad_plane_avx2_##SFX : fc_act_grad_plane_portable_##SFX; \
    if (kind == FC_ACT_IDENTITY && !gbias && (!gz || gz == g)) return;                  \
    const int64_t total = outer * channels * inner;                                     \
    if (!gbias) {                       /* element-wise: any split will do */           \
        const int64_t nch = (total + FC_GRAD_CHUNK - 1) / FC_GRAD_CHUNK;                \
        const int par = total > FC_GRAD_PAR_MIN && nch > 1;                             \
        (void)par;                                                                      \
        _Pragma("omp parallel for schedule(static) if (par)")                           \
        for (int64_t k = 0; k < nch; ++k) {                                             \
            const int64_t off = k * FC_GRAD_CHUNK;                                      \
            const int64_t len = total - off < FC_GRAD_CHUNK ? total - off : FC_GRAD_CHUNK; \
            plane(g + off, v ? v + off : NULL, gz ? gz + off : NULL, len, kind,         \
                  from_output, p0, p1);                                                 \
        }                                                                               \
        return;                                                                         \
    }                                                                                   \
    if (inner == 1) {                   /* rows of channels: sums per element */       \
        const int64_t ncb = (channels + FC_GRAD_CBLK - 1) / FC_GRAD_CBLK;               \
        const int par = total > FC_GRAD_PAR_MIN && ncb > 1;                             \
        (void)par;                                                                      \
        _Pragma("omp parallel for schedule(static) if (par)")                           \
        for (int64_t cb = 0; cb < ncb; ++cb) {                                          \
            const int64_t c0 = cb * FC_GRAD_CBLK;                                       \
            const int64_t nc = channels - c0 < FC_GRAD_CBLK ? channels - c0 : FC_GRAD_CBLK; \
            double acc[FC_GRAD_CBLK];                                                   \
            for (int64_t j = 0; j < nc; ++j) acc[j] = 0;                                \
            for (int64_t n = 0; n < outer; ++n) {                                       \
                const int64_t off = n * channels + c0;                                  \
                const T *r = g + off;                                                   \
                if (gz && gz != g) {                                                    \
                    plane(g + off, v ? v + off : NULL, gz + off, nc, kind, from_output, p0, p1); \
                    r = gz + off;                                                       \
                }                                                                       \
                for (int64_t j = 0; j < nc; ++j) acc[j] += (double)r[j];                \
            }                                                                           \
            for (int64_t j = 0; j < nc; ++j) gbias[c0 + j] = (T)acc[j];                 \
        }                                                                               \
        return;                                                                         \
    }                                                                                   \
    const int par = total > FC_GRAD_PAR_MIN && channels > 1;                            \
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
