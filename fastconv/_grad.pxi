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


def desc_geometry(ConvDesc desc):
    """(stride_h, stride_w, dil_h, dil_w, pad_top, pad_left) of a description."""
    return (desc.d.stride_h, desc.d.stride_w, desc.d.dil_h, desc.d.dil_w, desc.d.pad_top,
            desc.d.pad_left)
