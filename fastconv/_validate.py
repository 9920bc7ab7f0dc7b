"""Argument validation of conv2d and the entry points built on it.

Everything is validated here, in Python, before any C runs (the C kernels
trust their arguments).  Messages name the argument and the shapes involved,
in torch's words where torch has words for it.  _plan turns a call's
arguments into a _Conv, the validated call that the methods
(fastconv._methods) run; the primitive checks (_int, _pair, _padding, ...)
are shared with grad.py, dask.py and the layers through fastconv.conv.
"""
import operator

import numpy as np

from fastconv import _core
from fastconv.activations import as_activation

METHODS = ("auto", "fused", "separate", "im2col", "winograd")
DATA_FORMATS = ("NCHW", "NHWC")

# Arrays whose byte size exceeds this cannot be indexed with int64 offsets safely.
_MAX_BYTES = 2 ** 62
# Every size and offset the kernels compute stays below 2**63 when each term is below this.
_MAX_INDEX = 2 ** 62


def _shape_str(shape):
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _int(value, argname):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{argname} must be an int or a pair of ints, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{argname} must be an int or a pair of ints, got {value!r}") from None
    if not -2 ** 63 < value < 2 ** 63:
        raise ValueError(f"{argname} {value} is too large for 64-bit indexing")
    return value


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


def _is_hwio_view(w):
    """Whether w (O, I, kH, kW) is the view ``a.transpose(3, 2, 0, 1)`` of a
    C-contiguous HWIO array a (and not itself C-contiguous)."""
    return isinstance(w, np.ndarray) and w.ndim == 4 and not w.flags.c_contiguous and \
        w.transpose(2, 3, 1, 0).flags.c_contiguous


def _contiguous(a, argname):
    if a.nbytes > _MAX_BYTES:
        raise ValueError(f"{argname} of shape {a.shape} is too large: "
                         f"{a.size} elements overflow 64-bit indexing")
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _strided_ok(a, argname):
    """a itself when the kernels can read it through its strides (aligned,
    strides whole elements), else a dense copy in the same axis order."""
    if a.nbytes > _MAX_BYTES:
        raise ValueError(f"{argname} of shape {a.shape} is too large: "
                         f"{a.size} elements overflow 64-bit indexing")
    item = a.itemsize
    if a.flags.aligned and all(s % item == 0 and abs(s) < _MAX_INDEX for s in a.strides):
        return a
    return np.ascontiguousarray(a)


class _Conv:
    """A validated conv2d call: normalised parameters and the C description."""

    __slots__ = ("x", "w", "bias", "dtype", "shape_out", "desc", "post", "pre",
                 "cin_g", "cout_g", "unbatched", "nhwc", "packed", "keep", "stride",
                 "dilation", "method")


#: conv2d's weight layout in words, by data_format: (NCHW, NHWC)
_CONV_WEIGHT_LAYOUTS = ("(out_channels, in_channels/groups, kH, kW)",
                        "(kH, kW, in_channels/groups, out_channels)")


def _operands(x, weight, nhwc, where, weight_layouts):
    """The checks on the input and weight arrays that every convolution entry
    point shares (ranks, one dtype), then both in the torch layout: a batch of
    one for a 3-D input, NHWC/HWIO-like transposed to NCHW/OIHW-like views.
    weight_layouts: the weight's layout in words, (NCHW, NHWC).  Returns
    (x, weight, unbatched)."""
    weight = _as_float_array(weight, "weight")
    if x.ndim not in (3, 4):
        layout = "(N, H, W, C)" if nhwc else "(N, C, H, W)"
        raise ValueError(f"{where}: expected input to be 3-D or 4-D {layout}, "
                         f"but got input of size {_shape_str(x.shape)}")
    if weight.ndim != 4:
        raise ValueError(f"{where}: expected weight to be 4-D {weight_layouts[nhwc]}, "
                         f"but got weight of size {_shape_str(weight.shape)}")
    if weight.dtype != x.dtype:
        raise TypeError(f"{where}: input and weight must have the same dtype, "
                        f"got input {x.dtype} and weight {weight.dtype}")
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    if nhwc:   # TensorFlow layout in, torch layout inside
        x = x.transpose(0, 3, 1, 2)
        weight = weight.transpose(3, 2, 0, 1)
    return x, weight, unbatched


