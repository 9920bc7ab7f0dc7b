"""fastconv.activate / fastconv.Activation against the float64 reference and torch.

Tolerance (float32): |got - ref| <= 8 ulp * (|ref| + |x|) + tiny.  The |x|
term is the honest bound for formulas that cancel (gelu's 1 + erf, silu's
x / (1 + exp(-x)) ...) the way torch computes them; torch itself stays under
~3 ulp * (|ref| + |x|) on these inputs.  float64: 64 ulp likewise.
"""
import math
import os

import numpy as np
import pytest

import fastconv
from fastconv import Activation

import reference as R

DTYPES = [np.float32, np.float64]
ULPS = {np.dtype(np.float32): 8, np.dtype(np.float64): 64}

CASES = ([(n, {}) for n in R.CANONICAL] + [(a, {}) for a in sorted(R.ALIASES)]
         + R.PARAM_CASES)
IDS = [n + "".join("-%s=%s" % kv for kv in sorted(p.items())) for n, p in CASES]


def fc_activation(name, params):
    return Activation(name, **params) if params else name


def tol(ref, x, dtype):
    dtype = np.dtype(dtype)
    eps = np.finfo(dtype).eps
    with np.errstate(all="ignore"):
        return ULPS[dtype] * eps * (np.abs(ref) + np.abs(x)) + 16 * np.finfo(dtype).tiny


def wide_values(rng, dtype, n=4000):
    mag = 10.0 ** rng.uniform(-6, 4, n)
    special = [0.0, -0.0, 1e-6, -1e-6, 1e-3, -1e-3, 0.5, -0.5, 1, -1, 2, -2, 3, -3,
               2.9999, -2.9999, 3.0001, -3.0001, 6, -6, 5.9999, 6.0001,
               9.99, 10.0, 10.01, 19.99, 20.0, 20.01, 30, -30, 40, -40,
               88, -88, 88.7, -88.7, 89, -89, 100, -100, 103.9, -103.9, 700, -700, 710, -710,
               1e4, -1e4, 1e5, -1e5, 1e6, -1e6]
    v = np.concatenate([mag, -mag, rng.standard_normal(n) * 3, np.linspace(-12, 12, 2401),
                        special]).astype(dtype)
    return v


def check_ref(got, x, name, params, dtype, what=""):
    dtype = np.dtype(dtype)
    assert got.dtype == dtype and got.shape == x.shape
    ref = R.activation_ref(name, x.astype(np.float64), **params)
    g = got.astype(np.float64)
    assert np.array_equal(np.isnan(g), np.isnan(ref)), (
        "NaN positions differ at x=%r" % x[np.isnan(g) != np.isnan(ref)][:5])
    fin = np.isfinite(ref)
    assert np.array_equal(g[~fin], ref[~fin]) or np.isnan(ref[~fin]).all()
    with np.errstate(all="ignore"):
        err = np.abs(g - ref)
    t = tol(ref, x.astype(np.float64), dtype)
    bad = fin & ~(err <= t)
    if bad.any():
        i = np.argmax(np.where(bad, err / t, 0))
        raise AssertionError(
            "%s %s %s: %d bad; worst x=%r got %r want %r (err %.3g, tol %.3g)"
            % (name, params, what, bad.sum(), float(x.flat[i]), float(g.flat[i]),
               float(ref.flat[i]), err.flat[i], t.flat[i]))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_activate_vs_reference(rng, case, dtype):
    name, params = case
    x = wide_values(rng, dtype)
    x0 = x.copy()
    got = fastconv.activate(x, fc_activation(name, params))
    np.testing.assert_array_equal(x, x0)  # input untouched
    assert got is not x
    check_ref(got, x, name, params, dtype)
    # NaN propagates
    nan = np.array([np.nan, -np.nan, 1.0], dtype)
    r = fastconv.activate(nan, fc_activation(name, params))
    assert np.isnan(r[:2]).all() and not np.isnan(r[2])
    # the Activation object is callable the same way when it is one
    a = Activation(name, **params)
    np.testing.assert_array_equal(fastconv.activate(x, a), got)


