"""The founding question answered with training: does a CNN need activations?

``fastconv demo --train`` (or ``python examples/train_activation_demo.py``)
trains one small CNN three ways with fastconv's own ``fit``:

* ``none``:  Conv2D -> Conv2D -> AveragePooling2D -> Flatten -> Dense -> softmax,
  no activation anywhere: every layer is linear, so the whole network is one
  linear map followed by the softmax, i.e. a (constrained) logistic regression;
* ``relu``:  the same with ``activation="relu"`` on both convolutions;
* ``pre-act``: the ResNet v2 order, the ReLU before the second convolution
  (``pre_activation="relu"``, fused) and before the classifier,

on (a) scikit-learn's digits (8x8 images, 10 classes; shipped with
scikit-learn, nothing is downloaded) and (b) a synthetic task built so that no
linear model beats chance: 12x12 images whose top half has brightness ``t``
and bottom half ``b`` (plus noise), labelled ``(t > 0) XOR (b > 0)``.

It prints the test accuracy per epoch, writes the learning curves as a PNG,
folds the trained linear CNN into ONE linear map (pixels -> logits, read off
by pushing the unit images through it) and checks it predicts exactly what
the CNN predicts, next to a logistic regression on the same pixels; and it
times an epoch against the same network in torch.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

VARIANTS = ("none", "relu", "pre-act")


def digits_data(seed=0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]          # (n, 8, 8, 1)
    return train_test_split(x, d.target.astype(np.int64), test_size=0.3, random_state=seed,
                            stratify=d.target)


def xor_brightness_data(n=2000, size=12, noise=1.0, seed=0):
    """Top-half brightness t, bottom-half b ~ N(0, 1), pixel noise; label
    (t > 0) XOR (b > 0).  Any linear function of the pixels is a linear
    function of (t, b) plus noise, and no line separates the XOR quadrants."""
    rng = np.random.default_rng(seed)
    t, b = rng.standard_normal(n), rng.standard_normal(n)
    x = rng.standard_normal((n, size, size, 1)) * noise
    x[:, :size // 2] += t[:, None, None, None]
    x[:, size // 2:] += b[:, None, None, None]
    y = ((t > 0) ^ (b > 0)).astype(np.int64)
    k = int(n * 0.7)
    x = x.astype(np.float32)
    return x[:k], x[k:], y[:k], y[k:]


def build(variant, n_classes, input_shape, filters=8):
    from fastconv import layers as L
    act = None if variant == "none" else "relu"
    if variant == "pre-act":
        convs = [L.Conv2D(filters, 3, padding="same"),
                 L.Conv2D(filters, 3, padding="same", pre_activation="relu"),
                 L.AveragePooling2D(2), L.Activation("relu")]
    else:
        convs = [L.Conv2D(filters, 3, padding="same", activation=act),
                 L.Conv2D(filters, 3, padding="same", activation=act),
                 L.AveragePooling2D(2)]
    return L.Sequential(convs + [L.Flatten(), L.Dense(n_classes), L.Activation("softmax")],
                        input_shape=input_shape)


class _TestAccuracy:
    """Records the test accuracy and the training seconds of each epoch (the
    time up to the end of the epoch's last step, before this evaluation)."""

    def __new__(cls, x, y):
        from fastconv.callbacks import Callback

        class Rec(Callback):
            def __init__(self):
                super().__init__()
                self.acc, self.secs = [], []

            def on_epoch_begin(self, epoch, logs=None):
                self._t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.secs.append(time.perf_counter() - self._t0)
                p = self.model.predict(x, batch_size=256)
                self.acc.append(float(np.mean(p.argmax(-1) == y)))
        return Rec()


def fold_linear(model, input_shape):
    """The trained activation-free CNN as one affine map: logits = X @ A + c
    with X the flattened pixels.  The logits are the network without its final
    softmax; c = f(0) and row i of A is f(e_i) - c."""
    from fastconv import layers as L
    logits = L.Sequential(model.layers[:-1])
    d = int(np.prod(input_shape))
    c = logits(np.zeros((1,) + tuple(input_shape), np.float32)).astype(np.float64)[0]
    a = logits(np.eye(d, dtype=np.float32).reshape((d,) + tuple(input_shape)))
    return a.astype(np.float64) - c, c, logits


def _torch_epoch_seconds(x, y, n_classes, batch_size, filters, lr, threads, rounds=2):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    nn = torch.nn
    c = x.shape[-1]
    h, w = x.shape[1:3]
    net = nn.Sequential(nn.Conv2d(c, filters, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(filters, filters, 3, padding=1), nn.ReLU(),
                        nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(filters * (h // 2) * (w // 2), n_classes))
    opt = torch.optim.Adam(net.parameters(), lr=lr, eps=1e-7)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(y)
    times = []
    for _ in range(rounds):
        perm = torch.randperm(len(xt))
        t0 = time.perf_counter()
        for s in range(0, len(xt), batch_size):
            idx = perm[s:s + batch_size]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run_task(name, data, epochs, batch_size, lr, seed, p, filters=8):
    from fastconv import layers as L
    from fastconv import optimizers as O
    from sklearn.linear_model import LogisticRegression
    x_tr, x_te, y_tr, y_te = data
    n_classes = int(max(y_tr.max(), y_te.max()) + 1)
    shape = x_tr.shape[1:]
    curves, models, secs = {}, {}, {}
    for variant in VARIANTS:
        L.set_random_seed(seed)
        model = build(variant, n_classes, shape, filters)
        model.compile(O.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
        rec = _TestAccuracy(x_te, y_te)
        model.fit(x_tr, y_tr, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[rec])
        secs[variant] = float(np.median(rec.secs)) if rec.secs else float("nan")
        curves[variant], models[variant] = rec.acc, model
    p(f"\n{name}: {len(x_tr)} training / {len(x_te)} test images of {shape}, "
      f"{n_classes} classes; Adam({lr}), batch {batch_size}")
    p("  test accuracy per epoch")
    p("  epoch " + "".join(f"{v:>10}" for v in VARIANTS))
    for e in range(epochs):
        p(f"  {e + 1:5d} " + "".join(f"{curves[v][e]:10.3f}" for v in VARIANTS))
    # the linear CNN folded into one map
    a, c, logits = fold_linear(models["none"], shape)
    flat = x_te.reshape(len(x_te), -1).astype(np.float64)
    folded = flat @ a + c
    cnn = logits(x_te).astype(np.float64)
    same = int(np.sum(folded.argmax(-1) == cnn.argmax(-1)))
    rel = float(np.max(np.abs(folded - cnn)) / max(np.max(np.abs(cnn)), 1e-30))
    lr_model = LogisticRegression(max_iter=5000).fit(x_tr.reshape(len(x_tr), -1), y_tr)
    lr_acc = float(lr_model.score(flat, y_te))
    p(f"  the activation-free CNN ({models['none'].count_params()} parameters) folded into one "
      f"linear map ({a.shape[0]} pixels -> {a.shape[1]} logits, {a.size + c.size} numbers):")
    p(f"    same prediction on {same}/{len(x_te)} test images; max |logit difference| / "
      f"max |logit| = {rel:.1e}")
    p(f"    accuracy: linear CNN {curves['none'][-1]:.3f}, logistic regression on the pixels "
      f"{lr_acc:.3f}, ReLU CNN {curves['relu'][-1]:.3f}, pre-activation CNN "
      f"{curves['pre-act'][-1]:.3f}")
    ok = same == len(x_te) and rel < 1e-4
    return dict(curves=curves, secs=secs, logreg=lr_acc, folded_same=same, folded_rel=rel,
                ok=ok, n_test=len(x_te))


def main(epochs=8, seed=0, out="fastconv-train-demo", torch_timing=True, file=None):
    out_stream = file or sys.stdout
    p = lambda *a: print(*a, file=out_stream)  # noqa: E731
    try:
        import sklearn  # noqa: F401
    except ImportError:
        p("the training demo needs scikit-learn (pip install 'fastconv[train]')")
        return 2
    import fastconv
    if not hasattr(fastconv, "conv2d_backward"):
        p("the training demo needs fastconv.conv2d_backward (convolution gradients), which "
          "this build of fastconv lacks")
        return 2
    from fastconv.config import get_num_threads
    threads = get_num_threads()
    p("fastconv training demo: does a CNN need activations?  (the same CNN without "
      "activations, with ReLU, and pre-activation)")
    tasks = {"digits (scikit-learn)": (digits_data(seed), 32, 0.01),
             "XOR of brightness (synthetic)": (xor_brightness_data(seed=seed), 32, 0.01)}
    results = {}
    for name, (data, bs, lr) in tasks.items():
        results[name] = run_task(name, data, epochs, bs, lr, seed, p)
    if torch_timing:
        p(f"\nseconds per training epoch, ReLU CNN, Adam, {threads} thread(s) (medians: "
          "fastconv over its epochs, torch over 2)")
        for name, (data, bs, lr) in tasks.items():
            ts = _torch_epoch_seconds(data[0], data[2], int(data[2].max() + 1), bs, 8, lr,
                                      threads)
            fc = results[name]["secs"]["relu"]
            torch_s = "torch not installed" if ts is None else \
                f"torch {ts:.3f} s ({ts / fc:.2f}x fastconv's time)"
            p(f"  {name:<32} fastconv {fc:.3f} s   {torch_s}")
    png = _plot(results, out)
    if png:
        p(f"\nlearning curves: {png}")
    ok = all(r["ok"] for r in results.values())
    xor = results["XOR of brightness (synthetic)"]
    p("\nWithout activations the CNN is one linear map: it learns what a logistic regression "
      "learns, and on the XOR task no linear map beats chance; the ReLU makes the depth count.")
    if xor["curves"]["relu"][-1] < xor["curves"]["none"][-1] + 0.2:
        p("(unexpected: the ReLU CNN did not clearly beat the linear one on the XOR task)")
    return 0 if ok else 1


def _plot(results, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    os.makedirs(out, exist_ok=True)
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4))
    for ax, (name, r) in zip(np.atleast_1d(axes), results.items()):
        for v in VARIANTS:
            acc = r["curves"][v]
            ax.plot(range(1, len(acc) + 1), acc, marker="o", label=f"CNN, {v}")
        ax.axhline(r["logreg"], color="gray", ls="--", label="logistic regression")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    path = os.path.join(out, "train_activation_demo.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())
