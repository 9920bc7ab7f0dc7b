"""The float64 NumPy reference every benchmarked output is checked against
(convolution and activations, independent of the library's kernels)."""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from .suite import Layer


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
