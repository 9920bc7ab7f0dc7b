"""Dense, BatchNormalization, Add, Flatten, ZeroPadding2D, Activation, Identity."""
import numpy as np

from fastconv import _core

from fastconv.conv import conv2d, pack_weight

from ._backprop import backward_activation, forward_activation
from ._base import (Layer, check_axis, check_ndim, initialize, keras_activation, shape_str,
                    standardize_data_format, standardize_tuple)


class Dense(Layer):
    """``y = activation(x @ kernel + bias)`` on the last axis; kernel is
    ``(in_features, units)`` (Keras; torch's Linear weight transposed)."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", dtype="float32", kernel=None, bias=None, name=None,
                 **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if isinstance(units, (bool, np.bool_)) or not isinstance(units, (int, np.integer)) \
                or units <= 0:
            raise ValueError("Received an invalid value for `units`, expected a positive "
                             f"integer. Received: units={units}")
        self.units = int(units)
        self._activation = keras_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel = self.bias = None
        if kernel is not None:
            k = np.asarray(kernel)
            if k.ndim != 2 or k.shape[1] != self.units:
                raise ValueError(f'Layer "{self.name}": kernel must have shape (in_features, '
                                 f"{self.units}). Received kernel of shape {k.shape}")
            self.build((None, k.shape[0]))
            if bias is None and self.use_bias:
                bias = np.zeros(self.units)
            self.set_weights([k] + ([bias] if self.use_bias else []))
        elif bias is not None:
            raise ValueError("`bias` was given without `kernel`")

    @property
    def activation(self):
        return self._activation.config

    @property
    def weight_names(self):
        if not self.built:
            return []
        return ["kernel", "bias"] if self.use_bias else ["kernel"]

    def _build_from_weights(self, weights):
        self.build((None, np.asarray(weights[0]).shape[0]))

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f'Input 0 of layer "{self.name}" is incompatible with the layer: '
                             f"expected min_ndim=2, found ndim={len(input_shape)}. "
                             f"Full shape received: {shape_str(input_shape)}")
        fin = input_shape[-1]
        self.kernel = initialize(self.kernel_initializer, (fin, self.units), self.dtype,
                                 "kernel_initializer")
        self.bias = initialize(self.bias_initializer, (self.units,), self.dtype,
                               "bias_initializer") if self.use_bias else None
        self._packed = None
        super().build(input_shape)

    def _weights_changed(self):
        self._packed = None

    def _check_input(self, shape):
        if len(shape) < 2:
            raise ValueError(f'Input 0 of layer "{self.name}" is incompatible with the layer: '
                             f"expected min_ndim=2, found ndim={len(shape)}. "
                             f"Full shape received: {shape_str(shape)}")
        if self.built:
            check_axis(self, shape, -1, self.kernel.shape[0])

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def call(self, x, training=False):
        # A 1x1 convolution over the rows: the fastconv kernels (their thread
        # count, the activation fused) instead of BLAS.
        fin = self.kernel.shape[0]
        if training:
            # the activation applied after, by forward_activation: it keeps
            # y or z for the derivative (the relu family from y, in place)
            z = self._linear(x, fused=None)
            y, act_saved = forward_activation(self._activation, z, True)
            self._saved = (x, act_saved)
            return y
        if x.size == 0:
            y = np.zeros(x.shape[:-1] + (self.units,), self.dtype)
            return self._activation.apply(y + self.bias) if self.use_bias else y
        y = self._linear(x, fused=self._activation.fused)
        if self._activation.python is not None:
            y = np.asarray(self._activation.python(y))
        return y

    def _linear(self, x, fused):
        fin = self.kernel.shape[0]
        if x.size == 0:
            y = np.zeros(x.shape[:-1] + (self.units,), self.dtype)
            return y + self.bias if self.use_bias else y
        rows = x.reshape(1, -1, 1, fin)
        if self._packed is None:
            self._packed = pack_weight(self.kernel.reshape(1, 1, fin, self.units),
                                       data_format="NHWC")
        y = conv2d(rows, self._packed, self.bias if self.use_bias else None,
                   activation=fused, data_format="NHWC")
        return y.reshape(x.shape[:-1] + (self.units,))

    def _activation_state(self):
        return self._saved[1] if self._saved else None

    def _backward(self, g, saved, need_input):
        x, act_saved = saved
        gbias = np.empty(self.units, self.dtype) if self.use_bias else None
        # the derivative and the bias gradient in one C pass
        gz = backward_activation(self._activation, g.astype(self.dtype, copy=False),
                                 act_saved, f'Layer "{self.name}"', channels=self.units,
                                 gbias=gbias)
        fin = self.kernel.shape[0]
        rows = x.reshape(-1, fin)
        gz_rows = gz.reshape(-1, self.units)
        self._grads = {"kernel": rows.T @ gz_rows}
        if self.use_bias:
            self._grads["bias"] = gbias
        if not need_input:
            return None
        return (gz_rows @ self.kernel.T).reshape(x.shape)

    def flops(self, input_shape):
        rows = int(np.prod(input_shape[1:-1]))
        return rows * (2 * self.kernel.shape[0] * self.units + (self.units if self.use_bias else 0))


class BatchNormalization(Layer):
    """Batch normalization, Keras's ``BatchNormalization``.

    Inference (``training=False``, the default):
    ``(x - moving_mean) / sqrt(moving_variance + epsilon) * gamma + beta``.
    Training: the batch's mean and (biased) variance over every axis but
    ``axis`` normalise instead, and the moving statistics follow Keras's rule
    ``moving = moving * momentum + batch_stat * (1 - momentum)``.

    Keras defaults (``axis=-1``, ``momentum=0.99``, ``epsilon=1e-3``) and
    weight order ``[gamma, beta, moving_mean, moving_variance]`` (gamma only
    with ``scale=True``, beta only with ``center=True``); gamma and beta are
    trained.  torch's BatchNorm2d is ``axis=1, epsilon=1e-5`` (and updates with
    the unbiased variance).  ``fastconv.layers.fold_batchnorm`` folds it into
    the convolution before it.
    """

    _trainable_names = ("gamma", "beta")

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 dtype="float32", gamma=None, beta=None, moving_mean=None, moving_variance=None,
                 name=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"`axis` must be an int. Received: axis={axis!r}")
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        if not self.epsilon >= 0:
            raise ValueError(f"`epsilon` must be non-negative. Received: epsilon={epsilon}")
        self.center = bool(center)
        self.scale = bool(scale)
        self._inits = dict(gamma=gamma_initializer, beta=beta_initializer,
                           moving_mean=moving_mean_initializer,
                           moving_variance=moving_variance_initializer)
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None
        self._affine = None
        given = dict(gamma=gamma, beta=beta, moving_mean=moving_mean,
                     moving_variance=moving_variance)
        if any(v is not None for v in given.values()):
            ref = next(np.asarray(v) for v in given.values() if v is not None)
            if ref.ndim != 1:
                raise ValueError(f'Layer "{self.name}": batch-norm statistics must be 1-D. '
                                 f"Received shape {ref.shape}")
            self._build_channels(ref.shape[0])
            self.set_weights([given[n] if given[n] is not None else getattr(self, n)
                              for n in self.weight_names])

    @property
    def weight_names(self):
        if not self.built:
            return []
        return (["gamma"] if self.scale else []) + (["beta"] if self.center else []) + \
            ["moving_mean", "moving_variance"]

    def _build_channels(self, c, input_shape=None):
        for n in ("gamma", "beta", "moving_mean", "moving_variance"):
            setattr(self, n, initialize(self._inits[n], (c,), self.dtype, f"{n}_initializer"))
        if not self.scale:
            self.gamma = np.ones(c, self.dtype)
        if not self.center:
            self.beta = np.zeros(c, self.dtype)
        Layer.build(self, input_shape)
        self._affine = None

    def _build_from_weights(self, weights):
        self._build_channels(np.asarray(weights[0]).shape[0])

    def _weights_changed(self):
        self._affine = None

    def build(self, input_shape):
        ax = self.axis if self.axis >= 0 else len(input_shape) + self.axis
        if not 0 < ax < len(input_shape):
            raise ValueError(f'Layer "{self.name}": axis={self.axis} is out of range for an '
                             f"input of shape {shape_str(input_shape)}")
        self._build_channels(input_shape[ax], tuple(input_shape))

    def _check_input(self, shape):
        ax = self.axis if self.axis >= 0 else len(shape) + self.axis
        if not 0 < ax < len(shape):
            raise ValueError(f'Layer "{self.name}": axis={self.axis} is out of range for an '
                             f"input of shape {shape_str(shape)}")
        if self.built:
            check_axis(self, shape, self.axis, self.moving_mean.shape[0])

    def scale_shift(self):
        """(a, b) in float64 with ``y = x * a + b``."""
        a = self.gamma.astype(np.float64) / np.sqrt(self.moving_variance.astype(np.float64)
                                                    + self.epsilon)
        b = self.beta.astype(np.float64) - self.moving_mean.astype(np.float64) * a
        return a, b

    def call(self, x, training=False):
        ax = self.axis if self.axis >= 0 else x.ndim + self.axis
        if training:
            return self._call_training(x, ax)
        if self._affine is None or self._affine[0] != x.ndim:
            a, b = self.scale_shift()
            shape = [1] * x.ndim
            shape[ax] = -1
            self._affine = (x.ndim, a.astype(self.dtype).reshape(shape),
                            b.astype(self.dtype).reshape(shape))
        _, a, b = self._affine
        y = x * a
        y += b
        return y

    def _call_training(self, x, ax):
        # one C pass per statistic and one for xhat and y, threaded over
        # channels (benchmarks/NOTES.md, training step)
        x = np.ascontiguousarray(x, dtype=self.dtype)
        outer = int(np.prod(x.shape[:ax], dtype=np.int64))
        c = x.shape[ax]
        inner = int(np.prod(x.shape[ax + 1:], dtype=np.int64))
        xhat, y = np.empty_like(x), np.empty_like(x)
        mean, var, inv_std = (np.empty(c, self.dtype) for _ in range(3))
        _core.bn_train_forward(x, outer, c, inner, self.gamma, self.beta, float(self.epsilon),
                               xhat, y, mean, var, inv_std)
        m = self.dtype_type(self.momentum)
        for stat, batch in ((self.moving_mean, mean), (self.moving_variance, var)):
            stat *= m
            stat += batch * (1 - m)
        self._affine = None
        self._saved = (xhat, inv_std, (outer, c, inner))
        return y

    def _backward(self, g, saved, need_input):
        xhat, inv_std, (outer, c, inner) = saved
        g = np.ascontiguousarray(g, dtype=self.dtype)
        gbeta, ggamma = np.empty(c, self.dtype), np.empty(c, self.dtype)
        # dx = gamma * inv_std * (g - mean(g) - xhat * mean(g * xhat))
        dx = np.empty_like(g) if need_input else None
        _core.bn_train_backward(g, xhat, outer, c, inner, self.gamma, inv_std, gbeta, ggamma,
                                dx)
        self._grads = {}
        if self.scale:
            self._grads["gamma"] = ggamma
        if self.center:
            self._grads["beta"] = gbeta
        return dx

    @property
    def dtype_type(self):
        return np.dtype(self.dtype).type

    def flops(self, input_shape):
        return 2 * int(np.prod(input_shape[1:]))


class Add(Layer):
    """Sum of a list of same-shape inputs, then an optional activation (in
    place): ``Add(activation="relu")([main, shortcut])`` is the ResNet join.
    Activation strings have Keras meanings."""

    _n_inputs = 2

    def __init__(self, activation=None, name=None, dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self._activation = keras_activation(activation)

    @property
    def activation(self):
        return self._activation.config

    def _check_input(self, shapes):
        if len(shapes) < 1:
            raise ValueError("A merge layer should be called on a list of at least 1 input. "
                             f"Received {len(shapes)} inputs.")
        for s in shapes[1:]:
            if tuple(s) != tuple(shapes[0]):
                raise ValueError("Inputs have incompatible shapes. "
                                 f"Received shapes {shape_str(shapes[0])} and {shape_str(s)}")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def call(self, xs, training=False):
        y = xs[0] + xs[1] if len(xs) > 1 else xs[0].copy()
        for t in xs[2:]:
            y += t
        y, act_saved = forward_activation(self._activation, y, training)
        if training:
            self._saved = (len(xs), act_saved)
        return y

    def _activation_state(self):
        return self._saved[1] if self._saved else None

    def _backward(self, g, saved, need_input):
        n, act_saved = saved
        self._grads = {}
        if not need_input:
            return None
        gz = backward_activation(self._activation, g.astype(self.dtype, copy=False), act_saved,
                                 f'Layer "{self.name}"')
        return [gz] * n     # the same array for every input (the graph copies to add)

    def flops(self, input_shape):
        return (len(input_shape) - 1) * int(np.prod(input_shape[0][1:]))


class Flatten(Layer):
    """(N, ...) -> (N, prod(...)).  As in Keras, ``data_format="channels_first"``
    flattens in channels-last order (it moves the channel axis last first);
    the default (``"channels_last"``) is a plain reshape, which is also what
    torch's ``nn.Flatten`` does to an NCHW tensor."""

    _cast_all_inputs = False

    def __init__(self, data_format=None, name=None, dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.data_format = standardize_data_format(data_format)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        n = None if any(d is None for d in rest) else int(np.prod(rest))
        return (input_shape[0], n)

    def call(self, x, training=False):
        if training:
            self._saved = x.shape
        if self.data_format == "channels_first" and x.ndim > 2:
            x = x.transpose((0,) + tuple(range(2, x.ndim)) + (1,))
        return np.reshape(x, (x.shape[0], -1))

    def _backward(self, g, saved, need_input):
        if not need_input:
            return None
        shape = saved
        if self.data_format == "channels_first" and len(shape) > 2:
            moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
            nd = len(shape)
            return np.ascontiguousarray(g.reshape(moved).transpose((0, nd - 1) +
                                                                   tuple(range(1, nd - 1))))
        return g.reshape(shape)


class ZeroPadding2D(Layer):
    """Zero padding: ``padding`` int, ``(sym_h, sym_w)`` or
    ``((top, bottom), (left, right))`` (Keras)."""

    _cast_all_inputs = False

    def __init__(self, padding=(1, 1), data_format=None, name=None, dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.data_format = standardize_data_format(data_format)
        if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
            self.padding = ((int(padding),) * 2, (int(padding),) * 2)
        elif hasattr(padding, "__len__"):
            if len(padding) != 2:
                raise ValueError(f"`padding` should have two elements. Received: padding={padding}.")
            h = standardize_tuple(padding[0], 2, "1st entry of padding", allow_zero=True)
            w = standardize_tuple(padding[1], 2, "2nd entry of padding", allow_zero=True)
            self.padding = (h, w)
        else:
            raise ValueError("`padding` should be either an int, a tuple of 2 ints "
                             "(symmetric_height_crop, symmetric_width_crop), "
                             "or a tuple of 2 tuples of 2 ints "
                             "((top_crop, bottom_crop), (left_crop, right_crop)). "
                             f"Received: padding={padding}.")

    def _check_input(self, shape):
        check_ndim(self, shape, 4)

    def compute_output_shape(self, input_shape):
        (t, b), (l, r) = self.padding
        s = list(input_shape)
        hi, wi = (1, 2) if self.data_format == "channels_last" else (2, 3)
        s[hi] = None if s[hi] is None else s[hi] + t + b
        s[wi] = None if s[wi] is None else s[wi] + l + r
        return tuple(s)

    def call(self, x, training=False):
        (t, b), (l, r) = self.padding
        y = np.zeros(self.compute_output_shape(x.shape), x.dtype)
        if training:
            self._saved = x.shape
        y[self._inside(x.shape)] = x
        return y

    def _inside(self, shape):
        (t, _), (l, _) = self.padding
        if self.data_format == "channels_last":
            return np.s_[:, t:t + shape[1], l:l + shape[2], :]
        return np.s_[:, :, t:t + shape[2], l:l + shape[3]]

    def _backward(self, g, saved, need_input):
        return np.ascontiguousarray(g[self._inside(saved)]) if need_input else None


class Activation(Layer):
    """An activation as a layer: a Keras 3 name, a ``fastconv.Activation`` or a
    callable (torch activation modules become this layer)."""

    def __init__(self, activation, name=None, dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self._activation = keras_activation(activation)

    @property
    def activation(self):
        return self._activation.config

    def call(self, x, training=False):
        if self._activation.fused is None and self._activation.python is None:
            if training:
                self._saved = ()
            return x
        if self._activation.fused is not None:
            x = np.array(x, order="C", copy=True)   # activated in place
        y, act_saved = forward_activation(self._activation, x, training)
        if training:
            self._saved = act_saved
        return y

    def _activation_state(self):
        return self._saved if isinstance(self._saved, dict) else None

    def _backward(self, g, saved, need_input):
        if not need_input:
            return None
        if saved == ():
            return g
        return backward_activation(self._activation, g.astype(self.dtype, copy=False), saved,
                                   f'Layer "{self.name}"')


class Identity(Layer):
    """Returns its input (torch's Identity, and Dropout at inference)."""

    _cast_all_inputs = False

    def call(self, x, training=False):
        if training:
            self._saved = ()
        return x

    def _backward(self, g, saved, need_input):
        return g if need_input else None


class Dropout(Identity):
    """Dropout, Keras's ``Dropout(rate, seed=None)``: in training each element
    is zeroed with probability ``rate`` and the others are scaled by
    ``1 / (1 - rate)`` (so the expected value is unchanged); at inference it
    is the identity.  ``seed`` seeds the layer's own NumPy generator (the
    masks differ from Keras's, whose generator is the backend's)."""

    def __init__(self, rate=0.5, seed=None, name=None, dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, float, np.number)) \
                or not 0 <= rate <= 1:
            raise ValueError(f"Invalid value received for argument `rate`. Expected a float "
                             f"value between 0 and 1. Received: rate={rate}")
        self.rate = float(rate)
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def call(self, x, training=False):
        if not training or self.rate == 0:
            if training:
                self._saved = None, 1.0
            return x
        if self.rate == 1:
            self._saved = np.zeros(x.shape, bool), 0.0
            return np.zeros_like(x)
        keep = self._rng.random(x.shape) >= self.rate
        scale = 1.0 / (1.0 - self.rate)
        self._saved = keep, scale
        y = x * keep
        y *= x.dtype.type(scale) if x.dtype.kind == "f" else scale
        return y

    def _backward(self, g, saved, need_input):
        if not need_input:
            return None
        keep, scale = saved
        if keep is None:
            return g
        gx = g * keep
        gx *= g.dtype.type(scale)
        return gx
