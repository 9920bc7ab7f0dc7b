"""Runners (zero-argument callables doing one forward pass) for fastconv's paths,
PyTorch eager and ONNX Runtime, the peers' availability, and the thread control."""
from __future__ import annotations

import contextlib
from typing import Optional, Tuple

import numpy as np

from .suite import CALL_METHOD, METHODS, Case, Layer


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
