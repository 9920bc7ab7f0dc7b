"""The depthwise kernel (groups == c_in) against the float64 reference.

Covers channel multipliers, kernel sizes, strides, dilations, asymmetric and
oversized padding, widths around the vector sizes (tails), fused activations
(in registers: identity/relu/relu6; the others as a pass), bias / no bias,
both dtypes, every AVX2 path (row kernels 3x3/5x5 stride 1/2, the generic
buffer kernel, the channels-in-lanes kernel for narrow planes), the portable
kernel (FASTCONV_DISABLE_SIMD=1 in a subprocess) and the C entry's refusal of
non-depthwise descriptions.  (Pre-activations are not taken by the depthwise
kernel: the direct driver sends those to the general one.)

The channels-last kernel (data_format="NHWC", channel multiplier 1,
src/conv_depthwise_nhwc*.c) is tested at the end against a float64
reference written here: shapes, strides, paddings, dilations, kernel sizes,
channel counts around the vector sizes, batches, both dtypes, activations and
pre-activations, raw and packed weights, views, inf/NaN, every kernel set
(FASTCONV_DISABLE_AVX512=1 / FASTCONV_DISABLE_SIMD=1 in subprocesses, and the
AVX-512 / AVX2 builds bit for bit in process), and that it makes no
transposed copies.
"""
from _child import PKG_PARENT, child_env, run_python
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import _core
from reference import (PRE_ABS_ERR, _act_spec, activation_ref, conv2d_act_ref, lipschitz,
                       normalize_padding)

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


# ---- channels-last (NHWC) depthwise, channel multiplier 1 ------------------

# (n, h, w, c, k, stride, padding, dilation)
NHWC_CASES = [
    (1, 112, 112, 32, 3, 1, 1, 1),                  # MobileNet's first depthwise layer
    (3, 9, 13, 17, 3, 1, 1, 1),                     # batch 3, channel tails
    (1, 15, 21, 70, 3, 2, 1, 1),                    # stride 2, 70 channels
    (1, 11, 10, 3, 3, 1, "same", 1),                # fewer channels than a vector
    (1, 8, 9, 1, 3, 1, 1, 1),                       # one channel (groups 1: not depthwise)
    (3, 12, 14, 32, 5, 1, 2, 1),
    (1, 13, 17, 17, 5, 2, ((0, 3), (2, 1)), 1),     # asymmetric padding
    (1, 10, 29, 8, 1, 1, 0, 1),                     # 1x1
    (1, 9, 9, 16, 1, 2, 1, 1),                      # 1x1 padded: bias-only outputs
    (1, 14, 14, 24, 3, 1, 2, 2),                    # dilation
    (1, 12, 19, 33, (3, 5), (2, 1), (1, 2), (1, 2)),
    (1, 9, 20, 16, (1, 7), 1, (0, 3), 1),           # kw 7
    (1, 16, 16, 12, 7, 1, 3, 1),
    (1, 6, 5, 17, 5, 1, 3, 1),                      # padding > half the kernel, narrow rows
    (2, 7, 7, 64, 3, 3, 1, 1),                      # stride 3
    (1, 5, 40, 9, 3, 1, "same", 3),                 # "same" with dilation
    (1, 4, 3, 2, (2, 3), 1, ((1, 0), (0, 2)), 1),   # even kernel, tiny
    (1, 10, 11, 48, 3, (1, 2), ((2, 0), (0, 1)), (2, 1)),
]

# (activation, pre_activation): in registers, as a pass per row, the
# pre-activation the kernel applies (relu) and one it does not (silu)
NHWC_ACTS = [("relu", None), ("silu", None), (("leaky_relu", {"negative_slope": 0.1}), None),
             (None, None), ("relu6", "relu"), ("gelu", "silu")]


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def dw_nhwc_ref(x, w, b, stride, padding, dilation, activation=None, pre_activation=None):
    """float64 depthwise conv of NHWC x (n, h, w, c) and HWIO w (kh, kw, 1, c), one
    tap at a time with elementwise products (so inf * a padding zero is NaN, as
    with torch's zero padding).  Returns (ref, tol_scale): a correct result has
    |got - ref| <= rtol * tol_scale."""
    x = np.asarray(x, np.float64)
    wk = np.asarray(w, np.float64)[:, :, 0, :]
    kh, kw, c = wk.shape
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    pt, pb, pl, pr = normalize_padding(padding, (kh, kw), (dh, dw))
    xa = x
    if pre_activation is not None:
        name, params = _act_spec(pre_activation)
        xa = activation_ref(name, x, **params)
    n, h, wd, _ = x.shape
    ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    xp = np.zeros((n, h + pt + pb, wd + pl + pr, c))
    xp[:, pt:pt + h, pl:pl + wd] = xa
    xr = np.zeros_like(xp)
    xr[:, pt:pt + h, pl:pl + wd] = np.abs(x)
    bias = np.zeros(c) if b is None else np.asarray(b, np.float64)
    y = np.zeros((n, ho, wo, c)) + bias
    scale = np.zeros((n, ho, wo, c)) + np.abs(bias)
    raw = np.zeros((n, ho, wo, c))
    with np.errstate(invalid="ignore", over="ignore"):
        for i in range(kh):
            for j in range(kw):
                sl = (slice(None), slice(i * dh, i * dh + sh * (ho - 1) + 1, sh),
                      slice(j * dw, j * dw + sw * (wo - 1) + 1, sw))
                y = y + xp[sl] * wk[i, j]
                scale = scale + np.abs(xp[sl]) * np.abs(wk[i, j])
                raw = raw + xr[sl] * np.abs(wk[i, j])
        tol = np.abs(y) + scale
        if pre_activation is not None:
            tol = tol + PRE_ABS_ERR * raw
        if activation is not None:
            name, params = _act_spec(activation)
            z = activation_ref(name, y, **params)
            tol = np.abs(z) + lipschitz(name, **params) * tol
            y = z
    return y, tol


