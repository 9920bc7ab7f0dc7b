"""fastconv.layers against plain NumPy references, Keras 3 (torch backend)
and torch.  Keras/torch comparisons skip cleanly when they are missing."""
import os

os.environ["KERAS_BACKEND"] = "torch"   # before keras is imported anywhere

import numpy as np
import pytest

# Keras 3 on NumPy 2 warns about __array__(copy=...) inside its own code.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

from fastconv import Activation
from fastconv import layers as L

# ---------------------------------------------------------------------------
# optional libraries


def _keras():
    try:
        import keras
    except Exception as e:  # ImportError, or a backend that cannot load
        pytest.skip(f"keras not usable: {e}")
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras backend is {keras.backend.backend()}, not torch")
    return keras


def _torch():
    return pytest.importorskip("torch")


def _kout(t):
    import keras
    return np.asarray(keras.ops.convert_to_numpy(t))


# ---------------------------------------------------------------------------
# NumPy references (float64)

def _act_ref(name, x):
    x = np.asarray(x, np.float64)
    sig = lambda v: 1 / (1 + np.exp(-v))
    sp = lambda v: np.logaddexp(0, v)
    from math import erf
    return {
        None: lambda v: v, "linear": lambda v: v,
        "relu": lambda v: np.maximum(v, 0),
        "relu6": lambda v: np.clip(v, 0, 6),
        "leaky_relu": lambda v: np.where(v > 0, v, 0.2 * v),   # Keras slope
        "hard_sigmoid": lambda v: np.clip(v + 3, 0, 6) / 6,
        "sigmoid": sig, "tanh": np.tanh, "softplus": sp,
        "silu": lambda v: v * sig(v),
        "gelu": lambda v: 0.5 * v * (1 + np.vectorize(erf)(v / np.sqrt(2))),
        "mish": lambda v: v * np.tanh(sp(v)),
    }[name](x)


def conv_ref_nhwc(x, k, b, strides, pads, dilation=(1, 1), groups=1):
    """x NHWC, k HWIO (kh, kw, cin/groups, cout), pads (top, bottom, left, right)."""
    x = np.asarray(x, np.float64)
    k = np.asarray(k, np.float64)
    t, bo, le, r = pads
    xp = np.pad(x, ((0, 0), (t, bo), (le, r), (0, 0)))
    n, h, w, _ = x.shape
    kh, kw, cg, co = k.shape
    (sh, sw), (dh, dw) = strides, dilation
    oh = (h + t + bo - (kh - 1) * dh - 1) // sh + 1
    ow = (w + le + r - (kw - 1) * dw - 1) // sw + 1
    og = co // groups
    out = np.zeros((n, oh, ow, co))
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                tap = xp[:, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                         j * dw:j * dw + sw * (ow - 1) + 1:sw, g * cg:(g + 1) * cg]
                out[..., g * og:(g + 1) * og] += tap @ k[i, j, :, g * og:(g + 1) * og]
    if b is not None:
        out += b
    return out


