"""Gradients: conv2d_backward, conv_transpose2d and conv_transpose2d_backward.

The input gradient of a convolution, and conv_transpose2d's forward, are one
computation: a "transposed convolution" (col2im of W^T g).  Here it runs on the
forward direct kernels: output phase (rh, rw) of a stride-s transposed
convolution (the outputs at rh + s*i, rw + s*j) only ever meets the taps kh
with (rh + pad - kh*d) = 0 mod s, so each phase is an ordinary stride-1
convolution of g with its own flipped, channel-transposed sub-kernel: s^2
convolutions that together do exactly the useful multiply-adds (none with the
zeros a stride-dilated g would insert).  The weight gradient is a correlation
of the input with g: fastconv's own kernel (src/grad/grad_weight.c, register tiles
over both operands made position-major once per call), or for 1x1 kernels and
groups of few output channels, and for method "im2col", per group the GEMM g
(C_out x N*H_out*W_out) by the im2col of x through NumPy's BLAS.

The activation's derivative f'(z) is multiplied into grad_output, and the bias
gradient reduced, inside the weight-gradient kernel while it reads g (method
"fused"; it hands g * f'(z) on to the input gradient), or in one C pass
(src/activation/act_grad.c) before the kernels ("separate", "im2col", and the BLAS
cases); where f' is a function of f's output (relu family, sigmoid, tanh,
elu, selu, identity) the caller's ``output`` stands in for z, else z is
recomputed with the forward kernel.

Argument checking is conv.py's (_plan), so conv2d_backward accepts exactly
what conv2d accepts and says the same words about it.
"""
import math

import numpy as np

from fastconv import _core
from fastconv import conv as _conv
from fastconv.activations import _check_out, as_activation
from fastconv.config import blas_one_thread
from fastconv.conv import (METHODS, DATA_FORMATS, _Conv, _as_float_array, _int, _is_hwio_view,
                           _pair, _plan, _positive_pair, _shape_str, _user_shape, _MAX_BYTES,
                           _MAX_INDEX)

__all__ = ["conv2d_backward", "conv_transpose2d", "conv_transpose2d_backward"]

NEEDS = ("input", "weight", "bias")
_NO_ACT = as_activation(None)


def _one_blas(fn):
    """The entry points mix fastconv's OpenMP kernels with NumPy GEMMs: BLAS
    on one thread while they run (config.blas_one_thread)."""
    def wrapped(*args, **kwargs):
        with blas_one_thread():
            return fn(*args, **kwargs)
    wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
    wrapped.__wrapped__ = fn
    return wrapped


def _quiet(fn):
    """NaN and inf in the data propagate, as in the C kernels: no warnings
    from the NumPy operations about them."""
    def wrapped(*args, **kwargs):
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            return fn(*args, **kwargs)
    wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
    return wrapped


# ---- argument checks ---------------------------------------------------------

def _needs(needs, where):
    if isinstance(needs, str):
        needs = (needs,)
    try:
        names = tuple(needs)
    except TypeError:
        raise TypeError(f"{where}: needs must be a sequence of names out of {NEEDS}, "
                        f"got {needs!r}") from None
    for n in names:
        if n not in NEEDS:
            raise ValueError(f"{where}: unknown entry {n!r} in needs; expected names out of "
                             f"{NEEDS}")
    return frozenset(names)


def _grad_like(a, argname, shape, dtype, where):
    """An incoming array (grad_output, output) of the forward output's shape."""
    a = _as_float_array(a, argname)
    if a.dtype != dtype:
        raise TypeError(f"{where}: {argname} must have the input's dtype {dtype}, "
                        f"got {argname} of dtype {a.dtype}")
    if a.shape != tuple(shape):
        raise ValueError(f"{where}: expected {argname} of size {_shape_str(shape)} (the "
                         f"forward output's), but got {argname} of size {_shape_str(a.shape)}")
    if a.nbytes > _MAX_BYTES:
        raise ValueError(f"{where}: {argname} of shape {a.shape} is too large")
    return a


def _check_buffer(buf, argname, shape, dtype, where, inputs):
    """A caller's preallocated gradient buffer: exact shape and dtype,
    C-contiguous (grad_weight of an NCHW call: or the OIHW view of a
    C-contiguous HWIO array), writeable, sharing no memory with the inputs."""
    if argname == "grad_weight" and _is_hwio_view(buf) and len(shape) == 4:
        _check_out(buf.transpose(2, 3, 1, 0), tuple(shape[i] for i in (2, 3, 1, 0)), dtype,
                   where, argname)
    else:
        _check_out(buf, shape, dtype, where, argname)
    for name, a in inputs:
        if a is not None and np.may_share_memory(buf, a):
            raise ValueError(f"{where}: {argname} must not overlap {name}")


def _empty_batch_grads(do_x, do_w, gb, grad_input, grad_weight, xshape, wshape, dtype):
    """The gradients of an empty batch: grad_input empty, the weight and bias
    gradients (sums over no images) zero; the caller's buffers when given."""
    gi = None
    if do_x:
        gi = grad_input if grad_input is not None else np.empty(xshape, dtype)
    gw = None
    if do_w:
        gw = grad_weight if grad_weight is not None else np.empty(wshape, dtype)
        gw[...] = 0
    if gb is not None:
        gb[...] = 0
    return gi, gw, gb


