/*
 * Per-element activations, written once for both float types.
 *
 * Included by activation_portable.c with T (the float type), SFX (the
 * function-name suffix) and M (a macro naming the libm function of that
 * precision): the portable loops, which the AVX2 and AVX-512 units call for
 * what they do not vectorise, and activation.c's dispatch calls on other
 * CPUs.  The
 * formulas follow torch's own, operation for operation where it matters for
 * special values: relu(NaN) is NaN, relu(-0.0) is -0.0, silu(-inf) is NaN.
 * Every branch is written so that a NaN input falls through to a NaN output.
 */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

static const T FN(selu_alpha_) = (T)1.6732632423543772848170429916717;
static const T FN(selu_scale_) = (T)1.0507009873554804934193349852946;

static inline T FN(sigmoid_)(T x) { return (T)1 / ((T)1 + M(exp)(-x)); }

static inline T FN(softplus_)(T x, T beta, T threshold)
{
    T bx = x * beta;
    /* Above the threshold softplus is x to working precision; exp would overflow. */
    return bx > threshold ? x : M(log1p)(M(exp)(bx)) / beta;
}

static inline T FN(relu6_)(T x) { return x < (T)0 ? (T)0 : (x > (T)6 ? (T)6 : x); }

/* One element; the switch is outside every loop in the callers below. */
static inline T FN(act_one_)(int kind, T x, T p0, T p1)
{
    switch (kind) {
    case FC_ACT_RELU:        return x < (T)0 ? (T)0 : x;
    case FC_ACT_RELU6:       return FN(relu6_)(x);
    case FC_ACT_LEAKY_RELU:  return x > (T)0 ? x : x * p0;
    case FC_ACT_ELU:         return x > (T)0 ? x : p0 * M(expm1)(x);
    case FC_ACT_SELU:        return FN(selu_scale_) * (x > (T)0 ? x : FN(selu_alpha_) * M(expm1)(x));
    case FC_ACT_SIGMOID:     return FN(sigmoid_)(x);
    case FC_ACT_HARDSIGMOID: return FN(relu6_)(x + (T)3) / (T)6;
    case FC_ACT_TANH:        return M(tanh)(x);
    case FC_ACT_SOFTPLUS:    return FN(softplus_)(x, p0, p1);
    case FC_ACT_SOFTSIGN:    return x / ((T)1 + M(fabs)(x));
    case FC_ACT_SILU:        return x / ((T)1 + M(exp)(-x));
    case FC_ACT_HARDSWISH:   return x * FN(relu6_)(x + (T)3) / (T)6;
    case FC_ACT_GELU:
        return (T)0.5 * x * ((T)1 + M(erf)(x * (T)0.70710678118654752440));
    case FC_ACT_GELU_TANH: {
        const T k = (T)0.79788456080286535588; /* sqrt(2 / pi) */
        return (T)0.5 * x * ((T)1 + M(tanh)(k * (x + (T)0.044715 * x * x * x)));
    }
    case FC_ACT_MISH:        return x * M(tanh)(FN(softplus_)(x, (T)1, (T)20));
    default:                 return x;
    }
}

/* The loop is instantiated per kind so that the compiler can vectorise the
 * cheap ones (relu, relu6, leaky_relu, hardsigmoid, hardswish, softsign). */
#define ACT_LOOP(KIND)                                                        \
    case KIND:                                                                \
        for (size_t i = 0; i < n; ++i) y[i] = FN(act_one_)(KIND, x[i] + b, p0, p1); \
        break;

/* y[i] = f(x[i] + b); the shared loop of every activation pass (portable). */
void FN(fc_act_array_portable_)(const T *x, T *y, size_t n, T b, const fc_activation *act)
{
    const int kind = act ? act->kind : FC_ACT_IDENTITY;
    const T p0 = act ? (T)act->p0 : (T)0, p1 = act ? (T)act->p1 : (T)0;
    switch (kind) {
    ACT_LOOP(FC_ACT_RELU) ACT_LOOP(FC_ACT_RELU6) ACT_LOOP(FC_ACT_LEAKY_RELU)
    ACT_LOOP(FC_ACT_ELU) ACT_LOOP(FC_ACT_SELU) ACT_LOOP(FC_ACT_SIGMOID)
    ACT_LOOP(FC_ACT_HARDSIGMOID) ACT_LOOP(FC_ACT_TANH) ACT_LOOP(FC_ACT_SOFTPLUS)
    ACT_LOOP(FC_ACT_SOFTSIGN) ACT_LOOP(FC_ACT_SILU) ACT_LOOP(FC_ACT_HARDSWISH)
    ACT_LOOP(FC_ACT_GELU) ACT_LOOP(FC_ACT_GELU_TANH) ACT_LOOP(FC_ACT_MISH)
    default:
        if (x != y || !(b == (T)0 && signbit(b)))
            for (size_t i = 0; i < n; ++i) y[i] = x[i] + b;
        break;
    }
}
#undef ACT_LOOP
