"""The ONNX session's 1x1 GEMM (src/conv_1x1_gemm*.c, fastconv._core.conv1x1_gemm)
against float64 NumPy, and its use by fastconv.onnx's Conv nodes (strided
1x1 layers, fused residual joins) against the float64 reference."""
import math

import numpy as np
import pytest

from fastconv import _core
from fastconv.onnx._ops import pack_1x1_gemm

needs_kernel = pytest.mark.skipif(not _core.conv1x1_available(),
                                  reason="the 1x1 GEMM needs the AVX-512 kernel set")


def _ref(x, w, b, res, lo, hi):
    n, k, h, wd = x.shape
    m = w.shape[0]
    y = np.einsum("mk,nkp->nmp", w.reshape(m, k).astype(np.float64),
                  x.reshape(n, k, -1).astype(np.float64)).reshape(n, m, h, wd)
    y += b.astype(np.float64)[None, :, None, None]
    if res is not None:
        y += res
    return np.clip(y, lo, hi)


@needs_kernel
@pytest.mark.parametrize("n, k, m, h, w", [
    (1, 64, 256, 56, 56),     # ResNet's expansion (one K block)
    (2, 300, 13, 7, 9),       # 3 K blocks; M not a multiple of 6; partial vectors
    (1, 1024, 70, 14, 14),    # 8 K blocks; 196 pixels: 3 full tiles and a partial one
    (1, 16, 6, 1, 5),         # tiny
    (3, 129, 32, 4, 16),      # K one over a block; HW a multiple of 16, not of 64
])
@pytest.mark.parametrize("act", [None, "relu", "relu6"])
@pytest.mark.parametrize("with_res", [False, True])
def test_gemm_matches_float64(rng, n, k, m, h, w, act, with_res):
    x = rng.standard_normal((n, k, h, w)).astype(np.float32)
    wt = (rng.standard_normal((m, k, 1, 1)) / math.sqrt(k)).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    res = rng.standard_normal((n, m, h, w)).astype(np.float32) * 3 if with_res else None
    lo, hi = {None: (-np.inf, np.inf), "relu": (0.0, np.inf), "relu6": (0.0, 6.0)}[act]
    wp, bp = pack_1x1_gemm(wt, b)
    out = np.full((n, m, h, w), np.nan, np.float32)
    assert _core.conv1x1_gemm(x, wp, bp, out, res, lo, hi)
    np.testing.assert_allclose(out, _ref(x, wt, b, res, lo, hi), rtol=1e-4, atol=1e-4)


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m, k, n, lda", [
    (4608, 512, 32, 512),   # ResNet's last stage: a 3x3 kernel's HWIO rows x 32 pixels
    (13, 7, 5, 9),          # a column slice (rows 9 apart); M not a multiple of 6
    (100, 300, 200, 300),   # 3 K blocks, 4 pixel tiles with a partial one
    (6, 1, 1, 1),
])
def test_gemm_plain_matches_float64(rng, m, k, n, lda, threads):
    """gemm_plain: the same kernel reading a plain row-major matrix (the input
    gradient's GEMM, fastconv/grad.py) with rows lda apart."""
    import fastconv
    a = rng.standard_normal((m, lda)).astype(np.float32)[:, :k]
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = np.full((m, n), np.nan, np.float32)
    before = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(threads)
        assert _core.gemm_plain(a, b, c)
    finally:
        fastconv.set_num_threads(before)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(c, ref, rtol=1e-5, atol=1e-5 * math.sqrt(k))


@needs_kernel
@pytest.mark.parametrize("m, k", [(1, 2), (1, 7), (5, 1), (1, 1)])
def test_gemm_plain_takes_any_stride_on_length_one_axes(rng, m, k):
    """A one-row (or one-column) transposed view: the stride of its length-1
    axis is never used (the backward's GEMM for a 1x1 image of one channel
    passed a (1, 2) view with rows 4 bytes apart)."""
    a = np.ascontiguousarray(rng.standard_normal((k, m)).astype(np.float32)).T
    b = rng.standard_normal((k, 3)).astype(np.float32)
    c = np.full((m, 3), np.nan, np.float32)
    assert _core.gemm_plain(a, b, c)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-5,
                               atol=1e-6)


