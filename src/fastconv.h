/*
 * fastconv: the C interface of the kernels.
 *
 * Everything here is plain C99 over raw buffers; nothing knows of Python.
 * Tensors are dense and C-contiguous: input NCHW, weights OIHW (torch layout),
 * output NCHW.  The Python layer validates every argument before calling in,
 * so the kernels assume a consistent description.
 */
#ifndef FASTCONV_H
#define FASTCONV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Per-element activations.  The numbering is shared with fastconv/activations.py. */
typedef enum {
    FC_ACT_IDENTITY = 0,
    FC_ACT_RELU,
    FC_ACT_RELU6,
    FC_ACT_LEAKY_RELU,   /* p0 = negative_slope */
    FC_ACT_ELU,          /* p0 = alpha */
    FC_ACT_SELU,
    FC_ACT_SIGMOID,
    FC_ACT_HARDSIGMOID,
    FC_ACT_TANH,
    FC_ACT_SOFTPLUS,     /* p0 = beta, p1 = threshold */
    FC_ACT_SOFTSIGN,
    FC_ACT_SILU,
    FC_ACT_HARDSWISH,
    FC_ACT_GELU,         /* exact, with erf */
    FC_ACT_GELU_TANH,    /* the tanh approximation */
    FC_ACT_MISH,
    FC_ACT_COUNT
} fc_act_kind;

typedef struct {
    int kind;            /* an fc_act_kind */
    double p0, p1;       /* parameters, see fc_act_kind */
} fc_activation;

/* One 2-D convolution, torch semantics (cross-correlation). */
typedef struct {
    int64_t n;                   /* batch */
    int64_t c_in, h_in, w_in;
    int64_t c_out, kh, kw;       /* weights are (c_out, c_in / groups, kh, kw) */
    int64_t h_out, w_out;
    int64_t stride_h, stride_w;
    int64_t dil_h, dil_w;
    int64_t pad_top, pad_left;   /* bottom/right padding is implied by h_out, w_out */
    int64_t groups;
} fc_conv_desc;

/* Status codes. */
enum { FC_OK = 0, FC_EINVAL = 1, FC_ENOMEM = 2 };

/* ---- activations (activation.c) ---------------------------------------- */

/* y[i] = f(x[i]) for i < n; x and y may be the same buffer.  Splits large
 * arrays over threads. */
void fc_activate_f32(const float *x, float *y, size_t n, const fc_activation *act);
void fc_activate_f64(const double *x, double *y, size_t n, const fc_activation *act);

/* The same on the calling thread alone: for kernel epilogues, which already
 * run inside a parallel region. */
void fc_activate_serial_f32(const float *x, float *y, size_t n, const fc_activation *act);
void fc_activate_serial_f64(const double *x, double *y, size_t n, const fc_activation *act);

/* The same shared among the threads of the enclosing OpenMP parallel region
 * (every thread of the team must call it; it ends in a barrier): for kernels
 * that finish with an activation pass over their whole output. */
void fc_activate_team_f32(const float *x, float *y, size_t n, const fc_activation *act);
void fc_activate_team_f64(const double *x, double *y, size_t n, const fc_activation *act);

/* y[c][i] = f(y[c][i] + bias[c % bias_len]) over `rows` rows of `len` values:
 * the epilogue of the im2col path, one pass while the GEMM result is hot. */
void fc_bias_activate_f32(float *y, int64_t rows, int64_t len, const float *bias,
                          int64_t bias_len, const fc_activation *act);
void fc_bias_activate_f64(double *y, int64_t rows, int64_t len, const double *bias,
                          int64_t bias_len, const fc_activation *act);
/* The same on rows `ld` elements apart (a block of columns of a matrix). */
void fc_bias_activate_ld_f32(float *y, int64_t rows, int64_t len, int64_t ld,
                             const float *bias, int64_t bias_len, const fc_activation *act);
void fc_bias_activate_ld_f64(double *y, int64_t rows, int64_t len, int64_t ld,
                             const double *bias, int64_t bias_len, const fc_activation *act);

/* ---- direct convolution (conv_direct.c) -------------------------------- */

/* Bytes of workspace fc_conv2d_direct_* may use: a channels-last (and
 * pre-activated) copy of the input, 0 when the kernels read x in place.
 * A NULL workspace makes the kernel allocate it itself. */
size_t fc_conv2d_direct_workspace(const fc_conv_desc *d, const fc_activation *pre,
                                  size_t elem_size);

/* y = post(conv(pad(pre(x)), w) + bias).  bias may be NULL; pre/post may be
 * NULL for identity.  `workspace` holds fc_conv2d_direct_workspace() bytes
 * or is NULL.  Packs w on every call (into a buffer of its own: fc_conv2d_raw_*
 * keeps one between calls); fc_pack_weight + fc_conv2d_packed pack once. */
