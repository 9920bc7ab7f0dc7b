"""Derivatives of the layer activations, for the layers' backward passes.

The fused (C) activations use the C derivative pass of the convolution
backward (``fastconv._core.act_grad``, torch's conventions at the kinks);
where ``f'`` is a function of the output (``has_output_form``: the relu
family, sigmoid, tanh, elu, selu) the layer keeps ``y`` instead of ``z``, so
that its forward stays fused.  softmax, log_softmax and exponential (applied
by NumPy after the layer) have their derivatives here, from the output.
"""
import numpy as np

from fastconv import _core
from fastconv.activations import activate


def has_output_form(act):
    """Whether f' is a function of y = f(z) (y determines z's branch)."""
    return act is None or act.is_identity or bool(_core.act_grad_has_output_form(act._spec))


def fused_grad(g, act, z=None, y=None, channels=1, gbias=None):
    """g * f'(.) for a fused activation (y used when has_output_form(act)).
    With gbias, also gbias[c] = the sum of the result over channel c, the
    arrays read as (outer, channels) rows (the same C pass)."""
    g = np.ascontiguousarray(g)
    identity = act is None or act.is_identity
    from_output = not identity and y is not None and has_output_form(act)
    v = None if identity else (y if from_output else z)
    if v is None and not identity:
        raise ValueError(f"the derivative of {act!r} needs the pre-activation")
    if identity and gbias is None:
        return g
    spec = (act if not identity else _IDENTITY)._spec
    v = None if identity else np.ascontiguousarray(v, dtype=g.dtype)
    gz = None if identity else np.empty_like(g)
    _core.act_grad(g, v, gz, g.size // channels, channels, 1, spec, from_output, gbias)
    return g if identity else gz


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


from fastconv.activations import Activation as _Activation  # noqa: E402

_IDENTITY = _Activation("identity")


def backward_activation(layer_act, g, saved, where, channels=1, gbias=None):
    """g (gradient of the activation's output) -> gradient of its input.
    ``saved["skip"]``: the loss already gave the gradient of the input (the
    fused softmax/sigmoid + cross-entropy backward)."""
    if saved.get("skip"):
        g = np.ascontiguousarray(g)
        if gbias is not None:
            gbias[...] = g.reshape(-1, channels).sum(axis=0)
        return g
    if layer_act.python is not None:
        fn = saved["python"]
        if fn is None:
            raise NotImplementedError(
                f"{where}: cannot train through the activation {layer_act.config!r} (a Python "
                "callable has no derivative here); use a Keras activation name")
        g = fn(g, saved["out"])
    if layer_act.fused is not None or gbias is not None:
        g = fused_grad(g, layer_act.fused, z=saved.get("z"), y=saved.get("y"),
                       channels=channels, gbias=gbias)
    return g