def tf_same_pads(size, k, s, d=1):
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def pool_ref_nchw(x, k, s, pads, mode, include_pad, dilation=(1, 1), out_hw=None):
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = k, s, dilation
    t, b, le, r = pads
    if out_hw is None:
        out_hw = ((h + t + b - (kh - 1) * dh - 1) // sh + 1,
                  (w + le + r - (kw - 1) * dw - 1) // sw + 1)
    oh, ow = out_hw
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            rows = [i * sh - t + a * dh for a in range(kh)]
            cols = [j * sw - le + a * dw for a in range(kw)]
            ri = [q for q in rows if 0 <= q < h]
            ci = [q for q in cols if 0 <= q < w]
            win = x[:, :, ri][:, :, :, ci]
            if mode == "max":
                out[:, :, i, j] = win.max(axis=(2, 3))
            else:
                if include_pad:
                    cnt = sum(-t <= q < h + b for q in rows) * sum(-le <= q < w + r for q in cols)
                else:
                    cnt = len(ri) * len(ci)
                out[:, :, i, j] = win.sum(axis=(2, 3)) / cnt
    return out


def _close(a, ref, dtype=np.float32, scale=None):
    tol = 2e-5 if dtype == np.float32 else 1e-11
    scale = scale if scale is not None else max(1.0, float(np.max(np.abs(ref))))
    np.testing.assert_allclose(np.asarray(a, np.float64), ref, rtol=tol * 10, atol=tol * scale)


# ---------------------------------------------------------------------------
# Conv2D / DepthwiseConv2D against NumPy


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv2d_numpy(rng, strides, padding, data_format):
    x = rng.standard_normal((2, 9, 10, 4)).astype(np.float32)
    k = rng.standard_normal((3, 2, 2, 6)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    layer = L.Conv2D(6, (3, 2), strides=strides, padding=padding, groups=2,
                     data_format=data_format, activation="leaky_relu", kernel=k, bias=b)
    if padding == "same":
        pads = tf_same_pads(9, 3, strides) + tf_same_pads(10, 2, strides)
    else:
        pads = (0, 0, 0, 0)
    ref = _act_ref("leaky_relu", conv_ref_nhwc(x, k, b, (strides,) * 2, pads, groups=2))
    xin = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    y = layer(xin)
    if data_format == "channels_first":
        y = y.transpose(0, 2, 3, 1)
    assert y.dtype == np.float32
    _close(y, ref)
    if padding == "same":
        assert y.shape[1:3] == (-(-9 // strides), -(-10 // strides))


def test_conv2d_same_is_asymmetric_like_tensorflow(rng):
    # 1x1 image content at the corners shows where the extra pad row goes.
    x = np.zeros((1, 4, 4, 1), np.float32)
    x[0, 0, 0, 0] = 1
    k = np.zeros((3, 3, 1, 1), np.float32)
    k[0, 0, 0, 0] = 1       # output(i, j) = x(2i - top, 2j - left)
    y = L.Conv2D(1, 3, strides=2, padding="same", kernel=k, use_bias=False)(x)
    # total pad = (2-1)*2 + 3 - 4 = 1 -> top 0, bottom 1: output(0,0) sees x(0,0)
    assert y[0, 0, 0, 0] == 1 and y.sum() == 1


def test_conv2d_dilation_and_explicit_padding(rng):
    x = rng.standard_normal((1, 11, 12, 3))
    k = rng.standard_normal((3, 3, 3, 5))
    layer = L.Conv2D(5, 3, dilation_rate=2, padding=((1, 2), (0, 3)), kernel=k,
                     use_bias=False, dtype="float64")
    ref = conv_ref_nhwc(x, k, None, (1, 1), (1, 2, 0, 3), dilation=(2, 2))
    y = layer(x)
    assert y.dtype == np.float64
    _close(y, ref, np.float64)


def test_conv2d_lazy_build_and_weights(rng):
    layer = L.Conv2D(8, 3, groups=2)
    assert not layer.built and layer.get_weights() == []
    x = rng.standard_normal((2, 7, 7, 4))           # float64 -> cast to float32
    y = layer(x)
    assert layer.built and y.dtype == np.float32 and y.shape == (2, 5, 5, 8)
    k, b = layer.get_weights()
    assert k.shape == (3, 3, 2, 8) and b.shape == (8,) and not b.any()
    limit = np.sqrt(6 / (9 * 2 + 9 * 8))            # glorot_uniform, Keras fans
    assert np.abs(k).max() <= limit
    k2 = rng.standard_normal(k.shape)
    layer.set_weights([k2, np.ones(8)])
    _close(layer(x), conv_ref_nhwc(x.astype(np.float32), k2.astype(np.float32), 1.0,
                                   (1, 1), (0, 0, 0, 0), groups=2))
    with pytest.raises(ValueError, match="weight list of length 1"):
        layer.set_weights([k2])
    with pytest.raises(ValueError, match="not compatible"):
        layer.set_weights([k2[:2], np.ones(8)])
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 4"):
        layer(np.zeros((1, 7, 7, 3), np.float32))
    with pytest.raises(ValueError, match="expected ndim=4"):
        layer(np.zeros((7, 7, 4), np.float32))


def test_activation_strings_mean_keras_objects_mean_torch(rng):
    x = rng.standard_normal((1, 5, 5, 2)).astype(np.float32) * 3
    k = rng.standard_normal((1, 1, 2, 2)).astype(np.float32)
    z = conv_ref_nhwc(x, k, None, (1, 1), (0, 0, 0, 0))
    keras_slope = L.Conv2D(2, 1, activation="leaky_relu", kernel=k)(x)
    torch_slope = L.Conv2D(2, 1, activation=Activation("leaky_relu"), kernel=k)(x)
    _close(keras_slope, np.where(z > 0, z, 0.2 * z))
    _close(torch_slope, np.where(z > 0, z, 0.01 * z))
    _close(L.Conv2D(2, 1, activation="gelu", kernel=k)(x), _act_ref("gelu", z))
    _close(L.Conv2D(2, 1, activation="hard_sigmoid", kernel=k)(x), _act_ref("hard_sigmoid", z))
    with pytest.raises(TypeError, match="pre_activation"):
        L.Conv2D(2, 1, pre_activation=np.tanh)


def test_conv2d_pre_activation(rng):
    x = rng.standard_normal((1, 6, 6, 2)).astype(np.float32)
    k = rng.standard_normal((3, 3, 2, 3)).astype(np.float32)
    layer = L.Conv2D(3, 3, padding="same", pre_activation="relu", kernel=k)
    ref = conv_ref_nhwc(np.maximum(x, 0), k, None, (1, 1), (1, 1, 1, 1))
    _close(layer(x), ref)


def test_depthwise_numpy(rng):
    x = rng.standard_normal((2, 8, 9, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 2)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    layer = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, kernel=k, bias=b)
    pads = tf_same_pads(8, 3, 2) + tf_same_pads(9, 3, 2)
    ref = conv_ref_nhwc(x, k.reshape(3, 3, 1, 6), b, (2, 2), pads, groups=3)
    _close(layer(x), ref)
    assert layer.get_weights()[0].shape == (3, 3, 3, 2)


# ---------------------------------------------------------------------------
# argument checks


@pytest.mark.parametrize("kwargs, match", [
    (dict(filters=0, kernel_size=3), "Expected a strictly positive value. Received filters=0"),
    (dict(filters=-2, kernel_size=3), "Received filters=-2"),
    (dict(filters=4, kernel_size=3, groups=3), "evenly divisible by the number of groups"),
    (dict(filters=4, kernel_size=0), "`kernel_size` argument must be a tuple of 2 integers"),
    (dict(filters=4, kernel_size=3, strides=0), "`strides` argument must be a tuple"),
    (dict(filters=4, kernel_size=(3, 3, 3)), "kernel_size"),
    (dict(filters=4, kernel_size=3, padding="full"), "`padding` argument"),
    (dict(filters=4, kernel_size=3, strides=2, dilation_rate=2), "`strides > 1` not supported"),
    (dict(filters=4, kernel_size=3, data_format="NCHW"), "`data_format` argument"),
    (dict(filters=4, kernel_size=3, activation="softmax2"), "Unknown activation"),
])
def test_conv2d_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[")):
        L.Conv2D(**kwargs)


def test_bad_arguments_same_message_as_keras():
    keras = _keras()
    cases = [dict(filters=0, kernel_size=3), dict(filters=4, kernel_size=3, groups=3),
             dict(filters=4, kernel_size=0), dict(filters=4, kernel_size=3, strides=0),
             dict(filters=4, kernel_size=3, strides=2, dilation_rate=2),
             dict(filters=4, kernel_size=3, padding="full")]
    norm = lambda s: s.replace("{'same', 'valid'}", "{'valid', 'same'}")  # Keras prints a set
    for kw in cases:
        with pytest.raises(ValueError) as theirs:
            keras.layers.Conv2D(**kw)
        with pytest.raises(ValueError) as ours:
            L.Conv2D(**kw)
        assert norm(str(ours.value)) == norm(str(theirs.value)), kw
    with pytest.raises(ValueError) as theirs:
        keras.layers.DepthwiseConv2D(3, depth_multiplier=0)
    with pytest.raises(ValueError) as ours:
        L.DepthwiseConv2D(3, depth_multiplier=0)
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError) as theirs:
        keras.layers.Dense(0)
    with pytest.raises(ValueError) as ours:
        L.Dense(0)
    assert str(ours.value) == str(theirs.value)


def test_conv2d_input_channels_vs_groups():
    with pytest.raises(ValueError, match="input channels must be evenly divisible"):
        L.Conv2D(4, 3, groups=2)(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match="output size would be zero or negative"):
        L.Conv2D(4, 5)(np.zeros((1, 3, 3, 1), np.float32))


# ---------------------------------------------------------------------------
# Keras 3 comparisons (weights copied through get_weights / set_weights)

KERAS_ACTS = ["linear", "relu", "relu6", "sigmoid", "hard_sigmoid", "tanh", "softplus",
              "softsign", "silu", "swish", "hard_silu", "hard_swish", "gelu", "elu", "selu",
              "leaky_relu", "mish"]


def _keras_pair(keras, ours, theirs, x, direction="to_ours", rng=None):
    """Build both on x; copy random weights one way; return both outputs."""
    xt = x
    theirs(xt)
    if direction == "to_ours":
        ws = [rng.standard_normal(w.shape).astype(np.float32) * 0.5 for w in theirs.get_weights()]
        theirs.set_weights(ws)
        ours.set_weights(theirs.get_weights())
    else:
        ours(x)
        theirs.set_weights(ours.get_weights())
    return ours(x), _kout(theirs(xt))


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d_vs_keras(rng, strides, padding, data_format, groups):
    keras = _keras()
    shape = (2, 9, 8, 4) if data_format == "channels_last" else (2, 4, 9, 8)
    x = rng.standard_normal(shape).astype(np.float32)
    kw = dict(filters=6, kernel_size=(3, 2), strides=strides, padding=padding,
              data_format=data_format, groups=groups, activation="relu")
    ours, theirs = L.Conv2D(**kw), keras.layers.Conv2D(**kw)
    y, ref = _keras_pair(keras, ours, theirs, x, rng=rng)
    assert y.shape == ref.shape
    _close(y, ref)


@pytest.mark.parametrize("activation", KERAS_ACTS)
def test_conv2d_activations_vs_keras(rng, activation):
    keras = _keras()
    x = (rng.standard_normal((1, 7, 6, 3)) * 3).astype(np.float32)
    kw = dict(filters=4, kernel_size=3, strides=2, padding="same", activation=activation)
    ours, theirs = L.Conv2D(**kw), keras.layers.Conv2D(**kw)
    y, ref = _keras_pair(keras, ours, theirs, x, rng=rng)
    _close(y, ref)


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_depthwise_vs_keras(rng, strides, padding, data_format):
    keras = _keras()
    shape = (2, 9, 8, 3) if data_format == "channels_last" else (2, 3, 9, 8)
    x = rng.standard_normal(shape).astype(np.float32)
    kw = dict(kernel_size=3, strides=strides, padding=padding, depth_multiplier=2,
              data_format=data_format, activation="hard_silu")
    ours, theirs = L.DepthwiseConv2D(**kw), keras.layers.DepthwiseConv2D(**kw)
    y, ref = _keras_pair(keras, ours, theirs, x, rng=rng)
    _close(y, ref)


@pytest.mark.parametrize("activation", ["gelu", "leaky_relu", "elu", "selu", "mish"])
def test_depthwise_activations_vs_keras(rng, activation):
    keras = _keras()
    x = (rng.standard_normal((1, 6, 6, 2)) * 2).astype(np.float32)
    kw = dict(kernel_size=3, padding="same", activation=activation)
    ours, theirs = L.DepthwiseConv2D(**kw), keras.layers.DepthwiseConv2D(**kw)
    y, ref = _keras_pair(keras, ours, theirs, x, rng=rng)
    _close(y, ref)


def test_weights_copy_from_fastconv_to_keras(rng):
    keras = _keras()
    x = rng.standard_normal((1, 8, 8, 4)).astype(np.float32)
    ours = L.Conv2D(6, 3, strides=2, padding="same", groups=2)
    theirs = keras.layers.Conv2D(6, 3, strides=2, padding="same", groups=2)
    y, ref = _keras_pair(keras, ours, theirs, x, direction="to_keras")
    _close(y, ref)


def test_keras_activation_defaults():
    """A string means what it means in Keras 3 (checked against keras itself)."""
    keras = _keras()
    x = np.linspace(-6, 6, 97).astype(np.float32)
    for name in KERAS_ACTS:
        ref = _kout(keras.activations.get(name)(keras.ops.convert_to_tensor(x)))
        y = L.Activation(name)(x)
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6, err_msg=name)


def test_keras_activation_callable_and_numpy_ones(rng):
    keras = _keras()
    x = rng.standard_normal((2, 5)).astype(np.float32)
    d = L.Dense(4, activation=keras.activations.relu, kernel=rng.standard_normal((5, 4)))
    assert (d(x) >= 0).all()
    soft = L.Dense(4, activation="softmax", kernel=rng.standard_normal((5, 4)))
    np.testing.assert_allclose(soft(x).sum(-1), 1, rtol=1e-6)


@pytest.mark.parametrize("cls", ["MaxPooling2D", "AveragePooling2D"])
@pytest.mark.parametrize("pool, strides", [((2, 2), None), ((3, 3), (2, 2)), ((3, 2), (1, 2))])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_pooling_vs_keras(rng, cls, pool, strides, padding, data_format):
    keras = _keras()
    shape = (2, 7, 8, 3) if data_format == "channels_last" else (2, 3, 7, 8)
    x = rng.standard_normal(shape).astype(np.float32)
    kw = dict(pool_size=pool, strides=strides, padding=padding, data_format=data_format)
    layer = getattr(L, cls)(**kw)
    y = layer(x)
    ref = _kout(getattr(keras.layers, cls)(**kw)(x))
    assert y.shape == ref.shape
    _, pads = layer._geometry(x.shape)
    if cls == "AveragePooling2D" and (pads[0] != pads[1] or pads[2] != pads[3]):
        # Keras's torch backend pads an asymmetric "same" average with
        # replicated edge values; TensorFlow (and fastconv) average over the
        # taps inside the input only.  Check against the NumPy reference.
        xn = x if data_format == "channels_first" else x.transpose(0, 3, 1, 2)
        ref = pool_ref_nchw(xn, layer.pool_size, layer.strides, pads, "avg", False)
        if data_format == "channels_last":
            ref = ref.transpose(0, 2, 3, 1)
    _close(y, ref)


def test_other_layers_vs_keras(rng):
    keras = _keras()
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    # BatchNormalization (inference), weights in Keras order
    kb = keras.layers.BatchNormalization(epsilon=1e-3)
    kb(x)
    kb.set_weights([rng.uniform(0.5, 2, 3), rng.standard_normal(3), rng.standard_normal(3),
                    rng.uniform(0.5, 2, 3)])
    ob = L.BatchNormalization()
    ob.set_weights(kb.get_weights())
    _close(ob(x), _kout(kb(x, training=False)))
    kb1 = keras.layers.BatchNormalization(axis=1, center=False)
    xc = x.transpose(0, 3, 1, 2).copy()
    kb1(xc)
    kb1.set_weights([rng.uniform(0.5, 2, 3), rng.standard_normal(3), rng.uniform(0.5, 2, 3)])
    ob1 = L.BatchNormalization(axis=1, center=False)
    ob1.set_weights(kb1.get_weights())
    _close(ob1(xc), _kout(kb1(xc, training=False)))
    # Flatten, channels_first transposes like Keras
    for fmt, inp in (("channels_last", x), ("channels_first", xc)):
        _close(L.Flatten(data_format=fmt)(inp), _kout(keras.layers.Flatten(data_format=fmt)(inp)))
        for pad in (1, (1, 2), ((0, 2), (3, 1))):
            _close(L.ZeroPadding2D(pad, data_format=fmt)(inp),
                   _kout(keras.layers.ZeroPadding2D(pad, data_format=fmt)(inp)))
        for kl in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
            for keep in (False, True):
                _close(getattr(L, kl)(data_format=fmt, keepdims=keep)(inp),
                       _kout(getattr(keras.layers, kl)(data_format=fmt, keepdims=keep)(inp)))
    # Dense with activation on a 2-D and a 4-D input
    kd = keras.layers.Dense(4, activation="gelu")
    for inp in (x.reshape(2, -1), x):
        kd = keras.layers.Dense(4, activation="gelu")
        kd(inp)
        od = L.Dense(4, activation="gelu")
        od.set_weights(kd.get_weights())
        _close(od(inp), _kout(kd(inp)))
    # Add
    _close(L.Add()([x, 2 * x, x]), _kout(keras.layers.Add()([x, 2 * x, x])))


def test_other_layers_numpy(rng):
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    xc = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    g, b, m, v = rng.uniform(0.5, 2, 3), rng.standard_normal(3), rng.standard_normal(3), \
        rng.uniform(0.5, 2, 3)
    ref = (x - m) / np.sqrt(v + 1e-3) * g + b
    _close(L.BatchNormalization(gamma=g, beta=b, moving_mean=m, moving_variance=v)(x), ref)
    bn1 = L.BatchNormalization(axis=1, epsilon=1e-5, scale=False)
    bn1.set_weights([b, m, v])
    _close(bn1(xc), ((x - m) / np.sqrt(v + 1e-5) + b).transpose(0, 3, 1, 2))
    k, bias = rng.standard_normal((3, 4)), rng.standard_normal(4)
    _close(L.Dense(4, activation="relu", kernel=k, bias=bias)(x),
           np.maximum(x.astype(np.float64) @ k + bias, 0))
    _close(L.Dense(4, activation="softmax", kernel=k, use_bias=False)(x[:, 0, 0]),
           np.exp(x[:, 0, 0] @ k) / np.exp(x[:, 0, 0] @ k).sum(-1, keepdims=True))
    _close(L.Add(activation="relu6")([x, 3 * x]), np.clip(4.0 * x, 0, 6))
    _close(L.Flatten()(xc), xc.reshape(2, -1))
    _close(L.Flatten(data_format="channels_first")(xc), x.reshape(2, -1))
    _close(L.ZeroPadding2D(((1, 0), (2, 3)))(x), np.pad(x, ((0, 0), (1, 0), (2, 3), (0, 0))))
    _close(L.ZeroPadding2D(2, data_format="channels_first")(xc),
           np.pad(xc, ((0, 0), (0, 0), (2, 2), (2, 2))))
    _close(L.GlobalAveragePooling2D()(x), x.mean(axis=(1, 2)))
    _close(L.GlobalMaxPooling2D(data_format="channels_first", keepdims=True)(xc),
           xc.max(axis=(2, 3), keepdims=True))
    _close(L.Activation(Activation("elu", alpha=0.5))(x), np.where(x > 0, x, 0.5 * np.expm1(x)))
    assert L.Identity()(x) is x and L.Dropout(0.3)(x) is x
    with pytest.raises(ValueError, match="incompatible shapes"):
        L.Add()([x, xc])
    with pytest.raises(ValueError, match="list of inputs"):
        L.Add()(x)
    with pytest.raises(ValueError, match="`padding` should have two elements"):
        L.ZeroPadding2D((1, 2, 3))


# ---------------------------------------------------------------------------
# pooling against NumPy (Keras and torch rules, both dtypes, explicit padding)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("case", [
    dict(pool_size=3, strides=2, padding="same"),
    dict(pool_size=(2, 3), strides=(1, 2), padding="valid"),
    dict(pool_size=3, strides=2, padding=1),                             # torch, include pad
    dict(pool_size=3, strides=2, padding=1, count_include_pad=False),
    dict(pool_size=(3, 4), strides=(2, 3), padding=((1, 0), (2, 1))),
    dict(pool_size=3, strides=2, padding=1, ceil_mode=True),
    dict(pool_size=2, strides=1, padding="same", count_include_pad=True),
])
@pytest.mark.parametrize("channels", [3, 70])   # 70: past a 64-channel block (channels_last)
def test_pooling_numpy(rng, dtype, mode, case, channels):
    x = rng.standard_normal((2, channels, 8, 9)).astype(dtype)
    cls = L.MaxPooling2D if mode == "max" else L.AveragePooling2D
    layer = cls(data_format="channels_first", dtype=dtype, **case)
    y = layer(x)
    out_hw, pads = layer._geometry(x.shape)
    include = layer.count_include_pad
    ref = pool_ref_nchw(x, layer.pool_size, layer.strides, pads, mode, include, out_hw=out_hw)
    assert y.dtype == dtype
    _close(y, ref, dtype)
    # same through channels_last
    cl = cls(data_format="channels_last", dtype=dtype, **case)
    _close(cl(x.transpose(0, 2, 3, 1)), ref.transpose(0, 2, 3, 1), dtype)


def test_maxpool_nan_and_dilation(rng):
    x = rng.standard_normal((1, 2, 9, 9)).astype(np.float32)
    x[0, 0, 4, 4] = np.nan
    y = L.MaxPooling2D(3, strides=1, data_format="channels_first")(x)
    assert np.isnan(y[0, 0, 2:5, 2:5]).all() and not np.isnan(y[0, 1]).any()
    for kw in (dict(strides=1), dict(strides=2, padding="same")):   # the channels-last body
        ref = L.MaxPooling2D(3, data_format="channels_first", **kw)(x)
        cl = L.MaxPooling2D(3, **kw)(x.transpose(0, 2, 3, 1))
        np.testing.assert_array_equal(cl, ref.transpose(0, 2, 3, 1))
    x[0, 0, 4, 4] = 0
    layer = L.MaxPooling2D(3, strides=2, padding=2, dilation=2, data_format="channels_first")
    out_hw, pads = layer._geometry(x.shape)
    _close(layer(x), pool_ref_nchw(x, (3, 3), (2, 2), pads, "max", False, (2, 2), out_hw))


def test_pooling_bad_arguments():
    with pytest.raises(ValueError, match="pool_size"):
        L.MaxPooling2D(0)
    with pytest.raises(ValueError, match="at most half"):
        L.MaxPooling2D(2, padding=2)
    with pytest.raises(ValueError, match="ceil_mode"):
        L.AveragePooling2D(2, padding="same", ceil_mode=True)
    with pytest.raises(ValueError, match="expected ndim=4"):
        L.MaxPooling2D()(np.zeros((3, 4, 4), np.float32))


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 1)),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=2, stride=2, ceil_mode=True),
])
def test_pooling_vs_torch(rng, kw):
    torch = _torch()
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    for mod in (torch.nn.MaxPool2d, torch.nn.AvgPool2d):
        args = dict(kw)
        if mod is torch.nn.MaxPool2d:
            args.pop("count_include_pad", None)
        m = mod(**args)
        ref = m(torch.from_numpy(x)).numpy()
        y = L.from_torch(m)(x)
        assert y.shape == ref.shape, (mod, kw)
        _close(y, ref)