int fc_conv2d_direct_f32(const fc_conv_desc *d, const float *x, const float *w,
                         const float *bias, float *y, const fc_activation *post,
                         const fc_activation *pre, void *workspace);
int fc_conv2d_direct_f64(const fc_conv_desc *d, const double *x, const double *w,
                         const double *bias, double *y, const fc_activation *post,
                         const fc_activation *pre, void *workspace);

/* ---- pre-packed weights (conv_direct.c) --------------------------------- */

/* Weights rearranged once into the layouts the direct kernels read (and a
 * copy, so later changes to the caller's array never leak in).  Only c_out,
 * c_in, kh, kw and groups of `d` are used: one pack serves any input size,
 * stride, padding and dilation.  NULL when out of memory. */
typedef struct fc_packed fc_packed;
fc_packed *fc_pack_weight_f32(const fc_conv_desc *d, const float *w);
fc_packed *fc_pack_weight_f64(const fc_conv_desc *d, const double *w);
void fc_packed_free(fc_packed *p);
size_t fc_packed_bytes(const fc_packed *p);

/* fc_conv2d_direct_* with packed weights (w must match d and the float type).
 * workspace: fc_conv2d_direct_workspace() bytes, or NULL to allocate inside. */
int fc_conv2d_packed_f32(const fc_conv_desc *d, const float *x, const fc_packed *w,
                         const float *bias, float *y, const fc_activation *post,
                         const fc_activation *pre, void *workspace);
int fc_conv2d_packed_f64(const fc_conv_desc *d, const double *x, const fc_packed *w,
                         const double *bias, double *y, const fc_activation *post,
                         const fc_activation *pre, void *workspace);

/* ---- any strides, NCHW or NHWC output (conv_direct.c) -------------------- */

/* x is read through element strides xstrides = {n, c, h, w} (NULL: dense
 * NCHW), so a dense NHWC input is xstrides = {H*W*C, 1, W*C, C} and is read in
 * place (no copy unless a pre-activation is asked for).  y is dense: NCHW, or
 * NHWC (n, h_out, w_out, c_out) when y_nhwc is nonzero, written by the tiles.
 * The depthwise kernel is only used for dense NCHW x and y.  The workspace is
 * that of the kernel family the call's plan picks (conv_direct_impl.h), for
 * a pack from fc_pack_weight_*: it depends on the output layout too. */
size_t fc_conv2d_direct_workspace_ex(const fc_conv_desc *d, const int64_t *xstrides,
                                     const fc_activation *pre, size_t elem_size, int y_nhwc);
int fc_conv2d_packed_ex_f32(const fc_conv_desc *d, const float *x, const int64_t *xstrides,
                            const fc_packed *w, const float *bias, float *y, int y_nhwc,
                            const fc_activation *post, const fc_activation *pre,
                            void *workspace);
int fc_conv2d_packed_ex_f64(const fc_conv_desc *d, const double *x, const int64_t *xstrides,
                            const fc_packed *w, const double *bias, double *y, int y_nhwc,
                            const fc_activation *post, const fc_activation *pre,
                            void *workspace);
/* w read through element strides wstrides = {o, i, h, w} (a view of HWIO
 * weights, say), packed for this call only. */
int fc_conv2d_direct_ex_f32(const fc_conv_desc *d, const float *x, const int64_t *xstrides,
                            const float *w, const int64_t *wstrides, const float *bias,
                            float *y, int y_nhwc, const fc_activation *post,
                            const fc_activation *pre, void *workspace);
int fc_conv2d_direct_ex_f64(const fc_conv_desc *d, const double *x, const int64_t *xstrides,
                            const double *w, const int64_t *wstrides, const double *bias,
                            double *y, int y_nhwc, const fc_activation *post,
                            const fc_activation *pre, void *workspace);

/* ---- raw weights with a kept buffer (conv_direct.c) ---------------------- */

/* What a raw-weight call packs its weights into and takes its workspace
 * from: grown as needed and kept for the next call, so repeated calls do not
 * allocate or fault pages in.  One call at a time per scratch (its owner
 * serialises); {NULL, 0} is an empty one.  Nothing packed is reused: every
 * call packs the weights it is given. */
typedef struct fc_scratch {
    void *p;
    size_t bytes;
} fc_scratch;
void fc_scratch_release(fc_scratch *s);

/* fc_conv2d_direct_ex_* with w packed into *s (and the workspace from it);
 * xstrides / wstrides NULL for dense NCHW / OIHW. */
