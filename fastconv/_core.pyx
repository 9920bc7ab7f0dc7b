# cython: language_level=3
"""Thin wrappers over the C kernels.

This layer converts buffers and releases the GIL; it does not validate.  The
Python layer (fastconv/_validate.py, activations.py) has already checked
shapes, dtypes and contiguity of every array that reaches these functions.
"""
cimport numpy as cnp
import numpy as np
from libc.stdint cimport int64_t

from fastconv._cfastconv cimport *


cdef int _check_status(int rc, str what) except -1:
    """A C status as Python sees it: FC_ENOMEM a MemoryError, anything else
    but FC_OK an internal error (validated calls never get FC_EINVAL; a
    caller that can take FC_EINVAL as "this kernel declines" tests for it
    before calling this)."""
    if rc == FC_ENOMEM:
        raise MemoryError(f"fastconv: {what} could not allocate its buffers")
    if rc != FC_OK:
        raise RuntimeError(f"fastconv: internal error {rc} in {what}")
    return 0

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


# ---- the buffers raw-weight calls pack into ---------------------------------
# A call takes a scratch from the free list while it holds the GIL and puts it
# back after, so two calls running at once (the GIL is released inside) never
# share one.  The buffer keeps its size between calls (no allocation, no page
# faults); it only ever holds what one call packed, never reused as weights.

cdef class _Scratch:
    """One fc_scratch (see fastconv.h), freed with the object."""
    cdef fc_scratch s

    def __cinit__(self):
        self.s.p = NULL
        self.s.bytes = 0

    def __dealloc__(self):
        fc_scratch_release(&self.s)


cdef list _scratch_free = []
# as many as calls may run at once from different threads (more are freed)
cdef Py_ssize_t _SCRATCH_KEEP = 8


cdef inline _Scratch _scratch_take():
    # len() and pop() run no Python code in between: no other thread can take it
    if len(_scratch_free):
        return <_Scratch>_scratch_free.pop()
    return _Scratch()


cdef inline void _scratch_give(_Scratch sc):
    if len(_scratch_free) < _SCRATCH_KEEP:
        _scratch_free.append(sc)


def scratch_bytes():
    """Bytes held by the free raw-call buffers (tests, memory accounting)."""
    return sum((<_Scratch>sc).s.bytes for sc in _scratch_free)


def release_scratch():
    """Free the buffers kept for raw-weight calls (the next call makes new ones)."""
    del _scratch_free[:]


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


cdef inline int _direct_call(const fc_conv_desc *d, bint f32, const void *xp,
                             const int64_t *xs, const void *wp, const int64_t *ws,
                             const fc_packed *pk, const void *bp, void *yp, bint y_nhwc,
                             const fc_activation *post, const fc_activation *pre,
                             void *workspace, fc_scratch *sc) noexcept nogil:
    """The direct convolution, every entry's one call into C: x through
    element strides xs (NULL: dense NCHW), y dense NCHW or (y_nhwc) NHWC; a
    pack pk (with workspace: NULL, the kernels allocate) or raw weights wp
    through strides ws (NULL: dense OIHW), packed into the scratch sc."""
    if pk != NULL:
        if f32:
            return fc_conv2d_packed_ex_f32(d, <const float *>xp, xs, pk, <const float *>bp,
                                           <float *>yp, y_nhwc, post, pre, workspace)
        return fc_conv2d_packed_ex_f64(d, <const double *>xp, xs, pk, <const double *>bp,
                                       <double *>yp, y_nhwc, post, pre, workspace)
    if f32:
        return fc_conv2d_raw_f32(d, <const float *>xp, xs, <const float *>wp, ws,
                                 <const float *>bp, <float *>yp, y_nhwc, post, pre, sc)
    return fc_conv2d_raw_f64(d, <const double *>xp, xs, <const double *>wp, ws,
                             <const double *>bp, <double *>yp, y_nhwc, post, pre, sc)


def conv2d_direct(ConvDesc desc, cnp.ndarray x, cnp.ndarray w, object bias, cnp.ndarray y,
                  ActSpec post, ActSpec pre):
    """The direct convolution with fused pre- and post-activation, w (dense
    OIHW) packed for this call into a kept scratch (its workspace too)."""
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *wp = cnp.PyArray_DATA(w)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *bp = _data(bias)
    cdef bint f32 = _is_f32(x)
    cdef int rc
    cdef _Scratch sc = _scratch_take()
    with nogil:
        rc = _direct_call(&desc.d, f32, xp, NULL, wp, NULL, NULL, bp, yp, False, &post.a,
                          &pre.a, NULL, &sc.s)
    _scratch_give(sc)
    _check_status(rc, "the direct convolution")


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
    _check_status(rc, "the depthwise convolution")
    return True


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


