"""Fast math (fastconv.set_fast_math / fast_math()) and the Winograd rule
(fastconv.winograd_pays) in conv2d, workspace_bytes, the Conv2D layers and the
ONNX session.

Which path ran is told apart by the bits: the Winograd and the direct paths
round differently (each test checks that its two references differ), and
"auto" must give exactly the bits of the path it chose.  Every result is also
compared with the float64 reference of tests/reference.py at the Winograd
tolerance of tests/test_winograd.py (300 eps of each output's bound).
"""
import threading

import numpy as np
import pytest

import fastconv
from fastconv import _core
from fastconv import conv as C
from fastconv import layers as L
from reference import conv2d_act_ref
from test_winograd import assert_wino_close


@pytest.fixture(autouse=True)
def fast_math_off():
    """Every test starts and ends with the process-wide switch off."""
    fastconv.set_fast_math(False)
    yield
    fastconv.set_fast_math(False)


def data(rng, n=1, c=32, h=32, w=32, cout=32, dtype=np.float32, groups=1):
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((cout, c // groups, 3, 3)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    return x, wt, b


# ---- the switch ---------------------------------------------------------------

def test_fast_math_is_off_by_default_in_a_fresh_process():
    from _child import run_python
    out = run_python(["-c", "import fastconv; print(fastconv.get_fast_math())"],
                     capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_set_get_and_the_block():
    assert fastconv.get_fast_math() is False
    assert fastconv.set_fast_math(True) is False     # returns the previous setting
    assert fastconv.get_fast_math() is True
    with fastconv.fast_math(False):
        assert fastconv.get_fast_math() is False
        with fastconv.fast_math():
            assert fastconv.get_fast_math() is True
        assert fastconv.get_fast_math() is False
    assert fastconv.get_fast_math() is True
    assert fastconv.set_fast_math(np.bool_(False)) is True
    with pytest.raises(RuntimeError):
        with fastconv.fast_math():
            assert fastconv.get_fast_math() is True
            raise RuntimeError("leaves the block")
    assert fastconv.get_fast_math() is False         # restored by the exception too
    for bad in (1, "yes", None, 0.0):
        with pytest.raises(TypeError, match="flag must be a bool"):
            fastconv.set_fast_math(bad)
        with pytest.raises(TypeError, match="flag must be a bool"):
            with fastconv.fast_math(bad):
                pass
    assert fastconv.get_fast_math() is False


def test_show_config_reports_fast_math():
    import io
    buf = io.StringIO()
    fastconv.show_config(file=buf)
    assert "fast math        : off" in buf.getvalue()
    with fastconv.fast_math():
        buf = io.StringIO()
        fastconv.show_config(file=buf)
    assert "fast math        : on" in buf.getvalue()


def test_block_is_per_thread_and_the_switch_process_wide():
    seen = {}
    inside, done = threading.Event(), threading.Event()

    def other():
        inside.wait()
        seen["during_block"] = fastconv.get_fast_math()
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with fastconv.fast_math():
        inside.set()
        done.wait()
    t.join()
    assert seen["during_block"] is False             # another thread's block is not ours

    fastconv.set_fast_math(True)
    t = threading.Thread(target=lambda: seen.__setitem__("global", fastconv.get_fast_math()))
    t.start()
    t.join()
    assert seen["global"] is True


# ---- the rule -------------------------------------------------------------------

def test_winograd_pays_tiles_channels_and_geometry():
    pays = fastconv.winograd_pays
    tp, tr, mc = C.WINOGRAD_MIN_TILES_PACKED, C.WINOGRAD_MIN_TILES_PLAIN, C.WINOGRAD_MIN_CHANNELS
    assert tr > tp
    w = (mc, mc, 3, 3)
    # N images of one 4x4 output tile each (6x6 input, no padding)
    assert pays((tp, mc, 6, 6), w, packed=True)
    assert not pays((tp - 1, mc, 6, 6), w, packed=True)
    assert pays((tr, mc, 6, 6), w, packed=False)
    assert not pays((tr - 1, mc, 6, 6), w, packed=False)
    assert pays((tr - 1, mc, 6, 6), w, packed=True)
    # partial tiles count: a 5x4 output is 2 tiles per image
    assert pays((-(-tp // 2), mc, 7, 6), w, packed=True)
    assert not pays((-(-tp // 2), mc, 6, 6), w, packed=True)
    big = (1, 64, 56, 56)
    assert pays(big, (64, 64, 3, 3), padding=1, packed=True)
    assert pays(big, (64, 64, 3, 3), padding=1, packed=False)
    # channels per group, in and out
    assert not pays((1, mc - 1, 56, 56), (64, mc - 1, 3, 3), packed=True)
    assert not pays(big, (mc - 1, 64, 3, 3), packed=True)
    assert pays(big, (64, 64 // 4, 3, 3), groups=4, packed=True)        # 16 per group
    assert not pays(big, (64, 64 // 8, 3, 3), groups=8, packed=True)    # 8 per group
    assert not pays(big, (64, 1, 3, 3), groups=64, packed=True)         # depthwise
    # geometry it cannot do
    assert not pays(big, (64, 64, 5, 5), padding=2, packed=True)
    assert not pays(big, (64, 64, 1, 1), packed=True)
    assert not pays(big, (64, 64, 3, 3), stride=2, packed=True)
    assert not pays(big, (64, 64, 3, 3), dilation=2, packed=True)
    # NHWC: the same layer in the other layout, the same answer
    assert pays((1, 56, 56, 64), (3, 3, 64, 64), padding=1, packed=True, data_format="NHWC")
    assert not pays((1, 7, 7, 512), (3, 3, 512, 512), padding=1, packed=True,
                    data_format="NHWC")
    # ResNet-18 at 224, batch 1: the 56, 28 and 14 stages yes (14: 49 of the plan's
    # F(2x2) tiles, 16 of F(4x4)'s), 7 no (16 F(2x2) tiles)
    for c, s, want in ((64, 56, True), (128, 28, True), (256, 14, True), (512, 7, False)):
        assert pays((1, c, s, s), (c, c, 3, 3), padding=1, packed=True) is want, (c, s)
    with pytest.raises(TypeError, match="packed must be a bool"):
        pays(big, (64, 64, 3, 3), packed=None)
    with pytest.raises(ValueError, match="channels"):
        pays(big, (64, 32, 3, 3), packed=True)


# ---- conv2d ---------------------------------------------------------------------

def three_ways(x, w, b, **kw):
    """(auto, fused, winograd) outputs of one call, fast math as it is now."""
    return (fastconv.conv2d(x, w, b, **kw), fastconv.conv2d(x, w, b, method="fused", **kw),
            fastconv.conv2d(x, w, b, method="winograd", **kw))


@pytest.mark.parametrize("data_format,dtype", [("NCHW", np.float32), ("NHWC", np.float32),
                                               ("NCHW", np.float64)])
def test_auto_takes_winograd_only_under_fast_math_where_it_pays(rng, data_format, dtype):
    # 16 x 16 output tiles of 4x4 (256 >= the plain rule's 128): Winograd pays
    x, w, b = data(rng, 1, 32, 64, 64, 32, dtype=dtype)
    if data_format == "NHWC":
        x, w = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(
            w.transpose(2, 3, 1, 0))
    kw = dict(padding=1, activation="relu", data_format=data_format)
    assert fastconv.winograd_pays(x.shape, w.shape, padding=1, packed=False,
                                  data_format=data_format)
    ref, scale = conv2d_act_ref(x, w, b, 1, 1, 1, 1, activation="relu", data_format=data_format)
    for round_ in range(2):   # the second round goes through the call caches
        auto, fused, wino = three_ways(x, w, b, **kw)
        assert not np.array_equal(fused, wino)       # the two paths round differently
        assert np.array_equal(auto, fused), round_   # off: the direct path's bits
        with fastconv.fast_math():
            auto_fm = fastconv.conv2d(x, w, b, **kw)
            out = np.empty_like(auto_fm)
            assert fastconv.conv2d(x, w, b, out=out, **kw) is out
        assert np.array_equal(auto_fm, wino), round_
        assert np.array_equal(out, wino), round_
        assert_wino_close(auto_fm, ref, scale, dtype, "auto under fast math")
        fastconv.set_fast_math(True)                 # the process-wide switch alike
        assert np.array_equal(fastconv.conv2d(x, w, b, **kw), wino), round_
        fastconv.set_fast_math(False)
        assert np.array_equal(fastconv.conv2d(x, w, b, **kw), fused), round_


def test_auto_stays_direct_where_the_rule_says_so(rng):
    cases = [data(rng, 1, 64, 8, 8, 64),            # 4 tiles
             data(rng, 1, 8, 64, 64, 8),            # 8 channels
             data(rng, 1, 64, 28, 28, 64)]          # 49 tiles: packed yes, plain no
    with fastconv.fast_math():
        for x, w, b in cases:
            assert not fastconv.winograd_pays(x.shape, w.shape, padding=1, packed=False)
            for _ in range(2):
                auto, fused, wino = three_ways(x, w, b, padding=1)
                assert np.array_equal(auto, fused)
                assert not np.array_equal(auto, wino)
        # strided / 1x1: auto works as ever
        x, w, b = data(rng, 1, 64, 64, 64, 64)
        assert np.array_equal(fastconv.conv2d(x, w, b, stride=2),
                              fastconv.conv2d(x, w, b, stride=2, method="fused"))


def test_packed_weights_under_auto(rng):
    x, w, b = data(rng, 1, 32, 28, 28, 32)          # 49 tiles: < the plain rule
    uw = fastconv.pack_weight(w, method="winograd")
    pw = fastconv.pack_weight(w)
    wino = fastconv.conv2d(x, w, b, padding=1, method="winograd")
    fused = fastconv.conv2d(x, w, b, padding=1, method="fused")
    assert not np.array_equal(wino, fused)
    with pytest.raises(ValueError, match="packed with method='winograd'.*fast math"):
        fastconv.conv2d(x, uw, b, padding=1)
    with fastconv.fast_math():
        # a Winograd pack runs Winograd (whatever the tile count), a direct pack direct
        assert np.array_equal(fastconv.conv2d(x, uw, b, padding=1), wino)
        assert np.array_equal(fastconv.conv2d(x, pw, b, padding=1), fused)
        assert np.array_equal(fastconv.conv2d(x, w, b, padding=1), fused)
        with pytest.raises(ValueError, match="stride 1"):
            fastconv.conv2d(x, uw, b, padding=1, stride=2)


def test_workspace_bytes_follows_the_choice(rng):
    big, small = (1, 32, 64, 64), (1, 32, 8, 8)
    w = (32, 32, 3, 3)
    for shape in (big, small):
        direct = fastconv.workspace_bytes(shape, w, padding=1, method="fused")
        wino = fastconv.workspace_bytes(shape, w, padding=1, method="winograd")
        assert direct != wino
        assert fastconv.workspace_bytes(shape, w, padding=1) == direct
        with fastconv.fast_math():
            want = wino if shape == big else direct
            assert fastconv.workspace_bytes(shape, w, padding=1) == want, shape


# ---- layers -----------------------------------------------------------------------

@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_conv2d_layer_auto_under_fast_math(rng, data_format):
    last = data_format == "channels_last"
    layer = L.Conv2D(32, 3, padding="same", activation="relu", data_format=data_format)
    x = rng.standard_normal((1, 32, 32, 32)).astype(np.float32)   # 64 tiles
    xs = rng.standard_normal((1, 32, 8, 8)).astype(np.float32)    # 4 tiles
    if last:
        x, xs = (np.ascontiguousarray(a.transpose(0, 2, 3, 1)) for a in (x, xs))
    fmt = "NHWC" if last else "NCHW"

    def refs(a):
        k = layer.kernel if last else layer.kernel.transpose(3, 2, 0, 1)
        kw = dict(padding=1, activation="relu", data_format=fmt)
        return (fastconv.conv2d(a, k, layer.bias, method="fused", **kw),
                fastconv.conv2d(a, k, layer.bias, method="winograd", **kw),
                conv2d_act_ref(a, k, layer.bias, 1, 1, 1, 1, activation="relu",
                               data_format=fmt))

    y = layer(x)
    fused, wino, (ref, scale) = refs(x)
    assert not np.array_equal(fused, wino)
    assert layer.last_method == "auto" and np.array_equal(y, fused)
    with fastconv.fast_math():
        for _ in range(2):
            y = layer(x)
            assert layer.last_method == "winograd" and np.array_equal(y, wino)
        assert_wino_close(y, ref, scale, np.float32, "layer under fast math")
        ys = layer(xs)                                   # too few tiles: direct
        assert layer.last_method == "auto" and np.array_equal(ys, refs(xs)[0])
        # new weights: the transform is made again
        k2 = rng.standard_normal(layer.kernel.shape).astype(np.float32)
        layer.set_weights([k2, layer.bias])
        y2 = layer(x)
        _, wino2, (ref2, scale2) = refs(x)
        assert layer.last_method == "winograd" and np.array_equal(y2, wino2)
        assert_wino_close(y2, ref2, scale2, np.float32, "after set_weights")
    assert np.array_equal(layer(x), refs(x)[0]) and layer.last_method == "auto"


def test_folded_model_under_fast_math_uses_the_folded_kernel(rng):
    """fold_batchnorm copies the conv layer: its Winograd transform must be of
    the folded kernel, not the one the unfolded layer transformed first."""
    inp = L.Input((32, 32, 32))
    conv = L.Conv2D(32, 3, padding="same", use_bias=False, data_format="channels_first")
    bn = L.BatchNormalization(axis=1)
    model = L.Model(inp, bn(conv(inp)))
    x = rng.standard_normal((1, 32, 32, 32)).astype(np.float32)
    model(x)
    bn.set_weights([rng.uniform(0.5, 1.5, 32).astype(np.float32),
                    rng.standard_normal(32).astype(np.float32),
                    rng.standard_normal(32).astype(np.float32),
                    rng.uniform(0.5, 1.5, 32).astype(np.float32)])
    with fastconv.fast_math():
        y = model(x)                    # transforms the unfolded kernel
        folded = model.fold_batchnorm()
        yf = folded(x)
    (fconv,) = [l for l in folded.layers if isinstance(l, L.Conv2D)]
    assert fconv.last_method == "winograd"
    k = fconv.kernel.transpose(3, 2, 0, 1)
    ref, scale = conv2d_act_ref(x, k, fconv.bias, 1, 1, 1, 1)
    assert_wino_close(yf, ref, scale, np.float32, "folded")
    np.testing.assert_allclose(yf, y, rtol=0, atol=1e-4 * np.abs(y).max())


def test_layer_backward_under_fast_math_reads_the_plain_kernel(rng):
    layer = L.Conv2D(32, 3, padding="same", data_format="channels_first", dtype="float64")
    x = rng.standard_normal((1, 32, 32, 32))
    layer(x)
    g = rng.standard_normal((1, 32, 32, 32))
    y0 = layer(x, training=True)
    gin0 = layer.backward(g)
    gk0 = layer.gradients[0].copy()
    with fastconv.fast_math():
        y1 = layer(x, training=True)
        assert layer.last_method == "winograd"
        gin1 = layer.backward(g)
    assert not np.array_equal(y0, y1)
    np.testing.assert_allclose(y1, y0, rtol=0, atol=1e-11 * np.abs(y0).max())
    # linear layer: the gradients do not depend on the forward's rounding
    np.testing.assert_allclose(gin1, gin0, rtol=1e-12, atol=1e-12 * np.abs(gin0).max())
    np.testing.assert_allclose(layer.gradients[0], gk0, rtol=1e-12,
                               atol=1e-12 * np.abs(gk0).max())


# ---- the ONNX session ---------------------------------------------------------------

def conv_model(rng, c=32, hw=32, stride=1, batch=1):
    onnx = pytest.importorskip("onnx", reason="fastconv.onnx needs the onnx package")
    from onnx import TensorProto, helper, numpy_helper
    w = rng.standard_normal((c, c, 3, 3)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    ho = (hw + 2 - 3) // stride + 1
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], "conv", pads=[1, 1, 1, 1],
                              strides=[stride, stride]),
             helper.make_node("Relu", ["c"], ["y"], "relu")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, c, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, c, ho, ho])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, w, b


def conv_kernels(sess):
    return [k for k, *_ in sess._steps if hasattr(k, "last_method")]


@pytest.mark.parametrize("tune", [False, True])
def test_onnx_session_fast_math_runs_winograd_and_matches_onnxruntime(rng, tune):
    ort = pytest.importorskip("onnxruntime", reason="comparison with onnxruntime")
    import fastconv.onnx as fo
    model, w, b = conv_model(rng)
    x = rng.standard_normal((1, 32, 32, 32)).astype(np.float32)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    (want,) = ort.InferenceSession(model.SerializeToString(), so,
                                   providers=["CPUExecutionProvider"]).run(None, {"x": x})
    ref, scale = conv2d_act_ref(x, w, b, 1, 1, 1, 1, activation="relu")
    wino = fastconv.conv2d(x, w, b, padding=1, activation="relu", method="winograd")
    fused = fastconv.conv2d(x, w, b, padding=1, activation="relu", method="fused")
    assert not np.array_equal(wino, fused)
    sess = fo.InferenceSession(model, tune=tune, fast_math=True)
    (k,) = conv_kernels(sess)
    assert sess.fast_math and isinstance(k.winograd, _core.WinogradWeight)
    for _ in range(2):
        (got,) = sess.run(None, {"x": x})
        if not tune:   # the rule's choice (64 tiles, 32 channels)
            assert k.last_method == "winograd"
        if k.last_method == "winograd":
            assert np.array_equal(got, wino)
        assert_wino_close(got, ref, scale, np.float32, "session")
        # against ORT: both within the tolerance of the reference
        assert np.all(np.abs(got - want) <= 2 * 300 * np.finfo(np.float32).eps * scale)
    if tune:
        assert "winograd" in k._methods_for(x, (1, 1))   # a candidate, timed
    plain = fo.InferenceSession(model, tune=False, fast_math=False)
    (kp,) = conv_kernels(plain)
    (got,) = plain.run(None, {"x": x})
    assert kp.winograd is None and kp.last_method != "winograd"
    assert not np.array_equal(got, wino)


def test_onnx_session_fast_math_default_and_ineligible_nodes(rng):
    pytest.importorskip("onnx", reason="fastconv.onnx needs the onnx package")
    import fastconv.onnx as fo
    model, w, b = conv_model(rng)
    assert fo.InferenceSession(model).fast_math is False
    fastconv.set_fast_math(True)
    sess = fo.InferenceSession(model, tune=False)        # None: the switch at creation
    fastconv.set_fast_math(False)
    assert sess.fast_math is True
    x = rng.standard_normal((1, 32, 32, 32)).astype(np.float32)
    sess.run(None, {"x": x})
    assert conv_kernels(sess)[0].last_method == "winograd"
    # a strided Conv gets no transform; a small input stays direct
    strided, *_ = conv_model(rng, stride=2)
    sk = conv_kernels(fo.InferenceSession(strided, fast_math=True))[0]
    assert sk.winograd is None
    # a static input too small for the rule: no transform made (it would never be read)
    small, *_ = conv_model(rng, hw=8)
    s = fo.InferenceSession(small, tune=False, fast_math=True)
    (sk,) = conv_kernels(s)
    assert sk.winograd is None
    s.run(None, {"x": rng.standard_normal((1, 32, 8, 8)).astype(np.float32)})
    assert sk.last_method != "winograd"
    # a symbolic batch: transformed, and the rule decides per input shape
    # (4 tiles per 8x8 image: 8 images make the 32 tiles it needs)
    model, w, b = conv_model(rng, hw=8, batch="N")
    s = fo.InferenceSession(model, tune=False, fast_math=True)
    (sk,) = conv_kernels(s)
    assert isinstance(sk.winograd, _core.WinogradWeight)
    for n, want in ((1, False), (7, False), (8, True)):
        x = rng.standard_normal((n, 32, 8, 8)).astype(np.float32)
        (got,) = s.run(None, {"x": x})
        assert (sk.last_method == "winograd") is want, n
        ref, scale = conv2d_act_ref(x, w, b, 1, 1, 1, 1, activation="relu")
        assert_wino_close(got, ref, scale, np.float32, f"batch {n}")
    with pytest.raises(TypeError, match="fast_math"):
        fo.InferenceSession(model, fast_math="on")
