"""Whole networks: the ResNet-18 example against torch, a Keras model's
weights copied layer by layer, weight files."""
import importlib.util
import os

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np
import pytest

# Keras 3 on NumPy 2 warns about __array__(copy=...) inside its own code.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

from fastconv import layers as L

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example():
    pytest.importorskip("torch")
    path = os.path.join(ROOT, "examples", "resnet18.py")
    spec = importlib.util.spec_from_file_location("resnet18_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("version", [1, 2])
def test_resnet18_matches_torch(version):
    ex = _example()
    r = ex.run(version, size=64, batch=1, threads=1, timing=False)
    tol = 1e-4 * max(1.0, r["scale"])
    assert r["max_abs_err"] <= tol, r
    assert r["max_abs_err_folded"] <= tol, r
    # folding changes the output by float32 rounding only, and removes layers
    assert r["folding_change"] <= 1e-5 * max(1.0, r["scale"]), r
    assert r["folded_layers"] < r["layers"]
    assert r["params"] > 11_000_000


@pytest.mark.parametrize("version", [1, 2])
def test_resnet18_winograd_on_every_3x3_stride1_layer(version):
    ex = _example()
    r = ex.run(version, size=64, batch=2, threads=1, timing=False, method="winograd")
    # 2 per block but the first of the three strided blocks: 13 layers, all ran it
    assert r["winograd_layers"] == 13 and r["winograd_ran"] == (13, 13), r
    tol = ex.WINOGRAD_RTOL * r["scale"]
    assert r["tolerance"] == tol
    assert r["max_abs_err"] <= tol and r["max_abs_err_folded"] <= tol, r
    assert r["top1_mismatch"] == 0, r


def test_resnet18_fast_math_follows_the_rule_and_ort_matches():
    pytest.importorskip("onnxruntime", reason="the --ort comparison")
    ex = _example()
    import fastconv
    r = ex.run(1, size=224, batch=1, threads=1, timing=False, method="fast_math", ort=True)
    # at 224, batch 1: the 56x56 stage's 4 layers, the 28x28 stage's 3 and the
    # 14x14 stage's 3 (F(2x2) tiles), not the 7x7 stage
    assert r["winograd_ran"] == (10, 10), r
    assert fastconv.get_fast_math() is False          # the block is left
    tol = ex.WINOGRAD_RTOL * r["scale"]
    assert r["max_abs_err_folded"] <= tol and r["max_abs_err_ort"] <= tol, r
    assert r["max_abs_err_fastconv_onnx"] <= tol, r
    # tuned by timing: Winograd where it won, among the 10 the rule allows
    assert r["fastconv_onnx_winograd_nodes"] <= 10, r


def test_resnet18_weights_file_roundtrip(tmp_path):
    ex = _example()
    net = ex.random_torch_resnet18(1, seed=3)
    model = ex.fastconv_resnet18(net, 32)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    y = model(x)
    path = tmp_path / "resnet18.npz"
    model.save_weights(path)
    other = ex.fastconv_resnet18(ex.random_torch_resnet18(1, seed=4), 32)
    other.load_weights(path)
    np.testing.assert_array_equal(other(x), y)
    with np.load(path) as f:
        assert len(f.files) == len(model.get_weights())


def test_copy_weights_from_keras_model(rng):
    """The documented way: same architecture, then set_weights per layer."""
    try:
        import keras
    except Exception as e:
        pytest.skip(f"keras not usable: {e}")
    kmodel = keras.Sequential([
        keras.Input((12, 12, 3)),
        keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"),
        keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(5, activation="softmax"),
    ])
    for layer in kmodel.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 2, 8), rng.standard_normal(8),
                               rng.standard_normal(8), rng.uniform(0.5, 2, 8)])
    model = L.Sequential([
        L.Conv2D(8, 3, strides=2, padding="same", use_bias=False),
        L.BatchNormalization(),
        L.Activation("relu"),
        L.DepthwiseConv2D(3, padding="same", activation="relu6"),
        L.MaxPooling2D(),
        L.Flatten(),
        L.Dense(5, activation="softmax"),
    ], input_shape=(12, 12, 3))
    for ours, theirs in zip(model.layers, kmodel.layers):
        ours.set_weights(theirs.get_weights())
    x = rng.standard_normal((4, 12, 12, 3)).astype(np.float32)
    ref = np.asarray(keras.ops.convert_to_numpy(kmodel(x, training=False)))
    np.testing.assert_allclose(model(x), ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.fold_batchnorm()(x), ref, rtol=1e-4, atol=1e-6)
    # and the whole list at once, in the same order as Keras
    model2 = L.Sequential([type(layer)(**_cfg(layer)) for layer in model.layers],
                          input_shape=(12, 12, 3))
    model2.set_weights(kmodel.get_weights())
    np.testing.assert_allclose(model2(x), ref, rtol=1e-4, atol=1e-6)


def _cfg(layer):
    cfg = layer.get_config()
    cfg.pop("name")
    if isinstance(layer, L.Activation):
        return {"activation": layer.activation}
    if isinstance(layer, L.BatchNormalization):
        return {}
    if isinstance(layer, L.MaxPooling2D):
        return {"pool_size": cfg["pool_size"]}
    if isinstance(layer, L.Dense):
        return {"units": layer.units, "activation": layer.activation}
    return cfg