cdef _weight_to_oihw(cnp.ndarray w, int64_t groups, cnp.ndarray dst):
    """dst (dense OIHW, w's shape and dtype) = w, any element strides (a
    transposed view of HWIO weights: a blocked transpose in C, where NumPy's
    element-wise copy is slow)."""
    cdef fc_conv_desc d
    cdef int64_t ws[4]
    cdef int i
    item = w.itemsize
    if w.flags.c_contiguous or any(w.strides[i] % item for i in range(4)):
        dst[...] = w
        return
    for i in range(4):
        ws[i] = w.strides[i] // item
    d.c_out = w.shape[0]
    d.c_in = w.shape[1] * groups
    d.kh = w.shape[2]
    d.kw = w.shape[3]
    d.groups = groups
    cdef void *wp = cnp.PyArray_DATA(w)
    cdef void *dp = cnp.PyArray_DATA(dst)
    if _is_f32(w):
        with nogil:
            fc_weight_to_oihw_f32(&d, <const float *>wp, ws, <float *>dp)
    else:
        with nogil:
            fc_weight_to_oihw_f64(&d, <const double *>wp, ws, <double *>dp)


cdef inline bint _hwio_layout(cnp.ndarray w):
    """Whether w (OIHW indices) lies in memory as a C-contiguous HWIO array."""
    return w.transpose(2, 3, 1, 0).flags.c_contiguous


cdef inline bint _copies_in_pass(cnp.ndarray w):
    """Whether w (OIHW indices) is one the packing copies in its own pass
    (fc_pack_weight_copy_*): dense OIHW, or o-contiguous (a view of HWIO
    weights) with element strides."""
    if w.flags.c_contiguous:
        return True
    return w.strides[0] == w.itemsize and w.shape[0] > 1 \
        and all(w.strides[i] % w.itemsize == 0 for i in range(4))


cdef class PackedWeight:
    """Weights (c_out, c_in/groups, kh, kw) packed once for the direct kernels.

    Independent of the source array: changing it afterwards does not change
    the pack.  `groups` and `c_in` are fixed at packing; any input size,
    stride, padding and dilation can use it.  The pack keeps no copy of its
    source: `weight` (read-only, OIHW indices) is rebuilt from the packed
    layout, exactly, the first time something asks for it (the im2col and
    separate methods, pickling), in the source's order when that was HWIO (a
    Keras-layout kernel), else dense OIHW.  Packing writes one layout less
    for it: a third of pack_weight's time on 1x1 weights (docs/DESIGN.md,
    packed layouts).

    copy=False (conv._shared_pack, for the layers): w must be an OIHW view of
    HWIO weights; `weight` is then a read-only view of w itself, for an owner
    that packs again whenever it changes w.
    """
    cdef fc_packed *p
    cdef object _weight              # the weights (OIHW indices), None until asked for
    cdef bint _hwio                  # `weight` in HWIO order (else dense OIHW)
    cdef object _proto               # a data-less array of the weights' shape and dtype
    cdef readonly int64_t groups, c_in
    cdef readonly bint shared        # weight is a view of the caller's array (copy=False)
    cdef object _dense               # a dense OIHW copy of weight, made on demand

    def __cinit__(self, cnp.ndarray w, int64_t groups, bint copy=True):
        self.p = NULL
        self._dense = None
        self._weight = None
        self.shared = not copy
        self.groups = groups
        self.c_in = w.shape[1] * groups
        self._proto = np.broadcast_to(np.zeros((), w.dtype), (w.shape[0], w.shape[1],
                                                               w.shape[2], w.shape[3]))
        self._hwio = _hwio_layout(w) and not w.flags.c_contiguous
        if not copy:
            if not _hwio_layout(w):
                raise ValueError("PackedWeight(copy=False) needs an OIHW view of HWIO weights")
            own = w.view()
            own.setflags(write=False)
            self._weight = own
        self._pack(w, True)

    cdef _pack(self, cnp.ndarray w, bint fresh):
        """w (this pack's geometry, OIHW indices) into a new pack (fresh) or
        this one.  Strides other than dense OIHW or o-contiguous (a view of
        HWIO) go through a blocked dense copy first (fc_pack_weight_strided_*
        reads those element by element)."""
        cdef fc_conv_desc d
        cdef int64_t ws[4]
        cdef int rc = 0
        cdef int i
        if not _copies_in_pass(w):
            dense = np.empty((w.shape[0], w.shape[1], w.shape[2], w.shape[3]), w.dtype)
            _weight_to_oihw(w, self.groups, dense)
            w = dense
        self._desc(&d)
        for i in range(4):
            ws[i] = w.strides[i] // w.itemsize
        cdef void *wp = cnp.PyArray_DATA(w)
        if _is_f32(w):
            with nogil:
                if fresh:
                    self.p = fc_pack_weight_strided_f32(&d, <const float *>wp, ws)
                else:
                    rc = fc_repack_weight_strided_f32(self.p, &d, <const float *>wp, ws)
        else:
            with nogil:
                if fresh:
                    self.p = fc_pack_weight_strided_f64(&d, <const double *>wp, ws)
                else:
                    rc = fc_repack_weight_strided_f64(self.p, &d, <const double *>wp, ws)
        if fresh and self.p == NULL:
            raise MemoryError("fastconv: cannot allocate the packed weights")
        if rc == FC_EINVAL:
            raise ValueError("fastconv: the weights do not match this pack's geometry")
        _check_status(rc, "the repack")
        self._dense = None

    cdef _desc(self, fc_conv_desc *d):
        d.c_out = self._proto.shape[0]
        d.c_in = self.c_in
        d.kh = self._proto.shape[2]
        d.kw = self._proto.shape[3]
        d.groups = self.groups

    @property
    def weight(self):
        """The packed weights as a read-only array (OIHW indices), rebuilt
        from the pack on first use; a repack replaces it with a new array."""
        cdef int64_t ds[4]
        cdef int i
        cdef cnp.ndarray a
        if self._weight is None:
            s = self._proto.shape
            if self._hwio:
                a = np.empty((s[2], s[3], s[1], s[0]), self._proto.dtype).transpose(3, 2, 0, 1)
            else:
                a = np.empty(s, self._proto.dtype)
            for i in range(4):
                ds[i] = a.strides[i] // a.itemsize
            if _is_f32(a):
                with nogil:
                    fc_unpack_weight_f32(self.p, <float *>cnp.PyArray_DATA(a), ds)
            else:
                with nogil:
                    fc_unpack_weight_f64(self.p, <double *>cnp.PyArray_DATA(a), ds)
            a.setflags(write=False)
            if self._weight is None:   # (another thread may have rebuilt it meanwhile)
                self._weight = a
        return self._weight

    def _repack(self, cnp.ndarray w):
        """New weights into this pack's buffers (pack_weight's out=): w has
        this pack's shape and dtype (checked by the caller), any strides.
        Nothing is allocated (but for sources of odd strides), so no fresh
        pages are touched."""
        if self.shared:   # a view of the new array, packed from it (no copy)
            if not _hwio_layout(w):
                raise ValueError("a PackedWeight(copy=False) repacks OIHW views of HWIO weights")
            own = w.view()
            own.setflags(write=False)
            self._pack(w, False)
            self._weight = own
            return
        self._pack(w, False)
        self._weight = None

    def dense_weight(self):
        """weight as a dense OIHW array (itself when it is one; else a copy
        made once per packing, for the code paths that need that layout)."""
        if not self._hwio and not self.shared:
            return self.weight
        if self._dense is None:
            w = self.weight
            if w.flags.c_contiguous:
                return w
            d = np.empty(w.shape, w.dtype)
            _weight_to_oihw(w, self.groups, d)
            d.setflags(write=False)
            self._dense = d
        return self._dense

    def __dealloc__(self):
        fc_packed_free(self.p)

    @property
    def nbytes(self):
        """Bytes the pack holds: its layouts, and the rebuilt `weight` once
        asked for (a view of the caller's array with copy=False: not counted)."""
        return fc_packed_bytes(self.p) + (0 if self.shared or self._weight is None
                                          else self._weight.nbytes)

    @property
    def dtype(self):
        return self._proto.dtype

    @property
    def shape(self):
        return self._proto.shape


