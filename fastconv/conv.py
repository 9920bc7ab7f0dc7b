"""fastconv.conv2d: argument checking and the three ways to compute it.

Everything is validated here, in Python, before any C runs (the C kernels
trust their arguments).  Messages name the argument and the shapes involved,
in torch's words where torch has words for it.
"""
import copyreg
import operator

import numpy as np

from fastconv import _core
from fastconv.activations import Activation, _check_out, as_activation
from fastconv.config import FAST_MATH_EVER_ON, get_fast_math

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
    method : "auto" | "fused" | "separate" | "im2col" | "winograd" (3x3, stride 1,
        dilation 1 only).  "auto" is the direct path; under fast math
        (``fastconv.set_fast_math(True)`` or ``with fastconv.fast_math():``) it
        is Winograd where ``winograd_pays(..., packed=False)`` says so, and for
        a ``pack_weight(..., method="winograd")`` weight (docs/DESIGN.md)
    data_format : "NCHW" (torch) or "NHWC" (TensorFlow/Keras)
    out : optional preallocated C-contiguous output of the exact shape and dtype
    """
    # "auto" under fast math is a method of its own to the call caches: its
    # calls have their own Cython cache (holding only the calls the rule
    # leaves direct) and their own plan-cache keys (the plan holds the choice)
    fast_math = method == "auto" and FAST_MATH_EVER_ON[0] and get_fast_math()
    fast_cache = _FAST_CACHE_FAST_MATH if fast_math else _FAST_CACHE
    # Fastest path for repeated fused calls (raw or packed weights): all in Cython.
    y = _fast_conv2d(fast_cache, x, weight, bias, stride, padding, dilation, groups,
                     activation, pre_activation, method, data_format, out)
    if y is not None:
        return y
    # Fast path for repeated calls: dense NCHW arrays and parameters seen before.
    key = _cache_key(x, weight, bias, stride, padding, dilation, groups, activation,
                     pre_activation, method, data_format, out)
    if key is not None:
        if fast_math:
            key += ("fast_math",)
        p = _PLAN_CACHE.get(key)
        if p is not None:
            y = _run_cached(p, x, weight, bias, p.method, out)
            if y is not None:
                return y
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    p = _plan(x, weight, bias, stride, padding, dilation, groups, activation,
              pre_activation, data_format)
    if method == "winograd":
        _check_winograd(p.w.shape, stride, dilation, "conv2d")
    elif isinstance(p.packed, _core.WinogradWeight):
        if not fast_math:
            raise ValueError(f"conv2d: weight was packed with method='winograd'; pass "
                             f"method='winograd' (got method={method!r}), turn fast math on "
                             f"(fastconv.set_fast_math) or pass plain weights")
        _check_winograd(p.w.shape, stride, dilation, "conv2d")   # auto runs the pack it got
        method = "winograd"
    elif fast_math and p.packed is None and _winograd_pays(p, packed=False):
        method = "winograd"
    shape = _user_shape(p)
    if out is not None:
        _check_out(out, shape, p.dtype, "conv2d")
        if np.may_share_memory(out, p.x) or np.may_share_memory(out, p.w) or (
                p.bias is not None and np.may_share_memory(out, p.bias)):
            raise ValueError("conv2d: out must not overlap the input, weight or bias")
    # remembered only once out has passed its checks too (its shape is in the
    # key and not checked again on a cached call)
    if key is not None and p.packed is None and not p.nhwc:
        _remember(key, p, activation, pre_activation, method)
    if _fast_cacheable(p, method):
        _remember_fast(fast_cache, x, weight, bias, stride, padding, dilation, groups,
                       activation, pre_activation, method, data_format, out, p)
    if p.nhwc:   # written channels-last by the kernels (see _NHWC_METHODS)
        n, c, h, w = p.shape_out
        y = out.reshape(n, h, w, c) if out is not None else np.empty((n, h, w, c), p.dtype)
        if n and y.size:
            _NHWC_METHODS[method](p, y)
    else:
        y = out.reshape(p.shape_out) if out is not None else np.empty(p.shape_out, p.dtype)
        if p.shape_out[0] and y.size:
            _METHODS[method](p, y)
    if out is not None:
        return out
    return y[0] if p.unbatched else y


# ---- the per-call cache ---------------------------------------------------
# _plan costs microseconds of Python; a small layer's kernel is about one.  A
# call whose arrays are plain, dense NCHW ndarrays and whose parameters are
# ints, strs or Activations seen before reuses the validated plan: what
# _plan derived from shapes, dtypes and parameters (all in the key) is the
# same, and what depends on the arrays themselves (contiguity, writeability,
# overlap with out) is checked again on every call.  Anything else takes the
# full path, so every error message is unchanged.
_PLAN_CACHE = {}
_PLAN_CACHE_MAX = 512
# The Cython hot path's plans (_core.fast_conv2d), fused calls only (NCHW, and
# NHWC where the kernels run on the caller's arrays), also for packed weights;
# filled once a call has passed every check here.
_FAST_CACHE = {}
_FAST_CACHE_FAST_MATH = {}   # the same for method="auto" under fast math
_FAST_CACHE_MAX = 128   # small: a caller making a new Activation per call fills it
_fast_conv2d = _core.fast_conv2d
_core.fast_setup(Activation)


def _fast_cacheable(p, method):
    """Whether a validated call running `method` (fast math resolved) is what
    _core.fast_conv2d runs: the fused direct kernels on the caller's arrays
    themselves, a non-empty output."""
    if method not in ("auto", "fused") or not p.shape_out[0] or \
            not p.shape_out[1] * p.shape_out[2] * p.shape_out[3]:
        return False
    return not p.nhwc or _nhwc_fused_in_place(p)


def _remember_fast(cache, x, weight, bias, stride, padding, dilation, groups, activation,
                   pre_activation, method, data_format, out, p):
    key = _core.fast_key(x, weight, bias, stride, padding, dilation, groups, activation,
                         pre_activation, method, data_format, out)
    if key is None:
        return
    if len(cache) >= _FAST_CACHE_MAX:
        cache.clear()
    # NHWC: the strides _direct_nhwc passes for a dense x and HWIO weight
    xs, ws = (_nhwc_dense_strides(p), _hwio_dense_strides(p)) if p.nhwc else (None, None)
    cache[key] = _core.FastPlan(p.desc, p.post._spec, p.pre._spec, _user_shape(p),
                                p.dtype.num, (activation, pre_activation), xs, ws)
_NDARRAY = np.ndarray


def _param_key(v):
    """A hashable key part that tells apart values validation tells apart
    (1 from True or 1.0); None when the value is not cacheable."""
    t = type(v)
    if t is int or t is str:
        return v
    if t is tuple and len(v) == 2 and type(v[0]) is int and type(v[1]) is int:
        return v
    return None


def _act_key(a):
    # Activations by identity: the cached plan holds a reference, so the id
    # cannot be reused while the entry lives.
    if a is None or type(a) is str:
        return a
    if type(a) is Activation:
        return id(a)
    return None


def _cache_key(x, weight, bias, stride, padding, dilation, groups, activation,
               pre_activation, method, data_format, out):
    if type(x) is not _NDARRAY or type(weight) is not _NDARRAY or data_format != "NCHW":
        return None
    if bias is not None and type(bias) is not _NDARRAY:
        return None
    if out is not None and type(out) is not _NDARRAY:
        return None
    k = (_param_key(stride), _param_key(padding), _param_key(dilation), _param_key(groups),
         _act_key(activation), _act_key(pre_activation))
    if None in k[:4] or (k[4] is None and activation is not None) or \
            (k[5] is None and pre_activation is not None) or type(method) is not str:
        return None
    return (x.shape, x.dtype, weight.shape, weight.dtype,
            None if bias is None else (bias.shape, bias.dtype),
            None if out is None else (out.shape, out.dtype), method) + k


def _remember(key, p, activation, pre_activation, method):
    if len(_PLAN_CACHE) >= _PLAN_CACHE_MAX:
        _PLAN_CACHE.clear()
    t = _Conv()   # the shape-derived part of p; the arrays are per call
    t.method = method   # the method the call ran (fast math's "auto" resolved)
    t.dtype, t.shape_out, t.desc, t.post, t.pre = p.dtype, p.shape_out, p.desc, p.post, p.pre
    t.cin_g, t.cout_g, t.unbatched = p.cin_g, p.cout_g, p.unbatched
    t.keep = (activation, pre_activation)   # keeps the ids in the key alive
    _PLAN_CACHE[key] = t


def _run_cached(t, x, weight, bias, method, out):
    """conv2d for a cached plan template t: re-check the per-array facts.
    None when an array is not dense: the full path makes the copies."""
    if not (x.flags.c_contiguous and weight.flags.c_contiguous and
            (bias is None or bias.flags.c_contiguous)):
        return None
    if out is not None:
        f = out.flags
        if not f.c_contiguous:
            raise ValueError("conv2d: out must be C-contiguous")
        if not f.writeable:
            raise ValueError("conv2d: out is read-only")
        if _core.out_overlaps(out, x, weight, bias):
            raise ValueError("conv2d: out must not overlap the input, weight or bias")
    p = _Conv()
    p.x = x[None] if t.unbatched else x
    p.w, p.bias, p.packed = weight, bias, None
    p.dtype, p.shape_out, p.desc, p.post, p.pre = t.dtype, t.shape_out, t.desc, t.post, t.pre
    p.cin_g, p.cout_g, p.unbatched, p.nhwc = t.cin_g, t.cout_g, t.unbatched, False
    if out is not None:
        y = out.reshape(p.shape_out) if t.unbatched else out
    else:
        y = np.empty(p.shape_out, p.dtype)
    if p.shape_out[0] and y.size:
        _METHODS[method](p, y)
    if out is not None:
        return out
    return y[0] if t.unbatched else y


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


def winograd_pays(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1, *, packed,
                  dtype=np.float32, data_format="NCHW"):
    """Whether fast math's ``method="auto"`` takes the Winograd path for this
    convolution: a 3x3 kernel, stride 1, dilation 1, at least
    ``WINOGRAD_MIN_CHANNELS`` input and output channels per group, and at least
    ``WINOGRAD_MIN_TILES_PACKED`` (``packed=True``: weights transformed once, by
    ``pack_weight(..., method="winograd")``, a layer or an ONNX session) or
    ``WINOGRAD_MIN_TILES_PLAIN`` (``packed=False``: a plain weight array,
    transformed in every call) output tiles, N * ceil(Ho/m) * ceil(Wo/m) for
    the plan's tile size m (4, or 2 for many channels on small images).
    The one rule conv2d, the layers, the ONNX session and workspace_bytes
    follow; it does not look at the fast-math switch itself.  Shapes and
    parameters as for :func:`workspace_bytes`."""
    if not isinstance(packed, (bool, np.bool_)):
        raise TypeError(f"winograd_pays: packed must be a bool, got {packed!r}")
    dtype = np.dtype(dtype)
    zero = np.zeros((), dtype)
    p = _plan(np.broadcast_to(zero, x_shape), np.broadcast_to(zero, w_shape), None, stride,
              padding, dilation, groups, None, None, data_format, prepare=False)
    return _winograd_pays(p, bool(packed))


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


def workspace_bytes(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1, *,
                    method="auto", pre_activation=None, dtype=np.float32, data_format="NCHW",
                    tile="auto"):
    """Extra bytes a conv2d call allocates besides its output, by method.

    Counts the activated input copy (pre-activation), im2col's column matrix,
    and for NHWC the transposed copies of x, w and y that im2col makes, and
    depthwise (groups == C > 1) where the channels-last depthwise kernel does
    not take the call (a channel multiplier above 1, fewer than 16 bytes of
    channels, or for "fused"/"auto" a pre-activation other than relu); the
    direct kernels and the channels-last depthwise kernel read and write NHWC
    in place.
    ``method="winograd"``: its per-thread tile buffers at the current thread
    count for the call's tile size: ``tile`` 2 or 4 for a call given a
    ``WinogradWeight`` of that ``.tile``, "auto" (default) for a plain-weight
    call, which uses the plan's choice for this geometry (and adds its
    transformed copy of the weights, 16/9 or 4x the weights).
    ``method="auto"`` under fast math (:func:`fastconv.set_fast_math`): the
    figure of the method a call with plain weights picks (:func:`winograd_pays`
    with ``packed=False``), at the plan's tile size.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    wtile = _check_winograd_tile(tile, "workspace_bytes")
    if wtile and method != "winograd":
        raise ValueError(f"workspace_bytes: tile={tile!r} is for method='winograd' "
                         f"(got method={method!r})")
    dtype = np.dtype(dtype)
    zero = np.zeros((), dtype)
    p = _plan(np.broadcast_to(zero, x_shape), np.broadcast_to(zero, w_shape), None, stride,
              padding, dilation, groups, None, pre_activation, data_format, prepare=False)
    item = dtype.itemsize
    if method == "auto" and get_fast_math() and _winograd_pays(p, packed=False):
        method = "winograd"   # what a plain-weight call picks (see winograd_pays)
    if method == "winograd":
        # the per-thread tile buffers (the pre-activation is applied as the
        # tiles are gathered: no copy); plain weights add their transformed
        # copy, WinogradWeight.nbytes minus the weight's own bytes
        _check_winograd(p.w.shape, stride, dilation, "workspace_bytes")
        return _core.winograd_workspace(p.desc, item, wtile)
    in_bytes = int(np.prod(p.x.shape)) * item
    if p.nhwc and method != "im2col" and (not _nhwc_depthwise(p) or _nhwc_dw_native(
            p, None, _NO_ACT if method == "separate" else p.pre)):
        # the kernels (the channels-last depthwise one too) read a dense NHWC
        # x in place; a copy only to pre-activate it
        ws = _core.direct_workspace_ex(p.desc, _nhwc_dense_strides(p), p.pre._spec, item, True)
        return ws if method != "separate" or p.pre.is_identity else in_bytes
    if method in ("auto", "fused"):      # the kernel's channels-last / pre-activated input
        total = p.desc.direct_workspace_bytes(p.pre._spec, item)
    elif method == "separate":           # an activated copy, then the plain kernel
        total = (0 if p.pre.is_identity else in_bytes) + \
            p.desc.direct_workspace_bytes(_NO_ACT._spec, item)
    else:
        total = 0 if p.pre.is_identity else in_bytes
    if method == "im2col":
        kh, kw = p.w.shape[2:]
        k = p.cin_g * kh * kw
        h_out, w_out = p.shape_out[2:]
        total += k * _im2col_block_rows(k, h_out, w_out, item) * w_out * item
    if p.nhwc and (method == "im2col" or _nhwc_depthwise(p)):
        # these run the NCHW code on transposed copies of x, w and y
        total += in_bytes + p.w.size * item + int(np.prod(p.shape_out)) * item
    return total


