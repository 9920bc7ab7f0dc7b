# The 1x1 GEMM of the ONNX session (src/conv/pointwise/conv_1x1_gemm.h), included into
# _core.pyx so that it sees the kernel set dispatch.c chose.  Unlike the rest
# of this layer it checks the arrays it is given (shapes, dtypes, layout):
# its one caller (fastconv/onnx/_ops.py) is an internal fast path, and a
# mistake there must be an error, not a write out of bounds.

cdef extern from "conv/pointwise/conv_1x1_gemm.h" nogil:
    ctypedef struct fc_1x1g_desc:
        int64_t n, K, M, HW
        int64_t x_img, y_img, r_img
        float lo, hi
    int FC_1X1G_MR
    int fc_1x1g_available()
    int fc_conv1x1_gemm_f32(const fc_1x1g_desc *d, const float *x, const float *wp,
                            const float *bias, const float *res, float *y)
    int fc_gemm_plain_f32(int64_t M, int64_t K, int64_t N, const float *a, int64_t lda,
                          const float *b, float *c)

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


def gemm_plain(cnp.ndarray a, cnp.ndarray b, cnp.ndarray c):
    """c = a @ b by the 1x1 GEMM's kernel with a as it is (fc_gemm_plain_f32):
    float32, a (M, K) with unit column stride (rows any multiple of 4 bytes
    apart: a column slice of a wider matrix), b (K, N) and c (M, N)
    C-contiguous, c overlapping neither.  -> False where the kernel is not
    available (nothing written), True when done."""
    if a.ndim != 2 or b.ndim != 2 or c.ndim != 2:
        raise ValueError("gemm_plain: a, b and c must be 2-D")
    cdef int64_t M = a.shape[0], K = a.shape[1], N = b.shape[1]
    if b.shape[0] != K or c.shape[0] != M or c.shape[1] != N:
        raise ValueError(f"gemm_plain: shapes {(<object>a).shape!r} @ {(<object>b).shape!r} "
                         f"-> {(<object>c).shape!r} do not match")
    for arr, name in ((a, "a"), (b, "b"), (c, "c")):
        if arr.dtype.num != cnp.NPY_FLOAT32 or not cnp.PyArray_ISALIGNED(arr):
            raise TypeError(f"gemm_plain: {name} must be an aligned float32 array")
    # (the stride of a length-1 axis is never used: NumPy may give it any value)
    cdef int64_t row_bytes = a.strides[0] if M > 1 else 4 * K
    if (K > 1 and a.strides[1] != 4) or row_bytes % 4 or row_bytes < 4 * K:
        raise ValueError("gemm_plain: a must have unit column stride and rows >= K apart")
    if not b.flags.c_contiguous or not c.flags.c_contiguous or not c.flags.writeable:
        raise ValueError("gemm_plain: b and c must be C-contiguous (c writeable)")
    if _overlap(a, c) or _overlap(b, c):
        raise ValueError("gemm_plain: c overlaps a or b")
    if M == 0 or N == 0:
        return True
    if K == 0:
        c[...] = 0
        return True
    cdef const float *ap = <const float *>cnp.PyArray_DATA(a)
    cdef const float *bp = <const float *>cnp.PyArray_DATA(b)
    cdef float *cp = <float *>cnp.PyArray_DATA(c)
    cdef int64_t lda = row_bytes // 4
    cdef int rc
    with nogil:
        rc = fc_gemm_plain_f32(M, K, N, ap, lda, bp, cp)
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