def _limit(name, params, sign, dtype):
    """Mathematical limit of f at sign*inf, in dtype."""
    v = float(R.activation_ref(name, np.array([sign * 1e300]), **params)[0])
    if abs(v) > 1e299:
        v = math.copysign(math.inf, v)
    return np.dtype(dtype).type(v)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_activate_vs_torch(torch, rng, case, dtype):
    name, params = case
    dtype = np.dtype(dtype)
    fi = np.finfo(dtype)
    x = np.concatenate([
        wide_values(rng, dtype, 1000),
        np.array([fi.max, -fi.max, fi.max / 8, -fi.max / 8, 1e30, -1e30, fi.tiny, -fi.tiny,
                  fi.tiny / 4, -fi.tiny / 4, fi.smallest_subnormal, np.inf, -np.inf, np.nan],
                 dtype)]).astype(dtype)
    got = fastconv.activate(x, fc_activation(name, params))
    want = R.torch_activation(torch, name, torch.from_numpy(x.copy()), **params).numpy()
    ref = R.activation_ref(name, x.astype(np.float64), **params)
    g, wnt = got.astype(np.float64), want.astype(np.float64)
    x64 = x.astype(np.float64)
    problems = []
    for i in range(x.size):
        xi, gi, wi, ri = x64[i], g[i], wnt[i], ref[i]
        if np.isnan(xi):
            ok = np.isnan(gi)
        elif np.isinf(xi):
            if np.isnan(wi):
                # torch's NaN here is an artefact of its formula (inf/inf, -inf*0);
                # accept it or the mathematical limit
                lim = float(_limit(name, params, np.sign(xi), dtype))
                ok = np.isnan(gi) or gi == lim
            else:
                ok = gi == wi
        elif not np.isfinite(wi):
            # torch overflowed (e.g. hardswish(3e38)): torch's answer or the true one
            ok = (gi == wi) or (np.isnan(wi) and np.isnan(gi)) or (
                np.isfinite(ri) and abs(gi - ri) <= tol(ri, xi, dtype))
        else:
            t = float(tol(ri, xi, dtype))
            ok = np.isfinite(gi) and abs(gi - wi) <= 2 * t + abs(wi - ri) or (
                np.isfinite(ri) and abs(gi - ri) <= t)
            if not np.isfinite(ri) and gi == wi:
                ok = True
        if not ok:
            problems.append((float(x[i]), float(got[i]), float(want[i]), ri))
    assert not problems, "%s %s: %d mismatches vs torch (x, got, torch, ref64): %s" % (
        name, params, len(problems), problems[:8])
    # NaN positions equal to torch's for finite/NaN inputs
    fin_or_nan = ~np.isinf(x)
    assert np.array_equal(np.isnan(got[fin_or_nan]), np.isnan(want[fin_or_nan]))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_negative_zero_and_zero(dtype):
    z = np.array([0.0, -0.0], dtype)
    for name, params in CASES:
        got = fastconv.activate(z, fc_activation(name, params))
        ref = R.activation_ref(name, z.astype(np.float64), **params)
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=0, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["relu", "sigmoid", "gelu", "mish", "softplus", "hardswish"])
def test_in_place_and_out(rng, name, dtype):
    x = (rng.standard_normal((3, 5, 7)) * 4).astype(dtype)
    ref = fastconv.activate(x, name)
    y = x.copy()
    r = fastconv.activate(y, name, out=y)
    assert r is y
    np.testing.assert_array_equal(y, ref)
    out = np.full_like(x, np.nan)
    r = fastconv.activate(x, name, out=out)
    assert r is out
    np.testing.assert_array_equal(out, ref)
    check_ref(ref, x, name, {}, dtype)
    # large in-place (crosses any internal block/thread split)
    big = (rng.standard_normal(100003) * 5).astype(dtype)
    want = fastconv.activate(big, name)
    check_ref(want, big, name, {}, dtype)
    b2 = big.copy()
    assert fastconv.activate(b2, name, out=b2) is b2
    np.testing.assert_array_equal(b2, want)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_noncontiguous_input(rng, dtype):
    base = (rng.standard_normal((6, 8, 10)) * 3).astype(dtype)
    views = {
        "strided": base[::2, 1::3, ::2],
        "negative": base[::-1, :, ::-2],
        "fortran": np.asfortranarray(base),
        "transposed": base.transpose(2, 0, 1),
        "broadcast": np.broadcast_to(base[:1], (4, 8, 10)),
    }
    for vname, v in views.items():
        for name in ("elu", "silu", "tanh", "gelu"):
            got = fastconv.activate(v, name)
            assert got.shape == v.shape and got.dtype == dtype
            check_ref(got, np.ascontiguousarray(v), name, {}, dtype, what=vname)
            # with a C-contiguous out
            out = np.empty(v.shape, dtype)
            assert fastconv.activate(v, name, out=out) is out
            np.testing.assert_array_equal(out, got)


