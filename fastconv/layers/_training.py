"""compile / fit / evaluate / train_on_batch for Sequential and Model (Keras style)."""
import math
import sys
import time

import numpy as np

from fastconv.config import blas_one_thread

from fastconv import callbacks as callbacks_module
from fastconv import losses as losses_module
from fastconv import metrics as metrics_module
from fastconv import optimizers as optimizers_module

from . import _base


def _verbosity(verbose):
    if verbose == "auto":
        return 1
    if isinstance(verbose, (bool, np.bool_)):
        return int(verbose)
    if verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2. Received: verbose={verbose!r}")
    return verbose


def _n_samples(arrays, name):
    ns = {a.shape[0] if a.ndim else None for a in arrays}
    if None in ns or len(ns) != 1:
        raise ValueError(f"`{name}` arrays must all have the same first (sample) axis. "
                         f"Received shapes {[a.shape for a in arrays]}")
    return ns.pop()


class _Trainer:
    """Mixed into _Network.  Needs: __call__(x, training), backward(g,
    need_input), trainable_refs(), _after_update(), get/set_weights,
    compute_output_shape(), _output_layer()."""

    optimizer = None
    loss = None
    stop_training = False

    # -- compile ----------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Choose the optimizer (a name or a fastconv.optimizers.Optimizer),
        the loss (a name or a fastconv.losses.Loss) and metric names, e.g.
        ``compile("adam", "sparse_categorical_crossentropy", ["accuracy"])``."""
        if loss is None:
            raise ValueError("compile() needs a `loss` (a name such as "
                             "'sparse_categorical_crossentropy' or a fastconv.losses.Loss)")
        if getattr(self, "_multi_out", False):
            raise NotImplementedError("training a Model with several outputs is not supported")
        opt = optimizers_module.get(optimizer)
        loss_obj = losses_module.get(loss)
        if metrics is not None and (isinstance(metrics, str) or not hasattr(metrics, "__iter__")):
            raise TypeError(f"`metrics` must be a list of names. Received: metrics={metrics!r}")
        mets = [metrics_module.get(m, loss_obj) for m in (metrics or [])]
        self.optimizer, self.loss, self._metrics = opt, loss_obj, mets
        pending = getattr(self, "_pending_optimizer_state", None)
        if pending is not None:
            self._pending_optimizer_state = None
            self._restore_optimizer(pending)

    @property
    def metrics_names(self):
        return ["loss"] + [name for name, _ in getattr(self, "_metrics", [])]

    def _require_compiled(self, what):
        if self.optimizer is None or self.loss is None:
            raise RuntimeError(f"You must call `compile()` before using `{what}()` on "
                               f'model "{self.name}".')

    # -- data -----------------------------------------------------------------------
    def _as_inputs(self, x, name="x"):
        multi = isinstance(x, (list, tuple))
        xs = [np.asarray(t) for t in x] if multi else [np.asarray(x)]
        if any(a.ndim == 0 for a in xs):
            raise ValueError(f"`{name}` must have a sample axis. Received shapes "
                             f"{[a.shape for a in xs]}")
        return xs, multi

    def _check_batch(self, xs, multi, y, where):
        """Validate y against the model's output before anything runs (so a
        bad label leaves every weight and statistic as it was)."""
        n = _n_samples(xs, "x")
        y = np.asarray(y)
        if y.ndim == 0 or y.shape[0] != n:
            raise ValueError(f"{where}: x and y must have the same number of samples; x has "
                             f"{n} and y has {'no sample axis' if y.ndim == 0 else y.shape[0]} "
                             f"(x shapes {[a.shape for a in xs]}, y shape {y.shape})")
        shapes = [a.shape for a in xs] if multi else xs[0].shape
        out_shape = self.compute_output_shape(shapes)
        probe = np.broadcast_to(np.zeros((), self._output_dtype()), out_shape)
        self.loss.check(y, probe)
        return y

    def _output_dtype(self):
        layer = self._output_layer()
        return np.dtype(layer.dtype if layer is not None else "float32")

    def _check_can_train(self):
        problems = [p for layer in self._all_layers() for p in [layer._training_problem()] if p]
        if problems:
            raise NotImplementedError(f'Model "{self.name}" cannot be trained: ' +
                                      "; ".join(problems))

    # -- one step -------------------------------------------------------------------
    def _loss_and_backward(self, xs, multi, y):
        y_pred = self(xs if multi else xs[0], training=True)
        out_layer = self._output_layer()
        state = out_layer._activation_state() if out_layer is not None else None
        g = None
        if state is not None and self.loss.fuses_with is not None and \
                out_layer._activation_name() == self.loss.fuses_with:
            g = self.loss.fused_grad(y, y_pred)
        if g is not None:
            value = self.loss(y, y_pred)
            state["skip"] = True      # the loss gave the gradient of the logits
        else:
            value, g = self.loss.value_and_grad(y, y_pred)
        self.backward(g, need_input=False)
        return value, y_pred

    def _apply_gradients(self):
        refs = self.trainable_refs()
        grads = [layer._grads.get(n) for layer, n in refs]
        missing = [f"{layer.name}/{n}" for (layer, n), g in zip(refs, grads) if g is None]
        if missing:
            raise RuntimeError(f"no gradient for {', '.join(missing)}")
        self.optimizer.apply(grads, [getattr(layer, n) for layer, n in refs],
                             names=[f"{layer.name}/{n}" for layer, n in refs])
        for layer in {id(layer): layer for layer, _ in refs}.values():
            layer._after_update()

    def _train_batch(self, xs, multi, y):
        # fastconv's OpenMP kernels and the GEMMs through NumPy take turns all
        # step long: BLAS on one thread (config.blas_one_thread)
        with blas_one_thread():
            value, y_pred = self._loss_and_backward(xs, multi, y)
            self._apply_gradients()
        return value, y_pred

    def _metric_values(self, y, y_pred):
        return [fn(y, y_pred) for _, fn in self._metrics]

    def train_on_batch(self, x, y, return_dict=False):
        """One optimizer step on this batch; returns its loss (with metrics:
        ``[loss, *metrics]``, or a dict with ``return_dict``), computed in the
        forward pass before the update, as Keras does."""
        self._require_compiled("train_on_batch")
        self._check_can_train()
        xs, multi = self._as_inputs(x)
        y = self._check_batch(xs, multi, y, "train_on_batch")
        value, y_pred = self._train_batch(xs, multi, y)
        logs = {"loss": value}
        for (name, _), (s, c) in zip(self._metrics, self._metric_values(y, y_pred)):
            logs[name] = s / max(c, 1)
        return self._format_logs(logs, return_dict)

    def _format_logs(self, logs, return_dict):
        if return_dict:
            return logs
        if len(logs) == 1:
            return logs["loss"]
        return list(logs.values())

    # -- evaluate -------------------------------------------------------------------
    def evaluate(self, x, y, batch_size=32, verbose="auto", return_dict=False):
        """Loss (and metrics) over (x, y) in inference mode, in batches."""
        self._require_compiled("evaluate")
        xs, multi = self._as_inputs(x)
        y = self._check_batch(xs, multi, y, "evaluate")
        logs = self._evaluate_arrays(xs, multi, y, self._batch_size(batch_size),
                                     _verbosity(verbose), "Evaluate")
        return self._format_logs(logs, return_dict)

    def _evaluate_arrays(self, xs, multi, y, batch_size, verbose, desc):
        n = xs[0].shape[0]
        total, count = 0.0, 0
        sums = [[0.0, 0] for _ in self._metrics]
        bar = _bar(-(-n // batch_size), desc, verbose == 1)
        for start in range(0, n, batch_size):
            part = [a[start:start + batch_size] for a in xs]
            yb = y[start:start + batch_size]
            y_pred = self(part if multi else part[0])
            total += self.loss(yb, y_pred) * len(yb)
            count += len(yb)
            for acc, (s, c) in zip(sums, self._metric_values(yb, y_pred)):
                acc[0] += s
                acc[1] += c
            bar.update(1)
        bar.close()
        logs = {"loss": total / max(count, 1)}
        for (name, _), (s, c) in zip(self._metrics, sums):
            logs[name] = s / max(c, 1)
        return logs

    @staticmethod
    def _batch_size(batch_size):
        if batch_size is None:
            return 32
        if isinstance(batch_size, (bool, np.bool_)) or not isinstance(
                batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"`batch_size` must be a positive integer. "
                             f"Received: batch_size={batch_size!r}")
        return int(batch_size)

    # -- fit ------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0):
        """Train for ``epochs`` passes over (x, y) in batches of ``batch_size``
        (the order shuffled each epoch unless ``shuffle=False``).

        ``validation_split`` holds out the last fraction of the samples (taken
        before shuffling, as Keras does); ``validation_data=(x_val, y_val)``
        gives them explicitly.  Returns a ``History`` whose ``history`` has
        ``loss``, each metric, and ``val_``-prefixed ones with validation data.
        ``verbose``: "auto"/1 a tqdm progress bar per epoch, 2 one line per
        epoch, 0 silent.  Callbacks: ``fastconv.callbacks``.
        """
        self._require_compiled("fit")
        self._check_can_train()
        verbose = _verbosity(verbose)
        batch_size = self._batch_size(batch_size)
        if isinstance(epochs, (bool, np.bool_)) or not isinstance(epochs, (int, np.integer)) \
                or epochs < 0:
            raise ValueError(f"`epochs` must be a non-negative integer. Received: {epochs!r}")
        if x is None or y is None:
            raise ValueError("fit() needs both `x` and `y`")
        xs, multi = self._as_inputs(x)
        y = self._check_batch(xs, multi, y, "fit")
        if not 0 <= float(validation_split) < 1:
            raise ValueError("`validation_split` must be in [0, 1). "
                             f"Received: validation_split={validation_split}")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("`validation_data` must be a tuple (x_val, y_val)")
            vxs, vmulti = self._as_inputs(validation_data[0], "validation_data[0]")
            vy = self._check_batch(vxs, vmulti, validation_data[1], "validation_data")
            val = (vxs, vmulti, vy)
        elif validation_split:
            n = xs[0].shape[0]
            split = int(math.floor(n * (1.0 - validation_split)))
            if split == 0 or split == n:
                raise ValueError(f"validation_split={validation_split} of {n} samples leaves "
                                 "an empty training or validation set")
            val = ([a[split:] for a in xs], multi, y[split:])
            xs, y = [a[:split] for a in xs], y[:split]
        history = callbacks_module.History()
        cbs = callbacks_module._as_list(callbacks) + [history]
        n = xs[0].shape[0]
        steps = -(-n // batch_size)
        for cb in cbs:
            cb.set_model(self)
            cb.set_params({"epochs": epochs, "steps": steps, "verbose": verbose})
        self.stop_training = False
        for cb in cbs:
            cb.on_train_begin()
        for epoch in range(int(initial_epoch), epochs):
            for cb in cbs:
                cb.on_epoch_begin(epoch)
            t0 = time.perf_counter()
            order = _base._rng.permutation(n) if shuffle else None
            total, count = 0.0, 0
            sums = [[0.0, 0] for _ in self._metrics]
            bar = _bar(steps, f"Epoch {epoch + 1}/{epochs}", verbose == 1)
            for step in range(steps):
                sel = slice(step * batch_size, (step + 1) * batch_size)
                idx = order[sel] if order is not None else sel
                part = [a[idx] for a in xs]
                yb = y[idx]
                value, y_pred = self._train_batch(part, multi, yb)
                total += value * len(yb)
                count += len(yb)
                for acc, (s, c) in zip(sums, self._metric_values(yb, y_pred)):
                    acc[0] += s
                    acc[1] += c
                logs = {"loss": total / count}
                for (name, _), (s, c) in zip(self._metrics, sums):
                    logs[name] = s / max(c, 1)
                bar.update(1, logs)
                for cb in cbs:
                    cb.on_train_batch_end(step, logs)
            if val is not None:
                vlogs = self._evaluate_arrays(val[0], val[1], val[2], batch_size, 0, "")
                logs.update({f"val_{k}": v for k, v in vlogs.items()})
            bar.close(logs)
            if verbose == 2:
                print(f"Epoch {epoch + 1}/{epochs} - {time.perf_counter() - t0:.2f}s - " +
                      " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
            for cb in cbs:
                cb.on_epoch_end(epoch, dict(logs))
            if self.stop_training:
                break
        for cb in cbs:
            cb.on_train_end()
        return history

    # -- weights with optimizer state ---------------------------------------------
    def _optimizer_arrays(self):
        if self.optimizer is None or not self.optimizer.built:
            return {}
        out = {"optimizer/class": np.array(type(self.optimizer).__name__)}
        for k, a in self.optimizer.variables():
            out[f"optimizer/{k}"] = a
        return out

    def _restore_optimizer(self, state):
        cls = str(state.pop("optimizer/class"))
        if type(self.optimizer).__name__ != cls:
            raise ValueError(f"the file holds the state of a {cls} optimizer; the model is "
                             f"compiled with {type(self.optimizer).__name__}")
        items = {k[len("optimizer/"):]: v for k, v in state.items()}
        self.optimizer.set_variables(items, self.trainable_weights)


class _Bar:
    """A tqdm bar with the running logs as its postfix (or nothing)."""

    def __init__(self, total, desc, show):
        self._bar = None
        if show:
            try:
                from tqdm.auto import tqdm
            except ImportError:   # tqdm is optional: one line per epoch instead
                self._fallback = desc
            else:
                self._bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=True,
                                 dynamic_ncols=True)
        self._show = show

    def update(self, n, logs=None):
        if self._bar is not None:
            self._bar.update(n)
            if logs:
                self._bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=False)

    def close(self, logs=None):
        if self._bar is not None:
            if logs:
                self._bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=True)
            self._bar.close()
        elif self._show and logs:
            print(f"{self._fallback} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()),
                  file=sys.stderr)


def _bar(total, desc, show):
    return _Bar(total, desc, show)
