"""fastconv.conv2d: argument checking and the three ways to compute it.

Everything is validated here, in Python, before any C runs (the C kernels
trust their arguments).  Messages name the argument and the shapes involved,
in torch's words where torch has words for it.
"""
import operator

import numpy as np

from fastconv import _core
from fastconv.activations import _check_out, as_activation

METHODS = ("auto", "fused", "separate", "im2col")
DATA_FORMATS = ("NCHW", "NHWC")

# Arrays whose byte size exceeds this cannot be indexed with int64 offsets safely.
_MAX_BYTES = 2 ** 62


def _shape_str(shape):
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _int(value, argname):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{argname} must be an int or a pair of ints, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{argname} must be an int or a pair of ints, got {value!r}") from None


def _pair(value, argname):
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{argname} must be an int or a pair of ints, got {value!r}")
        return _int(value[0], argname), _int(value[1], argname)
    v = _int(value, argname)
    return v, v


def _positive_pair(value, argname):
    pair = _pair(value, argname)
    if pair[0] <= 0 or pair[1] <= 0:
        raise ValueError(f"{argname} must be positive, got {value!r}")
    return pair


def _padding(padding, kernel, dilation, stride):
    """-> (top, bottom, left, right)."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return 0, 0, 0, 0
        if mode == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' is not supported for strided convolutions "
                                 f"(stride={stride})")
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]   # torch: the extra one after
            return tuple(pads)
        raise ValueError(f"padding must be 'valid', 'same', an int or pairs of ints, got {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
            isinstance(p, (tuple, list)) for p in padding):
        (t, b), (l, r) = (_pair(p, "padding") for p in padding)
        pads = (t, b, l, r)
    else:
        ph, pw = _pair(padding, "padding")
        pads = (ph, ph, pw, pw)
    if min(pads) < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return pads


def _as_float_array(a, argname):
    if not isinstance(a, np.ndarray):
        a = np.asarray(a)
    if a.dtype != np.float32 and a.dtype != np.float64:
        raise TypeError(f"{argname} must be float32 or float64, got {argname} of dtype {a.dtype}")
    return a


def _contiguous(a, argname):
    if a.nbytes > _MAX_BYTES:
        raise ValueError(f"{argname} of shape {a.shape} is too large: "
                         f"{a.size} elements overflow 64-bit indexing")
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


class _Conv:
    """A validated conv2d call: normalised parameters and the C description."""

    __slots__ = ("x", "w", "bias", "dtype", "shape_out", "desc", "post", "pre",
                 "cin_g", "cout_g", "unbatched", "nhwc")


def _plan(x, weight, bias, stride, padding, dilation, groups, activation,
          pre_activation, data_format, prepare=True):
    """Validate a call; with prepare=False only the shapes are looked at."""
    p = _Conv()
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be 'NCHW' or 'NHWC', got {data_format!r}")
    p.nhwc = data_format == "NHWC"
    x = _as_float_array(x, "input")
    weight = _as_float_array(weight, "weight")
    if x.ndim not in (3, 4):
        layout = "(N, H, W, C)" if p.nhwc else "(N, C, H, W)"
        raise ValueError(f"conv2d: expected input to be 3-D or 4-D {layout}, "
                         f"but got input of size {_shape_str(x.shape)}")
    if weight.ndim != 4:
        layout = "(kH, kW, in_channels/groups, out_channels)" if p.nhwc else \
            "(out_channels, in_channels/groups, kH, kW)"
        raise ValueError(f"conv2d: expected weight to be 4-D {layout}, "
                         f"but got weight of size {_shape_str(weight.shape)}")
    if weight.dtype != x.dtype:
        raise TypeError(f"conv2d: input and weight must have the same dtype, "
                        f"got input {x.dtype} and weight {weight.dtype}")
    p.unbatched = x.ndim == 3
    if p.unbatched:
        x = x[None]
    if p.nhwc:   # TensorFlow layout in, torch layout inside
        x = x.transpose(0, 3, 1, 2)
        weight = weight.transpose(3, 2, 0, 1)
    groups = _int(groups, "groups")
    if groups <= 0:
        raise ValueError(f"groups must be a positive integer, got {groups}")
    n, c_in, h_in, w_in = x.shape
    c_out, cin_g, kh, kw = weight.shape
    if c_out % groups:
        raise ValueError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                         f"at dimension 0 (out_channels), but got weight of size "
                         f"{_shape_str(weight.shape)}")
    if cin_g * groups != c_in:
        raise ValueError(f"Given groups={groups}, weight of size {_shape_str(weight.shape)}, "
                         f"expected input{_shape_str(x.shape)} to have {cin_g * groups} "
                         f"channels, but got {c_in} channels instead")
    if min(weight.shape) == 0:
        raise ValueError(f"conv2d: weight of size {_shape_str(weight.shape)} has an empty dimension")
    sh, sw = _positive_pair(stride, "stride")
    dh, dw = _positive_pair(dilation, "dilation")
    top, bottom, left, right = _padding(padding, (kh, kw), (dh, dw), (sh, sw))
    hp, wp = h_in + top + bottom, w_in + left + right
    ekh, ekw = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if hp < ekh or wp < ekw:
        raise ValueError(f"conv2d: calculated padded input size per channel: ({hp} x {wp}). "
                         f"Kernel size: ({ekh} x {ekw}). Kernel size can't be greater than "
                         f"actual input size (input{_shape_str(x.shape)}, padding "
                         f"{(top, bottom, left, right)}, dilation {(dh, dw)})")
    h_out, w_out = (hp - ekh) // sh + 1, (wp - ekw) // sw + 1
    if bias is not None:
        bias = _as_float_array(bias, "bias")
        if bias.dtype != x.dtype:
            raise TypeError(f"conv2d: bias must have the input's dtype {x.dtype}, got {bias.dtype}")
        if bias.shape != (c_out,):
            raise ValueError(f"conv2d: expected bias of shape ({c_out},) to match weight of size "
                             f"{_shape_str(weight.shape)}, but got bias of shape {bias.shape}")
        bias = _contiguous(bias, "bias")
    itemsize = x.dtype.itemsize
    out_elems = n * c_out * h_out * w_out
    col_elems = cin_g * kh * kw * h_out * w_out
    if max(out_elems, col_elems, c_out * h_out * w_out) * itemsize > _MAX_BYTES:
        raise ValueError(f"conv2d: output of size {_shape_str((n, c_out, h_out, w_out))} "
                         f"(or its im2col workspace) overflows 64-bit indexing")
    p.x = _contiguous(x, "input") if prepare else x
    p.w = _contiguous(weight, "weight") if prepare else weight
    p.bias = bias
    p.dtype = x.dtype
    p.cin_g, p.cout_g = cin_g, c_out // groups
    p.shape_out = (n, c_out, h_out, w_out)
    p.desc = _core.ConvDesc(n, c_in, h_in, w_in, c_out, kh, kw, h_out, w_out,
                            sh, sw, dh, dw, top, left, groups)
    p.post = as_activation(activation, "activation")
    p.pre = as_activation(pre_activation, "pre_activation")
    return p


def _user_shape(p):
    """The output shape the caller sees (layout and batching as given)."""
    n, c, h, w = p.shape_out
    shape = (n, h, w, c) if p.nhwc else (n, c, h, w)
    return shape[1:] if p.unbatched else shape


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           activation=None, pre_activation=None, method="auto", data_format="NCHW",
           out=None):
    """2-D convolution (cross-correlation, as ``torch.nn.functional.conv2d``)
    with an optional activation after it and/or before it.

    ``y = activation(conv(pad(pre_activation(x)), weight) + bias)``; the
    padding zeros are not passed through ``pre_activation`` (ResNet v2 order).

    Parameters
    ----------
    x : array (N, C, H, W) or (C, H, W); (N, H, W, C) with ``data_format="NHWC"``
    weight : array (out, in/groups, kH, kW); (kH, kW, in/groups, out) for NHWC
    bias : array (out,) or None
    stride, dilation : int or (int, int)
    padding : int, (ph, pw), ((top, bottom), (left, right)), "valid" or "same"
    groups : int, divides both channel counts (``groups == C`` is depthwise)
    activation, pre_activation : None, a name (``"relu"``) or an ``Activation``
    method : "auto" | "fused" | "separate" | "im2col"
    data_format : "NCHW" (torch) or "NHWC" (TensorFlow/Keras)
    out : optional preallocated C-contiguous output of the exact shape and dtype
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    p = _plan(x, weight, bias, stride, padding, dilation, groups, activation,
              pre_activation, data_format)
    shape = _user_shape(p)
    if out is not None:
        _check_out(out, shape, p.dtype, "conv2d")
        if np.may_share_memory(out, p.x) or np.may_share_memory(out, p.w) or (
                p.bias is not None and np.may_share_memory(out, p.bias)):
            raise ValueError("conv2d: out must not overlap the input, weight or bias")
    if p.nhwc:
        y = np.empty(p.shape_out, p.dtype)
    else:
        y = out.reshape(p.shape_out) if out is not None else np.empty(p.shape_out, p.dtype)
    if p.shape_out[0] and y.size:
        _METHODS[method](p, y)
    if p.nhwc:
        y = y.transpose(0, 2, 3, 1)
        if out is not None:
            out[...] = y[0] if p.unbatched else y
            return out
        y = np.ascontiguousarray(y)
    if out is not None:
        return out
    return y[0] if p.unbatched else y


