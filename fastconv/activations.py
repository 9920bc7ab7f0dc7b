"""Per-element activations: names, parameters, and the standalone pass.

Names follow ``torch.nn.functional``; Keras spellings are accepted as aliases.
Parameters and their defaults are torch's (``leaky_relu`` slope 0.01,
``gelu`` exact by default): a layer that wants Keras defaults says so itself.
"""
import numpy as np

from fastconv import _core

# Canonical name -> (C kind, {param: default}); the C numbering is src/fastconv.h's.
_SPECS = {
    "identity":    (0, {}),
    "relu":        (1, {}),
    "relu6":       (2, {}),
    "leaky_relu":  (3, {"negative_slope": 0.01}),
    "elu":         (4, {"alpha": 1.0}),
    "selu":        (5, {}),
    "sigmoid":     (6, {}),
    "hardsigmoid": (7, {}),
    "tanh":        (8, {}),
    "softplus":    (9, {"beta": 1.0, "threshold": 20.0}),
    "softsign":    (10, {}),
    "silu":        (11, {}),
    "hardswish":   (12, {}),
    "gelu":        (13, {"approximate": "none"}),   # kind 14 is gelu(approximate="tanh")
    "mish":        (15, {}),
}
_GELU_TANH_KIND = 14

_ALIASES = {
    "linear": "identity",
    "hard_sigmoid": "hardsigmoid",
    "swish": "silu",
    "hard_swish": "hardswish",
    "hard_silu": "hardswish",
}

#: The canonical activation names.
ACTIVATIONS = tuple(_SPECS)


class Activation:
    """A per-element activation with its parameters, e.g.
    ``Activation("leaky_relu", negative_slope=0.2)`` or
    ``Activation("gelu", approximate="tanh")``.
    """

    __slots__ = ("name", "params", "_spec")

    def __init__(self, name, **params):
        if not isinstance(name, str):
            raise TypeError(f"activation name must be a string, got {type(name).__name__}")
        canonical = _ALIASES.get(name.lower(), name.lower())
        if canonical not in _SPECS:
            raise ValueError(f"unknown activation {name!r}; expected one of "
                             f"{', '.join(ACTIVATIONS + tuple(_ALIASES))}")
        kind, defaults = _SPECS[canonical]
        unknown = set(params) - set(defaults)
        if unknown:
            allowed = ", ".join(defaults) or "none"
            raise TypeError(f"activation {canonical!r} got unexpected parameter(s) "
                            f"{', '.join(sorted(unknown))} (allowed: {allowed})")
        merged = dict(defaults)
        merged.update(params)
        p0 = p1 = 0.0
        if canonical == "gelu":
            approx = merged["approximate"]
            if approx not in ("none", "tanh"):
                raise ValueError(f"gelu approximate must be 'none' or 'tanh', got {approx!r}")
            kind = _GELU_TANH_KIND if approx == "tanh" else kind
        else:
            values = [_as_float(canonical, k, v) for k, v in merged.items()]
            merged = dict(zip(merged, values))
            p0, p1 = (values + [0.0, 0.0])[:2]
        if canonical == "softplus" and merged["beta"] == 0:
            raise ValueError("softplus beta must be non-zero")
        self.name = canonical
        self.params = merged
        self._spec = _core.ActSpec(kind, p0, p1)

    @property
    def is_identity(self):
        return self._spec.kind == 0

    def __call__(self, x, out=None):
        return activate(x, self, out=out)

    def __eq__(self, other):
        if not isinstance(other, Activation):
            return NotImplemented
        return self.name == other.name and self.params == other.params

    def __hash__(self):
        return hash((self.name, tuple(sorted(self.params.items()))))

    def __repr__(self):
        args = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"Activation({self.name!r}{args})"


def _as_float(name, key, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"activation {name!r} parameter {key} must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"activation {name!r} parameter {key} must be finite, got {value!r}")
    return value


_IDENTITY = Activation("identity")
_BY_NAME = {}


def as_activation(value, argname="activation"):
    """None, a name or an Activation -> an Activation (identity for None)."""
    if value is None:
        return _IDENTITY
    if isinstance(value, Activation):
        return value
    if isinstance(value, str):
        act = _BY_NAME.get(value)
        if act is None:
            try:
                act = Activation(value)
            except ValueError as e:
                raise ValueError(f"{argname}: {e}") from None
            _BY_NAME[value] = act
        return act
    raise TypeError(f"{argname} must be None, a name or a fastconv.Activation, "
                    f"got {type(value).__name__}")


def activate(x, activation, out=None):
    """Apply an activation to every element of ``x`` (float32 or float64).

    ``out``, when given, must be a writeable C-contiguous array of x's shape
    and dtype; ``out=x`` works in place.  Returns the result.
    """
    act = as_activation(activation)
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"activate: x must be float32 or float64, got {x.dtype}")
    if out is None:
        out = np.empty(x.shape, x.dtype)
    else:
        _check_out(out, x.shape, x.dtype, "activate")
    if not (x.flags.c_contiguous or x is out):
        x = np.ascontiguousarray(x)
    elif x is not out and np.may_share_memory(x, out):
        x = x.copy()   # partial overlap: read from a copy
    _core.activate(x, out, act._spec)
    return out


def _check_out(out, shape, dtype, where, argname="out"):
    """Validation shared by every function that takes a preallocated result
    (``out=``, the ``grad_*=`` buffers of the gradients)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{where}: {argname} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{where}: {argname} has shape {out.shape}, expected {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"{where}: {argname} has dtype {out.dtype}, expected {np.dtype(dtype)}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{where}: {argname} must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{where}: {argname} is read-only")
