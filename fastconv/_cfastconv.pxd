# Declarations of the C interface in src/fastconv.h.
from libc.stdint cimport int64_t


cdef extern from "fastconv.h" nogil:
    ctypedef struct fc_activation:
        int kind
        double p0
        double p1

    ctypedef struct fc_conv_desc:
        int64_t n, c_in, h_in, w_in
        int64_t c_out, kh, kw
        int64_t h_out, w_out
        int64_t stride_h, stride_w
        int64_t dil_h, dil_w
        int64_t pad_top, pad_left
        int64_t groups

    enum:
        FC_OK
        FC_EINVAL
        FC_ENOMEM
        FC_ACT_COUNT

    void fc_activate_f32(const float *x, float *y, size_t n, const fc_activation *act)
    void fc_activate_f64(const double *x, double *y, size_t n, const fc_activation *act)
    void fc_bias_activate_f32(float *y, int64_t rows, int64_t len, const float *bias,
                              int64_t bias_len, const fc_activation *act)
    void fc_bias_activate_f64(double *y, int64_t rows, int64_t len, const double *bias,
                              int64_t bias_len, const fc_activation *act)

    size_t fc_conv2d_direct_workspace(const fc_conv_desc *d, const fc_activation *pre,
                                      size_t elem_size)
    int fc_conv2d_direct_f32(const fc_conv_desc *d, const float *x, const float *w,
                             const float *bias, float *y, const fc_activation *post,
                             const fc_activation *pre, void *workspace)
    int fc_conv2d_direct_f64(const fc_conv_desc *d, const double *x, const double *w,
                             const double *bias, double *y, const fc_activation *post,
                             const fc_activation *pre, void *workspace)

    int fc_conv2d_depthwise_f32(const fc_conv_desc *d, const float *x, const float *w,
                                const float *bias, float *y, const fc_activation *post)
    int fc_conv2d_depthwise_f64(const fc_conv_desc *d, const double *x, const double *w,
                                const double *bias, double *y, const fc_activation *post)

    void fc_bias_activate_ld_f32(float *y, int64_t rows, int64_t len, int64_t ld,
                                 const float *bias, int64_t bias_len, const fc_activation *act)
    void fc_bias_activate_ld_f64(double *y, int64_t rows, int64_t len, int64_t ld,
                                 const double *bias, int64_t bias_len, const fc_activation *act)
    void fc_im2col_rows_f32(const fc_conv_desc *d, const float *x, int64_t c0, int64_t nc,
                            int64_t oh0, int64_t oh1, float *col)
    void fc_im2col_rows_f64(const fc_conv_desc *d, const double *x, int64_t c0, int64_t nc,
                            int64_t oh0, int64_t oh1, double *col)

# Pre-packed weights and configuration (conv_direct.c, dispatch.c).
cdef extern from "fastconv.h" nogil:
    ctypedef struct fc_packed:
        pass
    fc_packed *fc_pack_weight_f32(const fc_conv_desc *d, const float *w)
    fc_packed *fc_pack_weight_f64(const fc_conv_desc *d, const double *w)
    fc_packed *fc_pack_weight_strided_f32(const fc_conv_desc *d, const float *w,
                                          const int64_t *wstrides)
    fc_packed *fc_pack_weight_strided_f64(const fc_conv_desc *d, const double *w,
                                          const int64_t *wstrides)
    int fc_repack_weight_strided_f32(fc_packed *p, const fc_conv_desc *d, const float *w,
                                     const int64_t *wstrides)
    int fc_repack_weight_strided_f64(fc_packed *p, const fc_conv_desc *d, const double *w,
                                     const int64_t *wstrides)
    void fc_weight_to_oihw_f32(const fc_conv_desc *d, const float *w, const int64_t *ws,
                               float *dst)
    void fc_weight_to_oihw_f64(const fc_conv_desc *d, const double *w, const int64_t *ws,
                               double *dst)
    void fc_packed_free(fc_packed *p)
    void fc_unpack_weight_f32(const fc_packed *p, float *dst, const int64_t *dstrides)
    void fc_unpack_weight_f64(const fc_packed *p, double *dst, const int64_t *dstrides)
    size_t fc_packed_bytes(const fc_packed *p)
    int fc_conv2d_packed_f32(const fc_conv_desc *d, const float *x, const fc_packed *w,
                             const float *bias, float *y, const fc_activation *post,
                             const fc_activation *pre, void *workspace)
    int fc_conv2d_packed_f64(const fc_conv_desc *d, const double *x, const fc_packed *w,
                             const double *bias, double *y, const fc_activation *post,
                             const fc_activation *pre, void *workspace)
    const char *fc_kernel_name()
    double fc_fma_peak_gflops(int threads, long iters, int reps)
    int FC_ISA_PORTABLE, FC_ISA_AVX2, FC_ISA_AVX512, FC_FAM_COUNT
    ctypedef struct fc_isa_info:
        int level, chosen, cpu, no_simd, no_avx512, avx512_wanted, forced
    int fc_isa()
    int fc_isa_variant(int family)
    int fc_isa_variant_at(int family, int level)
    int fc_isa_asked(int family)
    void fc_isa_reset_asked()
    const char *fc_isa_family_name(int family)
    const char *fc_isa_name(int level)
    fc_isa_info fc_isa_get_info()
    int fc_force_kernels(const char *name)
    int fc_openmp_enabled()
    int fc_get_num_threads()
    void fc_set_num_threads(int n)