def pack_weight(weight, groups=1, *, data_format="NCHW", out=None, method="fused", tile="auto",
                input_shape=None, padding=1):
    """Pack conv2d weights once for the direct kernels; pass the result to
    ``conv2d`` in place of the weight array (with the same ``groups``).

    The packed object holds its own copy of the weights: later changes to
    ``weight`` do not affect it (pack again to pick them up), so a cached pack
    can never give stale results.  One pack serves any input size, stride,
    padding, dilation and activation; ``.weight`` is the (read-only) copy.

    ``out``: a PackedWeight of the same shape, dtype and groups to pack the
    new values into, in place, and return; nothing is allocated (a fresh pack
    spends much of its time on the first touch of new memory: repack in a
    loop that updates the weights).  Like writing into any ``out=`` array, do
    not repack a pack that another thread's call is reading.

    ``method="winograd"``: transform 3x3 weights once for
    ``conv2d(..., method="winograd")`` instead (a ``WinogradWeight``; ``out``
    is not supported for it), for output tiles of ``tile`` x ``tile``:

    - ``tile=4``: F(4x4, 3x3), 4x the weight's size, the fewest multiplications;
    - ``tile=2``: F(2x2, 3x3), 16/9 the weight's size, more accurate, faster
      where the image has few 4x4 tiles for many channels (14x14 and 7x7
      layers of 256+ channels at batch 1);
    - ``tile="auto"`` (default): the plan's choice (``fc_winograd_choose_tile``,
      docs/DESIGN.md "Winograd"). Give ``input_shape`` (x's shape in
      ``data_format``, with or without the batch dimension) and ``padding``
      (as conv2d's; default 1) to choose for that geometry; without
      ``input_shape`` the choice rests on the channels alone.

    The pack's ``.tile`` is its tile size; a call uses it whatever the input.
    ``"fused"`` (and ``"auto"``) packs for the direct kernels.
    """
    if method not in ("auto", "fused", "winograd"):
        raise ValueError(f"pack_weight: method must be 'auto', 'fused' or 'winograd', "
                         f"got {method!r}")
    wtile = _check_winograd_tile(tile, "pack_weight")
    if method != "winograd" and (wtile or input_shape is not None):
        raise ValueError(f"pack_weight: tile= and input_shape= are for method='winograd' "
                         f"(got method={method!r})")
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be 'NCHW' or 'NHWC', got {data_format!r}")
    w = _as_float_array(weight, "weight")
    if w.ndim != 4:
        raise ValueError(f"pack_weight: expected weight to be 4-D, got weight of size "
                         f"{_shape_str(w.shape)}")
    if data_format == "NHWC":
        w = w.transpose(3, 2, 0, 1)
    groups = _int(groups, "groups")
    if groups <= 0 or w.shape[0] % groups:
        raise ValueError(f"pack_weight: groups={groups} must be positive and divide "
                         f"out_channels={w.shape[0]}")
    if min(w.shape) == 0:
        raise ValueError(f"pack_weight: weight of size {_shape_str(w.shape)} has an empty dimension")
    if method == "winograd":
        _check_winograd(w.shape, 1, 1, "pack_weight")
        if out is not None:
            raise ValueError("pack_weight: out= is not supported with method='winograd'")
        if input_shape is not None:   # validated as a call's x would be
            zero = np.zeros((), w.dtype)
            shape = tuple(_int(s, "input_shape") for s in input_shape)
            if len(shape) not in (3, 4):
                raise ValueError(f"pack_weight: input_shape must be (N, C, H, W) or (C, H, W) "
                                 f"in data_format {data_format}, got {input_shape!r}")
            x_ = np.broadcast_to(zero, shape)
            w_ = w.transpose(2, 3, 1, 0) if data_format == "NHWC" else w
            p = _plan(x_, w_, None, 1, padding, 1, groups, None, None, data_format,
                      prepare=False)
            desc = p.desc
        else:   # the spatial size unknown (h_out = w_out = 0): from the channels
            desc = _core.ConvDesc(1, w.shape[1] * groups, 0, 0, w.shape[0], 3, 3, 0, 0,
                                  1, 1, 1, 1, 0, 0, groups)
        return _core.WinogradWeight(w, groups, wtile or _core.winograd_choose_tile(desc))
    if out is None:   # (PackedWeight copies w into C order: no second copy here)
        return _core.PackedWeight(w, groups)
    if not isinstance(out, _core.PackedWeight):
        raise TypeError(f"pack_weight: out must be a PackedWeight (from pack_weight), got "
                        f"{type(out).__name__}")
    if out.shape != w.shape or out.dtype != w.dtype or out.groups != groups:
        raise ValueError(f"pack_weight: out holds {out.dtype} weights of size "
                         f"{_shape_str(out.shape)} with groups={out.groups}; the new weight is "
                         f"{w.dtype} of size {_shape_str(w.shape)} (OIHW) with groups={groups}")
    out._repack(w)
    return out


