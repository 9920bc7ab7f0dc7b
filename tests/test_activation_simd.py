"""The AVX2 activations against the portable scalar ones (and torch).

The scalar results come from a subprocess run with FASTCONV_DISABLE_SIMD=1,
which forces the portable loops; in this process the AVX2 loops run where the
CPU has them (elsewhere both sides are the portable code and agree exactly).

float32: within 4 ulp, or 1e-6 relative plus a small absolute term where the
scalar formula itself cancels (gelu's 1 + erf and 1 + tanh for x << 0 are
only good to |x| * 2^-24 absolute, in torch too).  float64: bit for bit.
NaN, infinities and the sign of zero must match exactly everywhere.
"""
from _child import run_python
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv.activations import Activation

ACTS = {
    "relu": Activation("relu"),
    "relu6": Activation("relu6"),
    "leaky_relu": Activation("leaky_relu", negative_slope=0.2),
    "elu": Activation("elu", alpha=1.3),
    "selu": Activation("selu"),
    "sigmoid": Activation("sigmoid"),
    "hardsigmoid": Activation("hardsigmoid"),
    "tanh": Activation("tanh"),
    "softplus": Activation("softplus"),
    "softplus_b2": Activation("softplus", beta=2.0, threshold=10.0),
    "softplus_big_thr": Activation("softplus", beta=0.5, threshold=200.0),
    "softsign": Activation("softsign"),
    "silu": Activation("silu"),
    "hardswish": Activation("hardswish"),
    "gelu": Activation("gelu"),
    "gelu_tanh": Activation("gelu", approximate="tanh"),
    "mish": Activation("mish"),
}
# Where the scalar formula loses absolute accuracy ~ |x| * eps by cancellation.
CANCELS = {"gelu", "gelu_tanh"}


def _inputs(dtype):
    rng = np.random.default_rng(1234)
    fi = np.finfo(dtype)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0, -1.0, 3.0, -3.0,
                        6.0, -6.0, 20.0, 20.000002, 19.999998, -20.0, 88.0, -88.0, 88.72, -88.72,
                        89.0, -89.0, 103.0, -103.0, 104.0, -104.0, 1e-8, -1e-8, 1e-30, -1e-30,
                        fi.tiny, -fi.tiny, fi.tiny / 3, -fi.tiny / 3, fi.smallest_subnormal,
                        -fi.smallest_subnormal, fi.max, -fi.max, 709.0, -709.0, 745.0, -745.0,
                        0.921875, -0.921875, 3.92, -3.92, 0.5, -0.5], np.float64)
    with np.errstate(over="ignore"):
        parts = [special.astype(dtype),
                 np.linspace(-30, 30, 200_001).astype(dtype),
                 np.linspace(-120, 120, 50_001).astype(dtype),
                 (rng.standard_normal(100_000) * 4).astype(dtype),
                 (rng.standard_normal(20_000) * 1e-6).astype(dtype),
                 np.geomspace(fi.smallest_subnormal, fi.max, 20_000).astype(dtype),
                 -np.geomspace(fi.smallest_subnormal, fi.max, 20_000).astype(dtype)]
    bits = np.uint32 if dtype == np.float32 else np.uint64
    info = np.iinfo(bits)
    parts.append(rng.integers(0, info.max, 200_000, dtype=bits, endpoint=True).view(dtype))
    x = np.concatenate(parts)
    return x[: len(x) - 3]   # not a multiple of 8: the vector tail runs too


def _compute(dtype_name):
    """{name: activate(x)} and the bias_activate epilogue, in this process."""
    dtype = np.dtype(dtype_name)
    x = _inputs(dtype)
    out = {"x": x}
    with np.errstate(all="ignore"):
        for name, act in ACTS.items():
            out[name] = fastconv.activate(x, act)
            # the im2col/separate epilogue: rows with a per-row bias
            rows = x[:70_007].reshape(7, 10_001).copy()
            bias = np.array([0.0, -0.0, 1.5, -2.25, np.inf, 1e-30, -7.0], dtype)
            from fastconv import _core
            _core.bias_activate(rows, 7, 10_001, bias, act._spec)
            out[name + "/bias"] = rows
    return out