@needs_kernel
def test_gemm_plain_refuses_bad_arrays(rng):
    a = np.ones((8, 4), np.float32)
    b = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="do not match"):
        _core.gemm_plain(a, b, np.empty((8, 4), np.float32))
    with pytest.raises(ValueError, match="unit column stride"):
        _core.gemm_plain(np.ones((4, 8), np.float32).T, b, np.empty((8, 3), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.gemm_plain(a, np.ones((3, 4), np.float32).T, np.empty((8, 3), np.float32))
    with pytest.raises(TypeError, match="float32"):
        _core.gemm_plain(a.astype(np.float64), b, np.empty((8, 3), np.float32))
    buf = np.ones((8, 8), np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        _core.gemm_plain(buf[:, :4], b, buf.reshape(-1)[:24].reshape(8, 3))
    c = np.empty((8, 3), np.float32)
    assert _core.gemm_plain(a, b, c)
    np.testing.assert_array_equal(c, 4.0)


@needs_kernel
def test_gemm_into_a_channel_slice_and_onto_its_residual(rng):
    x = rng.standard_normal((1, 40, 9, 11)).astype(np.float32)
    wt = rng.standard_normal((20, 40, 1, 1)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    wp, bp = pack_1x1_gemm(wt, b)
    # a Concat's buffer: only channels [7, 27) are written
    big = np.full((1, 33, 9, 11), 5.0, np.float32)
    assert _core.conv1x1_gemm(x, wp, bp, big[:, 7:27], None, 0.0)
    np.testing.assert_allclose(big[:, 7:27], _ref(x, wt, b, None, 0, np.inf), rtol=1e-4,
                               atol=1e-4)
    assert (big[:, :7] == 5).all() and (big[:, 27:] == 5).all()
    # out is the residual itself (in place)
    res = rng.standard_normal((1, 20, 9, 11)).astype(np.float32)
    want = _ref(x, wt, b, res, -np.inf, np.inf)
    assert _core.conv1x1_gemm(x, wp, bp, res, res)
    np.testing.assert_allclose(res, want, rtol=1e-4, atol=1e-4)


@needs_kernel
def test_gemm_nan_passes_relu(rng):
    x = rng.standard_normal((1, 8, 4, 4)).astype(np.float32)
    x[0, 3, 1, 2] = np.nan
    wt = rng.standard_normal((6, 8, 1, 1)).astype(np.float32)
    wp, bp = pack_1x1_gemm(wt, None)
    out = np.empty((1, 6, 4, 4), np.float32)
    assert _core.conv1x1_gemm(x, wp, bp, out, None, 0.0)
    assert np.isnan(out[0, :, 1, 2]).all()
    assert not np.isnan(np.delete(out.reshape(6, 16), 6, axis=1)).any()


def test_gemm_refuses_bad_arrays(rng):
    x = rng.standard_normal((1, 8, 4, 4)).astype(np.float32)
    wp, bp = pack_1x1_gemm(rng.standard_normal((6, 8, 1, 1)).astype(np.float32), None)
    out = np.empty((1, 6, 4, 4), np.float32)
    with pytest.raises(ValueError, match="wp"):
        _core.conv1x1_gemm(x[:, :7].copy(), wp, bp, out)
    with pytest.raises(ValueError, match="out"):
        _core.conv1x1_gemm(x, wp, bp, np.empty((1, 6, 4, 5), np.float32))
    with pytest.raises(TypeError, match="x"):
        _core.conv1x1_gemm(x.astype(np.float64), wp, bp, out)
    with pytest.raises(ValueError, match="contiguous"):
        _core.conv1x1_gemm(np.asfortranarray(x), wp, bp, out)
    with pytest.raises(ValueError, match="bias"):
        _core.conv1x1_gemm(x, wp, bp[:5].copy(), out)
    with pytest.raises(ValueError, match="res"):
        _core.conv1x1_gemm(x, wp, bp, out, np.empty((1, 6, 4, 3), np.float32))
    buf = np.empty((1, 8, 4, 4), np.float32)   # out over x
    with pytest.raises(ValueError, match="overlaps"):
        _core.conv1x1_gemm(buf, wp, bp, buf[:, :6])


# ---- through the session -----------------------------------------------------
onnx = pytest.importorskip("onnx", reason="the ONNX session tests need onnx")
from onnx import helper  # noqa: E402

import fastconv.onnx as fo  # noqa: E402
from test_onnx_session import make_model  # noqa: E402


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("tune", [False, True])
def test_session_residual_join_on_1x1(rng, stride, tune):
    """x -> Conv1x1(stride) -> Add(shortcut) -> Relu, the shortcut a strided 1x1
    Conv of x too (ResNet's downsampling block): one fused Conv."""
    c, m, h = 24, 40, 14
    w1 = (rng.standard_normal((m, c, 1, 1)) / 5).astype(np.float32)
    w2 = (rng.standard_normal((m, c, 1, 1)) / 5).astype(np.float32)
    b1 = rng.standard_normal(m).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], "short", strides=[stride] * 2),
             helper.make_node("Conv", ["x", "w2"], ["c"], "main", strides=[stride] * 2),
             helper.make_node("Add", ["a", "c"], ["s"], "join"),
             helper.make_node("Relu", ["s"], ["y"], "relu")]
    model = make_model(nodes, [("x", [2, c, h, h])], [("y", None)],
                       {"w1": w1, "w2": w2, "b1": b1})
    sess = fo.InferenceSession(model, tune=tune)
    assert [n.op_type for n in sess.nodes] == ["Conv", "Conv"]
    fused = sess.nodes[1]
    assert fused.fused["residual"] and fused.inputs[3] == "a" and fused.outputs == ["y"]
    x = rng.standard_normal((2, c, h, h)).astype(np.float32)
    xs = x[:, :, ::stride, ::stride]
    a = _ref(xs, w1, b1, None, -np.inf, np.inf)
    ref = _ref(xs, w2, np.zeros(m, np.float32), a, 0.0, np.inf)
    for _ in range(2):   # the first run tunes
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], ref, rtol=1e-4, atol=1e-4)
    if _core.conv1x1_available() and not tune:
        kern = [k for k, *_ in sess._steps][1]
        assert kern._methods_for(x[:, :, ::stride, ::stride], (0, 0))[-1] == "gemm1x1"