def conv2d_packed(ConvDesc desc, cnp.ndarray x, PackedWeight w, object bias, cnp.ndarray y,
                  ActSpec post, ActSpec pre, object workspace):
    """The direct convolution with pre-packed weights."""
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *bp = _data(bias)
    cdef void *ws = _data(workspace)
    cdef bint f32 = _is_f32(x)
    cdef int rc
    with nogil:
        rc = _direct_call(&desc.d, f32, xp, NULL, NULL, NULL, w.p, bp, yp, False, &post.a,
                          &pre.a, ws, NULL)
    _check_status(rc, "the direct convolution")


cdef inline void _elem_strides(cnp.ndarray a, int64_t *st):
    cdef int i
    cdef int64_t item = cnp.PyArray_ITEMSIZE(a)
    for i in range(4):
        st[i] = cnp.PyArray_STRIDE(a, i) // item


def direct_plan(ConvDesc desc, tuple xstrides, ActSpec pre, size_t itemsize, bint y_nhwc):
    """(family, workspace bytes) of conv2d_ex's plan with a PackedWeight (see
    direct_workspace_ex): the kernel family that runs the call."""
    cdef int64_t xs[4]
    cdef size_t ws = 0
    cdef int i
    for i in range(4):
        xs[i] = xstrides[i]
    name = fc_conv2d_direct_plan(&desc.d, xs, &pre.a, itemsize, y_nhwc, &ws).decode()
    return name, ws


def _workspace_fallbacks():
    """Tests: workspaces the kernels allocated because the caller passed none."""
    return fc_workspace_fallbacks()


def direct_workspace_ex(ConvDesc desc, tuple xstrides, ActSpec pre, size_t itemsize,
                        bint y_nhwc=False):
    """Workspace bytes of conv2d_ex with a PackedWeight for an x of these
    element strides (N, C, H, W order) and a channels-last output or not:
    what the call's plan picks (its kernel family and mode) needs."""
    cdef int64_t xs[4]
    cdef int i
    for i in range(4):
        xs[i] = xstrides[i]
    return fc_conv2d_direct_workspace_ex(&desc.d, xs, &pre.a, itemsize, y_nhwc)


