"""The per-call cache of conv2d: one dict, one key function.

_plan (fastconv._validate) costs microseconds of Python; a small layer's
kernel is about one.  A call whose arrays are plain ndarrays (the weight may
be a PackedWeight) and whose parameters are ints, int pairs, strs or
Activations seen before finds its plan in _CALL_CACHE, keyed by
_core.fast_key (the one key function: shapes, dtypes, parameters,
Activations by identity, the data_format and whether fast math's "auto" is
in force).  What _plan derived from those is the same; what depends on the
arrays themselves (contiguity, alignment, writeability, overlap with out) is
checked again on every call.  Anything else takes the full path, so every
error message is unchanged.

An entry is a _core.FastPlan, of one of two kinds:

- direct: the fused direct kernels on the caller's arrays (NCHW, and NHWC
  where the kernels read and write in place; raw or packed weights), run by
  _core.fast_conv2d without going back to Python;
- template (NCHW raw weights, every other call that validated: "separate",
  "im2col", "winograd", fast math's "auto" resolved to Winograd, an empty
  output): the shape-derived part of the _Conv, run by _run_template through
  the Python methods.

In front of the dict, inside _core, _LastCall remembers the last call that
found its plan: the same argument objects and array shapes get it without
building and hashing the key (half the Python-side time of a small call).
It is a shortcut into this cache, not a second keying scheme.  Entries are
filled only once a call has passed every check of the full path.  The dict
is bounded (cleared when full: a caller making a new Activation per call
fills it) and is read and written under the GIL only, by whole-entry
operations, so threads may share it.
"""
import numpy as np

from fastconv import _core
from fastconv.activations import Activation
from fastconv._methods import (_METHODS, _fast_cacheable, _hwio_dense_strides,
                               _nhwc_dense_strides)
from fastconv._validate import _Conv, _user_shape

_CALL_CACHE = {}
_CALL_CACHE_MAX = 512


def remember(x, weight, bias, stride, padding, dilation, groups, activation, pre_activation,
             method, data_format, out, fast_math, p, run):
    """Cache the plan of a call that passed every check: its arguments as
    given (method as given), p its _Conv, run the method it ran (fast math's
    "auto" resolved).  Calls that fit neither kind of entry are left out."""
    direct = _fast_cacheable(p, run)
    if not direct and (p.packed is not None or p.nhwc):
        return
    key = _core.fast_key(x, weight, bias, stride, padding, dilation, groups, activation,
                         pre_activation, method, data_format, out, fast_math)
    if key is None:
        return
    if len(_CALL_CACHE) >= _CALL_CACHE_MAX:
        _CALL_CACHE.clear()
    # NHWC: the strides _direct_nhwc passes for a dense x and HWIO weight
    xs, ws = (_nhwc_dense_strides(p), _hwio_dense_strides(p)) if p.nhwc else (None, None)
    _CALL_CACHE[key] = _core.FastPlan(p.desc, p.post._spec, p.pre._spec, _user_shape(p),
                                      p.dtype.num, (activation, pre_activation), xs, ws,
                                      None if direct else _template(p, run))


def _template(p, run):
    t = _Conv()   # the shape-derived part of p; the arrays are per call
    t.method = run
    t.dtype, t.shape_out, t.desc, t.post, t.pre = p.dtype, p.shape_out, p.desc, p.post, p.pre
    t.cin_g, t.cout_g, t.unbatched = p.cin_g, p.cout_g, p.unbatched
    return t


def _run_template(t, x, weight, bias, out):
    """conv2d for a cached template t (NCHW, raw weights): re-check the
    per-array facts.  None when an array is not dense: the full path makes
    the copies."""
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
        _METHODS[t.method](p, y)
    if out is not None:
        return out
    return y[0] if t.unbatched else y


_core.fast_setup(Activation, _run_template)