@pytest.fixture(scope="module", params=["float32", "float64"])
def both(request, tmp_path_factory):
    dtype_name = request.param
    path = tmp_path_factory.mktemp("scalar") / f"{dtype_name}.npz"
    code = ("import numpy as np; from test_activation_simd import _compute; "
            "np.savez(%r, **_compute(%r))" % (str(path), dtype_name))
    run_python(["-c", code], env={"FASTCONV_DISABLE_SIMD": "1"}, check=True)
    scalar = dict(np.load(path))
    return dtype_name, _compute(dtype_name), scalar


def _ulp(a):
    return np.spacing(np.abs(a).astype(a.dtype))


def assert_close_f32(name, x, simd, scalar):
    nan_s, nan_v = np.isnan(scalar), np.isnan(simd)
    bad = np.flatnonzero(nan_s != nan_v)
    assert bad.size == 0, f"{name}: NaN mismatch at x={x[bad[:5]]}: scalar {scalar[bad[:5]]}, simd {simd[bad[:5]]}"
    ok = ~nan_s
    s, v, xx = scalar[ok], simd[ok], x[ok]
    inf = np.isinf(s) | np.isinf(v)
    assert np.array_equal(s[inf], v[inf]), f"{name}: infinity mismatch at x={xx[inf][s[inf] != v[inf]][:5]}"
    zero = (s == 0) & (v == 0)
    sb = np.signbit(s[zero]) != np.signbit(v[zero])
    assert not sb.any(), f"{name}: sign of zero differs at x={xx[zero][sb][:5]}"
    fin = ~inf
    s, v, xx = s[fin].astype(np.float64), v[fin].astype(np.float64), xx[fin].astype(np.float64)
    diff = np.abs(s - v)
    tol = np.maximum(4 * _ulp(scalar[ok][fin]).astype(np.float64), 1e-6 * np.abs(s))
    tol += 1e-40   # denormal results: a few units of the smallest denormal
    if name.split("/")[0] in CANCELS:
        tol += 2.4e-7 * np.abs(xx)
    bad = np.flatnonzero(diff > tol)
    assert bad.size == 0, (f"{name}: {bad.size} values off, e.g. x={xx[bad[:4]]} scalar={s[bad[:4]]} "
                           f"simd={v[bad[:4]]}")


def test_simd_matches_scalar(both):
    dtype_name, simd, scalar = both
    x = simd["x"]
    assert np.array_equal(x.view(np.uint8), scalar["x"].view(np.uint8))
    for key in simd:
        if key == "x":
            continue
        xin = x if "/" not in key else None
        if dtype_name == "float64":
            # transcendental kinds run the scalar code; the rest are exact IEEE ops
            a, b = simd[key].view(np.uint64), scalar[key].view(np.uint64)
            nan = np.isnan(simd[key]) & np.isnan(scalar[key])
            assert np.array_equal(a[~nan], b[~nan]), key
        else:
            if xin is None:   # the bias rows: compare against the biased input
                bias = np.array([0.0, -0.0, 1.5, -2.25, np.inf, 1e-30, -7.0], np.float32)
                xin = (x[:70_007].reshape(7, 10_001) + bias[:, None]).ravel()
            assert_close_f32(key, xin, simd[key].ravel(), scalar[key].ravel())


