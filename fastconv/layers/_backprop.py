"""Derivatives of the layer activations, for the layers' backward passes.

``fused_grad(g, act, z=None, y=None)`` is ``g * f'(z)`` for a fastconv
``Activation`` with torch's conventions at the kinks (relu'(0) = 0, relu6 and
hardsigmoid 0 at their break points, hardswish'(-3) = 0 and '(3) = 1,
leaky_relu'(0) = slope, elu'(0) = alpha); where ``f'`` is a function of the
output (``has_output_form``) the layer keeps ``y`` instead of ``z``, so that
the forward stays fused.  NumPy, float64 or float32 as given.
"""
import math

import numpy as np

from fastconv.activations import activate

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def has_output_form(act):
    """Whether f' is a function of y = f(z) (y determines z's branch)."""
    if act is None:
        return True
    name, p = act.name, act.params
    if name in ("identity", "relu", "relu6", "selu", "sigmoid", "tanh"):
        return True
    if name == "leaky_relu":
        return p["negative_slope"] >= 0
    if name == "elu":
        return p["alpha"] > 0
    return False


def _sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))   # stable for any z


def fused_grad(g, act, z=None, y=None):
    """g * f'(.) for a fused activation; y is used when has_output_form(act)."""
    if act is None or act.is_identity:
        return g
    name, p = act.name, act.params
    dt = g.dtype.type
    if has_output_form(act) and y is not None:
        if name == "relu":
            return g * (y > 0)
        if name == "relu6":
            return g * ((y > 0) & (y < 6))
        if name == "leaky_relu":
            return g * np.where(y > 0, dt(1), dt(p["negative_slope"]))
        if name == "elu":
            return g * np.where(y > 0, dt(1), y + dt(p["alpha"]))
        if name == "selu":
            return g * np.where(y > 0, dt(_SELU_SCALE), y + dt(_SELU_SCALE * _SELU_ALPHA))
        if name == "sigmoid":
            return g * (y * (1 - y))
        if name == "tanh":
            return g * (1 - y * y)
    if z is None:
        raise ValueError(f"the derivative of {act!r} needs the pre-activation")
    if name == "relu":
        d = z > 0
    elif name == "relu6":
        d = (z > 0) & (z < 6)
    elif name == "leaky_relu":
        d = np.where(z > 0, dt(1), dt(p["negative_slope"]))
    elif name == "elu":
        d = np.where(z > 0, dt(1), dt(p["alpha"]) * np.exp(np.minimum(z, 0)))
    elif name == "selu":
        d = dt(_SELU_SCALE) * np.where(z > 0, dt(1), dt(_SELU_ALPHA) * np.exp(np.minimum(z, 0)))
    elif name == "sigmoid":
        s = _sigmoid(z)
        d = s * (1 - s)
    elif name == "hardsigmoid":
        d = ((z > -3) & (z < 3)) * dt(1 / 6)
    elif name == "tanh":
        t = np.tanh(z)
        d = 1 - t * t
    elif name == "softplus":
        bz = z * dt(p["beta"])
        d = np.where(bz > p["threshold"], dt(1), _sigmoid(bz))
    elif name == "softsign":
        d = 1 / np.square(1 + np.abs(z))
    elif name == "silu":
        s = _sigmoid(z)
        d = s * (1 + z * (1 - s))
    elif name == "hardswish":
        d = np.where(z <= -3, dt(0), np.where(z < 3, z / 3 + dt(0.5), dt(1)))
    elif name == "gelu" and p["approximate"] == "tanh":
        k = dt(math.sqrt(2 / math.pi))
        inner = k * (z + dt(0.044715) * z ** 3)
        t = np.tanh(inner)
        d = 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * k * (1 + dt(3 * 0.044715) * z * z)
    elif name == "gelu":
        from scipy.special import erf   # NumPy has no erf
        cdf = 0.5 * (1 + erf(z / dt(math.sqrt(2))))
        pdf = np.exp(-0.5 * z * z) / dt(math.sqrt(2 * math.pi))
        d = cdf + z * pdf
    elif name == "mish":
        t = np.tanh(np.logaddexp(0, z))
        d = t + z * _sigmoid(z) * (1 - t * t)
    else:   # pragma: no cover - every kind of fastconv.activations is above
        raise NotImplementedError(f"no derivative for activation {act!r}")
    return g * np.asarray(d, dtype=g.dtype)


# NumPy-side activations (softmax and friends): derivative from the output.
def _softmax_grad(g, y):
    return y * (g - np.sum(g * y, axis=-1, keepdims=True))


def _log_softmax_grad(g, y):
    return g - np.exp(y) * np.sum(g, axis=-1, keepdims=True)


def _exponential_grad(g, y):
    return g * y


PYTHON_GRADS = {"softmax": _softmax_grad, "log_softmax": _log_softmax_grad,
                "exponential": _exponential_grad}


def forward_activation(layer_act, z, training):
    """Apply a LayerActivation to the linear result z (owned by the caller,
    writable); in training also return what ``backward_activation`` needs."""
    if not training:
        return layer_act.apply(z), None
    fused, python = layer_act.fused, layer_act.python
    saved = {}
    if fused is not None:
        if not (z.flags.c_contiguous and z.flags.writeable):
            z = np.ascontiguousarray(z)
        if has_output_form(fused):
            y = activate(z, fused, out=z)
            saved["y"] = y
        else:
            saved["z"] = z
            y = activate(z, fused)
            if python is None:
                saved["y"] = y
    else:
        y = z
    if python is not None:
        key = layer_act.config if isinstance(layer_act.config, str) else None
        if key is None or key.lower() not in PYTHON_GRADS:
            saved["python"] = None        # a user callable: no derivative
        else:
            saved["python"] = PYTHON_GRADS[key.lower()]
            saved["y_fused"] = saved.get("y") if fused is not None else None
        y = np.asarray(python(y))
        saved["out"] = y
    return y, saved


def backward_activation(layer_act, g, saved, where):
    """g (gradient of the activation's output) -> gradient of its input.
    ``saved["skip"]``: the loss already gave the gradient of the input (the
    fused softmax/sigmoid + cross-entropy backward)."""
    if saved.get("skip"):
        return g
    if layer_act.python is not None:
        fn = saved["python"]
        if fn is None:
            raise NotImplementedError(
                f"{where}: cannot train through the activation {layer_act.config!r} (a Python "
                "callable has no derivative here); use a Keras activation name")
        g = fn(g, saved["out"])
    if layer_act.fused is not None:
        g = fused_grad(g, layer_act.fused, z=saved.get("z"), y=saved.get("y"))
    return g