NHWC_RTOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}


def _assert_nhwc_close(got, ref, tol, what):
    """Equal NaN and infinity positions, the rest within NHWC_RTOL * tol."""
    assert got.shape == ref.shape and got.flags.c_contiguous, what
    g = got.astype(np.float64)
    for f in (np.isnan, np.isposinf, np.isneginf):
        bad = f(g) != f(ref)
        assert not bad.any(), (what, f.__name__, np.argwhere(bad)[:5])
    fin = np.isfinite(ref)
    err = np.abs(g[fin] - ref[fin])
    lim = NHWC_RTOL[got.dtype] * tol[fin] + np.finfo(got.dtype).tiny
    bad = ~(err <= lim)
    assert not bad.any(), (what, np.argwhere(fin)[np.flatnonzero(bad)[:5]],
                           (err / lim).max())


def _native(c, mult, pre, dtype):
    """Whether the channels-last kernel takes the call (no transposed copies):
    multiplier 1, 16 bytes of channels or more, pre-activation relu or none."""
    return c > 1 and c * np.dtype(dtype).itemsize >= 16 and mult == 1 and pre in (None, "relu")


def _act_arg(a):
    return fastconv.Activation(a[0], **a[1]) if isinstance(a, tuple) else a


@pytest.fixture
def count_transposes(monkeypatch):
    """How often the NHWC code ran the NCHW methods on transposed copies."""
    import fastconv._methods as conv
    calls = []
    orig = conv._nhwc_via_nchw

    def counted(*a, **k):
        calls.append(1)
        return orig(*a, **k)
    monkeypatch.setattr(conv, "_nhwc_via_nchw", counted)
    return calls


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", range(len(NHWC_CASES)))
def test_nhwc_kernel_vs_reference(rng, count_transposes, case, dtype):
    n, h, w, c, k, stride, padding, dilation = NHWC_CASES[case]
    kh, kw = _pair(k)
    dt = np.dtype(dtype)
    for i, (act, pre) in enumerate(NHWC_ACTS):
        x = rng.standard_normal((n, h, w, c)).astype(dt)
        wt = rng.standard_normal((kh, kw, 1, c)).astype(dt)
        b = rng.standard_normal(c).astype(dt) if i % 2 == 0 else None
        ref, tol = dw_nhwc_ref(x, wt, b, stride, padding, dilation, act, pre)
        pw = fastconv.pack_weight(wt, c, data_format="NHWC")
        for weight, form in ((wt, "raw"), (pw, "packed")):
            before = len(count_transposes)
            got = fastconv.conv2d(x, weight, b, stride, padding, dilation, groups=c,
                                  activation=_act_arg(act), pre_activation=pre,
                                  data_format="NHWC")
            _assert_nhwc_close(got, ref, tol, (form, act, pre))
            if c > 1:   # (one channel is a plain convolution)
                assert (len(count_transposes) == before) == _native(c, 1, pre, dt), (form, pre)
        # method="separate": the kernel without activations (and a pre-activated copy)
        got = fastconv.conv2d(x, wt, b, stride, padding, dilation, groups=c,
                              activation=_act_arg(act), pre_activation=pre, method="separate",
                              data_format="NHWC")
        _assert_nhwc_close(got, ref, tol, ("separate", act, pre))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nhwc_kernel_views_and_out(rng, count_transposes, dtype):
    """Inputs of any strides with contiguous channels (read in place), channels
    not contiguous (the transposing path), HWIO weight views, out= buffers,
    unbatched input, 1 and 2 threads, and a channel multiplier (not taken)."""
    dt = np.dtype(dtype)
    n, h, w, c = 2, 13, 15, 20
    big = rng.standard_normal((n, 2 * h, w + 4, c + 3)).astype(dt)
    wt = rng.standard_normal((3, 3, 1, c)).astype(dt)
    b = rng.standard_normal(c).astype(dt)
    dense = np.ascontiguousarray(big[:, :h, :w, :c])
    views = {"sliced": (big[:, ::2, 2:w + 2, 1:c + 1], True),
             "reversed_hw": (dense[:, ::-1, ::-1], True),
             "reversed_c": (dense[..., ::-1], False),
             "nchw_seen_as_nhwc": (np.ascontiguousarray(
                 dense.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1), False)}
    wview = np.ascontiguousarray(wt.transpose(3, 2, 0, 1)).transpose(2, 3, 1, 0)
    saved = fastconv.get_num_threads()
    try:
        for threads in (1, 2):
            fastconv.set_num_threads(threads)
            for name, (x, native) in views.items():
                ref, tol = dw_nhwc_ref(x, wt, b, 2, 1, 1, "relu6")
                for weight in (wt, wview, fastconv.pack_weight(wt, c, data_format="NHWC")):
                    before = len(count_transposes)
                    out = np.full(ref.shape, np.nan, dt)
                    r = fastconv.conv2d(x, weight, b, 2, 1, groups=c, activation="relu6",
                                        data_format="NHWC", out=out)
                    assert r is out
                    _assert_nhwc_close(out, ref, tol, name)
                    assert (len(count_transposes) == before) == native, name
                got = fastconv.conv2d(x[1], wt, b, 2, 1, groups=c, activation="relu6",
                                      data_format="NHWC")
                _assert_nhwc_close(got, ref[1], tol[1], name + " unbatched")
    finally:
        fastconv.set_num_threads(saved)
    # channel multiplier 2: the transposing path, still right
    w2 = rng.standard_normal((3, 3, 1, 2 * c)).astype(dt)
    before = len(count_transposes)
    got = fastconv.conv2d(dense, w2, None, 1, 1, groups=c, data_format="NHWC")
    ref, tol = conv2d_act_ref(dense, w2, None, 1, 1, 1, c, data_format="NHWC")
    _assert_nhwc_close(got, ref, tol, "multiplier 2")
    assert len(count_transposes) > before


