/*
 * The activation-derivative pass (fc_act_grad_*), written once for both
 * float types and compiled twice: for the baseline (act_grad.c) and with
 * AVX2+FMA (act_grad_avx2.c), where the compiler vectorises the loops of the
 * piecewise-linear kinds.  T is the float type, SFX the name suffix, M names
 * the libm function of that precision.
 *
 * Each formula is torch's backward operation for operation (ATen's
 * threshold_backward, hardtanh_backward, leaky_relu_backward, elu_backward,
 * sigmoid_backward, tanh_backward, softplus_backward, silu_backward,
 * hardswish_backward, hardsigmoid_backward, gelu_backward, mish_backward, and
 * autograd's chain through softsign's x / (1 + |x|)), so that kinks, NaN and
 * infinities give what torch.autograd gives.
 */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

static const T FN(g_selu_alpha_) = (T)1.6732632423543772848170429916717;
static const T FN(g_selu_scale_) = (T)1.0507009873554804934193349852946;

/* g * f'(x), from the activation's input x. */
static inline T FN(dact_in_)(int kind, T g, T x, T p0, T p1)
{
    switch (kind) {
    case FC_ACT_RELU:        return x <= (T)0 ? (T)0 : g;
    case FC_ACT_RELU6:       return (x > (T)0 && x < (T)6) ? g : (T)0;
    case FC_ACT_LEAKY_RELU:  return x > (T)0 ? g : g * p0;
    /* NaN takes the exp branch (NaN), as torch's vectorised loops do */
    case FC_ACT_ELU:         return x > (T)0 ? g : g * p0 * M(exp)(x);
    case FC_ACT_SELU:
        return x > (T)0 ? g * FN(g_selu_scale_)
                        : g * (FN(g_selu_alpha_) * FN(g_selu_scale_)) * M(exp)(x);
    case FC_ACT_SIGMOID: {
        const T y = (T)1 / ((T)1 + M(exp)(-x));
        return g * ((T)1 - y) * y;
    }
    case FC_ACT_HARDSIGMOID: return (x > (T)-3 && x < (T)3) ? g * ((T)1 / (T)6) : (T)0;
    case FC_ACT_TANH: {
        const T y = M(tanh)(x);
        return g * ((T)1 - y * y);
    }
    case FC_ACT_SOFTPLUS: {
        const T bx = x * p0, z = M(exp)(bx);
        return bx > p1 ? g : g * z / (z + (T)1);
    }
    case FC_ACT_SOFTSIGN: {
        /* d(x / b) = g / b - g x / b^2 * sgn(x), b = 1 + |x| (autograd's chain) */
        const T b = (T)1 + M(fabs)(x);
        const T sgn = x > (T)0 ? (T)1 : (x < (T)0 ? (T)-1 : x);   /* NaN stays NaN */
        return g / b + (-g * x / (b * b)) * sgn;
    }
    case FC_ACT_SILU: {
        const T s = (T)1 / ((T)1 + M(exp)(-x));
        return g * s * ((T)1 + x * ((T)1 - s));
    }
    case FC_ACT_HARDSWISH:   /* NaN: the middle branch, NaN (torch's vectorised loop) */
        return x <= (T)-3 ? (T)0 : (x >= (T)3 ? g : g * (x / (T)3 + (T)0.5));
    case FC_ACT_GELU: {
        const T cdf = (T)0.5 * ((T)1 + M(erf)(x * (T)0.70710678118654752440));
        const T pdf = M(exp)((T)-0.5 * x * x) * (T)0.39894228040143267794;
        return g * (cdf + x * pdf);
    }
    case FC_ACT_GELU_TANH: {
        const T beta = (T)0.79788456080286535588, kappa = (T)0.044715;
        const T x2 = x * x, inner = beta * (x + kappa * x2 * x), t = M(tanh)(inner);
        const T left = (T)0.5 * x, right = (T)1 + t;
        const T dleft = (T)0.5 * right;
        const T dright = left * ((T)1 - t * t) * beta * ((T)1 + (T)3 * kappa * x2);
        return g * (dleft + dright);
    }
    case FC_ACT_MISH: {
        const T s = (T)1 / ((T)1 + M(exp)(-x));
        const T tsp = M(tanh)(M(log1p)(M(exp)(x)));
        return g * (tsp + x * s * ((T)1 - tsp * tsp));
    }
    default:                 return g;
    }
}