# ---------------------------------------------------------------------------
# from_torch, Sequential, Model, folding, weights files


def _torch_net(torch, act):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), act,
        nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.MaxPool2d(3, 2, 1), nn.ZeroPad2d((1, 0, 2, 1)), nn.AvgPool2d(2),
        nn.Sequential(nn.Conv2d(8, 6, 1), nn.SiLU()), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(6, 5), nn.Tanh())


def _randomize_bn(torch, net, rng):
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, m.num_features)))
                m.bias.copy_(torch.from_numpy(rng.standard_normal(m.num_features)))
                m.running_mean.copy_(torch.from_numpy(rng.standard_normal(m.num_features)))
                m.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2, m.num_features)))
    return net.eval()


def test_from_torch_sequential(rng):
    torch = _torch()
    torch.manual_seed(0)
    nn = torch.nn
    for act in (nn.LeakyReLU(0.05), nn.GELU(approximate="tanh"), nn.ELU(0.7), nn.Hardswish(),
                nn.Mish(), nn.Softplus(), nn.Hardsigmoid(), nn.SELU()):
        net = _randomize_bn(torch, _torch_net(torch, act), rng)
        x = rng.standard_normal((2, 3, 17, 16)).astype(np.float32)
        with torch.no_grad():
            ref = net(torch.from_numpy(x)).numpy()
        model = L.from_torch(net)
        _close(model(x), ref)
        _close(model.fold_batchnorm()(x), ref)


