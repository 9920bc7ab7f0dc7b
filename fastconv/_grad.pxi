# The backward-pass helpers (src/fastconv_grad.h), included into _core.pyx so
# that they share its ActSpec and ConvDesc.  As the rest of this layer: buffers
# in, GIL released, no validation (grad.py has done it).

cdef extern from "fastconv_grad.h" nogil:
    void fc_act_grad_f32(const float *g, const float *v, float *gz, int64_t outer,
                         int64_t channels, int64_t inner, const fc_activation *act,
                         int from_output, float *gbias)
    void fc_act_grad_f64(const double *g, const double *v, double *gz, int64_t outer,
                         int64_t channels, int64_t inner, const fc_activation *act,
                         int from_output, double *gbias)
    int fc_act_grad_has_output_form(const fc_activation *act)
    void fc_col2im_rows_f32(const fc_conv_desc *d, const float *col, int64_t c0, int64_t nc,
                            int64_t oh0, int64_t oh1, float *x)
    void fc_col2im_rows_f64(const fc_conv_desc *d, const double *col, int64_t c0, int64_t nc,
                            int64_t oh0, int64_t oh1, double *x)
    void fc_col2im_images_f32(const fc_conv_desc *d, const float *col, int64_t n_img, int64_t c0,
                              int64_t nc, int tap_major, float *x)
    void fc_col2im_images_f64(const fc_conv_desc *d, const double *col, int64_t n_img,
                              int64_t c0, int64_t nc, int tap_major, double *x)
    int fc_grad_weight_f32(const fc_conv_desc *d, const float *x, const int64_t *xstrides,
                           const float *g, const int64_t *gstrides, const float *v,
                           const fc_activation *act, int from_output, float *gw, int gw_hwio,
                           float *gbias, float *gz_out, fc_scratch *s)
    int fc_grad_weight_f64(const fc_conv_desc *d, const double *x, const int64_t *xstrides,
                           const double *g, const int64_t *gstrides, const double *v,
                           const fc_activation *act, int from_output, double *gw, int gw_hwio,
                           double *gbias, double *gz_out, fc_scratch *s)
    const char *fc_grad_weight_kernel_name()
    ctypedef struct fc_opt_step:
        int kind, nesterov
        double lr, momentum, beta_1c, beta_2c, epsilon, decay
    int FC_OPT_SGD, FC_OPT_ADAM
    void fc_opt_step_f32(const fc_opt_step *s, int64_t n, float *w, const float *g, float *m,
                         float *v, float *vhat)
    void fc_opt_step_f64(const fc_opt_step *s, int64_t n, double *w, const double *g,
                         double *m, double *v, double *vhat)
    void fc_bn_train_forward_f32(const float *x, int64_t outer, int64_t channels, int64_t inner,
                                 const float *gamma, const float *beta, double eps, float *xhat,
                                 float *y, float *mean, float *var, float *inv_std)
    void fc_bn_train_forward_f64(const double *x, int64_t outer, int64_t channels,
                                 int64_t inner, const double *gamma, const double *beta,
                                 double eps, double *xhat, double *y, double *mean, double *var,
                                 double *inv_std)
    void fc_bn_train_backward_f32(const float *g, const float *xhat, int64_t outer,
                                  int64_t channels, int64_t inner, const float *gamma,
                                  const float *inv_std, float *gbeta, float *ggamma, float *dx)
    void fc_bn_train_backward_f64(const double *g, const double *xhat, int64_t outer,
                                  int64_t channels, int64_t inner, const double *gamma,
                                  const double *inv_std, double *gbeta, double *ggamma,
                                  double *dx)


def act_grad(cnp.ndarray g, object v, object gz, int64_t outer, int64_t channels,
             int64_t inner, ActSpec act, bint from_output, object gbias):
    """gz = g * f'(v) over (outer, channels, inner) dense arrays (v is f's
    input, or its output when from_output); gbias[c] = the sum of gz over
    channel c when gbias is not None.  gz None: identity, nothing written."""
    cdef void *gp = cnp.PyArray_DATA(g)
    cdef void *vp = _data(v)
    cdef void *zp = _data(gz)
    cdef void *bp = _data(gbias)
    if _is_f32(g):
        with nogil:
            fc_act_grad_f32(<const float *>gp, <const float *>vp, <float *>zp, outer, channels,
                            inner, &act.a, from_output, <float *>bp)
    else:
        with nogil:
            fc_act_grad_f64(<const double *>gp, <const double *>vp, <double *>zp, outer,
                            channels, inner, &act.a, from_output, <double *>bp)


def act_grad_has_output_form(ActSpec act):
    return bool(fc_act_grad_has_output_form(&act.a))


