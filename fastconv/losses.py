"""Losses with Keras 3's names, defaults and formulas, and their gradients.

A loss object gives ``loss(y_true, y_pred)`` (the reduced value, as Keras) and
``value_and_grad(y_true, y_pred)`` (the value and d loss / d y_pred, for
training).  The reduction is Keras's default ``"sum_over_batch_size"`` (the
mean of the per-sample losses) or ``"sum"``.

From probabilities (``from_logits=False``, the default) the cross-entropies
are Keras's: the prediction is renormalised to sum 1 (categorical) and clipped
to ``[1e-7, 1 - 1e-7]`` before the log.  From logits they are computed stably
(log-sum-exp; ``max(z, 0) - z t + log1p(exp(-|z|))`` for the binary one).
When the model's last layer applies ``softmax`` (``sigmoid``) and the loss is
the matching cross-entropy, the training step takes the gradient with respect
to the logits directly, ``(p - t) / n`` (``fused_grad``): no division by a
small probability, one pass; it equals the chained gradient wherever the clip
is inactive.
"""
import numpy as np

__all__ = ["Loss", "SparseCategoricalCrossentropy", "CategoricalCrossentropy",
           "BinaryCrossentropy", "MeanSquaredError", "get"]

EPSILON = 1e-7      # keras.config.epsilon()

_REDUCTIONS = ("sum_over_batch_size", "sum")


def _float(a, name):
    a = np.asarray(a)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"`{name}` must be numeric. Received dtype {a.dtype}")
    return a if a.dtype.kind == "f" else a.astype(np.float32)


class Loss:
    """Base: ``__call__`` -> reduced value; ``value_and_grad`` -> (value, grad)."""

    #: the last-layer activation whose backward this loss can absorb
    fuses_with = None

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"Invalid value for argument `reduction`. Expected one of "
                             f"{_REDUCTIONS}. Received: reduction={reduction!r}")
        self.name = name or _snake(type(self).__name__)
        self.reduction = reduction

    def __call__(self, y_true, y_pred):
        return self.value_and_grad(y_true, y_pred, grad=False)[0]

    def value_and_grad(self, y_true, y_pred, grad=True):
        y_pred = _float(y_pred, "y_pred")
        y_true = self.check(y_true, y_pred)
        per_sample, g = self._compute(y_true, y_pred, grad)
        n = per_sample.size
        scale = 1.0 / max(n, 1) if self.reduction == "sum_over_batch_size" else 1.0
        value = float(np.sum(per_sample, dtype=np.float64) * scale)
        if g is not None:
            g *= g.dtype.type(scale)
        return value, g

    def fused_grad(self, y_true, y_pred):
        """Gradient with respect to the logits of the ``fuses_with`` activation
        whose output is ``y_pred``; None when this loss cannot fuse."""
        return None

    def check(self, y_true, y_pred):
        """Validate y_true against y_pred (ValueError naming both shapes)."""
        y_true = _float(y_true, "y_true")
        if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
            y_true = y_true[..., None]          # (n,) labels for (n, 1) outputs, as Keras
        if y_true.shape != y_pred.shape:
            raise ValueError("Arguments `target` and `output` must have the same shape. "
                             f"Received: target.shape={y_true.shape}, "
                             f"output.shape={y_pred.shape}")
        return y_true

    def _scale(self, n):
        return 1.0 / max(n, 1) if self.reduction == "sum_over_batch_size" else 1.0

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    def __repr__(self):
        return f"<{type(self).__name__} {self.get_config()}>"


def _snake(name):
    import re
    return re.sub(r"(?<=[a-z])([A-Z])", r"_\1", name).lower()


