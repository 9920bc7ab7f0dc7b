"""ONNX operators, keyed by op type.

Each entry compiles one node, once, at session creation: it reads the
attributes (with the semantics of the model's opset), checks what fastconv
cannot do (raising NotImplementedError naming the node) and returns a kernel
``f(*inputs) -> output or tuple of outputs`` on NumPy arrays.  Absent optional
inputs arrive as None.  Convolutions run on ``fastconv.conv2d`` with weights
packed here, once; max pooling by vectorised NumPy passes (pool_by_taps), average
pooling as an all-ones depthwise conv2d (average_pool_by_conv); per-element
activations on ``fastconv.activate``; the rest is NumPy.

``ctx`` gives the compiler what is known before running: ``ctx.const(name)``
(the value of a constant input, else None), ``ctx.shape(name)`` (the static
shape from shape inference, entries None where symbolic, or None) and
``ctx.dtype(name)``.
"""
import math
import time

import numpy as np

from fastconv import _core, _pool
from fastconv.activations import Activation, activate
from fastconv.conv import conv2d, pack_weight, winograd_pays

from ._graph import malformed, unsupported

OPS = {}
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def op(*names):
    def register(fn):
        for n in names:
            OPS[n] = fn
        return fn
    return register


def _ints(v):
    return [int(i) for i in v]


def _float_only(node, ctx, *idx):
    """Refuse, at creation, inputs whose inferred dtype fastconv's kernels lack."""
    for i in idx or range(len(node.inputs)):
        if i < len(node.inputs) and node.inputs[i]:
            dt = ctx.dtype(node.inputs[i])
            if dt is not None and dt not in FLOATS:
                raise unsupported(node, f"input {node.inputs[i]!r} of dtype {dt} "
                                        f"(float32 and float64 are)")


def _axis(node, axis, rank):
    if rank is None:
        return axis
    if not -rank <= axis < rank:
        raise malformed(node, f"axis {axis} out of range for rank {rank}")
    return axis % rank


# ---------------------------------------------------------------------------
# per-element activations
#
# activation_of(node) is what the optimiser fuses into a convolution: the
# fastconv Activation computing exactly the node, or None when the node's
# parameters have no fastconv equivalent (then it runs on its own).

_SELU_ALPHA, _SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875


def _close(a, b):
    return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))


def activation_of(node, ctx=None):
    t, a = node.op_type, node.attr
    if t == "Relu":
        return Activation("relu")
    if t == "LeakyRelu":
        return Activation("leaky_relu", negative_slope=float(a("alpha", 0.01)))
    if t == "Elu":
        return Activation("elu", alpha=float(a("alpha", 1.0)))
    if t == "Selu":
        ok = _close(a("alpha", _SELU_ALPHA), _SELU_ALPHA) and _close(a("gamma", _SELU_GAMMA),
                                                                      _SELU_GAMMA)
        return Activation("selu") if ok else None
    if t == "Sigmoid":
        return Activation("sigmoid")
    if t == "HardSigmoid":   # fastconv's is relu6(x + 3) / 6: alpha 1/6, beta 1/2
        ok = _close(a("alpha", 0.2), 1 / 6) and _close(a("beta", 0.5), 0.5)
        return Activation("hardsigmoid") if ok else None
    if t == "HardSwish":
        return Activation("hardswish")
    if t == "Tanh":
        return Activation("tanh")
    if t == "Softplus":
        # ONNX: log(1 + exp(x)); fastconv's threshold 20 returns x above it,
        # within exp(-20) of it (below float32's resolution there)
        return Activation("softplus")
    if t == "Softsign":
        return Activation("softsign")
    if t == "Mish":
        return Activation("mish")
    if t == "Gelu":
        approx = a("approximate", "none")
        return Activation("gelu", approximate=approx) if approx in ("none", "tanh") else None
    if t == "Clip" and ctx is not None:
        lo, hi = clip_bounds(node, ctx)
        if lo is None or hi is None or lo is _DYNAMIC or hi is _DYNAMIC:
            return None
        if lo == 0 and hi == 6:
            return Activation("relu6")
        if lo == 0 and hi == math.inf:
            return Activation("relu")
    return None


# NumPy versions for the parameters fastconv's activations do not take, and
# for dtypes it does not run.
def _np_hardsigmoid(x, alpha, beta):
    return np.clip(alpha * x + beta, 0, 1).astype(x.dtype, copy=False)


def _np_selu(x, alpha, gamma):
    return (gamma * np.where(x > 0, x, alpha * (np.exp(np.minimum(x, 0)) - 1))).astype(x.dtype)


_ACT_OPS = ("Relu", "LeakyRelu", "Elu", "Selu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
            "Softplus", "Softsign", "Mish", "Gelu")


@op(*_ACT_OPS)
def compile_activation(node, ctx):
    act = activation_of(node)
    if node.op_type == "Gelu" and act is None:
        raise unsupported(node, f"approximate={node.attr('approximate')!r}")
    t = node.op_type
    if act is None:
        if t == "HardSigmoid":
            alpha, beta = float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5))
            return lambda x: _np_hardsigmoid(x, alpha, beta)
        alpha = float(node.attr("alpha", _SELU_ALPHA))
        gamma = float(node.attr("gamma", _SELU_GAMMA))
        return lambda x: _np_selu(x, alpha, gamma)
    if t == "Relu":   # also for the integer types Relu takes
        def relu(x):
            if x.dtype in FLOATS:
                return activate(x, act)
            return np.maximum(x, 0).astype(x.dtype, copy=False)
        return relu
    _float_only(node, ctx, 0)
    return lambda x: activate(x, act)


@op("PRelu")
def compile_prelu(node, ctx):
    def prelu(x, slope):
        if node.opset < 7 and slope.ndim == 1 and x.ndim > 2:   # per channel then
            slope = slope.reshape((-1,) + (1,) * (x.ndim - 2))
        return np.where(x < 0, x * slope, x).astype(x.dtype, copy=False)
    return prelu


_DYNAMIC = object()


def clip_bounds(node, ctx):
    """(min, max) of a Clip as Python floats (None: absent -> unbounded;
    _DYNAMIC: an input known only at run time)."""
    if node.opset < 11:
        return float(node.attr("min", -math.inf)), float(node.attr("max", math.inf))
    out = []
    for i, default in ((1, -math.inf), (2, math.inf)):
        name = node.inputs[i] if len(node.inputs) > i else ""
        if not name:
            out.append(default)
            continue
        v = ctx.const(name)
        out.append(_DYNAMIC if v is None else float(np.asarray(v).reshape(())))
    return tuple(out)


@op("Clip")
def compile_clip(node, ctx):
    if node.opset < 11:
        lo, hi = clip_bounds(node, ctx)

        def clip_attr(x):
            return np.minimum(np.maximum(x, lo), hi).astype(x.dtype, copy=False)
        return clip_attr

    def clip(x, lo=None, hi=None):
        # ONNX: min(max(x, lo), hi), so lo > hi gives hi everywhere
        y = x
        if lo is not None:
            y = np.maximum(y, lo.astype(x.dtype, copy=False))
        if hi is not None:
            y = np.minimum(y, hi.astype(x.dtype, copy=False))
        return np.array(y, dtype=x.dtype, copy=y is x)
    return clip


# ---------------------------------------------------------------------------
# convolution

