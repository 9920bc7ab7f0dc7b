"""fastconv.onnx: run ONNX CNNs on fastconv's kernels.

``InferenceSession`` is a drop-in for ``onnxruntime.InferenceSession`` on
CNNs; ``Backend`` is an ``onnx.backend.base.Backend`` (the API onnx's own
backend test suite drives).  Needs the ``onnx`` package
(``pip install "fastconv[onnx]"``).
"""
try:
    import onnx  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("fastconv.onnx needs the onnx package: pip install \"fastconv[onnx]\" "
                      f"({e})") from e

from ._backend import Backend, BackendRep
from ._session import InferenceSession, NodeArg

__all__ = ["Backend", "BackendRep", "InferenceSession", "NodeArg"]
