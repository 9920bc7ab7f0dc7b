"""Sequential and the functional Model; batch-norm folding; .npz weights."""
import copy
import sys
import time

import numpy as np

from ._base import Layer, SymbolicTensor, shape_str
from ._conv import _ConvBase
from ._core_layers import Activation, BatchNormalization
from ._training import _Trainer


# ---------------------------------------------------------------------------
# batch-norm folding

def _foldable(conv, bn):
    if not isinstance(conv, _ConvBase) or not isinstance(bn, BatchNormalization):
        return False
    if not (conv.built and bn.built):
        return False
    if conv._activation.fused is not None or conv._activation.python is not None:
        return False
    chan_axis = 3 if conv.data_format == "channels_last" else 1
    return bn.axis % 4 == chan_axis and bn.moving_mean.shape[0] == conv._out_channels()


def fold_batchnorm(conv, bn):
    """A copy of ``conv`` (Conv2D or DepthwiseConv2D without a post-activation)
    computing ``bn(conv(x))``: per output channel ``o`` with
    ``s = gamma / sqrt(moving_variance + epsilon)``,
    ``W'[..., o] = W[..., o] * s[o]`` and ``b' = (b - moving_mean) * s + beta``
    (in float64, then rounded to the layer dtype once)."""
    if not isinstance(conv, _ConvBase):
        raise TypeError(f"fold_batchnorm: expected a Conv2D or DepthwiseConv2D, "
                        f"got {type(conv).__name__}")
    if not isinstance(bn, BatchNormalization):
        raise TypeError(f"fold_batchnorm: expected a BatchNormalization, got {type(bn).__name__}")
    if not (conv.built and bn.built):
        raise ValueError("fold_batchnorm: both layers must be built (have weights)")
    if not _foldable(conv, bn):
        raise ValueError(
            f'fold_batchnorm: cannot fold "{bn.name}" into "{conv.name}": the convolution must '
            f"have no activation (has {conv.activation!r}) and the batch norm must normalise "
            f"its channel axis (conv data_format={conv.data_format}, bn axis={bn.axis}, "
            f"{conv._out_channels()} vs {bn.moving_mean.shape[0]} channels)")
    a, b = bn.scale_shift()
    hwio, _ = conv._hwio_groups()
    kernel = (hwio.astype(np.float64) * a).reshape(conv.kernel.shape)
    bias0 = conv.bias.astype(np.float64) if conv.use_bias else 0.0
    new = copy.copy(conv)
    new.use_bias = True
    new.kernel = kernel.astype(conv.dtype)
    new.bias = (bias0 * a + b).astype(conv.dtype)
    new._cache = None
    return new


def _fuse_activation(conv, act_layer):
    """conv (no activation) followed by an Activation layer -> one conv."""
    if not isinstance(conv, _ConvBase) or not isinstance(act_layer, Activation):
        return None
    a = act_layer._activation
    if a.python is not None or a.fused is None or conv.dtype != act_layer.dtype:
        return None
    if conv._activation.fused is not None or conv._activation.python is not None:
        return None
    new = copy.copy(conv)
    new._activation = a
    return new


def _merge(prev, layer, fuse_activations):
    """prev then layer as one layer, or None."""
    if isinstance(layer, BatchNormalization) and _foldable(prev, layer):
        return fold_batchnorm(prev, layer)
    if fuse_activations:
        return _fuse_activation(prev, layer)
    return None


# ---------------------------------------------------------------------------
# networks

class _Progress:
    def __init__(self, total, stream=None, width=30):
        self.total, self.width, self.done = total, width, 0
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()

    def update(self, n=1):
        self.done += n
        frac = self.done / max(self.total, 1)
        filled = int(self.width * frac)
        el = time.perf_counter() - self.t0
        eta = el / frac - el if frac > 0 else 0.0
        self.stream.write(f"\r{self.done}/{self.total} [{'=' * filled}{'.' * (self.width - filled)}]"
                          f" {el:.1f}s elapsed, ETA {eta:.1f}s")
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def _fmt_int(n):
    return "?" if n is None else f"{n:,}"