def col2im_rows(ConvDesc desc, cnp.ndarray col, int64_t c0, int64_t nc, int64_t oh0,
                int64_t oh1, cnp.ndarray x_image):
    """Add col (nc * kh * kw, (oh1 - oh0) * w_out), output rows [oh0, oh1),
    into channels [c0, c0 + nc) of one dense (C, H, W) image (the adjoint of
    im2col_rows)."""
    cdef void *cp = cnp.PyArray_DATA(col)
    cdef void *xp = cnp.PyArray_DATA(x_image)
    if _is_f32(col):
        with nogil:
            fc_col2im_rows_f32(&desc.d, <const float *>cp, c0, nc, oh0, oh1, <float *>xp)
    else:
        with nogil:
            fc_col2im_rows_f64(&desc.d, <const double *>cp, c0, nc, oh0, oh1, <double *>xp)


def col2im_images(ConvDesc desc, cnp.ndarray col, int64_t c0, int64_t nc, cnp.ndarray x,
                  bint tap_major=False):
    """Add col (nc * kh * kw, n * h_out * w_out: image i's columns at
    i * h_out * w_out in each row) into channels [c0, c0 + nc) of the n dense
    (N, C, H, W) images x (whole images: col2im_rows for a batch).  Rows in
    (channel, kh, kw) order, or (kh, kw, channel) when tap_major."""
    cdef void *cp = cnp.PyArray_DATA(col)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef int64_t n = x.shape[0]
    if _is_f32(col):
        with nogil:
            fc_col2im_images_f32(&desc.d, <const float *>cp, n, c0, nc, tap_major, <float *>xp)
    else:
        with nogil:
            fc_col2im_images_f64(&desc.d, <const double *>cp, n, c0, nc, tap_major,
                                 <double *>xp)


def desc_geometry(ConvDesc desc):
    """(stride_h, stride_w, dil_h, dil_w, pad_top, pad_left) of a description."""
    return (desc.d.stride_h, desc.d.stride_w, desc.d.dil_h, desc.d.dil_w, desc.d.pad_top,
            desc.d.pad_left)


def same_strides(cnp.ndarray a, cnp.ndarray b):
    """Whether a and b (of one shape) are laid out alike: the same strides on
    every axis longer than 1 (the others are never stepped along)."""
    cdef int i
    for i in range(a.ndim):
        if a.shape[i] > 1 and a.strides[i] != b.strides[i]:
            return False
    return True


def grad_weight(ConvDesc desc, cnp.ndarray x, cnp.ndarray g, object v, ActSpec act,
                bint from_output, cnp.ndarray gw, bint gw_hwio, object gbias, object gz_out):
    """The weight gradient of the convolution desc into gw (dense OIHW, or HWIO
    when gw_hwio): the correlation of x with g * f'(v) (act identity: g); x
    and g 4-D in NCHW index order, any element strides (v with g's); the bias
    gradient into gbias and g * f'(v) into gz_out (dense NCHW) when not None
    (see fc_grad_weight_* in fastconv_grad.h).  Uses a kept scratch buffer."""
    cdef int64_t xs[4]
    cdef int64_t gs[4]
    cdef int rc
    if v is not None and not same_strides(v, g):
        raise ValueError("grad_weight: v must have g's strides")
    _elem_strides(x, xs)
    _elem_strides(g, gs)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *gp = cnp.PyArray_DATA(g)
    cdef void *vp = _data(v)
    cdef void *wp = cnp.PyArray_DATA(gw)
    cdef void *bp = _data(gbias)
    cdef void *zp = _data(gz_out)
    cdef _Scratch sc = _scratch_take()
    try:
        if _is_f32(x):
            with nogil:
                rc = fc_grad_weight_f32(&desc.d, <const float *>xp, xs, <const float *>gp, gs,
                                        <const float *>vp, &act.a, from_output, <float *>wp,
                                        gw_hwio, <float *>bp, <float *>zp, &sc.s)
        else:
            with nogil:
                rc = fc_grad_weight_f64(&desc.d, <const double *>xp, xs, <const double *>gp, gs,
                                        <const double *>vp, &act.a, from_output, <double *>wp,
                                        gw_hwio, <double *>bp, <double *>zp, &sc.s)
    finally:
        _scratch_give(sc)
    _check_status(rc, "the weight gradient")


def grad_weight_kernel_name():
    """The weight-gradient micro-kernels in use: "avx512", "avx2+fma" or "portable"."""
    return fc_grad_weight_kernel_name().decode()


def bn_train_forward(cnp.ndarray x, int64_t outer, int64_t channels, int64_t inner,
                     object gamma, object beta, double eps, cnp.ndarray xhat, cnp.ndarray y,
                     cnp.ndarray mean, cnp.ndarray var, cnp.ndarray inv_std):
    """Batch statistics, xhat and y of training-mode batch normalisation over
    dense (outer, channels, inner) arrays (fc_bn_train_forward_*; gamma/beta
    None: 1 and 0)."""
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *gp = _data(gamma)
    cdef void *bp = _data(beta)
    cdef void *hp = cnp.PyArray_DATA(xhat)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *mp = cnp.PyArray_DATA(mean)
    cdef void *vp = cnp.PyArray_DATA(var)
    cdef void *ip = cnp.PyArray_DATA(inv_std)
    if _is_f32(x):
        with nogil:
            fc_bn_train_forward_f32(<const float *>xp, outer, channels, inner,
                                    <const float *>gp, <const float *>bp, eps, <float *>hp,
                                    <float *>yp, <float *>mp, <float *>vp, <float *>ip)
    else:
        with nogil:
            fc_bn_train_forward_f64(<const double *>xp, outer, channels, inner,
                                    <const double *>gp, <const double *>bp, eps, <double *>hp,
                                    <double *>yp, <double *>mp, <double *>vp, <double *>ip)