def dw_nhwc_wanted(ConvDesc desc, tuple xstrides, ActSpec pre, size_t itemsize):
    """Whether the channels-last depthwise kernel takes a channels-last-output
    call with an x of these element strides (N, C, H, W order):
    fc_dw_nhwc_wanted, the rule the C routing reads."""
    cdef int64_t xs[4]
    cdef int i
    for i in range(4):
        xs[i] = xstrides[i]
    return bool(fc_dw_nhwc_wanted(&desc.d, xs, &pre.a, itemsize))


def conv2d_ex(ConvDesc desc, cnp.ndarray x, object w, object bias, cnp.ndarray y,
              bint y_nhwc, ActSpec post, ActSpec pre, object workspace):
    """The direct convolution on x of any strides, given as an (N, C, H, W)
    view (an NHWC array transposed, say), w a PackedWeight or an
    (O, I, kH, kW) view of any strides; y dense NCHW, or NHWC if y_nhwc.
    workspace: for a PackedWeight (raw weights take theirs from the scratch)."""
    cdef int64_t xs[4]
    cdef int64_t ws[4]
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *bp = _data(bias)
    cdef void *wkp = _data(workspace)
    cdef void *wp = NULL
    cdef fc_packed *pk = NULL
    cdef _Scratch sc = None
    cdef fc_scratch *scp = NULL
    cdef bint f32 = _is_f32(x)
    cdef int rc
    _elem_strides(x, xs)
    if isinstance(w, PackedWeight):
        pk = (<PackedWeight>w).p
    else:
        _elem_strides(<cnp.ndarray>w, ws)
        wp = cnp.PyArray_DATA(<cnp.ndarray>w)
        sc = _scratch_take()
        scp = &sc.s
    with nogil:
        rc = _direct_call(&desc.d, f32, xp, xs, wp, ws, pk, bp, yp, y_nhwc, &post.a, &pre.a,
                          wkp, scp)
    if sc is not None:
        _scratch_give(sc)
    _check_status(rc, "the direct convolution")


def config():
    """What the C side chose: kernels, the ISA decision and what it was made
    from, each family's variant, OpenMP and threads."""
    cdef fc_isa_info i = fc_isa_get_info()
    return {"kernels": fc_kernel_name().decode(),
            "isa": fc_isa_name(i.level).decode(),
            "isa_forced": bool(i.forced),
            "cpu_avx2_fma": i.cpu >= FC_ISA_AVX2,
            "simd_disabled_by_env": bool(i.no_simd),
            "cpu_avx512": i.cpu == FC_ISA_AVX512,
            "avx512_disabled_by_env": bool(i.no_avx512),
            "avx512_wanted": bool(i.avx512_wanted),
            "families": isa_families(),
            "openmp": bool(fc_openmp_enabled()),
            "threads": fc_get_num_threads()}


def isa_families():
    """{family: the variant it runs now ("avx512", "avx2", "portable" or
    "none": not used, its calls go to another family)}, from C."""
    cdef int level = fc_isa()
    return {fc_isa_family_name(f).decode(): fc_isa_name(fc_isa_variant_at(f, level)).decode()
            for f in range(FC_FAM_COUNT)}


def _isa_asked(bint reset=False):
    """Tests: {family: the variant it was last handed by the ISA decision, or
    None when it did not ask since the last reset}; reset: forget them after
    reading."""
    cdef int v
    out = {}
    for f in range(FC_FAM_COUNT):
        v = fc_isa_asked(f)
        out[fc_isa_family_name(f).decode()] = None if v == -2 else fc_isa_name(v).decode()
    if reset:
        fc_isa_reset_asked()
    return out


cdef int isa_variant(int family) noexcept nogil:
    """fc_isa_variant for the extension modules that do not link dispatch.c
    (fastconv._pool cimports it, _core.pxd)."""
    return fc_isa_variant(family)


def fma_peak_gflops(int threads=1, long iters=20000000, int reps=5):
    """Measured float32 FMA peak in GFLOP/s (0.0 where there is no probe)."""
    cdef double g
    with nogil:
        g = fc_fma_peak_gflops(threads, iters, reps)
    return g


def _force_kernels(str name):
    """Benchmarks/tests: every family at the level `name` from now on
    ("portable", "avx2+fma", "avx512", "avx512_2x8", "avx512_4x6"; "default":
    the level decided from the CPU and environment); False if absent."""
    cdef bytes b = name.encode()
    return bool(fc_force_kernels(b))


def set_num_threads(int n):
    fc_set_num_threads(n)


def get_num_threads():
    return fc_get_num_threads()


# ---- the per-call cache of fastconv.conv2d (fastconv/_cache.py) -------------
# One dict (fastconv._cache._CALL_CACHE), keyed by fast_key, of FastPlans, with
# _LastCall in front of it.  A repeated call with plain dense arrays and
# parameters seen before is found here without going back to Python.  A
# direct plan (the fused kernels on the caller's arrays: NCHW, or NHWC x and
# out with HWIO weights, read and written in place through the plan's
# strides) is checked and run here: the per-array checks (contiguity, out
# writeable, overlap) and the kernel call.  A template plan (another method,
# or fast math's resolved "auto", NCHW raw weights) is handed to the Python
# runner set by fast_setup (_cache._run_template).  Anything else returns None
# and takes conv.py's path, so every error message stays there (the few
# raised here are the same words).

