"""The per-call cache of conv2d (fastconv/_cache.py): correctness only (no timing here).

A repeated call reuses the validated plan; everything that depends on the
arrays themselves, and every parameter that validation distinguishes, must
still be honoured on the second call.
"""
import contextlib

import numpy as np
import pytest

import fastconv
from fastconv import _cache, _methods
from fastconv import conv as C
from reference import conv2d_act_ref


def _data(rng, xs=(1, 3, 12, 12), ws=(4, 3, 3, 3)):
    return (rng.standard_normal(xs).astype(np.float32),
            rng.standard_normal(ws).astype(np.float32),
            rng.standard_normal(ws[0]).astype(np.float32))


def _check(y, x, w, b=None, **kw):
    ref, scale = conv2d_act_ref(x, w, b, **kw)
    np.testing.assert_array_less(np.abs(y - ref), 1e-5 * scale + 1e-30)


def test_new_arrays_and_values_are_used():
    rng = np.random.default_rng(0)
    x, w, b = _data(rng)
    out = np.empty((1, 4, 10, 10), np.float32)
    for _ in range(3):   # same shapes every time: the cached plan
        x, w, b = _data(rng)
        fastconv.conv2d(x, w, b, activation="relu", out=out)
        _check(out, x, w, b, activation="relu")
        w[...] = rng.standard_normal(w.shape)   # in-place change of the weights
        b[...] = 0
        fastconv.conv2d(x, w, b, activation="relu", out=out)
        _check(out, x, w, b, activation="relu")
    y = fastconv.conv2d(x, w, None, activation="relu")   # bias dropped
    _check(y, x, w, None, activation="relu")


def test_parameters_are_part_of_the_key():
    rng = np.random.default_rng(1)
    x, w, b = _data(rng, (2, 3, 15, 15))
    for stride, padding, dilation, act in [(1, 0, 1, "relu"), (2, 0, 1, "relu"), (1, 1, 1, "relu"),
                                           (1, 1, 2, "relu"), (1, 1, 2, "silu"), ((1, 2), (0, 1), 1, None),
                                           (1, "same", 1, "tanh")]:
        for _ in range(2):
            y = fastconv.conv2d(x, w, b, stride, padding, dilation, activation=act)
            _check(y, x, w, b, stride=stride, padding=padding, dilation=dilation, activation=act)
    a1 = fastconv.Activation("leaky_relu", negative_slope=0.1)
    a2 = fastconv.Activation("leaky_relu", negative_slope=0.3)
    for a, slope in [(a1, 0.1), (a2, 0.3), (a1, 0.1)]:
        y = fastconv.conv2d(x, w, b, activation=a)
        _check(y, x, w, b, activation=("leaky_relu", {"negative_slope": slope}))
    y = fastconv.conv2d(x, w, b, pre_activation="relu")
    _check(y, x, w, b, pre_activation="relu")


def test_errors_still_raised_after_caching():
    rng = np.random.default_rng(2)
    x, w, b = _data(rng)
    fastconv.conv2d(x, w, b, stride=1, groups=1)   # cache stride=1
    with pytest.raises(TypeError, match="stride"):
        fastconv.conv2d(x, w, b, stride=True)
    with pytest.raises(TypeError, match="stride"):
        fastconv.conv2d(x, w, b, stride=1.0)
    with pytest.raises(TypeError, match="groups"):
        fastconv.conv2d(x, w, b, groups=1.0)
    out = np.empty((1, 4, 10, 10), np.float32)
    fastconv.conv2d(x, w, b, out=out)
    with pytest.raises(ValueError, match="read-only"):
        ro = np.empty_like(out)
        ro.flags.writeable = False
        fastconv.conv2d(x, w, b, out=ro)
    with pytest.raises(ValueError, match="C-contiguous"):
        fastconv.conv2d(x, w, b, out=np.empty((1, 4, 10, 20), np.float32)[..., ::2])
    with pytest.raises(ValueError, match="overlap"):
        big = np.zeros(4 * 100 + 3 * 144, np.float32)
        xo = big[:3 * 144].reshape(1, 3, 12, 12)
        xo[...] = x
        fastconv.conv2d(xo, w, b, out=big[100:500].reshape(1, 4, 10, 10))
    with pytest.raises(TypeError, match="dtype"):
        fastconv.conv2d(x, w, b, out=np.empty((1, 4, 10, 10), np.float64))
    with pytest.raises(ValueError, match="method"):
        fastconv.conv2d(x, w, b, method="nope")


