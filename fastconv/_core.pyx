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


def out_overlaps(cnp.ndarray out, cnp.ndarray x, cnp.ndarray w, object bias):
    """Whether C-contiguous `out` shares bytes with x, w or bias (all
    C-contiguous): np.may_share_memory for dense arrays, without its cost."""
    cdef char *o = <char *>cnp.PyArray_DATA(out)
    cdef char *oe = o + cnp.PyArray_NBYTES(out)
    cdef char *a = <char *>cnp.PyArray_DATA(x)
    if a < oe and o < a + cnp.PyArray_NBYTES(x):
        return True
    a = <char *>cnp.PyArray_DATA(w)
    if a < oe and o < a + cnp.PyArray_NBYTES(w):
        return True
    if bias is not None:
        a = <char *>cnp.PyArray_DATA(<cnp.ndarray>bias)
        if a < oe and o < a + cnp.PyArray_NBYTES(<cnp.ndarray>bias):
            return True
    return False


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


def conv2d_depthwise(ConvDesc desc, cnp.ndarray x, cnp.ndarray w, object bias, cnp.ndarray y,
                     ActSpec post):
    """The depthwise kernel (groups == c_in); False when desc is not depthwise."""
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *wp = cnp.PyArray_DATA(w)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *bp = _data(bias)
    cdef int rc
    if _is_f32(x):
        with nogil:
            rc = fc_conv2d_depthwise_f32(&desc.d, <const float *>xp, <const float *>wp,
                                         <const float *>bp, <float *>yp, &post.a)
    else:
        with nogil:
            rc = fc_conv2d_depthwise_f64(&desc.d, <const double *>xp, <const double *>wp,
                                         <const double *>bp, <double *>yp, &post.a)
    if rc == FC_EINVAL:
        return False
    if rc == FC_ENOMEM:
        raise MemoryError("fastconv: the depthwise kernel could not allocate its buffers")
    if rc != FC_OK:
        raise RuntimeError(f"fastconv: internal error {rc} in the depthwise convolution")
    return True


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


def im2col_rows(ConvDesc desc, cnp.ndarray x_image, int64_t c0, int64_t nc,
                int64_t oh0, int64_t oh1, cnp.ndarray col):
    """Unfold output rows [oh0, oh1) of channels [c0, c0 + nc) into col."""
    cdef void *xp = cnp.PyArray_DATA(x_image)
    cdef void *cp = cnp.PyArray_DATA(col)
    if _is_f32(x_image):
        with nogil:
            fc_im2col_rows_f32(&desc.d, <const float *>xp, c0, nc, oh0, oh1, <float *>cp)
    else:
        with nogil:
            fc_im2col_rows_f64(&desc.d, <const double *>xp, c0, nc, oh0, oh1, <double *>cp)


def bias_activate_ld(cnp.ndarray y, int64_t rows, int64_t length, int64_t ld, object bias,
                     ActSpec act):
    """In place on a (rows, length) view with row stride ld elements (unit
    column stride): y[r, :] = act(y[r, :] + bias[r])."""
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *bp = _data(bias)
    cdef int64_t nb = 0 if bias is None else cnp.PyArray_SIZE(<cnp.ndarray>bias)
    if _is_f32(y):
        with nogil:
            fc_bias_activate_ld_f32(<float *>yp, rows, length, ld, <const float *>bp, nb, &act.a)
    else:
        with nogil:
            fc_bias_activate_ld_f64(<double *>yp, rows, length, ld, <const double *>bp, nb, &act.a)


cdef class PackedWeight:
    """Weights (c_out, c_in/groups, kh, kw) packed once for the direct kernels.

    Holds its own copy: changing the source array afterwards does not change
    it.  `groups` and `c_in` are fixed at packing; any input size, stride,
    padding and dilation can use it.
    """
    cdef fc_packed *p
    cdef readonly object weight      # a private, read-only copy (OIHW)
    cdef readonly int64_t groups, c_in

    def __cinit__(self, cnp.ndarray w, int64_t groups):
        cdef fc_conv_desc d
        self.p = NULL
        w = w.copy()
        w.setflags(write=False)
        self.weight = w
        self.groups = groups
        self.c_in = w.shape[1] * groups
        d.c_out = w.shape[0]
        d.c_in = self.c_in
        d.kh = w.shape[2]
        d.kw = w.shape[3]
        d.groups = groups
        cdef void *wp = cnp.PyArray_DATA(w)
        if _is_f32(w):
            with nogil:
                self.p = fc_pack_weight_f32(&d, <const float *>wp)
        else:
            with nogil:
                self.p = fc_pack_weight_f64(&d, <const double *>wp)
        if self.p == NULL:
            raise MemoryError("fastconv: cannot allocate the packed weights")

    def __dealloc__(self):
        fc_packed_free(self.p)

    @property
    def nbytes(self):
        return fc_packed_bytes(self.p) + self.weight.nbytes

    @property
    def dtype(self):
        return self.weight.dtype

    @property
    def shape(self):
        return self.weight.shape


def conv2d_packed(ConvDesc desc, cnp.ndarray x, PackedWeight w, object bias, cnp.ndarray y,
                  ActSpec post, ActSpec pre, object workspace):
    """The direct convolution with pre-packed weights."""
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *bp = _data(bias)
    cdef void *ws = _data(workspace)
    cdef int rc
    if _is_f32(x):
        with nogil:
            rc = fc_conv2d_packed_f32(&desc.d, <const float *>xp, w.p, <const float *>bp,
                                      <float *>yp, &post.a, &pre.a, ws)
    else:
        with nogil:
            rc = fc_conv2d_packed_f64(&desc.d, <const double *>xp, w.p, <const double *>bp,
                                      <double *>yp, &post.a, &pre.a, ws)
    if rc == FC_ENOMEM:
        raise MemoryError("fastconv: the convolution kernel could not allocate its buffers")
    if rc != FC_OK:
        raise RuntimeError(f"fastconv: internal error {rc} in the direct convolution")


def config():
    """What the C side chose: kernels, CPU features, OpenMP and threads."""
    return {"kernels": fc_kernel_name().decode(),
            "cpu_avx2_fma": bool(fc_cpu_has_avx2_fma()),
            "simd_disabled_by_env": bool(fc_simd_disabled_by_env()),
            "openmp": bool(fc_openmp_enabled()),
            "threads": fc_get_num_threads()}


def set_num_threads(int n):
    fc_set_num_threads(n)


def get_num_threads():
    return fc_get_num_threads()
