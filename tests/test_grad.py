"""fastconv.conv2d_backward, conv_transpose2d and conv_transpose2d_backward
against the float64 NumPy reference (tests/grad_reference.py) and
torch.autograd, over conv2d's test grid (tests/test_conv2d.py).

Tolerance as in test_conv2d: |got - ref| <= rtol * scale with scale the
reference's magnitude sum of every product that enters the result (for the
derivative-multiplied gradient also the curvature of f' times the error bound
of z).  A derivative that jumps (relu at 0, hardswish at +-3, ...) would turn
a rounding difference of z into a wrong-looking gradient, so the random data
is redrawn until every z is clear of the activation's kinks; the kinks
themselves are tested exactly, with z placed on them.
"""
import numpy as np
import pytest

import fastconv

import grad_reference as GR
import reference as R
from test_conv2d import ACT_CASES, ACT_IDS, MID_SHAPES, SHAPES, _as_param, assert_close, \
    fc_act, make

METHODS = ["fused", "separate", "im2col", "auto"]
DTYPES = [np.float32, np.float64]
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}
#: torch computes some derivatives through float constants (hardsigmoid's
#: 1/6 is float32's even in float64): allow that much against torch
TORCH_RTOL64 = 1e-7


def _act_name(spec):
    if spec is None:
        return None, {}
    return R._act_spec(spec)


def _clear_of_kinks(z, activation, margin=1e-3):
    name, params = _act_name(activation)
    if name is None:
        return True
    # exactly on a kink is fine: a window of zeros only (padding, relu'd
    # inputs) sums to exactly z = 0 in any precision
    return all(np.all((np.abs(z - k) > margin * (1 + np.abs(z))) | (z == k))
               for k in GR.kinks(name, **params))


def draw_case(rng, dtype, N, C, H, W, Cout, G, KH, KW, stride=1, padding=0, dilation=1,
              bias=True, activation=None, pre_activation=None, data_format="NCHW",
              unbatched=False, scale=1.0):
    """Fresh x, w, b, grad_output and the reference.  Data is redrawn until z
    is clear of the activation's kinks; a layer too large for that (some z
    always within rounding of a kink) gets the reference's f' evaluated at
    conv2d's own z (see grad_reference.conv2d_backward_ref)."""
    for attempt in range(6):
        x, w, b = make(rng, dtype, N, C, H, W, Cout, G, KH, KW, bias=bias,
                       data_format=data_format, unbatched=unbatched)
        x *= dtype(scale)
        yshape = R.conv2d_act_ref(x, w, b, stride, padding, dilation, G,
                                  data_format=data_format)[0].shape
        g = rng.standard_normal(yshape).astype(dtype)
        z_at = None
        if attempt == 5:
            z_at = fastconv.conv2d(x, w, b, stride, padding, dilation, G,
                                   pre_activation=fc_act(pre_activation), data_format=data_format)
        ref = GR.conv2d_backward_ref(g, x, w, b, stride, padding, dilation, G, activation,
                                     pre_activation, data_format, z_at=z_at)
        if z_at is not None or _clear_of_kinks(ref[3], activation):
            return x, w, b, g, ref


def check_backward(method, x, w, b, g, ref, stride=1, padding=0, dilation=1, groups=1,
                   activation=None, pre_activation=None, data_format="NCHW", with_output=False,
                   weight=None, what=""):
    """conv2d_backward against ref, inputs untouched; returns the result.
    with_output: pass the forward's output= (True), its linear_output=
    ("linear", z computed by conv2d without the activation), or neither."""
    kw = dict(activation=fc_act(activation), pre_activation=fc_act(pre_activation),
              data_format=data_format)
    saved = [a.copy() for a in (x, w, g) + ((b,) if b is not None else ())]
    given = {}
    if with_output == "linear":
        given["linear_output"] = fastconv.conv2d(x, w, b, stride, padding, dilation, groups,
                                                 pre_activation=kw["pre_activation"],
                                                 data_format=data_format)
    elif with_output:
        given["output"] = fastconv.conv2d(x, w, b, stride, padding, dilation, groups, **kw)
    got = fastconv.conv2d_backward(g, x, w if weight is None else weight, b, stride, padding,
                                   dilation, groups, method=method, **given, **kw)
    what = "method=%s output=%s %s" % (method, with_output, what)
    (gi, gis), (gw, gws), (gb, gbs), _ = ref
    assert_close(got[0], gi, gis, x.dtype, what="grad_input " + what)
    assert_close(got[1], gw, gws, x.dtype, what="grad_weight " + what)
    if b is None:
        assert got[2] is None
    else:
        assert_close(got[2], gb, gbs, x.dtype, what="grad_bias " + what)
    for a, a0 in zip((x, w, g) + ((b,) if b is not None else ()), saved):
        np.testing.assert_array_equal(a, a0)
    return got


# --------------------------------------------------------------------------
# every activation x method x dtype, as post- and pre-activation
# --------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["post", "pre"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("act", ACT_CASES, ids=ACT_IDS)
def test_activation_grid(rng, act, method, dtype, where):
    spec = _as_param(act)
    kw = dict(activation=spec) if where == "post" else dict(pre_activation=spec)
    for i, s in enumerate(MID_SHAPES):
        geo = dict(stride=s["stride"], padding=s["padding"], dilation=s["dilation"])
        x, w, b, g, ref = draw_case(rng, dtype, s["N"], s["C"], s["H"], s["W"], s["Cout"],
                                    s["G"], s["KH"], s["KW"], bias=(i != 1), scale=1.5,
                                    **geo, **kw)
        for with_output in (False, True, "linear"):
            check_backward(method, x, w, b, g, ref, groups=s["G"], with_output=with_output,
                           what="shape #%d %s=%s" % (i, where, act), **geo, **kw)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
def test_pre_and_post_together(rng, method, dtype):
    for act, pre, geo in [(("gelu", {"approximate": "tanh"}),
                           ("leaky_relu", {"negative_slope": 0.2}),
                           dict(stride=1, padding=((2, 1), (0, 3)))),
                          ("relu", "elu", dict(stride=2, padding="valid")),
                          ("sigmoid", "silu", dict(stride=(1, 2), padding=1, dilation=2))]:
        x, w, b, g, ref = draw_case(rng, dtype, 2, 4, 10, 9, 6, 2, 3, 3, activation=act,
                                    pre_activation=pre, **geo)
        for with_output in (False, True):
            check_backward(method, x, w, b, g, ref, groups=2, activation=act,
                           pre_activation=pre, with_output=with_output, **geo)