cdef object _ActivationType = None
cdef object _run_template = None


def fast_setup(activation_type, run_template):
    """activation_type: fastconv.Activation (keyed by identity);
    run_template(template, x, weight, bias, out): runs a template plan."""
    global _ActivationType, _run_template
    _ActivationType = activation_type
    _run_template = run_template


cdef class FastPlan:
    """What a validated conv2d call derived from shapes and parameters: the
    direct kernel call, or (template not None) a Python method's template."""
    cdef ConvDesc desc
    cdef ActSpec post, pre
    cdef object user_shape       # the output as the caller sees it (layout, unbatched 3-D)
    cdef bint nogil_call
    cdef bint nhwc               # NHWC x and y, HWIO weights: read through xs / ws
    cdef int64_t xs[4]           # element strides (N, C, H, W order) of a dense x
    cdef int64_t ws[4]           # the same (O, I, kH, kW order) of a dense raw weight
    cdef int typenum
    cdef object keep             # the activation objects whose ids are in the key
    cdef readonly object template  # None: the direct kernels here; else _run_template's

    def __cinit__(self, ConvDesc desc, ActSpec post, ActSpec pre, tuple user_shape,
                  int typenum, object keep, object x_strides=None, object w_strides=None,
                  object template=None):
        """x_strides, w_strides: those a dense x and raw weight in the
        caller's layout have (NHWC, HWIO), in the kernels' index order; None
        for NCHW (the kernels' dense layouts).  template: what _run_template
        runs instead of the direct kernels (None: the direct kernels)."""
        cdef int i
        self.template = template
        self.desc = desc
        self.post = post
        self.pre = pre
        self.user_shape = user_shape
        self.typenum = typenum
        self.keep = keep
        self.nhwc = x_strides is not None
        if self.nhwc:
            for i in range(4):
                self.xs[i] = x_strides[i]
                self.ws[i] = w_strides[i]
        cdef double flops = 2.0 * desc.d.n * desc.d.c_out * desc.d.h_out * desc.d.w_out \
            * (desc.d.c_in // desc.d.groups) * desc.d.kh * desc.d.kw
        self.nogil_call = flops >= 2.0e5


cdef inline object _param_key(object v):
    cdef type t = type(v)
    if t is int or t is str:
        return v
    if t is tuple and len(<tuple>v) == 2 and type((<tuple>v)[0]) is int \
            and type((<tuple>v)[1]) is int:
        return v
    return None


cdef inline object _act_key(object a):
    if a is None or type(a) is str:
        return a
    if type(a) is _ActivationType:
        return id(a)
    return None


cpdef object fast_key(object x, object weight, object bias, object stride, object padding,
             object dilation, object groups, object activation, object pre_activation,
             object method, object data_format, object out, bint fast_math):
    """The key of a conv2d call in the per-call cache, or None when it cannot
    be cached: the one key function (fast_conv2d looks up with it,
    fastconv._cache.remember stores with it).  It tells apart what
    validation tells apart (1 from True or 1.0; Activations by identity, the
    plan holding them).  Weights: an ndarray, or a PackedWeight (by shape,
    dtype and groups).  fast_math: method "auto" under fast math (its own
    plans: the rule's choice is in them)."""
    cdef object wk
    if type(x) is not cnp.ndarray or type(data_format) is not str or \
            (data_format != "NCHW" and data_format != "NHWC"):
        return None
    if type(weight) is cnp.ndarray:
        wk = (weight.shape, weight.dtype)
    elif type(weight) is PackedWeight:
        wk = ("packed", (<PackedWeight>weight)._proto.shape, (<PackedWeight>weight)._proto.dtype,
              (<PackedWeight>weight).groups)
    else:
        return None
    if bias is not None and type(bias) is not cnp.ndarray:
        return None
    if out is not None and type(out) is not cnp.ndarray:
        return None
    if type(method) is not str:
        return None
    s, p, d, g = _param_key(stride), _param_key(padding), _param_key(dilation), _param_key(groups)
    if s is None or p is None or d is None or g is None:
        return None
    a, pa = _act_key(activation), _act_key(pre_activation)
    if (a is None and activation is not None) or (pa is None and pre_activation is not None):
        return None
    return (x.shape, x.dtype, wk,
            None if bias is None else (bias.shape, bias.dtype),
            None if out is None else (out.shape, out.dtype),
            method, s, p, d, g, a, pa, data_format, fast_math)


cdef inline bint _dense(object a):
    """C-contiguous and aligned: an input the kernels read in place, as _plan
    passes it on (an NHWC one it copies when misaligned, _strided_ok)."""
    return cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>a)


cdef inline bint _dense_out(object a):
    return cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)


cdef inline bint _overlaps(char *o, char *oe, object a):
    cdef char *p = <char *>cnp.PyArray_DATA(<cnp.ndarray>a)
    return p < oe and o < p + cnp.PyArray_NBYTES(<cnp.ndarray>a)


