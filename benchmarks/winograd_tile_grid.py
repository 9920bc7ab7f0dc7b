"""F(2x2, 3x3) against F(4x4, 3x3) (and the fused direct path) over a grid of
3x3 layers (C -> C channels, H x H, padding 1, relu), to set and check the
tile-size rule of fc_winograd_choose_tile (src/conv/winograd/winograd.c; benchmarks/NOTES.md).

All weights pre-packed; the variants take turns every round (interleaved, one
process); medians of the rounds.  "plan" is the tile size the rule picks for the
geometry (pack_weight(..., tile="auto", input_shape=...)), "best" the faster
one in this run; "4/2" is F(4x4)'s time over F(2x2)'s (> 1: F(2x2) faster).

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python benchmarks/winograd_tile_grid.py \
        [--threads 1,2] [--rounds 9] [NxCxH ...]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastconv  # noqa: E402
from bench_winograd import interleaved  # noqa: E402

GRID = ["1x64x7", "1x64x14", "1x64x28", "1x64x56", "1x128x7", "1x128x14", "1x128x28",
        "1x128x56", "1x256x7", "1x256x14", "1x256x28", "1x512x7", "1x512x14",
        "4x256x14", "8x256x14", "2x512x7", "4x512x7", "8x512x7", "8x128x28"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shapes", nargs="*", default=GRID)
    ap.add_argument("--threads", default="1")
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'NxCxH':10s} {'thr':>3s} {'tiles4':>6s} {'fused':>8s} {'F4':>8s} {'F2':>8s} "
          f"{'4/2':>5s} {'fus/F4':>6s} {'fus/F2':>6s} {'best':>4s} {'plan':>4s}")
    for threads in [int(t) for t in args.threads.split(",")]:
        fastconv.set_num_threads(threads)
        for s in args.shapes:
            n, c, h = map(int, s.split("x"))
            x = rng.standard_normal((n, c, h, h)).astype(np.float32)
            w = (rng.standard_normal((c, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
            b = rng.standard_normal(c).astype(np.float32)
            pf = fastconv.pack_weight(w)
            pw = {t: fastconv.pack_weight(w, method="winograd", tile=t) for t in (4, 2)}
            plan = fastconv.pack_weight(w, method="winograd", input_shape=x.shape).tile
            y = np.empty_like(x)
            fns = {"fused": lambda: fastconv.conv2d(x, pf, b, padding=1, activation="relu",
                                                    out=y)}
            for t in (4, 2):
                fns[t] = (lambda t=t: fastconv.conv2d(x, pw[t], b, padding=1, activation="relu",
                                                      method="winograd", out=y))
            r = interleaved(fns, args.rounds)
            best = 2 if r[2] < r[4] else 4
            tiles4 = n * (-(-h // 4)) ** 2
            print(f"{s:10s} {threads:3d} {tiles4:6d} {r['fused'] * 1e3:8.3f} {r[4] * 1e3:8.3f} "
                  f"{r[2] * 1e3:8.3f} {r[4] / r[2]:5.2f} {r['fused'] / r[4]:6.2f} "
                  f"{r['fused'] / r[2]:6.2f} {best:4d} {plan:4d}", flush=True)


if __name__ == "__main__":
    main()