@pytest.mark.parametrize("act", ["Relu", None])
@pytest.mark.parametrize("method", ["gemm1x1", "auto"])   # (auto: conv2d, then the add)
def test_session_grouped_1x1_with_residual(rng, act, method):
    """ShuffleNet's grouped 1x1 Convs: one GEMM per group on channel slices."""
    g, c, m, h = 4, 36, 28, 9
    w = (rng.standard_normal((m, c // g, 1, 1)) / 3).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], "gconv", group=g),
             helper.make_node("Add", ["c", "r"], ["y" if act is None else "s"], "join")]
    if act:
        nodes.append(helper.make_node(act, ["s"], ["y"], "act"))
    model = make_model(nodes, [("x", [1, c, h, h]), ("r", [1, m, h, h])], [("y", None)],
                       {"w": w, "b": b})
    sess = fo.InferenceSession(model, tune=False)
    assert [n.op_type for n in sess.nodes] == ["Conv"]
    sess._steps[0][0].method = method
    x = rng.standard_normal((1, c, h, h)).astype(np.float32)
    r = rng.standard_normal((1, m, h, h)).astype(np.float32)
    k, mg = c // g, m // g
    ref = np.concatenate([_ref(x[:, i * k:(i + 1) * k], w[i * mg:(i + 1) * mg],
                               b[i * mg:(i + 1) * mg], r[:, i * mg:(i + 1) * mg],
                               0.0 if act else -np.inf, np.inf) for i in range(g)], axis=1)
    np.testing.assert_allclose(sess.run(None, {"x": x, "r": r})[0], ref, rtol=1e-4, atol=1e-4)


def test_session_residual_join_on_3x3_and_broadcast_left_alone(rng):
    """A 3x3 Conv takes the join too (added after conv2d); an Add that
    broadcasts is not fused."""
    w = (rng.standard_normal((4, 4, 3, 3)) / 6).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], "conv", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["x", "c"], ["y"], "join"),
             helper.make_node("Conv", ["y", "w"], ["d"], "conv2", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["d", "bias"], ["z"], "bcast")]
    bias = rng.standard_normal((1, 4, 1, 1)).astype(np.float32)   # an input: not folded
    model = make_model(nodes, [("x", [1, 4, 6, 6]), ("bias", [1, 4, 1, 1])], [("z", None)],
                       {"w": w})
    sess = fo.InferenceSession(model)
    assert [n.op_type for n in sess.nodes] == ["Conv", "Conv", "Add"]
    from reference import conv2d_ref
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    y = conv2d_ref(x, w, padding=(1, 1, 1, 1)) + x
    ref = conv2d_ref(y, w, padding=(1, 1, 1, 1)) + bias
    np.testing.assert_allclose(sess.run(None, {"x": x, "bias": bias})[0], ref, rtol=1e-4,
                               atol=1e-4)