# The front of the cache, not a second one: the last call that found its plan
# in the dict, as C fields.  A call whose arguments are the same objects (the
# immutable parameters: ints, strs, int pairs, Activations; held here, so
# their ids are not reused), the same fast-math flag and arrays of the same
# type, dtype object and shape gets that plan without building and hashing
# the key tuple (half of the Python-side time of the seed layer's call).
# The comparison is key-for-key what fast_key tells apart, or stricter.
cdef struct _ArrSig:
    int nd                    # -1: None
    cnp.npy_intp dims[8]
    void *descr               # borrowed; a reference is held in _LastCall.descrs


cdef inline void _arr_sig_set(_ArrSig *s, object a):
    cdef int i
    if a is None:
        s.nd = -1
        s.descr = NULL
        return
    s.nd = min(cnp.PyArray_NDIM(<cnp.ndarray>a), 8)
    for i in range(s.nd):
        s.dims[i] = cnp.PyArray_DIMS(<cnp.ndarray>a)[i]
    s.descr = <void *>cnp.PyArray_DESCR(<cnp.ndarray>a)


cdef inline bint _arr_sig_eq(const _ArrSig *s, object a):
    cdef int i, nd
    if a is None:
        return s.nd == -1
    if type(a) is not cnp.ndarray or s.nd < 0:
        return False
    nd = cnp.PyArray_NDIM(<cnp.ndarray>a)
    if nd != s.nd or <void *>cnp.PyArray_DESCR(<cnp.ndarray>a) != s.descr:
        return False
    for i in range(nd):
        if cnp.PyArray_DIMS(<cnp.ndarray>a)[i] != s.dims[i]:
            return False
    return True


cdef class _LastCall:
    cdef FastPlan plan
    cdef _ArrSig x, w, b, o
    cdef bint w_packed
    cdef int64_t w_groups
    cdef object params               # (stride, padding, dilation, groups, ...) as passed
    cdef object descrs               # keeps the compared dtype objects alive
    cdef object cache                # the dict the plan came from
    cdef bint fast_math

    cdef inline bint matches(self, dict cache, object x, object weight, object bias, object stride,
                             object padding, object dilation, object groups,
                             object activation, object pre_activation, object method,
                             object data_format, object out, bint fast_math):
        if self.plan is None or cache is not self.cache or fast_math != self.fast_math \
                or type(x) is not cnp.ndarray:
            return False
        cdef tuple p = <tuple>self.params
        if stride is not p[0] or padding is not p[1] or dilation is not p[2] \
                or groups is not p[3] or activation is not p[4] \
                or pre_activation is not p[5] or method is not p[6] \
                or data_format is not p[7]:
            return False
        if type(weight) is PackedWeight:
            if not self.w_packed or (<PackedWeight>weight).groups != self.w_groups \
                    or not _arr_sig_eq(&self.w, (<PackedWeight>weight)._proto):
                return False
        elif self.w_packed or not _arr_sig_eq(&self.w, weight):
            return False
        return _arr_sig_eq(&self.x, x) and _arr_sig_eq(&self.b, bias) \
            and _arr_sig_eq(&self.o, out)

    cdef inline void remember(self, dict cache, FastPlan plan, object x, object weight, object bias,
                              object stride, object padding, object dilation, object groups,
                              object activation, object pre_activation, object method,
                              object data_format, object out, bint fast_math):
        # (fast_key accepted these: x, bias, out ndarrays or None, weight an
        # ndarray or a PackedWeight).  The plan is set last: a thread switch in
        # between (a released object's finaliser) finds no plan, not a mix.
        self.plan = None
        self.cache = cache
        self.fast_math = fast_math
        self.params = (stride, padding, dilation, groups, activation, pre_activation,
                       method, data_format)
        self.w_packed = type(weight) is PackedWeight
        cdef object w = (<PackedWeight>weight)._proto if self.w_packed else weight
        self.w_groups = (<PackedWeight>weight).groups if self.w_packed else 0
        _arr_sig_set(&self.x, x)
        _arr_sig_set(&self.w, w)
        _arr_sig_set(&self.b, bias)
        _arr_sig_set(&self.o, out)
        self.descrs = (x.dtype, w.dtype, None if bias is None else bias.dtype,
                       None if out is None else out.dtype)
        self.plan = plan


cdef _LastCall _last_call = _LastCall()