def spatial_pads(node, in_sizes, kernel, strides, dilations):
    """[(lo, hi)] per spatial axis from ``auto_pad`` / ``pads`` (ONNX order
    x1_begin, x2_begin, ..., x1_end, x2_end)."""
    nd = len(kernel)
    auto = node.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for size, k, s, d in zip(in_sizes, kernel, strides, dilations):
            dk = (k - 1) * d + 1
            o = -(-size // s)
            total = max((o - 1) * s + dk - size, 0)
            small = total // 2
            out.append((small, total - small) if auto == "SAME_UPPER" else (total - small, small))
        return out
    if auto == "VALID":
        return [(0, 0)] * nd
    if auto != "NOTSET":
        raise unsupported(node, f"auto_pad={auto!r}")
    pads = _ints(node.attr("pads", [0] * (2 * nd)))
    if len(pads) != 2 * nd:
        raise malformed(node, f"pads {pads} for {nd} spatial axes")
    if min(pads) < 0:
        raise unsupported(node, f"negative pads {pads}")
    return [(pads[i], pads[i + nd]) for i in range(nd)]


def _conv_geometry(node, ctx, w_shape):
    nd = len(w_shape) - 2
    if nd not in (1, 2):
        raise unsupported(node, f"{nd}-D convolution (1-D and 2-D are)")
    kernel = _ints(node.attr("kernel_shape", w_shape[2:]))
    if list(kernel) != list(w_shape[2:]):
        raise malformed(node, f"kernel_shape {kernel} does not match the weight's {w_shape}")
    strides = _ints(node.attr("strides", [1] * nd))
    dilations = _ints(node.attr("dilations", [1] * nd))
    if len(strides) != nd or len(dilations) != nd:
        raise malformed(node, f"strides {strides} / dilations {dilations} for {nd} spatial axes")
    return nd, kernel, strides, dilations


#: conv2d methods a tuned Conv node chooses from, and the timed calls of each
TUNED_METHODS = ("fused", "im2col")
TUNE_ROUNDS = 2
#: the session's own 1x1 GEMM (src/conv/pointwise/conv_1x1_gemm.h), a further candidate for
#: 1x1 float32 Convs without padding and a ReLU / ReLU6 / no activation (a
#: grouped one as one GEMM per group on its channel slices: ShuffleNet)
GEMM_1X1 = "gemm1x1"
#: the clamp bounds of the activations the 1x1 GEMM applies itself
_GEMM_CLAMPS = {None: (-math.inf, math.inf), "relu": (0.0, math.inf), "relu6": (0.0, 6.0)}


def pack_1x1_gemm(w, b):
    """(out, in, 1, 1) weights and (out,) bias (or None) -> the 1x1 GEMM's
    packed layout: wp[blk, k, o] = w[MR blk + o, k], zero past out, and the
    bias zero-padded alike."""
    mr = _core.CONV1X1_MR
    m, k = w.shape[:2]
    nb = -(-m // mr)
    rows = np.zeros((nb * mr, k), np.float32)
    rows[:m] = w.reshape(m, k)
    bias = np.zeros(nb * mr, np.float32)
    if b is not None:
        bias[:m] = b
    return np.ascontiguousarray(rows.reshape(nb, mr, k).transpose(0, 2, 1)), bias


class ConvKernel:
    """A Conv node on fastconv.conv2d: weights packed once (when constant),
    the fused activations, padding per input size."""

    def __init__(self, node, ctx):
        _float_only(node, ctx)
        self.node = node
        w = ctx.const(node.inputs[1])
        w_shape = w.shape if w is not None else ctx.shape(node.inputs[1])
        if w_shape is None or None in w_shape:
            raise unsupported(node, "a weight of unknown shape")
        self.nd, self.kernel, self.strides, self.dilations = _conv_geometry(node, ctx, w_shape)
        self.groups = int(node.attr("group", 1))
        # conv2d's 2-D stride / dilation, made once (its call cache compares them by identity)
        self._stride2 = (1,) + tuple(self.strides) if self.nd == 1 else tuple(self.strides)
        self._dilation2 = (1,) + tuple(self.dilations) if self.nd == 1 else tuple(self.dilations)
        b = ctx.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
        fused = node.fused
        if "scale" in fused:   # a batch norm folded in by the optimiser, in float64
            scale, shift = fused["scale"], fused["shift"]
            w = (w.astype(np.float64) * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
            b0 = 0.0 if b is None else b.astype(np.float64)
            b = (b0 * scale + shift).astype(w.dtype)
        self.post = fused.get("activation")
        self.pre = fused.get("pre_activation")
        self.bias = None if b is None else np.ascontiguousarray(b.reshape(-1))
        self.packed = None
        #: the weights transformed for the Winograd path, made at creation
        #: when the session has fast math on, the geometry allows it
        #: (constant 3x3 2-D weights, strides and dilations 1) and the input
        #: may be large enough (see _winograd_may_pay); which input shapes
        #: run on it is winograd_pays's (packed=True) choice
        self.winograd = None
        self._winograd_rule = {}
        self._pads = {}
        if w is not None:
            w4 = w.reshape(w.shape[:2] + (1,) + w.shape[2:]) if self.nd == 1 else w
            self.packed = pack_weight(np.ascontiguousarray(w4), self.groups)
            if ctx.fast_math and self.nd == 2 and tuple(self.kernel) == (3, 3) and \
                    tuple(self.strides) == (1, 1) and tuple(self.dilations) == (1, 1) and \
                    self._winograd_may_pay(ctx.shape(node.inputs[0]), w.dtype):
                self.winograd = pack_weight(np.ascontiguousarray(w4), self.groups,
                                            method="winograd")
        self.c_out = w_shape[0]
        self.alloc = None   # set by the session: alloc(shape, dtype) -> its reusable buffer
        #: (ConcatTarget, input index) set by the session when this Conv's
        #: output is a slice of the Concat reading it (see ConcatTarget)
        self.concat_into = None
        self.method = "auto"   # conv2d's method when not tuned
        #: time the candidate methods on the first input of each shape and keep
        #: the fastest (conv2d's "auto" is the direct kernel, which loses to
        #: im2col + BLAS on many 1x1 and wide layers; measured in NOTES.md)
        self.tune = False
        self._methods = {}
        #: a residual join fused in by the optimiser (fuse_residual_add): the
        #: Conv's fourth input is added before the activation
        self.residual = bool(fused.get("residual"))
        #: the 1x1 GEMM's packed weights, bias and clamp where it may run
        self._gemm = None
        post_name = None if self.post is None else getattr(self.post, "name", None)
        if (w is not None and self.nd == 2 and tuple(self.kernel) == (1, 1)
                and w.dtype == np.float32 and self.pre is None
                and (self.post is None or post_name in _GEMM_CLAMPS)):
            m = w.shape[0] // self.groups   # per group: its weights and bias, packed
            self._gemm = ([pack_1x1_gemm(w[g * m:(g + 1) * m], None if self.bias is None
                                         else self.bias[g * m:(g + 1) * m])
                           for g in range(self.groups)], _GEMM_CLAMPS[post_name])
        self._sub = None   # the strided 1x1's subsampled input (its own buffer)
        #: the conv2d method (or "gemm1x1") the last run took
        self.last_method = None

    def _winograd_may_pay(self, x_shape, dtype):
        """False when the input's static shape (shape inference) is one the
        rule leaves direct: its transform (4x the weights) would never be
        read.  An unknown dimension (a symbolic batch) may make it pay."""
        if x_shape is None or len(x_shape) != 4 or None in x_shape:
            return True
        return winograd_pays(x_shape, self.packed.shape, self._stride2,
                             self.padding(tuple(x_shape[2:])), self._dilation2, self.groups,
                             packed=True, dtype=dtype)

    def _winograd_pays(self, x, pads):
        """Fast math's rule for this input shape (its pre-transformed weights)."""
        if self.winograd is None:
            return False
        key = (x.shape, x.dtype, pads)
        choice = self._winograd_rule.get(key)
        if choice is None:
            choice = self._winograd_rule[key] = winograd_pays(
                x.shape, self.packed.shape, self._stride2, pads, self._dilation2, self.groups,
                packed=True, dtype=x.dtype)
        return choice

    def _methods_for(self, x, pads):
        methods = TUNED_METHODS
        if self._gemm is not None and pads == (0, 0) and x.dtype == np.float32:
            methods += (GEMM_1X1,)
        if self._winograd_pays(x, pads):
            methods += ("winograd",)
        return methods

    def _fastest_method(self, x, weight, bias, strides, pads, dil, out, res):
        best = None
        for method in self._methods_for(x, pads):
            self._run(method, x, weight, bias, strides, pads, dil, out, res)   # warm
            t = float("inf")
            for _ in range(TUNE_ROUNDS):
                t0 = time.perf_counter()
                self._run(method, x, weight, bias, strides, pads, dil, out, res)
                t = min(t, time.perf_counter() - t0)
            if best is None or t < best[0]:
                best = (t, method)
        return best[1]

    def _run_gemm(self, x, strides, pads, out, res):
        """The 1x1 GEMM (stride 1 on x itself, else on its subsampled copy);
        None where it declines (not AVX-512 here, padding, another dtype,
        an unusual layout)."""
        if self._gemm is None or pads != (0, 0) or x.dtype != np.float32:
            return None
        packed, (lo, hi) = self._gemm
        if strides != (1, 1):
            sub_shape = x.shape[:2] + ((x.shape[2] - 1) // strides[0] + 1,
                                       (x.shape[3] - 1) // strides[1] + 1)
            sub = self._sub
            if sub is None or sub.shape != sub_shape:
                sub = self._sub = np.empty(sub_shape, np.float32)
            np.copyto(sub, x[:, :, ::strides[0], ::strides[1]])
            x = sub
        elif not x.flags.c_contiguous:
            return None
        if out is None:
            out = np.empty((x.shape[0], self.c_out) + x.shape[2:], np.float32)
        if res is not None and (res.dtype != np.float32 or res.shape != out.shape
                                or not res.flags.c_contiguous):
            return None
        if len(packed) == 1:
            if not _core.conv1x1_gemm(x, packed[0][0], packed[0][1], out, res, lo, hi):
                return None
            return out
        k, m = x.shape[1] // len(packed), out.shape[1] // len(packed)
        for g, (wp, bias) in enumerate(packed):
            if not _core.conv1x1_gemm(x[:, g * k:(g + 1) * k], wp, bias,
                                      out[:, g * m:(g + 1) * m], None if res is None
                                      else res[:, g * m:(g + 1) * m], lo, hi):
                return None   # (declines before writing: the first group)
        return out

    def _run(self, method, x, weight, bias, strides, pads, dil, out, res):
        """The convolution by `method`, with the residual added (and the
        activation after it) when the node has one."""
        if method == GEMM_1X1:
            y = self._run_gemm(x, strides, pads, out, res)
            if y is not None:
                return y
            method = "auto"
        elif method == "winograd":
            weight = self.winograd
        if res is None:
            return conv2d(x, weight, bias, stride=strides, padding=pads, dilation=dil,
                          groups=self.groups, activation=self.post, pre_activation=self.pre,
                          out=out, method=method)
        y = conv2d(x, weight, bias, stride=strides, padding=pads, dilation=dil,
                   groups=self.groups, pre_activation=self.pre, out=out, method=method)
        y = np.add(y, res, out=y) if y.shape == np.broadcast_shapes(y.shape, res.shape) \
            else np.add(y, res)
        if self.post is not None:
            activate(y, self.post, out=y)
        return y

    def out_shape(self, x_shape, pads, strides, dil):
        (kh, kw) = (1, self.kernel[0]) if self.nd == 1 else self.kernel
        if type(pads[0]) is int:
            pads = ((pads[0], pads[0]), (pads[1], pads[1]))
        n, _, h, w = x_shape
        oh = (h + pads[0][0] + pads[0][1] - dil[0] * (kh - 1) - 1) // strides[0] + 1
        ow = (w + pads[1][0] + pads[1][1] - dil[1] * (kw - 1) - 1) // strides[1] + 1
        return (n, self.c_out, oh, ow)

    def padding(self, in_sizes):
        p = self._pads.get(in_sizes)
        if p is None:
            p = spatial_pads(self.node, in_sizes, self.kernel, self.strides, self.dilations)
            if self.nd == 1:
                p = [(0, 0)] + p
            p = tuple((int(lo), int(hi)) for lo, hi in p)
            if all(lo == hi for lo, hi in p):
                # symmetric as an int pair: conv2d's call caches take that
                # form only (pairs of pairs are planned again on every call)
                p = (p[0][0], p[1][0])
            self._pads[in_sizes] = p
        return p

    def __call__(self, x, w=None, b=None, res=None):
        if self.nd == 1:
            x = x.reshape(x.shape[:2] + (1,) + x.shape[2:])
        weight = self.packed
        if weight is None:
            weight = w.reshape(w.shape[:2] + (1,) + w.shape[2:]) if self.nd == 1 else w
        bias = self.bias if self.packed is not None or b is None else b
        if self.packed is None and b is None:
            bias = None
        pads = self.padding(x.shape[2:] if self.nd == 2 else x.shape[3:])
        strides, dil = self._stride2, self._dilation2
        out = None
        if self.concat_into is not None:
            target, index = self.concat_into
            out = target.slice(index, self.out_shape(x.shape, pads, strides, dil), x.dtype,
                               self.alloc)
        elif self.alloc is not None:
            out = self.alloc(self.out_shape(x.shape, pads, strides, dil), x.dtype)
        if self.residual and res is None:
            raise ValueError("the fused residual input is missing")
        method = self.method
        if self.tune:
            method = self._methods.get(x.shape)
            if method is None:
                method = self._methods[x.shape] = self._fastest_method(
                    x, weight, bias, strides, pads, dil, out, res)
        elif method == "auto" and self._winograd_pays(x, pads):
            method = "winograd"   # untuned under fast math: the rule's choice
        elif method == "auto" and self.groups == 1 and GEMM_1X1 in self._methods_for(x, pads):
            # untuned: the GEMM where it is usually the fastest (isolated, one
            # thread: 1.0-2x conv2d's fused on ResNet's / SqueezeNet's 1x1
            # layers; grouped ones, ShuffleNet's, run slower by group: 0.6-0.9x)
            method = GEMM_1X1
        self.last_method = method
        y = self._run(method, x, weight, bias, strides, pads, dil, out, res)
        if self.nd == 1:
            y = y.reshape(y.shape[:2] + y.shape[3:])
        return y


@op("Conv")
def compile_conv(node, ctx):
    return ConvKernel(node, ctx)


def conv_transpose2d(x, w, b, strides, dilations, pads, output_padding, groups):
    """The transposed convolution, NCHW, ONNX's weight layout (C, M / groups,
    kH, kW); pads = ((top, bottom), (left, right)) cropped off the full output.

    The full output (no padding) comes from fastconv.conv_transpose2d (the C
    kernels of the input gradient); ONNX's output_padding (any value, zeros and
    the bias below/right) and asymmetric or negative pads are applied to it here."""
    from fastconv.grad import conv_transpose2d as _conv_transpose2d
    y = _conv_transpose2d(x, w, None, tuple(strides), 0, 0, groups, tuple(dilations))
    if output_padding[0] or output_padding[1]:
        y = np.pad(y, ((0, 0), (0, 0), (0, output_padding[0]), (0, output_padding[1])))
    if min(p for pair in pads for p in pair) < 0:   # an output_shape beyond the full one
        y = np.pad(y, [(0, 0), (0, 0)] + [(max(-lo, 0), max(-hi, 0)) for lo, hi in pads])
        pads = [(max(lo, 0), max(hi, 0)) for lo, hi in pads]
    (t, bt), (l, r) = pads
    y = y[:, :, t:y.shape[2] - bt, l:y.shape[3] - r]
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return np.ascontiguousarray(y, dtype=x.dtype)


@op("ConvTranspose")
def compile_conv_transpose(node, ctx):
    _float_only(node, ctx)
    w_const = ctx.const(node.inputs[1])
    w_shape = w_const.shape if w_const is not None else ctx.shape(node.inputs[1])
    if w_shape is None or None in w_shape:
        raise unsupported(node, "a weight of unknown shape")
    nd = len(w_shape) - 2
    if nd not in (1, 2):
        raise unsupported(node, f"{nd}-D transposed convolution (1-D and 2-D are)")
    kernel = _ints(node.attr("kernel_shape", w_shape[2:]))
    strides = _ints(node.attr("strides", [1] * nd))
    dilations = _ints(node.attr("dilations", [1] * nd))
    out_pad = _ints(node.attr("output_padding", [0] * nd))
    out_shape = node.attr("output_shape")
    auto = node.attr("auto_pad", "NOTSET")
    groups = int(node.attr("group", 1))
    if auto not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise unsupported(node, f"auto_pad={auto!r}")

    def pads_for(in_sizes):
        if out_shape is None and auto not in ("SAME_UPPER", "SAME_LOWER"):
            if auto == "VALID":
                return [(0, 0)] * nd
            p = _ints(node.attr("pads", [0] * (2 * nd)))
            return [(p[i], p[i + nd]) for i in range(nd)]
        target = _ints(out_shape)[-nd:] if out_shape is not None else \
            [i * s for i, s in zip(in_sizes, strides)]
        pads = []
        for i, size in enumerate(in_sizes):
            total = strides[i] * (size - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1 \
                - target[i]
            if total < 0:   # a larger output_shape: the extra rows / columns at the end
                pads.append((0, total))
                continue
            half = total // 2
            pads.append((half, total - half) if auto == "SAME_UPPER" else (total - half, half))
        return pads

    def conv_transpose(x, w, b=None):
        one = nd == 1
        if one:
            x, w = x[:, :, None], w[:, :, None]
        pads = pads_for(list(x.shape[2 + one:]))
        pads = [(0, 0)] + pads if one else pads
        st = [1] + strides if one else strides
        dil = [1] + dilations if one else dilations
        op_ = [0] + out_pad if one else out_pad
        y = conv_transpose2d(x, w, b, st, dil, pads, op_, groups)
        return y[:, :, 0] if one else y
    return conv_transpose


# ---------------------------------------------------------------------------
# normalisation

def batchnorm_scale_shift(node, ctx):
    """(scale, shift) in float64 with y = x * scale + shift per channel, from
    constant inputs; None when one of them is known only at run time."""
    vals = [ctx.const(v) for v in node.inputs[1:5]]
    if any(v is None for v in vals):
        return None
    gamma, beta, mean, var = (v.astype(np.float64).reshape(-1) for v in vals)
    scale = gamma / np.sqrt(var + float(node.attr("epsilon", 1e-5)))
    return scale, beta - mean * scale


def check_batchnorm(node):
    if node.attr("training_mode", 0):
        raise unsupported(node, "training_mode=1 (inference only)")
    if node.opset < 9 and node.attr("spatial", 1) != 1:
        raise unsupported(node, "spatial=0")
    if len([o for o in node.outputs if o]) > 1:
        raise unsupported(node, "the running mean/variance outputs (training)")


@op("BatchNormalization")
def compile_batchnorm(node, ctx):
    check_batchnorm(node)
    _float_only(node, ctx, 0)
    if "scale" in node.fused:   # Mul / Add folded in by the optimiser
        ss = node.fused["scale"], node.fused["shift"]
    else:
        ss = batchnorm_scale_shift(node, ctx)
    eps = float(node.attr("epsilon", 1e-5))
    act = node.fused.get("activation")

    def bcast(v, x):
        return v.reshape((1, -1) + (1,) * (x.ndim - 2))

    if ss is not None:
        cache = {}

        def bn_const(x, *_):
            key = (x.ndim, x.dtype)
            if key not in cache:
                cache[key] = (bcast(ss[0], x).astype(x.dtype), bcast(ss[1], x).astype(x.dtype))
            a, b = cache[key]
            out = bn_const.alloc(x.shape, x.dtype) if bn_const.alloc is not None else None
            y = np.multiply(x, a, out=out)
            y += b
            if act is not None:
                activate(y, act, out=y)
            return y
        bn_const.alloc = None
        return bn_const

    def bn(x, gamma, beta, mean, var):
        scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
        shift = beta - mean * scale
        y = (x * bcast(scale, x) + bcast(shift, x)).astype(x.dtype)
        return y if act is None else activate(y, act, out=y)
    return bn


@op("InstanceNormalization")
def compile_instance_norm(node, ctx):
    eps = float(node.attr("epsilon", 1e-5))

    def instance_norm(x, scale, bias):
        axes = tuple(range(2, x.ndim))
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=axes, keepdims=True)
        var = x64.var(axis=axes, keepdims=True)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        y = (x64 - mean) / np.sqrt(var + eps) * scale.reshape(shape) + bias.reshape(shape)
        return y.astype(x.dtype)
    return instance_norm


@op("LRN")
def compile_lrn(node, ctx):
    _float_only(node, ctx, 0)
    size = int(node.attr("size"))
    alpha, beta, bias = (float(node.attr(k, d)) for k, d in
                         (("alpha", 1e-4), ("beta", 0.75), ("bias", 1.0)))
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)

    def lrn(x):
        # in x's precision (as onnxruntime): the window sums over channels as
        # shifted slice adds (size passes, no float64 cumulative sum or
        # gather), then the power by square roots when beta is 0.75 or 0.5
        # (the values every CNN uses; np.power is several times slower)
        sq = np.square(x)
        s = sq.copy()
        for off in range(1, lo + 1):
            s[:, off:] += sq[:, :-off]
        for off in range(1, hi + 1):
            s[:, :-off] += sq[:, off:]
        s *= x.dtype.type(alpha / size)
        s += x.dtype.type(bias)
        if beta == 0.75:
            r = np.sqrt(s, out=sq)
            np.sqrt(r, out=s)
            s *= r
        elif beta == 0.5:
            np.sqrt(s, out=s)
        elif beta != 1.0:
            np.power(s, x.dtype.type(beta), out=s)
        return np.divide(x, s, out=s)
    return lrn


# ---------------------------------------------------------------------------
# pooling

def _pool_attrs(node, ctx, avg):
    kernel = _ints(node.attr("kernel_shape"))
    nd = len(kernel)
    if nd not in (1, 2):
        raise unsupported(node, f"{nd}-D pooling (1-D and 2-D are)")
    strides = _ints(node.attr("strides", [1] * nd))
    dilations = _ints(node.attr("dilations", [1] * nd))
    if len([o for o in node.outputs if o]) > 1:
        raise unsupported(node, "the Indices output")
    if node.attr("storage_order", 0):
        raise unsupported(node, "storage_order=1")
    return nd, kernel, strides, dilations


def pool_geometry(node, in_sizes, kernel, strides, dilations, ceil):
    """(out sizes, pads (top, bottom, left, right)) for 2-D pooling."""
    auto = node.attr("auto_pad", "NOTSET")
    pads = spatial_pads(node, in_sizes, kernel, strides, dilations)
    out = []
    for size, k, s, d, (lo, hi) in zip(in_sizes, kernel, strides, dilations, pads):
        dk = (k - 1) * d + 1
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-size // s)
        elif auto == "VALID":
            o = (size - dk) // s + 1 if not ceil else -(-(size - dk + 1) // s)
        elif ceil:
            o = -(-(size + lo + hi - dk) // s) + 1
            if (o - 1) * s >= size + lo:   # the last window must start inside
                o -= 1
        else:
            o = (size + lo + hi - dk) // s + 1
        if o <= 0:
            raise ValueError(f"fastconv.onnx: {node.where()}: input size {tuple(in_sizes)} is "
                             f"too small for kernel {kernel}, pads {pads}")
        out.append(o)
    return tuple(out), tuple(p for pair in pads for p in pair)


@op("MaxPool", "AveragePool")
def compile_pool(node, ctx):
    avg = node.op_type == "AveragePool"
    _float_only(node, ctx, 0)
    nd, kernel, strides, dilations = _pool_attrs(node, ctx, avg)
    ceil = bool(node.attr("ceil_mode", 0))
    include_pad = bool(node.attr("count_include_pad", 0))
    if nd == 1:
        kernel, strides, dilations = [1] + kernel, [1] + strides, [1] + dilations
    cache = {}

    def pool(x):
        x4 = x.reshape(x.shape[:2] + (1,) + x.shape[2:]) if nd == 1 else x
        key = x4.shape[2:]
        geo = cache.get(key)
        if geo is None:
            if nd == 1:
                sizes, pads = pool_geometry(node, key[1:], kernel[1:], strides[1:],
                                            dilations[1:], ceil)
                geo = ((1,) + sizes, (0, 0) + tuple(p for p in pads[:2]))
            else:
                geo = pool_geometry(node, key, kernel, strides, dilations, ceil)
            cache[key] = geo
        if avg and AVERAGE_BY_CONV:
            y = average_pool_by_conv(x4, kernel, strides, dilations, geo[1], geo[0],
                                     include_pad, ones)
        elif not avg and MAX_POOL_IN_C:
            y = np.empty(x4.shape[:2] + tuple(geo[0]), x4.dtype)
            _pool.pool2d(np.ascontiguousarray(x4), y, kernel[-2:], strides[-2:],
                         dilations[-2:], geo[1], _pool.MAX, False)
        else:
            y = pool_by_taps(x4, kernel, strides, dilations, geo[1], geo[0], avg, include_pad)
        return y.reshape(y.shape[:2] + y.shape[3:]) if nd == 1 else y
    ones = {}   # (channels, dtype) -> the packed all-ones weight; (h, w, dtype) -> 1 / counts
    return pool


#: MaxPool on the C kernel (src/pool/pool.c: separable passes, 1-3.5x
#: pool_by_taps' NumPy passes isolated, which stay as a tested alternative)
MAX_POOL_IN_C = True

#: AveragePool as a depthwise convolution with all-ones weights (5-10x faster
#: than pool_by_taps' NumPy passes on Inception v2's / ShuffleNet's pools)
AVERAGE_BY_CONV = True


def average_pool_by_conv(x, kernel, strides, dilations, pads, out_hw, include_pad, ones):
    # ones: the node's cache (pads, strides, kernel fixed; per input size)
    """Average pooling as fastconv's depthwise convolution of all-ones
    weights (the window sums; zero padding adds nothing), then times
    1 / count per output position (the taps inside the input, or inside the
    padded extent with include_pad; 0 for an empty window).  Bottom / right
    padding is extended where ceil_mode's last windows reach past it (zeros:
    not counted)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
    t, b, l, r = pads
    oh, ow = out_hw
    need_h, need_w = (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1
    b, r = max(b, need_h - h - t), max(r, need_w - w - l)
    key = (c, x.dtype)
    weight = ones.get(key)
    if weight is None:
        weight = ones[key] = pack_weight(np.ones((c, 1, kh, kw), x.dtype), c)
    sums = conv2d(x, weight, None, stride=(sh, sw), padding=((t, b), (l, r)),
                  dilation=(dh, dw), groups=c)
    key = (h, w, x.dtype)
    inv = ones.get(key)
    if inv is None:
        counts = np.outer(_window_counts(oh, h, kh, sh, dh, pads[0], pads[1], include_pad),
                          _window_counts(ow, w, kw, sw, dw, pads[2], pads[3], include_pad))
        inv = ones[key] = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0).astype(x.dtype)
    if sums.shape[2:] == (oh, ow):
        return np.multiply(sums, inv, out=sums)
    return np.multiply(sums[:, :, :oh, :ow], inv)


def _window_counts(out, size, k, stride, dil, pad_lo, pad_hi, include_pad):
    """Per output index of one axis: how many of its window's taps fall in
    the input (or, with include_pad, in the padded extent), as the average
    divides by (the C kernel's axis_table rule)."""
    start = np.arange(out) * stride - pad_lo
    taps = start[:, None] + np.arange(k)[None, :] * dil
    lim_lo, lim_hi = (-pad_lo, size + pad_hi) if include_pad else (0, size)
    return ((taps >= lim_lo) & (taps < lim_hi)).sum(axis=1)


#: output widths below which strided pooling also takes its columns flat
FLAT_COLUMNS_BELOW = 32


def pool_by_taps(x, kernel, strides, dilations, pads, out_hw, avg=False, include_pad=False):
    """Max (or average) pooling by vectorised np.maximum (np.add) passes over
    strided views of a -inf (zero) padded copy (the C pooling kernel walks
    each window element by element: several times slower on ImageNet-sized
    maps).  Same results: padding never wins a max, an all-padding window
    gives -inf, NaN wins; the average divides by the taps inside the input
    (the padded extent with include_pad), in the input's precision."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
    t, b, l, r = pads
    oh, ow = out_hw
    need_h, need_w = (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1
    if t == 0 and l == 0 and need_h <= h and need_w <= w:
        xp = x   # every window inside the input: no padded copy
    else:
        xp = np.full((n, c, need_h, need_w), 0 if avg else -np.inf, x.dtype)
        rows, cols = min(h, need_h - t), min(w, need_w - l)
        if rows > 0 and cols > 0:
            xp[:, :, t:t + rows, l:l + cols] = x[:, :, :rows, :cols]
    combine = np.add if avg else np.maximum
    # separable: over the window's rows (whole rows, contiguous), then over
    # its columns: kh + kw passes instead of kh * kw
    rows_acc = np.array(xp[:, :, 0:(oh - 1) * sh + 1:sh])
    for i in range(1, kh):
        combine(rows_acc, xp[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh], out=rows_acc)
    # the columns over the rows' memory taken flat (one long vectorised loop,
    # not one of ow elements per row: about 1.4x faster on 13 x 13 maps); the taps
    # that wrap into the next row land only on columns dropped by the stride
    # step below (every kept column's window ends inside its row).  With a
    # column stride on wide maps the strided passes over ow columns only win.
    if sw == 1 or ow < FLAT_COLUMNS_BELOW:
        flat = rows_acc.reshape(-1)
        span = flat.size - (kw - 1) * dw
        acc = flat
        if kw > 1:
            acc = np.empty_like(flat)   # its last (kw - 1) * dw entries are never read
            combine(flat[:span], flat[dw:dw + span], out=acc[:span])
            for j in range(2, kw):
                combine(acc[:span], flat[j * dw:j * dw + span], out=acc[:span])
        y = np.array(acc.reshape(rows_acc.shape)[..., 0:(ow - 1) * sw + 1:sw])
    else:
        y = np.array(rows_acc[..., 0:(ow - 1) * sw + 1:sw])
        for j in range(1, kw):
            combine(y, rows_acc[..., j * dw:j * dw + (ow - 1) * sw + 1:sw], out=y)
    if avg:
        counts = np.outer(_window_counts(oh, h, kh, sh, dh, t, b, include_pad),
                          _window_counts(ow, w, kw, sw, dw, l, r, include_pad))
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(counts > 0, 1.0 / counts, 0.0).astype(x.dtype)
        np.multiply(y, inv, out=y)   # an empty window gives 0, as the C kernel
    return y


@op("GlobalAveragePool", "GlobalMaxPool")
def compile_global_pool(node, ctx):
    reduce = np.mean if node.op_type == "GlobalAveragePool" else np.max

    def global_pool(x):
        return reduce(x, axis=tuple(range(2, x.ndim)), keepdims=True).astype(x.dtype, copy=False)
    return global_pool


# ---------------------------------------------------------------------------
# dense

@op("Gemm")
def compile_gemm(node, ctx):
    ta, tb = bool(node.attr("transA", 0)), bool(node.attr("transB", 0))
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    b_const = ctx.const(node.inputs[1])
    c_const = ctx.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if b_const is not None:   # B scaled once; a transposed view is as fast for BLAS
        if alpha != 1:
            b_const = b_const * b_const.dtype.type(alpha)
        b_const = b_const.T if tb else b_const
    if c_const is not None and beta != 1:
        c_const = (c_const * c_const.dtype.type(beta)).astype(c_const.dtype)

    def gemm(a, b, c=None):
        a = a.T if ta else a
        if b_const is not None:
            y = a @ b_const
        else:
            y = a @ (b.T if tb else b)
            if alpha != 1:
                y *= y.dtype.type(alpha)
        if c is not None:
            if c_const is not None:
                y += c_const
            else:
                y += c * c.dtype.type(beta) if beta != 1 else c
        return y
    return gemm


@op("MatMul")
def compile_matmul(node, ctx):
    return np.matmul


# ---------------------------------------------------------------------------
# element-wise arithmetic (NumPy broadcasting is ONNX's multidirectional one)

def _int_div(a, b, out=None):
    if a.dtype.kind in "iu":   # C division: truncation toward zero
        q = np.abs(a) // np.abs(b) if a.dtype.kind == "i" else a // b
        return (q * (np.sign(a) * np.sign(b)) if a.dtype.kind == "i" else q).astype(a.dtype)
    return np.divide(a, b, out=out)


_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _int_div,
           "Pow": None, "Greater": np.greater, "Less": np.less, "Equal": np.equal,
           "GreaterOrEqual": np.greater_equal, "LessOrEqual": np.less_equal,
           "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}


@op(*_BINARY)
def compile_binary(node, ctx):
    if node.op_type == "Pow":
        def power(a, b):
            return np.power(a, b.astype(a.dtype) if b.dtype != a.dtype else b).astype(a.dtype)
        return power
    f = _BINARY[node.op_type]
    if node.op_type in ("Add", "Sub", "Mul", "Div"):
        act = node.fused.get("activation")

        def arith(a, b):
            out = None
            if arith.alloc is not None and a.dtype == b.dtype and a.dtype in FLOATS:
                out = arith.alloc(np.broadcast_shapes(a.shape, b.shape), a.dtype)
            y = f(a, b) if out is None else f(a, b, out=out)
            if y.dtype != a.dtype:
                y = y.astype(a.dtype)
            if act is not None:
                activate(y, act, out=y)
            return y
        arith.alloc = None   # the session's buffer pool (float outputs)
        return arith
    return f


@op("Sum", "Max", "Min", "Mean")
def compile_variadic(node, ctx):
    f = {"Sum": np.add, "Max": np.maximum, "Min": np.minimum, "Mean": np.add}[node.op_type]
    act = node.fused.get("activation")
    mean = node.op_type == "Mean"

    def variadic(*xs):
        out = None
        if variadic.alloc is not None and len(xs) > 1 and xs[0].dtype in FLOATS and \
                xs[0].dtype == xs[1].dtype:
            out = variadic.alloc(np.broadcast_shapes(xs[0].shape, xs[1].shape), xs[0].dtype)
        if len(xs) == 1:
            y = np.array(xs[0], copy=True)
        else:
            y = f(xs[0], xs[1]) if out is None else f(xs[0], xs[1], out=out)
        for t in xs[2:]:
            if y.shape == np.broadcast_shapes(y.shape, t.shape):
                f(y, t, out=y)
            else:
                y = f(y, t)
        if mean:
            y = y / y.dtype.type(len(xs))
        if act is not None:
            activate(y, act, out=y)
        return y
    variadic.alloc = None
    return variadic


_UNARY = {"Exp": np.exp, "Log": np.log, "Sqrt": np.sqrt, "Neg": np.negative, "Abs": np.abs,
          "Reciprocal": np.reciprocal, "Floor": np.floor, "Ceil": np.ceil, "Not": np.logical_not,
          "Sign": np.sign, "Sin": np.sin, "Cos": np.cos}


@op(*_UNARY)
def compile_unary(node, ctx):
    f = _UNARY[node.op_type]
    return lambda x: np.asarray(f(x)).astype(x.dtype, copy=False)


@op("Erf")
def compile_erf(node, ctx):
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return lambda x: erf(x).astype(x.dtype)


@op("Where")
def compile_where(node, ctx):
    return np.where


# ---------------------------------------------------------------------------
# shapes and data movement

@op("Identity", "Dropout")
def compile_identity(node, ctx):
    if node.op_type == "Dropout":
        training = node.inputs[2] if len(node.inputs) > 2 else ""
        if node.opset < 7 and not node.attr("is_test", 0):
            raise unsupported(node, "training (is_test=0)")
        if training:
            t = ctx.const(training)
            if t is None or bool(np.asarray(t).reshape(())):
                raise unsupported(node, "training_mode (inference only)")
        if len(node.outputs) > 1 and node.outputs[1]:
            return lambda x, *_: (x, np.ones(x.shape, bool))
    return lambda x, *_: x


@op("Constant")
def compile_constant(node, ctx):
    a = node.attrs
    if "value" in a:
        v = np.asarray(a["value"])
    elif "value_float" in a:
        v = np.array(a["value_float"], np.float32)
    elif "value_floats" in a:
        v = np.array(a["value_floats"], np.float32)
    elif "value_int" in a:
        v = np.array(a["value_int"], np.int64)
    elif "value_ints" in a:
        v = np.array(a["value_ints"], np.int64)
    else:
        raise unsupported(node, f"attribute(s) {sorted(a)}")
    return lambda: v


@op("ConstantOfShape")
def compile_constant_of_shape(node, ctx):
    value = node.attr("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)

    def constant_of_shape(shape):
        return np.full(_ints(shape), value[0], value.dtype)
    return constant_of_shape


@op("Shape")
def compile_shape(node, ctx):
    start, end = node.attr("start", 0), node.attr("end")

    def shape(x):
        return np.array(x.shape[start:end], np.int64)
    return shape


@op("Size")
def compile_size(node, ctx):
    return lambda x: np.array(x.size, np.int64)


@op("Reshape")
def compile_reshape(node, ctx):
    allowzero = bool(node.attr("allowzero", 0))
    attr_shape = node.attr("shape") if node.opset < 5 else None

    def reshape(x, shape=None):
        s = _ints(attr_shape if shape is None else shape)
        if not allowzero:
            s = [x.shape[i] if d == 0 else d for i, d in enumerate(s)]
        return x.reshape(s)
    return reshape


@op("Flatten")
def compile_flatten(node, ctx):
    axis = int(node.attr("axis", 1))

    def flatten(x):
        ax = axis % x.ndim if axis < 0 else axis
        lead = int(np.prod(x.shape[:ax], dtype=np.int64))
        return x.reshape(lead, -1) if lead else x.reshape(0, int(np.prod(x.shape[ax:])))
    return flatten


@op("Transpose")
def compile_transpose(node, ctx):
    perm = node.attr("perm")

    def transpose(x):
        return np.transpose(x, perm)
    return transpose


def _axes_from(node, ctx, attr_until):
    """Axes from the attribute (opset < attr_until) or the second input:
    a function of the runtime inputs."""
    if node.opset < attr_until:
        ax = node.attr("axes")
        return lambda *_: None if ax is None else _ints(ax)
    return lambda axes=None: None if axes is None else _ints(axes)


@op("Squeeze")
def compile_squeeze(node, ctx):
    axes_of = _axes_from(node, ctx, 13)

    def squeeze(x, axes=None):
        ax = axes_of(axes)
        if ax is None:
            return np.squeeze(x)
        return np.squeeze(x, axis=tuple(a % x.ndim for a in ax))
    return squeeze


@op("Unsqueeze")
def compile_unsqueeze(node, ctx):
    axes_of = _axes_from(node, ctx, 13)

    def unsqueeze(x, axes=None):
        ax = axes_of(axes)
        rank = x.ndim + len(ax)
        ax = sorted(a % rank for a in ax)
        return x.reshape(_unsqueezed(x.shape, ax))
    return unsqueeze


def _unsqueezed(shape, axes):
    shape = list(shape)
    for a in axes:
        shape.insert(a, 1)
    return shape


@op("Concat")
def compile_concat(node, ctx):
    axis = int(node.attr("axis", 1 if node.opset < 4 else None))

    def concat(*xs):
        target = concat.target
        if target is not None:
            y = target.take(xs)
            if y is not None:
                return y
        return np.concatenate(xs, axis=axis)
    concat.target = None   # a ConcatTarget, set by the session (concat in place)
    return concat


class ConcatTarget:
    """The output buffer of a channel Concat (axis 1) whose inputs are all
    Convs read by nothing else: each Conv writes its output straight into
    its channel slice (C-contiguous when the batch is 1), and the Concat
    hands the buffer on without copying.  ``slice`` makes the buffer on the
    first request of a run; ``take`` returns it only when every input is
    exactly its slice (else the Concat copies as usual: a batch above 1, a
    Conv that fell back); ``reset`` forgets it (the session, before each run)."""

    __slots__ = ("channels", "offsets", "buf")

    def __init__(self, channels):
        self.channels = list(channels)
        self.offsets = [sum(self.channels[:k]) for k in range(len(self.channels))]
        self.buf = None

    def reset(self):
        self.buf = None

    def slice(self, index, shape, dtype, alloc):
        n, c, h, w = shape
        full = (n, sum(self.channels), h, w)
        if n != 1 or c != self.channels[index]:
            return alloc(shape, dtype) if alloc is not None else None
        buf = self.buf
        if buf is None or buf.shape != full or buf.dtype != dtype:
            buf = self.buf = alloc(full, dtype) if alloc is not None else np.empty(full, dtype)
            if buf is None:
                return None
        lo = self.offsets[index]
        return buf[:, lo:lo + c]

    def take(self, xs):
        buf, self.buf = self.buf, None
        if buf is None or len(xs) != len(self.channels):
            return None
        owner = buf if buf.base is None else buf.base   # (the pool's flat buffer)
        base = buf.__array_interface__["data"][0]
        step = buf.strides[1]
        for x, lo, c in zip(xs, self.offsets, self.channels):
            if x.base is not owner or x.shape != (1, c) + buf.shape[2:] or \
                    x.__array_interface__["data"][0] != base + lo * step:
                return None
        return buf


@op("Split")
def compile_split(node, ctx):
    axis = int(node.attr("axis", 0))
    n_out = len(node.outputs)
    attr_split = node.attr("split") if node.opset < 13 else None

    def split(x, sizes=None):
        sizes = attr_split if sizes is None else sizes
        length = x.shape[axis]
        if sizes is None or len(sizes) == 0:
            if node.opset >= 18 and length % n_out:
                part = -(-length // n_out)   # the last chunk is smaller
                sizes = [part] * (n_out - 1) + [length - part * (n_out - 1)]
            else:
                sizes = [length // n_out] * n_out
        bounds = np.cumsum(_ints(sizes))[:-1]
        return tuple(np.split(x, bounds, axis=axis))
    return split


@op("Slice")
def compile_slice(node, ctx):
    attrs = node.opset < 10

    def slice_(x, starts=None, ends=None, axes=None, steps=None):
        if attrs:
            starts, ends, axes = node.attr("starts"), node.attr("ends"), node.attr("axes")
        starts, ends = _ints(starts), _ints(ends)
        axes = list(range(len(starts))) if axes is None else _ints(axes)
        steps = [1] * len(starts) if steps is None else _ints(steps)
        idx = [slice(None)] * x.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            dim = x.shape[a]
            # clamp as ONNX does (INT_MAX / INT_MIN mean "to the end")
            if st > 0:
                s = min(max(s + dim if s < 0 else s, 0), dim)
                e = min(max(e + dim if e < 0 else e, 0), dim)
            else:
                s = min(max(s + dim if s < 0 else s, -1), dim - 1)
                e = min(max(e + dim if e < 0 else e, -1), dim - 1)
                e = None if e == -1 else e
            idx[a] = slice(s, e, st)
        return x[tuple(idx)]
    return slice_


@op("Gather")
def compile_gather(node, ctx):
    axis = int(node.attr("axis", 0))

    def gather(x, indices):
        ax = axis % x.ndim
        idx = np.where(indices < 0, indices + x.shape[ax], indices)
        return np.take(x, idx, axis=ax)
    return gather


@op("GatherElements")
def compile_gather_elements(node, ctx):
    axis = int(node.attr("axis", 0))

    def gather_elements(x, indices):
        ax = axis % x.ndim
        idx = np.where(indices < 0, indices + x.shape[ax], indices)
        return np.take_along_axis(x, idx, axis=ax)
    return gather_elements


_ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
                7: np.int64, 9: np.bool_, 11: np.float64, 12: np.uint32, 13: np.uint64}


def numpy_dtype(node, code):
    try:
        return np.dtype(_ONNX_DTYPES[int(code)])
    except KeyError:
        from onnx import TensorProto
        raise unsupported(node, f"element type {TensorProto.DataType.Name(int(code))}") from None


@op("Cast")
def compile_cast(node, ctx):
    to = numpy_dtype(node, node.attr("to"))
    return lambda x: x.astype(to)


@op("CastLike")
def compile_cast_like(node, ctx):
    return lambda x, like: x.astype(like.dtype)


@op("Expand")
def compile_expand(node, ctx):
    def expand(x, shape):
        out = np.broadcast_shapes(x.shape, tuple(_ints(shape)))
        return np.array(np.broadcast_to(x, out))
    return expand


@op("Tile")
def compile_tile(node, ctx):
    return lambda x, reps: np.tile(x, _ints(reps))


@op("Range")
def compile_range(node, ctx):
    return lambda start, limit, delta: np.arange(start, limit, delta).astype(start.dtype)


@op("Pad")
def compile_pad(node, ctx):
    mode = node.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise unsupported(node, f"mode={mode!r}")

    def pad(x, pads=None, value=None, axes=None):
        if node.opset < 11:
            pads, value = node.attr("pads"), node.attr("value", 0.0)
        pads = _ints(pads)
        ax = list(range(x.ndim)) if axes is None else [a % x.ndim for a in _ints(axes)]
        k = len(ax)
        width = [(0, 0)] * x.ndim
        for i, a in enumerate(ax):
            width[a] = (pads[i], pads[i + k])
        # negative pads crop
        crop = tuple(slice(max(-lo, 0), x.shape[i] - max(-hi, 0)) for i, (lo, hi) in
                     enumerate(width))
        x = x[crop]
        width = [(max(lo, 0), max(hi, 0)) for lo, hi in width]
        if mode == "constant":
            cv = 0 if value is None else np.asarray(value).reshape(-1)[0] if \
                np.asarray(value).size else 0
            return np.pad(x, width, mode="constant", constant_values=cv)
        return np.pad(x, width, mode={"edge": "edge", "reflect": "reflect", "wrap": "wrap"}[mode])
    return pad


# ---------------------------------------------------------------------------
# reductions and softmax

def _reduce(f, node, attr_until):
    keepdims = bool(node.attr("keepdims", 1))
    noop = bool(node.attr("noop_with_empty_axes", 0))
    axes_of = _axes_from(node, None, attr_until)

    def reduce(x, axes=None):
        ax = axes_of(axes)
        if not ax:
            if noop and node.opset >= attr_until:
                return x
            ax = None
        else:
            ax = tuple(a % x.ndim for a in ax)
        return np.asarray(f(x, axis=ax, keepdims=keepdims)).astype(x.dtype, copy=False)
    return reduce


@op("ReduceMean")
def compile_reduce_mean(node, ctx):
    return _reduce(np.mean, node, 18)


@op("ReduceSum")
def compile_reduce_sum(node, ctx):
    return _reduce(np.sum, node, 13)


@op("ReduceMax")
def compile_reduce_max(node, ctx):
    return _reduce(np.max, node, 18)


@op("ReduceMin")
def compile_reduce_min(node, ctx):
    return _reduce(np.min, node, 18)


@op("Softmax", "LogSoftmax")
def compile_softmax(node, ctx):
    log = node.op_type == "LogSoftmax"
    old = node.opset < 13   # before 13: over the flattened axes from `axis` on
    axis = int(node.attr("axis", 1 if old else -1))

    def softmax(x):
        ax = axis % x.ndim
        shape = x.shape
        if old:
            x = x.reshape(int(np.prod(shape[:ax], dtype=np.int64)), -1)
            ax = 1
        m = np.max(x, axis=ax, keepdims=True)
        e = x - m
        if log:
            y = e - np.log(np.sum(np.exp(e), axis=ax, keepdims=True))
        else:
            np.exp(e, out=e)
            y = e / np.sum(e, axis=ax, keepdims=True)
        return y.reshape(shape).astype(x.dtype, copy=False)
    return softmax


# ---------------------------------------------------------------------------
# resize

def _resize_coords(mode, out_size, in_size, scale, roi_lo=0.0, roi_hi=1.0):
    """Input coordinate of each output index on one axis (ONNX's modes)."""
    i = np.arange(out_size, dtype=np.float64)
    if mode == "half_pixel":
        return (i + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        adj = out_size / (scale * in_size)
        center = in_size / 2
        offset = center * (1 - adj)
        return offset + (i + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (i + 0.5) / scale - 0.5 if out_size > 1 else np.zeros(out_size)
    if mode == "align_corners":   # onnx: the scaled (not the rounded) length
        length = in_size * scale
        return i * (in_size - 1) / (length - 1) if length > 1 else np.zeros(out_size)
    if mode == "asymmetric":
        return i / scale
    raise ValueError(mode)


def _nearest_index(coords, mode, in_size):
    if mode == "round_prefer_floor":
        idx = np.ceil(coords - 0.5)
    elif mode == "round_prefer_ceil":
        idx = np.floor(coords + 0.5)
    elif mode == "floor":
        idx = np.floor(coords)
    elif mode == "ceil":
        idx = np.ceil(coords)
    else:
        raise ValueError(mode)
    return np.clip(idx, 0, in_size - 1).astype(np.int64)


@op("Resize", "Upsample")
def compile_resize(node, ctx):
    upsample = node.op_type == "Upsample"
    mode = node.attr("mode", "nearest")
    if mode in ("bilinear", "trilinear"):   # Upsample-7 spellings
        mode = "linear"
    if mode not in ("nearest", "linear"):
        raise unsupported(node, f"mode={mode!r} (nearest and linear are)")
    if upsample or node.opset < 11:
        coord_mode = "asymmetric"
        nearest_mode = "floor"
    else:
        coord_mode = node.attr("coordinate_transformation_mode", "half_pixel")
        nearest_mode = node.attr("nearest_mode", "round_prefer_floor")
    if coord_mode == "tf_crop_and_resize":
        raise unsupported(node, "coordinate_transformation_mode='tf_crop_and_resize'")
    if coord_mode not in ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                          "align_corners", "asymmetric"):
        raise unsupported(node, f"coordinate_transformation_mode={coord_mode!r}")
    if node.attr("antialias", 0):
        raise unsupported(node, "antialias=1")
    policy = node.attr("keep_aspect_ratio_policy", "stretch")
    axes_attr = node.attr("axes")

    def resize(x, *args):
        if upsample and node.opset < 9:
            scales, sizes = np.asarray(node.attr("scales"), np.float64), None
        elif upsample or node.opset < 11:
            scales, sizes = args[0].astype(np.float64), None
        else:
            scales = args[1] if len(args) > 1 else None
            sizes = args[2] if len(args) > 2 else None
            scales = None if scales is None or scales.size == 0 else scales.astype(np.float64)
            sizes = None if sizes is None or sizes.size == 0 else _ints(sizes)
        axes = list(range(x.ndim)) if axes_attr is None else [a % x.ndim for a in axes_attr]
        in_sizes = [x.shape[a] for a in axes]
        if sizes is not None:
            if policy != "stretch":
                ratios = [s / i for s, i in zip(sizes, in_sizes)]
                r = min(ratios) if policy == "not_larger" else max(ratios)
                scales = np.array([r] * len(axes))
                sizes = [int(math.floor(r * i + 0.5)) for i in in_sizes]
            else:
                scales = np.array([s / i for s, i in zip(sizes, in_sizes)])
        else:
            sizes = [int(math.floor(i * s)) for i, s in zip(in_sizes, scales)]
        y = x
        for a, out_n, in_n, sc in zip(axes, sizes, in_sizes, scales):
            if out_n == in_n and sc == 1.0:
                continue
            coords = _resize_coords(coord_mode, out_n, in_n, float(sc))
            if mode == "nearest":
                y = np.take(y, _nearest_index(coords, nearest_mode, in_n), axis=a)
            else:
                c = np.clip(coords, 0, in_n - 1)
                lo = np.floor(c).astype(np.int64)
                hi = np.minimum(lo + 1, in_n - 1)
                frac = (c - lo).reshape([-1 if k == a else 1 for k in range(y.ndim)])
                y = np.take(y, lo, axis=a) * (1 - frac) + np.take(y, hi, axis=a) * frac
        return y.astype(x.dtype, copy=False)
    return resize
