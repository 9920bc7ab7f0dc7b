"""Optimizers with Keras 3's names, arguments and update rules, on NumPy arrays.

Each step, as ``keras.optimizers.Optimizer.apply`` does it: the gradients are
clipped (``clipnorm`` per gradient, ``global_clipnorm`` over all of them, or
``clipvalue``), weight decay shrinks every variable by ``1 - weight_decay *
lr`` (decoupled, applied before the update, as Keras does for every
optimizer), then the optimizer's ``update_step`` runs and ``iterations``
grows by one.  The learning rate of step ``t`` (counted from 0) is
``schedule(t)`` for a ``LearningRateSchedule``, ``fn()`` for any other callable
(Keras calls it without arguments), else the number.

Variables are updated in place; the state (momentums, ...) is created on the
first step, shaped like the variables, and two scratch buffers of the largest
variable's size serve every step, so a step allocates no parameter-sized
array.  ``variables()`` / ``set_variables()`` give the state for saving
(``Model.save_weights`` and ``ModelCheckpoint`` store it with the weights).
"""
import math
import numbers
import re

import numpy as np

from fastconv import _core

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "get",
           "LearningRateSchedule", "ExponentialDecay", "CosineDecay"]


# ---------------------------------------------------------------------------
# learning-rate schedules (keras.optimizers.schedules)

class LearningRateSchedule:
    """Base of the schedules: ``schedule(step) -> learning rate``."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        return {}


def _positive_number(value, name, allow_zero=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or \
            not math.isfinite(value) or (value < 0 if allow_zero else value <= 0):
        req = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be a finite number {req}. Received: {name}={value!r}")
    return float(value)


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``, the
    exponent floored with ``staircase=True`` (Keras)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        self.initial_learning_rate = _positive_number(initial_learning_rate,
                                                      "initial_learning_rate", True)
        self.decay_steps = _positive_number(decay_steps, "decay_steps")
        self.decay_rate = _positive_number(decay_rate, "decay_rate", True)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        p = float(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p

    def get_config(self):
        return dict(initial_learning_rate=self.initial_learning_rate,
                    decay_steps=self.decay_steps, decay_rate=self.decay_rate,
                    staircase=self.staircase, name=self.name)


class CosineDecay(LearningRateSchedule):
    """Keras's ``CosineDecay``: an optional linear warmup from
    ``initial_learning_rate`` to ``warmup_target`` over ``warmup_steps``, then
    ``lr0 * ((1 - alpha) * 0.5 * (1 + cos(pi * t / decay_steps)) + alpha)``
    with ``t`` capped at ``decay_steps`` (``lr0`` is ``warmup_target`` when
    given, else ``initial_learning_rate``)."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = _positive_number(initial_learning_rate,
                                                      "initial_learning_rate", True)
        self.decay_steps = _positive_number(decay_steps, "decay_steps")
        self.alpha = float(alpha)
        self.name = name
        self.warmup_target = None if warmup_target is None else float(warmup_target)
        self.warmup_steps = _positive_number(warmup_steps, "warmup_steps", True)

    def _decay(self, step, lr0):
        frac = step / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * frac))
        return lr0 * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        step = float(step)
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            frac = step / self.warmup_steps
            return (self.warmup_target - self.initial_learning_rate) * frac + \
                self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return dict(initial_learning_rate=self.initial_learning_rate,
                    decay_steps=self.decay_steps, alpha=self.alpha, name=self.name,
                    warmup_target=self.warmup_target, warmup_steps=self.warmup_steps)


# ---------------------------------------------------------------------------
# the optimizers

#: elements per chunk of a big variable's update (six such arrays fit L2)
_UPDATE_CHUNK = 32768
#: the dtypes src/train/optimizer_step.c takes
_C_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_POOLS = {}


def _threads():
    return _core.get_num_threads()


def _update_pool(n):
    """A kept pool of n threads for the chunked updates."""
    if n not in _POOLS:
        from concurrent.futures import ThreadPoolExecutor
        _POOLS[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="fastconv-opt")
    return _POOLS[n]


