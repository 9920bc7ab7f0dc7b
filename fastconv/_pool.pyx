# cython: language_level=3
"""Thin wrapper over the C pooling kernels in src/pool/pool.c.

It only turns buffers into pointers, releases the GIL and calls C; shapes and
arguments are validated by fastconv.layers.
"""
from libc.stdint cimport int64_t
from cython cimport floating

from fastconv._core cimport isa_variant

cdef extern from "pool/pool.h" nogil:
    ctypedef struct fc_pool_params:
        int64_t n, c, h, w
        int64_t oh, ow
        int64_t kh, kw
        int64_t sh, sw
        int64_t dh, dw
        int64_t pad_top, pad_bottom, pad_left, pad_right
        int mode
        int count_include_pad
    int FC_POOL_MAX
    int FC_POOL_AVG
    int fc_pool2d_f32(const float *x, float *y, const fc_pool_params *p)
    int fc_pool2d_f64(const double *x, double *y, const fc_pool_params *p)
    int fc_pool2d_nhwc_f32(const float *x, float *y, const fc_pool_params *p)
    int fc_pool2d_nhwc_f64(const double *x, double *y, const fc_pool_params *p)
    int fc_pool2d_backward_f32(const float *x, const float *gy, float *gx,
                               const fc_pool_params *p, int channels_last)
    int fc_pool2d_backward_f64(const double *x, const double *gy, double *gx,
                               const fc_pool_params *p, int channels_last)
    void fc_pool_bind_isa(int (*variant)(int family) noexcept nogil)
    int fc_pool_isa_variant()

MAX = FC_POOL_MAX
AVG = FC_POOL_AVG

# The kernels follow _core's ISA decision (fc_isa_variant), forcing included.
fc_pool_bind_isa(isa_variant)


def isa_variant_now():
    """The pooling kernels' variant as pool.c sees it (an fc_isa_level)."""
    return fc_pool_isa_variant()


def pool2d(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
           kernel, strides, dilation, pads, int mode, bint count_include_pad,
           bint channels_last=False):
    """out[n, c, i, j] = max/avg of x's window; pads = (top, bottom, left, right).
    channels_last: x (n, h, w, c) and out (n, oh, ow, c) instead."""
    cdef fc_pool_params p
    cdef int rc
    cdef int cl = channels_last
    if channels_last:
        p.n = x.shape[0]; p.h = x.shape[1]; p.w = x.shape[2]; p.c = x.shape[3]
        p.oh = out.shape[1]; p.ow = out.shape[2]
        if out.shape[0] != p.n or out.shape[3] != p.c:
            raise ValueError("pool2d: out has the wrong batch or channel size")
    else:
        p.n = x.shape[0]; p.c = x.shape[1]; p.h = x.shape[2]; p.w = x.shape[3]
        p.oh = out.shape[2]; p.ow = out.shape[3]
        if out.shape[0] != p.n or out.shape[1] != p.c:
            raise ValueError("pool2d: out has the wrong batch or channel size")
    p.kh, p.kw = kernel
    p.sh, p.sw = strides
    p.dh, p.dw = dilation
    p.pad_top, p.pad_bottom, p.pad_left, p.pad_right = pads
    p.mode = mode
    p.count_include_pad = count_include_pad
    if p.n * p.c * p.oh * p.ow == 0:
        return
    if floating is float:
        with nogil:
            if cl:
                rc = fc_pool2d_nhwc_f32(&x[0, 0, 0, 0], &out[0, 0, 0, 0], &p)
            else:
                rc = fc_pool2d_f32(&x[0, 0, 0, 0], &out[0, 0, 0, 0], &p)
    else:
        with nogil:
            if cl:
                rc = fc_pool2d_nhwc_f64(&x[0, 0, 0, 0], &out[0, 0, 0, 0], &p)
            else:
                rc = fc_pool2d_f64(&x[0, 0, 0, 0], &out[0, 0, 0, 0], &p)
    if rc == -2:
        raise MemoryError("pool2d: out of memory")
    if rc != 0:
        raise ValueError("pool2d: invalid arguments")


def pool2d_backward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] gy,
                    floating[:, :, :, ::1] gx, kernel, strides, dilation, pads, int mode,
                    bint count_include_pad, bint channels_last):
    """gx = the gradient of sum(gy * pool2d(x)) (cleared and written whole).

    NCHW arrays, or NHWC ones with channels_last (x, gx (n, h, w, c), gy
    (n, oh, ow, c)); x is read for max only (any array will do for average).
    """
    cdef fc_pool_params p
    cdef int rc
    cdef int cl = channels_last
    if channels_last:
        p.n = gx.shape[0]; p.h = gx.shape[1]; p.w = gx.shape[2]; p.c = gx.shape[3]
        p.oh = gy.shape[1]; p.ow = gy.shape[2]
        if gy.shape[3] != p.c:
            raise ValueError("pool2d_backward: gy has the wrong channel count")
    else:
        p.n = gx.shape[0]; p.c = gx.shape[1]; p.h = gx.shape[2]; p.w = gx.shape[3]
        p.oh = gy.shape[2]; p.ow = gy.shape[3]
        if gy.shape[1] != p.c:
            raise ValueError("pool2d_backward: gy has the wrong channel count")
    if gy.shape[0] != p.n:
        raise ValueError("pool2d_backward: gy has the wrong batch size")
    if mode == FC_POOL_MAX and (x.shape[0] != gx.shape[0] or x.shape[1] != gx.shape[1] or x.shape[2] != gx.shape[2]
            or x.shape[3] != gx.shape[3]):
        raise ValueError("pool2d_backward: x and gx differ in shape")
    p.kh, p.kw = kernel
    p.sh, p.sw = strides
    p.dh, p.dw = dilation
    p.pad_top, p.pad_bottom, p.pad_left, p.pad_right = pads
    p.mode = mode
    p.count_include_pad = count_include_pad
    if p.n * p.c * p.h * p.w == 0:
        return
    if p.oh * p.ow == 0:
        gx[...] = 0
        return
    if floating is float:
        with nogil:
            rc = fc_pool2d_backward_f32(&x[0, 0, 0, 0], &gy[0, 0, 0, 0], &gx[0, 0, 0, 0], &p, cl)
    else:
        with nogil:
            rc = fc_pool2d_backward_f64(&x[0, 0, 0, 0], &gy[0, 0, 0, 0], &gx[0, 0, 0, 0], &p, cl)
    if rc == -2:
        raise MemoryError("pool2d_backward: out of memory")
    if rc != 0:
        raise ValueError("pool2d_backward: invalid arguments")