def test_noncontiguous_and_unbatched_after_caching():
    rng = np.random.default_rng(3)
    x, w, b = _data(rng)
    fastconv.conv2d(x, w, b)
    xs = np.asfortranarray(x)
    y = fastconv.conv2d(xs, w, b)
    _check(y, x, w, b)
    ws = w.transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2)   # same values, other strides
    y = fastconv.conv2d(x, ws, b)
    _check(y, x, w, b)
    for _ in range(2):
        y = fastconv.conv2d(x[0], w, b, activation="relu")
        assert y.shape == (4, 10, 10)
        _check(y, x[0], w, b, activation="relu")
        out = np.empty((4, 10, 10), np.float32)
        assert fastconv.conv2d(x[0], w, b, activation="relu", out=out) is out
        _check(out, x[0], w, b, activation="relu")


@pytest.mark.parametrize("method", ["fused", "separate", "im2col", "auto"])
def test_every_method_through_the_cache(method):
    rng = np.random.default_rng(4)
    for _ in range(2):
        x, w, b = _data(rng, (2, 4, 9, 9), (6, 2, 3, 3))
        y = fastconv.conv2d(x, w, b, padding=1, groups=2, activation="gelu", method=method)
        _check(y, x, w, b, padding=1, groups=2, activation="gelu")


def test_cache_is_bounded():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((2, 1, 1, 1)).astype(np.float32)
    for i in range(_cache._CALL_CACHE_MAX + 5):
        fastconv.conv2d(np.zeros((1, 1, 1, i + 1), np.float32), w)
    assert len(C._CALL_CACHE) <= _cache._CALL_CACHE_MAX


# ---- NHWC through the Cython hot path (_core.fast_conv2d) ---------------------
# A repeated fused/auto NHWC call with a dense x, a dense HWIO weight (or a
# pack) and bias runs from its FastPlan: no _plan.  Everything the plan
# assumes about the arrays (dense in the caller's layout, aligned, out
# writeable and not overlapping) is checked on each call; the rest is in the key.

def _nhwc_data(rng, xs, ws, dtype=np.float32):
    return (rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype),
            rng.standard_normal(ws[3]).astype(dtype))


def _check_nhwc(y, x, w, b=None, dtype=np.float32, **kw):
    ref, scale = conv2d_act_ref(x, w, b, data_format="NHWC", **kw)
    assert y.shape == ref.shape
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    err = np.abs(y.astype(np.float64) - ref)
    assert np.all(err <= rtol * scale + 1e-30), float(np.max(err / (scale + 1e-30)))


def _hot(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, activation=None,
         pre_activation=None, method="auto", out=None, fast_math=False):
    """The Cython hot path's answer alone (None: the call is not served there)."""
    return C._fast_conv2d(C._CALL_CACHE, x, w, b, stride, padding, dilation, groups,
                          activation, pre_activation, method, "NHWC", out, fast_math)


@pytest.fixture(autouse=True)
def empty_fast_caches():
    """The per-call cache is bounded (cleared when full): each test starts it
    empty, so that what it cached is still there."""
    C._CALL_CACHE.clear()


@contextlib.contextmanager
def _no_full_path():
    """Inside the block, a call that reaches conv2d's validation fails."""
    def boom(*a, **k):
        raise AssertionError("conv2d's full path (_plan) was taken")
    with pytest.MonkeyPatch.context() as m:
        m.setattr(C, "_plan", boom)
        yield


