# The 1x1 GEMM of the ONNX session (src/conv_1x1_gemm.h), included into
# _core.pyx so that it sees the kernel set dispatch.c chose.  Unlike the rest
# of this layer it checks the arrays it is given (shapes, dtypes, layout):
# its one caller (fastconv/onnx/_ops.py) is an internal fast path, and a
# mistake there must be an error, not a write out of bounds.

cdef extern from "conv_1x1_gemm.h" nogil:
    ctypedef struct fc_1x1g_desc:
        int64_t n, K, M, HW
        int64_t x_img, y_img, r_img
        float lo, hi
    int FC_1X1G_MR
    int fc_1x1g_available()
    int fc_conv1x1_gemm_f32(const fc_1x1g_desc *d, const float *x, const float *wp,
                            const float *bias, const float *res, float *y)

CONV1X1_MR = FC_1X1G_MR


def conv1x1_available():
    """Whether conv1x1_gemm runs here (the AVX-512 kernel set is in use)."""
    return bool(fc_1x1g_available())


cdef int _check_nchw(cnp.ndarray a, str name, int64_t n, int64_t c, int64_t hw,
                     bint channel_slice) except -1:
    if a.dtype.num != cnp.NPY_FLOAT32 or a.ndim != 4:
        raise TypeError(f"conv1x1_gemm: {name} must be a 4-D float32 array, "
                        f"got {a.ndim}-D {a.dtype}")
    if a.shape[0] != n or a.shape[1] != c or a.shape[2] * a.shape[3] != hw:
        raise ValueError(f"conv1x1_gemm: {name} has shape {(<object>a).shape!r}, expected "
                         f"({n}, {c}, H, W) with H * W = {hw}")
    cdef Py_ssize_t it = cnp.PyArray_ITEMSIZE(a)
    if a.strides[3] != it or a.strides[2] != a.shape[3] * it or a.strides[1] != hw * it \
            or (a.strides[0] != c * hw * it and not (channel_slice and a.strides[0] >= c * hw * it
                                                     and a.strides[0] % it == 0)) \
            or not cnp.PyArray_ISALIGNED(a):
        raise ValueError(f"conv1x1_gemm: {name} must be C-contiguous"
                         + (" (or a channel slice of one)" if channel_slice else ""))
    return 0


def conv1x1_gemm(cnp.ndarray x, cnp.ndarray wp, cnp.ndarray bias, cnp.ndarray out,
                 object res=None, float lo=float("-inf"), float hi=float("inf")):
    """out = clip(conv1x1(x) + bias (+ res), lo, hi), NCHW float32.

    wp: (ceil(M / MR), K, MR) packed weights (wp[b, k, o] = w[MR b + o, k],
    zero past M); bias: (ceil(M / MR) * MR,); x (N, K, H, W), out (N, M, H, W)
    and res (None or like out; it may be out itself): each C-contiguous or a
    channel slice of a C-contiguous array (a group's channels).  -> False
    where the kernel is not available (nothing written), True when done."""
    cdef fc_1x1g_desc d
    cdef cnp.ndarray r = None
    if x.ndim != 4 or wp.ndim != 3 or bias.ndim != 1:
        raise ValueError(f"conv1x1_gemm: x must be 4-D, wp 3-D, bias 1-D; got "
                         f"{x.ndim}, {wp.ndim}, {bias.ndim}")
    d.n = x.shape[0]; d.K = x.shape[1]; d.HW = x.shape[2] * x.shape[3]
    d.M = out.shape[1] if out.ndim == 4 else -1
    cdef int64_t nb = (d.M + FC_1X1G_MR - 1) // FC_1X1G_MR
    _check_nchw(x, "x", d.n, d.K, d.HW, True)
    _check_nchw(out, "out", d.n, d.M, d.HW, True)
    if wp.dtype.num != cnp.NPY_FLOAT32 or not wp.flags.c_contiguous \
            or (wp.shape[0], wp.shape[1], wp.shape[2]) != (nb, d.K, FC_1X1G_MR):
        raise ValueError(f"conv1x1_gemm: wp must be C-contiguous float32 of shape "
                         f"({nb}, {d.K}, {FC_1X1G_MR}), got {wp.dtype} {(<object>wp).shape!r}")
    if bias.dtype.num != cnp.NPY_FLOAT32 or not bias.flags.c_contiguous \
            or bias.shape[0] != nb * FC_1X1G_MR:
        raise ValueError(f"conv1x1_gemm: bias must be C-contiguous float32 of length "
                         f"{nb * FC_1X1G_MR}, got {bias.dtype} {(<object>bias).shape!r}")
    d.x_img = x.strides[0] // 4
    d.y_img = out.strides[0] // 4
    d.r_img = 0
    if res is not None:
        r = res
        _check_nchw(r, "res", d.n, d.M, d.HW, True)
        d.r_img = r.strides[0] // 4
        if cnp.PyArray_DATA(r) != cnp.PyArray_DATA(out) and _overlap(r, out):
            raise ValueError("conv1x1_gemm: res overlaps out without being it")
    if _overlap(x, out):
        raise ValueError("conv1x1_gemm: out overlaps x")
    d.lo = lo; d.hi = hi
    cdef const float *xp = <const float *>cnp.PyArray_DATA(x)
    cdef const float *wpp = <const float *>cnp.PyArray_DATA(wp)
    cdef const float *bp = <const float *>cnp.PyArray_DATA(bias)
    cdef const float *rp = <const float *>cnp.PyArray_DATA(r) if r is not None else NULL
    cdef float *yp = <float *>cnp.PyArray_DATA(out)
    cdef int rc
    with nogil:
        rc = fc_conv1x1_gemm_f32(&d, xp, wpp, bp, rp, yp)
    return rc == 0


cdef bint _overlap(cnp.ndarray a, cnp.ndarray b):
    """Whether the memory extents of a and b (positive strides) intersect."""
    cdef char *a0 = <char *>cnp.PyArray_DATA(a)
    cdef char *b0 = <char *>cnp.PyArray_DATA(b)
    cdef Py_ssize_t ea = 0, eb = 0
    cdef int i
    for i in range(a.ndim):
        ea += (a.shape[i] - 1) * a.strides[i]
    for i in range(b.ndim):
        eb += (b.shape[i] - 1) * b.strides[i]
    cdef Py_ssize_t ia = cnp.PyArray_ITEMSIZE(a), ib = cnp.PyArray_ITEMSIZE(b)
    return a0 <= b0 + eb + ib - 1 and b0 <= a0 + ea + ia - 1