def _plan(x, weight, bias, stride, padding, dilation, groups, activation,
          pre_activation, data_format, prepare=True):
    """Validate a call; with prepare=False only the shapes are looked at."""
    p = _Conv()
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be 'NCHW' or 'NHWC', got {data_format!r}")
    p.nhwc = data_format == "NHWC"
    x = _as_float_array(x, "input")
    p.packed = None
    if isinstance(weight, (_core.PackedWeight, _core.WinogradWeight)):   # see pack_weight
        p.packed = weight
        if _int(groups, "groups") != weight.groups:
            raise ValueError(f"conv2d: weight was packed for groups={weight.groups}, "
                             f"got groups={groups}")
        weight = weight.weight.transpose(2, 3, 1, 0) if p.nhwc else weight.weight
    x, weight, p.unbatched = _operands(x, weight, p.nhwc, "conv2d", _CONV_WEIGHT_LAYOUTS)
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
    if max(hp, wp) >= _MAX_INDEX:
        raise ValueError(f"conv2d: padded input size ({hp} x {wp}) of input{_shape_str(x.shape)} "
                         f"with padding {(top, bottom, left, right)} is too large for 64-bit indexing")
    if max(ekh, ekw) >= _MAX_INDEX:
        raise ValueError(f"conv2d: dilated kernel size ({ekh} x {ekw}) with dilation {(dh, dw)} "
                         f"is too large for 64-bit indexing")
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
    if p.nhwc:
        # (N, C, H, W) and (O, I, kH, kW) views of the caller's NHWC / HWIO
        # arrays: the kernels read them through their strides (_nhwc_*).
        p.x = _strided_ok(x, "input") if prepare else x
        p.w = _strided_ok(weight, "weight") if prepare else weight
    else:
        p.x = _contiguous(x, "input") if prepare else x
        # a pack's weight may be the OIHW view of its HWIO copy, a raw weight
        # the OIHW view of an HWIO kernel (a layer's in training): used as
        # they are (the kernels read the pack, or pack from HWIO rows;
        # _dense_weight where a path needs OIHW).  NumPy's transposing copy
        # of such a view took ~10 ns a weight (benchmarks/NOTES.md, session 11).
        if not prepare or p.packed is not None:
            p.w = weight
        elif _is_hwio_view(weight):
            p.w = _strided_ok(weight, "weight")
        else:
            p.w = _contiguous(weight, "weight")
    p.bias = bias
    p.dtype = x.dtype
    p.cin_g, p.cout_g = cin_g, c_out // groups
    p.shape_out = (n, c_out, h_out, w_out)
    p.stride, p.dilation = (sh, sw), (dh, dw)
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


# ---- Winograd's constraints ----------------------------------------------------
WINOGRAD_TILES = (2, 4)


def _check_winograd(w_shape, stride, dilation, where):
    """ValueError naming the constraint when the Winograd path cannot compute
    the call (w_shape OIHW; stride and dilation already validated)."""
    kh, kw = w_shape[2:]
    if (kh, kw) != (3, 3):
        raise ValueError(f"{where}: method='winograd' needs a 3x3 kernel, got weight of size "
                         f"{_shape_str(w_shape)} (kernel {kh}x{kw}, OIHW)")
    if _positive_pair(stride, "stride") != (1, 1):
        raise ValueError(f"{where}: method='winograd' needs stride 1, got stride={stride!r}")
    if _positive_pair(dilation, "dilation") != (1, 1):
        raise ValueError(f"{where}: method='winograd' needs dilation 1, got dilation={dilation!r}")


def _check_winograd_tile(tile, where):
    """tile as given: 2, 4 or "auto" (0 for "auto", as the C plan takes it)."""
    if isinstance(tile, str) and tile == "auto":
        return 0
    if isinstance(tile, (int, np.integer)) and not isinstance(tile, bool) and tile in WINOGRAD_TILES:
        return int(tile)
    raise ValueError(f"{where}: tile must be 2, 4 or 'auto', got tile={tile!r}")