int fc_conv2d_raw_f32(const fc_conv_desc *d, const float *x, const int64_t *xstrides,
                      const float *w, const int64_t *wstrides, const float *bias, float *y,
                      int y_nhwc, const fc_activation *post, const fc_activation *pre,
                      fc_scratch *s);
int fc_conv2d_raw_f64(const fc_conv_desc *d, const double *x, const int64_t *xstrides,
                      const double *w, const int64_t *wstrides, const double *bias, double *y,
                      int y_nhwc, const fc_activation *post, const fc_activation *pre,
                      fc_scratch *s);

fc_packed *fc_pack_weight_strided_f32(const fc_conv_desc *d, const float *w,
                                      const int64_t *wstrides);
fc_packed *fc_pack_weight_strided_f64(const fc_conv_desc *d, const double *w,
                                      const int64_t *wstrides);
/* New weights of the same geometry (d as at packing) into p's buffers, in
 * place: no allocation.  FC_EINVAL when d or the float type is not p's. */
int fc_repack_weight_strided_f32(fc_packed *p, const fc_conv_desc *d, const float *w,
                                 const int64_t *wstrides);
int fc_repack_weight_strided_f64(fc_packed *p, const fc_conv_desc *d, const double *w,
                                 const int64_t *wstrides);
/* p's weights (OIHW indices) into dst[o][i][h][v] at dst + o*dstrides[0] +
 * i*dstrides[1] + h*dstrides[2] + v*dstrides[3], rebuilt from the packed
 * layout (a pack keeps no copy of its source). */
void fc_unpack_weight_f32(const fc_packed *p, float *dst, const int64_t *dstrides);
void fc_unpack_weight_f64(const fc_packed *p, double *dst, const int64_t *dstrides);
/* A dense OIHW copy of w[o][i][h][v] at w + o*ws[0] + i*ws[1] + h*ws[2] +
 * v*ws[3] (any strides: a view of HWIO weights, say) into dst: a cache-blocked
 * transpose, threaded for big weights (the private copy a pack keeps). */
void fc_weight_to_oihw_f32(const fc_conv_desc *d, const float *w, const int64_t *wstrides,
                           float *dst);
void fc_weight_to_oihw_f64(const fc_conv_desc *d, const double *w, const int64_t *wstrides,
                           double *dst);

/* ---- depthwise convolution (conv_depthwise.c) ---------------------------- */

/* y = post(conv(pad(x), w) + bias) for groups == c_in (any channel multiplier
 * c_out / groups, kernel, stride, dilation, padding); FC_EINVAL when `d` is
 * not depthwise, so that the caller falls back to the general kernel. */
int fc_conv2d_depthwise_f32(const fc_conv_desc *d, const float *x, const float *w,
                            const float *bias, float *y, const fc_activation *post);
int fc_conv2d_depthwise_f64(const fc_conv_desc *d, const double *x, const double *w,
                            const double *bias, double *y, const fc_activation *post);

/* ---- configuration (dispatch.c) ------------------------------------------ */

/* The instruction-set level every kernel family follows: decided once, at
 * the first call, from the CPU and the environment (dispatch.c):
 * FASTCONV_DISABLE_SIMD=1 portable; else AVX-512 where the CPU and OS have
 * AVX-512 F/BW/DQ/VL (the default; FASTCONV_DISABLE_AVX512=1 keeps AVX2, and
 * a build with -DFC_AVX512_BY_DEFAULT=0 makes it opt-in through
 * FASTCONV_ENABLE_AVX512=1); else AVX2+FMA where the CPU has it; else
 * portable (always on other architectures). */
typedef enum {
    FC_ISA_NONE = -1,        /* (a family's variant) not used at this level */
    FC_ISA_PORTABLE = 0,
    FC_ISA_AVX2 = 1,         /* AVX2 + FMA */
    FC_ISA_AVX512 = 2        /* AVX-512 F/BW/DQ/VL */
} fc_isa_level;

/* The kernel families that have per-ISA variants. */
typedef enum {
    FC_FAM_DIRECT = 0,       /* the direct driver's tiles (fc_kernels) */
    FC_FAM_DW_NCHW,          /* conv_depthwise.c */
    FC_FAM_DW_NHWC,          /* conv_depthwise_nhwc.c */
    FC_FAM_SMALL,            /* conv_small.h */
    FC_FAM_FIRST,            /* conv_first.h */
    FC_FAM_1X1S,             /* conv_1x1.h: 1x1 with stride or padding */
    FC_FAM_1X1_GEMM,         /* conv_1x1_gemm.h */
    FC_FAM_ACT,              /* the activation loops (activation.c) */
    FC_FAM_ACT_GRAD,         /* their derivatives (act_grad.c, grad_weight.c) */
    FC_FAM_GRAD_WEIGHT,      /* the weight gradient's micro-kernels (grad_weight.c) */
    FC_FAM_POOL,             /* max pooling (pool.c, in fastconv._pool) */
    FC_FAM_WINOGRAD,         /* winograd.c */
    FC_FAM_PEAK,             /* the FMA peak probe (peak.c) */
    FC_FAM_COUNT
} fc_isa_family;

