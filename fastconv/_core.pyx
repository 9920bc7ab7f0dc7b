# cython: language_level=3
"""Thin wrappers over the C kernels.

This layer converts buffers and releases the GIL; it does not validate.  The
Python layer (conv.py, activations.py) has already checked shapes, dtypes and
contiguity of every array that reaches these functions.
"""
cimport numpy as cnp
from libc.stdint cimport int64_t

from fastconv._cfastconv cimport *

cnp.import_array()

ACT_COUNT = FC_ACT_COUNT


cdef class ActSpec:
    """An activation as the C kernels see it: a kind and two parameters."""
    cdef fc_activation a

    def __cinit__(self, int kind, double p0=0.0, double p1=0.0):
        self.a.kind = kind
        self.a.p0 = p0
        self.a.p1 = p1

    @property
    def kind(self):
        return self.a.kind


cdef class ConvDesc:
    """A validated convolution description (fc_conv_desc)."""
    cdef fc_conv_desc d

    def __cinit__(self, int64_t n, int64_t c_in, int64_t h_in, int64_t w_in,
                  int64_t c_out, int64_t kh, int64_t kw, int64_t h_out, int64_t w_out,
                  int64_t stride_h, int64_t stride_w, int64_t dil_h, int64_t dil_w,
                  int64_t pad_top, int64_t pad_left, int64_t groups):
        self.d.n = n
        self.d.c_in = c_in
        self.d.h_in = h_in
        self.d.w_in = w_in
        self.d.c_out = c_out
        self.d.kh = kh
        self.d.kw = kw
        self.d.h_out = h_out
        self.d.w_out = w_out
        self.d.stride_h = stride_h
        self.d.stride_w = stride_w
        self.d.dil_h = dil_h
        self.d.dil_w = dil_w
        self.d.pad_top = pad_top
        self.d.pad_left = pad_left
        self.d.groups = groups

    def direct_workspace_bytes(self, ActSpec pre, size_t itemsize):
        return fc_conv2d_direct_workspace(&self.d, &pre.a, itemsize)


cdef inline bint _is_f32(cnp.ndarray a):
    return cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32


cdef inline void *_data(object a):
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


def activate(cnp.ndarray x, cnp.ndarray y, ActSpec act):
    """y = act(x) elementwise; x and y contiguous, same dtype and size."""
    cdef size_t n = <size_t>cnp.PyArray_SIZE(x)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    if _is_f32(x):
        with nogil:
            fc_activate_f32(<const float *>xp, <float *>yp, n, &act.a)
    else:
        with nogil:
            fc_activate_f64(<const double *>xp, <double *>yp, n, &act.a)


def bias_activate(cnp.ndarray y, int64_t rows, int64_t length, object bias, ActSpec act):
    """In place: y[r, :] = act(y[r, :] + bias[r % len(bias)])."""
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *bp = _data(bias)
    cdef int64_t nb = 0 if bias is None else cnp.PyArray_SIZE(<cnp.ndarray>bias)
    if _is_f32(y):
        with nogil:
            fc_bias_activate_f32(<float *>yp, rows, length, <const float *>bp, nb, &act.a)
    else:
        with nogil:
            fc_bias_activate_f64(<double *>yp, rows, length, <const double *>bp, nb, &act.a)


def conv2d_direct(ConvDesc desc, cnp.ndarray x, cnp.ndarray w, object bias, cnp.ndarray y,
                  ActSpec post, ActSpec pre, object workspace):
    """The direct convolution with fused pre- and post-activation."""
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *wp = cnp.PyArray_DATA(w)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *bp = _data(bias)
    cdef void *ws = _data(workspace)
    cdef int rc
    if _is_f32(x):
        with nogil:
            rc = fc_conv2d_direct_f32(&desc.d, <const float *>xp, <const float *>wp,
                                      <const float *>bp, <float *>yp, &post.a, &pre.a, ws)
    else:
        with nogil:
            rc = fc_conv2d_direct_f64(&desc.d, <const double *>xp, <const double *>wp,
                                      <const double *>bp, <double *>yp, &post.a, &pre.a, ws)
    if rc == FC_ENOMEM:
        raise MemoryError("fastconv: the convolution kernel could not allocate its buffers")
    if rc != FC_OK:
        raise RuntimeError(f"fastconv: internal error {rc} in the direct convolution")


def im2col(ConvDesc desc, cnp.ndarray x_image, int64_t c0, int64_t nc, cnp.ndarray col):
    """Unfold channels [c0, c0 + nc) of one (C, H, W) image into col."""
    cdef void *xp = cnp.PyArray_DATA(x_image)
    cdef void *cp = cnp.PyArray_DATA(col)
    if _is_f32(x_image):
        with nogil:
            fc_im2col_f32(&desc.d, <const float *>xp, c0, nc, <float *>cp)
    else:
        with nogil:
            fc_im2col_f64(&desc.d, <const double *>xp, c0, nc, <double *>cp)