# (x shape NHWC, w shape HWIO, parameters): the tiny seed layer, padding, a
# channels-last 3x3 of 16 channels, stride, dilation, groups (not depthwise),
# 1x1, pre-activation (the kernels' pre-activated copy), a batch, unbatched
NHWC_CASES = [
    ((1, 30, 30, 3), (3, 3, 3, 3), dict(activation="relu")),
    ((1, 30, 30, 3), (3, 3, 3, 3), dict(padding=1, activation="relu")),
    ((1, 9, 11, 16), (3, 3, 16, 24), dict(padding=1, activation="silu")),
    ((2, 10, 12, 8), (3, 3, 8, 12), dict(stride=2, padding=1)),
    ((1, 12, 13, 8), (3, 3, 8, 12), dict(padding=2, dilation=2, activation="tanh")),
    ((1, 10, 10, 8), (3, 3, 4, 12), dict(padding=1, groups=2, activation="relu")),
    ((1, 7, 7, 64), (1, 1, 64, 70), dict()),
    ((1, 8, 9, 5), (3, 3, 5, 7), dict(padding=1, pre_activation="relu", activation="gelu")),
    ((3, 6, 5, 4), (3, 3, 4, 6), dict(padding=(0, 1), activation="relu")),
    ((9, 11, 16), (3, 3, 16, 8), dict(padding=1, activation="relu")),
]