# Any input strides, NCHW or NHWC output (conv_direct.c).
cdef extern from "fastconv.h" nogil:
    long fc_workspace_fallbacks()
    const char *fc_conv2d_direct_plan(const fc_conv_desc *d, const int64_t *xstrides,
                                      const fc_activation *pre, size_t elem_size, int y_nhwc,
                                      size_t *workspace)
    size_t fc_conv2d_direct_workspace_ex(const fc_conv_desc *d, const int64_t *xstrides,
                                         const fc_activation *pre, size_t elem_size,
                                         int y_nhwc)
    int fc_conv2d_packed_ex_f32(const fc_conv_desc *d, const float *x, const int64_t *xstrides,
                                const fc_packed *w, const float *bias, float *y, int y_nhwc,
                                const fc_activation *post, const fc_activation *pre,
                                void *workspace)
    int fc_conv2d_packed_ex_f64(const fc_conv_desc *d, const double *x, const int64_t *xstrides,
                                const fc_packed *w, const double *bias, double *y, int y_nhwc,
                                const fc_activation *post, const fc_activation *pre,
                                void *workspace)
    int fc_conv2d_direct_ex_f32(const fc_conv_desc *d, const float *x, const int64_t *xstrides,
                                const float *w, const int64_t *wstrides, const float *bias,
                                float *y, int y_nhwc, const fc_activation *post,
                                const fc_activation *pre, void *workspace)
    int fc_conv2d_direct_ex_f64(const fc_conv_desc *d, const double *x, const int64_t *xstrides,
                                const double *w, const int64_t *wstrides, const double *bias,
                                double *y, int y_nhwc, const fc_activation *post,
                                const fc_activation *pre, void *workspace)

# Raw weights packed into a kept buffer (conv_direct.c).
cdef extern from "fastconv.h" nogil:
    ctypedef struct fc_scratch:
        void *p
        size_t bytes
    void fc_scratch_release(fc_scratch *s)
    int fc_conv2d_raw_f32(const fc_conv_desc *d, const float *x, const int64_t *xstrides,
                          const float *w, const int64_t *wstrides, const float *bias, float *y,
                          int y_nhwc, const fc_activation *post, const fc_activation *pre,
                          fc_scratch *s)
    int fc_conv2d_raw_f64(const fc_conv_desc *d, const double *x, const int64_t *xstrides,
                          const double *w, const int64_t *wstrides, const double *bias,
                          double *y, int y_nhwc, const fc_activation *post,
                          const fc_activation *pre, fc_scratch *s)


cdef extern from "conv/depthwise/conv_depthwise_nhwc.h" nogil:
    int fc_dw_nhwc_wanted(const fc_conv_desc *d, const int64_t *xs, const fc_activation *pre,
                          size_t elem)