def test_shapes_and_empty(rng):
    for shape in [(), (0,), (1,), (7,), (2, 0, 3), (2, 3, 4, 5, 6)]:
        for dtype in DTYPES:
            x = np.asarray(rng.standard_normal(shape)).astype(dtype)
            got = fastconv.activate(x, "selu")
            assert got.shape == x.shape and got.dtype == dtype
            if x.size:
                check_ref(np.asarray(got), x, "selu", {}, dtype)


def test_overlapping_out(rng):
    """out overlapping x without being x: either correct or an error, never garbage."""
    buf = rng.standard_normal(101).astype(np.float64)
    x = buf[:-1].copy()
    want = R.activation_ref("tanh", x)
    src = buf[:-1]
    dst = buf[1:]
    try:
        r = fastconv.activate(src, "tanh", out=dst)
    except ValueError as e:
        assert "out" in str(e)
        return
    assert r is dst
    np.testing.assert_allclose(dst, want, rtol=1e-14, atol=1e-15)


# ---------------------------------------------------------------- errors

def test_activate_out_errors(rng):
    x = rng.standard_normal((4, 5)).astype(np.float32)
    with pytest.raises(ValueError, match=r"(?i)\bout\b"):
        fastconv.activate(x, "relu", out=np.empty((5, 4), np.float32))
    with pytest.raises(ValueError, match=r"(?i)\bout\b"):
        fastconv.activate(x, "relu", out=np.empty((20,), np.float32))
    with pytest.raises((TypeError, ValueError), match=r"(?i)\bout\b"):
        fastconv.activate(x, "relu", out=np.empty((4, 5), np.float64))
    with pytest.raises(ValueError, match=r"(?i)\bout\b"):
        fastconv.activate(x, "relu", out=np.empty((4, 10), np.float32)[:, ::2])
    ro = np.empty((4, 5), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"(?i)\bout\b"):
        fastconv.activate(x, "relu", out=ro)
    with pytest.raises((TypeError, ValueError), match=r"(?i)\bout\b"):
        fastconv.activate(x, "relu", out=[[0.0] * 5] * 4)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float16, np.complex64, np.bool_])
def test_activate_dtype_errors(dtype):
    x = np.ones((3, 3), dtype)
    with pytest.raises((TypeError, ValueError), match=r"(?i)float32|dtype"):
        fastconv.activate(x, "relu")


def test_activate_unknown_activation():
    x = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="bogus_act"):
        fastconv.activate(x, "bogus_act")
    with pytest.raises((TypeError, ValueError), match=r"(?i)activation"):
        fastconv.activate(x, 3)


# ---------------------------------------------------------------- Activation objects

def test_activations_tuple():
    acts = fastconv.ACTIVATIONS
    assert isinstance(acts, tuple)
    assert len(acts) == len(set(acts)) == 15
    expected = set(R.CANONICAL) - {"linear"}
    assert expected <= set(acts)
    assert ("linear" in acts) != ("identity" in acts)
    for n in acts:
        Activation(n)  # every canonical name constructs
    for alias, canon in R.ALIASES.items():
        if alias == "identity" and "identity" in acts:
            continue
        assert alias not in acts, alias


def test_activation_equality_and_hash():
    a = Activation("leaky_relu", negative_slope=0.2)
    assert a == Activation("leaky_relu", negative_slope=0.2)
    assert hash(a) == hash(Activation("leaky_relu", negative_slope=0.2))
    assert a != Activation("leaky_relu", negative_slope=0.3)
    assert a != Activation("leaky_relu")
    assert Activation("leaky_relu") == Activation("leaky_relu", negative_slope=0.01)
    assert Activation("relu") != Activation("relu6")
    assert Activation("gelu") == Activation("gelu", approximate="none")
    assert Activation("gelu") != Activation("gelu", approximate="tanh")
    assert Activation("softplus", beta=2.0) != Activation("softplus")
    assert Activation("elu", alpha=0.5) == Activation("elu", alpha=0.5)
    assert len({Activation("relu"), Activation("relu"), Activation("tanh")}) == 2


