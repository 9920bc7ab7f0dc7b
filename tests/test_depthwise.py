"""The depthwise kernel (groups == c_in) against the float64 reference.

Covers channel multipliers, kernel sizes, strides, dilations, asymmetric and
oversized padding, widths around the vector sizes (tails), fused activations,
both dtypes, the AVX2 and the portable kernel (FASTCONV_DISABLE_SIMD=1 in a
subprocess) and the C entry's refusal of non-depthwise descriptions.
"""
from _child import run_python
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import _core
from reference import conv2d_act_ref

CASES = [
    # (n, c, h, w, mult, k, stride, padding, dilation)
    (1, 32, 112, 112, 1, (3, 3), 1, 1, 1),      # mobilenet
    (2, 3, 17, 9, 1, (3, 3), 1, 1, 1),
    (1, 4, 15, 33, 2, (3, 3), 2, 1, 1),         # multiplier 2, stride 2
    (1, 5, 20, 41, 3, (5, 5), 1, 2, 2),         # dilation
    (1, 2, 9, 70, 1, (1, 7), (1, 3), (0, 3), 1),
    (1, 3, 12, 12, 1, (3, 3), 3, ((0, 5), (4, 1)), 1),   # asymmetric, oversized
    (3, 1, 8, 8, 4, (2, 2), 1, 0, 1),           # c_in == 1, groups == 1
    (1, 6, 7, 1, 1, (3, 1), 1, (1, 0), 1),      # width 1
    (1, 2, 30, 31, 1, (3, 3), (2, 3), 1, (2, 1)),
    (1, 2, 40, 8, 1, (7, 7), 1, 3, 1),          # kernel wider than the row
    (1, 8, 64, 64, 1, (3, 3), 1, "same", 1),
]


def _run_cases(dtype_name, acts=("relu", "silu", None, "gelu")):
    dtype = np.dtype(dtype_name)
    rng = np.random.default_rng(5)
    results = []
    for i, (n, c, h, w, mult, k, stride, padding, dilation) in enumerate(CASES):
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
        wt = rng.standard_normal((c * mult, 1) + k).astype(dtype)
        b = rng.standard_normal(c * mult).astype(dtype) if i % 2 == 0 else None
        act = acts[i % len(acts)]
        y = fastconv.conv2d(x, wt, b, stride, padding, dilation, groups=c,
                            activation=act, method="fused")
        results.append((x, wt, b, stride, padding, dilation, c, act, y))
    return results


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_depthwise_vs_reference(dtype):
    for x, wt, b, stride, padding, dilation, groups, act, y in _run_cases(dtype):
        ref, scale = conv2d_act_ref(x, wt, b, stride, padding, dilation, groups, activation=act)
        rtol = 1e-5 if dtype == "float32" else 1e-12
        assert y.shape == ref.shape
        np.testing.assert_array_less(np.abs(y - ref), rtol * scale + 1e-30)


def test_portable_matches_simd(tmp_path):
    """The portable kernel (a subprocess with SIMD disabled) agrees with this one."""
    out = tmp_path / "portable.npz"
    code = ("import numpy as np; from test_depthwise import _run_cases; "
            "np.savez(%r, *[r[-1] for r in _run_cases('float32')])" % (str(out),))
    run_python(["-c", code], env={"FASTCONV_DISABLE_SIMD": "1"}, check=True)
    portable = np.load(out)
    for i, r in enumerate(_run_cases("float32")):
        ref = portable[f"arr_{i}"]
        np.testing.assert_allclose(r[-1], ref, rtol=2e-5, atol=2e-5 * np.abs(ref).max())


def test_threads_and_batches_agree():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 16, 50, 50)).astype(np.float32)
    w = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    y = fastconv.conv2d(x, w, padding=1, groups=16, activation="relu")
    for i in range(3):
        yi = fastconv.conv2d(x[i:i + 1], w, padding=1, groups=16, activation="relu")
        np.testing.assert_array_equal(y[i:i + 1], yi)


def test_not_depthwise_is_refused():
    x = np.zeros((1, 4, 8, 8), np.float32)
    w = np.zeros((4, 2, 3, 3), np.float32)
    y = np.zeros((1, 4, 6, 6), np.float32)
    desc = _core.ConvDesc(1, 4, 8, 8, 4, 3, 3, 6, 6, 1, 1, 1, 1, 0, 0, 2)
    assert _core.conv2d_depthwise(desc, x, w, None, y, fastconv.Activation("relu")._spec) is False


def test_special_values_propagate():
    x = np.zeros((1, 2, 5, 5), np.float32)
    x[0, 0, 2, 2] = np.nan
    x[0, 1, 0, 0] = np.inf
    w = np.ones((2, 1, 3, 3), np.float32)
    y = fastconv.conv2d(x, w, padding=1, groups=2, activation="relu")
    assert np.isnan(y[0, 0, 1:4, 1:4]).all() and not np.isnan(y[0, 0, 0]).any()
    assert np.isinf(y[0, 1, :2, :2]).all() and (y[0, 1, 3:, 3:] == 0).all()