class Optimizer:
    """What every optimizer shares: learning rate, clipping, weight decay,
    the iteration count, lazily created state and its saving."""

    #: names of the per-variable state arrays, in saving order
    _slot_names = ()

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can "
                             f"be set. Received: clipnorm={clipnorm}, "
                             f"clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        for n, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                     ("global_clipnorm", global_clipnorm)):
            if v is not None:
                _positive_number(v, n, allow_zero=True)
        if weight_decay is not None:
            _positive_number(weight_decay, "weight_decay", allow_zero=True)
        if isinstance(learning_rate, LearningRateSchedule) or callable(learning_rate):
            self._learning_rate = learning_rate
        else:
            self._learning_rate = _positive_number(learning_rate, "learning_rate", True)
        self.weight_decay = None if weight_decay is None else float(weight_decay)
        self.clipnorm = None if clipnorm is None else float(clipnorm)
        self.clipvalue = None if clipvalue is None else float(clipvalue)
        self.global_clipnorm = None if global_clipnorm is None else float(global_clipnorm)
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self.built = False
        self._slots = {}          # slot name -> list of arrays (one per variable)
        self._scratch = {}        # dtype -> (buffer, buffer) of the largest size
        self._shapes = None
        self._wd_pattern = None

    # -- learning rate ----------------------------------------------------------
    @property
    def learning_rate(self):
        """The learning rate of the next step."""
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            return float(lr(self.iterations))
        if callable(lr):
            return float(lr())
        return lr

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate = value if callable(value) else \
            _positive_number(value, "learning_rate", True)

    def exclude_from_weight_decay(self, var_names=None):
        """Variables whose name ("layer/weight") contains one of ``var_names``
        get no weight decay (e.g. ``["bias", "gamma", "beta"]``); before the
        first step, as in Keras."""
        if self.built:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before "
                             "the optimizer is built.")
        self._wd_pattern = re.compile("|".join(map(re.escape, var_names))) if var_names \
            else None

    # -- state ------------------------------------------------------------------
    def build(self, variables):
        """Create the state for these variables (their shapes and dtypes)."""
        self._shapes = [(v.shape, v.dtype) for v in variables]
        self._slots = {n: [self._new_slot(n, v) for v in variables] for n in self._slot_names}
        self._scratch = {}
        for v in variables:
            size = self._scratch.get(v.dtype, (np.empty(0, v.dtype),))[0].size
            if v.size > size:
                self._scratch[v.dtype] = (np.empty(v.size, v.dtype), np.empty(v.size, v.dtype))
        self.built = True

    def _new_slot(self, name, v):
        return np.zeros(v.shape, v.dtype)

    def variables(self):
        """[("iterations", array), (slot/index, array), ...] for saving."""
        out = [("iterations", np.array(self.iterations, np.int64))]
        for n in self._slot_names:
            out += [(f"{n}/{i:04d}", a) for i, a in enumerate(self._slots.get(n, []))]
        return out

    def set_variables(self, items, variables):
        """Restore what ``variables()`` gave (for these model variables)."""
        items = dict(items)
        if "iterations" not in items:
            raise ValueError("optimizer state without `iterations`")
        self.build(variables)
        for n in self._slot_names:
            for i, slot in enumerate(self._slots[n]):
                key = f"{n}/{i:04d}"
                if key not in items:
                    raise ValueError(f"optimizer state lacks {key!r} ({type(self).__name__} "
                                     f"with {len(variables)} variables)")
                a = np.asarray(items[key])
                if a.shape != slot.shape:
                    raise ValueError(f"optimizer state {key!r} has shape {a.shape}, "
                                     f"the variable {slot.shape}")
                slot[...] = a
        extra = [k for k in items if k != "iterations" and
                 not any(k.startswith(n + "/") for n in self._slot_names)]
        if extra or sum(len(v) for v in self._slots.values()) != \
                sum(1 for k in items if k != "iterations"):
            raise ValueError(f"optimizer state does not match {type(self).__name__}: "
                             f"unexpected entries {sorted(extra)[:5]}")
        self.iterations = int(items["iterations"])

    # -- the step -----------------------------------------------------------------
    def apply(self, grads, variables, names=None):
        """One step: update ``variables`` (arrays, in place) with ``grads``."""
        grads, variables = list(grads), list(variables)
        if len(grads) != len(variables):
            raise ValueError(f"{len(grads)} gradients for {len(variables)} variables")
        for k, (g, v) in enumerate(zip(grads, variables)):
            if not isinstance(v, np.ndarray) or not v.flags.writeable:
                raise TypeError(f"variable {k} must be a writeable numpy array")
            if g is None or np.shape(g) != v.shape:
                raise ValueError(f"gradient {k} has shape {np.shape(g)}, variable {v.shape}")
        if not self.built:
            self.build(variables)
        elif [(v.shape, v.dtype) for v in variables] != self._shapes:
            raise ValueError(f"{type(self).__name__} was built for variables of shapes "
                             f"{[s for s, _ in self._shapes]}; received "
                             f"{[v.shape for v in variables]}")
        lr = self.learning_rate
        grads = self._clip(grads)
        decays = [1.0] * len(variables)
        if self.weight_decay is not None and self.weight_decay != 0:
            for k, v in enumerate(variables):
                if self._wd_pattern is None or names is None or \
                        not self._wd_pattern.search(names[k]):
                    decays[k] = float(v.dtype.type(1 - self.weight_decay * lr))
        chunks = []
        # the C step's constants, once per dtype (Adam's bias correction)
        c_steps = {dt: self._c_step(lr, dt) for dt in {v.dtype for v in variables}
                   if dt in _C_DTYPES}
        for k, (g, v) in enumerate(zip(grads, variables)):
            g = np.asarray(g, v.dtype)
            slots = {n: self._slots[n][k] for n in self._slot_names}
            step = c_steps.get(v.dtype)
            if step is not None and v.flags.c_contiguous and g.flags.c_contiguous and \
                    all(a.flags.c_contiguous for a in slots.values()):
                # weight decay and update in one threaded C pass, the same
                # operations as _update (benchmarks/NOTES.md, "optimizer step in C")
                kind, consts = step
                _core.optimizer_step(kind, v, g, slots.get("momentum"), slots.get("velocity"),
                                     slots.get("velocity_hat"), decay=decays[k], **consts)
                continue
            if decays[k] != 1.0:
                v *= v.dtype.type(decays[k])
            if v.size > _UPDATE_CHUNK and g.flags.c_contiguous and v.flags.c_contiguous and \
                    all(a.flags.c_contiguous for a in slots.values()):
                # the same element-wise steps, chunk by chunk: the temporaries
                # stay in cache, so each array crosses memory once, not once
                # per step (benchmarks/NOTES.md, training step)
                flat = {n: a.reshape(-1) for n, a in slots.items()}
                gf, vf = g.reshape(-1), v.reshape(-1)
                for c0 in range(0, v.size, _UPDATE_CHUNK):
                    c1 = min(c0 + _UPDATE_CHUNK, v.size)
                    chunks.append(({n: a[c0:c1] for n, a in flat.items()}, gf[c0:c1],
                                   vf[c0:c1]))
            else:
                b1, b2 = self._scratch[v.dtype]
                self._update(slots, g, v, lr, b1[:v.size].reshape(v.shape),
                             b2[:v.size].reshape(v.shape))
        self._update_chunks(chunks, lr)
        self.iterations += 1

    def _update_chunks(self, chunks, lr):
        """The chunks of the big variables, split among fastconv's threads
        (NumPy releases the GIL inside each step), each with its own scratch."""
        def run(part):
            scratch = {}
            for slots, g, v in part:
                if v.dtype not in scratch:
                    scratch[v.dtype] = (np.empty(_UPDATE_CHUNK, v.dtype),
                                        np.empty(_UPDATE_CHUNK, v.dtype))
                b1, b2 = scratch[v.dtype]
                self._update(slots, g, v, lr, b1[:v.size], b2[:v.size])
        nthr = min(_threads(), len(chunks) // 4)
        if nthr <= 1:
            return run(chunks)
        step = -(-len(chunks) // nthr)
        parts = [chunks[i:i + step] for i in range(0, len(chunks), step)]
        for f in [_update_pool(len(parts)).submit(run, part) for part in parts]:
            f.result()

    def _clip(self, grads):
        if self.clipnorm:
            out = []
            for g in grads:
                norm = math.sqrt(float(np.sum(np.square(g, dtype=np.float64))))
                out.append(g * (self.clipnorm / max(norm, self.clipnorm)) if norm > 0 else g)
            return out
        if self.global_clipnorm:
            norm = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
            if norm > self.global_clipnorm:
                return [g * (self.global_clipnorm / norm) for g in grads]
            return grads
        if self.clipvalue:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def _update(self, slots, g, v, lr, s1, s2):
        """The NumPy reference of the step on one variable (or chunk): the
        state in ``slots``, two scratch arrays like v."""
        raise NotImplementedError

    def _c_step(self, lr, dtype):
        """(kind, constants) of src/train/optimizer_step.c's version of _update, or
        None where there is none (the NumPy _update runs)."""
        return None

    def get_config(self):
        lr = self._learning_rate
        return dict(name=self.name, learning_rate=lr if not isinstance(
            lr, LearningRateSchedule) else lr.get_config(), weight_decay=self.weight_decay,
            clipnorm=self.clipnorm, clipvalue=self.clipvalue,
            global_clipnorm=self.global_clipnorm)

    def __repr__(self):
        return f"<{type(self).__name__} learning_rate={self._learning_rate!r}, " \
               f"iterations={self.iterations}>"


class SGD(Optimizer):
    """Keras's ``SGD``: with ``momentum`` m, ``v = m * v - lr * g`` then
    ``w += v`` (``nesterov``: ``w += m * v - lr * g``); without, ``w -= lr * g``."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name="SGD", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         name, **kwargs)
        if isinstance(momentum, (bool, np.bool_)) or not isinstance(momentum, numbers.Real) \
                or not 0 <= momentum <= 1:
            raise ValueError("`momentum` must be a float between [0, 1].")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self._slot_names = ("momentum",) if self.momentum != 0 else ()

    def _update(self, slots, g, v, lr, s1, s2):
        t = v.dtype.type
        if self.momentum == 0:
            np.multiply(g, t(lr), out=s1)
            v -= s1
            return
        m = slots["momentum"]
        m *= t(self.momentum)
        np.multiply(g, t(lr), out=s1)
        m -= s1
        if self.nesterov:
            np.multiply(m, t(self.momentum), out=s2)
            s2 -= s1
            v += s2
        else:
            v += m

    def _c_step(self, lr, dtype):
        return "sgd", dict(lr=float(lr), momentum=self.momentum, nesterov=self.nesterov)

    def get_config(self):
        return dict(super().get_config(), momentum=self.momentum, nesterov=self.nesterov)


class Adam(Optimizer):
    """Keras's ``Adam``: ``m += (g - m)(1 - beta_1)``, ``v += (g^2 - v)(1 - beta_2)``,
    ``w -= lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)``
    with ``t`` = iterations + 1; ``amsgrad`` uses the running maximum of v."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name="adam", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         name, **kwargs)
        for n, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if isinstance(b, (bool, np.bool_)) or not isinstance(b, numbers.Real) or \
                    not 0 <= b < 1:
                raise ValueError(f"`{n}` must be a number in [0, 1). Received: {n}={b!r}")
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = _positive_number(epsilon, "epsilon", allow_zero=True)
        self.amsgrad = bool(amsgrad)
        self._slot_names = ("momentum", "velocity") + (("velocity_hat",) if amsgrad else ())

    def _alpha(self, lr, t):
        step = self.iterations + 1
        return t(lr) * np.sqrt(1 - t(self.beta_2) ** t(step)) / (1 - t(self.beta_1) ** t(step))

    def _c_step(self, lr, dtype):
        return "adam", dict(lr=float(self._alpha(lr, dtype.type)), beta_1c=1 - self.beta_1,
                            beta_2c=1 - self.beta_2, epsilon=self.epsilon)

    def _update(self, slots, g, v, lr, s1, s2):
        t = v.dtype.type
        alpha = self._alpha(lr, t)
        m, vel = slots["momentum"], slots["velocity"]
        np.subtract(g, m, out=s1)
        s1 *= t(1 - self.beta_1)
        m += s1
        np.multiply(g, g, out=s1)
        s1 -= vel
        s1 *= t(1 - self.beta_2)
        vel += s1
        if self.amsgrad:
            vhat = slots["velocity_hat"]
            np.maximum(vhat, vel, out=vhat)
            vel = vhat
        np.sqrt(vel, out=s1)
        s1 += t(self.epsilon)
        np.multiply(m, alpha, out=s2)
        s2 /= s1
        v -= s2

    def get_config(self):
        return dict(super().get_config(), beta_1=self.beta_1, beta_2=self.beta_2,
                    epsilon=self.epsilon, amsgrad=self.amsgrad)


class AdamW(Adam):
    """Keras's ``AdamW``: Adam with decoupled weight decay (default 0.004),
    ``w *= 1 - weight_decay * lr`` before each Adam step."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name="adamw", **kwargs):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: "
                             "weight_decay=None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay,
                         clipnorm, clipvalue, global_clipnorm, name, **kwargs)


class RMSprop(Optimizer):
    """Keras's ``RMSprop`` (the default of ``compile``): ``v = rho v + (1 - rho) g^2``,
    increment ``lr * g / sqrt(v + epsilon)`` (``centered``: ``v - a^2`` with
    ``a`` the running mean of g), through a momentum buffer when momentum > 0."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name="rmsprop", **kwargs):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         name, **kwargs)
        self.rho, self.momentum = float(rho), float(momentum)
        self.epsilon = _positive_number(epsilon, "epsilon", allow_zero=True)
        self.centered = bool(centered)
        self._slot_names = ("velocity",) + (("momentum",) if self.momentum > 0 else ()) + \
            (("average_gradient",) if self.centered else ())

    def _update(self, slots, g, v, lr, s1, s2):
        t = v.dtype.type
        vel = slots["velocity"]
        vel *= t(self.rho)
        np.multiply(g, g, out=s1)
        s1 *= t(1 - self.rho)
        vel += s1
        if self.centered:
            avg = slots["average_gradient"]
            avg *= t(self.rho)
            np.multiply(g, t(1 - self.rho), out=s1)
            avg += s1
            np.multiply(avg, avg, out=s1)
            np.subtract(vel, s1, out=s1)
        else:
            s1[...] = vel
        s1 += t(self.epsilon)
        np.sqrt(s1, out=s1)
        np.multiply(g, t(lr), out=s2)
        s2 /= s1
        if self.momentum > 0:
            m = slots["momentum"]
            m *= t(self.momentum)
            m += s2
            v -= m
        else:
            v -= s2

    def get_config(self):
        return dict(super().get_config(), rho=self.rho, momentum=self.momentum,
                    epsilon=self.epsilon, centered=self.centered)


_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def get(identifier):
    """An optimizer from a name (``"sgd"``, ``"adam"``, ``"adamw"``,
    ``"rmsprop"``, Keras defaults) or an Optimizer instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}; "
                             f"expected one of {', '.join(sorted(_BY_NAME))} or a "
                             "fastconv.optimizers.Optimizer")
        return cls()
    raise TypeError(f"optimizer must be a name or a fastconv.optimizers.Optimizer. "
                    f"Received: {identifier!r}")
