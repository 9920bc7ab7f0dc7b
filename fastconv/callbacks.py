"""Callbacks for ``fit``, with Keras's names and behaviour: ``History``,
``EarlyStopping`` and ``ModelCheckpoint`` (to the ``.npz`` weights format,
with the optimizer state, so that training resumes where it stopped)."""
import warnings

__all__ = ["Callback", "History", "EarlyStopping", "ModelCheckpoint"]


class Callback:
    """Base: override the hooks you need; ``self.model`` is set by ``fit``."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = dict(params)

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass


class History(Callback):
    """``fit``'s return value: ``history`` maps each log key (``loss``,
    ``accuracy``, ``val_loss``, ...) to its value per epoch; ``epoch`` lists
    the epoch indices."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


class _MonitorCallback(Callback):
    def __init__(self, monitor, mode, min_delta=0.0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"`mode` must be 'auto', 'min' or 'max'. Received: mode={mode!r}")
        self.monitor = monitor
        if mode == "auto":
            # Keras: accuracy-like metrics grow, everything else (losses) shrinks
            name = monitor[4:] if monitor.startswith("val_") else monitor
            mode = "max" if ("acc" in name or name in ("auc",)) else "min"
        self.mode = mode
        self.min_delta = abs(float(min_delta))

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        if self.mode == "max":
            return value - self.min_delta > reference
        return value + self.min_delta < reference

    def _monitor_value(self, logs, who):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{who} conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs or {})}",
                          stacklevel=3)
        return value


class EarlyStopping(_MonitorCallback):
    """Stop when ``monitor`` has not improved (by more than ``min_delta``) for
    ``patience`` epochs; ``restore_best_weights`` puts back the weights of the
    best epoch at the end (Keras 3's rules, ``baseline`` and
    ``start_from_epoch`` included)."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta)
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = self._monitor_value(logs, "Early stopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print("Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_MonitorCallback):
    """Save the weights (and the optimizer state) to ``filepath`` (``.npz``;
    ``{epoch}`` and log keys such as ``{val_loss:.3f}`` are filled in) at the
    end of every epoch, or only when ``monitor`` improved with
    ``save_best_only``.  ``model.load_weights(filepath)`` resumes from it."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=True, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__(monitor, mode)
        filepath = str(filepath)
        if not filepath.endswith(".npz"):
            raise ValueError("The filepath provided must end in `.npz` (fastconv's weights "
                             f"format). Received: filepath={filepath}")
        if save_freq != "epoch":
            raise ValueError(f"only save_freq='epoch' is supported. Received: {save_freq!r}")
        self.filepath = filepath
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = save_weights_only
        self.best = initial_value_threshold

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            current = self._monitor_value(logs, "Can save best model only with")
            if current is None or not self._is_improvement(current, self.best):
                return
            if self.verbose > 0:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best} to "
                      f"{current:.5f}, saving model to {path}")
            self.best = current
        elif self.verbose > 0:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        self.model.save_weights(path)


def _as_list(callbacks):
    if callbacks is None:
        return []
    callbacks = list(callbacks)
    for c in callbacks:
        if not isinstance(c, Callback):
            raise TypeError(f"callbacks must be fastconv.callbacks.Callback instances; "
                            f"received {c!r}")
    return callbacks