def _shared_pack(oihw, groups, out=None):
    """A pack of `oihw`, an OIHW view of a layer's HWIO kernel, that reads the
    kernel itself instead of keeping a copy (PackedWeight(copy=False)), packed
    into `out` (a previous such pack of the same geometry) when given.  For an
    owner that packs again whenever it changes the kernel (a layer, after
    set_weights and after each optimizer step): the copy was a third of the
    per-step repack's memory traffic (benchmarks/NOTES.md, training step,
    session 11).  pack_weight, the public way, always copies."""
    if out is not None and out.shared and out.shape == oihw.shape and \
            out.dtype == oihw.dtype and out.groups == groups:
        out._repack(oihw)
        return out
    return _core.PackedWeight(oihw, groups, False)


# ---- pickling -------------------------------------------------------------
# What conv2d takes must travel to other processes (dask.distributed workers,
# multiprocessing pools, layers holding their packed kernels): a PackedWeight
# pickles as its weight copy and groups and is packed again when loaded; an
# Activation as its name and parameters (both wrap C structs that have no
# pickled form of their own).

def _packed_from(weight, groups):
    return _core.PackedWeight(np.ascontiguousarray(weight), groups)


def _reduce_packed(packed):
    return _packed_from, (packed.weight, packed.groups)


def _winograd_from(weight, groups, tile=4):   # (tile: packs pickled before F(2x2) are F(4x4))
    return _core.WinogradWeight(np.ascontiguousarray(weight), groups, tile)


def _reduce_winograd(packed):
    return _winograd_from, (packed.weight, packed.groups, packed.tile)


def _activation_from(name, params):
    return Activation(name, **params)


def _reduce_activation(act):
    return _activation_from, (act.name, dict(act.params))


copyreg.pickle(_core.PackedWeight, _reduce_packed)
copyreg.pickle(_core.WinogradWeight, _reduce_winograd)
copyreg.pickle(Activation, _reduce_activation)
