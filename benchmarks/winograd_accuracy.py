"""The Winograd path's error against a float64 reference, next to the direct path's,
for both tile sizes (F(4x4, 3x3) "wino4" and F(2x2, 3x3) "wino2").

For each case (random normal data; inputs with a large mean; weights of mixed
magnitude, 10^U(-3, 3)) and channel count, prints the largest error of each
method in two measures: relative to max |y_ref| and relative to the per-element
bound scale |y| + (|x| * |w|) + |b| of tests/reference.py (the measure the
tests' tolerance is in), both in units of the dtype's epsilon.

    PYTHONPATH=. python benchmarks/winograd_accuracy.py [--f64]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import fastconv  # noqa: E402
from reference import conv2d_act_ref  # noqa: E402

CASES = ("normal", "large_mean", "mixed_weights")


def data(rng, case, n, c, h, dtype):
    x = rng.standard_normal((n, c, h, h))
    w = rng.standard_normal((c, c, 3, 3)) / np.sqrt(9 * c)
    b = rng.standard_normal(c)
    if case == "large_mean":
        x = x + 100.0
    elif case == "mixed_weights":
        w = w * 10.0 ** rng.uniform(-3, 3, w.shape)
    return x.astype(dtype), w.astype(dtype), b.astype(dtype)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--f64", action="store_true")
    args = ap.parse_args()
    dtype = np.float64 if args.f64 else np.float32
    eps = np.finfo(dtype).eps
    rng = np.random.default_rng(1)
    print(f"{dtype.__name__}, eps {eps:.3g}; errors in eps: max|err|/max|y| and "
          f"max(|err| / bound scale)")
    methods = ("fused", 4, 2)
    names = {"fused": "fused", 4: "wino4", 2: "wino2"}
    print(f"{'case':14s} {'C':>4s} " + "".join(f"{names[m] + '/max':>11s}" for m in methods)
          + "".join(f"{names[m] + '/bnd':>11s}" for m in methods))
    for case in CASES:
        for c, h in ((16, 20), (64, 28), (256, 14)):
            x, w, b = data(rng, case, 2, c, h, dtype)
            ref, scale = conv2d_act_ref(x, w, b, padding=1)
            out = {}
            for m in methods:
                wt = w if m == "fused" else fastconv.pack_weight(w, method="winograd", tile=m)
                y = fastconv.conv2d(x, wt, b, padding=1,
                                    method="fused" if m == "fused" else "winograd")
                err = np.abs(y.astype(np.float64) - ref)
                out[m] = (err.max() / np.abs(ref).max() / eps, (err / scale).max() / eps)
            print(f"{case:14s} {c:4d} " + "".join(f"{out[m][0]:11.1f}" for m in methods)
                  + "".join(f"{out[m][1]:11.2f}" for m in methods), flush=True)


if __name__ == "__main__":
    main()
