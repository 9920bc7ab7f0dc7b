"""fastconv.conv2d and its companions: the public face of the convolution.

conv2d, workspace_bytes, pack_weight and winograd_pays live here; what they
stand on is in modules of its own:

- fastconv._validate: argument validation (_plan, the validated call _Conv,
  the primitive checks shared with grad.py, dask.py and the layers);
- fastconv._methods: the ways to compute a validated call (fused, separate,
  im2col, winograd; NCHW and NHWC) and fast math's Winograd rule;
- fastconv._cache: the one per-call cache (keyed by _core.fast_key).

The names other modules and the tests take from fastconv.conv are
re-exported here.
"""
import copyreg

import numpy as np

from fastconv import _core
from fastconv._cache import _CALL_CACHE, remember as _remember
# used here, and re-exported for grad.py (_conv.*), dask.py, the layers and the tests
from fastconv._methods import (  # noqa: F401
    WINOGRAD_MIN_CHANNELS, WINOGRAD_MIN_TILES_PACKED, WINOGRAD_MIN_TILES_PLAIN, _IM2COL_BLOCK_BYTES,
    _IM2COL_MIN_COLS, _METHODS, _NHWC_METHODS, _NO_ACT, _activated_copy, _elem_strides,
    _im2col_block_rows, _nhwc_depthwise, _nhwc_dense_strides, _nhwc_dw_native, _run_im2col,
    _winograd_pays)
from fastconv._validate import (  # noqa: F401
    DATA_FORMATS, METHODS, _MAX_BYTES, _MAX_INDEX, _Conv, _as_float_array, _check_winograd,
    _check_winograd_tile, _int, _is_hwio_view, _operands, _padding, _pair, _plan,
    _positive_pair, _shape_str, _user_shape)
from fastconv.activations import Activation, _check_out
from fastconv.config import FAST_MATH_EVER_ON, get_fast_math

# conv2d's first step, a module global (one lookup): the cached call, in Cython
_fast_conv2d = _core.fast_conv2d


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
    # "auto" under fast math is a method of its own to the call cache (fast_math
    # is in the key): its plans hold the rule's choice
    fast_math = method == "auto" and FAST_MATH_EVER_ON[0] and get_fast_math()
    # A repeated call (dense arrays, parameters seen before) is found in the
    # one per-call cache and run from there (fastconv._cache).
    y = _fast_conv2d(_CALL_CACHE, x, weight, bias, stride, padding, dilation, groups,
                     activation, pre_activation, method, data_format, out, fast_math)
    if y is not None:
        return y
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    p = _plan(x, weight, bias, stride, padding, dilation, groups, activation,
              pre_activation, data_format)
    run = method   # the method the call runs (fast math's "auto" resolved)
    if method == "winograd":
        _check_winograd(p.w.shape, stride, dilation, "conv2d")
    elif isinstance(p.packed, _core.WinogradWeight):
        if not fast_math:
            raise ValueError(f"conv2d: weight was packed with method='winograd'; pass "
                             f"method='winograd' (got method={method!r}), turn fast math on "
                             f"(fastconv.set_fast_math) or pass plain weights")
        _check_winograd(p.w.shape, stride, dilation, "conv2d")   # auto runs the pack it got
        run = "winograd"
    elif fast_math and p.packed is None and _winograd_pays(p, packed=False):
        run = "winograd"
    shape = _user_shape(p)
    if out is not None:
        _check_out(out, shape, p.dtype, "conv2d")
        if np.may_share_memory(out, p.x) or np.may_share_memory(out, p.w) or (
                p.bias is not None and np.may_share_memory(out, p.bias)):
            raise ValueError("conv2d: out must not overlap the input, weight or bias")
    # remembered only once out has passed its checks too (its shape is in the
    # key and not checked again on a cached call)
    _remember(x, weight, bias, stride, padding, dilation, groups, activation, pre_activation,
              method, data_format, out, fast_math, p, run)
    if p.nhwc:   # written channels-last by the kernels (see _NHWC_METHODS)
        n, c, h, w = p.shape_out
        y = out.reshape(n, h, w, c) if out is not None else np.empty((n, h, w, c), p.dtype)
        if n and y.size:
            _NHWC_METHODS[run](p, y)
    else:
        y = out.reshape(p.shape_out) if out is not None else np.empty(p.shape_out, p.dtype)
        if p.shape_out[0] and y.size:
            _METHODS[run](p, y)
    if out is not None:
        return out
    return y[0] if p.unbatched else y


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
