"""fastconv.conv2d against the float64 NumPy reference (and torch).

Tolerance: a correct float32 result obeys |got - ref| <= 1e-4 * tol_scale,
float64 |got - ref| <= 1e-10 * tol_scale, where tol_scale (see
reference.conv2d_act_ref) is |ref| + sum |w||x| + |bias|, propagated through
the activation with its Lipschitz bound.  Any summation order gives an error
below n*eps*tol_scale, n = Cin/groups*KH*KW, which for our sizes is far under
the bound, so the check is honest, not flaky.
"""
import numpy as np
import pytest

import fastconv
from fastconv import Activation

import reference as R
from reference import conv2d_act_ref

METHODS = ["fused", "separate", "im2col", "auto"]
DTYPES = [np.float32, np.float64]
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def fc_act(spec):
    """(name, params) / name / None -> what fastconv.conv2d accepts."""
    if spec is None or isinstance(spec, str):
        return spec
    name, params = spec
    return Activation(name, **params)


def make(rng, dtype, N, C, H, W, Cout, G, KH, KW, bias=True, data_format="NCHW",
         unbatched=False):
    """Fresh normal random x, weight, bias for one configuration."""
    dtype = np.dtype(dtype)
    if data_format == "NCHW":
        xs = (C, H, W) if unbatched else (N, C, H, W)
        ws = (Cout, C // G, KH, KW)
    else:
        xs = (H, W, C) if unbatched else (N, H, W, C)
        ws = (KH, KW, C // G, Cout)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(Cout).astype(dtype) if bias else None
    return x, w, b


def assert_close(got, ref, tol_scale, dtype, what=""):
    dtype = np.dtype(dtype)
    assert isinstance(got, np.ndarray), type(got)
    assert got.dtype == dtype, (got.dtype, dtype)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    if got.size == 0:
        return
    got64 = got.astype(np.float64)
    assert np.array_equal(np.isnan(got64), np.isnan(ref)), "NaN positions differ " + what
    ok = ~np.isnan(ref)
    err = np.abs(got64[ok] - ref[ok])
    tol = RTOL[dtype] * tol_scale[ok] + np.finfo(dtype).tiny
    bad = ~(err <= tol)
    if bad.any():
        idx = np.argmax(np.where(bad, err / tol, 0))
        flat_idx = np.flatnonzero(ok)[idx]
        pos = np.unravel_index(flat_idx, ref.shape)
        raise AssertionError(
            "%s: %d/%d elements off; worst at %s: got %r, expected %r, err %.3g > tol %.3g "
            "(rtol %g)" % (what, int(bad.sum()), err.size, tuple(int(i) for i in pos),
                           float(got64[pos]), float(ref[pos]), err[idx], tol[idx],
                           RTOL[dtype]))


def run_and_check(method, x, w, b, stride=1, padding=0, dilation=1, groups=1,
                  activation=None, pre_activation=None, data_format="NCHW", what=""):
    x0, w0 = x.copy(), w.copy()
    b0 = None if b is None else b.copy()
    got = fastconv.conv2d(x, w, b, stride, padding, dilation, groups,
                          activation=fc_act(activation), pre_activation=fc_act(pre_activation),
                          method=method, data_format=data_format)
    ref, scale = conv2d_act_ref(x, w, b, stride, padding, dilation, groups,
                                activation=activation, pre_activation=pre_activation,
                                data_format=data_format)
    assert_close(got, ref, scale, x.dtype, what="method=%s %s" % (method, what))
    # inputs must never be modified
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)
    if b is not None:
        np.testing.assert_array_equal(b, b0)
    return got


# --------------------------------------------------------------------------
# (a) every activation x method x dtype x pre/post on mid shapes
# --------------------------------------------------------------------------

ACT_CASES = [(n, {}) for n in R.CANONICAL] + R.PARAM_CASES
ACT_IDS = [n + ("" if not p else "-" + "-".join("%s=%s" % kv for kv in sorted(p.items())))
           for n, p in ACT_CASES]

MID_SHAPES = [
    # N, C, H, W, Cout, G, KH, KW, stride, padding, dilation
    dict(N=2, C=6, H=11, W=11, Cout=8, G=2, KH=3, KW=3, stride=1, padding=1, dilation=1),
    dict(N=1, C=4, H=9, W=13, Cout=6, G=1, KH=5, KW=2, stride=(2, 1),
         padding=((2, 0), (1, 3)), dilation=(1, 2)),
    dict(N=1, C=5, H=8, W=7, Cout=10, G=5, KH=3, KW=3, stride=2, padding=(1, 2), dilation=1),
]


def _as_param(spec):
    name, params = spec
    return name if not params else (name, params)


@pytest.mark.parametrize("where", ["post", "pre"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("act", ACT_CASES, ids=ACT_IDS)
def test_activation_grid(rng, act, method, dtype, where):
    spec = _as_param(act)
    for i, s in enumerate(MID_SHAPES):
        x, w, b = make(rng, dtype, s["N"], s["C"], s["H"], s["W"], s["Cout"], s["G"],
                       s["KH"], s["KW"], bias=(i != 1))
        # scale the data so that activations see their interesting range
        # (saturation, kinks at 0/+-3/6, softplus threshold)
        x *= dtype(1.5)
        kw = dict(activation=spec) if where == "post" else dict(pre_activation=spec)
        run_and_check(method, x, w, b, s["stride"], s["padding"], s["dilation"], s["G"],
                      what="shape #%d %s=%s" % (i, where, act), **kw)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
def test_pre_and_post_activation_together(rng, method, dtype):
    x, w, b = make(rng, dtype, 2, 4, 10, 9, 6, 2, 3, 3)
    run_and_check(method, x, w, b, 1, ((2, 1), (0, 3)), 1, 2,
                  activation=("gelu", {"approximate": "tanh"}),
                  pre_activation=("leaky_relu", {"negative_slope": 0.2}))
    run_and_check(method, x, w, b, 2, "valid", 1, 2, activation="silu", pre_activation="elu")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", sorted(R.ALIASES))
def test_activation_aliases_as_strings(rng, method, name):
    x, w, b = make(rng, np.float32, 1, 3, 7, 7, 4, 1, 3, 3)
    x *= np.float32(2)
    run_and_check(method, x, w, b, padding=1, activation=name)
    run_and_check(method, x, w, b, padding=1, pre_activation=name)
    # and as Activation objects
    run_and_check(method, x, w, b, padding=1, activation=(name, {}))
    got_obj = fastconv.conv2d(x, w, b, padding=1, activation=Activation(name), method=method)
    got_str = fastconv.conv2d(x, w, b, padding=1, activation=name, method=method)
    np.testing.assert_array_equal(got_obj, got_str)


@pytest.mark.parametrize("method", METHODS)
def test_linear_activation_equals_none(rng, method):
    x, w, b = make(rng, np.float64, 2, 3, 8, 8, 4, 1, 3, 3)
    a = fastconv.conv2d(x, w, b, padding=1, method=method)
    for lin in ("linear", "identity", Activation("linear")):
        c = fastconv.conv2d(x, w, b, padding=1, method=method, activation=lin,
                            pre_activation=lin)
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------
# (b) shape grid x methods, with relu
# --------------------------------------------------------------------------

def C(N=1, C=3, H=9, W=9, Cout=4, G=1, KH=3, KW=3, stride=1, padding=0, dilation=1,
      bias=True, id=None):
    return pytest.param(dict(N=N, C=C, H=H, W=W, Cout=Cout, G=G, KH=KH, KW=KW, stride=stride,
                             padding=padding, dilation=dilation, bias=bias), id=id)


SHAPES = [
    C(KH=1, KW=1, id="k1x1"),
    C(KH=1, KW=1, stride=2, H=10, W=11, id="k1x1-s2"),
    C(KH=2, KW=2, id="k2x2"),
    C(id="k3x3"),
    C(KH=4, KW=4, H=10, W=12, id="k4x4"),
    C(KH=5, KW=5, padding=2, id="k5x5-p2"),
    C(KH=6, KW=6, H=12, W=11, padding=(3, 2), id="k6x6-p32"),
    C(KH=7, KW=7, H=13, W=13, padding=3, C=2, id="k7x7-p3"),
    C(KH=1, KW=3, padding=(0, 1), id="k1x3"),
    C(KH=3, KW=1, padding=(1, 0), id="k3x1"),
    C(KH=5, KW=2, H=11, W=8, id="k5x2"),
    C(KH=2, KW=7, H=6, W=15, padding=((0, 1), (3, 3)), id="k2x7-asym"),
    C(stride=2, id="s2"),
    C(stride=3, H=14, W=13, padding=1, id="s3-p1"),
    C(stride=(1, 3), H=10, W=17, id="s1x3"),
    C(stride=(3, 2), KH=2, KW=5, H=16, W=15, id="s3x2-k2x5"),
    C(dilation=2, H=11, W=11, id="d2"),
    C(dilation=3, H=12, W=14, padding=3, id="d3-p3"),
    C(dilation=(2, 1), stride=(1, 2), padding=(2, 1), id="d2x1"),
    C(dilation=(1, 3), KH=2, KW=3, H=8, W=13, id="d1x3"),
    C(dilation=2, stride=2, KH=3, KW=2, H=15, W=12, padding=((1, 0), (2, 1)), id="d2-s2-asym"),
    C(padding=((0, 2), (3, 1)), id="pad-asym"),
    C(padding=((4, 0), (0, 4)), id="pad-one-sided"),
    C(padding=5, H=4, W=5, id="pad-larger-than-kernel"),
    C(W=2, KH=1, KW=3, dilation=(1, 3), padding=((0, 0), (5, 0)), id="left-pad-beyond-kernel"),
    C(H=2, KH=3, KW=1, dilation=(3, 1), padding=((5, 0), (0, 0)), id="top-pad-beyond-kernel"),
    C(padding="same", id="same"),
    C(padding="same", KH=4, KW=2, dilation=(1, 2), id="same-even-k"),
    C(padding="same", KH=5, KW=3, dilation=3, H=7, W=10, id="same-d3"),
    C(padding="valid", KH=2, KW=3, id="valid"),
    C(C=4, Cout=6, G=2, id="g2"),
    C(C=6, Cout=9, G=3, stride=2, padding=1, id="g3-s2"),
    C(C=4, Cout=4, G=4, padding=1, id="depthwise"),
    C(C=5, Cout=10, G=5, padding=1, stride=2, id="depthwise-mult2"),
    C(C=8, Cout=8, G=8, KH=5, KW=5, padding=2, dilation=1, id="depthwise-k5"),
    C(C=6, Cout=2, G=2, KH=1, KW=1, id="g2-pointwise"),
    C(N=0, id="batch0"),
    C(N=3, id="batch3"),
    C(N=3, C=2, Cout=3, H=5, W=6, bias=False, id="batch3-nobias"),
    C(H=1, W=1, KH=1, KW=1, id="1x1-image"),
    C(H=1, W=17, KH=1, KW=3, id="one-row"),
    C(H=19, W=1, KH=4, KW=1, stride=2, id="one-col"),
    C(H=3, W=3, id="out-1x1"),
    C(H=2, W=2, padding=1, stride=5, id="stride-larger-than-image"),
    C(C=1, Cout=1, H=7, W=5, id="single-channel"),
    C(C=33, Cout=17, H=13, W=11, id="odd-channels"),
    C(N=2, C=17, Cout=65, H=23, W=29, padding=1, id="wide-cout"),
    C(N=2, C=64, Cout=96, H=24, W=24, padding=1, id="large"),
    C(N=1, C=3, Cout=8, H=37, W=41, KH=7, KW=7, stride=2, padding=3, id="stem-7x7-s2"),
    C(N=2, C=16, Cout=16, G=16, H=33, W=31, padding=1, bias=False, id="depthwise-large"),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cfg", SHAPES)
def test_shape_grid(rng, cfg, method, dtype):
    c = cfg
    x, w, b = make(rng, dtype, c["N"], c["C"], c["H"], c["W"], c["Cout"], c["G"],
                   c["KH"], c["KW"], bias=c["bias"])
    run_and_check(method, x, w, b, c["stride"], c["padding"], c["dilation"], c["G"],
                  activation="relu")
    # also without activation, and with relu as a pre-activation
    run_and_check(method, x, w, b, c["stride"], c["padding"], c["dilation"], c["G"])
    run_and_check(method, x, w, b, c["stride"], c["padding"], c["dilation"], c["G"],
                  pre_activation="relu")


@pytest.mark.parametrize("method", METHODS)
def test_batch0_shape(rng, method):
    for dtype in DTYPES:
        x = np.zeros((0, 3, 10, 9), dtype)
        w = rng.standard_normal((5, 3, 3, 2)).astype(dtype)
        y = fastconv.conv2d(x, w, stride=2, padding=1, method=method, activation="relu")
        assert y.shape == (0, 5, 5, 5) and y.dtype == dtype
        x = np.zeros((0, 10, 9, 3), dtype)
        y = fastconv.conv2d(x, np.ascontiguousarray(w.transpose(2, 3, 1, 0)), stride=2,
                            padding=1, method=method, data_format="NHWC")
        assert y.shape == (0, 5, 5, 5) and y.dtype == dtype


@pytest.mark.parametrize("method", METHODS)
def test_stride_and_dilation_int_equals_pair(rng, method):
    x, w, b = make(rng, np.float64, 1, 2, 12, 12, 3, 1, 3, 3)
    a = fastconv.conv2d(x, w, b, 2, 1, 2, method=method)
    c = fastconv.conv2d(x, w, b, (2, 2), (1, 1), (2, 2), method=method)
    d = fastconv.conv2d(x, w, b, [2, 2], ((1, 1), (1, 1)), [2, 2], method=method)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(a, d)


@pytest.mark.parametrize("method", METHODS)
def test_numpy_integer_params(rng, method):
    x, w, b = make(rng, np.float64, 1, 2, 9, 9, 2, 1, 3, 3)
    got = fastconv.conv2d(x, w, b, np.int64(2), np.int32(1), np.int64(1), np.int64(1),
                          method=method)
    ref, scale = conv2d_act_ref(x, w, b, 2, 1, 1, 1)
    assert_close(got, ref, scale, np.float64)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("geom", [dict(k=3, stride=1, padding=1, dilation=1),
                                  dict(k=3, stride=2, padding=1, dilation=1),
                                  dict(k=3, stride=1, padding=2, dilation=2),
                                  dict(k=5, stride=1, padding=(2, 0), dilation=1)],
                         ids=["3x3", "s2", "dil2", "5x5-asym"])
def test_big_image_band_groups(rng, threads, geom):
    """An image whose channels-last copy is over 1 MB is copied and computed in
    groups of tile bands (each group's input rows just before its tiles): every
    row must be copied before a tile reads it, whatever the geometry."""
    x, w, b = make(rng, np.float32, 1, 24, 150, 93, 20, 1, geom["k"], geom["k"])
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    try:
        for act, pre in ((None, None), ("relu", None), ("silu", None), (None, "relu")):
            run_and_check("fused", x, w, b, geom["stride"], geom["padding"], geom["dilation"],
                          activation=act, pre_activation=pre)
    finally:
        fastconv.set_num_threads(old)


@pytest.mark.parametrize("method", METHODS)
def test_huge_stride_gives_single_output(rng, method):
    x, w, b = make(rng, np.float32, 2, 3, 6, 6, 4, 1, 3, 3)
    run_and_check(method, x, w, b, stride=2**40, padding=1)
    run_and_check(method, x, w, b, stride=(1, 2**62), padding=0)


# --------------------------------------------------------------------------
# layouts: unbatched 3-D, NHWC, out=, non-contiguous
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
def test_unbatched_3d(rng, method, dtype):
    x, w, b = make(rng, dtype, 1, 4, 9, 10, 6, 2, 3, 2, unbatched=True)
    y = run_and_check(method, x, w, b, 2, ((1, 0), (2, 1)), 1, 2, activation="tanh")
    assert y.ndim == 3
    y4 = fastconv.conv2d(x[None], w, b, 2, ((1, 0), (2, 1)), 1, 2, activation="tanh",
                         method=method)
    np.testing.assert_allclose(y, y4[0], rtol=RTOL[np.dtype(dtype)], atol=0)


NHWC_CASES = [
    dict(N=2, C=3, H=8, W=9, Cout=5, G=1, KH=3, KW=3, stride=1, padding=1, dilation=1),
    dict(N=1, C=6, H=11, W=7, Cout=4, G=2, KH=2, KW=3, stride=(2, 1),
         padding=((1, 0), (0, 2)), dilation=(1, 2)),
    dict(N=3, C=4, H=7, W=7, Cout=8, G=4, KH=3, KW=3, stride=1, padding="same", dilation=2),
    dict(N=1, C=16, H=10, W=10, Cout=24, G=1, KH=1, KW=1, stride=1, padding=0, dilation=1),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", range(len(NHWC_CASES)))
def test_nhwc(rng, case, method, dtype):
    c = NHWC_CASES[case]
    x, w, b = make(rng, dtype, c["N"], c["C"], c["H"], c["W"], c["Cout"], c["G"],
                   c["KH"], c["KW"], data_format="NHWC")
    y = run_and_check(method, x, w, b, c["stride"], c["padding"], c["dilation"], c["G"],
                      activation="silu", pre_activation="relu6", data_format="NHWC")
    # consistent with NCHW on transposed data
    xn = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    wn = np.ascontiguousarray(w.transpose(3, 2, 0, 1))
    yn = fastconv.conv2d(xn, wn, b, c["stride"], c["padding"], c["dilation"], c["G"],
                         activation="silu", pre_activation="relu6", method=method)
    np.testing.assert_allclose(y, yn.transpose(0, 2, 3, 1), rtol=RTOL[np.dtype(dtype)] * 10,
                               atol=RTOL[np.dtype(dtype)] * np.abs(yn).max())


@pytest.mark.parametrize("method", METHODS)
def test_nhwc_unbatched(rng, method):
    # 3-D NHWC input is one HWC image
    x, w, b = make(rng, np.float32, 1, 3, 8, 7, 4, 1, 3, 3, data_format="NHWC", unbatched=True)
    y = run_and_check(method, x, w, b, 1, 1, data_format="NHWC", activation="relu")
    assert y.shape == (8, 7, 4)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
def test_out_argument(rng, method, dtype):
    x, w, b = make(rng, dtype, 2, 4, 9, 8, 6, 2, 3, 3)
    ref, scale = conv2d_act_ref(x, w, b, 2, 1, 1, 2, activation="elu")
    out = np.full(ref.shape, np.nan, dtype=dtype)
    got = fastconv.conv2d(x, w, b, 2, 1, 1, 2, activation="elu", method=method, out=out)
    assert got is out
    assert_close(out, ref, scale, dtype)
    # reusing a dirty out buffer must overwrite, not accumulate
    got = fastconv.conv2d(x, w, b, 2, 1, 1, 2, activation="elu", method=method, out=out)
    assert got is out
    assert_close(out, ref, scale, dtype)


@pytest.mark.parametrize("method", METHODS)
def test_out_argument_nhwc_and_unbatched(rng, method):
    x, w, b = make(rng, np.float32, 2, 3, 7, 9, 5, 1, 3, 3, data_format="NHWC")
    ref, scale = conv2d_act_ref(x, w, b, 1, "same", data_format="NHWC", activation="mish")
    out = np.empty(ref.shape, np.float32)
    assert fastconv.conv2d(x, w, b, 1, "same", data_format="NHWC", activation="mish",
                           method=method, out=out) is out
    assert_close(out, ref, scale, np.float32)

    x, w, b = make(rng, np.float64, 1, 3, 7, 9, 5, 1, 2, 2, unbatched=True)
    ref, scale = conv2d_act_ref(x, w, b)
    out = np.empty(ref.shape, np.float64)
    assert out.ndim == 3
    assert fastconv.conv2d(x, w, b, method=method, out=out) is out
    assert_close(out, ref, scale, np.float64)


@pytest.mark.parametrize("method", METHODS)
def test_out_argument_batch0(rng, method):
    x = np.zeros((0, 2, 5, 5), np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    out = np.empty((0, 3, 3, 3), np.float32)
    assert fastconv.conv2d(x, w, method=method, out=out) is out


def _noncontig_variants(a):
    """Views of `a`'s values with unusual memory layouts (same values)."""
    yield "strided", _strided_copy(a)
    yield "negative", np.flip(np.flip(a).copy())  # negative strides on every axis
    yield "fortran", np.asfortranarray(a)
    yield "transposed", np.ascontiguousarray(np.moveaxis(a, 0, -1)).transpose(
        (a.ndim - 1,) + tuple(range(a.ndim - 1)))


def _strided_copy(a):
    big = np.empty(tuple(2 * s + 1 for s in a.shape), a.dtype)
    big[...] = np.nan
    v = big[(slice(1, None, 2),) * a.ndim]
    v[...] = a
    assert not v.flags.c_contiguous or a.size <= 1
    return v


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
def test_noncontiguous_inputs(rng, method, dtype):
    x, w, b = make(rng, dtype, 2, 4, 9, 10, 6, 2, 3, 2)
    ref, scale = conv2d_act_ref(x, w, b, (1, 2), ((1, 0), (0, 1)), (2, 1), 2,
                                activation="gelu", pre_activation="relu")
    kw = dict(stride=(1, 2), padding=((1, 0), (0, 1)), dilation=(2, 1), groups=2,
              activation="gelu", pre_activation="relu", method=method)
    for xn, xv in _noncontig_variants(x):
        for wn, wv in _noncontig_variants(w):
            got = fastconv.conv2d(xv, wv, b, **kw)
            assert_close(got, ref, scale, dtype, what="x %s, w %s" % (xn, wn))
    for bn, bv in _noncontig_variants(b):
        got = fastconv.conv2d(x, w, bv, **kw)
        assert_close(got, ref, scale, dtype, what="bias %s" % bn)
    # NHWC with non-contiguous views
    xh = x.transpose(0, 2, 3, 1)  # a non-contiguous NHWC view
    wh = w.transpose(2, 3, 1, 0)  # a non-contiguous HWIO view
    got = fastconv.conv2d(xh, wh, b, data_format="NHWC", **kw)
    assert_close(got, np.moveaxis(ref, 1, -1), np.moveaxis(scale, 1, -1), dtype, what="NHWC")


@pytest.mark.parametrize("method", METHODS)
def test_readonly_and_zero_stride_inputs(rng, method):
    x, w, b = make(rng, np.float32, 1, 3, 8, 8, 4, 1, 3, 3)
    x.flags.writeable = False
    w.flags.writeable = False
    b.flags.writeable = False
    run_and_check(method, x, w, b, 1, 1, activation="sigmoid", pre_activation="tanh")
    # broadcast (zero-stride) views
    xb = np.broadcast_to(rng.standard_normal((1, 3, 1, 8)).astype(np.float32), (2, 3, 8, 8))
    wb = np.broadcast_to(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), (4, 3, 3, 3))
    bb = np.broadcast_to(np.float32(0.5), (4,))
    run_and_check(method, xb, wb, bb, 1, 1, activation="relu")


@pytest.mark.parametrize("method", METHODS)
def test_bias_none_vs_zero_bias(rng, method):
    x, w, _ = make(rng, np.float64, 2, 3, 7, 7, 4, 1, 3, 3, bias=False)
    a = fastconv.conv2d(x, w, None, padding=1, method=method, activation="softplus")
    c = fastconv.conv2d(x, w, np.zeros(4), padding=1, method=method, activation="softplus")
    np.testing.assert_allclose(a, c, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("method", METHODS)
def test_large_one_sided_padding_multithreaded(rng, method):
    """A tap whose column lies entirely in the left padding for every output
    (padding > dilated kernel reach).  Big enough for the kernels' internal
    OpenMP threading to kick in (found: im2col wrote zeros past the end of
    its row into the neighbouring tap's row, a race between threads)."""
    x = rng.standard_normal((1, 3, 8000, 2)).astype(np.float32)
    w = rng.standard_normal((1, 3, 1, 3)).astype(np.float32)
    set_threads = getattr(fastconv, "set_num_threads", None)
    old = fastconv.get_num_threads() if set_threads else None
    try:
        for n in (2, 3, 4):
            if set_threads:
                set_threads(n)
            for _ in range(5):  # a race: repeat
                run_and_check(method, x, w, None, 1, ((0, 0), (5, 0)), (1, 3),
                              what="threads=%d" % n)
    finally:
        if set_threads:
            set_threads(old)
    xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2))
    wt = np.ascontiguousarray(w.transpose(0, 1, 3, 2))
    run_and_check(method, xt, wt, None, 1, ((5, 0), (0, 0)), (3, 1))
    # many channels and taps, both sides
    x = rng.standard_normal((2, 16, 300, 3)).astype(np.float32)
    w = rng.standard_normal((4, 16, 2, 4)).astype(np.float32)
    run_and_check(method, x, w, None, (1, 2), ((3, 0), (9, 1)), (2, 3), activation="relu")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
def test_saturating_activations_large_outputs(rng, method, dtype):
    """Conv outputs of magnitude ~1e2..1e5: the fused epilogues must saturate
    (no NaN/inf from exp overflow) exactly like the standalone activations."""
    x, w, b = make(rng, dtype, 1, 4, 9, 21, 8, 1, 3, 3)
    for mag in (30.0, 3e3):
        xs = x * dtype(mag)
        for act in ["sigmoid", "tanh", "softplus", "silu", "mish", "gelu",
                    ("gelu", {"approximate": "tanh"}), "elu", "selu", "softsign",
                    "hardswish", "hardsigmoid", ("softplus", {"beta": 2.0, "threshold": 10.0})]:
            got = run_and_check(method, xs, w, b, 1, 1, activation=act, what="mag %g" % mag)
            assert np.isfinite(got).all()
            got = run_and_check(method, xs, w, b, 1, 1, pre_activation=act, what="mag %g" % mag)
            assert np.isfinite(got).all()


@pytest.mark.parametrize("method", METHODS)
def test_repeatable(rng, method):
    """Same call, same bits (no races, no uninitialised memory)."""
    x, w, b = make(rng, np.float32, 2, 32, 40, 37, 48, 1, 3, 3)
    y0 = fastconv.conv2d(x, w, b, padding=((2, 0), (0, 3)), method=method, activation="gelu")
    for _ in range(3):
        y = fastconv.conv2d(x, w, b, padding=((2, 0), (0, 3)), method=method, activation="gelu")
        np.testing.assert_array_equal(y, y0)


def test_methods_agree(rng):
    x, w, b = make(rng, np.float32, 2, 8, 15, 13, 12, 4, 3, 3)
    res = {m: fastconv.conv2d(x, w, b, 1, 1, 1, 4, method=m, activation="relu6")
           for m in METHODS}
    ref, scale = conv2d_act_ref(x, w, b, 1, 1, 1, 4, activation="relu6")
    for m, r in res.items():
        assert_close(r, ref, scale, np.float32, what=m)


def test_special_values_propagate(rng):
    """NaN / inf in the input reach exactly the outputs whose window sees them."""
    for method in METHODS:
        x, w, b = make(rng, np.float64, 1, 2, 7, 7, 3, 1, 3, 3)
        x[0, 1, 3, 3] = np.nan
        x[0, 0, 0, 6] = np.inf
        got = fastconv.conv2d(x, w, b, padding=1, method=method)
        ref, scale = conv2d_act_ref(x, w, b, padding=1)
        assert np.array_equal(np.isnan(got), np.isnan(ref)), method
        fin = np.isfinite(ref)
        assert np.array_equal(np.isfinite(got), fin), method
        assert np.array_equal(got[np.isinf(ref)], ref[np.isinf(ref)]), method
        assert np.all(np.abs(got[fin] - ref[fin]) <= 1e-10 * scale[fin]), method


# Geometries whose tiles have taps wholly in the padding, which the direct
# driver skips (channels enough to reach it, not the small kernel): kernel
# rows above/below the image for top/bottom-row tiles, and (AVX-512) the left
# or right padding for a tile's end pixels, with tiles across a row end
# rotated to put both border pixels at their ends.  7x7 images (one tile per
# row), 14 and 20 wide (tiles of 8 and 7 across row ends), a 5-wide image
# (tiles longer than a row: not rotated), two padded columns a side, taller
# padding, dilation, stride, one-sided padding, few input channels (the
# folded copy); NHWC input is read in place, padded taps from the zero buffer.
DEAD_TAP_CASES = [
    dict(C=16, H=7, W=7, KH=3, KW=3, stride=1, padding=1, dilation=1),
    dict(C=16, H=14, W=14, KH=5, KW=5, stride=1, padding=2, dilation=1),
    dict(C=16, H=9, W=14, KH=3, KW=3, stride=1, padding=1, dilation=1),
    dict(C=12, H=9, W=20, KH=3, KW=3, stride=1, padding=((3, 4), (1, 1)), dilation=1),
    dict(C=16, H=11, W=5, KH=3, KW=3, stride=1, padding=1, dilation=1),
    dict(C=16, H=12, W=12, KH=3, KW=3, stride=1, padding=2, dilation=2),
    dict(C=16, H=13, W=16, KH=3, KW=3, stride=2, padding=1, dilation=1),
    dict(C=16, H=6, W=19, KH=3, KW=3, stride=1, padding=((1, 1), (0, 2)), dilation=1),
    dict(C=5, H=10, W=24, KH=3, KW=3, stride=1, padding=1, dilation=1),
]


@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cout", [32, 40])
@pytest.mark.parametrize("case", range(len(DEAD_TAP_CASES)))
def test_padding_taps_skipped_exactly(rng, case, cout, dtype, data_format):
    """Skipping the taps that read only padding changes nothing for finite
    weights, and an inf weight still meets the padding's zeros: inf * 0 = NaN
    wherever the zero-padded definition (the reference) has it.  40 output
    channels: a tile of one channel block after one of two."""
    c = DEAD_TAP_CASES[case]
    geo = dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"])
    x, w, b = make(rng, dtype, 2, c["C"], c["H"], c["W"], cout, 1, c["KH"], c["KW"],
                   data_format=data_format)
    for method in ("fused", "auto"):
        run_and_check(method, x, w, b, activation="relu", data_format=data_format, **geo)
    # the first tap of output channel 0 (top-left: dead on the top row), and the
    # last of channel 17 (bottom-right: dead on the bottom row)
    if data_format == "NCHW":
        w[0, 0, 0, 0] = np.inf
        w[17, 3, -1, -1] = -np.inf
    else:
        w[0, 0, 0, 0] = np.inf
        w[-1, -1, 3, 17] = -np.inf
    got = fastconv.conv2d(x, w, b, data_format=data_format, **geo)
    ref, scale = conv2d_act_ref(x, w, b, data_format=data_format, **geo)
    assert np.isnan(ref).any()
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    assert np.array_equal(np.isinf(got), np.isinf(ref))
    assert np.array_equal(got[np.isinf(ref)], ref[np.isinf(ref)])
    fin = np.isfinite(ref)
    assert np.all(np.abs(got[fin] - ref[fin]) <= RTOL[np.dtype(dtype)] * scale[fin])


@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", ["small-4", "small-7", "depthwise", "depthwise-x2"])
@pytest.mark.parametrize("geo", [dict(padding=1), dict(padding=((2, 0), (1, 1))),
                                 dict(padding=((0, 3), (0, 0)), dilation=2), dict(padding=2, stride=2)],
                         ids=["p1", "top2", "bottom3-dil2", "p2-s2"])
def test_inf_weight_in_padding_rows_few_channels(rng, kind, geo, dtype, data_format):
    """The kernels for few output channels (the small kernel) and depthwise skip
    the kernel rows in the top/bottom padding too: an inf weight in such a row
    must still meet the padding's zeros (NaN where the zero-padded reference has
    it), and a finite one changes nothing.  Under FASTCONV_DISABLE_SIMD=1 (CI)
    this covers the portable depthwise kernel."""
    C = 8
    cout, groups = dict(**{"small-4": (4, 1), "small-7": (7, 1),
                           "depthwise": (C, C), "depthwise-x2": (2 * C, C)})[kind]
    x, w, b = make(rng, dtype, 2, C, 10, 12, cout, groups, 3, 3, data_format=data_format)
    kw = dict(groups=groups, data_format=data_format, **geo)
    run_and_check("fused", x, w, b, activation="relu", **kw)
    for oc, ky in ((0, 0), (cout - 1, 2)):       # a top and a bottom kernel row
        if data_format == "NCHW":
            w[oc, 0, ky, 1] = np.inf
        else:
            w[ky, 1, 0, oc] = -np.inf
    for method in ("fused", "auto"):
        got = fastconv.conv2d(x, w, b, method=method, **kw)
        ref, scale = conv2d_act_ref(x, w, b, **kw)
        assert np.isnan(ref).any()
        assert np.array_equal(np.isnan(got), np.isnan(ref)), method
        assert np.array_equal(np.isinf(got), np.isinf(ref)), method
        fin = np.isfinite(ref)
        assert np.all(np.abs(got[fin] - ref[fin]) <= RTOL[np.dtype(dtype)] * scale[fin]), method


def test_dtype_preserved_and_fresh_output(rng):
    for dtype in DTYPES:
        x, w, b = make(rng, dtype, 1, 2, 5, 5, 2, 1, 3, 3)
        for m in METHODS:
            y = fastconv.conv2d(x, w, b, method=m)
            assert y.dtype == dtype
            assert y.flags.c_contiguous and y.flags.writeable
            assert not np.shares_memory(y, x) and not np.shares_memory(y, w)


# --------------------------------------------------------------------------
# (c) hypothesis: random configurations, every method vs the reference
# --------------------------------------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

ACT_CHOICES = [None, "relu", "leaky_relu", ("leaky_relu", {"negative_slope": 0.3}),
               "elu", "selu", "sigmoid", "hard_sigmoid", "tanh", ("softplus", {"beta": 2.0}),
               "softsign", "swish", "hard_swish", "gelu", ("gelu", {"approximate": "tanh"}),
               "mish", "relu6", "linear"]


@st.composite
def conv_configs(draw):
    G = draw(st.integers(1, 3))
    Cg = draw(st.integers(1, 4))
    Og = draw(st.integers(1, 4))
    KH, KW = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pform = draw(st.sampled_from(["int", "pair", "quad", "valid", "same"]))
    if pform == "same":
        sh = sw = 1
    if pform == "int":
        p = draw(st.integers(0, 3))
        padding, pads = p, (p, p, p, p)
    elif pform == "pair":
        ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
        padding, pads = (ph, pw), (ph, ph, pw, pw)
    elif pform == "quad":
        pads = tuple(draw(st.integers(0, 4)) for _ in range(4))
        padding = ((pads[0], pads[1]), (pads[2], pads[3]))
    elif pform == "valid":
        padding, pads = "valid", (0, 0, 0, 0)
    else:
        padding, pads = "same", R.same_padding((KH, KW), (dh, dw))
    eh, ew = dh * (KH - 1) + 1, dw * (KW - 1) + 1
    H = draw(st.integers(max(1, eh - pads[0] - pads[1]), max(1, eh - pads[0] - pads[1]) + 8))
    W = draw(st.integers(max(1, ew - pads[2] - pads[3]), max(1, ew - pads[2] - pads[3]) + 8))
    return dict(
        N=draw(st.integers(0, 3)), G=G, C=G * Cg, Cout=G * Og, KH=KH, KW=KW, H=H, W=W,
        stride=(sh, sw) if draw(st.booleans()) or sh != sw else sh,
        dilation=(dh, dw) if draw(st.booleans()) or dh != dw else dh,
        padding=padding,
        dtype=draw(st.sampled_from(DTYPES)),
        bias=draw(st.booleans()),
        activation=draw(st.sampled_from(ACT_CHOICES)),
        pre_activation=draw(st.sampled_from(ACT_CHOICES)),
        data_format=draw(st.sampled_from(["NCHW", "NCHW", "NHWC"])),
        unbatched=draw(st.integers(0, 5)) == 0,
        seed=draw(st.integers(0, 2**32 - 1)),
        scale=draw(st.sampled_from([0.1, 1.0, 4.0])),
    )


@settings(max_examples=60, deadline=None)
@given(conv_configs())
def test_hypothesis_random_configs(c):
    rng = np.random.default_rng(c["seed"])
    x, w, b = make(rng, c["dtype"], c["N"], c["C"], c["H"], c["W"], c["Cout"], c["G"],
                   c["KH"], c["KW"], bias=c["bias"], data_format=c["data_format"],
                   unbatched=c["unbatched"])
    x *= c["dtype"](c["scale"])
    for m in METHODS:
        run_and_check(m, x, w, b, c["stride"], c["padding"], c["dilation"], c["G"],
                      activation=c["activation"], pre_activation=c["pre_activation"],
                      data_format=c["data_format"], what=str(c))


# --------------------------------------------------------------------------
# torch cross-check
# --------------------------------------------------------------------------

TORCH_ACTS = [None, "relu", ("leaky_relu", {"negative_slope": 0.1}), ("elu", {"alpha": 0.7}),
              "selu", "sigmoid", "hardsigmoid", "tanh", ("softplus", {"beta": 1.5, "threshold": 25.0}),
              "softsign", "silu", "hardswish", "gelu", ("gelu", {"approximate": "tanh"}), "mish",
              "relu6"]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_against_torch(torch, rng, dtype):
    dtype = np.dtype(dtype)
    for trial in range(24):
        G = int(rng.integers(1, 4))
        C, Cout = G * int(rng.integers(1, 5)), G * int(rng.integers(1, 5))
        KH, KW = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        d = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        kind = trial % 3
        if kind == 0:
            padding = "same"
            s = 1
        elif kind == 1:
            padding = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        else:
            padding = ((int(rng.integers(0, 3)), int(rng.integers(0, 3))),
                       (int(rng.integers(0, 3)), int(rng.integers(0, 3))))
        H = d[0] * (KH - 1) + 1 + int(rng.integers(0, 9))
        W = d[1] * (KW - 1) + 1 + int(rng.integers(0, 9))
        N = int(rng.integers(1, 3))
        fmt = "NHWC" if trial % 4 == 3 else "NCHW"
        x, w, b = make(rng, dtype, N, C, H, W, Cout, G, KH, KW, bias=bool(trial % 2),
                       data_format=fmt)
        act = TORCH_ACTS[trial % len(TORCH_ACTS)]
        pre = TORCH_ACTS[(trial * 7 + 3) % len(TORCH_ACTS)]
        want = R.torch_conv2d(torch, x, w, b, s, padding, d, G, activation=act,
                              pre_activation=pre, data_format=fmt)
        _, scale = conv2d_act_ref(x, w, b, s, padding, d, G, activation=act,
                                  pre_activation=pre, data_format=fmt)
        for m in METHODS:
            got = fastconv.conv2d(x, w, b, s, padding, d, G, activation=fc_act(act),
                                  pre_activation=fc_act(pre), method=m, data_format=fmt)
            # torch's own rounding counts too: allow 2x the reference tolerance
            assert_close(got, want.astype(np.float64), 2 * scale, dtype,
                         what="torch trial %d method %s" % (trial, m))


# --------------------------------------------------------------------------
# optional extras (tested when the library has them)
# --------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(fastconv, "pack_weight"), reason="no pack_weight")
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
def test_pack_weight(rng, method, dtype):
    for (N, C_, H, W, Cout, G, KH, KW, kw) in [
            (2, 6, 11, 13, 9, 3, 3, 3, dict(padding=1, stride=(1, 2))),
            (1, 17, 9, 20, 33, 1, 5, 2, dict(padding=((2, 0), (1, 1)), dilation=(1, 2))),
            (1, 8, 10, 10, 8, 8, 3, 3, dict(padding="same")),
            (3, 4, 7, 7, 5, 1, 1, 1, {})]:
        x, w, b = make(rng, dtype, N, C_, H, W, Cout, G, KH, KW)
        packed = fastconv.pack_weight(w, groups=G)
        w_before = w.copy()
        w += 1  # the pack holds its own copy
        got = fastconv.conv2d(x, packed, b, groups=G, method=method, activation="relu6",
                              pre_activation="silu", **kw)
        ref, scale = conv2d_act_ref(x, w_before, b, groups=G, activation="relu6",
                                    pre_activation="silu", **kw)
        assert_close(got, ref, scale, dtype, what="packed %s" % ((N, C_, H, W, Cout, G, KH, KW),))
        # NHWC with a pack made from HWIO
        wh = np.ascontiguousarray(w_before.transpose(2, 3, 1, 0))
        ph = fastconv.pack_weight(wh, groups=G, data_format="NHWC")
        xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        got = fastconv.conv2d(xh, ph, b, groups=G, method=method, data_format="NHWC", **kw)
        ref, scale = conv2d_act_ref(xh, wh, b, groups=G, data_format="NHWC", **kw)
        assert_close(got, ref, scale, dtype, what="packed NHWC")


@pytest.mark.skipif(not hasattr(fastconv, "set_num_threads"), reason="no set_num_threads")
@pytest.mark.parametrize("method", METHODS)
def test_thread_counts(rng, method):
    """1, 2 and 3 threads all give the right answer (and the same bits for the
    direct methods' row-parallel split)."""
    x, w, b = make(rng, np.float32, 2, 24, 45, 43, 40, 2, 3, 3)
    ref, scale = conv2d_act_ref(x, w, b, 1, ((1, 2), (0, 1)), 1, 2, activation="gelu")
    old = fastconv.get_num_threads()
    try:
        for n in (1, 2, 3):
            fastconv.set_num_threads(n)
            got = fastconv.conv2d(x, w, b, 1, ((1, 2), (0, 1)), 1, 2, activation="gelu",
                                  method=method)
            assert_close(got, ref, scale, np.float32, what="threads=%d" % n)
    finally:
        fastconv.set_num_threads(old)


# --------------------------------------------------------------------------
# the AVX-512 B tiles, each register blocking (dispatch picks one per CPU)
# --------------------------------------------------------------------------

_CFG = fastconv.config.config()

# (N, C, H, W, Cout, G, K, stride, padding, dilation): output-channel tails of
# a 2- and a 4-block tile (1, 2, 3 blocks left, part blocks), pixel tails
# (images not a multiple of 6 or 8 pixels, rows straddled by a tile, one
# pixel), stride 2, dilation, groups, 5x5, no padding (x read in place).
AVX512_TILE_CASES = [
    (1, 16, 9, 11, 17, 1, 3, 1, 1, 1),
    (1, 24, 7, 13, 40, 1, 3, 1, 1, 1),
    (2, 12, 5, 5, 56, 1, 3, 1, 1, 1),
    (1, 20, 6, 7, 80, 1, 3, 2, 1, 1),
    (1, 16, 12, 12, 96, 1, 3, 1, 2, 2),
    (1, 32, 3, 2, 112, 1, 3, 1, 1, 1),
    (1, 16, 1, 1, 64, 1, 3, 1, 1, 1),
    (2, 32, 8, 9, 48, 2, 3, 1, 1, 1),
    (1, 64, 14, 14, 128, 1, 3, 1, 1, 1),
    (1, 16, 7, 23, 33, 1, 5, 1, 2, 1),
    (1, 24, 10, 10, 50, 1, 3, 1, 0, 1),
]


@pytest.fixture
def restore_kernels():
    before = _CFG["kernels"]
    yield
    fastconv._core._force_kernels(before)


@pytest.mark.skipif(not _CFG["cpu_avx512"], reason="no AVX-512 on this CPU/build")
@pytest.mark.parametrize("blocking", ["avx512_2x8", "avx512_4x6"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
def test_avx512_blockings_tails(rng, restore_kernels, blocking, dtype, data_format):
    """Each AVX-512 blocking against the float64 reference on channel and pixel
    tails, strides, dilation, groups, with relu in the tile, silu after it and a
    pre-activation; and bit for bit against the AVX2 tiles (the same FMAs in the
    same order for every output, whatever the blocking)."""
    for (N, C, H, W, Cout, G, K, s, p, dl) in AVX512_TILE_CASES:
        x, w, b = make(rng, dtype, N, C, H, W, Cout, G, K, K, data_format=data_format)
        for act, pre in ((None, None), ("relu", None), ("silu", "relu")):
            what = "%s %s act=%s pre=%s" % (blocking, (N, C, H, W, Cout, G, K, s, p, dl),
                                            act, pre)
            assert fastconv._core._force_kernels(blocking)
            got = run_and_check("fused", x, w, b, s, p, dl, G, activation=act,
                                pre_activation=pre, data_format=data_format, what=what)
            assert fastconv._core._force_kernels("avx2+fma")
            ref = fastconv.conv2d(x, w, b, s, p, dl, G, activation=act, pre_activation=pre,
                                  method="fused", data_format=data_format)
            np.testing.assert_array_equal(got, ref, err_msg=what)


@pytest.mark.skipif(not _CFG["cpu_avx512"], reason="no AVX-512 on this CPU/build")
@pytest.mark.parametrize("blocking", ["avx512_2x8", "avx512_4x6"])
@pytest.mark.parametrize("act", list(R.ACTIVATION_PARAMS))
def test_avx512_blockings_every_activation(rng, restore_kernels, blocking, act):
    """Every activation after each blocking's tiles (relu and identity inside
    them, the others in the pass after), on a tail of 3 blocks and 5 pixels."""
    assert fastconv._core._force_kernels(blocking)
    x, w, b = make(rng, np.float32, 1, 24, 5, 7, 41, 1, 3, 3)
    run_and_check("fused", x, w, b, 1, 1, activation=act, what=blocking)


# ---- the shared kernel tester (tests/kernel_tester.py) ----------------------
from kernel_tester import check_family, kernel_set  # noqa: E402,F401

DIRECT_CASES = [(1, 32, 10, 10, 48, 3, 1, 1, 1, 1), (2, 17, 9, 13, 33, 3, 2, 1, 1, 1),
                (1, 64, 7, 7, 80, 3, 1, 1, 1, 1), (1, 24, 11, 11, 40, 3, 1, 2, 2, 2)]


@pytest.mark.parametrize("pre", [None, "relu"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", DIRECT_CASES, ids=str)
def test_direct_family_by_the_kernel_tester(rng, kernel_set, case, dtype, layout, pre):
    check_family(rng, "direct", case, dtype, layout, pre_activation=pre)
