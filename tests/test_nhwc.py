"""data_format="NHWC" runs natively (x read through its strides, HWIO weights
packed directly, channels-last output written by the kernels): compared with
the float64 reference and with the NCHW path on transposed copies."""
import numpy as np
import pytest

import fastconv
from fastconv import _core
from fastconv.conv import _plan

from reference import conv2d_act_ref
from test_conv2d import assert_close

METHODS = ["fused", "separate", "im2col", "auto"]
DTYPES = [np.float32, np.float64]

# (N, H, W, C, Cout, K, stride, padding, dilation, groups): in place with and
# without padding, the kw-folded small-C mode, the copy mode (pre-activation),
# 1x1, strided, dilated, grouped, partial channel blocks, tiles smaller than a
# tile, images smaller than the kernel's reach, depthwise (its channels-last
# kernel; a channel multiplier: the transpose fallback).
CASES = [
    (1, 9, 9, 16, 16, 3, 1, 1, 1, 1),
    (2, 11, 7, 24, 40, 3, 1, 1, 1, 1),
    (1, 10, 12, 32, 20, 3, 2, 0, 1, 1),
    (1, 13, 11, 3, 64, 7, 2, 3, 1, 1),
    (2, 8, 9, 5, 7, 3, 1, 1, 1, 1),
    (1, 7, 7, 64, 70, 1, 1, 0, 1, 1),
    (1, 14, 14, 32, 48, 1, 2, 0, 1, 1),
    (1, 12, 13, 8, 12, 3, 1, 2, 2, 1),
    (1, 10, 10, 8, 12, 3, 2, 1, 2, 2),
    (3, 14, 12, 6, 9, 3, 2, 2, 2, 3),
    (1, 2, 2, 16, 33, 3, 1, 1, 1, 1),
    (1, 3, 5, 130, 17, 3, 1, (0, 2), 1, 1),
    (1, 9, 10, 8, 8, 3, 1, 1, 1, 8),
    (2, 9, 10, 8, 16, 3, 2, 1, 1, 8),
    (1, 6, 5, 4, 4, 1, 1, 0, 1, 1),
]