# --------------------------------------------------------------------------
# conv2d's shape grid x methods x dtypes
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cfg", SHAPES)
def test_shape_grid(rng, cfg, method, dtype):
    c = cfg
    geo = dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"])
    dims = (c["N"], c["C"], c["H"], c["W"], c["Cout"], c["G"], c["KH"], c["KW"])
    for act, pre, with_output in (("relu", None, True), ("silu", None, False),
                                  (None, None, False), (None, "relu", False)):
        x, w, b, g, ref = draw_case(rng, dtype, *dims, bias=c["bias"], activation=act,
                                    pre_activation=pre, **geo)
        check_backward(method, x, w, b, g, ref, groups=c["G"], activation=act,
                       pre_activation=pre, with_output=with_output, **geo,
                       what="act=%s pre=%s" % (act, pre))


NHWC_CASES = [
    dict(N=2, C=3, H=8, W=9, Cout=5, G=1, KH=3, KW=3, stride=1, padding=1, dilation=1),
    dict(N=1, C=6, H=11, W=7, Cout=4, G=2, KH=2, KW=3, stride=(2, 1),
         padding=((1, 0), (2, 1)), dilation=1),
    dict(N=2, C=4, H=9, W=9, Cout=8, G=4, KH=3, KW=3, stride=2, padding=1, dilation=1),
    dict(N=1, C=5, H=10, W=12, Cout=5, G=5, KH=3, KW=3, stride=1, padding="same", dilation=2),
    dict(N=3, C=16, H=7, W=7, Cout=24, G=1, KH=1, KW=1, stride=1, padding=0, dilation=1),
]


@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", range(len(NHWC_CASES)))
def test_nhwc_hwio(rng, case, method, dtype, unbatched):
    """NHWC input, HWIO weight: grad_input NHWC, grad_weight HWIO-shaped."""
    s = NHWC_CASES[case]
    geo = dict(stride=s["stride"], padding=s["padding"], dilation=s["dilation"])
    dims = (s["N"], s["C"], s["H"], s["W"], s["Cout"], s["G"], s["KH"], s["KW"])
    for act, pre in (("tanh", None), ("relu6", "hardswish")):
        x, w, b, g, ref = draw_case(rng, dtype, *dims, activation=act, pre_activation=pre,
                                    data_format="NHWC", unbatched=unbatched, **geo)
        got = check_backward(method, x, w, b, g, ref, groups=s["G"], activation=act,
                             pre_activation=pre, data_format="NHWC", with_output=True, **geo)
        assert got[0].shape == x.shape and got[1].shape == w.shape


