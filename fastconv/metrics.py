"""The metrics ``compile(metrics=[...])`` accepts, with Keras's names.

A metric is accumulated over an epoch as a (sum, count) pair, so the value
logged is the mean over all samples, as Keras's metric objects give it.
``"accuracy"`` (``"acc"``) resolves as Keras resolves it: binary accuracy
(threshold 0.5) for a single output column or a binary cross-entropy loss,
sparse categorical accuracy when the labels are class indices, else
categorical accuracy.
"""
import numpy as np

__all__ = ["get"]


def _as_labels(y_true, y_pred):
    y_true = np.asarray(y_true)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return y_true


def sparse_categorical_accuracy(y_true, y_pred):
    y_true = _as_labels(y_true, y_pred)
    hits = np.argmax(y_pred, axis=-1) == y_true.astype(np.int64)
    return float(hits.sum()), hits.size


def categorical_accuracy(y_true, y_pred):
    hits = np.argmax(y_pred, axis=-1) == np.argmax(np.asarray(y_true), axis=-1)
    return float(hits.sum()), hits.size


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_true = np.asarray(y_true)
    if y_true.ndim == y_pred.ndim - 1:
        y_true = y_true[..., None]
    hits = (y_pred > threshold) == (y_true > threshold)
    return float(hits.mean(axis=-1).sum()) if hits.ndim > 1 else float(hits.sum()), \
        hits.size // (hits.shape[-1] if hits.ndim > 1 else 1)


def mean_absolute_error(y_true, y_pred):
    d = np.abs(y_pred - np.asarray(y_true).reshape(y_pred.shape))
    per = d.mean(axis=-1) if d.ndim > 1 else d
    return float(per.sum()), per.size


def mean_squared_error(y_true, y_pred):
    d = np.square(y_pred - np.asarray(y_true).reshape(y_pred.shape))
    per = d.mean(axis=-1) if d.ndim > 1 else d
    return float(per.sum()), per.size


_BY_NAME = {
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "binary_accuracy": binary_accuracy,
    "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
    "mse": mean_squared_error, "mean_squared_error": mean_squared_error,
}
_ACCURACY = ("accuracy", "acc")


def get(name, loss):
    """(log name, fn(y_true, y_pred) -> (sum, count)) for a metric name.
    ``loss`` (a fastconv.losses.Loss) decides what "accuracy" means."""
    if not isinstance(name, str):
        raise TypeError(f"metrics must be names; received {name!r}")
    key = name.lower()
    if key in _ACCURACY:
        from fastconv import losses

        def accuracy(y_true, y_pred):
            if isinstance(loss, losses.BinaryCrossentropy) or y_pred.shape[-1] == 1:
                return binary_accuracy(y_true, y_pred)
            yt = np.asarray(y_true)
            if yt.ndim < y_pred.ndim or (yt.shape[-1] == 1 and y_pred.shape[-1] > 1):
                return sparse_categorical_accuracy(y_true, y_pred)
            return categorical_accuracy(y_true, y_pred)
        return name, accuracy
    fn = _BY_NAME.get(key)
    if fn is None:
        raise ValueError(f"Unknown metric {name!r}; expected one of "
                         f"{', '.join(sorted(_ACCURACY + tuple(_BY_NAME)))}")
    return name, fn
