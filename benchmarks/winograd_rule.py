"""The measurements behind fast math's Winograd rule (fastconv.conv.winograd_pays).

For 3x3, stride 1, padding 1 layers at batch 1 (cin = cout = C, H = W = S,
plus the batch and channel-count cases the rule's terms depend on): the
fused direct path against the Winograd path, weights packed once
(``pack_weight(w)`` / ``pack_weight(w, method="winograd")``) and plain
(packed / transformed inside every call).  The four variants take turns
every round in one process; medians in ms and the ratios of this run, with
the number of output tiles (N * ceil(Ho/4) * ceil(Wo/4)) the rule reads and
what the rule decides for each.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python benchmarks/winograd_rule.py \
        [--threads 1] [--rounds 7] [--quick] [N,C,S ...]

N,C,S: measure these layers (batch N, C channels in and out, S x S) instead.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastconv  # noqa: E402
from fastconv.conv import winograd_pays  # noqa: E402
from bench_winograd import interleaved  # noqa: E402

#: (N, C_in, C_out, S): the grid; the image sizes of ResNet/VGG stages, and
#: narrow layers where the transforms weigh more than the products
GRID = [(1, c, c, s) for c in (16, 32, 64, 128, 256, 512) for s in (7, 14, 28, 56)
        if c * c * s * s <= 256 * 256 * 28 * 28] + \
       [(1, 8, 8, 56), (1, 3, 64, 56), (1, 64, 64, 112), (4, 256, 256, 14), (8, 512, 512, 7),
        (4, 512, 512, 7), (2, 256, 256, 14)]
QUICK = [(1, 64, 64, 56), (1, 128, 128, 28), (1, 256, 256, 14), (1, 512, 512, 7)]


def tiles(n, s):
    return n * (-(-s // 4)) ** 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("layers", nargs="*", help="N,C,S")
    args = ap.parse_args()
    grid = QUICK if args.quick else GRID
    if args.layers:
        grid = [(n, c, c, s) for n, c, s in (map(int, v.split(",")) for v in args.layers)]
    fastconv.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"threads {args.threads}; rounds {args.rounds}; relu; medians in ms; load "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'N':>2s} {'Cin':>4s} {'Cout':>4s} {'S':>4s} {'tiles':>6s} {'fused':>8s} "
          f"{'wino':>8s} {'raw':>8s} {'wino raw':>8s} {'f/w pk':>7s} {'f/w raw':>7s} "
          f"{'rule pk':>7s} {'rule raw':>8s}")
    for n, ci, co, s in grid:
        x = rng.standard_normal((n, ci, s, s)).astype(np.float32)
        w = (rng.standard_normal((co, ci, 3, 3)) / np.sqrt(9 * ci)).astype(np.float32)
        b = rng.standard_normal(co).astype(np.float32)
        pf = fastconv.pack_weight(w)
        pw = fastconv.pack_weight(w, method="winograd")
        y = np.empty((n, co, s, s), np.float32)
        c2 = fastconv.conv2d
        fns = {
            "fused": lambda: c2(x, pf, b, padding=1, activation="relu", out=y),
            "wino": lambda: c2(x, pw, b, padding=1, activation="relu", method="winograd",
                               out=y),
            "raw": lambda: c2(x, w, b, padding=1, activation="relu", method="fused", out=y),
            "wino_raw": lambda: c2(x, w, b, padding=1, activation="relu", method="winograd",
                                   out=y),
        }
        t = interleaved(fns, args.rounds, min_time=0.03)
        kw = dict(x_shape=x.shape, w_shape=w.shape, padding=1)
        print(f"{n:2d} {ci:4d} {co:4d} {s:4d} {tiles(n, s):6d} {t['fused'] * 1e3:8.3f} "
              f"{t['wino'] * 1e3:8.3f} {t['raw'] * 1e3:8.3f} {t['wino_raw'] * 1e3:8.3f} "
              f"{t['fused'] / t['wino']:7.2f} {t['raw'] / t['wino_raw']:7.2f} "
              f"{'wino' if winograd_pays(**kw, packed=True) else 'direct':>7s} "
              f"{'wino' if winograd_pays(**kw, packed=False) else 'direct':>8s}", flush=True)


if __name__ == "__main__":
    main()