/* g * f'(z) from y = f(z), for the kinds of fc_act_grad_has_output_form. */
static inline T FN(dact_out_)(int kind, T g, T y, T p0)
{
    switch (kind) {
    case FC_ACT_RELU:        return y <= (T)0 ? (T)0 : g;
    case FC_ACT_RELU6:       return (y > (T)0 && y < (T)6) ? g : (T)0;
    case FC_ACT_LEAKY_RELU:  return y > (T)0 ? g : g * p0;
    case FC_ACT_ELU:         return y > (T)0 ? g : g * (y + p0);
    case FC_ACT_SELU:
        return y > (T)0 ? g * FN(g_selu_scale_)
                        : g * (y + FN(g_selu_alpha_) * FN(g_selu_scale_));
    case FC_ACT_SIGMOID:     return g * ((T)1 - y) * y;
    case FC_ACT_TANH:        return g * ((T)1 - y * y);
    default:                 return g;
    }
}

/* The derivative loops write gz chunk by chunk, and each chunk is summed
 * while it is in L1: two simple loops the compiler vectorises (one fused
 * loop with the double accumulators it does not). */
#define GRAD_SUM_LANES 8
#define GRAD_CHUNK 1024

#define DACT_LOOP(KIND, EXPR)                                                     \
    case KIND:                                                                    \
        for (int64_t c0 = 0; c0 < len; c0 += GRAD_CHUNK) {                        \
            const int64_t c1 = c0 + GRAD_CHUNK < len ? c0 + GRAD_CHUNK : len;     \
            for (int64_t j = c0; j < c1; ++j) gz[j] = EXPR(KIND, g[j], v[j]);     \
            FN(sum_lanes_)(gz + c0, c1 - c0, acc);                                \
        }                                                                         \
        break;

#define IN_(K, gg, vv) FN(dact_in_)(K, gg, vv, p0, p1)
#define OUT_(K, gg, vv) FN(dact_out_)(K, gg, vv, p0)

/* acc[l] += the values l, l + 8, l + 16, ... (and the tail into acc[0]):
 * the same order, and bits, for any thread count. */
static inline void FN(sum_lanes_)(const T *a, int64_t n, double *acc)
{
    int64_t i = 0;
    for (; i + GRAD_SUM_LANES <= n; i += GRAD_SUM_LANES)
        for (int l = 0; l < GRAD_SUM_LANES; ++l) acc[l] += (double)a[i + l];
    for (; i < n; ++i) acc[0] += (double)a[i];
}

/* One plane of len values: gz = g * f'(v); returns the sum of gz. */
double FN(fc_act_grad_plane_)(const T *g, const T *v, T *gz, int64_t len, int kind,
                              int from_output, T p0, T p1)
{
    double acc[GRAD_SUM_LANES] = {0};
    int64_t i = 0;
    (void)i;
    if (kind == FC_ACT_IDENTITY) {
        FN(sum_lanes_)(g, len, acc);
        if (gz && gz != g) memcpy(gz, g, (size_t)len * sizeof(T));
    } else if (from_output) {
        switch (kind) {
        DACT_LOOP(FC_ACT_RELU, OUT_) DACT_LOOP(FC_ACT_RELU6, OUT_)
        DACT_LOOP(FC_ACT_LEAKY_RELU, OUT_) DACT_LOOP(FC_ACT_ELU, OUT_)
        DACT_LOOP(FC_ACT_SELU, OUT_) DACT_LOOP(FC_ACT_SIGMOID, OUT_)
        DACT_LOOP(FC_ACT_TANH, OUT_)
        default: break;   /* not reached: Python asks only for these */
        }
    } else {
        switch (kind) {
        DACT_LOOP(FC_ACT_RELU, IN_) DACT_LOOP(FC_ACT_RELU6, IN_)
        DACT_LOOP(FC_ACT_LEAKY_RELU, IN_) DACT_LOOP(FC_ACT_ELU, IN_)
        DACT_LOOP(FC_ACT_SELU, IN_) DACT_LOOP(FC_ACT_SIGMOID, IN_)
        DACT_LOOP(FC_ACT_HARDSIGMOID, IN_) DACT_LOOP(FC_ACT_TANH, IN_)
        DACT_LOOP(FC_ACT_SOFTPLUS, IN_) DACT_LOOP(FC_ACT_SOFTSIGN, IN_)
        DACT_LOOP(FC_ACT_SILU, IN_) DACT_LOOP(FC_ACT_HARDSWISH, IN_)
        DACT_LOOP(FC_ACT_GELU, IN_) DACT_LOOP(FC_ACT_GELU_TANH, IN_)
        DACT_LOOP(FC_ACT_MISH, IN_)
        default: break;
        }
    }
    double s = 0;
    for (int l = 0; l < GRAD_SUM_LANES; ++l) s += acc[l];
    return s;
}

#undef IN_
#undef OUT_
#undef DACT_LOOP
#undef GRAD_SUM_LANES
#undef GRAD_CHUNK
#undef FN
#undef CAT
#undef CAT_