int fc_isa(void);                    /* the level now (fc_isa_level) */
/* The variant `family` runs at the level now: FC_ISA_NONE where the family is
 * not used (its calls go to another, e.g. the direct driver's tiles).  Every
 * family picks its code through this, at every call. */
int fc_isa_variant(int family);
/* The same at any level, without the note below (what show_config lists). */
int fc_isa_variant_at(int family, int level);
/* Tests: the variant fc_isa_variant last handed `family`, -2 when it was not
 * asked since fc_isa_reset_asked (a family that kept a copy of the level,
 * or read it elsewhere, would not ask). */
int fc_isa_asked(int family);
void fc_isa_reset_asked(void);
const char *fc_isa_family_name(int family);   /* NULL out of range */
const char *fc_isa_name(int level);           /* "portable", "avx2", "avx512", "none" */

/* The decision and what it was made from. */
typedef struct {
    int level;               /* fc_isa() */
    int chosen;              /* the level decided at the first call */
    int cpu;                 /* the widest level this CPU, OS and build support */
    int no_simd;             /* FASTCONV_DISABLE_SIMD was set (not 0) */
    int no_avx512;           /* FASTCONV_DISABLE_AVX512 was set (not 0) */
    int avx512_wanted;       /* by the build's default or FASTCONV_ENABLE_AVX512, not vetoed */
    int forced;              /* fc_force_kernels replaced the chosen level */
} fc_isa_info;
fc_isa_info fc_isa_get_info(void);

/* Name of the direct driver's kernel table in use ("avx512", "avx2+fma" or
 * "portable"), the one of fc_isa(). */
const char *fc_kernel_name(void);
/* Benchmarks/tests only: switch every family to a level between calls
 * ("portable", "avx2+fma", "avx512"; "avx512_2x8" or "avx512_4x6": the
 * AVX-512 level with that B-tile blocking instead of the one chosen for the
 * CPU; "default": back to the level decided from the CPU and environment);
 * 0 when the CPU/build lacks it.  Not thread-safe against running
 * convolutions. */
int fc_force_kernels(const char *name);   /* (the direct family's, conv_direct.c) */
/* What fc_force_kernels does for every family but the direct tiles' blocking:
 * the level (an FC_ISA_* value; -1: the decided one again); 0 when the CPU or
 * build lacks it (dispatch.c). */
int fc_force_isa(int level);
/* Tests: how many workspaces the kernels allocated themselves because the
 * caller passed none (core/alloc.c). */
long fc_workspace_fallbacks(void);
/* The plan of a direct call with a pack from fc_pack_weight_* (x through
 * element strides xstrides, NULL: dense NCHW; y channels-last or not): the
 * kernel family that runs it, by name ("depthwise", "depthwise_nhwc",
 * "small", "small_nhwc", "first", "strided_1x1", "direct"), and its
 * workspace bytes into *workspace (conv_direct_impl.h, families_). */
const char *fc_conv2d_direct_plan(const fc_conv_desc *d, const int64_t *xstrides,
                                  const fc_activation *pre, size_t elem_size, int y_nhwc,
                                  size_t *workspace);
int fc_openmp_enabled(void);
/* Best float32 FMA throughput (GFLOP/s) of `threads` threads running 12 FMA
 * chains for `iters` iterations, over `reps` tries, with the vector width of
 * the level in use (fc_isa_variant(FC_FAM_PEAK): 512-bit for AVX-512, 256-bit
 * for AVX2); 0 where no probe exists (portable level, or not x86).  Without
 * OpenMP only one thread runs. */
double fc_fma_peak_gflops(int threads, long iters, int reps);

int fc_get_num_threads(void);
void fc_set_num_threads(int n);

/* ---- im2col (im2col.c) ------------------------------------------------- */

/* Unfolds output rows [oh0, oh1) of channels [c0, c0 + nc) of one image x
 * (c_in, h_in, w_in) into col (nc * kh * kw, (oh1 - oh0) * w_out), zeros
 * where the window hits padding. */
void fc_im2col_rows_f32(const fc_conv_desc *d, const float *x, int64_t c0, int64_t nc,
                        int64_t oh0, int64_t oh1, float *col);
void fc_im2col_rows_f64(const fc_conv_desc *d, const double *x, int64_t c0, int64_t nc,
                        int64_t oh0, int64_t oh1, double *col);

#ifdef __cplusplus
}
#endif
#endif /* FASTCONV_H */
