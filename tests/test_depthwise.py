"""The depthwise kernel (groups == c_in) against the float64 reference.

Covers channel multipliers, kernel sizes, strides, dilations, asymmetric and
oversized padding, widths around the vector sizes (tails), fused activations
(in registers: identity/relu/relu6; the others as a pass), bias / no bias,
both dtypes, every AVX2 path (row kernels 3x3/5x5 stride 1/2, the generic
buffer kernel, the channels-in-lanes kernel for narrow planes), the portable
kernel (FASTCONV_DISABLE_SIMD=1 in a subprocess) and the C entry's refusal of
non-depthwise descriptions.  (Pre-activations are not taken by the depthwise
kernel: the direct driver sends those to the general one.)
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
    # the unrolled row kernels (3x3 / 5x5, stride 1 / 2), edges, partial vectors
    (1, 3, 23, 45, 1, (3, 3), 1, 1, 1),
    (1, 3, 9, 19, 1, (3, 3), 2, 1, 1),
    (2, 2, 40, 37, 1, (5, 5), 1, 2, 1),
    (1, 3, 30, 61, 1, (5, 5), 2, 2, 1),
    (1, 2, 19, 100, 2, (5, 5), 2, (2, 1), 1),        # multiplier 2, 5x5 stride 2
    (1, 3, 11, 13, 2, (3, 3), 1, 0, 1),              # multiplier 2, no padding
    (1, 2, 6, 3, 1, (3, 3), 1, 1, 1),                # rows narrower than half a vector
    (1, 2, 5, 2, 1, (5, 5), 1, 2, 1),
    (1, 2, 13, 29, 1, (3, 3), 2, 0, 1),
    # narrow planes: channels in the vector lanes (c % 8 == 0, multiplier 1)
    (1, 16, 14, 14, 1, (3, 3), 1, 1, 1),
    (2, 24, 7, 7, 1, (3, 3), 1, 1, 1),
    (1, 16, 14, 14, 1, (3, 3), 2, 1, 1),
    (1, 8, 28, 28, 1, (5, 5), 1, 2, 1),
    (1, 16, 28, 28, 1, (5, 5), 2, 2, 1),
    (1, 8, 9, 11, 1, (3, 3), 1, ((2, 0), (1, 3)), 1),
    (1, 8, 12, 12, 1, (3, 3), 1, 2, 2),              # dilation, narrow
    (1, 8, 5, 5, 1, (7, 7), 1, 3, 1),
    (1, 12, 10, 10, 1, (3, 3), 1, 1, 1),             # c % 8 != 0 (f32), == 0 (f64)
]


ACTS = ("relu", "silu", None, "gelu", "relu6", "hardswish", ("leaky_relu", {"negative_slope": 0.1}))


def _act(a):
    """fastconv's form of an ACTS entry (the reference takes the entry as it is)."""
    if isinstance(a, tuple):
        return fastconv.Activation(a[0], **a[1])
    return a


def _run_cases(dtype_name, acts=ACTS):
    dtype = np.dtype(dtype_name)
    rng = np.random.default_rng(5)
    results = []
    for i, (n, c, h, w, mult, k, stride, padding, dilation) in enumerate(CASES):
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
        wt = rng.standard_normal((c * mult, 1) + k).astype(dtype)
        b = rng.standard_normal(c * mult).astype(dtype) if i % 2 == 0 else None
        act = acts[i % len(acts)]
        y = fastconv.conv2d(x, wt, b, stride, padding, dilation, groups=c,
                            activation=_act(act), method="fused")
        results.append((x, wt, b, stride, padding, dilation, c, act, y))
    return results


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_depthwise_vs_reference(dtype):
    for x, wt, b, stride, padding, dilation, groups, act, y in _run_cases(dtype):
        ref, scale = conv2d_act_ref(x, wt, b, stride, padding, dilation, groups, activation=act)
        rtol = 1e-5 if dtype == "float32" else 1e-12
        assert y.shape == ref.shape
        np.testing.assert_array_less(np.abs(y - ref), rtol * scale + 1e-30)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_portable_matches_simd(tmp_path, dtype):
    """The portable kernel (a subprocess with SIMD disabled) agrees with this one."""
    out = tmp_path / "portable.npz"
    code = ("import numpy as np; from test_depthwise import _run_cases; "
            "np.savez(%r, *[r[-1] for r in _run_cases(%r)])" % (str(out), dtype))
    run_python(["-c", code], env={"FASTCONV_DISABLE_SIMD": "1"}, check=True)
    portable = np.load(out)
    tol = 2e-5 if dtype == "float32" else 1e-12
    for i, r in enumerate(_run_cases(dtype)):
        ref = portable[f"arr_{i}"]
        np.testing.assert_allclose(r[-1], ref, rtol=tol, atol=tol * np.abs(ref).max())


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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k,stride", [(3, 1), (3, 2), (5, 1), (5, 2)])
def test_depthwise_size_sweep(dtype, k, stride):
    """Every width/height around the vector and tile sizes (edges, partial
    vectors spilling into the next row, 4/2/1-row groups), with channel
    counts for the row kernel (3) and the channels-in-lanes one (8)."""
    rng = np.random.default_rng(11)
    pad = k // 2
    for c in (3, 8):
        for h in (1, 2, 3, 5, 6, 9):
            for w in (1, 2, 3, 4, 5, 7, 8, 9, 14, 15, 16, 17, 21, 23, 28, 31, 33, 40):
                if (h + 2 * pad - k) < 0 or (w + 2 * pad - k) < 0:
                    continue
                x = rng.standard_normal((1, c, h, w)).astype(dtype)
                wt = rng.standard_normal((c, 1, k, k)).astype(dtype)
                b = rng.standard_normal(c).astype(dtype)
                y = fastconv.conv2d(x, wt, b, stride, pad, groups=c, activation="relu",
                                    method="fused")
                ref, scale = conv2d_act_ref(x, wt, b, stride, pad, 1, c, activation="relu")
                rtol = 1e-5 if dtype == "float32" else 1e-12
                assert y.shape == ref.shape
                bad = np.abs(y - ref) > rtol * scale + 1e-30
                assert not bad.any(), (c, h, w, np.argwhere(bad)[:5])


def test_packed_weights_and_out_buffer():
    """The benchmark's form: packed weights, preallocated out, 1 and 2 threads."""
    rng = np.random.default_rng(2)
    for (c, h, k, s) in [(32, 56, 3, 1), (64, 30, 3, 2), (16, 14, 3, 1), (24, 28, 5, 1)]:
        x = rng.standard_normal((1, c, h, h)).astype(np.float32)
        w = rng.standard_normal((c, 1, k, k)).astype(np.float32)
        b = rng.standard_normal(c).astype(np.float32)
        pw = fastconv.pack_weight(w, groups=c)
        ref, scale = conv2d_act_ref(x, w, b, s, k // 2, 1, c, activation="relu6")
        saved = fastconv.get_num_threads()
        try:
            for threads in (1, 2):
                fastconv.set_num_threads(threads)
                out = np.full(ref.shape, np.nan, np.float32)
                fastconv.conv2d(x, pw, b, s, k // 2, groups=c, activation="relu6", out=out)
                np.testing.assert_array_less(np.abs(out - ref), 1e-5 * scale + 1e-30)
        finally:
            fastconv.set_num_threads(saved)