def test_from_torch_single_modules(rng):
    torch = _torch()
    nn = torch.nn
    x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
    for m in (nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
              nn.Conv2d(4, 4, 3, padding="same", groups=4), nn.Linear(9, 3),
              _randomize_bn(torch, nn.BatchNorm2d(4), rng), nn.AdaptiveMaxPool2d(1)):
        with torch.no_grad():
            ref = m(torch.from_numpy(x)).numpy()
        _close(L.from_torch(m)(x), ref)
    with pytest.raises(TypeError, match="unsupported module LSTM"):
        L.from_torch(nn.LSTM(3, 3))
    with pytest.raises(ValueError, match="padding_mode"):
        L.from_torch(nn.Conv2d(3, 3, 3, padding_mode="reflect"))


def test_fold_batchnorm(rng):
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    conv = L.Conv2D(5, 3, padding="same", use_bias=False)
    bn = L.BatchNormalization(epsilon=1e-3)
    conv(x)
    bn.set_weights([rng.uniform(0.5, 2, 5), rng.standard_normal(5), rng.standard_normal(5),
                    rng.uniform(0.1, 2, 5)])
    ref = bn(conv(x))
    folded = L.fold_batchnorm(conv, bn)
    y = folded(x)
    assert folded.use_bias and conv.get_weights()[0] is not folded.kernel
    _close(y, ref)
    # the depthwise kernel folds per output channel c*dm + m
    dw = L.DepthwiseConv2D(3, depth_multiplier=2, data_format="channels_first")
    bn1 = L.BatchNormalization(axis=1)
    xc = x.transpose(0, 3, 1, 2)
    dw(xc)
    bn1(dw(xc))
    bn1.set_weights([rng.uniform(0.5, 2, 6), rng.standard_normal(6), rng.standard_normal(6),
                     rng.uniform(0.1, 2, 6)])
    _close(L.fold_batchnorm(dw, bn1)(xc), bn1(dw(xc)))
    with pytest.raises(ValueError, match="cannot fold"):
        L.fold_batchnorm(L.Conv2D(5, 3, activation="relu", kernel=np.ones((3, 3, 3, 5))), bn)
    with pytest.raises(ValueError, match="cannot fold"):
        L.fold_batchnorm(conv, bn1)