class _CrossentropyBase(Loss):
    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, name=None,
                 reduction="sum_over_batch_size"):
        super().__init__(name, reduction)
        self.from_logits = bool(from_logits)
        if not 0 <= float(label_smoothing) <= 1:
            raise ValueError(f"`label_smoothing` must be in [0, 1]. "
                             f"Received: label_smoothing={label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        if axis != -1:
            raise ValueError(f"only axis=-1 (the last axis holds the classes) is supported. "
                             f"Received: axis={axis}")
        self.axis = axis

    def get_config(self):
        return dict(super().get_config(), from_logits=self.from_logits,
                    label_smoothing=self.label_smoothing)


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def _categorical(t, p, from_logits, grad):
    """Per-sample categorical cross-entropy of one-hot-like t; d/dp."""
    if from_logits:
        zmax = p.max(axis=-1, keepdims=True)
        lse = np.log(np.sum(np.exp(p - zmax), axis=-1, keepdims=True)) + zmax
        per = np.sum(t * (lse - p), axis=-1)
        g = None
        if grad:
            g = np.exp(p - lse) * t.sum(axis=-1, keepdims=True) - t
        return per, g
    s = p.sum(axis=-1, keepdims=True)
    q = p / s
    qc = np.clip(q, EPSILON, 1 - EPSILON)
    per = -np.sum(t * np.log(qc), axis=-1)
    g = None
    if grad:
        # through clip (zero outside it) and the renormalisation q = p / sum(p)
        gq = np.where((q >= EPSILON) & (q <= 1 - EPSILON), -t / qc, 0).astype(p.dtype)
        g = (gq - np.sum(gq * q, axis=-1, keepdims=True)) / s
    return per, g


class CategoricalCrossentropy(_CrossentropyBase):
    """Keras's ``CategoricalCrossentropy``: one-hot (or soft) ``y_true`` of
    ``y_pred``'s shape; ``label_smoothing`` mixes in ``1 / classes``."""

    fuses_with = "softmax"

    def _targets(self, y_true, y_pred):
        t = y_true.astype(y_pred.dtype, copy=False)
        if self.label_smoothing:
            t = t * (1 - self.label_smoothing) + self.label_smoothing / y_pred.shape[-1]
        return t

    def _compute(self, y_true, y_pred, grad):
        return _categorical(self._targets(y_true, y_pred), y_pred, self.from_logits, grad)

    def fused_grad(self, y_true, y_pred):
        if self.from_logits:
            return None
        y_pred = _float(y_pred, "y_pred")
        t = self._targets(self.check(y_true, y_pred), y_pred)
        g = y_pred * t.sum(axis=-1, keepdims=True) - t
        g *= g.dtype.type(self._scale(g.size // g.shape[-1]))
        return g


class SparseCategoricalCrossentropy(_CrossentropyBase):
    """Keras's ``SparseCategoricalCrossentropy``: integer class labels
    ``y_true`` of shape ``y_pred.shape[:-1]`` (or with a trailing 1)."""

    fuses_with = "softmax"

    def __init__(self, from_logits=False, ignore_class=None, axis=-1, name=None,
                 reduction="sum_over_batch_size"):
        if ignore_class is not None:
            raise ValueError("`ignore_class` is not supported")
        super().__init__(from_logits, 0.0, axis, name, reduction)

    def check(self, y_true, y_pred):
        y_true = np.asarray(y_true)
        if y_pred.ndim < 1:
            raise ValueError(f"Argument `output` must be at least rank 1. "
                             f"Received: output.shape={y_pred.shape}")
        if y_true.ndim == y_pred.ndim and y_true.ndim and y_true.shape[-1] == 1:
            y_true = y_true[..., 0]
        if y_true.shape != y_pred.shape[:-1]:
            raise ValueError("Arguments `target` and `output` must have the same shape up "
                             f"until the last dimension: target.shape={y_true.shape}, "
                             f"output.shape={y_pred.shape}")
        if y_true.dtype.kind == "f":
            if not np.all(np.isfinite(y_true)) or np.any(y_true != np.round(y_true)):
                raise ValueError("`y_true` of a sparse categorical cross-entropy must hold "
                                 "integer class indices")
        elif y_true.dtype.kind not in "iu":
            raise TypeError(f"`y_true` must hold integer class indices. "
                            f"Received dtype {y_true.dtype}")
        y_true = y_true.astype(np.int64)
        c = y_pred.shape[-1]
        if y_true.size and (y_true.min() < 0 or y_true.max() >= c):
            bad = y_true[(y_true < 0) | (y_true >= c)]
            raise ValueError(f"Received a label value of {int(bad.flat[0])} which is outside "
                             f"the valid range of [0, {c - 1}] for {c} classes "
                             f"(y_pred.shape={y_pred.shape})")
        return y_true

    def _onehot(self, y_true, y_pred):
        t = np.zeros(y_pred.shape, y_pred.dtype)
        np.put_along_axis(t, y_true[..., None], 1, axis=-1)
        return t

    def _compute(self, y_true, y_pred, grad):
        if self.from_logits:
            zmax = y_pred.max(axis=-1, keepdims=True)
            lse = np.log(np.sum(np.exp(y_pred - zmax), axis=-1, keepdims=True)) + zmax
            zt = np.take_along_axis(y_pred, y_true[..., None], axis=-1)
            per = (lse - zt)[..., 0]
            g = None
            if grad:
                g = np.exp(y_pred - lse)
                np.put_along_axis(g, y_true[..., None],
                                  np.take_along_axis(g, y_true[..., None], axis=-1) - 1, axis=-1)
            return per, g
        return _categorical(self._onehot(y_true, y_pred), y_pred, False, grad)

    def fused_grad(self, y_true, y_pred):
        if self.from_logits:
            return None
        y_pred = _float(y_pred, "y_pred")
        y_true = self.check(y_true, y_pred)
        g = y_pred.copy()
        idx = y_true[..., None]
        np.put_along_axis(g, idx, np.take_along_axis(g, idx, axis=-1) - 1, axis=-1)
        g *= g.dtype.type(self._scale(y_true.size))
        return g


class BinaryCrossentropy(_CrossentropyBase):
    """Keras's ``BinaryCrossentropy``: per element, the mean over the last
    axis; ``label_smoothing`` moves the targets towards 0.5."""

    fuses_with = "sigmoid"

    def _targets(self, y_true, y_pred):
        t = y_true.astype(y_pred.dtype, copy=False)
        if self.label_smoothing:
            t = t * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        return t

    def _compute(self, y_true, y_pred, grad):
        t = self._targets(y_true, y_pred)
        k = y_pred.shape[-1] if y_pred.ndim else 1
        if self.from_logits:
            z = y_pred
            per_el = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
            g = (0.5 * (1 + np.tanh(0.5 * z)) - t) / k if grad else None
        else:
            p = np.clip(y_pred, EPSILON, 1 - EPSILON)
            per_el = -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log1p(-p), -100))
            g = None
            if grad:
                inside = (y_pred >= EPSILON) & (y_pred <= 1 - EPSILON)
                g = np.where(inside, (p - t) / (p * (1 - p)), 0).astype(y_pred.dtype) / k
        per = per_el.mean(axis=-1) if y_pred.ndim else per_el
        return np.asarray(per), g

    def fused_grad(self, y_true, y_pred):
        if self.from_logits:
            return None
        y_pred = _float(y_pred, "y_pred")
        t = self._targets(self.check(y_true, y_pred), y_pred)
        k = y_pred.shape[-1] if y_pred.ndim else 1
        g = y_pred - t
        g *= g.dtype.type(self._scale(g.size // k) / k)
        return g


class MeanSquaredError(Loss):
    """Keras's ``MeanSquaredError``: the mean over the last axis of
    ``(y_pred - y_true) ** 2``, then the reduction over samples."""

    def __init__(self, name="mean_squared_error", reduction="sum_over_batch_size"):
        super().__init__(name, reduction)

    def _compute(self, y_true, y_pred, grad):
        d = y_pred - y_true.astype(y_pred.dtype, copy=False)
        k = y_pred.shape[-1] if y_pred.ndim else 1
        per = np.mean(d * d, axis=-1) if y_pred.ndim else d * d
        return np.asarray(per), (d * (2.0 / k)).astype(y_pred.dtype) if grad else None


_ALIASES = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
}


def get(identifier):
    """A loss from a Keras name (``"sparse_categorical_crossentropy"``,
    ``"categorical_crossentropy"``, ``"binary_crossentropy"``, ``"mse"``,
    ``"mean_squared_error"``) or a Loss instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Could not interpret loss identifier: {identifier!r}; expected "
                             f"one of {', '.join(sorted(_ALIASES))} or a fastconv.losses.Loss")
        return cls()
    raise TypeError(f"loss must be a name or a fastconv.losses.Loss. Received: {identifier!r}")