class _Network(_Trainer, Layer):
    """What Sequential and Model share: weights, predict, summary, folding,
    training (compile / fit / evaluate / train_on_batch, see _training.py)."""

    _cast_all_inputs = False

    def _convert(self, x):
        return x if isinstance(x, np.ndarray) else np.asarray(x)

    def unique_layers(self):
        seen, out = set(), []
        for layer in self.layers:
            if id(layer) not in seen:
                seen.add(id(layer))
                out.append(layer)
        return out

    @property
    def weight_names(self):
        return [f"{layer.name}/{n}" for layer in self.unique_layers()
                for n in layer.weight_names]

    def get_weights(self):
        return [w for layer in self.unique_layers() for w in layer.get_weights()]

    def set_weights(self, weights):
        weights = list(weights)
        layers = self.unique_layers()
        counts = [len(layer.weight_names) for layer in layers]
        if sum(counts) != len(weights):
            raise ValueError(f'You called `set_weights(weights)` on model "{self.name}" with a '
                             f"weight list of length {len(weights)}, but the model was "
                             f"expecting {sum(counts)} weights"
                             + ("" if self.built else " (it is not built yet)") + ".")
        i = 0
        for layer, n in zip(layers, counts):
            if n:
                layer.set_weights(weights[i:i + n])
            i += n

    def count_params(self):
        return int(sum(layer.count_params() for layer in self.unique_layers()))

    # -- training -------------------------------------------------------------
    def trainable_refs(self):
        return [ref for layer in self.unique_layers() for ref in layer.trainable_refs()]

    @property
    def trainable_weight_names(self):
        return [f"{layer.name}/{n}" for layer, n in self.trainable_refs()]

    def _after_update(self):
        for layer in self.unique_layers():
            layer._after_update()

    def _all_layers(self):
        out = []
        for layer in self.unique_layers():
            out += layer._all_layers() if isinstance(layer, _Network) else [layer]
        return out

    def _training_problem(self):
        probs = [p for layer in self._all_layers() for p in [layer._training_problem()] if p]
        return "; ".join(probs) or None

    def _activation_state(self):
        layer = self._output_layer()
        return layer._activation_state() if layer is not None else None

    def _activation_name(self):
        layer = self._output_layer()
        return layer._activation_name() if layer is not None else None

    def _check_trainable_graph(self):
        """A layer called twice keeps one call's state: not trainable here."""
        if len(self.unique_layers()) != len(self.layers):
            seen, twice = set(), []
            for layer in self.layers:
                if id(layer) in seen:
                    twice.append(layer.name)
                seen.add(id(layer))
            raise NotImplementedError(
                f'Model "{self.name}": training a model that calls a layer more than once '
                f"(shared layers: {', '.join(sorted(set(twice)))}) is not supported")

    def save_weights(self, path):
        """All weights in one ``.npz`` file (keys ``NNNN/layer/weight``) and,
        once the compiled optimizer has taken a step, its state
        (``optimizer/...``), so that ``load_weights`` resumes training."""
        names = self.weight_names
        arrays = {f"{i:04d}/{n}": w for i, (n, w) in enumerate(zip(names, self.get_weights()))}
        arrays.update(self._optimizer_arrays())
        np.savez(path, **arrays)

    def load_weights(self, path):
        """Load a file written by ``save_weights`` (same architecture; the
        arrays are matched by position and their shapes checked).  The
        optimizer state in it is restored into the compiled optimizer (or
        kept for ``compile``); nothing changes if any part does not fit."""
        with np.load(path) as f:
            opt = {k: f[k] for k in f.files if k.startswith("optimizer/")}
            keys = sorted((k for k in f.files if not k.startswith("optimizer/")),
                          key=lambda k: int(k.split("/", 1)[0]))
            weights = [f[k] for k in keys]
        old = self.get_weights()
        self.set_weights(weights)
        if opt:
            if self.optimizer is None:
                self._pending_optimizer_state = opt
                return
            try:
                self._restore_optimizer(dict(opt))
            except Exception:
                self.set_weights(old)
                raise

    # -- running ---------------------------------------------------------------
    def predict(self, x, batch_size=None, verbose=False):
        """Run on ``x`` in batches of ``batch_size`` (default 32) and
        concatenate; ``verbose=True`` prints a progress bar to stderr."""
        multi = isinstance(x, (list, tuple))
        xs = [np.asarray(t) for t in x] if multi else [np.asarray(x)]
        n = xs[0].shape[0]
        bs = 32 if batch_size is None else int(batch_size)
        if bs <= 0:
            raise ValueError(f"`batch_size` must be positive. Received: batch_size={batch_size}")
        chunks = []
        bar = _Progress(-(-n // bs)) if verbose else None
        for start in range(0, n, bs):
            part = [t[start:start + bs] for t in xs]
            chunks.append(self(part if multi else part[0]))
            if bar:
                bar.update()
        if not chunks:
            return self(xs if multi else xs[0])
        if isinstance(chunks[0], list):
            return [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]
        return np.concatenate(chunks)

    def flops(self, input_shape=None):
        """FLOPs per sample (a multiply-add counts 2); None if shapes are unknown."""
        rows = self._rows(input_shape)
        if rows is None:
            return None
        return int(sum(r[3] for r in rows))

    def summary(self, input_shape=None, print_fn=None):
        """Print (and return) a table of the layers, their output shapes,
        parameter counts and FLOPs per sample (a multiply-add counts 2)."""
        rows = self._rows(input_shape)
        lines = []
        head = ("Layer (type)", "Output Shape", "Param #", "FLOPs")
        table = []
        if rows is None:
            for layer in self.layers:
                table.append((f"{layer.name} ({type(layer).__name__})", "?",
                              _fmt_int(layer.count_params() if layer.built else None), "?"))
        else:
            for layer, _in, out, fl in rows:
                out_s = shape_str(out) if not isinstance(out, list) else \
                    ", ".join(shape_str(o) for o in out)
                table.append((f"{layer.name} ({type(layer).__name__})", out_s,
                              _fmt_int(layer.count_params()), _fmt_int(fl)))
        widths = [max(len(r[i]) for r in [head] + table) + 2 for i in range(4)]
        rule = "=" * sum(widths)
        lines.append(f'Model: "{self.name}"')
        lines.append(rule)
        lines.append("".join(h.ljust(w) for h, w in zip(head, widths)))
        lines.append(rule)
        for r in table:
            lines.append("".join(c.ljust(w) for c, w in zip(r, widths)))
        lines.append(rule)
        lines.append(f"Total params: {self.count_params():,}")
        total = None if rows is None else int(sum(r[3] for r in rows))
        lines.append(f"FLOPs per sample: {_fmt_int(total)}")
        text = "\n".join(lines)
        (print_fn or print)(text)
        return text


class Sequential(_Network):
    """A plain stack of layers: ``Sequential([Conv2D(...), ..., Dense(10)])``.

    Built on the first call, by ``build(input_shape)`` or with
    ``input_shape=`` (batch axis excluded, as in Keras's ``Input(shape)``).
    """

    def __init__(self, layers=None, name=None, input_shape=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.layers = []
        for layer in layers or []:
            self.add(layer)
        if input_shape is not None:
            self.build((None,) + tuple(input_shape))

    def add(self, layer):
        if not isinstance(layer, Layer):
            raise TypeError(f"Only fastconv layers can be added to a Sequential; "
                            f"received {layer!r} of type {type(layer).__name__}")
        self.layers.append(layer)
        if self.built:
            self.build(self.input_shape)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.layers:
            layer._check_input(shape)
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
        Layer.build(self, input_shape)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def call(self, x, training=False):
        if training:
            self._check_trainable_graph()
            self._saved = ()
        for layer in self.layers:
            x = layer(x, training=training)
        return x

    def _backward(self, g, saved, need_input):
        for k in range(len(self.layers) - 1, -1, -1):
            g = self.layers[k].backward(g, need_input=need_input or k > 0)
        return g

    def _rows(self, input_shape=None):
        shape = input_shape if input_shape is not None else self.input_shape
        if shape is None:
            return None
        shape = tuple(shape)
        if len(shape) and shape[0] is not None:
            shape = (None,) + shape[1:]
        rows = []
        for layer in self.layers:
            out = layer.compute_output_shape(shape)
            rows.append((layer, shape, out, layer.flops(shape) or 0))
            shape = out
        return rows

    def _output_layer(self):
        if not self.layers:
            return None
        last = self.layers[-1]
        return last._output_layer() if isinstance(last, _Network) else last

    def fold_batchnorm(self, fuse_activations=True):
        """A new Sequential with every Conv2D/DepthwiseConv2D → BatchNormalization
        pair replaced by one folded convolution (nested networks too) and, with
        ``fuse_activations``, a following Activation layer fused into it."""
        out = []
        for layer in self.layers:
            merged = _merge(out[-1], layer, fuse_activations) if out else None
            if merged is not None:
                out[-1] = merged
            elif isinstance(layer, _Network):
                out.append(layer.fold_batchnorm(fuse_activations))
            else:
                out.append(layer)
        new = Sequential(out, name=self.name)
        if self.built:
            new.build(self.input_shape)
        return new


class Model(_Network):
    """A graph of layers, wired the Keras functional way::

        x = inp = layers.Input((64, 64, 3))
        y = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
        y = layers.Conv2D(16, 3, padding="same")(y)
        out = layers.Add(activation="relu")([y, x_projected])
        model = layers.Model(inp, out)

    ``inputs``/``outputs`` are one SymbolicTensor or a list.  Calling the model
    on NumPy arrays runs the layers in order and frees each intermediate once
    its last consumer ran.
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._multi_in = isinstance(inputs, (list, tuple))
        self._multi_out = isinstance(outputs, (list, tuple))
        ins = list(inputs) if self._multi_in else [inputs]
        outs = list(outputs) if self._multi_out else [outputs]
        for t in ins + outs:
            if not isinstance(t, SymbolicTensor):
                raise TypeError(f"Model inputs and outputs must be symbolic tensors "
                                f"(from layers.Input and layer calls); received {t!r}")
        ids, order, shapes = {}, [], {}
        in_ids = {id(t): k for k, t in enumerate(ins)}

        def visit(t, stack=()):
            if id(t) in ids:
                return ids[id(t)]
            if t.layer is None:
                if id(t) not in in_ids:
                    raise ValueError(f"Graph disconnected: cannot obtain value for {t!r}; "
                                     "it is not one of the model's inputs")
                ids[id(t)] = len(ids)
                shapes[ids[id(t)]] = t.shape
                return ids[id(t)]
            srcs = [visit(s) for s in t.inputs]
            ids[id(t)] = len(ids)
            shapes[ids[id(t)]] = t.shape
            order.append((t.layer, srcs, ids[id(t)], len(t.inputs) > 1 or t.layer._n_inputs > 1))
            return ids[id(t)]

        for t in ins:
            visit(t)
        for t in outs:
            visit(t)
        self._init_graph([ids[id(t)] for t in ins], [ids[id(t)] for t in outs], order, shapes)

    def _init_graph(self, in_ids, out_ids, steps, shapes):
        self._in_ids, self._out_ids, self._steps, self._shapes = in_ids, out_ids, steps, shapes
        self._n_inputs = len(in_ids) if self._multi_in else 1
        self.layers = [s[0] for s in steps]
        last = {}
        for k, (_, srcs, _, _) in enumerate(steps):
            for s in srcs:
                last[s] = k
        self._last_use = last
        self.built = True
        self.input_shape = shapes[in_ids[0]] if not self._multi_in else [shapes[i] for i in in_ids]

    @classmethod
    def _from_graph(cls, name, multi_in, multi_out, in_ids, out_ids, steps, shapes):
        m = cls.__new__(cls)
        Layer.__init__(m, name=name)
        m._multi_in, m._multi_out = multi_in, multi_out
        m._init_graph(in_ids, out_ids, steps, shapes)
        return m

    def build(self, input_shape):
        pass

    def _check_input(self, shape):
        pass

    def call(self, x, training=False):
        if training:
            self._check_trainable_graph()
            self._saved = ()
        xs = list(x) if self._multi_in else [x]
        if len(xs) != len(self._in_ids):
            raise ValueError(f'Model "{self.name}" expects {len(self._in_ids)} inputs, '
                             f"received {len(xs)}")
        vals = dict(zip(self._in_ids, xs))
        keep = set(self._out_ids)
        for k, (layer, srcs, dst, multi) in enumerate(self._steps):
            args = [vals[s] for s in srcs]
            vals[dst] = layer(args if multi else args[0], training=training)
            for s in srcs:
                if self._last_use.get(s) == k and s not in keep:
                    vals.pop(s, None)
        outs = [vals[i] for i in self._out_ids]
        return outs if self._multi_out else outs[0]

    def _output_layer(self):
        if self._multi_out:
            return None
        for layer, _, dst, _ in self._steps:
            if dst == self._out_ids[0]:
                return layer._output_layer() if isinstance(layer, _Network) else layer
        return None

    def _backward(self, g, saved, need_input):
        """Reverse the steps; a tensor read by several layers gets the sum of
        their gradients (the shortcut of a residual block)."""
        gs = list(g) if self._multi_out else [g]
        if len(gs) != len(self._out_ids):
            raise ValueError(f'Model "{self.name}": backward() got {len(gs)} output gradients '
                             f"for {len(self._out_ids)} outputs")
        grads = {}

        def add(t, gt):
            if gt is None:
                return
            grads[t] = gt if t not in grads else grads[t] + gt

        for t, gt in zip(self._out_ids, gs):
            add(t, gt)
        inputs = set(self._in_ids)
        for layer, srcs, dst, multi in reversed(self._steps):
            gt = grads.pop(dst, None)
            if gt is None:      # an output no loss depends on: no gradient flows
                layer._saved = None
                layer._grads = {n: np.zeros_like(getattr(layer, n))
                                for n in layer.trainable_weight_names}
                continue
            need = need_input or any(s not in inputs for s in srcs)
            gin = layer.backward(gt, need_input=need)
            if gin is None:
                continue
            gin = gin if multi else [gin]
            for s, gs_ in zip(srcs, gin):
                if s in inputs and not need_input:
                    continue
                add(s, gs_)
        if not need_input:
            return None
        out = [grads.get(i) for i in self._in_ids]
        return out if self._multi_in else out[0]

    def compute_output_shape(self, input_shape):
        rows = self._propagate(input_shape)
        outs = [rows[1][i] for i in self._out_ids]
        if self._multi_out:
            return outs
        return outs[0]

    def _propagate(self, input_shape):
        shapes = dict(zip(self._in_ids, input_shape if self._multi_in else [input_shape]))
        rows = []
        for layer, srcs, dst, multi in self._steps:
            ins = [shapes[s] for s in srcs]
            arg = ins if multi else ins[0]
            shapes[dst] = layer.compute_output_shape(arg)
            rows.append((layer, arg, shapes[dst], layer.flops(arg) or 0))
        return rows, shapes

    def _rows(self, input_shape=None):
        shape = self.input_shape if input_shape is None else input_shape
        if self._multi_in:
            if any(None in s[1:] for s in shape):
                return None
        elif None in tuple(shape)[1:]:
            return None
        return self._propagate(shape)[0]

    def fold_batchnorm(self, fuse_activations=True):
        """A new Model with each BatchNormalization whose input comes only from a
        Conv2D/DepthwiseConv2D (without activation) folded into it and, with
        ``fuse_activations``, each such Activation layer fused into the conv."""
        steps = [(layer.fold_batchnorm(fuse_activations) if isinstance(layer, _Network)
                  else layer, srcs, dst, multi) for layer, srcs, dst, multi in self._steps]
        changed = True
        while changed:
            changed = False
            producer = {dst: k for k, (_, _, dst, _) in enumerate(steps)}
            consumers = {}
            for _, srcs, _, _ in steps:
                for src in srcs:
                    consumers[src] = consumers.get(src, 0) + 1
            for k, (layer, srcs, dst, multi) in enumerate(steps):
                if len(srcs) != 1 or multi:
                    continue
                p = producer.get(srcs[0])
                if p is None or consumers[srcs[0]] != 1 or srcs[0] in self._out_ids:
                    continue
                merged = _merge(steps[p][0], layer, fuse_activations)
                if merged is not None:
                    steps[p] = (merged, steps[p][1], dst, steps[p][3])
                    del steps[k]
                    changed = True
                    break
        return Model._from_graph(self.name, self._multi_in, self._multi_out, self._in_ids,
                                 self._out_ids, steps, dict(self._shapes))