def _residual_model(rng, fmt="channels_last"):
    shape = (8, 8, 4) if fmt == "channels_last" else (4, 8, 8)
    ax = -1 if fmt == "channels_last" else 1
    inp = L.Input(shape)
    y = L.Conv2D(4, 3, padding="same", use_bias=False, data_format=fmt)(inp)
    y = L.BatchNormalization(axis=ax)(y)
    y = L.Activation("relu")(y)
    y = L.Conv2D(4, 3, padding="same", use_bias=False, data_format=fmt)(y)
    y = L.BatchNormalization(axis=ax)(y)
    out = L.Add(activation="relu")([y, inp])
    out = L.GlobalAveragePooling2D(data_format=fmt)(out)
    out = L.Dense(3)(out)
    model = L.Model(inp, out)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 2, 4), rng.standard_normal(4),
                               rng.standard_normal(4), rng.uniform(0.1, 2, 4)])
    return model


def test_functional_residual_block(rng):
    model = _residual_model(rng)
    x = rng.standard_normal((3, 8, 8, 4)).astype(np.float32)
    c1, b1, _, c2, b2, add, gap, dense = model.layers
    h = np.maximum(b1(c1(x)), 0)
    ref = dense(gap(np.maximum(b2(c2(h)) + x, 0)))
    _close(model(x), ref)
    folded = model.fold_batchnorm()
    assert len(folded.layers) == len(model.layers) - 3   # 2 BN folded, 1 ReLU fused
    assert folded.layers[0].activation == "relu"
    _close(folded(x), ref)
    np.testing.assert_allclose(model.predict(x, batch_size=2), model(x), rtol=1e-5, atol=1e-6)
    text = model.summary(print_fn=lambda s: None)
    assert "(None, 8, 8, 4)" in text and f"{model.count_params():,}" in text
    assert "FLOPs" in text and model.flops((None, 8, 8, 4)) > 2 * 2 * 64 * 9 * 16
    with pytest.raises(ValueError, match="Graph disconnected"):
        L.Model(L.Input((4, 4, 1)), c1.__call__(L.Input((4, 4, 4))))


def test_sequential_predict_summary_and_npz(rng, tmp_path, capsys):
    model = L.Sequential([L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(),
                          L.Flatten(), L.Dense(3)], input_shape=(10, 10, 2))
    x = rng.standard_normal((5, 10, 10, 2)).astype(np.float32)
    y = model(x)
    np.testing.assert_allclose(model.predict(x, batch_size=2), y, rtol=1e-5, atol=1e-6)
    model.predict(x, batch_size=2, verbose=True)
    assert "3/3" in capsys.readouterr().err
    model.predict(x)
    assert capsys.readouterr().err == ""
    text = model.summary(print_fn=lambda s: None)
    assert "(None, 4, 4, 4)" in text and "(None, 3)" in text and "Total params: 271" in text
    path = tmp_path / "w.npz"
    model.save_weights(path)
    other = L.Sequential([L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(),
                          L.Flatten(), L.Dense(3)], input_shape=(10, 10, 2))
    assert not np.allclose(other(x), y)
    other.load_weights(path)
    np.testing.assert_array_equal(other(x), y)
    wrong = L.Sequential([L.Conv2D(4, 3), L.Flatten(), L.Dense(3)], input_shape=(10, 10, 2))
    with pytest.raises(ValueError):
        wrong.load_weights(path)
