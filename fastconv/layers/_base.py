"""The Layer base class and the argument helpers shared by every layer.

Activation strings given to a layer mean what they mean in Keras 3 (see
``keras_activation``); a ``fastconv.Activation`` object is taken as it is.
"""
import re
from collections import defaultdict

import numpy as np

from fastconv.activations import Activation, activate

_FLOAT_DTYPES = {"float32": np.float32, "float64": np.float64}

# ---------------------------------------------------------------------------
# argument checks (messages follow Keras where Keras has the same check)


def standardize_tuple(value, n, name, allow_zero=False):
    """int or n ints -> tuple of n ints; Keras's message on bad values."""
    error_msg = f"The `{name}` argument must be a tuple of {n} integers. Received {name}={value}"
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value_tuple = (int(value),) * n
    else:
        try:
            value_tuple = tuple(value)
        except TypeError:
            raise ValueError(error_msg) from None
        if len(value_tuple) != n:
            raise ValueError(error_msg)
        for v in value_tuple:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise ValueError(error_msg + f" including element {v} of type {type(v)}")
        value_tuple = tuple(int(v) for v in value_tuple)
    bad = {v for v in value_tuple if (v < 0 if allow_zero else v <= 0)}
    if bad:
        req = ">= 0" if allow_zero else "> 0"
        raise ValueError(error_msg + f", including values {bad} that do not satisfy `value {req}`")
    return value_tuple


def standardize_data_format(data_format):
    if data_format is None:
        return "channels_last"
    fmt = str(data_format).lower()
    if fmt not in ("channels_first", "channels_last"):
        raise ValueError("The `data_format` argument must be one of "
                         "{'channels_first', 'channels_last'}. "
                         f"Received: data_format={data_format}")
    return fmt


def standardize_dtype(dtype, name="dtype"):
    try:
        key = np.dtype(dtype).name
    except TypeError:
        key = None
    if key not in _FLOAT_DTYPES:
        raise ValueError(f"`{name}` must be 'float32' or 'float64'. Received: {name}={dtype!r}")
    return key


def positive_int(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer. Received: {name}={value!r}")
    return int(value)


def shape_str(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def explicit_padding(padding, name="padding"):
    """int, (ph, pw) or ((top, bottom), (left, right)) -> (top, bottom, left, right)."""
    err = (f"`{name}` must be 'valid', 'same', an int, a pair (ph, pw) or "
           f"((top, bottom), (left, right)) of non-negative ints. Received: {name}={padding!r}")
    try:
        if isinstance(padding, (int, np.integer)):
            pads = (padding,) * 4
        elif len(padding) == 2 and all(isinstance(p, (tuple, list)) for p in padding):
            (t, b), (l, r) = padding
            pads = (t, b, l, r)
        elif len(padding) == 2:
            pads = (padding[0], padding[0], padding[1], padding[1])
        else:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(err) from None
    if any(isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, np.integer)) or p < 0
           for p in pads):
        raise ValueError(err)
    return tuple(int(p) for p in pads)


def standardize_padding(padding, allow_explicit=True):
    """'valid' / 'same' (any case) or explicit pads (top, bottom, left, right)."""
    if isinstance(padding, str):
        p = padding.lower()
        if p not in ("valid", "same"):
            raise ValueError("The `padding` argument must be a list/tuple or one of "
                             f"{{'valid', 'same'}}. Received: {padding}")
        return p
    if not allow_explicit:
        raise ValueError("The `padding` argument must be one of {'valid', 'same'}. "
                         f"Received: {padding!r}")
    return explicit_padding(padding)


