"""Why the activation exists: the linearity demonstration of the founding notes.

``python -m fastconv demo`` (or ``python examples/linearity_demo.py``):

1. Two stacked convolutions without an activation are one convolution: with
   the composed kernel (W2 convolved with W1, 3x3 (*) 3x3 -> 5x5) and the
   composed bias, a single ``conv2d`` gives the same numbers.
2. With a ReLU between them they are not: the composed kernel is off by O(1),
   and even the best 5x5 kernel fitted by least squares cannot reproduce them.
3. Pre-activation (``conv(relu(x))``, ``pre_activation="relu"``) vs
   post-activation (``relu(conv(x))``, ``activation="relu"``) on the same data.

Uses the seed layer: a 30x30x3 input with 3x3x3 filters, valid padding.
"""
from __future__ import annotations

import sys

import numpy as np

import fastconv

from .bench import reference_conv2d

MATCH_TOL = 1e-5  # relative to max |value|, float32


def compose_kernels(w1, b1, w2, b2):
    """Kernel and bias of conv(conv(x, w1, b1), w2, b2) as a single convolution.

    With cross-correlation (torch semantics) corr(corr(x, a), b) = corr(x, a (*) b)
    where (*) is the full 2-D convolution, so
    W[o, i] = sum_m fullconv(w2[o, m], w1[m, i]) (size K1 + K2 - 1) and
    B[o] = b2[o] + sum_m b1[m] * sum(w2[o, m]).
    """
    w1 = w1.astype(np.float64)
    w2 = w2.astype(np.float64)
    o, m_, k2h, k2w = w2.shape
    m2, i_, k1h, k1w = w1.shape
    assert m_ == m2
    w = np.zeros((o, i_, k1h + k2h - 1, k1w + k2w - 1))
    for u in range(k2h):
        for v in range(k2w):
            # tap (u, v) of w2 shifts w1 by (u, v)
            w[:, :, u:u + k1h, v:v + k1w] += np.einsum("om,mihw->oihw", w2[:, :, u, v], w1)
    b = b2.astype(np.float64) + np.einsum("om,m->o", w2.sum(axis=(2, 3)), b1)
    return w.astype(np.float32), b.astype(np.float32)


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / max(np.max(np.abs(b)), 1e-30))


def _best_linear_fit(x, y, k):
    """Relative residual of the best single k x k convolution (least squares) mapping x to y."""
    n, c, h, w = x.shape
    ho, wo = y.shape[2:]
    cols = np.stack([x[0, :, i:i + ho, j:j + wo] for i in range(k) for j in range(k)], axis=1)
    a = cols.reshape(c * k * k, ho * wo).T.astype(np.float64)
    a = np.hstack([a, np.ones((a.shape[0], 1))])
    target = y[0].reshape(y.shape[1], -1).T.astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, target, rcond=None)
    return _rel(a @ coef, target)


def _row(name, v, n=6):
    return f"    {name:<40}" + " ".join(f"{float(t):+.4f}" for t in np.ravel(v)[:n])


def main(seed: int = 0, file=None) -> int:
    out = file or sys.stdout
    p = lambda *a: print(*a, file=out)  # noqa: E731
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 3, 30, 30), dtype=np.float32)
    w1 = rng.standard_normal((3, 3, 3, 3), dtype=np.float32) / np.float32(np.sqrt(27))
    w2 = rng.standard_normal((3, 3, 3, 3), dtype=np.float32) / np.float32(np.sqrt(27))
    b1 = 0.1 * rng.standard_normal(3, dtype=np.float32)
    b2 = 0.1 * rng.standard_normal(3, dtype=np.float32)
    ok = True

    p("fastconv linearity demo - input 30x30x3, two layers of 3x3x3 filters (3 each), "
      "no padding")
    p("")
    p("1. Two stacked convolutions, no activation, vs ONE convolution with the composed "
      "5x5 kernel")
    y_lin = fastconv.conv2d(fastconv.conv2d(x, w1, b1), w2, b2)
    wc, bc = compose_kernels(w1, b1, w2, b2)
    z = fastconv.conv2d(x, wc, bc)
    err_lin = _rel(y_lin, z.astype(np.float64))
    p(_row("conv(conv(x, W1), W2)[0,0,0,:6]", y_lin[0, 0, 0]))
    p(_row("conv(x, W2 (*) W1)[0,0,0,:6]", z[0, 0, 0]))
    verdict = "EQUAL" if err_lin < MATCH_TOL else "DIFFERENT (unexpected!)"
    ok &= err_lin < MATCH_TOL
    p(f"    shapes {y_lin.shape} vs {z.shape}; max |difference| / max |value| = {err_lin:.1e}"
      f" -> {verdict}")
    p("    Without an activation, depth buys nothing: the two layers are a single linear map.")
    p("")

    p("2. The same two convolutions with a ReLU between them")
    y_relu = fastconv.conv2d(fastconv.conv2d(x, w1, b1, activation="relu"), w2, b2)
    y_relu_pre = fastconv.conv2d(fastconv.conv2d(x, w1, b1), w2, b2, pre_activation="relu")
    err_relu = _rel(y_relu, z.astype(np.float64))
    fit = _best_linear_fit(x, y_relu, 5)
    fit_lin = _best_linear_fit(x, y_lin, 5)
    p(_row("conv(relu(conv(x, W1)), W2)[0,0,0,:6]", y_relu[0, 0, 0]))
    p(_row("conv(x, W2 (*) W1)[0,0,0,:6]", z[0, 0, 0]))
    verdict = "DIFFERENT" if err_relu > 1e-2 else "EQUAL (unexpected!)"
    ok &= err_relu > 1e-2
    p(f"    max |difference| / max |value| = {err_relu:.2f} -> {verdict}")
    p(f"    best single 5x5 convolution fitted by least squares: relative residual "
      f"{fit:.2f} with the ReLU, {fit_lin:.1e} without it")
    ok &= fit > 1e-2 and fit_lin < 1e-3
    same = _rel(y_relu_pre, y_relu.astype(np.float64))
    p(f"    (the ReLU fused as layer 1's activation= or as layer 2's pre_activation= gives the "
      f"same result: {same:.1e})")
    ok &= same < MATCH_TOL
    p("    The nonlinearity is what makes a second layer worth having.")
    p("")

    p("3. Pre-activation vs post-activation on the same data (W1, b1)")
    post = fastconv.conv2d(x, w1, b1, activation="relu")
    pre = fastconv.conv2d(x, w1, b1, pre_activation="relu")
    ref_post = np.maximum(reference_conv2d(x, w1, b1), 0)
    ref_pre = reference_conv2d(np.maximum(x, 0), w1, b1)
    e_post, e_pre = _rel(post, ref_post), _rel(pre, ref_pre)
    ok &= e_post < MATCH_TOL and e_pre < MATCH_TOL
    p(_row("post: relu(conv(x))  activation=", post[0, 0, 0]))
    p(_row("pre:  conv(relu(x))  pre_activation=", pre[0, 0, 0]))
    p(f"    post: min {post.min():+.3f} ({np.mean(post == 0):.0%} zeros), matches NumPy "
      f"reference to {e_post:.1e}")
    p(f"    pre:  min {pre.min():+.3f} ({np.mean(pre == 0):.0%} zeros), matches NumPy "
      f"reference to {e_pre:.1e}")
    p(f"    max |post - pre| = {np.max(np.abs(post - pre)):.3f}: where the activation sits "
      "changes the function.")
    p("")
    p("All demonstrations behaved as expected." if ok else "UNEXPECTED RESULT - see above.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