@pytest.mark.parametrize("alias", sorted(R.ALIASES))
def test_alias_equals_canonical(alias):
    canon = R.ALIASES[alias]
    assert Activation(alias) == Activation(canon)
    assert hash(Activation(alias)) == hash(Activation(canon))


def test_activation_repr():
    r = repr(Activation("leaky_relu", negative_slope=0.2))
    assert "leaky_relu" in r and "0.2" in r and "negative_slope" in r
    r = repr(Activation("gelu", approximate="tanh"))
    assert "gelu" in r and "tanh" in r
    r = repr(Activation("softplus", beta=2.0, threshold=10.0))
    assert "softplus" in r and "2" in r and "10" in r
    assert "relu" in repr(Activation("relu"))


def test_activation_unknown_name():
    with pytest.raises(ValueError, match="not_an_activation"):
        Activation("not_an_activation")
    with pytest.raises(ValueError, match="bogus"):
        fastconv.conv2d(np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 1, 1), np.float32),
                        activation="bogus")


@pytest.mark.parametrize("name,params,word", [
    ("relu", {"alpha": 1.0}, "alpha"),
    ("leaky_relu", {"alpha": 0.2}, "alpha"),
    ("leaky_relu", {"slope": 0.2}, "slope"),
    ("elu", {"negative_slope": 0.2}, "negative_slope"),
    ("gelu", {"beta": 1.0}, "beta"),
    ("softplus", {"alpha": 1.0}, "alpha"),
    ("sigmoid", {"beta": 1.0}, "beta"),
])
def test_activation_unknown_param(name, params, word):
    with pytest.raises((TypeError, ValueError), match=word):
        Activation(name, **params)


@pytest.mark.parametrize("name,params,word", [
    ("leaky_relu", {"negative_slope": "a"}, "negative_slope"),
    ("elu", {"alpha": None}, "alpha"),
    ("elu", {"alpha": [1.0]}, "alpha"),
    ("softplus", {"beta": "2"}, "beta"),
    ("gelu", {"approximate": "bogus"}, r"approximate|bogus"),
    ("gelu", {"approximate": 1}, r"approximate"),
])
def test_activation_bad_param_value(name, params, word):
    with pytest.raises((TypeError, ValueError), match=word):
        Activation(name, **params)


def test_activation_params_numpy_scalars():
    a = Activation("leaky_relu", negative_slope=np.float32(0.25))
    b = Activation("leaky_relu", negative_slope=0.25)
    x = np.linspace(-3, 3, 13).astype(np.float32)
    np.testing.assert_array_equal(fastconv.activate(x, a), fastconv.activate(x, b))
    c = Activation("elu", alpha=2)  # an int is a fine number
    np.testing.assert_allclose(fastconv.activate(x, c), R.activation_ref("elu", x, alpha=2.0),
                               rtol=1e-6, atol=1e-7)


def test_kind_numbers_match_the_c_enum():
    """activations.py's C kind numbers are fastconv.h's enum: every kind
    from 0 to FC_ACT_COUNT - 1 named once, each number the enum's entry of
    that name (a kind added on one side only, or renumbered, fails here)."""
    import re
    from fastconv import _core
    from fastconv import activations as A
    kinds = {name: kind for name, (kind, _) in A._SPECS.items()}
    kinds["gelu_tanh"] = A._GELU_TANH_KIND
    assert sorted(kinds.values()) == list(range(_core.ACT_COUNT))
    header = os.path.join(os.path.dirname(__file__), os.pardir, "src", "fastconv.h")
    if not os.path.exists(header):
        pytest.skip("src/fastconv.h is not beside these tests (not a source checkout)")
    text = open(header).read()
    body = text[text.index("FC_ACT_IDENTITY = 0"):text.index("FC_ACT_COUNT")]
    enum = [m.lower() for m in re.findall(r"FC_ACT_(\w+)", body)]
    assert enum == sorted(kinds, key=kinds.get)
