"""Each layer's backward() against torch.autograd (float64) and central finite
differences; the functional Model's graph backward (gradients summed where a
tensor feeds several layers)."""
import numpy as np
import pytest

from fastconv import layers as L

torch = pytest.importorskip("torch", reason="the layer gradients are checked against torch")

# Keras 3 on NumPy 2 warns about __array__(copy=...) inside its own code.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
F = torch.nn.functional

# Keras meaning of each activation name, in torch
TORCH_ACTS = {
    None: lambda z: z,
    "relu": torch.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
    "hard_sigmoid": lambda z: F.relu6(z + 3) / 6, "softplus": F.softplus,
    "softsign": F.softsign, "silu": F.silu, "hard_silu": F.hardswish,
    "gelu": F.gelu, "elu": F.elu, "selu": F.selu,
    "leaky_relu": lambda z: F.leaky_relu(z, 0.2), "mish": F.mish,
    "softmax": lambda z: torch.softmax(z, -1), "log_softmax": lambda z: torch.log_softmax(z, -1),
    "exponential": torch.exp,
}


def _t(a, grad=True):
    return torch.tensor(np.asarray(a, np.float64), requires_grad=grad)


def _close(a, b, tol=1e-10):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, np.abs(b).max()))


def _finite_diff(f, x, g, rng, n=6, eps=1e-6):
    """d sum(g * f(x)) / dx at n random coordinates (central differences),
    and the rounding error of each: the two sums are each rounded to about
    n_terms * ulp of sum |g * f|, divided by 2 eps (an exponential's
    outputs of ~1e6 make that 1e-3, well above any fixed atol)."""
    idx = [tuple(rng.integers(0, s) for s in x.shape) for _ in range(n)]
    out, err = [], []
    for i in idx:
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        fp, fm = g * f(xp), g * f(xm)
        out.append((np.sum(fp) - np.sum(fm)) / (2 * eps))
        mag = np.sum(np.abs(fp)) + np.sum(np.abs(fm))
        err.append(fp.size * np.finfo(np.float64).eps * mag / (2 * eps))
    return idx, np.array(out), np.array(err)


def _check_fd(layer, x, g, gin, rng, training=True):
    idx, fd, err = _finite_diff(lambda v: layer(v, training=training), x, g, rng)
    got = np.array([gin[i] for i in idx])
    assert np.all(np.abs(got - fd) <= 1e-6 + 1e-5 * np.abs(fd) + err), (got, fd, err)


@pytest.mark.parametrize("activation", list(TORCH_ACTS))
def test_dense_backward(rng, activation):
    x = rng.standard_normal((3, 2, 5)) * 1.5
    layer = L.Dense(4, activation=activation, dtype="float64")
    layer(x)
    k, b = rng.standard_normal((5, 4)), rng.standard_normal(4)
    layer.set_weights([k, b])
    y = layer(x, training=True)
    g = rng.standard_normal(y.shape)
    gin = layer.backward(g)
    xt, kt, bt = _t(x), _t(k), _t(b)
    yt = TORCH_ACTS[activation](xt @ kt + bt)
    _close(y, yt.detach().numpy())
    yt.backward(torch.tensor(g))
    _close(gin, xt.grad.numpy(), 1e-9)
    gk, gb = layer.gradients
    _close(gk, kt.grad.numpy(), 1e-9)
    _close(gb, bt.grad.numpy(), 1e-9)
    _check_fd(layer, x, g, gin, rng)


def test_dense_python_callable_cannot_train(rng):
    layer = L.Dense(2, activation=lambda z: z * 2, dtype="float64")
    y = layer(rng.standard_normal((2, 3)), training=True)
    with pytest.raises(NotImplementedError, match="Python callable"):
        layer.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="training=True first"):
        layer.backward(np.ones_like(y))


@pytest.mark.parametrize("axis, center, scale", [(-1, True, True), (1, True, True),
                                                 (-1, False, True), (3, True, False)])
