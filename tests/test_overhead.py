"""The per-call plan cache of conv2d: correctness only (no timing here).

A repeated call reuses the validated plan; everything that depends on the
arrays themselves, and every parameter that validation distinguishes, must
still be honoured on the second call.
"""
import numpy as np
import pytest

import fastconv
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
    for i in range(C._PLAN_CACHE_MAX + 5):
        fastconv.conv2d(np.zeros((1, 1, 1, i + 1), np.float32), w)
    assert len(C._PLAN_CACHE) <= C._PLAN_CACHE_MAX