def test_special_values_f32():
    """The documented special cases, on the default (SIMD where available) path."""
    x = np.array([np.nan, -0.0, -np.inf, np.inf, -88.0], np.float32)
    with np.errstate(all="ignore"):
        r = fastconv.activate(x, "relu")
        assert np.isnan(r[0]) and r[1] == 0 and np.signbit(r[1])
        for name in ("silu", "gelu", "mish", "hardswish"):
            assert np.isnan(fastconv.activate(x, name)[2]), name
        assert np.isnan(fastconv.activate(x, "softsign")[2:4]).all()
        s = fastconv.activate(x, "sigmoid")
        assert s[2] == 0 and s[3] == 1 and 0 < s[4] < np.finfo(np.float32).tiny   # denormal kept
        for name in ("softplus", "tanh", "sigmoid"):
            assert not np.isnan(fastconv.activate(x[1:], name)).any(), name


def test_against_torch():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    fns = {
        "relu": F.relu, "relu6": F.relu6, "leaky_relu": lambda t: F.leaky_relu(t, 0.2),
        "elu": lambda t: F.elu(t, 1.3), "selu": F.selu, "sigmoid": torch.sigmoid,
        "hardsigmoid": F.hardsigmoid, "tanh": torch.tanh, "softplus": F.softplus,
        "softplus_b2": lambda t: F.softplus(t, 2.0, 10.0), "softsign": F.softsign,
        "silu": F.silu, "hardswish": F.hardswish, "gelu": F.gelu,
        "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"), "mish": F.mish,
    }
    rng = np.random.default_rng(7)
    x = np.concatenate([np.linspace(-30, 30, 100_001), rng.standard_normal(50_000) * 5,
                        [0.0, -0.0, np.nan]]).astype(np.float32)
    # (infinities are left to the scalar comparison: torch's own gelu(inf) is NaN)
    for name, fn in fns.items():
        with np.errstate(all="ignore"):
            ours = fastconv.activate(x, ACTS[name])
        ref = fn(torch.from_numpy(x.copy())).numpy()
        nan = np.isnan(ref)
        assert np.array_equal(nan, np.isnan(ours)), name
        d = np.abs(ours[~nan].astype(np.float64) - ref[~nan])
        # torch's own vector transcendentals are ~1e-6 relative (its tanh/erf/exp
        # differ from libm); the cancelling gelu tail is absolute.
        tol = 4e-6 * np.abs(ref[~nan]) + 1e-30 + (3e-7 * np.abs(x[~nan]) if name in CANCELS else 0)
        tol = np.where(np.isinf(ref[~nan]), 0, tol)
        with np.errstate(invalid="ignore"):
            bad = ~(d <= tol) & ~(ours[~nan] == ref[~nan])
        assert not bad.any(), f"{name}: x={x[~nan][bad][:4]} ours={ours[~nan][bad][:4]} torch={ref[~nan][bad][:4]}"


@pytest.mark.skipif(not fastconv.config.config()["cpu_avx512"],
                    reason="no AVX-512 on this CPU/build")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avx512_pass_equals_avx2_pass(dtype):
    """The activation pass of the AVX-512 kernel set (16-wide sigmoid and silu,
    the AVX2 loops for the rest) gives the AVX2 pass's bits, every tail length
    included, in activate and in the bias epilogue."""
    from fastconv import _core
    x = _inputs(dtype)
    before = fastconv.config.config()["kernels"]
    got = {}
    try:
        for isa in ("avx512", "avx2+fma"):
            assert _core._force_kernels(isa)
            with np.errstate(all="ignore"):
                for name, act in ACTS.items():
                    got[isa, name] = fastconv.activate(x, act)
                    for n in range(1, 34):   # every tail of a 16- and an 8-wide loop
                        got[isa, name, n] = fastconv.activate(x[-n:], act)
                    rows = x[:70_007].reshape(7, 10_001).copy()
                    bias = np.array([0.0, -0.0, 1.5, -2.25, np.inf, 1e-30, -7.0], dtype)
                    _core.bias_activate(rows, 7, 10_001, bias, act._spec)
                    got[isa, name, "bias"] = rows
    finally:
        _core._force_kernels(before)
    for key, a in got.items():
        if key[0] == "avx512":
            r = got[("avx2+fma",) + key[1:]]
            assert a.view(np.uint8).tobytes() == r.view(np.uint8).tobytes(), key
