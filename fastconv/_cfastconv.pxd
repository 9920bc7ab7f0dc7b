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

    void fc_im2col_f32(const fc_conv_desc *d, const float *x, int64_t c0, int64_t nc, float *col)
    void fc_im2col_f64(const fc_conv_desc *d, const double *x, int64_t c0, int64_t nc, double *col)
