"""Benchmark machinery shared by ``python -m fastconv bench`` and ``benchmarks/``.

One definition of the layer suite, the FLOP count, the reference check, the
peer runners (PyTorch eager, ONNX Runtime) and the timing, so that the
pytest-benchmark suite and the command line report measure the same thing.

Importable with NumPy alone: matplotlib, tqdm, torch, onnx and onnxruntime
are imported lazily and every one of them is optional.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

# ---------------------------------------------------------------------------
# The layer suite
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layer:
    """One convolution layer of the suite (NCHW input, OIHW weight, torch semantics)."""

    id: str
    n: int
    cin: int
    cout: int
    h: int
    w: int
    k: int
    stride: int = 1
    pad: int = 0
    groups: int = 1
    dilation: int = 1

    @property
    def x_shape(self) -> Tuple[int, int, int, int]:
        return (self.n, self.cin, self.h, self.w)

    @property
    def w_shape(self) -> Tuple[int, int, int, int]:
        return (self.cout, self.cin // self.groups, self.k, self.k)

    @property
    def out_hw(self) -> Tuple[int, int]:
        span = self.dilation * (self.k - 1) + 1
        ho = (self.h + 2 * self.pad - span) // self.stride + 1
        wo = (self.w + 2 * self.pad - span) // self.stride + 1
        return ho, wo

    @property
    def out_shape(self) -> Tuple[int, int, int, int]:
        return (self.n, self.cout) + self.out_hw

    @property
    def flops(self) -> int:
        return conv_flops(self.n, self.cin, self.cout, self.out_hw[0], self.out_hw[1],
                          self.k, self.k, self.groups)

    @property
    def conv_kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.pad, dilation=self.dilation,
                    groups=self.groups)

    def describe(self) -> str:
        g = f" g{self.groups}" if self.groups > 1 else ""
        return (f"N{self.n} {self.cin}->{self.cout} {self.h}x{self.w} "
                f"k{self.k} s{self.stride} p{self.pad}{g}")


def conv_flops(n, cin, cout, hout, wout, kh, kw, groups=1) -> int:
    """FLOPs of a convolution: 2 * N * Cout * Hout * Wout * Cin/groups * KH * KW."""
    return 2 * n * cout * hout * wout * (cin // groups) * kh * kw


LAYERS: Tuple[Layer, ...] = (
    # The example of the founding notes: a 30x30x3 input with 3x3x3 filters.
    Layer("seed", 1, 3, 3, 30, 30, 3, 1, 0),
    Layer("resnet_conv1", 1, 3, 64, 224, 224, 7, 2, 3),
    Layer("resnet_3x3_64", 1, 64, 64, 56, 56, 3, 1, 1),
    Layer("resnet_3x3_128", 1, 128, 128, 28, 28, 3, 1, 1),
    Layer("resnet_3x3_256", 1, 256, 256, 14, 14, 3, 1, 1),
    Layer("resnet_3x3_512", 1, 512, 512, 7, 7, 3, 1, 1),
    Layer("resnet_1x1_down", 1, 256, 512, 14, 14, 1, 2, 0),
    Layer("vgg_3x3_64_224", 1, 64, 64, 224, 224, 3, 1, 1),
    Layer("mobilenet_dw", 1, 32, 32, 112, 112, 3, 1, 1, groups=32),
    Layer("mobilenet_pw", 1, 32, 64, 112, 112, 1, 1, 0),
    Layer("batch8_3x3_128", 8, 128, 128, 28, 28, 3, 1, 1),
)
LAYER_BY_ID: Dict[str, Layer] = {l.id: l for l in LAYERS}
QUICK_LAYERS: Tuple[str, ...] = ("seed", "resnet_3x3_64", "resnet_3x3_256",
                                 "mobilenet_dw", "resnet_1x1_down")

# "raw" is the fused method called with the plain weight array, as a user
# writes it (the weights packed inside every call); "fused" gets them packed
# once with fastconv.pack_weight, outside the timed call (as a layer does);
# "winograd" gets them transformed once (pack_weight(..., method="winograd")),
# on the layers it can do (3x3, stride 1, dilation 1; "n.a." on the others).
METHODS: Tuple[str, ...] = ("fused", "raw", "separate", "im2col", "winograd")
#: the conv2d method each fastconv path calls
CALL_METHOD = {"raw": "fused"}
PEERS: Tuple[str, ...] = ("torch", "onnxruntime")
IMPLS: Tuple[str, ...] = METHODS + PEERS
# relu, plus one transcendental activation (silu = x * sigmoid(x), unambiguous
# across libraries, unlike gelu's erf / tanh variants).
ACTIVATIONS: Tuple[str, ...] = ("relu", "silu")
SUPPORTED_ACTIVATIONS: Tuple[str, ...] = ("relu", "silu", "gelu")

PEER_SHORT = {"torch": "torch", "onnxruntime": "ORT"}

IMPL_LABELS = {
    "fused": "fastconv fused",
    "raw": "fastconv raw",
    "separate": "fastconv separate",
    "im2col": "fastconv im2col",
    "winograd": "fastconv winograd",
    "torch": "torch eager",
    "onnxruntime": "ONNX Runtime",
}


def all_threads() -> int:
    return os.cpu_count() or 1


def thread_counts(spec: Iterable) -> List[int]:
    """``["1", "all"]`` -> ``[1, os.cpu_count()]`` (deduplicated, order kept)."""
    out: List[int] = []
    for s in spec:
        s = str(s).strip().lower()
        if not s:
            continue
        n = all_threads() if s in ("all", "max", "0") else int(s)
        if n < 1:
            raise ValueError(f"bad thread count {s!r}")
        if n not in out:
            out.append(n)
    return out


def select_layers(ids: Optional[Iterable[str]]) -> List[Layer]:
    if ids is None:
        return list(LAYERS)
    out = []
    for i in ids:
        i = i.strip()
        if not i:
            continue
        if i not in LAYER_BY_ID:
            raise ValueError(f"unknown layer {i!r}; known: {', '.join(LAYER_BY_ID)}")
        out.append(LAYER_BY_ID[i])
    return out


# ---------------------------------------------------------------------------
# FMA peak
# ---------------------------------------------------------------------------

#: Measured FP32 FMA peak (AVX2, two 256-bit FMA pipes) of the development machine,
#: AMD EPYC (Zen 4), 2 vCPUs: see benchmarks/peak_fma.md (116-117 GFLOP/s on one
#: thread, 229 on two; an earlier measurement at a lower clock gave 98 / 197).
DEFAULT_PEAK_GFLOPS = {1: 116.5, 2: 229.0}
DEFAULT_PEAK_GFLOPS_PER_CORE = 116.5


_MEASURED_PEAK: Dict[int, float] = {}


def measured_peak_gflops(threads: int) -> float:
    """The FMA peak of ``threads`` threads, measured now by the library's own probe
    (12 chains of FMAs as wide as the kernel set that runs: 512-bit under AVX-512,
    256-bit under AVX2; best of 5 tries); 0.0 where there is no probe."""
    if threads not in _MEASURED_PEAK:
        from fastconv import _core
        probe = getattr(_core, "fma_peak_gflops", None)
        peak = float(probe(threads)) if probe else 0.0
        if peak > 0 and threads > 1:
            # not in one of the stretches where the threads share one core
            # (see machine_probe): until it scales from one thread, try again
            want = STALL_FRACTION * threads * measured_peak_gflops(1)
            end = time.perf_counter() + STALL_WAIT_SECONDS
            while peak < want and time.perf_counter() < end:
                time.sleep(0.2)
                peak = max(peak, float(probe(threads)))
        _MEASURED_PEAK[threads] = peak
    return _MEASURED_PEAK[threads]


def peak_gflops(threads: int = 1) -> Tuple[float, str]:
    """FP32 FMA peak in GFLOP/s for ``threads`` threads, and where it came from.

    Sources, first match wins:

    * ``FASTCONV_PEAK_GFLOPS``: per-core figure (``116``) or a per-thread-count
      list (``1:116,2:229``).
    * A measurement in this run (:func:`measured_peak_gflops`): the ceiling of
      this machine at its current clock, under the same load as the kernels.
    * The figures measured on the development machine (benchmarks/peak_fma.md),
      where the probe is unavailable (no AVX2+FMA, or not x86).
    """
    threads = max(1, min(int(threads), all_threads()))
    env = os.environ.get("FASTCONV_PEAK_GFLOPS", "").strip()
    if env:
        if ":" in env:
            table = {}
            for part in env.split(","):
                k, v = part.split(":")
                table[int(k)] = float(v)
            if threads in table:
                return table[threads], "FASTCONV_PEAK_GFLOPS"
            per_core = table[min(table)] / min(table)
            return per_core * threads, "FASTCONV_PEAK_GFLOPS (scaled)"
        return float(env) * threads, "FASTCONV_PEAK_GFLOPS"
    measured = measured_peak_gflops(threads)
    if measured > 0:
        return measured, "measured in this run (fastconv._core.fma_peak_gflops)"
    src = "default: measured on the dev machine, benchmarks/peak_fma.md"
    if threads in DEFAULT_PEAK_GFLOPS:
        return DEFAULT_PEAK_GFLOPS[threads], src
    return DEFAULT_PEAK_GFLOPS_PER_CORE * threads, src + " (scaled per core)"


# ---------------------------------------------------------------------------
# Data and reference
# ---------------------------------------------------------------------------


def make_inputs(layer: Layer, seed: int = 0):
    """Deterministic float32 input, weight (fan-in scaled) and bias for a layer."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(layer.x_shape, dtype=np.float32)
    fan_in = (layer.cin // layer.groups) * layer.k * layer.k
    w = (rng.standard_normal(layer.w_shape, dtype=np.float32) / np.float32(math.sqrt(fan_in)))
    b = 0.1 * rng.standard_normal(layer.cout, dtype=np.float32)
    return x, w, b.astype(np.float32)


def _erf(x: np.ndarray) -> np.ndarray:
    # Chebyshev fit of erfc (Numerical Recipes erfcc), |error| < 1.2e-7:
    # NumPy has no erf and SciPy is not a dependency.
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * a)
    y = 1.0 - t * np.exp(-a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (
        0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (
            1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
    return np.where(x >= 0, y, -y)


def reference_activation(v: np.ndarray, activation: Optional[str]) -> np.ndarray:
    """Activation in float64 NumPy (independent of the library)."""
    if activation in (None, "none", "identity"):
        return v
    if activation == "relu":
        return np.maximum(v, 0.0)
    if activation == "silu":
        return v / (1.0 + np.exp(-v))
    if activation == "gelu":
        return 0.5 * v * (1.0 + _erf(v / math.sqrt(2.0)))
    raise ValueError(f"unknown activation {activation!r}")


def reference_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """Direct NCHW/OIHW convolution (cross-correlation, torch semantics) in float64.

    One (Cout/g x Cin/g) @ (Cin/g x N*Ho*Wo) product per kernel tap and group,
    so memory stays at the size of the output.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    ph = pw = padding
    sh = sw = stride
    dh = dw = dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if padding else x
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    out = np.zeros((n, o, ho, wo), dtype=np.float64)
    for g in range(groups):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * og:(g + 1) * og]
        acc = out[:, g * og:(g + 1) * og]
        for i in range(kh):
            for j in range(kw):
                xs = xg[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh,
                        j * dw:j * dw + sw * (wo - 1) + 1:sw]
                # (og, cg) x (n, cg, ho, wo) -> (n, og, ho, wo)
                acc += np.einsum("oc,nchw->nohw", wg[:, :, i, j], xs, optimize=True)
    if b is not None:
        out += np.asarray(b, dtype=np.float64)[None, :, None, None]
    return out


def reference_output(layer: Layer, x, w, b, activation) -> np.ndarray:
    return reference_activation(reference_conv2d(x, w, b, **layer.conv_kwargs), activation)


@dataclasses.dataclass
class Check:
    ok: bool
    max_abs_err: float
    rel_err: float  # max |out - ref| / max |ref|

    def as_dict(self):
        return dataclasses.asdict(self)


#: Tolerance of the reference check, relative to max |reference|. float32
#: accumulation errors are ~1e-6 here; a wrong kernel is off by O(1).
CHECK_RTOL = 1e-3


def check_output(out, ref, rtol: float = CHECK_RTOL) -> Check:
    out = np.asarray(out)
    if out.shape != ref.shape:
        return Check(False, float("inf"), float("inf"))
    if not np.all(np.isfinite(out)):
        return Check(False, float("nan"), float("nan"))
    err = float(np.max(np.abs(out.astype(np.float64) - ref))) if ref.size else 0.0
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    rel = err / scale if scale > 0 else err
    return Check(bool(rel <= rtol), err, rel)


# ---------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    import importlib.util
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _has_threadpoolctl() -> bool:
    return _installed("threadpoolctl")


def fastconv_thread_control() -> str:
    """How the fastconv thread count is set, e.g. 'fastconv.set_num_threads + threadpoolctl'.

    fastconv.set_num_threads (when the library has it) sets the C kernels'
    threads; threadpoolctl (when installed) also limits the OpenMP/BLAS pools,
    which the im2col path's GEMM (NumPy's BLAS) uses. 'none' when neither.
    """
    import fastconv
    parts = []
    if hasattr(fastconv, "set_num_threads"):
        parts.append("fastconv.set_num_threads")
    if _has_threadpoolctl():
        parts.append("threadpoolctl")
    return " + ".join(parts) or "none"


@contextlib.contextmanager
def fastconv_threads(n: int):
    """Run fastconv (and the BLAS behind its im2col path) with ``n`` threads."""
    import fastconv
    with contextlib.ExitStack() as stack:
        if hasattr(fastconv, "set_num_threads"):
            old = fastconv.get_num_threads() if hasattr(fastconv, "get_num_threads") else None
            fastconv.set_num_threads(int(n))
            if old is not None:
                stack.callback(fastconv.set_num_threads, old)
        if _has_threadpoolctl():
            from threadpoolctl import threadpool_limits
            stack.enter_context(threadpool_limits(limits=int(n)))
        yield


# ---------------------------------------------------------------------------
# Runners: a runner is a zero-argument callable doing one forward pass.
# ---------------------------------------------------------------------------


class Unavailable(Exception):
    """A peer is not installed (or cannot run this case)."""


class NotApplicable(Unavailable):
    """A fastconv path that cannot compute this layer (winograd on a 1x1 or a
    strided one): reported as "n.a.", not as a failure."""


def winograd_applies(layer: Layer) -> bool:
    """The geometry the Winograd path computes: 3x3, stride 1, dilation 1."""
    return layer.k == 3 and layer.stride == 1 and layer.dilation == 1


def peer_available(name: str) -> Tuple[bool, str]:
    """(available, reason) for a peer, without importing more than needed."""
    mods = {"torch": ["torch"], "onnxruntime": ["onnx", "onnxruntime"]}[name]
    missing = [m for m in mods if not _installed(m)]
    if missing:
        return False, f"{' and '.join(missing)} not installed"
    return True, ""


def can_pack() -> bool:
    import fastconv
    return hasattr(fastconv, "pack_weight")


def fastconv_runner(layer: Layer, method: str, activation: Optional[str], x, w, b,
                    out: Optional[np.ndarray] = None, pack: bool = True):
    """A runner for fastconv.conv2d writing into a preallocated ``out``; returns (fn, out).

    With ``pack`` (and ``fastconv.pack_weight`` present) the weights are packed
    once, outside the timed call, as a layer caching them would (the peers
    prepack theirs too: ONNX Runtime at session creation).
    """
    import fastconv
    if out is None:
        out = np.empty(layer.out_shape, dtype=np.float32)
    if pack and can_pack():
        w = fastconv.pack_weight(w, groups=layer.groups,
                                 method="winograd" if method == "winograd" else "fused")
    # the arguments a user would write: the parameters that differ from the defaults
    defaults = dict(stride=1, padding=0, dilation=1, groups=1)
    kw = {k: v for k, v in layer.conv_kwargs.items() if defaults.get(k) != v}
    kw.update(activation=activation, method=method, out=out)
    conv2d = fastconv.conv2d

    def run():
        return conv2d(x, w, b, **kw)

    return run, out


def torch_runner(layer: Layer, activation: Optional[str], x, w, b, threads: int):
    """PyTorch eager: F.conv2d then the activation (two ops). Returns (fn, get_output)."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        raise Unavailable(f"torch not installed ({e})") from None
    torch.set_num_threads(int(threads))
    tx, tw, tb = (torch.from_numpy(np.ascontiguousarray(a)) for a in (x, w, b))
    act = {None: None, "relu": torch.relu, "silu": F.silu, "gelu": F.gelu}[activation]
    kw = dict(stride=layer.stride, padding=layer.pad, dilation=layer.dilation,
              groups=layer.groups)
    result = {}

    def run():
        with torch.inference_mode():
            y = F.conv2d(tx, tw, tb, **kw)
            if act is not None:
                y = act(y)
        result["y"] = y
        return y

    return run, (lambda: result["y"].numpy())


def onnx_conv_model(layer: Layer, activation: Optional[str], w, b):
    """An in-memory ONNX model: Conv (+ Relu / Sigmoid*Mul / Gelu); ORT fuses Conv+Relu."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(layer.x_shape))
    outp = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(layer.out_shape))
    inits = [numpy_helper.from_array(np.ascontiguousarray(w), "w"),
             numpy_helper.from_array(np.ascontiguousarray(b), "b")]
    conv_out = "y" if activation is None else "c"
    nodes = [helper.make_node(
        "Conv", ["x", "w", "b"], [conv_out], kernel_shape=[layer.k, layer.k],
        strides=[layer.stride] * 2, pads=[layer.pad] * 4, dilations=[layer.dilation] * 2,
        group=layer.groups)]
    opset = 17
    if activation == "relu":
        nodes.append(helper.make_node("Relu", ["c"], ["y"]))
    elif activation == "silu":
        nodes += [helper.make_node("Sigmoid", ["c"], ["s"]),
                  helper.make_node("Mul", ["c", "s"], ["y"])]
    elif activation == "gelu":
        opset = 20
        nodes.append(helper.make_node("Gelu", ["c"], ["y"]))
    elif activation is not None:
        raise Unavailable(f"no ONNX graph for activation {activation!r}")
    graph = helper.make_graph(nodes, f"conv_{layer.id}", [inp], [outp], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    return model


def onnxruntime_runner(layer: Layer, activation: Optional[str], x, w, b, threads: int):
    """ONNX Runtime CPU session on a Conv+activation graph; output bound to a preallocated array."""
    try:
        import onnx  # noqa: F401
        import onnxruntime as ort
    except ImportError as e:
        raise Unavailable(f"onnx/onnxruntime not installed ({e})") from None
    model = onnx_conv_model(layer, activation, w, b)
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=so,
                                providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(x)
    out = np.empty(layer.out_shape, dtype=np.float32)
    try:
        io = sess.io_binding()
        io.bind_cpu_input("x", x)
        io.bind_output("y", "cpu", 0, np.float32, list(out.shape), out.ctypes.data)

        def run():
            sess.run_with_iobinding(io)
            return out

        run()
        return run, (lambda: out)
    except Exception:  # pragma: no cover - older ORT without io binding
        res = {}

        def run():
            res["y"] = sess.run(["y"], {"x": x})[0]
            return res["y"]

        return run, (lambda: res["y"])


# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------


def traced_peak_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes allocated through tracemalloc-visible allocators (NumPy included) by fn()."""
    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        res = fn()
        _, peak = tracemalloc.get_traced_memory()
        del res
    finally:
        if not was:
            tracemalloc.stop()
    return max(0, peak - base)


def reported_workspace_bytes(layer: Layer, method: str, activation=None) -> Optional[int]:
    """The extra bytes fastconv says ``method`` allocates (None if the API is absent)."""
    import fastconv
    f = getattr(fastconv, "workspace_bytes", None)
    if f is None:
        return None
    try:
        return int(f(layer.x_shape, layer.w_shape, method=method, dtype=np.float32,
                     **layer.conv_kwargs))
    except TypeError:
        try:
            return int(f(layer.x_shape, layer.w_shape, method=method, **layer.conv_kwargs))
        except Exception:
            return None
    except Exception:
        return None


#: tracemalloc noise floor (Python objects of the call), see fastconv_workspace.
WORKSPACE_NOISE_BYTES = 4096


def fastconv_workspace(layer: Layer, method: str, activation, run) -> Dict[str, Optional[int]]:
    """Peak extra bytes of one fastconv call with a preallocated output.

    ``traced``: NumPy/Python allocations seen by tracemalloc; ``reported``: the
    library's own figure (C workspace) when ``fastconv.workspace_bytes`` exists;
    ``bytes``: the figure shown: ``reported``, unless the traced peak exceeds it
    by more than the noise floor (then ``traced``).
    """
    traced = traced_peak_bytes(run)
    reported = reported_workspace_bytes(layer, method, activation)
    # tracemalloc also sees the call's Python objects (a few hundred bytes):
    # below WORKSPACE_NOISE_BYTES, or within it of the reported figure, that is noise.
    if reported is not None and traced <= reported + WORKSPACE_NOISE_BYTES:
        total = reported
    else:
        total = traced if traced > WORKSPACE_NOISE_BYTES else 0
    return {"bytes": int(total), "traced": int(traced),
            "reported": None if reported is None else int(reported)}


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Timing:
    """Seconds per call: median, quartiles and extremes over ``rounds`` rounds."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    rounds: int
    number: int  # calls per round

    def as_dict(self):
        return dataclasses.asdict(self)


def _quantile(sorted_vals: Sequence[float], q: float) -> float:
    if len(sorted_vals) == 1:
        return sorted_vals[0]
    pos = q * (len(sorted_vals) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def _calibrate(fn, *, rounds, max_time, min_rounds, max_rounds, min_round_time,
               warmup) -> Tuple[int, int]:
    """Warm up ``fn``; return (rounds, calls per round) for a budget of ``max_time`` s."""
    est = float("inf")
    for _ in range(max(1, warmup)):
        t0 = time.perf_counter()
        fn()
        est = min(est, time.perf_counter() - t0)
    est = max(est, 1e-7)
    number = max(1, int(math.ceil(min_round_time / est))) if est < min_round_time else 1
    if rounds is None:
        rounds = int(max_time / (est * number))
        rounds = max(min_rounds, min(max_rounds, rounds))
    return max(1, int(rounds)), number


def _timing(samples: List[float], number: int) -> Timing:
    s = sorted(samples)
    return Timing(statistics.median(s), _quantile(s, 0.25), _quantile(s, 0.75),
                  s[0], s[-1], len(s), number)


def _interleaved_samples(fns: Dict[str, Callable[[], object]], *, rounds, max_time,
                         min_rounds, max_rounds, min_round_time, warmup):
    """Per-call seconds of each round of each callable, rounds interleaved.

    Returns (samples, numbers, errors): name -> list of per-call times, name ->
    calls per round, name -> the exception that stopped it.
    """
    errors: Dict[str, Exception] = {}
    plan = {}
    for name, fn in fns.items():
        try:
            plan[name] = _calibrate(fn, rounds=rounds, max_time=max_time,
                                    min_rounds=min_rounds, max_rounds=max_rounds,
                                    min_round_time=min_round_time, warmup=warmup)
        except Exception as e:  # noqa: BLE001 - reported per case
            errors[name] = e
    samples: Dict[str, List[float]] = {name: [] for name in plan}
    perf = time.perf_counter
    for r in range(max((n for n, _ in plan.values()), default=0)):
        for name, (n_rounds, number) in list(plan.items()):
            if r >= n_rounds:
                continue
            fn = fns[name]
            try:
                t0 = perf()
                for _ in range(number):
                    fn()
                samples[name].append((perf() - t0) / number)
            except Exception as e:  # noqa: BLE001
                errors[name] = e
                del plan[name]
                del samples[name]
    return samples, {name: number for name, (_, number) in plan.items()}, errors


def time_interleaved(fns: Dict[str, Callable[[], object]], *, rounds: Optional[int] = None,
                     max_time: float = 0.5, min_rounds: int = 3, max_rounds: int = 200,
                     min_round_time: float = 2e-3, warmup: int = 1
                     ) -> Dict[str, object]:
    """Time several callables with their rounds interleaved (A B C A B C ...).

    Each is warmed up and calibrated on its own: ``number`` calls per round so
    a round lasts at least ``min_round_time`` (timer resolution for tiny
    layers), and enough rounds for about ``max_time`` seconds (within
    [min_rounds, max_rounds]), or exactly ``rounds``. Interleaving makes the
    ratios between them robust to load that comes and goes on a shared
    machine. Returns name -> Timing, or name -> the exception it raised.
    """
    samples, numbers, errors = _interleaved_samples(
        fns, rounds=rounds, max_time=max_time, min_rounds=min_rounds, max_rounds=max_rounds,
        min_round_time=min_round_time, warmup=warmup)
    out: Dict[str, object] = dict(errors)
    for name, s in samples.items():
        out[name] = _timing(s, numbers[name])
    return out


def time_fn(fn: Callable[[], object], *, rounds: Optional[int] = None,
            max_time: float = 0.5, min_rounds: int = 3, max_rounds: int = 200,
            min_round_time: float = 2e-3, warmup: int = 1) -> Timing:
    """Time ``fn``: warm up, then rounds of ``number`` calls each (see time_interleaved)."""
    t = time_interleaved({"fn": fn}, rounds=rounds, max_time=max_time, min_rounds=min_rounds,
                         max_rounds=max_rounds, min_round_time=min_round_time,
                         warmup=warmup)["fn"]
    if isinstance(t, Exception):
        raise t
    return t


# ---------------------------------------------------------------------------
# One case, the whole run
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    layer: Layer
    impl: str  # a fastconv method or a peer name
    activation: str
    threads: int

    @property
    def is_peer(self) -> bool:
        return self.impl in PEERS

    @property
    def key(self) -> str:
        return f"{self.layer.id}/{self.impl}/{self.activation}/t{self.threads}"


def make_runner(case: Case, x, w, b, pack: bool = True):
    """(run, get_output, threads_context) for a case; raises Unavailable for a missing peer.

    Enter ``threads_context`` around the calls (peers set their threads when built).
    """
    if case.impl == "torch":
        run, get_out = torch_runner(case.layer, case.activation, x, w, b, case.threads)
        return run, get_out, contextlib.nullcontext()
    if case.impl == "onnxruntime":
        run, get_out = onnxruntime_runner(case.layer, case.activation, x, w, b, case.threads)
        return run, get_out, contextlib.nullcontext()
    if case.impl not in METHODS:
        raise ValueError(f"unknown implementation {case.impl!r}")
    if case.impl == "winograd" and not winograd_applies(case.layer):
        raise NotApplicable(f"winograd needs a 3x3 kernel, stride 1 and dilation 1 "
                            f"({case.layer.describe()})")
    run, out = fastconv_runner(case.layer, CALL_METHOD.get(case.impl, case.impl),
                               case.activation, x, w, b, pack=pack and case.impl != "raw")
    return run, (lambda: out), fastconv_threads(case.threads)


def new_result(case: Case) -> dict:
    layer = case.layer
    return {
        "layer": layer.id, "impl": case.impl, "kind": "peer" if case.is_peer else "fastconv",
        "activation": case.activation, "threads": case.threads, "flops": layer.flops,
        "shape": layer.describe(), "status": "ok",
    }


def add_timing(res: dict, case: Case, t: Timing) -> dict:
    """Fill the time, GFLOP/s (median, IQR, range) and % of peak of a result."""
    flops = case.layer.flops
    peak, _ = peak_gflops(case.threads)
    res["time"] = t.as_dict()
    g = lambda s: flops / s / 1e9 if s > 0 else float("inf")  # noqa: E731
    res["gflops"] = {"median": g(t.median), "q1": g(t.q3), "q3": g(t.q1),
                     "min": g(t.max), "max": g(t.min)}
    res["pct_peak"] = 100.0 * res["gflops"]["median"] / peak
    res["peak_gflops"] = peak
    return res


def prepare_case(case: Case, *, check=True, data=None, ref=None, measure_memory=True,
                 pack=True):
    """Build a case's runner, check its output once, measure its workspace.

    Returns (result, run, threads_context); ``run`` is None when the case cannot
    be timed (result status 'skipped' or 'error'). The context has been used
    (single-use): enter a new ``fastconv_threads`` to time fastconv.
    """
    layer = case.layer
    x, w, b = data if data is not None else make_inputs(layer)
    res = new_result(case)
    try:
        run, get_out, tctx = make_runner(case, x, w, b, pack=pack)
        with tctx:
            run()
            if check:
                if ref is None:
                    ref = reference_output(layer, x, w, b, case.activation)
                chk = check_output(get_out(), ref)
                res["check"] = chk.as_dict()
                if not chk.ok:
                    res["status"] = "wrong"
            if measure_memory and not case.is_peer:
                res["workspace"] = fastconv_workspace(
                    layer, CALL_METHOD.get(case.impl, case.impl), case.activation, run)
    except Unavailable as e:
        res.update(status="skipped", error=str(e))
        if isinstance(e, NotApplicable):
            res["not_applicable"] = True
        return res, None, None
    except Exception as e:  # keep going: one broken case must not kill the report
        res.update(status="error", error=f"{type(e).__name__}: {e}")
        return res, None, None
    return res, run, tctx


def _finish(res: dict, case: Case, t) -> dict:
    if isinstance(t, Exception):
        res.update(status="error", error=f"{type(t).__name__}: {t}")
        return res
    return add_timing(res, case, t)


def run_case(case: Case, *, rounds=None, max_time=0.5, check=True,
             data=None, ref=None, measure_memory=True, pack=True) -> dict:
    """Run one case: build the runner, check its output once, time it, measure workspace.

    ``data`` = (x, w, b) and ``ref`` (float64 reference output) may be passed in
    to share them across cases. Returns a JSON-able dict; ``status`` is 'ok',
    'wrong' (reference check failed), 'skipped' (peer not installed) or 'error'.
    """
    res, run, _ = prepare_case(case, check=check, data=data, ref=ref,
                               measure_memory=measure_memory, pack=pack)
    if run is None:
        return res
    # a fresh context: the one make_runner gave was used up by the check
    with (contextlib.nullcontext() if case.is_peer else fastconv_threads(case.threads)):
        t = time_interleaved({case.impl: run}, rounds=rounds, max_time=max_time)[case.impl]
    return _finish(res, case, t)


def run_group(cases: Sequence[Case], *, rounds=None, max_time=0.5, check=True, data=None,
              ref=None, pack=True, on_case=None, segments=None) -> List[dict]:
    """Run the cases of one (layer, activation, threads) group.

    Every ratio in the report compares cases of one group, so they are timed
    over the same stretch of time (this machine's speed drifts by 10-30 % from
    one second to the next): the time is cut into ``segments``; in each, our
    direct paths (fused, separate) run with their rounds interleaved, then
    each path that runs on another library's code (im2col's BLAS, the peers)
    runs alone, and each case's rounds from all segments are pooled.

    Those do not share rounds with ours: round by round, the peers' allocators
    and caches never settle (torch and ONNX Runtime measured 30-40 % slower
    interleaved than alone), and on several threads their pools keep workers
    spinning for a while after each call (OpenBLAS for ~0.1 s): a spinning
    worker holding a core stalls the join of our next multi-threaded call, so
    on several threads each of them is followed by a pause.

    On several threads a short FMA probe runs before and after each block
    (:func:`machine_probe`); when one finds less than STALL_FRACTION of the FMA
    peak, the threads did not have their cores, and the block is timed again
    once the probe finds them back (at most STALL_RETRIES times; each result
    records the lowest probe around the blocks kept and the number of blocks
    timed again under ``machine``).

    ``on_case(case)`` is called as each case starts (its check and setup).
    """
    on_case = on_case or (lambda c: None)
    results: Dict[int, dict] = {}
    runs = {}
    threads = {c.threads for c in cases}
    assert len(threads) == 1, "one thread count per group"
    nthreads = threads.pop()
    for i, c in enumerate(cases):
        on_case(c)
        res, run, _ = prepare_case(c, check=check, data=data, ref=ref, pack=pack)
        results[i] = res
        if run is not None:
            runs[i] = run
    blocks = [[i for i in runs if not foreign_pool(cases[i])]]
    blocks += [[i] for i in runs if foreign_pool(cases[i])]
    segments = segments or (1 if rounds is not None else FOREIGN_SEGMENTS)
    samples, numbers, errors, machine, pairs = _time_segments(
        runs, cases, blocks, nthreads, segments, rounds, max_time)
    for i in runs:
        t = errors.get(i) or _timing(samples[i], numbers[i])
        _finish(results[i], cases[i], t)
        if nthreads > 1:
            results[i]["machine"] = machine
        paired = {cases[j].impl: statistics.median(v) for (a, j), v in pairs.items()
                  if a == i and v and i not in errors and j not in errors}
        if paired:
            results[i]["paired"] = paired
    return [results[i] for i in range(len(cases))]


def _time_segments(runs, cases, blocks, nthreads, segments, rounds, max_time):
    """The timing of a group (see run_group): (samples, numbers, errors, machine,
    pairs); pairs[i, j]: time of j / time of i in each round where both ran
    (cases of one interleaved block).

    On several threads each block is framed by FMA probes (the one after a
    block is the one before the next); a block with a probe under
    STALL_FRACTION of the peak on either side is timed again, its samples
    dropped, once the probe finds the cores back (at most STALL_RETRIES times).
    ``machine``: the lowest probe around the blocks kept and the number of
    blocks timed again."""
    samples: Dict[int, List[float]] = {i: [] for i in runs}
    numbers: Dict[int, int] = {}
    errors: Dict[int, Exception] = {}
    pairs: Dict[Tuple[int, int], List[float]] = {}
    seg_rounds = None if rounds is None else max(1, rounds // segments)
    before = machine_probe(nthreads)
    kept_min, retimed = 1.0, 0
    for _ in range(segments):
        for block in blocks:
            live = [i for i in block if i not in errors]
            if not live:
                continue
            for attempt in range(1 + STALL_RETRIES):
                if before < STALL_FRACTION:
                    before = _wait_for_cores(nthreads)
                with fastconv_threads(nthreads):
                    s, n, e = _interleaved_samples(
                        {str(i): runs[i] for i in live}, rounds=seg_rounds,
                        max_time=max_time / segments, min_rounds=max(1, 3 // segments),
                        max_rounds=200, min_round_time=2e-3, warmup=1)
                if nthreads > 1 and any(foreign_pool(cases[i]) for i in block):
                    time.sleep(QUIESCE_SECONDS)
                after = machine_probe(nthreads)
                low, before = min(before, after), after
                if low >= STALL_FRACTION or attempt == STALL_RETRIES:
                    break
                retimed += 1
            kept_min = min(kept_min, low)
            for k, v in s.items():
                samples[int(k)] += v
                numbers[int(k)] = n[k]
                for k2, v2 in s.items():   # round r of one next to round r of the other
                    if k2 != k:
                        pairs.setdefault((int(k), int(k2)), []).extend(
                            b / a for a, b in zip(v, v2))
            errors.update({int(k): v for k, v in e.items()})
    machine = {"probe_min": round(kept_min, 3), "retimed": retimed}
    return samples, numbers, errors, machine, pairs


def _wait_for_cores(threads: int) -> float:
    """Poll the machine probe until it finds the cores back (at most
    STALL_WAIT_SECONDS); its last value."""
    end = time.perf_counter() + STALL_WAIT_SECONDS
    probe = machine_probe(threads)
    while probe < STALL_FRACTION and time.perf_counter() < end:
        time.sleep(0.1)
        probe = machine_probe(threads)
    return probe


def machine_probe(threads: int) -> float:
    """A short FMA probe on ``threads`` threads against this run's FMA peak.

    On this kind of shared virtual machine a stretch of seconds sometimes comes
    where the threads get about one core's worth of FMA throughput between them
    (every path and peer of a group then runs at half speed: not a
    ``threads``-thread figure).  1.0 on one thread or without a probe."""
    if threads <= 1:
        return 1.0
    from fastconv import _core
    probe = getattr(_core, "fma_peak_gflops", None)
    peak = measured_peak_gflops(threads)
    if not probe or peak <= 0:
        return 1.0
    return min(1.0, float(probe(threads, STALL_PROBE_ITERS, 3)) / peak)


#: A timing block of a multi-thread group with a machine probe below this
#: fraction of the FMA peak on either side is timed again, at most
#: STALL_RETRIES times (the count is reported per case).  On the 2-vCPU
#: development machine, 120 probes 0.1 s apart read 0.94-1.00 with the cores
#: and 0.51 without; one in between straddled the start or end of a stall,
#: so the block next to it most likely ran partly in it (a threshold of 0.75
#: kept such blocks: batch8 at 2 threads once came out 11 % slow).
STALL_FRACTION = 0.9
STALL_RETRIES = 3
#: Before timing such a block again, wait (at most this long) until the probe
#: finds the cores back: the stretches measured here last up to ~5 s.
STALL_WAIT_SECONDS = 15.0
#: FMA iterations per thread of one probe try (~3 ms at 100 GFLOP/s per core).
STALL_PROBE_ITERS = 2_000_000

#: Time segments of a multi-thread group (see run_group).
FOREIGN_SEGMENTS = 5

#: Pause after a case that ran on another library's thread pool (see run_group).
QUIESCE_SECONDS = 0.3


def foreign_pool(case: "Case") -> bool:
    return case.is_peer or case.impl == "im2col"


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu in ("", platform.machine(), "x86_64"):
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    fl = line.split(":", 1)[1].split()
                    flags = " ".join(x for x in ("avx2", "fma", "avx512f") if x in fl)
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "simd": flags, "cores": all_threads(), "platform": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__}
    try:
        import fastconv
        info["fastconv"] = getattr(fastconv, "__version__", "?")
    except Exception:
        pass
    return info


def _loadavg() -> Optional[float]:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _peer_versions(peers) -> dict:
    v = {}
    if "torch" in peers:
        with contextlib.suppress(Exception):
            import torch
            v["torch"] = torch.__version__
    if "onnxruntime" in peers:
        with contextlib.suppress(Exception):
            import onnxruntime
            v["onnxruntime"] = onnxruntime.__version__
    return v


class _Progress:
    """tqdm bar when available, else a one-line stderr counter; silent when not a TTY."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.n = total, 0
        self.enabled = enabled and sys.stderr.isatty()
        self.bar = None
        if self.enabled:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=total, unit="case", leave=False, dynamic_ncols=True)
            except ImportError:
                self.bar = None

    def start(self, label: str):
        """Show the case about to run."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(label)
        else:
            sys.stderr.write(f"\r[{self.n + 1}/{self.total}] {label:<50.50}")
            sys.stderr.flush()

    def update(self):
        """One case done."""
        self.n += 1
        if self.bar is not None and self.enabled:
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\r" + " " * 70 + "\r")
            sys.stderr.flush()


def run_suite(layers: Sequence[Layer], methods: Sequence[str] = METHODS,
              activations: Sequence[str] = ("relu",), threads: Sequence[int] = (1,),
              peers: Sequence[str] = PEERS, *, rounds=None, max_time=0.5, check=True,
              progress=True, pack=True) -> dict:
    """Run the cartesian product of cases; returns {"meta": ..., "results": [...]}."""
    notes = []
    active_peers = []
    for p in peers:
        ok, why = peer_available(p)
        if ok:
            active_peers.append(p)
        else:
            notes.append(f"peer {p} skipped: {why}")
    control = fastconv_thread_control()
    if "set_num_threads" not in control and any(t != 1 for t in threads):
        if "threadpoolctl" in control:
            notes.append("fastconv has no set_num_threads: its threads (OpenMP) and the "
                         "im2col path's BLAS threads are set with threadpoolctl")
        else:
            notes.append("fastconv has no set_num_threads and threadpoolctl is not installed: "
                         "fastconv runs with its default threads; the threads axis applies to "
                         "the peers only")
    elif "threadpoolctl" not in control:
        notes.append("threadpoolctl not installed: " + (
            "BLAS threads of the im2col path not limited" if "set_num_threads" in control
            else "fastconv's OpenMP and BLAS threads cannot be limited, its 1-thread "
                 "figures may use all cores (pip install threadpoolctl)"))
    load_before = _loadavg()
    impls = list(methods) + active_peers
    cases = [Case(l, impl, a, t) for l in layers for a in activations for t in threads
             for impl in impls]
    bar = _Progress(len(cases), progress)
    results = []
    try:
        for layer in layers:
            data = make_inputs(layer)
            for a in activations:
                ref = reference_output(layer, *data, a) if check else None
                for t in threads:
                    group = [Case(layer, impl, a, t) for impl in impls]
                    done = []

                    def on_case(c, done=done):
                        if done:
                            bar.update()
                        done.append(c)
                        bar.start(c.key)

                    results += run_group(group, rounds=rounds, max_time=max_time,
                                         check=check, data=data, ref=ref, pack=pack,
                                         on_case=on_case)
                    if done:
                        bar.update()
                ref = None
    finally:
        bar.close()
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python -m fastconv"] + sys.argv[1:]) if sys.argv else "",
        "machine": machine_info(),
        "peers": _peer_versions(active_peers),
        "peak_gflops": {str(t): peak_gflops(t)[0] for t in threads},
        "peak_source": peak_gflops(1)[1],
        "thread_control": control,
        "packed_weights": bool(pack and can_pack()),
        "layers": [l.id for l in layers], "methods": list(methods),
        "activations": list(activations), "threads": list(threads),
        "requested_peers": list(peers), "notes": notes,
        "loadavg_1min": {"before": load_before, "after": _loadavg()},
        "timing": {"rounds": rounds, "max_time_per_case_s": max_time,
                   "statistic": "median; spread = IQR (q1-q3) over rounds",
                   "order": "%d segments per (layer, activation, threads) group, each: "
                            "fastconv's own paths (fused, raw, separate, winograd) with their "
                            "rounds interleaved, "
                            "then im2col and each peer alone (on several threads followed by "
                            "a %.1f s pause); on several threads an FMA probe before and after "
                            "each block, the block timed again (at most %d times) when one "
                            "finds under %.0f%% of the FMA peak"
                            % (FOREIGN_SEGMENTS, QUIESCE_SECONDS, STALL_RETRIES,
                               100 * STALL_FRACTION)},
    }
    return {"meta": meta, "results": results}


# ---------------------------------------------------------------------------
# Reporting: table, markdown, chart
# ---------------------------------------------------------------------------


def _fmt_bytes(n: Optional[int]) -> str:
    if n is None:
        return "-"
    for unit, div in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= div:
            v = n / div
            return f"{v:.1f}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return f"{n}B" if n else "0"


def _fmt_g(v: float) -> str:
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 0.1:
        return f"{v:.2f}"
    return f"{v:.2g}"


def _index(results) -> Dict[Tuple[str, str, int], Dict[str, dict]]:
    rows: Dict[Tuple[str, str, int], Dict[str, dict]] = {}
    for r in results:
        rows.setdefault((r["layer"], r["activation"], r["threads"]), {})[r["impl"]] = r
    return rows


def _cell(r: Optional[dict], spread: bool) -> str:
    if r is None:
        return "-"
    st = r["status"]
    if st == "skipped":
        return "n.a." if r.get("not_applicable") else "-"
    if st == "error":
        return "error"
    g = r["gflops"]
    s = _fmt_g(g["median"])
    if spread:
        s += f" ({_fmt_g(g['q1'])}-{_fmt_g(g['q3'])})"
    if st == "wrong":
        s += " WRONG"
    return s


def _ratio(a: Optional[dict], b: Optional[dict]) -> str:
    r = _speedup(a, b)
    return "-" if r is None else f"{r:.2f}x"


def table_rows(report: dict, spread: bool = False) -> Tuple[List[str], List[List[str]]]:
    meta = report["meta"]
    methods = meta["methods"]
    impls = list(methods) + [p for p in PEERS if any(
        r["impl"] == p and r["status"] != "skipped" for r in report["results"])]
    head = ["layer", "act", "thr"] + [IMPL_LABELS.get(i, i).replace("fastconv ", "")
                                      for i in impls]
    head += ["% peak"]
    peers = [i for i in impls if i in PEERS]
    if "fused" in methods:
        head += ["fused/sep" if "separate" in methods else None,
                 "fused/im2col" if "im2col" in methods else None]
        head += [f"fused/{PEER_SHORT.get(p, p)}" for p in peers]
    if "raw" in methods:
        head += ["raw/fused" if "fused" in methods else None]
        head += [f"raw/{PEER_SHORT.get(p, p)}" for p in peers]
    if "winograd" in methods:
        head += ["wino/fused" if "fused" in methods else None]
        head += [f"wino/{PEER_SHORT.get(p, p)}" for p in peers]
    head += [f"mem {m}" for m in methods]
    head = [h for h in head if h is not None]
    rows = []
    for (layer, act, thr), by in _index(report["results"]).items():
        row = [layer, act, str(thr)] + [_cell(by.get(i), spread) for i in impls]
        best = by.get("fused") or next((by[m] for m in methods if m in by), None)
        row.append(f"{best['pct_peak']:.1f}" if best and "pct_peak" in best else "-")
        if "fused" in methods:
            f = by.get("fused")
            if "separate" in methods:
                row.append(_ratio(f, by.get("separate")))
            if "im2col" in methods:
                row.append(_ratio(f, by.get("im2col")))
            for p in peers:
                row.append(_ratio(f, by.get(p)))
        for col in ("raw", "winograd"):   # against the pre-packed fused path and the peers
            if col in methods:
                r = by.get(col)
                if "fused" in methods:
                    row.append(_ratio(r, by.get("fused")))
                for p in peers:
                    row.append(_ratio(r, by.get(p)))
        for m in methods:
            r = by.get(m)
            row.append(_fmt_bytes(r["workspace"]["bytes"]) if r and "workspace" in r else "-")
        rows.append(row)
    return head, rows


def _speedup(fast: Optional[dict], other: Optional[dict]) -> Optional[float]:
    """time(other) / time(fast) from two results, or None when either has no timing:
    the median of the round-by-round ratios when the two took turns round by
    round (fused and separate: the drift of the machine's speed cancels in
    each pair), else the ratio of the median times."""
    ok = ("ok", "wrong")
    if not fast or not other or fast["status"] not in ok or other["status"] not in ok:
        return None
    paired = fast.get("paired", {}).get(other["impl"])
    if paired is not None:
        return paired
    return other["time"]["median"] / fast["time"]["median"]


def target_summary(report: dict) -> List[str]:
    """The performance issue's comparisons, computed from one run: for each
    (activation, threads), the geometric mean over the layers of fastconv fused
    time / peer time (<= 1.0: at least as fast), and the layers where fused is
    slower than a peer, the separate path or the im2col path."""
    by_key = _index(report["results"])
    groups: Dict[Tuple[str, int], List[Tuple[str, Dict[str, dict]]]] = {}
    for (layer, act, thr), by in by_key.items():
        groups.setdefault((act, thr), []).append((layer, by))
    lines = []
    for (act, thr), items in groups.items():
        parts = []
        for other in PEERS + ("separate", "im2col"):
            ratios = [(layer, _speedup(by.get("fused"), by.get(other))) for layer, by in items]
            ratios = [(layer, r) for layer, r in ratios if r is not None]
            if not ratios:
                continue
            label = IMPL_LABELS.get(other, other).replace("fastconv ", "")
            slower = [f"{layer} ({r:.3f}x)" for layer, r in ratios if r < 1.0]
            if other in PEERS:
                gm = math.exp(-sum(math.log(r) for _, r in ratios) / len(ratios))
                parts.append(f"fused time / {label} time, geometric mean over {len(ratios)} "
                             f"layers: **{gm:.2f}**; fused slower on: "
                             + (", ".join(slower) if slower else "none"))
            else:
                parts.append(f"fused slower than {label} on: "
                             + (", ".join(slower) if slower else "none"))
        for other in PEERS:
            ratios = [(layer, _speedup(by.get("raw"), by.get(other))) for layer, by in items]
            ratios = [(layer, r) for layer, r in ratios if r is not None]
            if not ratios:
                continue
            label = IMPL_LABELS.get(other, other)
            gm = math.exp(-sum(math.log(r) for _, r in ratios) / len(ratios))
            slower = [f"{layer} ({r:.3f}x)" for layer, r in ratios if r < 1.0]
            parts.append(f"raw time / {label} time, geometric mean over {len(ratios)} "
                         f"layers: **{gm:.2f}**; raw slower on: "
                         + (", ".join(slower) if slower else "none"))
        # winograd against the fused path and the peers (the Winograd issue's
        # targets: >= WINOGRAD_TARGET on the 3x3 layers it is meant for)
        for other in ("fused",) + PEERS:
            ratios = [(layer, _speedup(by.get("winograd"), by.get(other)))
                      for layer, by in items]
            ratios = [(layer, r) for layer, r in ratios if r is not None]
            if not ratios:
                continue
            label = IMPL_LABELS.get(other, other).replace("fastconv ", "")
            gm = math.exp(sum(math.log(r) for _, r in ratios) / len(ratios))
            under = [f"{layer} ({r:.2f}x)" for layer, r in ratios if r < WINOGRAD_TARGET]
            parts.append(f"{label} time / winograd time, geometric mean over {len(ratios)} "
                         f"layers: **{gm:.2f}**; under {WINOGRAD_TARGET}x on: "
                         + (", ".join(under) if under else "none"))
        # raw / pre-packed: the cost of packing inside the call (paired rounds)
        costs = [(layer, _speedup(by.get("raw"), by.get("fused"))) for layer, by in items]
        costs = [(layer, 1.0 / r) for layer, r in costs if r]
        if costs:
            worst = max(costs, key=lambda lr: lr[1])
            over = [f"{layer} ({c:.2f}x)" for layer, c in costs if c > RAW_TARGET]
            parts.append(f"raw time / pre-packed fused time: max **{worst[1]:.2f}** "
                         f"({worst[0]}), over {RAW_TARGET}x on: "
                         + (", ".join(over) if over else "none"))
        if parts:
            lines.append(f"- {act}, {thr} thread(s): " + "; ".join(parts))
    return lines


#: the raw-weight call's goal against the pre-packed one (time ratio)
RAW_TARGET = 1.25
#: the Winograd path's goal against the fused path and the peers (issue 18)
WINOGRAD_TARGET = 1.5


def machine_summary(report: dict) -> Optional[str]:
    """One line on the multi-thread groups' FMA probes (see run_group)."""
    probes = {}
    for r in report["results"]:
        m = r.get("machine")
        if m:
            probes[(r["layer"], r["activation"], r["threads"])] = m
    if not probes:
        return None
    retimed = [f"{l}/{a}/{t} thr ({m['retimed']})" for (l, a, t), m in probes.items()
               if m["retimed"]]
    low = min(probes.items(), key=lambda kv: kv[1]["probe_min"])
    return ("Multi-thread groups: an FMA probe before and after each timing block; a block "
            f"is timed again when one finds under {STALL_FRACTION:.0%} of the FMA peak (its "
            "threads did not have their cores), at most "
            f"{STALL_RETRIES} times. Blocks re-timed: "
            + (", ".join(retimed) if retimed else "none")
            + f"; lowest probe around the blocks kept: {low[1]['probe_min']:.0%} of the peak "
              f"({low[0][0]}/{low[0][1]})")