def test_nhwc_kernel_workspace_and_threads(rng):
    """No transposed copies in workspace_bytes; every thread count gives the same bits."""
    x = rng.standard_normal((3, 30, 31, 40)).astype(np.float32)
    wt = rng.standard_normal((3, 3, 1, 40)).astype(np.float32)
    kw = dict(padding=1, groups=40, data_format="NHWC")
    assert fastconv.workspace_bytes(x.shape, wt.shape, **kw) == 0
    assert fastconv.workspace_bytes(x.shape, wt.shape, pre_activation="relu", **kw) == 0
    assert fastconv.workspace_bytes(x.shape, wt.shape, method="separate",
                                    pre_activation="silu", **kw) == x.nbytes
    # what the kernel does not take still counts its copies
    assert fastconv.workspace_bytes(x.shape, wt.shape, pre_activation="silu",
                                    **kw) >= 2 * x.nbytes
    saved = fastconv.get_num_threads()
    try:
        outs = []
        for threads in (1, 2, 3):
            fastconv.set_num_threads(threads)
            outs.append(fastconv.conv2d(x, wt, None, activation="silu", **kw))
        for o in outs[1:]:
            np.testing.assert_array_equal(o, outs[0])
        for i in range(3):
            yi = fastconv.conv2d(x[i:i + 1], wt, None, activation="silu", **kw)
            np.testing.assert_array_equal(yi, outs[0][i:i + 1])
    finally:
        fastconv.set_num_threads(saved)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nhwc_kernel_special_values(dtype):
    """NaN and inf in x propagate to the outputs whose window holds them; inf
    and NaN weights give NaN where their tap reads the zero padding (and inf or
    NaN elsewhere), as torch's zero padding does."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(7)
    for c in (3, 17, 32):
        x = rng.uniform(0.5, 1.5, (1, 9, 10, c)).astype(dt)   # positive: no inf - inf
        x[0, 4, 5, 1] = np.nan
        x[0, 0, 0, 2] = np.inf
        x[0, 8, 9, 0] = -np.inf
        w = rng.uniform(0.5, 1.5, (3, 3, 1, c)).astype(dt)
        b = rng.standard_normal(c).astype(dt)
        for act in ("relu", None, "silu"):
            got = fastconv.conv2d(x, w, b, 1, 1, groups=c, activation=act, data_format="NHWC")
            ref, tol = dw_nhwc_ref(x, w, b, 1, 1, 1, act)
            assert np.isnan(got[0, 3:6, 4:7, 1]).all() and np.isinf(got[0, :2, :2, 2]).all()
            _assert_nhwc_close(got, ref, tol, ("x", c, act))
        wn = w.copy()
        wn[0, 0, 0, 0] = np.inf        # reads the top/left padding in the first row/column
        wn[2, 1, 0, c - 1] = np.nan    # reads the bottom padding in the last row
        for pre in (None, "relu"):
            got = fastconv.conv2d(x, wn, b, 1, 1, groups=c, activation="relu",
                                  pre_activation=pre, data_format="NHWC")
            ref, tol = dw_nhwc_ref(x, wn, b, 1, 1, 1, "relu", pre)
            assert np.isnan(got[0, 0, :, 0]).all() and np.isnan(got[0, :, 0, 0]).all()
            assert np.isnan(got[0, :, :, c - 1]).all()
            _assert_nhwc_close(got, ref, tol, ("w", c, pre))


@pytest.mark.skipif(not fastconv.config.config()["cpu_avx512"], reason="no AVX-512 here")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nhwc_kernel_avx512_equals_avx2(rng, dtype):
    """Same FMAs in the same order per output at either vector width: equal bits."""
    before = fastconv.config.config()["kernels"]
    dt = np.dtype(dtype)
    try:
        for (n, h, w, c, k, stride, padding, dilation) in NHWC_CASES[1:]:
            kh, kw = _pair(k)
            x = rng.standard_normal((n, h, w, c)).astype(dt)
            wt = rng.standard_normal((kh, kw, 1, c)).astype(dt)
            b = rng.standard_normal(c).astype(dt)
            outs = []
            for isa in ("avx512", "avx2+fma"):
                assert _core._force_kernels(isa)
                outs.append([fastconv.conv2d(x, wt, b, stride, padding, dilation, groups=c,
                                             activation=act, pre_activation=pre,
                                             data_format="NHWC")
                             for act, pre in (("relu", None), ("silu", "relu"), (None, None))])
            for a, r in zip(*outs):
                np.testing.assert_array_equal(a, r)
    finally:
        _core._force_kernels(before)


@pytest.fixture(scope="module")
def nhwc_kernel_sets():
    """The channels-last tests above under the other kernel sets, in
    subprocesses started together."""
    sets = {"avx2+fma": {"FASTCONV_DISABLE_AVX512": "1"},
            "portable": {"FASTCONV_DISABLE_SIMD": "1"}}
    here = os.path.dirname(os.path.abspath(__file__))
    code = ("import sys, pytest, fastconv; "
            "print('kernels:', fastconv.config.config()['kernels'], flush=True); "
            "sys.exit(pytest.main(['-x', '-q', '-p', 'no:cacheprovider', '-o', 'addopts=', %r, "
            "'-k', 'nhwc_kernel and not avx512 and not kernel_sets']))"
            % os.path.join(here, "test_depthwise.py"))
    base = {k: v for k, v in child_env().items()   # (this run's own choice left out)
            if k not in ("FASTCONV_ENABLE_AVX512", "FASTCONV_DISABLE_AVX512",
                         "FASTCONV_DISABLE_SIMD")}
    procs = {}
    for name, env in sets.items():
        procs[name] = subprocess.Popen([sys.executable, "-c", code], env=dict(base, **env),
                                       cwd=PKG_PARENT, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)
    return {name: (p.communicate()[0], p.returncode) for name, p in procs.items()}


@pytest.mark.parametrize("kernels", ["avx2+fma", "portable"])
def test_nhwc_kernel_sets(kernels, nhwc_kernel_sets):
    out, rc = nhwc_kernel_sets[kernels]
    expect = kernels if fastconv.config.config()["cpu_avx2_fma"] else "portable"
    assert f"kernels: {expect}" in out, out[-2000:]
    assert rc == 0, out[-4000:]


# ---- the shared kernel tester (tests/kernel_tester.py) ----------------------
from kernel_tester import check_family, kernel_set  # noqa: E402,F401

DW_CASES = [(2, 16, 13, 17, 16, 3, 1, 1, 1, 16), (1, 17, 9, 30, 17, 5, 2, 2, 1, 17),
            (2, 8, 12, 12, 8, 3, 1, 2, 2, 8), (1, 33, 7, 9, 33, 3, 2, 1, 1, 33)]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", DW_CASES, ids=str)
def test_depthwise_family_by_the_kernel_tester(rng, kernel_set, case, dtype, layout):
    family = "depthwise_nhwc" if layout == "NHWC" else "depthwise"
    check_family(rng, family, case, dtype, layout)