def _run_fused(p, y):
    nbytes = p.desc.direct_workspace_bytes(p.pre._spec, p.dtype.itemsize)
    ws = np.empty(nbytes, np.uint8) if nbytes else None
    _core.conv2d_direct(p.desc, p.x, p.w, p.bias, y, p.post._spec, p.pre._spec, ws)


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
    _core.conv2d_direct(p.desc, x, p.w, p.bias, y, _NO_ACT._spec, _NO_ACT._spec, None)
    if not p.post.is_identity:
        _core.activate(y, y, p.post._spec)


def _run_im2col(p, y):
    """Unfold each image (per group) into a matrix and do one GEMM on it."""
    x = _preactivated_input(p)
    n, c_out, h_out, w_out = p.shape_out
    groups = c_out // p.cout_g
    kh, kw = p.w.shape[2:]
    col = np.empty((p.cin_g * kh * kw, h_out * w_out), p.dtype)
    wmat = p.w.reshape(groups, p.cout_g, p.cin_g * kh * kw)
    ymat = y.reshape(n, groups, p.cout_g, h_out * w_out)
    for i in range(n):
        for g in range(groups):
            _core.im2col(p.desc, x[i], g * p.cin_g, p.cin_g, col)
            np.matmul(wmat[g], col, out=ymat[i, g])
    if p.bias is not None or not p.post.is_identity:
        _core.bias_activate(y, n * c_out, h_out * w_out, p.bias, p.post._spec)


_METHODS = {"auto": _run_fused, "fused": _run_fused, "separate": _run_separate,
            "im2col": _run_im2col}


def workspace_bytes(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1, *,
                    method="auto", pre_activation=None, dtype=np.float32, data_format="NCHW"):
    """Extra bytes a conv2d call allocates besides its output, by method.

    Counts the activated input copy (pre-activation), im2col's column matrix,
    and for NHWC the transposed copies made until native NHWC kernels exist.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    dtype = np.dtype(dtype)
    zero = np.zeros((), dtype)
    p = _plan(np.broadcast_to(zero, x_shape), np.broadcast_to(zero, w_shape), None, stride,
              padding, dilation, groups, None, pre_activation, data_format, prepare=False)
    item = dtype.itemsize
    in_bytes = int(np.prod(p.x.shape)) * item
    total = 0 if p.pre.is_identity else in_bytes
    if method == "im2col":
        kh, kw = p.w.shape[2:]
        total += p.cin_g * kh * kw * p.shape_out[2] * p.shape_out[3] * item
    if p.nhwc:
        total += in_bytes + p.w.size * item + int(np.prod(p.shape_out)) * item
    return total