def format_table(report: dict, spread: bool = False) -> str:
    head, rows = table_rows(report, spread)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 or i == 1 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths)))
    lines = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    return "\n".join(lines)


def format_markdown(report: dict, chart: Optional[str] = None) -> str:
    """The report as Markdown; ``chart``: path of the PNG relative to the Markdown file."""
    meta = report["meta"]
    m = meta["machine"]
    head, rows = table_rows(report, spread=True)
    lines = [
        "# fastconv benchmark results",
        "",
        "Generated by `python -m fastconv bench` - do not edit by hand; regenerate with:",
        "",
        "```",
        meta["command"],
        "```",
        "",
        f"- Date: {meta['date']}",
        f"- Machine: {m.get('cpu')} ({m.get('simd')}), {m.get('cores')} logical cores, "
        f"{m.get('platform')}",
        f"- Software: Python {m.get('python')}, NumPy {m.get('numpy')}, fastconv "
        f"{m.get('fastconv', '?')}"
        + "".join(f", {k} {v}" for k, v in meta.get("peers", {}).items()),
        "- FMA peak (FP32): " + ", ".join(f"{float(v):.0f} GFLOP/s on {k} thread(s)"
                                          for k, v in meta["peak_gflops"].items())
        + f" (source: {meta['peak_source']})",
        f"- fastconv thread control: {meta['thread_control']}; weights "
        + ("pre-packed once with `fastconv.pack_weight` (outside the timed call)"
           if meta.get("packed_weights") else "passed as arrays (not pre-packed)")
        + ("; `raw` is the fused path with the plain weight array, as a user writes "
           "`conv2d(x, w, b)` (the weights packed inside every call); `raw/fused` is "
           "time(fused) / time(raw) (< 1: what packing inside the call costs), "
           "`raw/x` time(x) / time(raw); `mem raw` leaves out the buffer the weights are "
           "packed into, kept between calls (about the packed weights' size)"
           if "raw" in meta.get("methods", ()) else "")
        + ("; `winograd` is `method=\"winograd\"` (F(4x4, 3x3)) with the weights "
           "transformed once (`pack_weight(w, method=\"winograd\")`), `n.a.` on the layers "
           "it cannot compute (not 3x3, strided, dilated); `wino/x` is time(x) / "
           "time(winograd); its error is checked against the same float64 reference"
           if "winograd" in meta.get("methods", ()) else ""),
        "- Figures: GFLOP/s (FLOPs = 2*N*Cout*Hout*Wout*Cin/groups*KH*KW, the dense count "
        "with the taps in the padding, the same for every path and peer), "
        "median over rounds with the interquartile range in parentheses; "
        "`% peak` is the fused path (median) against the FMA peak for that thread count; "
        "it can pass 100 % on small padded images, where the fused path (like oneDNN and "
        "ONNX Runtime) skips the FMAs of taps that read only padding; "
        "`fused/sep` and `fused/im2col` (> 1 means fused is faster) and the peer ratios are "
        "measured over the same stretch of the run: the time of a "
        "case group is cut into segments, in each fused and separate take turns round by "
        "round, then im2col and each peer run alone; `fused/sep` is the median of the "
        "round-by-round ratios (the machine's drift cancels in each pair), the others are "
        "ratios of median times; "
        "`mem` is the peak extra memory a path allocates besides its (preallocated) output.",
        "- Every case's output was checked against a float64 NumPy reference "
        f"(max error <= {CHECK_RTOL:g} x max |reference|).",
    ]
    la = meta.get("loadavg_1min") or {}
    if la.get("before") is not None:
        lines.append(f"- 1-minute load average before / after the run: {la['before']} / "
                     f"{la.get('after')} on {m.get('cores')} cores (figures from a loaded "
                     "machine are noisier, multi-thread ones most)")
    for n in meta.get("notes", []):
        lines.append(f"- Note: {n}")
    ms = machine_summary(report)
    if ms:
        lines.append(f"- {ms}")
    lines += ["", "| " + " | ".join(head) + " |",
              "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    summary = target_summary(report)
    if summary:
        lines += ["", "Comparisons from this run (fused against separate: median of the "
                      "round-by-round ratios; the others: ratios of median times; `fused/x` "
                      "in the table is time(x) / time(fused)):", ""] + summary
    if chart:
        lines += ["", f"![GFLOP/s per layer, path and peer]({chart})"]
    lines += ["", "Layers:", ""]
    for lid in meta["layers"]:
        l = LAYER_BY_ID[lid]
        lines.append(f"- `{lid}`: {l.describe()}, {l.flops / 1e6:.1f} MFLOP")
    return "\n".join(lines) + "\n"


def failures(report: dict) -> List[dict]:
    return [r for r in report["results"] if r["status"] in ("wrong", "error")]


def write_json(report: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(report, f, indent=1, default=float)
        f.write("\n")


def write_chart(report: dict, path: str) -> str:
    """Grouped bar chart (one group per layer, one bar per path/peer, IQR error bars).

    One panel per (activation, threads) combination plus a panel of the
    workspace memory per fastconv path. Requires matplotlib (optional).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = report["meta"]
    results = [r for r in report["results"] if r["status"] in ("ok", "wrong")]
    layers = meta["layers"]
    impls = [i for i in IMPLS if any(r["impl"] == i for r in results)]
    combos = [(a, t) for a in meta["activations"] for t in meta["threads"]]
    has_mem = any("workspace" in r for r in results)
    npanels = len(combos) + (1 if has_mem else 0)
    width = max(9.0, 1.1 * len(layers) + 5)
    fig, axes = plt.subplots(npanels, 1, figsize=(width, 3.6 * npanels), squeeze=False)
    colors = {"fused": "#1f77b4", "raw": "#17becf", "separate": "#ff7f0e", "im2col": "#2ca02c",
              "winograd": "#8c564b", "torch": "#d62728", "onnxruntime": "#9467bd"}
    bw = 0.8 / max(1, len(impls))
    xs = np.arange(len(layers))
    idx = {(r["layer"], r["impl"], r["activation"], r["threads"]): r for r in results}
    for ax, (act, thr) in zip(axes[:, 0], combos):
        for k, impl in enumerate(impls):
            med, lo, hi = [], [], []
            for lid in layers:
                r = idx.get((lid, impl, act, thr))
                if r is None:
                    med.append(np.nan), lo.append(0), hi.append(0)
                    continue
                g = r["gflops"]
                med.append(g["median"])
                lo.append(max(0.0, g["median"] - g["q1"]))
                hi.append(max(0.0, g["q3"] - g["median"]))
            ax.bar(xs + (k - (len(impls) - 1) / 2) * bw, med, bw, yerr=[lo, hi], capsize=2,
                   label=IMPL_LABELS.get(impl, impl), color=colors.get(impl))
        peak = float(meta["peak_gflops"].get(str(thr), peak_gflops(thr)[0]))
        ax.axhline(peak, color="grey", ls="--", lw=1, label=f"FMA peak ({peak:.0f})")
        ax.set_yscale("log")
        ax.set_ylabel("GFLOP/s (log scale, higher is better)")
        ax.set_title(f"Conv2d + {act}, {thr} thread{'s' if thr > 1 else ''} "
                     "(median, IQR error bars)")
        ax.set_xticks(xs)
        ax.set_xticklabels(layers, rotation=20, ha="right")
        ax.set_xlabel("layer")
        ax.grid(axis="y", which="major", alpha=0.3)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if has_mem:
        ax = axes[-1, 0]
        act, thr = combos[0]
        mimpls = [m for m in meta["methods"] if m in impls]
        mbw = 0.8 / max(1, len(mimpls))
        for k, impl in enumerate(mimpls):
            vals = []
            for lid in layers:
                r = idx.get((lid, impl, act, thr))
                vals.append(r["workspace"]["bytes"] / 2**10 if r and "workspace" in r else np.nan)
            pos = xs + (k - (len(mimpls) - 1) / 2) * mbw
            ax.bar(pos, [v if v > 0 else np.nan for v in vals], mbw,
                   label=IMPL_LABELS.get(impl, impl), color=colors.get(impl))
            for xp, v in zip(pos, vals):
                if v == 0:  # nothing allocated: no bar on a log axis, say so
                    ax.annotate("0", (xp, 0), xycoords=("data", "axes fraction"),
                                xytext=(0, 2), textcoords="offset points", ha="center",
                                va="bottom", fontsize="x-small", color=colors.get(impl))
        ax.set_yscale("log")
        ax.set_ylabel("extra memory (KiB, log scale)")
        ax.set_title("Peak workspace allocated besides the output (lower is better; "
                     "0 = none)")
        ax.set_xticks(xs)
        ax.set_xticklabels(layers, rotation=20, ha="right")
        ax.set_xlabel("layer")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"fastconv vs peers - {meta['machine'].get('cpu', '')}", fontsize="medium")
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------
# A whole ONNX model: fastconv.onnx against onnxruntime (``bench --onnx``)
# ---------------------------------------------------------------------------


def onnx_model_inputs(model, batch: int = 1, seed: int = 0) -> Dict[str, np.ndarray]:
    """Random float inputs for a model's true inputs (symbolic dims -> `batch`)."""
    from fastconv.onnx import InferenceSession
    rng = np.random.default_rng(seed)
    feed = {}
    for arg in InferenceSession(model).get_inputs():
        if arg.type not in ("tensor(float)", "tensor(double)"):
            raise ValueError(f"input {arg.name!r} of type {arg.type}: only float inputs are "
                             f"generated")
        shape = [d if isinstance(d, int) else batch for d in arg.shape]
        dtype = np.float32 if arg.type == "tensor(float)" else np.float64
        feed[arg.name] = rng.standard_normal(shape).astype(dtype)
    return feed


ONNX_SEGMENTS = 4


def bench_onnx_model(model, threads: Sequence[int] = (1,), feed=None, *, rounds=None,
                     max_time: float = 2.0, peers: Sequence[str] = ("onnxruntime",)) -> List[dict]:
    """Latency of one ONNX model (a path or bytes) with fastconv.onnx and
    onnxruntime at each thread count, timed in alternating segments; onnxruntime
    with default graph optimisations and ``intra_op_num_threads`` = threads,
    fastconv with ``set_num_threads`` (and BLAS limited alike).  Each row:
    threads, fastconv_ms / onnxruntime_ms (medians), speedup (ORT / fastconv),
    max_abs_diff between their first outputs, fastconv's intermediate peak
    and pool bytes."""
    from fastconv.onnx import InferenceSession
    if isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as f:
            model = f.read()
    feed = onnx_model_inputs(model) if feed is None else feed
    rows = []
    for n in threads:
        fns, outs = {}, {}
        sess = InferenceSession(model)
        fns["fastconv"] = lambda s=sess: s.run(None, feed)
        if "onnxruntime" in peers:
            import onnxruntime as ort
            so = ort.SessionOptions()
            so.intra_op_num_threads = int(n)
            so.log_severity_level = 3
            osess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
            fns["onnxruntime"] = lambda s=osess: s.run(None, feed)
        samples = {name: [] for name in fns}
        with fastconv_threads(n):
            for name, fn in fns.items():
                outs[name] = fn()[0]
            # Segments of each library alone, in turns (see run_group: round by
            # round the two disturb each other's caches and thread pools); after
            # onnxruntime on several threads a pause lets its spinning workers stop.
            for _ in range(ONNX_SEGMENTS):
                for name, fn in fns.items():
                    t = time_fn(fn, rounds=None if rounds is None else
                                max(1, rounds // ONNX_SEGMENTS),
                                max_time=max_time / ONNX_SEGMENTS, min_rounds=2,
                                min_round_time=0.0)
                    samples[name] += [t.median] * t.rounds
                    if n > 1 and name != "fastconv":
                        time.sleep(0.2)
        row = {"threads": int(n)}
        for name, v in samples.items():
            row[f"{name}_ms"] = statistics.median(v) * 1e3
            row[f"{name}_rounds"] = len(v)
        mem = sess.memory_stats()
        row["fastconv_peak_bytes"], row["fastconv_pool_bytes"] = mem["peak"], mem["pool"]
        if "onnxruntime" in fns:
            row["speedup"] = row["onnxruntime_ms"] / row["fastconv_ms"]
            row["max_abs_diff"] = float(np.max(np.abs(outs["fastconv"].astype(np.float64)
                                                      - outs["onnxruntime"])))
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------
# The backward pass (``fastconv bench --backward``)
# ---------------------------------------------------------------------------

#: fastconv.conv2d_backward methods timed by the backward benchmark.
BACKWARD_METHODS: Tuple[str, ...] = ("auto", "fused", "separate", "im2col")


def backward_needs(layer: Layer) -> Tuple[str, ...]:
    """The gradients a training step needs of the layer: not grad_input of
    the first layer (its input is the data)."""
    return ("weight", "bias") if layer.id == "resnet_conv1" else ("input", "weight", "bias")


def transposed_layer(layer: Layer):
    """conv_transpose2d arguments that undo the layer's shape (its output in,
    its input's shape out), or None where output_padding cannot reach it."""
    ho, wo = layer.out_hw
    base_h = (ho - 1) * layer.stride - 2 * layer.pad + layer.dilation * (layer.k - 1) + 1
    base_w = (wo - 1) * layer.stride - 2 * layer.pad + layer.dilation * (layer.k - 1) + 1
    oph, opw = layer.h - base_h, layer.w - base_w
    limit = max(layer.stride, layer.dilation)
    if not (0 <= oph < limit and 0 <= opw < limit):
        return None
    return dict(stride=layer.stride, padding=layer.pad, output_padding=(oph, opw),
                groups=layer.groups, dilation=layer.dilation)


def backward_runners(layer: Layer, activation: str, threads: int, seed: int = 0):
    """name -> zero-argument callable for one backward step of the layer:
    fastconv's methods (the forward's saved result passed as torch keeps it:
    y for relu, z for the others), grad_input and grad_weight alone, and
    torch (torch.autograd.grad of act(F.conv2d(x, w, b)), the forward done
    once outside).  Plus 'transpose' / 'torch_transpose': conv_transpose2d
    with the activation on the layer's transposed shape (forward)."""
    import fastconv
    x, w, b = make_inputs(layer, seed)
    kw = layer.conv_kwargs
    z = fastconv.conv2d(x, w, b, **kw)
    y = fastconv.activate(z, activation)
    g = np.random.default_rng(seed + 1).standard_normal(layer.out_shape).astype(np.float32)
    saved = dict(output=y) if activation == "relu" else dict(linear_output=z)
    needs = backward_needs(layer)
    bufs = {"grad_input": np.empty(layer.x_shape, np.float32),
            "grad_weight": np.empty(layer.w_shape, np.float32),
            "grad_bias": np.empty(layer.cout, np.float32)}
    back = fastconv.conv2d_backward

    def fc(method, which):
        args = dict(kw, activation=activation, method=method, needs=which, **saved)
        args.update({k: v for k, v in bufs.items() if k[5:] in which})
        return lambda: back(g, x, w, b, **args)

    fns = {m: fc(m, needs) for m in BACKWARD_METHODS}
    if "input" in needs:
        fns["fused_input"] = fc("fused", ("input",))
    fns["fused_weight"] = fc("fused", ("weight",))
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return fns
    torch.set_num_threads(int(threads))
    tx = torch.from_numpy(x).requires_grad_("input" in needs)
    tw = torch.from_numpy(w.copy()).requires_grad_(True)
    tb = torch.from_numpy(b.copy()).requires_grad_(True)
    act = {"relu": torch.relu, "silu": F.silu, "gelu": F.gelu}[activation]
    ty = act(F.conv2d(tx, tw, tb, **kw))
    tg = torch.from_numpy(g)
    inputs = ([tx] if "input" in needs else []) + [tw, tb]
    fns["torch"] = lambda: torch.autograd.grad(ty, inputs, tg, retain_graph=True)
    targs = transposed_layer(layer)
    if targs is not None:
        xt = np.random.default_rng(seed + 2).standard_normal(layer.out_shape).astype(np.float32)
        wt = np.ascontiguousarray(w)   # (C_in_T = layer.cout, C_out_T / groups, k, k)
        bt = np.zeros(layer.cin, np.float32)
        out = np.empty(layer.x_shape, np.float32)
        txt, twt, tbt = (torch.from_numpy(a) for a in (xt, wt, bt))

        def torch_t():
            with torch.inference_mode():
                return act(F.conv_transpose2d(txt, twt, tbt, **targs))

        fns["transpose"] = lambda: fastconv.conv_transpose2d(
            xt, wt, bt, **targs, activation=activation, method="auto", out=out)
        fns["torch_transpose"] = torch_t
    return fns


def run_backward_suite(layers: Sequence[Layer], activations: Sequence[str] = ("relu", "silu"),
                       threads: Sequence[int] = (1,), *, max_time: float = 1.0) -> List[dict]:
    """Time backward_runners interleaved per (layer, activation, threads);
    one dict per case: median seconds per runner, the FLOP counts, the peak."""
    rows = []
    for thr in threads:
        peak = peak_gflops(thr)[0]
        with fastconv_threads(thr):
            for layer in layers:
                for act in activations:
                    fns = backward_runners(layer, act, thr)
                    t = time_interleaved(fns, max_time=max_time, min_rounds=5)
                    err = {k: repr(v) for k, v in t.items() if isinstance(v, Exception)}
                    rows.append(dict(layer=layer.id, activation=act, threads=thr, peak=peak,
                                     flops=layer.flops, needs=backward_needs(layer),
                                     seconds={k: v.median for k, v in t.items()
                                              if not isinstance(v, Exception)},
                                     errors=err))
    return rows


def format_backward_markdown(rows: List[dict]) -> str:
    """The backward results as a Markdown table, then the targets met or not."""
    head = ("| layer | act | thr | auto ms | fused ms | separate ms | im2col ms | torch ms | torch/fused "
            "| fused GFLOP/s (% peak) | grad_input % peak | grad_weight % peak "
            "| transpose (auto) ms | torch transpose ms |")
    lines = [head, "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"]
    faster = sep_ok = t_faster = True
    for r in rows:
        s = r["seconds"]
        f = r["flops"]
        total = f * (2 if "input" in r["needs"] else 1)

        def ms(k):
            return f"{s[k] * 1e3:.2f}" if k in s else "-"

        def pct(k, flops):
            return f"{flops / s[k] / 1e9 / r['peak'] * 100:.0f} %" if k in s else "-"

        fused = s.get("fused")
        ratio = f"{s['torch'] / fused:.2f}" if fused and "torch" in s else "-"
        best = min(s.get("auto", fused or 0), fused or 0) or None
        if best and "torch" in s and s["torch"] < best:
            faster = False
        if fused and "separate" in s and s["separate"] < fused:
            sep_ok = False
        if "transpose" in s and "torch_transpose" in s and s["torch_transpose"] < s["transpose"]:
            t_faster = False
        gf = f"{total / fused / 1e9:.1f} ({total / fused / 1e9 / r['peak'] * 100:.0f} %)" \
            if fused else "-"
        lines.append(f"| {r['layer']} | {r['activation']} | {r['threads']} | {ms('auto')} | "
                     f"{ms('fused')} | "
                     f"{ms('separate')} | {ms('im2col')} | {ms('torch')} | {ratio} | {gf} | "
                     f"{pct('fused_input', f)} | {pct('fused_weight', f)} | {ms('transpose')} | "
                     f"{ms('torch_transpose')} |")
    lines.append("")
    lines.append(f"- fused (or auto) backward faster than torch on every layer: "
                 f"{'yes' if faster else 'NO'}")
    lines.append(f"- fused backward <= separate on every layer: {'yes' if sep_ok else 'NO'}")
    lines.append(f"- conv_transpose2d faster than F.conv_transpose2d on every transposed shape: "
                 f"{'yes' if t_faster else 'NO'}")
    errs = [(r["layer"], r["activation"], k, v) for r in rows for k, v in r["errors"].items()]
    for e in errs:
        lines.append(f"- error {e}")
    return "\n".join(lines) + "\n"
