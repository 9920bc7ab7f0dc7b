"""Training against Keras 3 (torch backend): train_on_batch steps with the
weights copied by get_weights/set_weights, compared in loss and in every
weight (moving statistics included) after one and three steps; fit end to
end; callbacks; resuming from a checkpoint; bad input."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest

import fastconv
from fastconv import callbacks as C
from fastconv import layers as L
from fastconv import optimizers as O

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

HAVE_CONV_GRAD = hasattr(fastconv, "conv2d_backward")


def _keras():
    try:
        import keras
    except Exception as e:
        pytest.skip(f"keras not usable: {e}")
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras backend is {keras.backend.backend()}, not torch")
    return keras


# No bias (and no unit that may be active for a single sample, as after a
# relu) feeds a BatchNormalization directly: BN removes a constant shift, so
# such a gradient is zero up to rounding, and Adam's g / (|g| + epsilon) turns
# rounding noise into full-size steps of random sign in either library.
#
# The same architectures written once for both libraries (lib = fastconv.layers
# or keras.layers); `Seq`/`Functional` wrap them in each library's model.

def pool_dense_model(lib, conv):
    layers = []
    if conv:
        layers += [lib.Conv2D(6, 3, padding="same", activation="relu"),
                   lib.BatchNormalization(),
                   lib.Conv2D(6, 3, strides=2, padding="same", use_bias=False),
                   lib.DepthwiseConv2D(3, padding="same", activation="relu")]
    else:
        layers += [lib.BatchNormalization()]
    layers += [lib.MaxPooling2D(2), lib.AveragePooling2D(2, strides=1, padding="same"),
               lib.Flatten(), lib.Dense(16, activation="tanh"), lib.BatchNormalization(),
               lib.Dense(5, activation="softmax")]
    return layers


def residual_model(lib, conv, inp):
    if conv:
        h = lib.Conv2D(4, 3, padding="same", use_bias=False)(inp)
        h = lib.BatchNormalization()(h)
        h = lib.Activation("relu")(h)
        h = lib.Conv2D(4, 3, padding="same", use_bias=False)(h)
        h = lib.BatchNormalization()(h)
    else:
        h = lib.Dense(4, activation="tanh")(inp)
        h = lib.BatchNormalization()(h)
        h = lib.Dense(4)(h)
    s = lib.Add()([h, inp])
    s = lib.Activation("relu")(s)
    s = lib.GlobalAveragePooling2D()(s)
    return lib.Dense(3, activation="softmax")(s)


def _pair(keras, kind, conv, rng):
    shape = (8, 8, 4)
    if kind == "sequential":
        ours = L.Sequential(pool_dense_model(L, conv), input_shape=shape)
        theirs = keras.Sequential([keras.Input(shape)] + pool_dense_model(keras.layers, conv))
    else:
        inp = L.Input(shape)
        ours = L.Model(inp, residual_model(L, conv, inp))
        kin = keras.Input(shape)
        theirs = keras.Model(kin, residual_model(keras.layers, conv, kin))
    # random weights (BN statistics too), copied from Keras into fastconv
    ws = []
    for w in theirs.get_weights():
        if w.ndim == 1:      # biases, BN statistics (gamma, moving variance start at 1)
            v = rng.uniform(0.5, 1.5, w.shape) if np.all(w == 1) else \
                rng.standard_normal(w.shape) * 0.1
        else:                # unit-variance pre-activations: no saturated tanh
            v = rng.standard_normal(w.shape) / np.sqrt(np.prod(w.shape[:-1]))
        ws.append(v.astype(np.float32))
    theirs.set_weights(ws)
    ours.set_weights(theirs.get_weights())
    return ours, theirs


# Adam's first steps are lr * g / (|g| + epsilon): a gradient that cancels to
# ~1e-7 (a sum of terms of both signs) moves by a random fraction of lr in
# float32 in either library, so these whole-model comparisons use epsilon=1e-3;
# test_optimizers checks the update rule itself at the default epsilon.
OPTIMIZERS = [("SGD", dict(learning_rate=0.1, momentum=0.9)),
              ("SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
              ("Adam", dict(learning_rate=0.01, epsilon=1e-3)),
              ("AdamW", dict(learning_rate=0.01, weight_decay=0.05, epsilon=1e-3))]


def _compare(keras, kind, conv, opt_name, opt_kwargs, rng, steps=3):
    ours, theirs = _pair(keras, kind, conv, rng)
    ours.compile(getattr(O, opt_name)(**opt_kwargs), "sparse_categorical_crossentropy")
    theirs.compile(getattr(keras.optimizers, opt_name)(**opt_kwargs),
                   "sparse_categorical_crossentropy")
    for step in range(steps):
        x = rng.standard_normal((6, 8, 8, 4)).astype(np.float32)
        n_cls = 5 if kind == "sequential" else 3
        y = rng.integers(0, n_cls, 6)
        loss = ours.train_on_batch(x, y)
        ref = float(theirs.train_on_batch(x, y))
        np.testing.assert_allclose(loss, ref, rtol=1e-4, err_msg=f"loss, step {step}")
        for name, a, b in zip(ours.weight_names, ours.get_weights(), theirs.get_weights()):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5,
                                       err_msg=f"{name} after step {step + 1}")
    assert ours.optimizer.iterations == steps


@pytest.mark.parametrize("opt_name, opt_kwargs", OPTIMIZERS)
@pytest.mark.parametrize("kind", ["sequential", "residual"])
def test_train_on_batch_matches_keras(rng, kind, opt_name, opt_kwargs):
    keras = _keras()
    _compare(keras, kind, False, opt_name, opt_kwargs, rng, steps=1)
    _compare(keras, kind, False, opt_name, opt_kwargs, rng, steps=3)


@pytest.mark.skipif(not HAVE_CONV_GRAD, reason="needs fastconv.conv2d_backward (issue 14)")
@pytest.mark.parametrize("opt_name, opt_kwargs", OPTIMIZERS)
@pytest.mark.parametrize("kind", ["sequential", "residual"])
def test_conv_train_on_batch_matches_keras(rng, kind, opt_name, opt_kwargs):
    keras = _keras()
    _compare(keras, kind, True, opt_name, opt_kwargs, rng, steps=1)
    _compare(keras, kind, True, opt_name, opt_kwargs, rng, steps=3)


@pytest.mark.skipif(not HAVE_CONV_GRAD, reason="needs fastconv.conv2d_backward (issue 14)")
def test_conv_transpose_model_matches_keras(rng):
    keras = _keras()

    def net(lib, inp):
        h = lib.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inp)
        h = lib.Conv2DTranspose(3, 3, strides=2, padding="same", activation="relu")(h)
        h = lib.GlobalAveragePooling2D()(h)
        return lib.Dense(2, activation="softmax")(h)

    inp, kin = L.Input((6, 6, 2)), keras.Input((6, 6, 2))
    ours, theirs = L.Model(inp, net(L, inp)), keras.Model(kin, net(keras.layers, kin))
    theirs.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.4
                        for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    ours.compile(O.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    theirs.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    for step in range(3):
        x = rng.standard_normal((5, 6, 6, 2)).astype(np.float32)
        y = rng.integers(0, 2, 5)
        np.testing.assert_allclose(ours.train_on_batch(x, y), float(theirs.train_on_batch(x, y)),
                                   rtol=1e-4)
        for name, a, b in zip(ours.weight_names, ours.get_weights(), theirs.get_weights()):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5, err_msg=name)


def test_metrics_and_bn_statistics_match_keras(rng):
    keras = _keras()
    ours, theirs = _pair(keras, "sequential", False, rng)
    ours.compile(O.SGD(0.05), "sparse_categorical_crossentropy", metrics=["accuracy"])
    theirs.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy",
                   metrics=["accuracy"])
    for _ in range(4):
        x = rng.standard_normal((10, 8, 8, 4)).astype(np.float32)
        y = rng.integers(0, 5, 10)
        loss, acc = ours.train_on_batch(x, y)
        kl, ka = theirs.train_on_batch(x, y)
        np.testing.assert_allclose(loss, kl, rtol=1e-4)
        assert acc == pytest.approx(float(ka))
    bn = [layer for layer in ours.layers if isinstance(layer, L.BatchNormalization)]
    kbn = [layer for layer in theirs.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for a, b in zip(bn, kbn):
        for wa, wb in zip(a.get_weights()[2:], b.get_weights()[2:]):
            np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    x = rng.standard_normal((7, 8, 8, 4)).astype(np.float32)
    y = rng.integers(0, 5, 7)
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0),
                               theirs.evaluate(x, y, verbose=0), rtol=1e-4)
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x, verbose=0), rtol=1e-4,
                               atol=1e-6)


def _xor_data(rng, n=400):
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)
    return x, y


def test_fit_end_to_end(rng, tmp_path):
    fastconv.layers.set_random_seed(int(rng.integers(1 << 30)))
    x, y = _xor_data(rng)
    model = L.Sequential([L.Dense(32, activation="relu"), L.Dropout(0.1, seed=1),
                          L.Dense(2, activation="softmax")], input_shape=(4,))
    model.compile(O.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    before = model.evaluate(x, y, verbose=0)
    hist = model.fit(x, y, batch_size=32, epochs=8, validation_split=0.25, verbose=0)
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert hist.epoch == list(range(8)) and len(hist.history["loss"]) == 8
    assert hist.history["loss"][-1] < hist.history["loss"][0] < before[0] + 0.1
    assert hist.history["accuracy"][-1] > 0.8
    assert model.optimizer.iterations == 8 * -(-300 // 32)     # 300 training samples
    # validation_data, no shuffle, verbose=2 prints one line per epoch
    hist = model.fit(x[:300], y[:300], epochs=1, validation_data=(x[300:], y[300:]),
                     shuffle=False, verbose=0)
    np.testing.assert_allclose(hist.history["val_loss"][0],
                               model.evaluate(x[300:], y[300:], verbose=0)[0], rtol=1e-6)


def test_fit_progress_bar(rng, capsys):
    pytest.importorskip("tqdm", reason="the progress bar is tqdm's")
    x, y = _xor_data(rng, 64)
    model = L.Sequential([L.Dense(2, activation="softmax")], input_shape=(4,))
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=16, epochs=2)
    err = capsys.readouterr().err
    assert "Epoch 2/2" in err and "4/4" in err and "accuracy" in err
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert capsys.readouterr().err == ""


def test_early_stopping_restores_best(rng):
    x, y = _xor_data(rng, 200)
    model = L.Sequential([L.Dense(8, activation="relu"), L.Dense(2, activation="softmax")],
                         input_shape=(4,))
    model.compile(O.SGD(0.05), "sparse_categorical_crossentropy")
    curve = iter([1.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.5])
    seen = {}

    class Scripted(C.EarlyStopping):      # a scripted val_loss: best at epoch 1
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, dict(logs, val_loss=next(curve)))

    class Grab(C.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen[epoch] = self.model.get_weights()

    stop = Scripted(monitor="val_loss", patience=2, restore_best_weights=True)
    hist = model.fit(x, y, epochs=8, verbose=0, callbacks=[stop, Grab()])
    assert stop.stopped_epoch == 3 and hist.epoch == [0, 1, 2, 3]
    assert not np.array_equal(seen[3][0], seen[1][0])
    for a, b in zip(model.get_weights(), seen[1]):
        np.testing.assert_array_equal(a, b)
    # a real monitor: accuracy is maximised ("auto" mode)
    assert C.EarlyStopping(monitor="val_accuracy").mode == "max"
    assert C.EarlyStopping().mode == "min"


def test_checkpoint_resumes_training(rng, tmp_path):
    x, y = _xor_data(rng, 128)

    def make():
        m = L.Sequential([L.Dense(8, activation="relu"), L.BatchNormalization(),
                          L.Dense(2, activation="softmax")], input_shape=(4,))
        m.compile(O.Adam(0.01), "sparse_categorical_crossentropy")
        return m

    a = make()
    path = tmp_path / "ckpt-{epoch:02d}.npz"
    a.fit(x, y, epochs=2, batch_size=32, verbose=0, shuffle=False,
          callbacks=[C.ModelCheckpoint(str(path))])
    assert (tmp_path / "ckpt-01.npz").exists() and (tmp_path / "ckpt-02.npz").exists()
    b = make()
    b.load_weights(tmp_path / "ckpt-02.npz")
    assert b.optimizer.iterations == a.optimizer.iterations == 8
    a.fit(x, y, epochs=1, batch_size=32, verbose=0, shuffle=False)
    b.fit(x, y, epochs=1, batch_size=32, verbose=0, shuffle=False)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    # loading before compile keeps the optimizer state for compile()
    c = L.Sequential([L.Dense(8, activation="relu"), L.BatchNormalization(),
                      L.Dense(2, activation="softmax")], input_shape=(4,))
    c.load_weights(tmp_path / "ckpt-02.npz")
    c.compile(O.Adam(0.01), "sparse_categorical_crossentropy")
    assert c.optimizer.iterations == 8
    d = make()
    d.compile(O.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    w0 = d.get_weights()
    with pytest.raises(ValueError, match="Adam optimizer"):
        d.load_weights(tmp_path / "ckpt-02.npz")
    for u, v in zip(d.get_weights(), w0):                  # nothing half-loaded
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match=".npz"):
        C.ModelCheckpoint(str(tmp_path / "w.h5"))


def test_bad_input_changes_nothing(rng):
    model = L.Sequential([L.Dense(4, activation="relu"), L.BatchNormalization(),
                          L.Dense(3, activation="softmax")], input_shape=(5,))
    x = rng.standard_normal((6, 5)).astype(np.float32)
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, np.zeros(6, int))
    with pytest.raises(RuntimeError, match="compile"):
        model.train_on_batch(x, np.zeros(6, int))
    with pytest.raises(ValueError, match="Could not interpret loss"):
        model.compile("sgd", "crossentropy")
    with pytest.raises(ValueError, match="Could not interpret optimizer"):
        model.compile("sgdd", "mse")
    with pytest.raises(ValueError, match="Unknown metric"):
        model.compile("sgd", "mse", metrics=["acuracy"])
    model.compile(O.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    model.train_on_batch(x, rng.integers(0, 3, 6))
    w0 = model.get_weights()
    state0 = [np.array(a) for _, a in model.optimizer.variables()]
    for bad, match in ((np.array([0, 1, 2, 3, 0, 1]), "outside the valid range"),
                       (np.array([0, 1, 2, -1, 0, 1]), "outside the valid range"),
                       (np.zeros(5, int), "same number of samples"),
                       (np.zeros((6, 2), int), "same shape up until the last dimension")):
        for call in (lambda: model.train_on_batch(x, bad), lambda: model.fit(x, bad, verbose=0)):
            with pytest.raises(ValueError, match=match):
                call()
    for a, b in zip(model.get_weights(), w0):
        np.testing.assert_array_equal(a, b)
    for a, b in zip([a for _, a in model.optimizer.variables()], state0):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, np.zeros(6, int), validation_split=1.0)


@pytest.mark.skipif(HAVE_CONV_GRAD, reason="this build has conv2d_backward")
def test_conv_training_says_what_is_missing(rng):
    model = L.Sequential([L.Conv2D(2, 3), L.Flatten(), L.Dense(2, activation="softmax")],
                         input_shape=(5, 5, 1))
    model.compile("sgd", "sparse_categorical_crossentropy")
    w0 = model.get_weights()
    with pytest.raises(NotImplementedError, match="conv2d_backward"):
        model.train_on_batch(rng.standard_normal((2, 5, 5, 1)), [0, 1])
    for a, b in zip(model.get_weights(), w0):
        np.testing.assert_array_equal(a, b)