def out_size_and_pads(size, k, s, d, padding):
    """One spatial axis: (out, pad_lo, pad_hi) for 'valid', 'same' (TensorFlow
    rule: the odd pad goes after) or explicit (lo, hi)."""
    dk = (k - 1) * d + 1
    if padding == "same":
        out = -(-size // s)
        total = max((out - 1) * s + dk - size, 0)
        return out, total // 2, total - total // 2
    lo, hi = (0, 0) if padding == "valid" else padding
    return (size + lo + hi - dk) // s + 1, lo, hi


# ---------------------------------------------------------------------------
# activations with Keras 3 meanings for strings

#: Keras 3 activation names -> the fastconv activation they compute.  Where
#: Keras's default differs from torch's (fastconv.Activation's defaults), the
#: Keras value is spelled out: leaky_relu slope 0.2, gelu exact
#: (keras.activations.gelu(approximate=False)), hard_sigmoid = relu6(x+3)/6.
KERAS_ACTIVATIONS = {
    "linear": None,
    "relu": Activation("relu"),
    "relu6": Activation("relu6"),
    "sigmoid": Activation("sigmoid"),
    "hard_sigmoid": Activation("hardsigmoid"),
    "tanh": Activation("tanh"),
    "softplus": Activation("softplus"),
    "softsign": Activation("softsign"),
    "silu": Activation("silu"),
    "swish": Activation("silu"),
    "hard_silu": Activation("hardswish"),
    "hard_swish": Activation("hardswish"),
    "gelu": Activation("gelu", approximate="none"),
    "elu": Activation("elu", alpha=1.0),
    "selu": Activation("selu"),
    "leaky_relu": Activation("leaky_relu", negative_slope=0.2),
    "mish": Activation("mish"),
}
# fastconv's own spellings that Keras lacks (no conflicting meaning).
_EXTRA_NAMES = {"identity": None, "hardsigmoid": Activation("hardsigmoid"),
                "hardswish": Activation("hardswish")}


def _softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def _log_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    z = x - m
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


# Not per-element (or not in C): computed with NumPy after the layer.
_NUMPY_ACTIVATIONS = {"softmax": _softmax, "log_softmax": _log_softmax, "exponential": np.exp}


class LayerActivation:
    """What a layer applies: a C activation (fused where the core can) and/or
    a NumPy function afterwards (softmax, user callables)."""

    __slots__ = ("fused", "python", "config")

    def __init__(self, fused=None, python=None, config=None):
        self.fused = fused
        self.python = python
        self.config = config

    def apply(self, y):
        """Apply both parts to y (in place where possible); returns the result."""
        if self.fused is not None:
            if not (y.flags.c_contiguous and y.flags.writeable):
                y = np.ascontiguousarray(y)
            y = activate(y, self.fused, out=y)
        if self.python is not None:
            y = np.asarray(self.python(y))
        return y

    def __repr__(self):
        return repr(self.config)


def keras_activation(value, argname="activation", allow_numpy=True):
    """None / Keras name / fastconv.Activation / callable -> LayerActivation."""
    if value is None:
        return LayerActivation(None, None, None)
    if isinstance(value, Activation):
        return LayerActivation(None if value.is_identity else value, None, value)
    if isinstance(value, str):
        key = value.lower()
        if key in KERAS_ACTIVATIONS or key in _EXTRA_NAMES:
            act = KERAS_ACTIVATIONS.get(key, _EXTRA_NAMES.get(key))
            return LayerActivation(act, None, value)
        if allow_numpy and key in _NUMPY_ACTIVATIONS:
            return LayerActivation(None, _NUMPY_ACTIVATIONS[key], value)
        names = sorted(KERAS_ACTIVATIONS) + (sorted(_NUMPY_ACTIVATIONS) if allow_numpy else [])
        raise ValueError(f"Unknown {argname} {value!r}; expected one of: {', '.join(names)}, "
                         "None, a fastconv.Activation or a callable")
    if callable(value):
        # keras.activations.relu and friends: the same computation in C.
        mod = getattr(value, "__module__", "") or ""
        fname = getattr(value, "__name__", "")
        if mod.startswith("keras") and fname in KERAS_ACTIVATIONS:
            return LayerActivation(KERAS_ACTIVATIONS[fname], None, fname)
        if not allow_numpy:
            raise TypeError(f"`{argname}` must be None, a name or a fastconv.Activation "
                            f"(it is fused into the kernel). Received: {value!r}")
        return LayerActivation(None, value, value)
    raise TypeError(f"`{argname}` must be None, a string, a fastconv.Activation or a callable. "
                    f"Received: {argname}={value!r}")


# ---------------------------------------------------------------------------
# initializers (Keras names and formulas; NumPy random numbers)

_rng = np.random.default_rng()


def set_random_seed(seed):
    """Seed the generator the initializers draw from."""
    global _rng
    _rng = np.random.default_rng(seed)


def _fans(shape):
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


def _truncated_normal(shape, stddev):
    out = _rng.normal(0.0, stddev, size=shape)
    bad = np.abs(out) > 2 * stddev
    while bad.any():
        out[bad] = _rng.normal(0.0, stddev, size=int(bad.sum()))
        bad = np.abs(out) > 2 * stddev
    return out


def initialize(init, shape, dtype, argname):
    """Keras initializer name (or callable(shape, dtype)) -> array."""
    shape = tuple(int(s) for s in shape)
    if callable(init) and not isinstance(init, str):
        arr = np.asarray(init(shape, dtype=dtype), dtype=dtype)
        if arr.shape != shape:
            raise ValueError(f"`{argname}` returned shape {arr.shape}, expected {shape}")
        return arr
    if not isinstance(init, str):
        raise TypeError(f"`{argname}` must be an initializer name or a callable. "
                        f"Received: {argname}={init!r}")
    name = init.lower()
    fan_in, fan_out = _fans(shape)
    if name == "zeros":
        return np.zeros(shape, dtype)
    if name == "ones":
        return np.ones(shape, dtype)
    if name == "random_normal":
        return _rng.normal(0.0, 0.05, size=shape).astype(dtype)
    if name == "random_uniform":
        return _rng.uniform(-0.05, 0.05, size=shape).astype(dtype)
    if name == "truncated_normal":
        return _truncated_normal(shape, 0.05).astype(dtype)
    scaled = {
        "glorot_uniform": (2.0 / max(1.0, fan_in + fan_out), "uniform"),
        "glorot_normal": (2.0 / max(1.0, fan_in + fan_out), "normal"),
        "he_uniform": (2.0 / max(1.0, fan_in), "uniform"),
        "he_normal": (2.0 / max(1.0, fan_in), "normal"),
        "lecun_uniform": (1.0 / max(1.0, fan_in), "uniform"),
        "lecun_normal": (1.0 / max(1.0, fan_in), "normal"),
    }
    if name not in scaled:
        raise ValueError(f"Unknown {argname} {init!r}; expected one of: zeros, ones, "
                         f"random_normal, random_uniform, truncated_normal, {', '.join(scaled)}")
    scale, dist = scaled[name]
    if dist == "uniform":
        limit = np.sqrt(3.0 * scale)
        return _rng.uniform(-limit, limit, size=shape).astype(dtype)
    # Keras: truncated normal with stddev corrected for the truncation.
    return _truncated_normal(shape, np.sqrt(scale) / 0.87962566103423978).astype(dtype)


# ---------------------------------------------------------------------------
# symbolic tensors (for the functional Model API)


class SymbolicTensor:
    """A placeholder flowing through layers to describe a graph: its shape
    (batch dimension None) and the layer call that produces it."""

    __slots__ = ("shape", "dtype", "layer", "inputs", "name")

    def __init__(self, shape, dtype, layer=None, inputs=(), name=None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.layer = layer
        self.inputs = tuple(inputs)
        self.name = name

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        src = f", from {self.layer.name}" if self.layer is not None else ""
        return f"<SymbolicTensor shape={shape_str(self.shape)}, dtype={self.dtype}{src}>"


def Input(shape, dtype="float32", batch_size=None, name=None):
    """The input of a functional Model: ``shape`` excludes the batch axis."""
    shape = tuple(shape)
    if not all(d is None or (isinstance(d, (int, np.integer)) and d > 0) for d in shape):
        raise ValueError(f"Input `shape` must be positive ints or None. Received: shape={shape}")
    return SymbolicTensor((batch_size,) + shape, standardize_dtype(dtype), name=name)


def _is_symbolic(x):
    if isinstance(x, SymbolicTensor):
        return True
    return isinstance(x, (list, tuple)) and any(isinstance(t, SymbolicTensor) for t in x)


# ---------------------------------------------------------------------------
# Layer

_name_counts = defaultdict(int)
_IGNORED_KERAS_KWARGS = ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                         "kernel_constraint", "bias_constraint", "trainable",
                         "depthwise_regularizer", "depthwise_constraint",
                         "beta_regularizer", "gamma_regularizer", "beta_constraint",
                         "gamma_constraint", "synchronized", "renorm", "seed")


def _auto_name(cls):
    base = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", cls.__name__).lower()
    base = base.replace("2_d", "2d")
    n = _name_counts[base]
    _name_counts[base] += 1
    return base if n == 0 else f"{base}_{n}"


class Layer:
    """Base of every layer: NumPy in, NumPy out.

    Subclasses set ``_weight_names`` (the Keras order of ``get_weights()``),
    implement ``build(input_shape)``, ``call(x)`` and
    ``compute_output_shape(input_shape)``; shapes include the batch axis
    (``None`` when unknown).
    """

    #: cast every input to the layer dtype (compute layers) or only floats (reshaping)
    _cast_all_inputs = True
    _n_inputs = 1

    def __init__(self, name=None, dtype="float32", **kwargs):
        unknown = [k for k in kwargs if k not in _IGNORED_KERAS_KWARGS]
        if unknown:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument "
                            f"{unknown[0]!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"`name` must be a string. Received: name={name!r}")
        self.name = name or _auto_name(type(self))
        self.dtype = standardize_dtype(dtype)
        self.built = False
        self.input_shape = None
        self._saved = None      # what the last training forward keeps for backward()
        self._grads = {}        # weight name -> gradient of the last backward()

    # -- weights --------------------------------------------------------------
    @property
    def weight_names(self):
        """Names of the arrays ``get_weights()`` returns, in that order."""
        return list(getattr(self, "_weight_names", ())) if self.built else []

    def get_weights(self):
        """Copies of the layer's arrays, in Keras's order."""
        return [np.array(getattr(self, n)) for n in self.weight_names]

    def set_weights(self, weights):
        """Set the arrays from a list in Keras's order (``get_weights()``'s)."""
        weights = list(weights)
        names = self.weight_names
        if not self.built and weights:
            self._build_from_weights(weights)
            names = self.weight_names
        if len(weights) != len(names):
            raise ValueError(f'You called `set_weights(weights)` on layer "{self.name}" with a '
                             f"weight list of length {len(weights)}, but the layer was "
                             f"expecting {len(names)} weights.")
        new = []
        for n, w in zip(names, weights):
            cur = getattr(self, n)
            w = np.asarray(w)
            if w.shape != cur.shape:
                raise ValueError(f"Layer {self.name} weight shape {cur.shape} is not compatible "
                                 f"with provided weight shape {w.shape}.")
            new.append(np.array(w, dtype=self.dtype, order="C", copy=True))
        for n, w in zip(names, new):
            setattr(self, n, w)
        self._weights_changed()

    def _build_from_weights(self, weights):
        raise ValueError(f'Layer "{self.name}" is not built yet: call it on an input or '
                         "build(input_shape) before set_weights()")

    def _weights_changed(self):
        """Drop caches derived from the weights."""

    def count_params(self):
        return int(sum(getattr(self, n).size for n in self.weight_names))

    # -- training -------------------------------------------------------------
    #: names among weight_names that the optimizer trains (BN's moving
    #: statistics are weights but not trained: the forward updates them)
    _trainable_names = ("kernel", "bias")

    @property
    def trainable_weight_names(self):
        return [n for n in self.weight_names if n in self._trainable_names]

    def trainable_refs(self):
        """(layer, name) of every trained array, in get_weights() order."""
        return [(self, n) for n in self.trainable_weight_names]

    @property
    def trainable_weights(self):
        """The trained arrays themselves (the optimizer updates them in place)."""
        return [getattr(layer, n) for layer, n in self.trainable_refs()]

    @property
    def gradients(self):
        """Gradients of the trained arrays from the last backward(), in the
        order of trainable_weights (None before any)."""
        return [layer._grads.get(n) for layer, n in self.trainable_refs()]

    def backward(self, grad_output, need_input=True):
        """Backward of the last ``layer(x, training=True)`` call: sets the
        parameter gradients (``gradients``) and returns the gradient of the
        input (a list for merge layers; None when ``need_input`` is False)."""
        if self._saved is None:
            raise RuntimeError(f'Layer "{self.name}": backward() needs a forward call with '
                               "training=True first (each forward serves one backward)")
        saved, self._saved = self._saved, None
        grad_output = np.asarray(grad_output)
        return self._backward(grad_output, saved, need_input)

    def _backward(self, g, saved, need_input):
        raise NotImplementedError(f"{type(self).__name__} has no backward pass")

    def _training_problem(self):
        """Why this layer cannot be trained (a sentence), or None."""
        act = getattr(self, "_activation", None)
        if act is not None and act.python is not None:
            from ._backprop import PYTHON_GRADS
            if not (isinstance(act.config, str) and act.config.lower() in PYTHON_GRADS):
                return (f'layer "{self.name}" applies the Python callable {act.config!r}, '
                        "which has no derivative here (use a Keras activation name)")
        return None

    def _activation_state(self):
        """The dict forward_activation kept for this layer's output
        activation in the last training forward (None if none)."""
        return None

    def _activation_name(self):
        act = getattr(self, "_activation", None)
        cfg = act.config if act is not None else None
        if isinstance(cfg, str):
            return cfg.lower()
        if cfg is not None and hasattr(cfg, "name"):       # a fastconv.Activation
            return cfg.name
        return None

    def _after_update(self):
        """The optimizer changed the trained arrays in place: drop caches."""
        self._weights_changed()

    def flops(self, input_shape):
        """Floating-point operations for one sample (a multiply-add counts 2)."""
        return 0

    # -- calling --------------------------------------------------------------
    def build(self, input_shape):
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _convert(self, x):
        if isinstance(x, np.ndarray) and x.dtype == self.dtype:
            return x
        a = np.asarray(x)
        if self._cast_all_inputs or a.dtype.kind == "f":
            a = a.astype(self.dtype, copy=False)
        return a

    def _check_input(self, shape):
        """Validate an input shape (with batch axis); raise ValueError."""

    def __call__(self, inputs, training=False):
        """Run the layer.  ``training=True``: batch statistics in
        BatchNormalization, dropout in Dropout, and the layer keeps what its
        ``backward()`` needs (for that one backward call)."""
        if _is_symbolic(inputs):
            return self._symbolic_call(inputs)
        if self._n_inputs == 1:
            x = self._convert(inputs)
            shape = x.shape
        else:
            if not isinstance(inputs, (list, tuple)):
                raise ValueError("A merge layer should be called on a list of inputs. "
                                 f"Received: inputs={inputs!r} (not a list of tensors)")
            x = [self._convert(t) for t in inputs]
            shape = [t.shape for t in x]
        self._check_input(shape)
        if not self.built:
            self.build(_with_none_batch(shape))
        self._saved = None
        return self.call(x, training=bool(training))

    def _symbolic_call(self, inputs):
        if isinstance(inputs, SymbolicTensor):
            shape, srcs = inputs.shape, [inputs]
        else:
            if self._n_inputs == 1:
                raise ValueError(f'Layer "{self.name}" expects one input, got {len(inputs)}')
            srcs = list(inputs)
            if not all(isinstance(t, SymbolicTensor) for t in srcs):
                raise TypeError(f'Layer "{self.name}": mix of symbolic and concrete inputs')
            shape = [t.shape for t in srcs]
        self._check_input(shape)
        if not self.built:
            self.build(shape)
        out = self.compute_output_shape(shape)
        return SymbolicTensor(out, self.dtype, layer=self, inputs=srcs)

    def call(self, x, training=False):
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _with_none_batch(shape):
    if shape and isinstance(shape[0], tuple):
        return [(None,) + tuple(s[1:]) for s in shape]
    return (None,) + tuple(shape[1:])


def check_ndim(layer, shape, ndim):
    if len(shape) != ndim:
        raise ValueError(f'Input 0 of layer "{layer.name}" is incompatible with the layer: '
                         f"expected ndim={ndim}, found ndim={len(shape)}. "
                         f"Full shape received: {shape_str(shape)}")


def check_axis(layer, shape, axis, expected):
    if shape[axis] != expected:
        raise ValueError(f'Input 0 of layer "{layer.name}" is incompatible with the layer: '
                         f"expected axis {axis} of input shape to have value {expected}, "
                         f"but received input with shape {shape_str(shape)}")