def bn_train_backward(cnp.ndarray g, cnp.ndarray xhat, int64_t outer, int64_t channels,
                      int64_t inner, object gamma, cnp.ndarray inv_std, cnp.ndarray gbeta,
                      cnp.ndarray ggamma, object dx):
    """gbeta, ggamma and (dx not None) the input gradient of training-mode
    batch normalisation (fc_bn_train_backward_*)."""
    cdef void *gp = cnp.PyArray_DATA(g)
    cdef void *hp = cnp.PyArray_DATA(xhat)
    cdef void *ap = _data(gamma)
    cdef void *ip = cnp.PyArray_DATA(inv_std)
    cdef void *bp = cnp.PyArray_DATA(gbeta)
    cdef void *cp = cnp.PyArray_DATA(ggamma)
    cdef void *dp = _data(dx)
    if _is_f32(g):
        with nogil:
            fc_bn_train_backward_f32(<const float *>gp, <const float *>hp, outer, channels,
                                     inner, <const float *>ap, <const float *>ip,
                                     <float *>bp, <float *>cp, <float *>dp)
    else:
        with nogil:
            fc_bn_train_backward_f64(<const double *>gp, <const double *>hp, outer, channels,
                                     inner, <const double *>ap, <const double *>ip,
                                     <double *>bp, <double *>cp, <double *>dp)


cdef int _check_opt_array(object a, str name, int typenum, Py_ssize_t n) except -1:
    if a is None:
        return 0
    if not isinstance(a, cnp.ndarray) or cnp.PyArray_TYPE(<cnp.ndarray>a) != typenum \
            or cnp.PyArray_SIZE(<cnp.ndarray>a) != n \
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) \
            or not cnp.PyArray_ISALIGNED(<cnp.ndarray>a):
        raise ValueError(f"optimizer_step: {name} must be an aligned C-contiguous array of "
                         f"{n} elements of the variable's dtype")
    if name != "gradient" and not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a):
        raise ValueError(f"optimizer_step: {name} must be writeable")
    return 0


def optimizer_step(str kind, cnp.ndarray w, cnp.ndarray g, object m=None, object v=None,
                   object vhat=None, double lr=0.0, double momentum=0.0, bint nesterov=False,
                   double beta_1c=0.0, double beta_2c=0.0, double epsilon=0.0,
                   double decay=1.0):
    """One step of "sgd" or "adam" on the variable w in place (fc_opt_step_*;
    fastconv/optimizers.py gives the rules and constants).  Unlike the rest
    of this layer it checks the arrays (dtype, size, C order), as a mistake
    here would write out of bounds."""
    cdef int tn = cnp.PyArray_TYPE(w)
    if tn != cnp.NPY_FLOAT32 and tn != cnp.NPY_FLOAT64:
        raise TypeError(f"optimizer_step: the variable must be float32 or float64, got {w.dtype}")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(w)
    _check_opt_array(w, "variable", tn, n)
    _check_opt_array(g, "gradient", tn, n)
    _check_opt_array(m, "momentum", tn, n)
    _check_opt_array(v, "velocity", tn, n)
    _check_opt_array(vhat, "velocity_hat", tn, n)
    cdef fc_opt_step s
    if kind == "sgd":
        s.kind = FC_OPT_SGD
    elif kind == "adam":
        s.kind = FC_OPT_ADAM
        if m is None or v is None:
            raise ValueError("optimizer_step: adam needs the momentum and velocity arrays")
    else:
        raise ValueError(f"optimizer_step: kind must be 'sgd' or 'adam', got {kind!r}")
    s.nesterov = nesterov
    s.lr, s.momentum, s.beta_1c, s.beta_2c = lr, momentum, beta_1c, beta_2c
    s.epsilon, s.decay = epsilon, decay
    cdef void *wp = cnp.PyArray_DATA(w)
    cdef void *gp = cnp.PyArray_DATA(g)
    cdef void *mp = _data(m)
    cdef void *vp = _data(v)
    cdef void *hp = _data(vhat)
    if tn == cnp.NPY_FLOAT32:
        with nogil:
            fc_opt_step_f32(&s, n, <float *>wp, <const float *>gp, <float *>mp, <float *>vp,
                            <float *>hp)
    else:
        with nogil:
            fc_opt_step_f64(&s, n, <double *>wp, <const double *>gp, <double *>mp,
                            <double *>vp, <double *>hp)
