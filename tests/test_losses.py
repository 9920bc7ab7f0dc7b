"""fastconv.losses against Keras 3 (torch backend): values, and gradients by
torch.autograd through Keras's own loss functions; the fused softmax /
sigmoid + cross-entropy gradient; bad labels."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest

from fastconv import losses as Ls

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


def _keras():
    try:
        import keras
    except Exception as e:
        pytest.skip(f"keras not usable: {e}")
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras backend is {keras.backend.backend()}, not torch")
    return keras


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _data(rng, name, from_logits, shape=(6, 5)):
    z = rng.standard_normal(shape) * 2
    if name == "SparseCategoricalCrossentropy":
        y = rng.integers(0, shape[-1], shape[:-1])
        p = z if from_logits else _softmax(z)
    elif name == "CategoricalCrossentropy":
        y = np.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])]
        p = z if from_logits else _softmax(z)
    elif name == "BinaryCrossentropy":
        y = rng.integers(0, 2, shape).astype(np.float64)
        p = z if from_logits else 1 / (1 + np.exp(-z))
    else:
        y = rng.standard_normal(shape)
        p = z
    return y, p


LOSSES = [("SparseCategoricalCrossentropy", dict(from_logits=False)),
          ("SparseCategoricalCrossentropy", dict(from_logits=True)),
          ("CategoricalCrossentropy", dict(from_logits=False)),
          ("CategoricalCrossentropy", dict(from_logits=True, label_smoothing=0.1)),
          ("CategoricalCrossentropy", dict(label_smoothing=0.2)),
          ("BinaryCrossentropy", dict()),
          ("BinaryCrossentropy", dict(from_logits=True, label_smoothing=0.1)),
          ("MeanSquaredError", dict())]


@pytest.mark.parametrize("name, kwargs", LOSSES)
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4)])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum"])
def test_loss_value_and_grad_match_keras(rng, name, kwargs, shape, reduction):
    keras = _keras()
    import torch
    y, p = _data(rng, name, kwargs.get("from_logits", False), shape)
    # the values float32 holds: Keras computes in float32 (floatx), and the
    # rounding of a probability near 1 alone moves 1 / (1 - p) by more than
    # the tolerance (one seed: 2.7e-5 at p = 0.9993)
    p = p.astype(np.float32).astype(np.float64)
    ours = getattr(Ls, name)(reduction=reduction, **kwargs)
    theirs = getattr(keras.losses, name)(reduction=reduction, **kwargs)
    value, grad = ours.value_and_grad(y, p)
    pt = torch.tensor(p, requires_grad=True)
    ref = theirs(torch.tensor(y), pt)     # Keras computes in float32 (floatx)
    ref.backward()
    ref = float(ref.detach())
    np.testing.assert_allclose(value, ref, rtol=2e-6)
    np.testing.assert_allclose(ours(y, p), ref, rtol=2e-6)
    np.testing.assert_allclose(grad, pt.grad.numpy(), rtol=2e-5, atol=1e-7)
    # float32 stays float32
    v32, g32 = ours.value_and_grad(y, p.astype(np.float32))
    assert g32.dtype == np.float32
    np.testing.assert_allclose(v32, value, rtol=1e-5)


@pytest.mark.parametrize("name", ["SparseCategoricalCrossentropy", "CategoricalCrossentropy",
                                  "BinaryCrossentropy"])
def test_fused_grad_is_the_chained_gradient(rng, name):
    """(p - t) / n equals the loss gradient pushed back through softmax/sigmoid."""
    y, z = _data(rng, name, True)
    loss = getattr(Ls, name)()
    if name == "BinaryCrossentropy":
        p = 1 / (1 + np.exp(-z))
        _, gp = loss.value_and_grad(y, p)
        chained = gp * p * (1 - p)
    else:
        p = _softmax(z)
        _, gp = loss.value_and_grad(y, p)
        chained = p * (gp - np.sum(gp * p, -1, keepdims=True))
    np.testing.assert_allclose(loss.fused_grad(y, p), chained, rtol=1e-9, atol=1e-12)
    # and the logits-form loss has the same gradient
    _, gz = getattr(Ls, name)(from_logits=True).value_and_grad(y, z)
    np.testing.assert_allclose(loss.fused_grad(y, p), gz, rtol=1e-9, atol=1e-12)


def test_logits_are_stable(rng):
    z = np.array([[1000.0, -1000.0, 0.0], [-500.0, 500.0, 499.0]])
    v, g = Ls.SparseCategoricalCrossentropy(from_logits=True).value_and_grad([0, 2], z)
    assert np.isfinite(v) and np.isfinite(g).all()
    np.testing.assert_allclose(v, (0 + 1.0 + np.log1p(np.exp(-1.0))) / 2, rtol=1e-12)
    v, g = Ls.BinaryCrossentropy(from_logits=True).value_and_grad([[1.0], [0.0]],
                                                                  [[-800.0], [800.0]])
    np.testing.assert_allclose(v, 800.0)
    assert np.isfinite(g).all()


def test_bad_labels_and_names():
    loss = Ls.SparseCategoricalCrossentropy()
    p = np.full((3, 4), 0.25)
    with pytest.raises(ValueError, match=r"label value of 4 .* \[0, 3\]"):
        loss(np.array([0, 4, 1]), p)
    with pytest.raises(ValueError, match="label value of -1"):
        loss(np.array([0, -1, 1]), p)
    with pytest.raises(ValueError, match="integer class indices"):
        loss(np.array([0.5, 1, 1]), p)
    with pytest.raises(ValueError, match="same shape up until the last dimension"):
        loss(np.array([0, 1]), p)
    with pytest.raises(ValueError, match="must have the same shape"):
        Ls.MeanSquaredError()(np.zeros((3, 2)), p)
    with pytest.raises(ValueError, match="Could not interpret loss"):
        Ls.get("sparse_crossentropy")
    assert isinstance(Ls.get("mse"), Ls.MeanSquaredError)
    assert isinstance(Ls.get("sparse_categorical_crossentropy"), Ls.SparseCategoricalCrossentropy)
    with pytest.raises(ValueError, match="reduction"):
        Ls.MeanSquaredError(reduction="avg")