def _make(rng, dtype, case):
    n, h, w, c, o, k, s, p, d, g = case
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    wt = rng.standard_normal((k, k, c // g, o)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    return x, wt, b, dict(stride=s, padding=p, dilation=d, groups=g)


def _nchw(fn_x, fn_w):
    return (np.ascontiguousarray(fn_x.transpose(0, 3, 1, 2)),
            np.ascontiguousarray(fn_w.transpose(3, 2, 0, 1)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("acts", [(None, None), ("relu", None), ("silu", "relu6"),
                                  ("gelu", "leaky_relu")])
def test_nhwc_matches_reference_and_nchw(rng, case, method, dtype, acts):
    x, w, b, kw = _make(rng, dtype, CASES[case])
    act, pre = acts
    got = fastconv.conv2d(x, w, b, activation=act, pre_activation=pre, method=method,
                          data_format="NHWC", **kw)
    ref, scale = conv2d_act_ref(x, w, b, activation=act, pre_activation=pre,
                                data_format="NHWC", **kw)
    assert got.flags.c_contiguous
    assert_close(got, ref, scale, dtype, what="NHWC")
    xc, wc = _nchw(x, w)
    nchw = fastconv.conv2d(xc, wc, b, activation=act, pre_activation=pre, method=method, **kw)
    assert_close(got, np.moveaxis(nchw, 1, -1).astype(np.float64), scale, dtype,
                 what="NHWC vs NCHW")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_nhwc_out_written_in_place(rng, method, dtype):
    for case in (CASES[0], CASES[3], CASES[8], CASES[12]):
        x, w, b, kw = _make(rng, dtype, case)
        ref, scale = conv2d_act_ref(x, w, b, activation="relu", data_format="NHWC", **kw)
        out = np.full(ref.shape, np.nan, dtype)
        r = fastconv.conv2d(x, w, b, activation="relu", method=method, data_format="NHWC",
                            out=out, **kw)
        assert r is out
        assert_close(out, ref, scale, dtype, what="out=")
        # unbatched
        out1 = np.full(ref.shape[1:], np.nan, dtype)
        r = fastconv.conv2d(x[0], w, b, activation="relu", method=method, data_format="NHWC",
                            out=out1, **kw)
        assert r is out1
        assert_close(out1, ref[0], scale[0], dtype, what="out= unbatched")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("view", ["nchw_transposed", "sliced", "reversed", "w_view",
                                  "unaligned"])
def test_nhwc_non_contiguous(rng, method, dtype, view):
    n, h, w_, c, o = 2, 9, 11, 12, 20
    big = rng.standard_normal((n, 2 * h, w_ + 3, c + 5)).astype(dtype)
    w = rng.standard_normal((3, 3, c, o)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    x = np.ascontiguousarray(big[:, :h, :w_, :c])
    if view == "nchw_transposed":   # an NCHW array seen as NHWC
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    elif view == "sliced":
        x = big[:, ::2, 1:w_ + 1, 2:c + 2]
    elif view == "reversed":
        x = x[:, ::-1, ::-1, ::-1]
    elif view == "w_view":          # OIHW weights seen as HWIO
        w = np.ascontiguousarray(w.transpose(3, 2, 0, 1)).transpose(2, 3, 1, 0)
    elif view == "unaligned":
        raw = np.zeros(x.nbytes + 1, np.uint8)
        xu = np.ndarray(x.shape, dtype, buffer=raw[1:])
        xu[...] = x
        x = xu
    for pre in (None, "relu"):
        got = fastconv.conv2d(x, w, b, padding=1, activation="silu", pre_activation=pre,
                              method=method, data_format="NHWC")
        ref, scale = conv2d_act_ref(x, w, b, padding=1, activation="silu",
                                    pre_activation=pre, data_format="NHWC")
        assert_close(got, ref, scale, dtype, what=view)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["fused", "separate", "auto"])
def test_nhwc_packed(rng, method, dtype):
    for case in CASES:
        x, w, b, kw = _make(rng, dtype, case)
        pw = fastconv.pack_weight(w, groups=kw["groups"], data_format="NHWC")
        got = fastconv.conv2d(x, pw, b, activation="tanh", method=method, data_format="NHWC",
                              **kw)
        raw = fastconv.conv2d(x, w, b, activation="tanh", method=method, data_format="NHWC",
                              **kw)
        np.testing.assert_array_equal(got, raw)


def test_nhwc_reads_input_in_place():
    """No workspace for a channels-last x without pre-activation; a copy with one."""
    x = np.zeros((1, 56, 56, 64), np.float32)
    w = np.zeros((3, 3, 64, 64), np.float32)
    p = _plan(x, w, None, 1, 1, 1, 1, None, None, "NHWC")
    assert not p.x.flags.c_contiguous and np.shares_memory(p.x, x)   # a view
    st = tuple(s // 4 for s in p.x.strides)
    assert _core.direct_workspace_ex(p.desc, st, p.pre._spec, 4) == 0
    pr = _plan(x, w, None, 1, 1, 1, 1, None, "relu", "NHWC")
    assert _core.direct_workspace_ex(pr.desc, st, pr.pre._spec, 4) == x.nbytes
    assert fastconv.workspace_bytes(x.shape, w.shape, padding=1, data_format="NHWC") == 0
    assert fastconv.workspace_bytes(x.shape, w.shape, padding=1, data_format="NHWC",
                                    pre_activation="relu") == x.nbytes
    # im2col and depthwise of a channel multiplier still transpose: counted
    assert fastconv.workspace_bytes(x.shape, w.shape, padding=1, data_format="NHWC",
                                    method="im2col") >= 2 * x.nbytes
    wd = np.zeros((3, 3, 1, 128), np.float32)
    assert fastconv.workspace_bytes(x.shape, wd.shape, padding=1, groups=64,
                                    data_format="NHWC") == x.nbytes + wd.nbytes + 2 * x.nbytes
    # multiplier 1: the channels-last depthwise kernel, in place
    wd = np.zeros((3, 3, 1, 64), np.float32)
    assert fastconv.workspace_bytes(x.shape, wd.shape, padding=1, groups=64,
                                    data_format="NHWC") == 0


def test_nhwc_no_transposed_temporaries(rng, monkeypatch):
    """The fused NHWC path never calls the NCHW fallback for a non-depthwise conv."""
    import fastconv._methods as C

    def boom(*a, **k):
        raise AssertionError("transposing fallback used")
    monkeypatch.setattr(C, "_nhwc_via_nchw", boom)
    x, w, b, kw = _make(rng, np.float32, CASES[1])
    out = np.empty((2, 11, 7, 40), np.float32)
    fastconv.conv2d(x, w, b, activation="relu", data_format="NHWC", out=out, **kw)
    fastconv.conv2d(x, w, b, pre_activation="relu", method="separate", data_format="NHWC",
                    **kw)
