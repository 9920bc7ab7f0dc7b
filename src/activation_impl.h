/*
 * Per-element activations, written once for both float types.
 *
 * Included by activation.c with T (the float type), SFX (the function-name
 * suffix) and M (a macro naming the libm function of that precision).  The
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

/* The family's variant at the level now (dispatch.c): the AVX-512 loops
 * (activation_avx512.c), the AVX2 ones (activation_avx2.c) or the portable
 * ones. */
static void FN(act_array_)(const T *x, T *y, size_t n, T b, const fc_activation *act)
{
    const int v = act && act->kind != FC_ACT_IDENTITY ? fc_isa_variant(FC_FAM_ACT)
                                                      : FC_ISA_PORTABLE;
    if (v == FC_ISA_AVX512)
        FN(fc_act_array_avx512_)(x, y, n, b, act);
    else if (v == FC_ISA_AVX2)
        FN(fc_act_array_avx2_)(x, y, n, b, act);
    else
        FN(fc_act_array_portable_)(x, y, n, b, act);
}

/* -0.0 is the additive identity of IEEE arithmetic (x + -0.0 == x, also for
 * x == -0.0), so passing it as the bias leaves every input bit-exact. */
void FN(fc_activate_serial_)(const T *x, T *y, size_t n, const fc_activation *act)
{
    FN(act_array_)(x, y, n, (T)-0.0, act);
}

/* The blocks of the array shared among the threads of the enclosing parallel
 * region (an orphaned worksharing loop, with its barrier at the end); run
 * outside one, the calling thread does them all. */
void FN(fc_activate_team_)(const T *x, T *y, size_t n, const fc_activation *act)
{
    const int64_t nblocks = (int64_t)((n + FC_ACT_BLOCK - 1) / FC_ACT_BLOCK);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t b = 0; b < nblocks; ++b) {
        const size_t i = (size_t)b * FC_ACT_BLOCK;
        const size_t len = n - i < FC_ACT_BLOCK ? n - i : FC_ACT_BLOCK;
        FN(act_array_)(x + i, y + i, len, (T)-0.0, act);
    }
}

void FN(fc_activate_)(const T *x, T *y, size_t n, const fc_activation *act)
{
#ifdef _OPENMP
#pragma omp parallel if (n > 4 * FC_ACT_BLOCK)
#endif
    FN(fc_activate_team_)(x, y, n, act);
}

void FN(fc_bias_activate_ld_)(T *y, int64_t rows, int64_t len, int64_t ld, const T *bias,
                              int64_t bias_len, const fc_activation *act)
{
    if (!bias && (!act || act->kind == FC_ACT_IDENTITY)) return;
    for (int64_t r = 0; r < rows; ++r)
        FN(act_array_)(y + r * ld, y + r * ld, (size_t)len,
                       bias ? bias[r % bias_len] : (T)-0.0, act);
}

void FN(fc_bias_activate_)(T *y, int64_t rows, int64_t len, const T *bias,
                           int64_t bias_len, const fc_activation *act)
{
    FN(fc_bias_activate_ld_)(y, rows, len, len, bias, bias_len, act);
}

#undef FN
#undef CAT
#undef CAT_