def test_batchnorm_training_backward(rng, axis, center, scale):
    x = rng.standard_normal((4, 3, 5, 6)) * 2 + 1
    layer = L.BatchNormalization(axis=axis, center=center, scale=scale, dtype="float64")
    layer(x)
    c = x.shape[axis]
    gamma, beta = rng.uniform(0.5, 2, c), rng.standard_normal(c)
    mm, mv = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    layer.set_weights(([gamma] if scale else []) + ([beta] if center else []) + [mm, mv])
    y = layer(x, training=True)
    g = rng.standard_normal(y.shape)
    gin = layer.backward(g)
    ax = axis % 4
    shape = [1] * 4
    shape[ax] = -1
    xt, gt, bt = _t(x), _t(gamma), _t(beta)
    dims = tuple(i for i in range(4) if i != ax)
    mean = xt.mean(dim=dims, keepdim=True)
    var = ((xt - mean) ** 2).mean(dim=dims, keepdim=True)
    yt = (xt - mean) / torch.sqrt(var + 1e-3)
    if scale:
        yt = yt * gt.reshape(shape)
    if center:
        yt = yt + bt.reshape(shape)
    _close(y, yt.detach().numpy())
    yt.backward(torch.tensor(g))
    _close(gin, xt.grad.numpy(), 1e-9)
    grads = dict(zip(layer.trainable_weight_names, layer.gradients))
    assert set(grads) == {n for n, on in (("gamma", scale), ("beta", center)) if on}
    if scale:
        _close(grads["gamma"], gt.grad.numpy(), 1e-9)
    if center:
        _close(grads["beta"], bt.grad.numpy(), 1e-9)
    # Keras's moving-average rule, biased batch variance
    bm, bv = x.mean(axis=dims), x.var(axis=dims)
    w = layer.get_weights()
    _close(w[-2], 0.99 * mm + 0.01 * bm)
    _close(w[-1], 0.99 * mv + 0.01 * bv)
    # inference uses the moving statistics, unchanged
    ref = (x - w[-2].reshape(shape)) / np.sqrt(w[-1].reshape(shape) + 1e-3)
    if scale:
        ref = ref * gamma.reshape(shape)
    if center:
        ref = ref + beta.reshape(shape)
    _close(layer(x), ref)
    _check_fd(layer, x, g, gin, rng)


POOL_CASES = [
    dict(pool_size=2),
    dict(pool_size=3, strides=2, padding="same"),
    dict(pool_size=(3, 2), strides=(1, 2), padding="valid"),
    dict(pool_size=3, strides=2, padding=1),
    dict(pool_size=3, strides=2, padding=1, count_include_pad=False),
    dict(pool_size=3, strides=1, padding=((1, 0), (0, 1)), dilation=(1, 2)),
    dict(pool_size=3, strides=2, padding=1, ceil_mode=True),
]


def _torch_pool(xt, layer, mode):
    """torch reference in NCHW over the layer's own padding (taps outside do
    not count / never win)."""
    n, c, h, w = xt.shape
    out_hw, (t, b, l, r) = layer._geometry((n, c, h, w) if layer.data_format ==
                                           "channels_first" else (n, h, w, c))
    kh, kw = layer.pool_size
    sh, sw = layer.strides
    dh, dw = layer.dilation
    fill = -float("inf") if mode == "max" else 0.0
    # pad generously on the bottom/right for ceil-mode windows, then crop
    xp = F.pad(xt, (l, r + kw * dw, t, b + kh * dh), value=fill)
    ones = F.pad(torch.ones((1, 1, h, w), dtype=xt.dtype), (l, r + kw * dw, t, b + kh * dh))
    inside_pad = F.pad(torch.ones((1, 1, h + t + b, w + l + r), dtype=xt.dtype),
                       (0, kw * dw, 0, kh * dh))
    oh, ow = out_hw
    outs = []
    for i in range(oh):
        row = []
        for j in range(ow):
            win = xp[:, :, i * sh:i * sh + (kh - 1) * dh + 1:dh, j * sw:j * sw + (kw - 1) * dw + 1:dw]
            if mode == "max":
                row.append(win.amax(dim=(2, 3)))
            else:
                cnt_src = inside_pad if layer.count_include_pad else ones
                cnt = cnt_src[:, :, i * sh:i * sh + (kh - 1) * dh + 1:dh,
                              j * sw:j * sw + (kw - 1) * dw + 1:dw].sum()
                row.append(win.sum(dim=(2, 3)) / cnt)
        outs.append(torch.stack(row, -1))
    return torch.stack(outs, -2)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_pooling_backward(rng, mode, case, data_format):
    cls = L.MaxPooling2D if mode == "max" else L.AveragePooling2D
    layer = cls(data_format=data_format, dtype="float64", **case)
    xn = rng.standard_normal((2, 3, 7, 8))
    x = xn if data_format == "channels_first" else np.ascontiguousarray(xn.transpose(0, 2, 3, 1))
    y = layer(x, training=True)
    g = rng.standard_normal(y.shape)
    gin = layer.backward(g)
    xt = _t(xn)
    yt = _torch_pool(xt, layer, mode)
    gn = g if data_format == "channels_first" else g.transpose(0, 3, 1, 2)
    yt.backward(torch.tensor(np.ascontiguousarray(gn)))
    ref = xt.grad.numpy()
    if data_format == "channels_last":
        ref = ref.transpose(0, 2, 3, 1)
    _close(gin, ref)
    _check_fd(layer, x, g, gin, rng)


