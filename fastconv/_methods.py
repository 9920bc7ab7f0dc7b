"""The ways conv2d computes a validated call (a _Conv from fastconv._validate).

fused (the direct kernels, the activations inside; "auto" too), separate
(three passes), im2col (NumPy's BLAS on unfolded blocks) and winograd, each in
NCHW (_METHODS) and NHWC (_NHWC_METHODS); the rule by which fast math's
"auto" takes Winograd (_winograd_pays); and which calls the Cython hot path
runs by itself (_fast_cacheable, read by fastconv._cache).
"""
import numpy as np

from fastconv import _core
from fastconv.activations import as_activation
from fastconv._validate import _Conv

def _direct(p, x, y, post, pre):
    """The direct kernels, with the pre-packed weights when the caller gave
    them; raw weights are packed by the kernels into a kept buffer (which
    holds the workspace too)."""
    if p.packed is not None:
        nbytes = p.desc.direct_workspace_bytes(pre._spec, p.dtype.itemsize)
        ws = np.empty(nbytes, np.uint8) if nbytes else None
        _core.conv2d_packed(p.desc, x, p.packed, p.bias, y, post._spec, pre._spec, ws)
    elif p.w.flags.c_contiguous:
        _core.conv2d_direct(p.desc, x, p.w, p.bias, y, post._spec, pre._spec)
    else:   # an HWIO kernel's view: packed by the kernels from its rows
        _core.conv2d_ex(p.desc, x, p.w, p.bias, y, False, post._spec, pre._spec, None)


def _dense_weight(p):
    """The call's weight as a dense OIHW array (a pack's copy made once)."""
    return p.packed.dense_weight() if p.packed is not None else np.ascontiguousarray(p.w)


def _run_fused(p, y):
    # Depthwise (groups == c_in) is routed to its own kernel inside the C driver.
    _direct(p, p.x, y, p.post, p.pre)


def _preactivated_input(p):
    return p.x if p.pre.is_identity else _activated_copy(p.x, p.pre)


def _activated_copy(x, act):
    xa = np.empty_like(x)
    _core.activate(x, xa, act._spec)
    return xa


_NO_ACT = as_activation(None)


def _run_separate(p, y):
    """Three passes, the way a framework without fusion does it."""
    x = _preactivated_input(p)
    _direct(p, x, y, _NO_ACT, _NO_ACT)
    if not p.post.is_identity:
        _core.activate(y, y, p.post._spec)


# The im2col path works on blocks of output rows whose column matrix fits in
# L2, so that the unfold, the GEMM that reads it and the bias + activation on
# the GEMM's output block all run on hot data (and the workspace stays small).
_IM2COL_BLOCK_BYTES = 512 * 1024
_IM2COL_MIN_COLS = 1024   # but give the GEMM at least this many columns


