"""Workspace memory of a fastconv call: the tracemalloc peak and the library's
own figure."""
from __future__ import annotations

import tracemalloc
from typing import Callable, Dict, Optional

import numpy as np

from .suite import Layer


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