def _buffers(where, dtype, wanted, given, inputs):
    """Check the grad_* buffers: wanted is {name: shape or None (not computed)}."""
    seen = []
    for name, shape in wanted.items():
        buf = given[name]
        if buf is None:
            continue
        if shape is None:
            raise ValueError(f"{where}: {name} was given but is not computed (see needs= "
                             f"and bias=)")
        _check_buffer(buf, name, shape, dtype, where, inputs + seen)
        seen.append((name, buf))


# ---- the derivative pass -----------------------------------------------------

@_quiet
def _activation_grad(g, v, act, from_output, gbias, fuse_bias):
    """gz = g * f'(v) (NCHW dense g, v), the bias gradient into gbias (or
    None): in one C pass when fuse_bias, else a second pass (method
    "separate": the way torch runs it)."""
    n, c = g.shape[:2]
    inner = g.shape[2] * g.shape[3]
    if act.is_identity:
        gz = g
        if gbias is not None:
            if fuse_bias:
                _core.act_grad(g, None, None, n, c, inner, act._spec, False, gbias)
            else:
                np.sum(g, axis=(0, 2, 3), out=gbias)
        return gz
    gz = np.empty_like(g)
    _core.act_grad(g, v, gz, n, c, inner, act._spec, from_output,
                   gbias if fuse_bias else None)
    if gbias is not None and not fuse_bias:
        np.sum(gz, axis=(0, 2, 3), out=gbias)
    return gz


def _uses_output(act, output):
    return output is not None and not act.is_identity and \
        _core.act_grad_has_output_form(act._spec)


# ---- the transposed convolution (input gradient, conv_transpose2d) -----------

def _axis_phases(size_out, size_g, k, s, d, pad):
    """The phases r of one axis of a transposed convolution: (r, n_r, taps,
    lo, hi, pad_r) with n_r outputs r, r + s, ...; taps the kernel indices
    that reach them, in the order of the phase's cross-correlation (flipped),
    as a slice;
    g cropped to [lo, hi) with pad_r zero rows before it.  taps is empty for a
    phase that no tap reaches (or that reads no row of g)."""
    phases = []
    dd = d // math.gcd(s, d)   # taps s/gcd apart in k are dd apart in g
    for r in range(min(s, size_out)):
        n_r = (size_out - r + s - 1) // s
        taps = [t for t in range(k) if (r + pad - t * d) % s == 0]
        if not taps:
            phases.append((r, n_r, None, 0, 0, 0))
            continue
        c0 = (r + pad - taps[0] * d) // s
        pad_r = (len(taps) - 1) * dd - c0
        lo = max(0, -pad_r)
        hi = min(size_g, n_r - pad_r + (len(taps) - 1) * dd)
        if hi <= lo:
            phases.append((r, n_r, None, 0, 0, 0))
            continue
        # the taps reversed, as a slice (an arithmetic progression): the
        # sub-kernel is a view of the weights, read through its strides
        step = s // math.gcd(s, d)
        stop = taps[0] - step
        phases.append((r, n_r, slice(taps[-1], stop if stop >= 0 else None, -step), lo, hi,
                       pad_r + lo))
    return phases, dd