def test_maxpool_backward_ties_and_nan_follow_torch(rng):
    # ties: the first maximum in the window gets the gradient (torch's rule)
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = rng.standard_normal((2, 2))
    for fmt in ("channels_first", "channels_last"):
        xin = x if fmt == "channels_first" else x.transpose(0, 2, 3, 1).copy()
        layer = L.MaxPooling2D(2, data_format=fmt, dtype="float64")
        y = layer(xin, training=True)
        gin = layer.backward(np.ones_like(y))
        xt = _t(x)
        F.max_pool2d(xt, 2).sum().backward()
        ref = xt.grad.numpy()
        _close(gin, ref if fmt == "channels_first" else ref.transpose(0, 2, 3, 1))
    x = rng.standard_normal((1, 2, 4, 4))
    x[0, 0, 1, 1] = np.nan
    layer = L.MaxPooling2D(2, data_format="channels_first", dtype="float64")
    y = layer(x, training=True)
    gin = layer.backward(np.ones_like(y))
    xt = _t(x)
    F.max_pool2d(xt, 2).sum().backward()
    _close(gin, xt.grad.numpy())
    assert gin[0, 0, 1, 1] == 1


@pytest.mark.parametrize("cls", ["GlobalAveragePooling2D", "GlobalMaxPooling2D"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_backward(rng, cls, data_format, keepdims):
    layer = getattr(L, cls)(data_format=data_format, keepdims=keepdims, dtype="float64")
    x = rng.standard_normal((2, 5, 4, 3))
    y = layer(x, training=True)
    g = rng.standard_normal(y.shape)
    gin = layer.backward(g)
    xt = _t(x)
    dims = (1, 2) if data_format == "channels_last" else (2, 3)
    yt = xt.mean(dim=dims, keepdim=keepdims) if "Average" in cls else \
        xt.amax(dim=dims, keepdim=keepdims)
    yt.backward(torch.tensor(g))
    _close(gin, xt.grad.numpy())
    _check_fd(layer, x, g, gin, rng)


def test_reshaping_layers_backward(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    for layer, fn in (
            (L.Flatten(), lambda t: t.reshape(2, -1)),
            (L.Flatten(data_format="channels_first"), lambda t: t.permute(0, 2, 3, 1).reshape(2, -1)),
            (L.ZeroPadding2D(((1, 2), (0, 3))), lambda t: F.pad(t, (0, 0, 0, 3, 1, 2))),
            (L.ZeroPadding2D(1, data_format="channels_first"), lambda t: F.pad(t, (1, 1, 1, 1))),
            (L.Identity(), lambda t: t),
            (L.Dropout(0.4), lambda t: t),            # inference: the identity
            (L.Activation("gelu", dtype="float64"), F.gelu),
            (L.Activation("softmax", dtype="float64"), lambda t: torch.softmax(t, -1)),
            (L.Activation(None, dtype="float64"), lambda t: t)):
        training = not isinstance(layer, L.Dropout)
        y = layer(x, training=training) if training else layer(x)
        g = rng.standard_normal(y.shape)
        if not training:
            layer(x, training=True)   # Dropout rate>0 in training is checked below
            layer._saved = (None, 1.0)
        gin = layer.backward(g)
        xt = _t(x)
        fn(xt).backward(torch.tensor(g))
        _close(gin, xt.grad.numpy(), 1e-9)


@pytest.mark.parametrize("activation", [None, "relu", "silu"])
def test_add_backward(rng, activation):
    a, b, c = (rng.standard_normal((2, 3, 4)) for _ in range(3))
    layer = L.Add(activation=activation, dtype="float64")
    y = layer([a, b, c], training=True)
    g = rng.standard_normal(y.shape)
    gins = layer.backward(g)
    ts = [_t(v) for v in (a, b, c)]
    TORCH_ACTS[activation](ts[0] + ts[1] + ts[2]).backward(torch.tensor(g))
    assert len(gins) == 3
    for gi, t in zip(gins, ts):
        _close(gi, t.grad.numpy())


def test_dropout_training(rng):
    x = rng.standard_normal((400, 50)).astype(np.float32)
    layer = L.Dropout(0.3, seed=7)
    assert layer(x) is x                               # inference: identity
    y = layer(x, training=True)
    kept = y != 0
    assert 0.65 < kept.mean() < 0.75
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-6)
    g = rng.standard_normal(x.shape).astype(np.float32)
    gin = layer.backward(g)
    np.testing.assert_allclose(gin, np.where(kept, g / 0.7, 0), rtol=1e-6)
    # the same seed draws the same masks; rate 0 and 1
    again = L.Dropout(0.3, seed=7)(x, training=True)
    np.testing.assert_array_equal(again, y)
    assert L.Dropout(0.0)(x, training=True) is x
    assert not L.Dropout(1.0)(x, training=True).any()
    with pytest.raises(ValueError, match="rate"):
        L.Dropout(1.5)


def _residual(rng):
    inp = L.Input((6,))
    h = L.Dense(6, activation="tanh", dtype="float64")(inp)
    h = L.BatchNormalization(dtype="float64")(h)
    h2 = L.Dense(6, dtype="float64")(h)
    s = L.Add(activation="relu", dtype="float64")([h2, h, inp])   # h feeds two layers
    out = L.Dense(3, activation="softmax", dtype="float64")(s)
    model = L.Model(inp, out)
    for layer in model.layers:
        if layer.trainable_weight_names and not isinstance(layer, L.BatchNormalization):
            layer.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
    return model


def test_model_graph_backward_sums_fanout(rng):
    model = _residual(rng)
    x = rng.standard_normal((5, 6))
    y = model(x, training=True)
    g = rng.standard_normal(y.shape)
    gin = model.backward(g)
    d1, bn, d2, add, d3 = model.layers
    xt = _t(x)
    ws = {id(layer): [_t(w) for w in layer.get_weights()] for layer in model.layers}
    k1, b1 = ws[id(d1)]
    ga, be = ws[id(bn)][:2]
    k2, b2 = ws[id(d2)]
    k3, b3 = ws[id(d3)]
    h = torch.tanh(xt @ k1 + b1)
    m, v = h.mean(0), h.var(0, unbiased=False)
    h = (h - m) / torch.sqrt(v + 1e-3) * ga + be
    s = torch.relu(h @ k2 + b2 + h + xt)
    yt = torch.softmax(s @ k3 + b3, -1)
    _close(y, yt.detach().numpy())
    yt.backward(torch.tensor(g))
    _close(gin, xt.grad.numpy(), 1e-9)
    refs = [k1, b1, ga, be, k2, b2, k3, b3]
    for ours, ref in zip(model.gradients, refs):
        _close(ours, ref.grad.numpy(), 1e-9)
    # need_input=False: no input gradient, the same parameter gradients
    model(x, training=True)
    assert model.backward(g, need_input=False) is None
    for ours, ref in zip(model.gradients, refs):
        _close(ours, ref.grad.numpy(), 1e-9)


def test_model_rejects_shared_layers_in_training(rng):
    inp = L.Input((4,))
    d = L.Dense(4, dtype="float64")
    model = L.Model(inp, d(d(inp)))
    x = rng.standard_normal((2, 4))
    model(x)                                        # inference is fine
    with pytest.raises(NotImplementedError, match="more than once"):
        model(x, training=True)


CONV_CASES = [
    dict(filters=5, kernel_size=3, padding="same", activation="relu"),
    dict(filters=4, kernel_size=(3, 2), strides=2, padding="same", activation="gelu"),
    dict(filters=6, kernel_size=3, padding="valid", groups=2, activation="silu"),
    dict(filters=4, kernel_size=3, dilation_rate=2, padding=((1, 2), (0, 1)), use_bias=False),
    dict(filters=4, kernel_size=3, padding="same", pre_activation="relu", activation="tanh"),
    dict(filters=3, kernel_size=1, activation="softmax"),
]


def _tf_same(size, k, s, d=1):
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _torch_conv(xt, kt, bt, layer, groups):
    """NHWC x, HWIO kernel -> the layer's function in torch (in its layout)."""
    h, w = xt.shape[1:3]
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
    if layer.padding == "same":
        (t, b), (l, r) = _tf_same(h, kh, sh, dh), _tf_same(w, kw, sw, dw)
    elif layer.padding == "valid":
        t = b = l = r = 0
    else:
        t, b, l, r = layer.padding
    xin = xt.permute(0, 3, 1, 2)
    if layer.pre_activation is not None:
        xin = TORCH_ACTS[layer.pre_activation](xin)
    xin = F.pad(xin, (l, r, t, b))
    z = F.conv2d(xin, kt.permute(3, 2, 0, 1), bt, stride=(sh, sw), dilation=(dh, dw),
                 groups=groups)
    if layer.data_format == "channels_last":
        z = z.permute(0, 2, 3, 1)
    # the activation on the layer's own layout (softmax: the last axis, as Keras)
    return TORCH_ACTS[layer.activation if layer.activation != "linear" else None](z)


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("depthwise", [False, True])
def test_conv_backward(rng, case, data_format, depthwise):
    case = dict(case)
    groups = case.pop("groups", 1)
    if depthwise:
        filters = case.pop("filters")
        layer = L.DepthwiseConv2D(depth_multiplier=2, data_format=data_format, dtype="float64",
                                  **case)
    else:
        layer = L.Conv2D(groups=groups, data_format=data_format, dtype="float64", **case)
    x = rng.standard_normal((2, 7, 6, 4))
    xin = x if data_format == "channels_last" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    layer(xin)
    ws = [rng.standard_normal(w.shape) * 0.5 for w in layer.get_weights()]
    layer.set_weights(ws)
    y = layer(xin, training=True)
    g = rng.standard_normal(y.shape)
    gin = layer.backward(g)
    xt = _t(x)
    kt = _t(ws[0].reshape(ws[0].shape[0], ws[0].shape[1], 1, -1) if depthwise else ws[0])
    bt = _t(ws[1]) if len(ws) > 1 else None
    yt = _torch_conv(xt, kt, bt, layer, 4 if depthwise else groups)
    _close(y, yt.detach().numpy(), 1e-9)
    yt.backward(torch.tensor(g))
    ref_in = xt.grad.numpy()
    _close(gin, ref_in if data_format == "channels_last" else ref_in.transpose(0, 3, 1, 2), 1e-9)
    grads = layer.gradients
    _close(grads[0], kt.grad.numpy().reshape(ws[0].shape), 1e-9)
    if bt is not None:
        _close(grads[1], bt.grad.numpy(), 1e-9)
    _check_fd(layer, xin, g, gin, rng)


TCONV_CASES = [
    dict(filters=3, kernel_size=3, strides=2, padding="same"),
    dict(filters=3, kernel_size=3, strides=2, padding="valid", activation="relu"),
    dict(filters=2, kernel_size=2, strides=3, padding="valid"),          # zeros appended
    dict(filters=2, kernel_size=4, strides=2, padding="same", output_padding=1),
    dict(filters=2, kernel_size=3, padding="same", dilation_rate=2, activation="tanh"),
    dict(filters=2, kernel_size=(3, 2), strides=(2, 1), padding="same", use_bias=False),
]


@pytest.mark.parametrize("case", TCONV_CASES)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv2d_transpose_vs_keras_autograd(rng, case, data_format):
    """Forward against keras.layers.Conv2DTranspose (torch backend); the
    gradients by torch.autograd through Keras's own layer."""
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except Exception as e:
        pytest.skip(f"keras not usable: {e}")
    if keras.backend.backend() != "torch":
        pytest.skip("keras backend is not torch")
    x = rng.standard_normal((2, 5, 6, 4)).astype(np.float32)
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    theirs = keras.layers.Conv2DTranspose(data_format=data_format, **case)
    theirs(x)
    theirs.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.5
                        for w in theirs.get_weights()])
    ours = L.Conv2DTranspose(data_format=data_format, **case)
    ours.set_weights(theirs.get_weights())
    y = ours(x, training=True)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    g = rng.standard_normal(y.shape).astype(np.float32)
    gin = ours.backward(g)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(gin, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    refs = [v.value.grad.numpy() for v in theirs.trainable_weights]
    for ours_g, ref in zip(ours.gradients, refs):
        np.testing.assert_allclose(ours_g, ref, rtol=1e-4, atol=1e-4)
    assert ours.compute_output_shape((None,) + x.shape[1:])[1:] == y.shape[1:]