@pytest.mark.parametrize("case", range(len(NHWC_CASES)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("method", ["auto", "fused"])
def test_nhwc_cached_calls_match_the_first_and_the_reference(rng, case, dtype, packed,
                                                              method):
    xs, ws, kw = NHWC_CASES[case]
    x, w, b = _nhwc_data(rng, xs, ws, dtype)
    weight = fastconv.pack_weight(w, kw.get("groups", 1), data_format="NHWC") if packed else w
    for bias in (b, None):
        first = fastconv.conv2d(x, weight, bias, method=method, data_format="NHWC", **kw)
        _check_nhwc(first, x, w, bias, dtype, **kw)
        out = np.full(first.shape, np.nan, dtype)
        assert fastconv.conv2d(x, weight, bias, method=method, data_format="NHWC", out=out,
                               **kw) is out
        assert _hot(x, weight, bias, method=method, **kw) is not None   # cached
        with _no_full_path():
            for _ in range(2):
                y = fastconv.conv2d(x, weight, bias, method=method, data_format="NHWC", **kw)
                assert y.shape == first.shape and y.dtype == dtype
                np.testing.assert_array_equal(y, first)   # the same kernels, the same bits
                out[...] = np.nan
                assert fastconv.conv2d(x, weight, bias, method=method, data_format="NHWC",
                                       out=out, **kw) is out
                np.testing.assert_array_equal(out, first)


def test_nhwc_new_values_are_used(rng):
    """In-place changes of x, weight and bias, and new arrays of the same shapes."""
    x, w, b = _nhwc_data(rng, (1, 30, 30, 3), (3, 3, 3, 3))
    out = np.empty((1, 28, 28, 3), np.float32)
    fastconv.conv2d(x, w, b, activation="relu", data_format="NHWC", out=out)
    fastconv.conv2d(x, w, b, activation="relu", data_format="NHWC")
    with _no_full_path():
        for _ in range(3):
            before = fastconv.conv2d(x, w, b, activation="relu", data_format="NHWC")
            w[...] = rng.standard_normal(w.shape)
            y = fastconv.conv2d(x, w, b, activation="relu", data_format="NHWC")
            assert not np.array_equal(y, before)
            _check_nhwc(y, x, w, b, activation="relu")
            x[...] = rng.standard_normal(x.shape)
            b[...] = rng.standard_normal(b.shape)
            fastconv.conv2d(x, w, b, activation="relu", data_format="NHWC", out=out)
            _check_nhwc(out, x, w, b, activation="relu")
            x, w, b = _nhwc_data(rng, (1, 30, 30, 3), (3, 3, 3, 3))
            fastconv.conv2d(x, w, b, activation="relu", data_format="NHWC", out=out)
            _check_nhwc(out, x, w, b, activation="relu")
    # a pack holds its own copy: repacked into (out=), the call sees the new values
    pw = fastconv.pack_weight(w, data_format="NHWC")
    fastconv.conv2d(x, pw, b, data_format="NHWC")
    with _no_full_path():
        w[...] = rng.standard_normal(w.shape)
        _check_nhwc(fastconv.conv2d(x, pw, b, data_format="NHWC"), x, pw.weight.transpose(
            2, 3, 1, 0), b)
        fastconv.pack_weight(w, data_format="NHWC", out=pw)
        _check_nhwc(fastconv.conv2d(x, pw, b, data_format="NHWC"), x, w, b)


def test_nhwc_and_nchw_plans_are_told_apart(rng):
    """The same arrays, parameter objects and shapes read as NCHW and as NHWC:
    x (1, 3, 8, 3) is C=3, 8x3 in one layout and 3x8, C=3 in the other."""
    x, w, b = _nhwc_data(rng, (1, 3, 8, 3), (3, 3, 3, 3))
    for _ in range(3):
        for df in ("NCHW", "NHWC", "NHWC", "NCHW"):
            y = fastconv.conv2d(x, w, b, activation="relu", data_format=df)
            ref, scale = conv2d_act_ref(x, w, b, activation="relu", data_format=df)
            assert y.shape == ref.shape, df
            np.testing.assert_array_less(np.abs(y - ref), 2e-5 * scale + 1e-30)


def test_nhwc_key_tells_calls_apart(rng):
    """Shapes, dtypes, parameters, activations, bias, out: alternating calls
    never run another call's plan."""
    x, w, b = _nhwc_data(rng, (2, 12, 12, 6), (3, 3, 6, 4))
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    a1 = fastconv.Activation("leaky_relu", negative_slope=0.1)
    a2 = fastconv.Activation("leaky_relu", negative_slope=0.3)
    calls = [
        (x, w, b, {}),
        (x64, w64, b64, {}),
        (x[:1].copy(), w, b, {}),
        (x[:, :10].copy(), w, b, {}),
        (x, w, None, {}),
        (x, w, b, dict(stride=2)),
        (x, w, b, dict(stride=(1, 2))),
        (x, w, b, dict(padding=1)),
        (x, w, b, dict(padding="same")),
        (x, w, b, dict(padding=((0, 1), (2, 0)))),
        (x, w, b, dict(dilation=2)),
        (x, w[:, :, :3].copy(), b, dict(groups=2)),
        (x, w[:2, :2].copy(), b, {}),
        (x, w, b, dict(activation="relu")),
        (x, w, b, dict(activation=a1)),
        (x, w, b, dict(activation=a2)),
        (x, w, b, dict(pre_activation="relu")),
        (x, w, b, dict(activation="silu", pre_activation=a1)),
    ]

    def act_ref(a):
        return ("leaky_relu", {"negative_slope": a.params["negative_slope"]}) \
            if isinstance(a, fastconv.Activation) else a
    for _ in range(2):
        for xi, wi, bi, kw in calls:
            ref_kw = {k: act_ref(v) for k, v in kw.items()}
            dt = xi.dtype.type
            y = fastconv.conv2d(xi, wi, bi, data_format="NHWC", **kw)
            _check_nhwc(y, xi, wi, bi, dt, **ref_kw)
            out = np.empty_like(y)
            assert fastconv.conv2d(xi, wi, bi, data_format="NHWC", out=out, **kw) is out
            _check_nhwc(out, xi, wi, bi, dt, **ref_kw)


def test_nhwc_strided_arrays_fall_back(rng):
    """After a dense call cached the plan, arrays of the same shapes that are
    not dense in the caller's layout take the full path (and are right)."""
    n, h, w_, c, o = 2, 9, 11, 12, 20
    big = rng.standard_normal((n, 2 * h, w_ + 3, c + 5)).astype(np.float32)
    x = np.ascontiguousarray(big[:, :h, :w_, :c])
    w = rng.standard_normal((3, 3, c, o)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    kw = dict(padding=1, activation="relu")
    fastconv.conv2d(x, w, b, data_format="NHWC", **kw)
    assert _hot(x, w, b, **kw) is not None
    raw = np.zeros(x.nbytes + 1, np.uint8)
    xu = np.ndarray(x.shape, np.float32, buffer=raw[1:])   # dense, misaligned
    xu[...] = x
    views = {
        "sliced x": (big[:, ::2, 1:w_ + 1, 2:c + 2], w, b),
        "reversed x": (x[:, ::-1, ::-1, ::-1], w, b),
        "NCHW array seen as NHWC": (np.ascontiguousarray(x.transpose(0, 3, 1, 2)).transpose(
            0, 2, 3, 1), w, b),
        "Fortran-order x": (np.asfortranarray(x), w, b),
        "misaligned x": (xu, w, b),
        "OIHW weight seen as HWIO": (x, np.ascontiguousarray(w.transpose(3, 2, 0, 1)).transpose(
            2, 3, 1, 0), b),
        "Fortran-order weight": (x, np.asfortranarray(w), b),
        "strided bias": (x, w, np.repeat(b, 2)[::2]),
    }
    for what, (xi, wi, bi) in views.items():
        assert xi.shape == x.shape and wi.shape == w.shape and bi.shape == b.shape
        assert _hot(xi, wi, bi, **kw) is None, what
        for _ in range(2):
            y = fastconv.conv2d(xi, wi, bi, data_format="NHWC", **kw)
            _check_nhwc(y, xi, wi, bi, **kw)


def test_nhwc_errors_on_a_cached_call(rng):
    x, w, b = _nhwc_data(rng, (1, 12, 12, 3), (3, 3, 3, 4))
    out = np.empty((1, 10, 10, 4), np.float32)
    for _ in range(2):
        fastconv.conv2d(x, w, b, data_format="NHWC", out=out)
        fastconv.conv2d(x, w, b, data_format="NHWC")
    assert _hot(x, w, b, out=out) is out
    with pytest.raises(ValueError, match=r"out has shape \(1, 4, 10, 10\), expected "
                                         r"\(1, 10, 10, 4\)"):
        fastconv.conv2d(x, w, b, data_format="NHWC", out=np.empty((1, 4, 10, 10), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        fastconv.conv2d(x, w, b, data_format="NHWC", out=np.empty(out.shape, np.float64))
    ro = np.empty_like(out)
    ro.flags.writeable = False
    for _ in range(2):   # the plan found by its key, then by _LastCall
        with pytest.raises(ValueError, match="conv2d: out is read-only"):
            fastconv.conv2d(x, w, b, data_format="NHWC", out=ro)
        with pytest.raises(ValueError, match="conv2d: out must be C-contiguous"):
            fastconv.conv2d(x, w, b, data_format="NHWC",
                            out=np.empty((1, 10, 10, 8), np.float32)[..., ::2])
    mem = np.zeros(x.size + out.size, np.float32)
    xo = mem[:x.size].reshape(x.shape)
    xo[...] = x
    fastconv.conv2d(xo, w, b, data_format="NHWC", out=out)   # cached for xo's shapes
    for lo in (0, x.size - 1, x.size // 2):
        with pytest.raises(ValueError, match="conv2d: out must not overlap the input, "
                                             "weight or bias"):
            fastconv.conv2d(xo, w, b, data_format="NHWC",
                            out=mem[lo:lo + out.size].reshape(out.shape))
    wb = np.zeros(w.size + out.size, np.float32)
    wo = wb[:w.size].reshape(w.shape)
    wo[...] = w
    with pytest.raises(ValueError, match="overlap"):
        fastconv.conv2d(x, wo, b, data_format="NHWC", out=wb[1:1 + out.size].reshape(out.shape))
    assert not mem[x.size:].any()   # nothing written by the refused calls


def test_nhwc_unbatched(rng):
    x, w, b = _nhwc_data(rng, (9, 11, 6), (3, 3, 6, 5))
    for packed in (False, True):
        wt = fastconv.pack_weight(w, data_format="NHWC") if packed else w
        first = fastconv.conv2d(x, wt, b, padding=1, activation="relu", data_format="NHWC")
        assert first.shape == (9, 11, 5)
        out = np.empty((9, 11, 5), np.float32)
        fastconv.conv2d(x, wt, b, padding=1, activation="relu", data_format="NHWC", out=out)
        with _no_full_path():
            y = fastconv.conv2d(x, wt, b, padding=1, activation="relu", data_format="NHWC")
            assert y.shape == (9, 11, 5)
            np.testing.assert_array_equal(y, first)
            _check_nhwc(y, x, w, b, padding=1, activation="relu")
            out[...] = 0
            assert fastconv.conv2d(x, wt, b, padding=1, activation="relu", data_format="NHWC",
                                   out=out) is out
            np.testing.assert_array_equal(out, first)
        # the batched call of one image is another plan, and agrees
        y4 = fastconv.conv2d(x[None], wt, b, padding=1, activation="relu", data_format="NHWC")
        assert y4.shape == (1, 9, 11, 5)
        np.testing.assert_array_equal(y4[0], first)


def test_nhwc_calls_through_transposed_copies_are_not_cached(rng, monkeypatch):
    """Depthwise NHWC that the channels-last kernel does not take (here 3
    float32 channels: under its 16 bytes) runs the NCHW code on copies
    (_nhwc_via_nchw): never served by the hot path, whose kernels would get the
    caller's arrays; the kernel's own calls (8 channels) are.  The routing is
    _nhwc_fused_in_place's, read by _nhwc_fused and the cache alike."""
    for c, cached in ((3, False), (8, True)):
        x, _, b = _nhwc_data(rng, (1, 10, 10, c), (3, 3, 1, c))
        w = rng.standard_normal((3, 3, 1, c)).astype(np.float32)
        for weight in (w, fastconv.pack_weight(w, c, data_format="NHWC")):
            for _ in range(2):
                y = fastconv.conv2d(x, weight, b, padding=1, groups=c, activation="relu",
                                    data_format="NHWC")
                _check_nhwc(y, x, w, b, padding=1, groups=c, activation="relu")
            hot = _hot(x, weight, b, padding=1, groups=c, activation="relu")
            assert (hot is not None) == cached
            if cached:
                _check_nhwc(hot, x, w, b, padding=1, groups=c, activation="relu")
    # any call the predicate sends through copies is left alone
    x2, w2, b2 = _nhwc_data(rng, (1, 10, 10, 4), (3, 3, 4, 6))
    monkeypatch.setattr(_methods, "_nhwc_fused_in_place", lambda p: False)
    for _ in range(2):
        _check_nhwc(fastconv.conv2d(x2, w2, b2, padding=1, data_format="NHWC"), x2, w2, b2,
                    padding=1)
    assert _hot(x2, w2, b2, padding=1) is None
    monkeypatch.undo()
    fastconv.conv2d(x2, w2, b2, padding=1, data_format="NHWC")
    assert _hot(x2, w2, b2, padding=1) is not None


@pytest.mark.parametrize("method", ["separate", "im2col", "winograd"])
def test_nhwc_other_methods_are_not_cached(rng, method):
    x, w, b = _nhwc_data(rng, (1, 10, 10, 4), (3, 3, 4, 6))
    for _ in range(2):
        y = fastconv.conv2d(x, w, b, padding=1, activation="relu", method=method,
                            data_format="NHWC")
        ref, scale = conv2d_act_ref(x, w, b, padding=1, activation="relu", data_format="NHWC")
        np.testing.assert_array_less(np.abs(y - ref), 1e-4 * scale + 1e-30)
    assert _hot(x, w, b, padding=1, activation="relu", method=method) is None


def test_nhwc_fast_math_caches_only_direct_calls(rng):
    """Under fast math "auto" is Winograd where it pays (never in the hot
    path's cache) and direct elsewhere (in the fast-math cache only)."""
    x, w, b = _nhwc_data(rng, (1, 64, 64, 32), (3, 3, 32, 32))      # Winograd pays
    xs, ws, bs = _nhwc_data(rng, (1, 8, 8, 8), (3, 3, 8, 8))         # 8 channels: direct
    assert fastconv.winograd_pays(x.shape, w.shape, padding=1, packed=False, data_format="NHWC")
    assert not fastconv.winograd_pays(xs.shape, ws.shape, padding=1, packed=False,
                                      data_format="NHWC")
    fused = fastconv.conv2d(x, w, b, padding=1, method="fused", data_format="NHWC")
    wino = fastconv.conv2d(x, w, b, padding=1, method="winograd", data_format="NHWC")
    with fastconv.fast_math():
        for _ in range(2):
            np.testing.assert_array_equal(
                fastconv.conv2d(x, w, b, padding=1, data_format="NHWC"), wino)
            small = fastconv.conv2d(xs, ws, bs, padding=1, data_format="NHWC")
        assert _hot(x, w, b, padding=1, fast_math=True) is None
        assert _hot(xs, ws, bs, padding=1, fast_math=True) is not None
    _check_nhwc(small, xs, ws, bs, padding=1)
    for _ in range(2):   # fast math off: the direct path's bits, from the plain cache
        np.testing.assert_array_equal(fastconv.conv2d(x, w, b, padding=1, data_format="NHWC"),
                                      fused)
    assert _hot(x, w, b, padding=1) is not None
