/*
 * The activation passes, written once for both float types: each picks the
 * family's variant (activation_portable.c, activation_avx2.c,
 * activation_avx512.c) and runs it over a whole array, a team's share of it,
 * or rows with a bias.  Included by activation.c with T and SFX.
 */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

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