@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_unbatched_and_layouts_agree(rng, method, unbatched):
    """The NHWC result is the NCHW result transposed."""
    x, w, b = make(rng, np.float64, 2, 6, 9, 8, 4, 2, 3, 2)
    g = rng.standard_normal((2, 4, 5, 5))
    kw = dict(stride=2, padding=((1, 1), (0, 2)), groups=2, activation="silu", method=method)
    xs, gs = (x[0], g[0]) if unbatched else (x, g)
    a = fastconv.conv2d_backward(gs, xs, w, b, **kw)
    perm = (1, 2, 0) if unbatched else (0, 2, 3, 1)
    h = fastconv.conv2d_backward(gs.transpose(perm), xs.transpose(perm), w.transpose(2, 3, 1, 0),
                                 b, data_format="NHWC", **kw)
    np.testing.assert_allclose(h[0], a[0].transpose(perm), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h[1], a[1].transpose(2, 3, 1, 0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h[2], a[2], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
def test_packed_weights(rng, method, dtype):
    for (N, C, H, W, Cout, G, KH, KW, geo) in [
            (2, 6, 11, 13, 9, 3, 3, 3, dict(padding=1, stride=(1, 2))),
            (1, 8, 10, 10, 8, 8, 3, 3, dict(padding="same")),
            (3, 4, 7, 7, 5, 1, 1, 1, {})]:
        x, w, b, g, ref = draw_case(rng, dtype, N, C, H, W, Cout, G, KH, KW, activation="relu6",
                                    pre_activation="silu", **geo)
        packed = fastconv.pack_weight(w, groups=G)
        check_backward(method, x, w, b, g, ref, groups=G, activation="relu6",
                       pre_activation="silu", weight=packed, with_output=True, **geo)
        x, w, b, g, ref = draw_case(rng, dtype, N, C, H, W, Cout, G, KH, KW, activation="elu",
                                    data_format="NHWC", **geo)
        ph = fastconv.pack_weight(w, groups=G, data_format="NHWC")
        check_backward(method, x, w, b, g, ref, groups=G, activation="elu", data_format="NHWC",
                       weight=ph, **geo)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
def test_hwio_packs_and_hwio_gradient_buffers(rng, method, dtype):
    """NCHW calls with what a Keras-layout layer passes: a pack of an HWIO
    array's OIHW view (the pack keeps the HWIO order) and a grad_weight that
    is the OIHW view of an HWIO buffer; small images (the batched GEMM input
    gradient on the HWIO rows) and larger ones (the direct kernels)."""
    for (N, C, H, W, Cout, G, KH, KW, geo) in [
            (3, 6, 4, 5, 8, 2, 3, 3, dict(padding=1)),
            (4, 8, 6, 6, 16, 1, 3, 3, dict(padding=1, stride=2)),
            (1, 4, 5, 5, 6, 1, 3, 3, dict(padding=(1, 0))),
            (2, 4, 16, 16, 6, 2, 3, 3, dict(padding=1)),
            (3, 4, 5, 7, 5, 1, 1, 1, {})]:
        x, w, b, g, ref = draw_case(rng, dtype, N, C, H, W, Cout, G, KH, KW,
                                    activation="relu", **geo)
        hwio = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
        packed = fastconv.pack_weight(hwio.transpose(3, 2, 0, 1), groups=G)
        np.testing.assert_array_equal(packed.weight, w)
        gbuf = np.full(hwio.shape, np.nan, dtype)
        for rep in range(2):
            got = fastconv.conv2d_backward(g, x, packed, b, groups=G, activation="relu",
                                           method=method, grad_weight=gbuf.transpose(3, 2, 0, 1),
                                           **geo)
            assert np.shares_memory(got[1], gbuf)
            for k in range(3):
                assert_close(got[k], ref[k][0], ref[k][1], dtype, what=f"gradient {k}")
            assert_close(gbuf.transpose(3, 2, 0, 1), ref[1][0], ref[1][1], dtype,
                         what="HWIO buffer")
        # the forward with that pack agrees with the dense weight's
        y = fastconv.conv2d(x, packed, b, groups=G, activation="relu", method=method, **geo)
        np.testing.assert_allclose(y, fastconv.conv2d(x, w, b, groups=G, activation="relu",
                                                      method=method, **geo),
                                   rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


# --------------------------------------------------------------------------
# needs=, the grad_* buffers, batch 0
# --------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_needs_subsets(rng, method):
    x, w, b, g, ref = draw_case(rng, np.float64, 2, 4, 9, 9, 6, 2, 3, 3, stride=2, padding=1,
                                activation="silu")
    full = fastconv.conv2d_backward(g, x, w, b, 2, 1, 1, 2, activation="silu", method=method)
    for needs in [("input",), ("weight",), ("bias",), ("input", "bias"), ["weight", "input"],
                  "weight", ()]:
        names = (needs,) if isinstance(needs, str) else needs
        got = fastconv.conv2d_backward(g, x, w, b, 2, 1, 1, 2, activation="silu", method=method,
                                       needs=needs)
        for k, name in enumerate(("input", "weight", "bias")):
            if name in names:
                np.testing.assert_array_equal(got[k], full[k])
            else:
                assert got[k] is None
    # no bias: grad_bias is None even when asked for
    got = fastconv.conv2d_backward(g, x, w, None, 2, 1, 1, 2, method=method)
    assert got[2] is None and got[0] is not None


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
def test_gradient_buffers_written_in_place(rng, method, dtype):
    for fmt in ("NCHW", "NHWC"):
        x, w, b, g, ref = draw_case(rng, dtype, 2, 4, 8, 9, 6, 2, 3, 3, padding=1,
                                    activation="tanh", data_format=fmt)
        bufs = dict(grad_input=np.full(x.shape, np.nan, dtype),
                    grad_weight=np.full(w.shape, np.nan, dtype),
                    grad_bias=np.full(b.shape, np.nan, dtype))
        for rep in range(2):   # reused: every entry is overwritten, not accumulated
            got = fastconv.conv2d_backward(g, x, w, b, 1, 1, 1, 2, activation="tanh",
                                           method=method, data_format=fmt, **bufs)
            assert got[0] is bufs["grad_input"] and got[1] is bufs["grad_weight"]
            assert got[2] is bufs["grad_bias"]
            for k in range(3):
                assert_close(got[k], ref[k][0], ref[k][1], dtype, what="buffer %d %s" % (k, fmt))


@pytest.mark.parametrize("method", METHODS)
def test_batch0(rng, method):
    for dtype in DTYPES:
        for fmt in ("NCHW", "NHWC"):
            x = np.zeros((0, 3, 10, 9) if fmt == "NCHW" else (0, 10, 9, 3), dtype)
            w = rng.standard_normal((5, 3, 3, 2)).astype(dtype)
            if fmt == "NHWC":
                w = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
            b = rng.standard_normal(5).astype(dtype)
            g = np.zeros((0, 5, 5, 5), dtype)
            gi, gw, gb = fastconv.conv2d_backward(g, x, w, b, 2, 1, activation="silu",
                                                  method=method, data_format=fmt)
            assert gi.shape == x.shape and gi.dtype == dtype
            assert gw.shape == w.shape and not gw.any() and gb.shape == (5,) and not gb.any()


# --------------------------------------------------------------------------
# against torch.autograd (float64), finite differences, hypothesis
# --------------------------------------------------------------------------

def torch_backward(torch, g, x, w, b, stride, padding, dilation, groups, activation=None,
                   pre_activation=None, data_format="NCHW"):
    """torch.autograd's gradients of sum(g * y) for the same composition."""
    F = torch.nn.functional
    nhwc = data_format == "NHWC"
    tx = torch.tensor(np.ascontiguousarray(np.moveaxis(x, -1, -3) if nhwc else x),
                      requires_grad=True)
    tw = torch.tensor(np.ascontiguousarray(w.transpose(3, 2, 0, 1) if nhwc else w),
                      requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    h = tx
    if pre_activation is not None:
        n, pp = R._act_spec(pre_activation)
        h = R.torch_activation(torch, n, h, **pp)
    if isinstance(padding, str):
        tpad = padding
    else:
        t_, b_, l_, r_ = R.normalize_padding(padding)
        if t_ == b_ and l_ == r_:
            tpad = (t_, l_)
        else:
            h = F.pad(h, (l_, r_, t_, b_))
            tpad = 0
    y = F.conv2d(h, tw, tb, stride=stride, padding=tpad, dilation=dilation, groups=groups)
    if activation is not None:
        n, pp = R._act_spec(activation)
        y = R.torch_activation(torch, n, y, **pp)
    tg = torch.tensor(np.ascontiguousarray(np.moveaxis(g, -1, -3) if nhwc else g))
    y.backward(tg)
    gi = tx.grad.numpy()
    gw = tw.grad.numpy()
    if nhwc:
        gi, gw = np.moveaxis(gi, -3, -1), gw.transpose(2, 3, 1, 0)
    return gi, gw, None if b is None else tb.grad.numpy()


TORCH_ACTS = [None, "relu", ("leaky_relu", {"negative_slope": 0.1}), ("elu", {"alpha": 0.7}),
              "selu", "sigmoid", "hardsigmoid", "tanh",
              ("softplus", {"beta": 1.5, "threshold": 2.0}),
              "softsign", "silu", "hardswish", "gelu", ("gelu", {"approximate": "tanh"}), "mish",
              "relu6", ("leaky_relu", {"negative_slope": -0.5}), ("elu", {"alpha": -0.5})]


def test_against_torch_autograd(torch, rng):
    for trial in range(36):
        G = int(rng.integers(1, 4))
        C, Cout = G * int(rng.integers(1, 5)), G * int(rng.integers(1, 5))
        KH, KW = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        d = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        kind = trial % 3
        if kind == 0:
            padding, s = "same", 1
        elif kind == 1:
            padding = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        else:
            padding = ((int(rng.integers(0, 4)), int(rng.integers(0, 3))),
                       (int(rng.integers(0, 3)), int(rng.integers(0, 4))))
        H = d[0] * (KH - 1) + 1 + int(rng.integers(0, 9))
        W = d[1] * (KW - 1) + 1 + int(rng.integers(0, 9))
        fmt = "NHWC" if trial % 4 == 3 else "NCHW"
        act = TORCH_ACTS[trial % len(TORCH_ACTS)]
        pre = TORCH_ACTS[(trial * 7 + 3) % len(TORCH_ACTS)]
        x, w, b, g, ref = draw_case(rng, np.float64, int(rng.integers(1, 3)), C, H, W, Cout, G,
                                    KH, KW, s, padding, d, bias=bool(trial % 2), activation=act,
                                    pre_activation=pre, data_format=fmt, scale=2.0)
        want = torch_backward(torch, g, x, w, b, s, padding, d, G, act, pre, fmt)
        for m in METHODS:
            for with_output in (False, True):
                y = fastconv.conv2d(x, w, b, s, padding, d, G, activation=fc_act(act),
                                    pre_activation=fc_act(pre), data_format=fmt) \
                    if with_output else None
                got = fastconv.conv2d_backward(g, x, w, b, s, padding, d, G,
                                               activation=fc_act(act), pre_activation=fc_act(pre),
                                               data_format=fmt, method=m, output=y)
                for k in range(3):
                    if want[k] is None:
                        assert got[k] is None
                        continue
                    assert_close(got[k], want[k], ref[k][1] * (TORCH_RTOL64 / 1e-10), np.float64,
                                 what="torch trial %d grad %d method %s act %s pre %s"
                                 % (trial, k, m, act, pre))


@pytest.mark.parametrize("act,pre", [("silu", None), ("tanh", "gelu"), (None, "mish"),
                                     ("softplus", "sigmoid"), ("relu", None)])
def test_finite_differences(rng, act, pre):
    """<grad, v> against the central difference of L = sum(g * conv2d(...))
    along a random direction v, for each of x, w, b (float64)."""
    geo = dict(stride=(2, 1), padding=((1, 2), (0, 1)), dilation=(1, 2), groups=2)
    x, w, b, g, _ = draw_case(rng, np.float64, 2, 4, 9, 10, 6, 2, 3, 3, geo["stride"],
                              geo["padding"], geo["dilation"], activation=act, pre_activation=pre)
    kw = dict(activation=act, pre_activation=pre, **geo)

    def loss(x_, w_, b_):
        return float(np.sum(g * fastconv.conv2d(x_, w_, b_, **kw)))

    grads = fastconv.conv2d_backward(g, x, w, b, **kw)
    eps = 1e-6
    for k, arr in enumerate((x, w, b)):
        v = rng.standard_normal(arr.shape)
        args_p, args_m = [x, w, b], [x, w, b]
        args_p[k], args_m[k] = arr + eps * v, arr - eps * v
        fd = (loss(*args_p) - loss(*args_m)) / (2 * eps)
        an = float(np.sum(grads[k] * v))
        assert abs(fd - an) <= 1e-5 * (1 + abs(an)), (k, fd, an)


from hypothesis import given, settings  # noqa: E402

from test_conv2d import conv_configs  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(conv_configs())
def test_hypothesis_random_configs(c):
    rng = np.random.default_rng(c["seed"])
    x, w, b, g, ref = draw_case(rng, c["dtype"], c["N"], c["C"], c["H"], c["W"], c["Cout"],
                                c["G"], c["KH"], c["KW"], c["stride"], c["padding"],
                                c["dilation"], bias=c["bias"], activation=c["activation"],
                                pre_activation=c["pre_activation"], data_format=c["data_format"],
                                unbatched=c["unbatched"], scale=c["scale"])
    for m in METHODS:
        check_backward(m, x, w, b, g, ref, c["stride"], c["padding"], c["dilation"], c["G"],
                       activation=c["activation"], pre_activation=c["pre_activation"],
                       data_format=c["data_format"], with_output=bool(c["seed"] % 2), what=str(c))


# --------------------------------------------------------------------------
# kinks, NaN and infinities: z placed exactly on them, against torch
# --------------------------------------------------------------------------

SPECIAL = np.array([-3.0, 0.0, 3.0, 6.0, -0.0, np.nan, np.inf, -np.inf, -1.0, 2.5, -2.9,
                    20.0, -20.0, 1e-30, -1e-30, 5.999])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("act", ACT_CASES + [("leaky_relu", {"negative_slope": 0.0}),
                                             ("elu", {"alpha": -0.5})],
                         ids=ACT_IDS + ["leaky_relu-0", "elu-neg"])
def test_kinks_and_specials_match_torch(torch, act, dtype):
    """A 1x1 identity convolution puts z = x exactly on the kinks: the
    gradients (with and without output=, as post- and pre-activation) are
    torch.autograd's, NaN for NaN."""
    spec = _as_param(act)
    name, params = R._act_spec(spec)
    # 128 values: torch runs its vectorised loops (its scalar loops, for a few
    # elements, differ from them at NaN for elu, selu and hardswish)
    x = np.tile(SPECIAL, 8).astype(dtype).reshape(1, 1, 8, 16)
    w = np.ones((1, 1, 1, 1), dtype)
    b = np.zeros(1, dtype)
    g = np.linspace(-2, 3, 128).astype(dtype).reshape(1, 1, 8, 16)
    tx = torch.tensor(x, requires_grad=True)
    R.torch_activation(torch, name, tx, **params).backward(torch.tensor(g))
    want = tx.grad.numpy().astype(np.float64)
    want_b = float(np.sum(want))
    for m in METHODS:
        for post in (True, False):
            kw = dict(activation=fc_act(spec)) if post else dict(pre_activation=fc_act(spec))
            outs = [None] + ([fastconv.conv2d(x, w, b, **kw)] if post else [])
            for out in outs:
                gi, gw, gb = fastconv.conv2d_backward(g, x, w, b, method=m, output=out, **kw)
                what = "%s %s post=%s output=%s" % (act, m, post, out is not None)
                got = gi.astype(np.float64)
                assert np.array_equal(np.isnan(got), np.isnan(want)), (what, got, want)
                ok = ~np.isnan(want)
                # torch's float32 arithmetic (or constants) may round differently
                tol = (3e-6 if dtype == np.float32 else 1e-7) * (1 + np.abs(want[ok]))
                assert np.all(np.abs(got[ok] - want[ok]) <= tol), (what, got, want)
                if post:
                    assert (np.isnan(gb[0]) and np.isnan(want_b)) or \
                        abs(gb[0] - want_b) <= 1e-5 * (1 + np.abs(want).sum()), (what, gb, want_b)


def test_nan_in_input_reaches_the_gradients(rng):
    """A NaN in x reaches grad_weight (through the correlation) and the
    recomputed z; a NaN in grad_output every gradient it touches."""
    x, w, b = make(rng, np.float64, 1, 2, 7, 7, 3, 1, 3, 3)
    g = rng.standard_normal((1, 3, 7, 7))
    x[0, 1, 3, 3] = np.nan
    gi, gw, gb = fastconv.conv2d_backward(g, x, w, b, padding=1)
    assert np.isnan(gw[:, 1]).all() and not np.isnan(gw[:, 0]).any()
    assert not np.isnan(gi).any() and not np.isnan(gb).any()
    x[0, 1, 3, 3] = 0
    g[0, 2, 0, 0] = np.nan
    gi, gw, gb = fastconv.conv2d_backward(g, x, w, b, padding=1)
    assert np.isnan(gb[2]) and not np.isnan(gb[:2]).any()
    assert np.isnan(gi[0, :, :2, :2]).all() and not np.isnan(gi[0, :, 3:, 3:]).any()


# --------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_thread_counts(rng, method):
    x, w, b, g, ref = draw_case(rng, np.float32, 2, 24, 29, 27, 40, 2, 3, 3, stride=2,
                                padding=((1, 2), (0, 1)), activation="gelu")
    old = fastconv.get_num_threads()
    try:
        for n in (1, 2, 3):
            fastconv.set_num_threads(n)
            check_backward(method, x, w, b, g, ref, stride=2, padding=((1, 2), (0, 1)), groups=2,
                           activation="gelu", what="threads=%d" % n)
    finally:
        fastconv.set_num_threads(old)


# --------------------------------------------------------------------------
# the weight-gradient kernel (src/grad/grad_weight.c): its tile tails, both loop
# orders, groups, both layouts and dtypes, every activation's derivative
# fused into it
# --------------------------------------------------------------------------

# each has C_out/groups >= 8 and a kernel larger than 1x1, so conv2d_backward
# takes the kernel (grad._weight_grad_kernel_suits)
KERNEL_CASES = [
    # C_in*KW = 15 (a tile of 12 and a tail of 3), 37 output channels (a tail)
    dict(N=2, C=5, H=9, W=11, Cout=37, G=1, KH=3, KW=3, stride=1, padding=1, dilation=1),
    # dil_w = 2: the tiles stay within one kw; asymmetric padding, stride (2, 1)
    dict(N=3, C=7, H=13, W=10, Cout=20, G=1, KH=2, KW=5, stride=(2, 1),
         padding=((1, 0), (2, 1)), dilation=(1, 2)),
    # groups (cig = 4, cog = 8), stride 2
    dict(N=1, C=12, H=10, W=9, Cout=24, G=3, KH=3, KW=3, stride=2, padding=1, dilation=1),
    # depthwise with multiplier 8
    dict(N=2, C=4, H=8, W=7, Cout=32, G=4, KH=3, KW=3, stride=1, padding=1, dilation=1),
    # 5x5, stride 3, 33 output channels
    dict(N=2, C=16, H=17, W=17, Cout=33, G=1, KH=5, KW=5, stride=3, padding=2, dilation=1),
    # enough channels for several channel units per thread (the unit-major
    # order): 75 = 6 x 12 + 3, dil_h = 2; and with groups (26 per group)
    dict(N=2, C=75, H=9, W=8, Cout=20, G=1, KH=3, KW=2, stride=1, padding=1, dilation=(2, 1)),
    dict(N=1, C=52, H=7, W=9, Cout=16, G=2, KH=3, KW=3, stride=(1, 2), padding=1, dilation=1),
    # few output channels: the narrow tiles (one ymm: 8 floats, 4 doubles)
    # and the 16-wide ones (cog 12), as the digits CNN's layers
    dict(N=5, C=8, H=8, W=8, Cout=8, G=1, KH=3, KW=3, stride=1, padding=1, dilation=1),
    dict(N=3, C=1, H=8, W=7, Cout=3, G=1, KH=3, KW=3, stride=1, padding=1, dilation=1),
    dict(N=2, C=5, H=6, W=9, Cout=12, G=1, KH=3, KW=3, stride=1, padding=1, dilation=1),
    # ~10k positions: more than 1 MiB of gradient, the position-blocked order,
    # 68 output rows in blocks of 3 (a tail block)
    dict(N=2, C=3, H=70, W=75, Cout=40, G=1, KH=3, KW=3, stride=1, padding=0, dilation=1),
]


def _kernel_case(rng, dtype, s, activation=None, data_format="NCHW", bias=True):
    geo = dict(stride=s["stride"], padding=s["padding"], dilation=s["dilation"])
    dims = (s["N"], s["C"], s["H"], s["W"], s["Cout"], s["G"], s["KH"], s["KW"])
    return geo, draw_case(rng, dtype, *dims, activation=activation, data_format=data_format,
                          bias=bias, **geo)


@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", ["fused", "separate", "auto"])
@pytest.mark.parametrize("case", range(len(KERNEL_CASES)))
def test_weight_kernel_tails(rng, case, method, dtype, data_format):
    s = KERNEL_CASES[case]
    for act, with_output in (("silu", False), ("relu", True), (None, False)):
        geo, (x, w, b, g, ref) = _kernel_case(rng, dtype, s, act, data_format)
        got = check_backward(method, x, w, b, g, ref, groups=s["G"], activation=act,
                             data_format=data_format, with_output=with_output, **geo,
                             what="kernel case #%d act=%s" % (case, act))
        assert got[1].shape == w.shape
        # the weight gradient alone (the fused derivative without the input
        # gradient that otherwise takes its product)
        gw, gb = fastconv.conv2d_backward(g, x, w, b, groups=s["G"], activation=act,
                                          needs=("weight", "bias"), method=method,
                                          data_format=data_format, **geo)[1:]
        assert_close(gw, ref[1][0], ref[1][1], dtype, what="grad_weight alone")
        assert_close(gb, ref[2][0], ref[2][1], dtype, what="grad_bias alone")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("act", ACT_CASES, ids=ACT_IDS)
def test_weight_kernel_fused_derivatives(rng, act, dtype):
    """Every activation's derivative applied inside the weight-gradient
    kernel, from z recomputed, from the output, from linear_output."""
    spec = _as_param(act)
    s = KERNEL_CASES[0]
    geo, (x, w, b, g, ref) = _kernel_case(rng, dtype, s, spec)
    for with_output in (False, True, "linear"):
        check_backward("fused", x, w, b, g, ref, groups=s["G"], activation=spec,
                       with_output=with_output, **geo, what="act=%s" % (act,))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", SHAPES)
def test_weight_kernel_on_every_shape(rng, monkeypatch, cfg, dtype):
    """The kernel forced onto the whole shape grid (1x1 and depthwise
    included, which conv2d_backward otherwise gives to BLAS)."""
    from fastconv import grad as fgrad
    monkeypatch.setattr(fgrad, "_weight_grad_kernel_suits", lambda p: True)
    c = cfg
    geo = dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"])
    dims = (c["N"], c["C"], c["H"], c["W"], c["Cout"], c["G"], c["KH"], c["KW"])
    for act, fmt in (("gelu", "NCHW"), ("tanh", "NHWC")):
        x, w, b, g, ref = draw_case(rng, dtype, *dims, bias=c["bias"], activation=act,
                                    data_format=fmt, **geo)
        for method in ("fused", "separate"):
            check_backward(method, x, w, b, g, ref, groups=c["G"], activation=act,
                           data_format=fmt, **geo, what="forced kernel")


def test_weight_kernel_thread_counts_bitwise(rng):
    """Each weight-gradient tile is summed in one order whatever the thread
    count: the same bits for 1, 2 and 3 threads (the bias gradient too)."""
    old = fastconv.get_num_threads()
    for s in (KERNEL_CASES[0], KERNEL_CASES[-1]):
        geo, (x, w, b, g, ref) = _kernel_case(rng, np.float32, s, "silu")
        got = []
        try:
            for n in (1, 2, 3):
                fastconv.set_num_threads(n)
                got.append(fastconv.conv2d_backward(g, x, w, b, groups=s["G"],
                                                    activation="silu", method="fused", **geo))
        finally:
            fastconv.set_num_threads(old)
        assert_close(got[0][1], ref[1][0], ref[1][1], np.float32, what="grad_weight")
        for other in got[1:]:
            np.testing.assert_array_equal(other[1], got[0][1])
            np.testing.assert_array_equal(other[2], got[0][2])


# --------------------------------------------------------------------------
# conv_transpose2d and its backward
# --------------------------------------------------------------------------

def TC(N=1, C=3, H=5, W=6, Cout=4, G=1, KH=3, KW=3, stride=1, padding=0, output_padding=0,
       dilation=1, bias=True, id=None):
    return pytest.param(dict(N=N, C=C, H=H, W=W, Cout=Cout, G=G, KH=KH, KW=KW, stride=stride,
                             padding=padding, output_padding=output_padding, dilation=dilation,
                             bias=bias), id=id)


TSHAPES = [
    TC(KH=1, KW=1, id="k1x1"),
    TC(KH=1, KW=1, stride=2, output_padding=1, id="k1x1-s2-op1"),
    TC(KH=2, KW=2, stride=2, id="k2-s2"),
    TC(id="k3"),
    TC(padding=1, id="k3-p1"),
    TC(KH=4, KW=4, stride=2, padding=1, id="k4-s2-p1"),
    TC(KH=5, KW=5, padding=2, stride=2, output_padding=1, id="k5-s2-op1"),
    TC(KH=7, KW=7, padding=3, C=2, H=4, W=4, stride=2, id="k7"),
    TC(KH=1, KW=3, padding=(0, 1), id="k1x3"),
    TC(KH=3, KW=2, stride=(2, 3), output_padding=(1, 2), id="s2x3-op"),
    TC(stride=3, padding=1, output_padding=2, id="s3-op2"),
    TC(stride=3, padding=0, output_padding=1, dilation=2, id="s3-d2"),
    TC(stride=2, dilation=2, padding=2, id="s2-d2"),
    TC(stride=2, dilation=3, KH=2, KW=3, output_padding=2, id="op-below-dilation"),
    TC(dilation=(2, 1), padding=(2, 0), id="d2x1"),
    TC(padding=4, H=6, W=7, KH=5, KW=5, dilation=2, id="pad-large"),
    TC(stride=4, KH=2, KW=2, id="stride-beyond-kernel"),
    TC(stride=2, padding=3, H=7, W=7, id="pad-beyond-kernel"),
    TC(C=4, Cout=6, G=2, stride=2, padding=1, output_padding=1, id="g2"),
    TC(C=6, Cout=9, G=3, stride=2, id="g3"),
    TC(C=4, Cout=4, G=4, padding=1, id="depthwise"),
    TC(C=5, Cout=10, G=5, stride=2, padding=1, id="depthwise-mult2"),
    TC(N=0, id="batch0"),
    TC(N=3, stride=2, bias=False, id="batch3-nobias"),
    TC(H=1, W=1, KH=3, KW=3, id="1x1-image"),
    TC(C=17, Cout=33, H=7, W=9, stride=2, padding=1, output_padding=1, id="odd-channels"),
    TC(N=2, C=64, Cout=32, H=12, W=12, KH=4, KW=4, stride=2, padding=1, id="large"),
    # C_in/groups >= 8 and k > 1: the weight gradient by the C kernel
    TC(N=2, C=16, H=6, W=5, Cout=12, KH=3, KW=3, stride=2, padding=1, output_padding=1,
       id="wkernel-s2-op1"),
    TC(N=1, C=24, H=5, W=7, Cout=8, G=2, KH=3, KW=2, stride=(1, 2), padding=(1, 0),
       output_padding=(0, 1), dilation=2, id="wkernel-g2-d2"),
]


def _tconv_case(rng, dtype, c, data_format="NCHW", unbatched=False):
    dtype = np.dtype(dtype)
    xs = (c["N"], c["C"], c["H"], c["W"])
    ws = (c["C"], c["Cout"] // c["G"], c["KH"], c["KW"])
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(c["Cout"]).astype(dtype) if c["bias"] else None
    return x, w, b


def _targs(c):
    return (c["stride"], c["padding"], c["output_padding"], c["G"], c["dilation"])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cfg", TSHAPES)
def test_conv_transpose2d_grid(torch, rng, cfg, method, dtype):
    c = cfg
    x, w, b = _tconv_case(rng, dtype, c)
    ref, scale = GR.conv_transpose2d_ref(x, w, b, *_targs(c), return_scale=True)
    F = torch.nn.functional
    tb = None if b is None else torch.tensor(b)
    want = F.conv_transpose2d(torch.tensor(x), torch.tensor(w), tb, *_targs(c)).numpy()
    assert want.shape == ref.shape
    for act in (None, "relu", "silu", ("leaky_relu", {"negative_slope": 0.3})):
        got = fastconv.conv_transpose2d(x, w, b, *_targs(c), activation=fc_act(act),
                                        method=method)
        if act is None:
            assert_close(got, want.astype(np.float64), 2 * scale, dtype, what="torch")
            r, s = ref, scale
        else:
            name, params = R._act_spec(act)
            r = R.activation_ref(name, ref, **params)
            s = np.abs(r) + R.lipschitz(name, **params) * scale
        assert_close(got, r, s, dtype, what="act=%s method=%s" % (act, method))
    # NHWC: (N, H, W, C) input, (kH, kW, C_out/groups, C_in) weight
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    wh = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    got = fastconv.conv_transpose2d(xh, wh, b, *_targs(c), activation="tanh", method=method,
                                    data_format="NHWC")
    assert_close(got, np.tanh(ref).transpose(0, 2, 3, 1), scale.transpose(0, 2, 3, 1) + 1,
                 dtype, what="NHWC")
    # out=
    out = np.full(ref.shape, np.nan, dtype)
    res = fastconv.conv_transpose2d(x, w, b, *_targs(c), method=method, out=out)
    assert res is out
    assert_close(out, ref, scale, dtype, what="out=")


def torch_tconv_backward(torch, g, x, w, b, args, activation):
    F = torch.nn.functional
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    y = F.conv_transpose2d(tx, tw, tb, *args)
    if activation is not None:
        n, pp = R._act_spec(activation)
        y = R.torch_activation(torch, n, y, **pp)
    y.backward(torch.tensor(g))
    return tx.grad.numpy(), tw.grad.numpy(), None if b is None else tb.grad.numpy()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cfg", TSHAPES)
def test_conv_transpose2d_backward_vs_torch(torch, rng, cfg, method):
    c = cfg
    for act in (None, "sigmoid", "gelu", "relu"):
        for _ in range(50):
            x, w, b = _tconv_case(rng, np.float64, c)
            z = GR.conv_transpose2d_ref(x, w, b, *_targs(c))
            if _clear_of_kinks(z, act):
                break
        g = rng.standard_normal(z.shape)
        want = torch_tconv_backward(torch, g, x, w, b, _targs(c), act)
        name, params = _act_name(act)
        d = np.ones_like(z) if name is None else GR.activation_grad_ref(name, z, **params)
        ag = np.abs(g) * (np.abs(d) + 1)
        # magnitude scales: the same computations on absolute values
        scales = [np.abs(want[0]) + _tconv_grad_scale(ag, x, w, c, "input"),
                  np.abs(want[1]) + _tconv_grad_scale(ag, x, w, c, "weight"),
                  None if b is None else ag.sum(axis=(0, 2, 3)) + 1]
        for with_output in (False, True, "linear"):
            given = {}
            if with_output == "linear":
                given["linear_output"] = fastconv.conv_transpose2d(x, w, b, *_targs(c))
            elif with_output:
                given["output"] = fastconv.conv_transpose2d(x, w, b, *_targs(c), activation=act)
            got = fastconv.conv_transpose2d_backward(g, x, w, b, *_targs(c), activation=act,
                                                     method=method, **given)
            for k in range(3):
                if want[k] is None:
                    assert got[k] is None
                    continue
                assert_close(got[k], want[k], scales[k] * (TORCH_RTOL64 / 1e-10), np.float64,
                             what="grad %d act %s output %s" % (k, act, with_output))


def _tconv_grad_scale(ag, x, w, c, which):
    """|gradient| bound: the transposed conv's gradients are conv2d's with the
    roles swapped (grad_input = conv2d of ag with |w|, grad_weight the
    correlation of ag with |x|), computed with the forward reference."""
    sh, sw = R._pair(c["stride"])
    ph, pw = R._pair(c["padding"])
    G = c["G"]
    ho, wo = x.shape[2:]
    kh, kw = w.shape[2:]
    dh, dw = R._pair(c["dilation"])
    # the conv from ag (the output's shape) to x: padding ph top, the rest bottom
    pb = (ho - 1) * sh + dh * (kh - 1) + 1 - ag.shape[2] - ph
    pr = (wo - 1) * sw + dw * (kw - 1) + 1 - ag.shape[3] - pw
    agp = ag
    if pb < 0 or pr < 0:
        agp = ag[:, :, :ag.shape[2] + min(pb, 0), :ag.shape[3] + min(pr, 0)]
    pads = (ph, max(pb, 0), pw, max(pr, 0))
    if which == "input":
        return R.conv2d_ref(agp, np.abs(w), None, c["stride"], pads, c["dilation"], G)
    return GR.conv2d_weight_grad_ref(np.abs(x), agp, w.shape, c["stride"], pads, c["dilation"],
                                     G)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
def test_conv_transpose2d_backward_layouts_buffers_needs(rng, method, dtype):
    c = dict(N=2, C=4, H=5, W=6, Cout=6, G=2, KH=3, KW=3, stride=2, padding=1,
             output_padding=1, dilation=1, bias=True)
    x, w, b = _tconv_case(rng, dtype, c)
    y = fastconv.conv_transpose2d(x, w, b, *_targs(c), activation="tanh")
    g = rng.standard_normal(y.shape).astype(dtype)
    a = fastconv.conv_transpose2d_backward(g, x, w, b, *_targs(c), activation="tanh",
                                           method=method)
    r64 = fastconv.conv_transpose2d_backward(*(v.astype(np.float64) for v in (g, x, w, b)),
                                             *_targs(c), activation="tanh", method="im2col")
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for k in range(3):
        np.testing.assert_allclose(a[k], r64[k], rtol=tol * 10,
                                   atol=tol * 10 * np.abs(r64[k]).max())
    h = fastconv.conv_transpose2d_backward(
        np.ascontiguousarray(g.transpose(0, 2, 3, 1)),
        np.ascontiguousarray(x.transpose(0, 2, 3, 1)),
        np.ascontiguousarray(w.transpose(2, 3, 1, 0)), b, *_targs(c), activation="tanh",
        method=method, data_format="NHWC", output=np.ascontiguousarray(y.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(h[0], a[0].transpose(0, 2, 3, 1), rtol=tol, atol=tol)
    np.testing.assert_allclose(h[1], a[1].transpose(2, 3, 1, 0), rtol=tol, atol=tol)
    np.testing.assert_allclose(h[2], a[2], rtol=tol, atol=tol)
    bufs = dict(grad_input=np.full(x.shape, np.nan, dtype),
                grad_weight=np.full(w.shape, np.nan, dtype),
                grad_bias=np.full(b.shape, np.nan, dtype))
    got = fastconv.conv_transpose2d_backward(g, x, w, b, *_targs(c), activation="tanh",
                                             method=method, **bufs)
    assert all(got[k] is bufs[n] for k, n in enumerate(("grad_input", "grad_weight", "grad_bias")))
    for k in range(3):
        np.testing.assert_array_equal(got[k], a[k])
    got = fastconv.conv_transpose2d_backward(g, x, w, b, *_targs(c), activation="tanh",
                                             method=method, needs=("weight",))
    assert got[0] is None and got[2] is None
    np.testing.assert_array_equal(got[1], a[1])


# --------------------------------------------------------------------------
# bad input: clear errors, nothing written
# --------------------------------------------------------------------------

def _good(rng, dtype=np.float32):
    x, w, b = make(rng, dtype, 2, 4, 8, 8, 6, 2, 3, 3)
    g = rng.standard_normal((2, 6, 8, 8)).astype(dtype)
    return x, w, b, g


def test_errors_conv2d_backward(rng):
    x, w, b, g = _good(rng)
    kw = dict(padding=1, groups=2)
    bad = [
        (dict(grad_output=g[:, :5]), ValueError, r"grad_output of size \[2, 5, 8, 8\]"),
        (dict(grad_output=g.astype(np.float64)), TypeError,
         "grad_output must have the input's dtype"),
        (dict(grad_output=g.astype(np.int32)), TypeError, "grad_output must be float32 or float64"),
        (dict(output=g[:1]), ValueError, r"output of size \[1, 6, 8, 8\]"),
        (dict(linear_output=g[..., :4]), ValueError, r"linear_output of size \[2, 6, 8, 4\]"),
        (dict(linear_output=g.astype(np.float64)), TypeError, "linear_output must have"),
        (dict(needs=("input", "bogus")), ValueError, "unknown entry 'bogus' in needs"),
        (dict(needs=3), TypeError, "needs must be a sequence"),
        (dict(method="fast"), ValueError, "method must be one of"),
        (dict(grad_input=np.empty((2, 4, 8, 7), np.float32)), ValueError, "grad_input has shape"),
        (dict(grad_weight=np.empty(w.shape, np.float64)), TypeError, "grad_weight has dtype"),
        (dict(grad_bias=np.empty(12, np.float32)[::2]), ValueError,
         "grad_bias must be C-contiguous"),
        (dict(grad_input=np.empty(x.shape, np.float32), needs=("weight",)), ValueError,
         "grad_input was given but is not computed"),
        (dict(grad_input=x), ValueError, "grad_input must not overlap input"),
        (dict(grad_weight=[[1.0]]), TypeError, "grad_weight must be a numpy.ndarray"),
        (dict(activation="bogus"), ValueError, "unknown activation"),
        (dict(groups=3), ValueError, "groups=3"),
    ]
    for extra, exc, msg in bad:
        args = dict(grad_output=g, x=x, weight=w, bias=b, **kw)
        args.update(extra)
        with pytest.raises(exc, match=msg):
            fastconv.conv2d_backward(**args)
    ro = np.empty(w.shape, np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="grad_weight is read-only"):
        fastconv.conv2d_backward(g, x, w, b, grad_weight=ro, **kw)
    with pytest.raises(ValueError, match="grad_bias was given but is not computed"):
        fastconv.conv2d_backward(g, x, w, None, grad_bias=np.empty(6, np.float32), **kw)
    gb = np.zeros(6, np.float32)
    gi = np.empty(x.shape, np.float32)
    with pytest.raises(ValueError, match="grad_bias must not overlap grad_input"):
        fastconv.conv2d_backward(g, x, w, b, grad_input=gi, grad_bias=gi.reshape(-1)[:6], **kw)
    # a failing call wrote nothing into a valid buffer
    with pytest.raises(ValueError):
        fastconv.conv2d_backward(g[:, :5], x, w, b, grad_bias=gb, **kw)
    assert not gb.any()


def test_errors_conv_transpose2d(rng):
    x = rng.standard_normal((1, 4, 5, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    cases = [
        (dict(output_padding=2, stride=2), ValueError, "output padding must be smaller"),
        (dict(output_padding=-1), ValueError, "output_padding must be non-negative"),
        (dict(weight=w[:3]), ValueError, "expected input.* to have 3 channels"),
        (dict(groups=3), ValueError, "groups=3"),
        (dict(weight=w[0]), ValueError, "expected weight to be 4-D"),
        (dict(weight=w.astype(np.float64)), TypeError, "same dtype"),
        (dict(bias=np.zeros(4, np.float32)), ValueError, r"bias of shape \(3,\)"),
        (dict(padding=5), ValueError, "empty output"),
        (dict(stride=0), ValueError, "stride must be positive"),
        (dict(method="x"), ValueError, "method must be one of"),
        (dict(out=np.empty((1, 3, 7, 6), np.float32)), ValueError, "out has shape"),
        (dict(data_format="NCWH"), ValueError, "data_format"),
    ]
    for extra, exc, msg in cases:
        args = dict(x=x, weight=w)
        args.update(extra)
        with pytest.raises(exc, match=msg):
            fastconv.conv_transpose2d(**args)
    g = np.zeros((1, 3, 7, 7), np.float32)
    with pytest.raises(ValueError, match=r"grad_output of size \[1, 3, 7, 7\]"):
        fastconv.conv_transpose2d_backward(g[:, :, :6], x, w)
    with pytest.raises(ValueError, match="unknown entry"):
        fastconv.conv_transpose2d_backward(g, x, w, needs=("inputs",))
    with pytest.raises(ValueError, match="output padding must be smaller"):
        fastconv.conv_transpose2d_backward(g, x, w, output_padding=1)


def test_bench_backward_helpers(rng):
    """The backward benchmark's transposed shapes undo each suite layer, and
    its report says which targets a result meets."""
    from fastconv import bench as B
    for layer in B.LAYERS:
        t = B.transposed_layer(layer)
        if t is None:
            continue
        x = np.zeros((1, layer.cout) + layer.out_hw, np.float32)
        w = np.zeros((layer.cout, layer.cin // layer.groups, layer.k, layer.k), np.float32)
        y = fastconv.conv_transpose2d(x, w, None, **t)
        assert y.shape == (1, layer.cin, layer.h, layer.w), layer.id
    row = dict(layer="l", activation="relu", threads=1, peak=100.0, flops=10 ** 9,
               needs=("input", "weight", "bias"), errors={},
               seconds=dict(auto=0.02, fused=0.02, separate=0.03, im2col=0.05, torch=0.01,
                            fused_input=0.01, fused_weight=0.01, transpose=0.01,
                            torch_transpose=0.02))
    text = B.format_backward_markdown([row])
    assert "| l | relu | 1 | 20.00 | 20.00 | 30.00 | 50.00 | 10.00 | 0.50 | 100.0 (100 %)" in text
    assert "faster than torch on every layer: NO" in text
    assert "<= separate on every layer: yes" in text
    assert "F.conv_transpose2d on every transposed shape: yes" in text