def _conv_weight_of(w, groups):
    """A transposed convolution's weight (C_in, C_out/groups, kH, kW) as the
    weight (C_out, C_in/groups, kH, kW) of the convolutions that compute it."""
    ci, cog, kh, kw = w.shape
    return w.reshape(groups, ci // groups, cog, kh, kw).transpose(0, 2, 1, 3, 4).reshape(
        groups * cog, ci // groups, kh, kw)


#: "auto" runs the transposed convolution as GEMM + col2im below this many
#: output pixels (N * H * W): the direct kernels pack the (phase) weights on
#: every call, a cost of the weights' size that few pixels do not amortise
#: (measured, 1 thread: resnet_3x3_512 (49 pixels) 1.8x and resnet_3x3_256
#: (196) 1.2x faster by GEMM; resnet_3x3_128 (784) on par or slower).
_AUTO_IM2COL_PIXELS = 400


def _tconv(g, w, geo, groups, out, bias, post, method):
    """out = post(T(g) + bias), out (N, C_out, H, W) dense and written whole:
    T(g)[n, co, ih, iw] = sum g[n, ci, oh, ow] w[ci, co', kh, kw] over
    ih = oh*sh - pt + kh*dh, iw = ow*sw - pl + kw*dw (co' = co within its
    group), w (C_in, C_out/groups, kH, kW), g (N, C_in, Hg, Wg) dense.  The
    adjoint of the convolution (geo) from out's shape to g's."""
    if method == "im2col" or (method == "auto" and
                              out.shape[0] * out.shape[2] * out.shape[3] < _AUTO_IM2COL_PIXELS):
        return _tconv_im2col(g, w, geo, groups, out, bias, post)
    sh, sw, dh, dw, pt, pl = geo
    n, c_out, h, wd = out.shape
    c_in = g.shape[1]
    kh, kw = w.shape[2:]
    in_kernel = post if method in ("auto", "fused") else _NO_ACT
    ph, ddh = _axis_phases(h, g.shape[2], kh, sh, dh, pt)
    pw, ddw = _axis_phases(wd, g.shape[3], kw, sw, dw, pl)
    wc = None
    whole = sh == 1 and sw == 1
    for (rh, nh, th, loh, hih, padh) in ph:
        for (rw, nw, tw, low, hiw, padw) in pw:
            dst = out if whole else out[:, :, rh::sh, rw::sw]
            if th is None or tw is None:
                dst[...] = 0 if bias is None else bias.reshape(1, -1, 1, 1)
                if not in_kernel.is_identity:
                    dst[...] = _conv._activated_copy(np.ascontiguousarray(dst), in_kernel)
                continue
            if wc is None:
                wc = _conv_weight_of(w, groups)
            wsub = wc[:, :, th, tw]   # a strided view: packed by the kernel call
            gv = g[:, :, loh:hih, low:hiw]
            desc = _core.ConvDesc(n, c_in, hih - loh, hiw - low, c_out, wsub.shape[2],
                                  wsub.shape[3], nh, nw, 1, 1, ddh, ddw, padh, padw, groups)
            y = dst if whole else np.empty((n, c_out, nh, nw), out.dtype)
            nbytes = _core.direct_workspace_ex(desc, _conv._elem_strides(gv), _NO_ACT._spec,
                                               g.itemsize)
            ws = np.empty(nbytes, np.uint8) if nbytes else None
            _core.conv2d_ex(desc, gv, wsub, bias, y, False, in_kernel._spec, _NO_ACT._spec, ws)
            if not whole:
                dst[...] = y
    if not post.is_identity and in_kernel.is_identity:
        _core.activate(out, out, post._spec)
    return out


@_quiet
def _gemm_into(a, b, out):
    """out = a @ b: by the 1x1 GEMM's kernel on fastconv's threads where it
    runs (AVX-512, float32, a with unit column stride, b dense), else by
    NumPy's BLAS (held to one thread inside the gradients, _one_blas).  The
    input gradient's GEMM of ResNet's small last stages (a: a layer's HWIO
    kernel as it is, b: a few pixels): 0.77 against 2.5 ms for 4608 x 512 x 32
    on 2 threads (benchmarks/NOTES.md, training step)."""
    if out.dtype == np.float32 and a.strides[1] == a.itemsize and b.flags.c_contiguous and \
            _core.gemm_plain(a, b, out):
        return
    np.matmul(a, b, out=out)


def _tconv_im2col(g, w, geo, groups, out, bias, post):
    """_tconv as GEMMs (W^T g per group, over a batch of images or a block of
    one image's rows) through NumPy's BLAS, scattered by col2im; bias and
    activation as one last pass."""
    sh, sw, dh, dw, pt, pl = geo
    n, c_out, h, wd = out.shape
    c_in, hg, wg = g.shape[1:]
    kh, kw = w.shape[2:]
    cig, cog = c_in // groups, c_out // groups
    k = cog * kh * kw
    desc = _core.ConvDesc(n, c_out, h, wd, c_in, kh, kw, hg, wg, sh, sw, dh, dw, pt, pl,
                          groups)
    rows = _conv._im2col_block_rows(k, hg, wg, g.itemsize)
    out[...] = 0
    hw = hg * wg
    if rows == hg and _is_hwio_view(w):
        # w is the view of an HWIO copy (a layer's pack): its (kh, kw, C_out/g)
        # rows are the GEMM's operand as they are, col2im takes them tap-major
        amat = w.transpose(2, 3, 1, 0).reshape(k, c_in)
        wmats = [amat[:, grp * cig:(grp + 1) * cig] for grp in range(groups)]
        tap_major = True
    else:
        w = np.ascontiguousarray(w)
        wmats = [m.T for m in w.reshape(groups, cig, k)]
        tap_major = False
    if rows == hg and (n > 1 or tap_major):
        # Whole images fit a block: one GEMM for a batch of them, so that a
        # small image (ResNet's last stages: 2x2 to 7x7) does not read all
        # the weights once per image (benchmarks/NOTES.md, training step).
        nb = int(min(n, max(_conv._IM2COL_BLOCK_BYTES // max(k * hw * g.itemsize, 1),
                            -(-_conv._IM2COL_MIN_COLS // hw), 1)))
        col = np.empty(k * nb * hw, g.dtype)
        gcols = np.empty(cig * nb * hw, g.dtype)
        for i0 in range(0, n, nb):
            i1 = min(i0 + nb, n)
            m = (i1 - i0) * hw
            cblk = col[:k * m].reshape(k, m)
            gmat = gcols[:cig * m].reshape(cig, m)
            for grp in range(groups):
                np.copyto(gmat.reshape(cig, i1 - i0, hw),
                          g[i0:i1, grp * cig:(grp + 1) * cig].reshape(i1 - i0, cig, hw)
                          .transpose(1, 0, 2))
                _gemm_into(wmats[grp], gmat, cblk)
                _core.col2im_images(desc, cblk, grp * cog, cog, out[i0:i1], tap_major)
    else:
        col = np.empty(k * rows * wg, g.dtype)
        for i in range(n):
            for grp in range(groups):
                gmat = g[i, grp * cig:(grp + 1) * cig].reshape(cig, hw)
                for r0 in range(0, hg, rows):
                    r1 = min(r0 + rows, hg)
                    cblk = col[:k * (r1 - r0) * wg].reshape(k, (r1 - r0) * wg)
                    np.matmul(wmats[grp], gmat[:, r0 * wg:r1 * wg], out=cblk)
                    _core.col2im_rows(desc, cblk, grp * cog, cog, r0, r1, out[i])
    if bias is not None or not post.is_identity:
        _core.bias_activate(out, n * c_out, h * wd, bias, post._spec)
    return out


# ---- the forward convolution and the weight gradient on given geometry ---------

def _conv_nchw(x, w, geo, groups, y, bias, post, method):
    """y = post(conv(x, w) + bias) for the geometry geo, y (N, C_out, Ho, Wo)
    dense; x (N, C_in, H, W) of any strides, read only where the outputs reach
    (rows and columns past the last one any output reads are cropped: the
    kernels want the bottom/right padding >= 0)."""
    sh, sw, dh, dw, pt, pl = geo
    n, c_out, ho, wo = y.shape
    kh, kw = w.shape[2:]
    hneed = (ho - 1) * sh + dh * (kh - 1) + 1 - pt
    wneed = (wo - 1) * sw + dw * (kw - 1) + 1 - pl
    x = x[:, :, :max(min(hneed, x.shape[2]), 0), :max(min(wneed, x.shape[3]), 0)]
    c_in, h, wd = x.shape[1:]
    desc = _core.ConvDesc(n, c_in, h, wd, c_out, kh, kw, ho, wo, sh, sw, dh, dw, pt, pl, groups)
    if method == "im2col":
        q = _Conv()
        q.x, q.w, q.bias, q.packed, q.desc = np.ascontiguousarray(x), w, bias, None, desc
        q.dtype, q.shape_out, q.post, q.pre = y.dtype, y.shape, post, _NO_ACT
        q.cin_g, q.cout_g = c_in // groups, c_out // groups
        _conv._run_im2col(q, y)
        return y
    in_kernel = post if method in ("auto", "fused") else _NO_ACT
    nbytes = _core.direct_workspace_ex(desc, _conv._elem_strides(x), _NO_ACT._spec, x.itemsize)
    ws = np.empty(nbytes, np.uint8) if nbytes else None
    _core.conv2d_ex(desc, x, w, bias, y, False, in_kernel._spec, _NO_ACT._spec, ws)
    if not post.is_identity and in_kernel.is_identity:
        _core.activate(y, y, post._spec)
    return y


@_quiet
def _weight_grad(x, gz, geo, groups, gw):
    """gw[co, ci, kh, kw] = sum over n, oh, ow of gz[n, co, oh, ow] *
    x[n, ci, oh*sh - pt + kh*dh, ow*sw - pl + kw*dw] (zero outside x): per
    group the GEMM gz_g (C_out/g x pixels) by im2col(x)^T, on blocks of rows.
    x, gz dense NCHW; gw dense (C_out, C_in/groups, kH, kW), overwritten."""
    sh, sw, dh, dw, pt, pl = geo
    n, c_in, h, wd = x.shape
    c_out, ho, wo = gz.shape[1:]
    kh, kw = gw.shape[2:]
    cig, cog = c_in // groups, c_out // groups
    k = cig * kh * kw
    gmat = gw.reshape(groups, cog, k)
    gmat[...] = 0
    acc = np.empty((cog, k), gw.dtype)
    pointwise = kh == kw == 1 and sh == sw == 1 and pt == pl == 0 and (ho, wo) == (h, wd)
    if pointwise:   # the column matrix is x itself
        for i in range(n):
            for grp in range(groups):
                np.matmul(gz[i, grp * cog:(grp + 1) * cog].reshape(cog, ho * wo),
                          x[i, grp * cig:(grp + 1) * cig].reshape(cig, h * wd).T, out=acc)
                gmat[grp] += acc
        return gw
    desc = _core.ConvDesc(n, c_in, h, wd, c_out, kh, kw, ho, wo, sh, sw, dh, dw, pt, pl, groups)
    rows = _conv._im2col_block_rows(k, ho, wo, x.itemsize)
    col = np.empty(k * rows * wo, x.dtype)
    for i in range(n):
        for grp in range(groups):
            gimg = gz[i, grp * cog:(grp + 1) * cog].reshape(cog, ho * wo)
            for r0 in range(0, ho, rows):
                r1 = min(r0 + rows, ho)
                cblk = col[:k * (r1 - r0) * wo].reshape(k, (r1 - r0) * wo)
                _core.im2col_rows(desc, x[i], grp * cig, cig, r0, r1, cblk)
                np.matmul(gimg[:, r0 * wo:r1 * wo], cblk.T, out=acc)
                gmat[grp] += acc
    return gw


def _strided(a):
    """a itself where the C kernels can read it through element strides, else
    a dense copy."""
    item = a.itemsize
    if all(st % item == 0 for st in a.strides):
        return a
    return np.ascontiguousarray(a)


def _nchw_view(a, nhwc, unbatched):
    """The caller's array as (N, C, H, W) indices, a view where it can be."""
    if unbatched:
        a = a[None]
    if nhwc:
        a = a.transpose(0, 3, 1, 2)
    return _strided(a)


def _weight_grad_kernel_suits(p):
    """Whether the weight-gradient kernel beats the BLAS path here: not for
    1x1 kernels (a plain GEMM on the NCHW arrays, nothing to unfold) nor for
    groups of few output channels (depthwise: the kernel's tiles would be
    mostly padding).  Measured, 1 thread (benchmarks/NOTES.md)."""
    kh, kw = p.w.shape[2:]
    return kh * kw > 1 and p.cout_g >= 8


def _weight_grad_kernel(x, g, v, act, from_output, desc, buf, wshape, hwio, gbias, gz_out):
    """The weight gradient by fastconv's kernel (src/grad/grad_weight.c): into buf
    (the caller's grad_weight, OIHW or HWIO as wshape) or a new array; the
    activation's derivative f'(v) applied to g inside, the bias gradient into
    gbias and g * f'(v) into gz_out (dense NCHW) when they are not None."""
    gw = buf if buf is not None else np.empty(wshape, x.dtype)
    _core.grad_weight(desc, x, g, v, act._spec, from_output, gw, hwio, gbias, gz_out)
    return gw


# ---- conv2d_backward -----------------------------------------------------------

def _nchw(a, nhwc, unbatched):
    """The caller's array as a dense (N, C, H, W) one (a view where it is)."""
    if unbatched:
        a = a[None]
    if nhwc:
        a = a.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(a)


def _nchw_target(buf, shape4, dtype, nhwc):
    """Where a kernel writes an NCHW result: the caller's buffer itself when
    its layout is NCHW, else a fresh array copied over afterwards."""
    if buf is not None and not nhwc:
        return buf.reshape(shape4)
    return np.empty(shape4, dtype)


def _deliver(res4, buf, nhwc, unbatched, perm):
    """The NCHW result res4 in the caller's layout (into buf if given)."""
    r = res4.transpose(perm) if nhwc else res4
    if buf is not None:
        if nhwc:
            buf[...] = r.reshape(buf.shape)
        return buf
    r = np.ascontiguousarray(r)
    return r[0] if unbatched else r


@_one_blas
def conv2d_backward(grad_output, x, weight, bias=None, stride=1, padding=0, dilation=1,
                    groups=1, *, activation=None, pre_activation=None, output=None,
                    linear_output=None, needs=NEEDS, method="auto", data_format="NCHW",
                    grad_input=None, grad_weight=None, grad_bias=None):
    """Gradients of ``sum(grad_output * y)`` for ``y = conv2d(x, weight, bias,
    stride, padding, dilation, groups, activation=..., pre_activation=...,
    data_format=...)``: ``(grad_input, grad_weight, grad_bias)``, what
    ``torch.autograd`` gives for the same composition.

    Takes exactly conv2d's arguments (every padding form, groups, packed
    weights, NHWC with HWIO weights: grad_weight is then HWIO-shaped), plus:

    grad_output : array of the forward output's shape and dtype
    output : the forward result y, optional.  Where the activation's
        derivative is a function of its output (identity, relu, relu6,
        leaky_relu with slope >= 0, elu with alpha > 0, selu, sigmoid, tanh)
        it is used instead of recomputing the convolution; for the others z is
        recomputed (output is then only checked).  Not to be confused with the
        forward functions' ``out=``, a buffer written by them.
    linear_output : the forward's z = conv2d(x, ...) + bias before the
        activation, optional: f'(z) is taken from it for every activation (no
        recomputation).  A training loop keeps it by running the forward as
        ``z = conv2d(..., activation=None)`` and ``y = activate(z, act)``
        (unfused), the way frameworks save it.
    needs : the gradients to compute, out of ("input", "weight", "bias"); the
        others come back None.  grad_bias is None when bias is None.
    method : "fused" (the derivative and the bias reduction inside the
        weight-gradient kernel, which passes g * f'(z) on to the input
        gradient; one C pass that feeds both where that kernel is not used),
        "separate" (the derivative pass, then a bias-reduction pass, then the
        kernels), "im2col" (GEMMs through NumPy's
        BLAS plus col2im for the input gradient), "auto" ("fused", with the
        input gradient as in "im2col" for images of few pixels, where packing
        the weights on every call costs more than the GEMM path).
    grad_input, grad_weight, grad_bias : optional preallocated C-contiguous
        buffers of the exact shapes and dtype, written in place and returned.
        For NCHW, grad_weight may also be ``a.transpose(3, 2, 0, 1)`` of a
        C-contiguous HWIO array ``a`` (a Keras-layout kernel's gradient: the
        weight-gradient kernel writes that layout directly).

    Derivatives follow torch at the kinks: relu'(0) = 0, relu6' and
    hardsigmoid' 0 at their break points, hardswish'(-3) = 0 and
    hardswish'(3) = 1, leaky_relu'(0) = slope, elu'(0) = alpha.
    """
    where = "conv2d_backward"
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    want = _needs(needs, where)
    p = _plan(x, weight, bias, stride, padding, dilation, groups, activation, pre_activation,
              data_format)
    yshape = _user_shape(p)
    g = _grad_like(grad_output, "grad_output", yshape, p.dtype, where)
    y = None if output is None else _grad_like(output, "output", yshape, p.dtype, where)
    z = None if linear_output is None else _grad_like(linear_output, "linear_output", yshape,
                                                      p.dtype, where)
    n, c_in, h, wd = p.x.shape
    c_out = p.shape_out[1]
    xshape = (n, h, wd, c_in) if p.nhwc else (n, c_in, h, wd)
    if p.unbatched:
        xshape = xshape[1:]
    wshape = tuple(p.w.shape[i] for i in ((2, 3, 1, 0) if p.nhwc else (0, 1, 2, 3)))
    do_x, do_w = "input" in want, "weight" in want
    do_b = "bias" in want and bias is not None
    inputs = [("input", p.x), ("weight", p.w), ("bias", p.bias), ("grad_output", g),
              ("output", y), ("linear_output", z)]
    _buffers(where, p.dtype, {"grad_input": xshape if do_x else None,
                              "grad_weight": wshape if do_w else None,
                              "grad_bias": (c_out,) if do_b else None},
             {"grad_input": grad_input, "grad_weight": grad_weight, "grad_bias": grad_bias},
             inputs)

    gb = None
    if do_b:
        gb = grad_bias if grad_bias is not None else np.empty(c_out, p.dtype)
    if n == 0:   # an empty batch: the sums are empty
        return _empty_batch_grads(do_x, do_w, gb, grad_input, grad_weight, xshape, wshape, p.dtype)

    # dense NCHW copies of an NHWC call's x and grad_output only where a path
    # reads them (the weight-gradient kernel reads both as they are)
    dense = {}

    def x4():
        if "x" not in dense:
            dense["x"] = np.ascontiguousarray(p.x)
        return dense["x"]

    def g4():
        if "g" not in dense:
            dense["g"] = _nchw(g, p.nhwc, p.unbatched)
        return dense["g"]

    # a pack's weight as it is (maybe the OIHW view of its HWIO copy: the
    # input gradient reads that layout; no transposing copy per step)
    w4 = p.w if p.packed is not None or _is_hwio_view(p.w) else np.ascontiguousarray(p.w)
    from_output = z is None and _uses_output(p.post, y)

    def v4():
        """What f' reads, dense NCHW (None for the identity), made on first
        use: the weight-gradient kernel reads a kept z or y in the caller's
        layout and needs no copy."""
        if p.post.is_identity:
            return None
        if "v" not in dense:
            if z is not None:
                dense["v"] = _nchw(z, p.nhwc, p.unbatched)
            elif from_output:
                dense["v"] = _nchw(y, p.nhwc, p.unbatched)
            else:   # recompute z = conv(pre(x)) + b with the (fused) forward kernel
                q = _Conv()
                q.x, q.w, q.bias, q.packed, q.desc = x4(), w4, p.bias, p.packed, p.desc
                q.dtype, q.shape_out, q.post, q.pre = p.dtype, p.shape_out, _NO_ACT, p.pre
                q.cin_g, q.cout_g, q.nhwc, q.unbatched = p.cin_g, p.cout_g, False, False
                dense["v"] = np.empty(p.shape_out, p.dtype)
                _conv._METHODS["fused"](q, dense["v"])
        return dense["v"]
    geo = _core.desc_geometry(p.desc)
    fused = method in ("auto", "fused")
    gw = None
    # an NCHW call's grad_weight may be the OIHW view of an HWIO buffer (a
    # Keras-layout kernel's gradient): the kernel writes HWIO itself, the
    # others through a copy (no transposing copy per training step)
    hwio_buf = do_w and not p.nhwc and grad_weight is not None and _is_hwio_view(grad_weight)
    if do_w and method != "im2col" and _weight_grad_kernel_suits(p):
        # the weight-gradient kernel reads x and grad_output in the caller's
        # layout; fused, it applies f' and reduces the bias itself, and hands
        # g * f'(z) on to the input gradient (one pass over the gradient)
        xa = _strided(p.x) if p.pre.is_identity else _conv._activated_copy(x4(), p.pre)
        gv, vv = _nchw_view(g, p.nhwc, p.unbatched), None
        kept = z if z is not None else (y if from_output else None)
        if not p.post.is_identity:
            vv = _nchw_view(kept, p.nhwc, p.unbatched) if kept is not None else v4()
        if vv is not None and not _core.same_strides(vv, gv):
            gv, vv = g4(), v4()
        if fused:
            gz = (g4() if p.post.is_identity else np.empty(p.shape_out, p.dtype)) if do_x \
                else None
            gw = _weight_grad_kernel(xa, gv, vv, p.post, from_output, p.desc, grad_weight,
                                     wshape, p.nhwc or hwio_buf, gb,
                                     None if p.post.is_identity else gz)
        else:
            gz = _activation_grad(g4(), v4(), p.post, from_output, gb, fuse_bias=False)
            gw = _weight_grad_kernel(xa, gz, None, _NO_ACT, False, p.desc, grad_weight,
                                     wshape, p.nhwc or hwio_buf, None, None)
    else:
        gz = _activation_grad(g4(), v4(), p.post, from_output, gb, fuse_bias=fused)
        if do_w:
            xa = x4() if p.pre.is_identity else _conv._activated_copy(x4(), p.pre)
            gw4 = _nchw_target(None if hwio_buf else grad_weight, p.w.shape, p.dtype, p.nhwc)
            _weight_grad(xa, gz, geo, c_out // p.cout_g, gw4)
            if hwio_buf:
                grad_weight[...] = gw4
                gw = grad_weight
            else:
                gw = _deliver(gw4, grad_weight, p.nhwc, False, (2, 3, 1, 0))
    gi = None
    if do_x:
        gi4 = _nchw_target(grad_input, (n, c_in, h, wd), p.dtype, p.nhwc)
        _tconv(gz, w4, geo, c_out // p.cout_g, gi4, None, _NO_ACT, method)
        if not p.pre.is_identity:   # through the pre-activation: times pre'(x)
            _core.act_grad(gi4, x4(), gi4, n, c_in, h * wd, p.pre._spec, False, None)
        gi = _deliver(gi4, grad_input, p.nhwc, p.unbatched, (0, 2, 3, 1))
    return gi, gw, gb


# ---- conv_transpose2d ------------------------------------------------------------

class _TConv:
    """A validated conv_transpose2d call (NCHW views, torch-layout weight)."""

    __slots__ = ("x", "w", "bias", "dtype", "geo", "groups", "shape_out", "post", "nhwc",
                 "unbatched")


#: conv_transpose2d's weight layout in words, by data_format: (NCHW, NHWC)
_TRANSPOSE_WEIGHT_LAYOUTS = ("(in_channels, out_channels/groups, kH, kW)",
                             "(kH, kW, out_channels/groups, in_channels)")


def _tplan(x, weight, bias, stride, padding, output_padding, groups, dilation, activation,
           data_format, where):
    t = _TConv()
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be 'NCHW' or 'NHWC', got {data_format!r}")
    t.nhwc = data_format == "NHWC"
    x = _as_float_array(x, "input")
    x, weight, t.unbatched = _conv._operands(x, weight, t.nhwc, where, _TRANSPOSE_WEIGHT_LAYOUTS)
    groups = _int(groups, "groups")
    if groups <= 0:
        raise ValueError(f"groups must be a positive integer, got {groups}")
    n, c_in, h_in, w_in = x.shape
    wc_in, cog, kh, kw = weight.shape
    if wc_in % groups:
        raise ValueError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                         f"at dimension 0 (in_channels), but got weight of size "
                         f"{_shape_str(weight.shape)}")
    if wc_in != c_in:
        raise ValueError(f"Given transposed=1, weight of size {_shape_str(weight.shape)}, "
                         f"expected input{_shape_str(x.shape)} to have {wc_in} channels, "
                         f"but got {c_in} channels instead")
    if min(weight.shape) == 0:
        raise ValueError(f"{where}: weight of size {_shape_str(weight.shape)} has an empty "
                         f"dimension")
    sh, sw = _positive_pair(stride, "stride")
    dh, dw = _positive_pair(dilation, "dilation")
    ph, pw = _pair(padding, "padding")
    oph, opw = _pair(output_padding, "output_padding")
    if min(ph, pw) < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    if min(oph, opw) < 0:
        raise ValueError(f"output_padding must be non-negative, got {output_padding!r}")
    if oph >= max(sh, dh) or opw >= max(sw, dw):
        raise ValueError(f"{where}: output padding must be smaller than either stride or "
                         f"dilation, but got output_padding {(oph, opw)}, stride {(sh, sw)} "
                         f"and dilation {(dh, dw)}")
    for v, name in ((max(ph, pw), "padding"), (max(sh, sw), "stride"), (max(dh, dw), "dilation"),
                    (max(kh, kw) * max(dh, dw), "dilated kernel size")):
        if v >= _MAX_INDEX // 4:
            raise ValueError(f"{where}: {name} {v} is too large for 64-bit indexing")
    h_out = (h_in - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    w_out = (w_in - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    if h_out <= 0 or w_out <= 0:
        raise ValueError(f"{where}: input{_shape_str(x.shape)} with stride {(sh, sw)}, padding "
                         f"{(ph, pw)}, dilation {(dh, dw)}, output_padding {(oph, opw)} and "
                         f"weight of size {_shape_str(weight.shape)} gives an empty output "
                         f"({h_out} x {w_out})")
    if n * cog * groups * h_out * w_out * x.itemsize > _MAX_BYTES:
        raise ValueError(f"{where}: output of size "
                         f"{_shape_str((n, cog * groups, h_out, w_out))} overflows 64-bit "
                         f"indexing")
    if bias is not None:
        bias = _as_float_array(bias, "bias")
        if bias.dtype != x.dtype:
            raise TypeError(f"{where}: bias must have the input's dtype {x.dtype}, "
                            f"got {bias.dtype}")
        if bias.shape != (cog * groups,):
            raise ValueError(f"{where}: expected bias of shape ({cog * groups},) to match "
                             f"weight of size {_shape_str(weight.shape)}, but got bias of "
                             f"shape {bias.shape}")
        bias = np.ascontiguousarray(bias)
    t.x, t.w, t.bias, t.dtype = x, weight, bias, x.dtype
    t.geo = (sh, sw, dh, dw, ph, pw)
    t.groups = groups
    t.shape_out = (n, cog * groups, h_out, w_out)
    t.post = as_activation(activation, "activation")
    return t


def _tuser_shape(t, shape4):
    n, c, h, w = shape4
    s = (n, h, w, c) if t.nhwc else (n, c, h, w)
    return s[1:] if t.unbatched else s


@_one_blas
def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, activation=None, method="auto", data_format="NCHW",
                     out=None):
    """``torch.nn.functional.conv_transpose2d`` with an optional activation
    fused in: ``activation(conv_transpose2d(x, weight, bias, ...))``.

    x : (N, C_in, H, W) or (C_in, H, W); (N, H, W, C_in) for NHWC
    weight : (C_in, C_out/groups, kH, kW); (kH, kW, C_out/groups, C_in) for
        NHWC (Keras' Conv2DTranspose layout)
    padding, output_padding, stride, dilation : int or (int, int);
        output_padding < stride or dilation.  The output is
        (H - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1 high.
    method : "fused" (activation in the kernels' epilogue), "separate" (as a
        pass after), "im2col" (GEMM plus col2im), "auto" ("fused"; "im2col"
        for outputs of few pixels)
    out : optional preallocated C-contiguous output of the exact shape and dtype
    """
    where = "conv_transpose2d"
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    t = _tplan(x, weight, bias, stride, padding, output_padding, groups, dilation, activation,
               data_format, where)
    shape = _tuser_shape(t, t.shape_out)
    if out is not None:
        _check_buffer(out, "out", shape, t.dtype, where,
                      [("the input", t.x), ("the weight", t.w), ("the bias", t.bias)])
    y4 = _nchw_target(out, t.shape_out, t.dtype, t.nhwc)
    if t.shape_out[0]:
        _tconv(_nchw(t.x, False, False), np.ascontiguousarray(t.w), t.geo, t.groups, y4,
               t.bias, t.post, method)
    return _deliver(y4, out, t.nhwc, t.unbatched, (0, 2, 3, 1))


@_one_blas
def conv_transpose2d_backward(grad_output, x, weight, bias=None, stride=1, padding=0,
                              output_padding=0, groups=1, dilation=1, *, activation=None,
                              output=None, linear_output=None, needs=NEEDS, method="auto",
                              data_format="NCHW", grad_input=None, grad_weight=None,
                              grad_bias=None):
    """Gradients of ``sum(grad_output * y)`` for ``y = conv_transpose2d(x,
    weight, bias, ...)`` with the same arguments: ``(grad_input, grad_weight,
    grad_bias)``, conventions as :func:`conv2d_backward` (``output``,
    ``linear_output``, ``needs``, ``method``, the ``grad_*`` buffers).  grad_input is the forward
    convolution of the (derivative-multiplied) gradient, grad_weight the
    correlation of that gradient with x."""
    where = "conv_transpose2d_backward"
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    want = _needs(needs, where)
    t = _tplan(x, weight, bias, stride, padding, output_padding, groups, dilation, activation,
               data_format, where)
    yshape = _tuser_shape(t, t.shape_out)
    g = _grad_like(grad_output, "grad_output", yshape, t.dtype, where)
    y = None if output is None else _grad_like(output, "output", yshape, t.dtype, where)
    z = None if linear_output is None else _grad_like(linear_output, "linear_output", yshape,
                                                      t.dtype, where)
    n, c_in, h, wd = t.x.shape
    c_out = t.shape_out[1]
    xshape = _tuser_shape(t, t.x.shape)
    wshape = tuple(t.w.shape[i] for i in ((2, 3, 1, 0) if t.nhwc else (0, 1, 2, 3)))
    do_x, do_w = "input" in want, "weight" in want
    do_b = "bias" in want and bias is not None
    _buffers(where, t.dtype, {"grad_input": xshape if do_x else None,
                              "grad_weight": wshape if do_w else None,
                              "grad_bias": (c_out,) if do_b else None},
             {"grad_input": grad_input, "grad_weight": grad_weight, "grad_bias": grad_bias},
             [("input", t.x), ("weight", t.w), ("bias", t.bias), ("grad_output", g),
              ("output", y), ("linear_output", z)])
    gb = None
    if do_b:
        gb = grad_bias if grad_bias is not None else np.empty(c_out, t.dtype)
    if n == 0:
        return _empty_batch_grads(do_x, do_w, gb, grad_input, grad_weight, xshape, wshape, t.dtype)
    x4 = np.ascontiguousarray(t.x)
    w4 = np.ascontiguousarray(t.w)
    g4 = _nchw(g, t.nhwc, t.unbatched)
    from_output = z is None and _uses_output(t.post, y)
    v = None
    if not t.post.is_identity:
        if z is not None:
            v = _nchw(z, t.nhwc, t.unbatched)
        elif from_output:
            v = _nchw(y, t.nhwc, t.unbatched)
        else:
            v = _tconv(x4, w4, t.geo, t.groups, np.empty(t.shape_out, t.dtype), t.bias,
                       _NO_ACT, method)
    gz = _activation_grad(g4, v, t.post, from_output, gb, fuse_bias=method in ("auto", "fused"))
    gw = None
    if do_w:   # the weight gradient of the convolution gz -> x, roles swapped
        kh, kw = t.w.shape[2:]
        if method != "im2col" and kh * kw > 1 and c_in // t.groups >= 8:
            # the same rule as conv2d_backward's (_weight_grad_kernel_suits):
            # the convolution's output channels are the transposed one's inputs
            sh, sw, dh, dw, ph, pw = t.geo
            desc = _core.ConvDesc(n, c_out, gz.shape[2], gz.shape[3], c_in, kh, kw, h, wd,
                                  sh, sw, dh, dw, ph, pw, t.groups)
            gw = _weight_grad_kernel(gz, x4, None, _NO_ACT, False, desc, grad_weight, wshape,
                                     t.nhwc, None, None)
        else:
            gw4 = _nchw_target(grad_weight, t.w.shape, t.dtype, t.nhwc)
            _weight_grad(gz, x4, t.geo, t.groups, gw4)
            gw = _deliver(gw4, grad_weight, t.nhwc, False, (2, 3, 1, 0))
    gi = None
    if do_x:   # the forward convolution of gz with the same weight
        gi4 = _nchw_target(grad_input, (n, c_in, h, wd), t.dtype, t.nhwc)
        _conv_nchw(gz, w4, t.geo, t.groups, gi4, None, _NO_ACT, method)
        gi = _deliver(gi4, grad_input, t.nhwc, t.unbatched, (0, 2, 3, 1))
    return gi, gw, gb