def _im2col_block_rows(k, h_out, w_out, itemsize):
    """Output rows per im2col block for a K = cin_g * kh * kw column matrix."""
    rows = max(_IM2COL_BLOCK_BYTES // max(k * w_out * itemsize, 1),
               -(-_IM2COL_MIN_COLS // w_out), 1)
    return min(rows, h_out)


def _run_im2col(p, y):
    """Unfold blocks of output rows (per image and group) and GEMM them with
    NumPy's BLAS straight into the output, bias and activation on each block."""
    x = _preactivated_input(p)
    n, c_out, h_out, w_out = p.shape_out
    groups = c_out // p.cout_g
    kh, kw = p.w.shape[2:]
    k = p.cin_g * kh * kw
    rows = _im2col_block_rows(k, h_out, w_out, p.dtype.itemsize)
    col = np.empty(k * rows * w_out, p.dtype)
    wmat = _dense_weight(p).reshape(groups, p.cout_g, k)
    ymat = y.reshape(n, groups, p.cout_g, h_out * w_out)
    epilogue = p.bias is not None or not p.post.is_identity
    biases = [None if p.bias is None else p.bias[g * p.cout_g:(g + 1) * p.cout_g]
              for g in range(groups)]
    hw = h_out * w_out
    for i in range(n):
        for g in range(groups):
            for oh0 in range(0, h_out, rows):
                oh1 = min(oh0 + rows, h_out)
                ncols = (oh1 - oh0) * w_out
                cblk = col[:k * ncols].reshape(k, ncols)
                _core.im2col_rows(p.desc, x[i], g * p.cin_g, p.cin_g, oh0, oh1, cblk)
                yblk = ymat[i, g, :, oh0 * w_out:oh1 * w_out]
                np.matmul(wmat[g], cblk, out=yblk)
                if epilogue:
                    _core.bias_activate_ld(yblk, p.cout_g, ncols, hw, biases[g], p.post._spec)


# ---- Winograd F(4x4, 3x3) and F(2x2, 3x3) ------------------------------------
# method="winograd", or "auto" under fast math where winograd_pays says so:
# its rounding is not the direct path's (docs/DESIGN.md, "Winograd"), so
# "auto" never picks it without the user's opt-in.  The tile size is the
# pack's (pack_weight(..., tile=)); plain-weight calls use the C plan's choice
# (fc_winograd_choose_tile).


# ---- fast math: when "auto" takes the Winograd path ---------------------------
# Opt-in (fastconv.set_fast_math).  Winograd saves 3/4 of the products of a
# (tile, input channel, output channel) but streams its transformed weights U
# (4x the weights) once per block of <= 120 tiles, and pays for the transforms
# of every tile; the products it saves grow with the tiles, those costs do not
# (per call) or grow with the channels (per tile).  So the rule is a number of
# output tiles and a number of channels per group (benchmarks/NOTES.md,
# "Winograd rule", the measurements; docs/DESIGN.md, "Winograd").

#: output tiles (N * ceil(Ho/4) * ceil(Wo/4)) from which a pre-transformed
#: weight (a layer's, an ONNX session's pack) runs faster than the direct path
WINOGRAD_MIN_TILES_PACKED = 32
#: the same for plain weights, transformed inside every call (4x the weight
#: bytes written per call: it takes more tiles to pay)
WINOGRAD_MIN_TILES_PLAIN = 128
#: fewer input or output channels per group than this: the transforms cost
#: more than the products saved
WINOGRAD_MIN_CHANNELS = 16


def _winograd_pays(p, packed):
    """The rule on a validated plan (see winograd_pays)."""
    if p.w.shape[2:] != (3, 3) or p.stride != (1, 1) or p.dilation != (1, 1):
        return False
    if min(p.cin_g, p.cout_g) < WINOGRAD_MIN_CHANNELS:
        return False
    n, _, h_out, w_out = p.shape_out
    # output tiles of the tile size the Winograd plan picks for this call
    # (F(2x2) for many channels on small images, fc_winograd_choose_tile)
    m = _core.winograd_choose_tile(p.desc)
    tiles = n * -(-h_out // m) * -(-w_out // m)
    return tiles >= (WINOGRAD_MIN_TILES_PACKED if packed else WINOGRAD_MIN_TILES_PLAIN)


def _winograd_weight(p):
    """The transformed weights, or the (O, I, 3, 3) view to transform per call."""
    return p.packed if isinstance(p.packed, _core.WinogradWeight) else p.w


def _run_winograd(p, y):
    _core.conv2d_winograd(p.desc, p.x, _winograd_weight(p), p.bias, y, False,
                          p.post._spec, p.pre._spec)


def _nhwc_winograd(p, y):
    # reads the NHWC input through its strides, writes y channels-last
    _core.conv2d_winograd(p.desc, p.x, _winograd_weight(p), p.bias, y, True,
                          p.post._spec, p.pre._spec)


_METHODS = {"auto": _run_fused, "fused": _run_fused, "separate": _run_separate,
            "im2col": _run_im2col, "winograd": _run_winograd}


# ---- NHWC -----------------------------------------------------------------
# p.x / p.w are (N, C, H, W) / (O, I, kH, kW) views of the NHWC input and HWIO
# weights; y is the dense NHWC output.  The direct kernels read x through its
# strides (a channels-last x in place, padding included), pack the weights
# straight from the HWIO view and store channels-last tiles.  Depthwise of
# channel multiplier 1 has a channels-last kernel of its own, which the C
# driver picks (src/conv/depthwise/conv_depthwise_nhwc.h); other depthwise calls (a channel
# multiplier, an input whose channels are not contiguous, a pre-activation
# other than relu) and im2col run the NCHW code on transposed copies.

def _elem_strides(a):
    return tuple(s // a.itemsize for s in a.strides)


def _nhwc_dense_strides(p):
    """Element strides (N, C, H, W order) of a dense NHWC input."""
    n, c, h, w = p.x.shape
    return (h * w * c, 1, w * c, c)


def _hwio_dense_strides(p):
    """Element strides (O, I, kH, kW order) of a dense HWIO weight."""
    o, i, kh, kw = p.w.shape
    return (1, o, kw * i * o, i * o)


def _nhwc_depthwise(p):
    return p.cin_g == 1 and p.shape_out[1] // p.cout_g > 1   # groups == C > 1


def _nhwc_dw_native(p, x, pre):
    """Whether the C driver's channels-last depthwise kernel takes this NHWC
    call with pre-activation `pre` (the C rule, fc_dw_nhwc_wanted: channel
    multiplier 1, at least 16 bytes of channels, the channels of x contiguous,
    `pre` identity or relu).  x: the (N, C, H, W) view the kernels are given;
    None: a dense NHWC input."""
    xs = _nhwc_dense_strides(p) if x is None else _elem_strides(x)
    return _core.dw_nhwc_wanted(p.desc, xs, pre._spec, p.dtype.itemsize)


def _nhwc_fused_in_place(p):
    """Whether the fused NHWC method runs the direct kernels on the caller's
    arrays (else the NCHW code on transposed copies, _nhwc_via_nchw): the
    routing of _nhwc_fused, and the NHWC calls the Cython hot path may take
    (_fast_cacheable)."""
    return not _nhwc_depthwise(p) or _nhwc_dw_native(p, p.x, p.pre)


def _nhwc_via_nchw(run, p, y):
    """An NCHW method on transposed copies (the copies workspace_bytes counts)."""
    q = _Conv()
    for f in _Conv.__slots__:
        if hasattr(p, f):
            setattr(q, f, getattr(p, f))
    q.x, q.w, q.nhwc = np.ascontiguousarray(p.x), _dense_weight(p), False
    yc = np.empty(p.shape_out, p.dtype)
    run(q, yc)
    y[...] = yc.transpose(0, 2, 3, 1)


def _direct_nhwc(p, x, y, post, pre):
    ws = None   # raw weights: the kernels' kept buffer holds the workspace
    if p.packed is not None:
        nbytes = _core.direct_workspace_ex(p.desc, _elem_strides(x), pre._spec, x.itemsize,
                                           True)
        ws = np.empty(nbytes, np.uint8) if nbytes else None
    w = p.packed if p.packed is not None else p.w
    _core.conv2d_ex(p.desc, x, w, p.bias, y, True, post._spec, pre._spec, ws)


def _nhwc_fused(p, y):
    if not _nhwc_fused_in_place(p):
        return _nhwc_via_nchw(_run_fused, p, y)
    _direct_nhwc(p, p.x, y, p.post, p.pre)


def _nhwc_separate(p, y):
    # the pre-activation goes through a dense NHWC copy, then the plain kernel
    if _nhwc_depthwise(p) and not _nhwc_dw_native(p, p.x if p.pre.is_identity else None,
                                                  _NO_ACT):
        return _nhwc_via_nchw(_run_separate, p, y)
    x = p.x
    if not p.pre.is_identity:
        xa = _activated_copy(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), p.pre)
        x = xa.transpose(0, 3, 1, 2)
    _direct_nhwc(p, x, y, _NO_ACT, _NO_ACT)
    if not p.post.is_identity:
        _core.activate(y, y, p.post._spec)


def _nhwc_im2col(p, y):
    _nhwc_via_nchw(_run_im2col, p, y)


_NHWC_METHODS = {"auto": _nhwc_fused, "fused": _nhwc_fused, "separate": _nhwc_separate,
                 "im2col": _nhwc_im2col, "winograd": _nhwc_winograd}


def _fast_cacheable(p, method):
    """Whether a validated call running `method` (fast math resolved) is what
    _core.fast_conv2d runs: the fused direct kernels on the caller's arrays
    themselves, a non-empty output."""
    if method not in ("auto", "fused") or not p.shape_out[0] or \
            not p.shape_out[1] * p.shape_out[2] * p.shape_out[3]:
        return False
    return not p.nhwc or _nhwc_fused_in_place(p)
