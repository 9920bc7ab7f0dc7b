"""fastconv: fast CPU 2-D convolution with the activation fused in.

A convolution is linear; the activation applied to each of its outputs is
what makes a stack of them more than one linear map.  fastconv applies that
activation inside the convolution, while each output is still in registers
(or before it, ResNet v2 style), instead of in a second pass over memory.
"""
try:
    from fastconv import _core  # noqa: F401  (the compiled kernels)
except ImportError as e:  # pragma: no cover - depends on how it was installed
    import os as _os
    raise ImportError(
        f"fastconv's compiled extension could not be imported ({e}). If you are running "
        f"from the source tree ({_os.path.dirname(_os.path.dirname(__file__))}), either build "
        f"it in place (`pip install -e .`) or run from another directory so that the "
        f"installed package is imported.") from e
from fastconv.activations import ACTIVATIONS, Activation, activate
from fastconv.config import (fast_math, get_fast_math, get_num_threads, set_fast_math,
                             set_num_threads, show_config)
from fastconv.conv import conv2d, pack_weight, winograd_pays, workspace_bytes
from fastconv.grad import conv2d_backward, conv_transpose2d, conv_transpose2d_backward
from fastconv import layers  # noqa: E402  (layers build on the names above)

__all__ = ["ACTIVATIONS", "Activation", "activate", "conv2d", "conv2d_backward",
           "conv_transpose2d", "conv_transpose2d_backward", "fast_math", "get_fast_math",
           "get_num_threads", "layers", "pack_weight", "set_fast_math", "set_num_threads",
           "show_config", "winograd_pays", "workspace_bytes"]
__version__ = "0.1.0"