def fast_conv2d(dict cache, object x, object weight, object bias, object stride,
                object padding, object dilation, object groups, object activation,
                object pre_activation, object method, object data_format, object out,
                bint fast_math):
    """conv2d for a call whose plan is cached: the result, or None (take the
    full path: not cached, or an array that needs a copy)."""
    cdef FastPlan t
    if _last_call.matches(cache, x, weight, bias, stride, padding, dilation, groups, activation,
                          pre_activation, method, data_format, out, fast_math):
        t = _last_call.plan
    else:
        key = fast_key(x, weight, bias, stride, padding, dilation, groups, activation,
                       pre_activation, method, data_format, out, fast_math)
        if key is None:
            return None
        t = <FastPlan>cache.get(key)
        if t is None:
            return None
        _last_call.remember(cache, t, x, weight, bias, stride, padding, dilation, groups,
                            activation, pre_activation, method, data_format, out, fast_math)
    if t.template is not None:
        return _run_template(t.template, x, weight, bias, out)
    cdef bint packed = type(weight) is PackedWeight
    if not _dense(x) or (not packed and not _dense(weight)) or \
            (bias is not None and not _dense(bias)):
        return None
    cdef char *o
    cdef char *oe
    cdef cnp.ndarray y
    if out is not None:
        if not _dense_out(out):
            raise ValueError("conv2d: out must be C-contiguous")
        if not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out):
            raise ValueError("conv2d: out is read-only")
        o = <char *>cnp.PyArray_DATA(<cnp.ndarray>out)
        oe = o + cnp.PyArray_NBYTES(<cnp.ndarray>out)
        if _overlaps(o, oe, x) or (not packed and _overlaps(o, oe, weight)) or \
                (bias is not None and _overlaps(o, oe, bias)):
            raise ValueError("conv2d: out must not overlap the input, weight or bias")
        y = <cnp.ndarray>out
    else:
        y = np_empty(t.user_shape, t.typenum)
    cdef void *xp = cnp.PyArray_DATA(<cnp.ndarray>x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *bp = _data(bias)
    cdef void *wp = NULL
    cdef fc_packed *pk = NULL
    cdef const int64_t *xs = t.xs if t.nhwc else NULL
    cdef const int64_t *ws = t.ws if t.nhwc else NULL
    cdef bint f32 = t.typenum == cnp.NPY_FLOAT32
    cdef _Scratch sc = None
    cdef fc_scratch *scp = NULL
    if packed:
        pk = (<PackedWeight>weight).p
    else:
        wp = cnp.PyArray_DATA(<cnp.ndarray>weight)
        sc = _scratch_take()
        scp = &sc.s
    cdef int rc
    if t.nogil_call:
        with nogil:
            rc = _direct_call(&t.desc.d, f32, xp, xs, wp, ws, pk, bp, yp, t.nhwc, &t.post.a,
                              &t.pre.a, NULL, scp)
    else:
        rc = _direct_call(&t.desc.d, f32, xp, xs, wp, ws, pk, bp, yp, t.nhwc, &t.post.a,
                          &t.pre.a, NULL, scp)
    if sc is not None:
        _scratch_give(sc)
    _check_status(rc, "the direct convolution")
    return y


cdef object np_empty(object shape, int typenum):
    cdef cnp.npy_intp dims[4]
    cdef int i, nd = len(shape)
    for i in range(nd):
        dims[i] = shape[i]
    return cnp.PyArray_EMPTY(nd, dims, typenum, 0)


# ---- the backward-pass helpers (grad.py) ------------------------------------
include "_grad.pxi"

# ---- the ONNX session's 1x1 GEMM (fastconv/onnx) ----------------------------
include "_conv1x1.pxi"

# ---- the Winograd F(4x4, 3x3) and F(2x2, 3x3) path (winograd.c) -------------

cdef extern from "conv/winograd/winograd.h" nogil:
    ctypedef struct fc_wino_weight:
        pass
    int fc_winograd_choose_tile(const fc_conv_desc *d)
    fc_wino_weight *fc_winograd_pack_f32(const fc_conv_desc *d, const float *w,
                                         const int64_t *wstrides, int tile)
    fc_wino_weight *fc_winograd_pack_f64(const fc_conv_desc *d, const double *w,
                                         const int64_t *wstrides, int tile)
    void fc_winograd_free(fc_wino_weight *u)
    size_t fc_winograd_weight_bytes(const fc_wino_weight *u)
    int fc_winograd_weight_tile(const fc_wino_weight *u)
    size_t fc_winograd_workspace(const fc_conv_desc *d, size_t elem_size, int tile)
    int fc_winograd_f32(const fc_conv_desc *d, const float *x, const int64_t *xstrides,
                        const fc_wino_weight *u, const float *bias, float *y, int y_nhwc,
                        const fc_activation *post, const fc_activation *pre)
    int fc_winograd_f64(const fc_conv_desc *d, const double *x, const int64_t *xstrides,
                        const fc_wino_weight *u, const double *bias, double *y, int y_nhwc,
                        const fc_activation *post, const fc_activation *pre)
    int fc_winograd_raw_f32(const fc_conv_desc *d, const float *x, const int64_t *xstrides,
                            const float *w, const int64_t *wstrides, const float *bias,
                            float *y, int y_nhwc, const fc_activation *post,
                            const fc_activation *pre, fc_scratch *s)
    int fc_winograd_raw_f64(const fc_conv_desc *d, const double *x, const int64_t *xstrides,
                            const double *w, const int64_t *wstrides, const double *bias,
                            double *y, int y_nhwc, const fc_activation *post,
                            const fc_activation *pre, fc_scratch *s)
    const char *fc_winograd_kernel_name()
    void fc_winograd_tune(int tiles_per_block, size_t budget_bytes, int tile)
    void fc_winograd_tune_kc(int kc)


cdef class WinogradWeight:
    """3x3 weights (c_out, c_in/groups, 3, 3) transformed once for the
    Winograd path with output tiles of ``tile`` x ``tile`` (4 or 2; U = G g G^T,
    (tile + 2)^2 values per 3x3 kernel).

    Holds its own copy of the weights (``.weight``, read-only, OIHW) like
    PackedWeight: later changes to the source array do not change it.
    """
    cdef fc_wino_weight *p
    cdef readonly object weight
    cdef readonly int64_t groups, c_in
    cdef readonly int tile

    def __cinit__(self, cnp.ndarray w, int64_t groups, int tile):
        cdef fc_conv_desc d
        self.p = NULL
        if tile != 2 and tile != 4:
            raise ValueError(f"WinogradWeight: tile must be 2 or 4, got {tile}")
        self.tile = tile
        w = w.copy()
        w.setflags(write=False)
        self.weight = w
        self.groups = groups
        self.c_in = w.shape[1] * groups
        d.c_out = w.shape[0]
        d.c_in = self.c_in
        d.kh = 3
        d.kw = 3
        d.groups = groups
        cdef void *wp = cnp.PyArray_DATA(w)
        if _is_f32(w):
            with nogil:
                self.p = fc_winograd_pack_f32(&d, <const float *>wp, NULL, tile)
        else:
            with nogil:
                self.p = fc_winograd_pack_f64(&d, <const double *>wp, NULL, tile)
        if self.p == NULL:
            raise MemoryError("fastconv: cannot allocate the Winograd-transformed weights")

    def __dealloc__(self):
        fc_winograd_free(self.p)

    @property
    def nbytes(self):
        return fc_winograd_weight_bytes(self.p) + self.weight.nbytes

    @property
    def dtype(self):
        return self.weight.dtype

    @property
    def shape(self):
        return self.weight.shape


def conv2d_winograd(ConvDesc desc, cnp.ndarray x, object w, object bias, cnp.ndarray y,
                    bint y_nhwc, ActSpec post, ActSpec pre):
    """The Winograd convolution on x of any strides, given as an (N, C, H, W)
    view; w a WinogradWeight or an (O, I, 3, 3) view of any strides
    (transformed for this call); y dense NCHW, or NHWC if y_nhwc."""
    cdef int64_t xs[4]
    cdef int64_t ws[4]
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *bp = _data(bias)
    cdef void *wp = NULL
    cdef fc_wino_weight *u = NULL
    cdef int rc
    cdef bint f32 = _is_f32(x)
    cdef _Scratch sc = None
    _elem_strides(x, xs)
    if isinstance(w, WinogradWeight):
        u = (<WinogradWeight>w).p
    else:
        _elem_strides(<cnp.ndarray>w, ws)
        wp = cnp.PyArray_DATA(<cnp.ndarray>w)
        sc = _scratch_take()   # the transformed weights, kept for the next raw call
    with nogil:
        if u != NULL and f32:
            rc = fc_winograd_f32(&desc.d, <const float *>xp, xs, u, <const float *>bp,
                                 <float *>yp, y_nhwc, &post.a, &pre.a)
        elif u != NULL:
            rc = fc_winograd_f64(&desc.d, <const double *>xp, xs, u, <const double *>bp,
                                 <double *>yp, y_nhwc, &post.a, &pre.a)
        elif f32:
            rc = fc_winograd_raw_f32(&desc.d, <const float *>xp, xs, <const float *>wp, ws,
                                     <const float *>bp, <float *>yp, y_nhwc, &post.a, &pre.a,
                                     &sc.s)
        else:
            rc = fc_winograd_raw_f64(&desc.d, <const double *>xp, xs, <const double *>wp, ws,
                                     <const double *>bp, <double *>yp, y_nhwc, &post.a,
                                     &pre.a, &sc.s)
    if sc is not None:
        _scratch_give(sc)
    _check_status(rc, "the Winograd convolution")


def winograd_workspace(ConvDesc desc, size_t itemsize, int tile):
    """Bytes a Winograd call with this tile size (4, 2; 0: the plan's choice,
    as a plain-weight call) allocates for its tiles at the current thread count."""
    return fc_winograd_workspace(&desc.d, itemsize, tile)


def winograd_choose_tile(ConvDesc desc):
    """The tile size (4 or 2) the plan picks for desc (its spatial size
    unknown when h_out or w_out is 0: from the channels alone)."""
    return fc_winograd_choose_tile(&desc.d)


def winograd_kernel_name():
    """The Winograd kernel set in use ("avx512", "avx2+fma", "portable")."""
    return fc_winograd_kernel_name().decode()


def _winograd_tune(int tiles_per_block=0, size_t budget_bytes=0, int tile=0):
    """Benchmarks and tests: tiles per block, per-thread cache budget and the
    plan's tile size (for plain-weight calls and tile="auto"; 0: automatic)."""
    fc_winograd_tune(tiles_per_block, budget_bytes, tile)


def _winograd_tune_kc(int kc=0):
    """Benchmarks and tests: input channels per GEMM call (0: the plan's; < 0: all)."""
    fc_winograd_tune_kc(kc)
