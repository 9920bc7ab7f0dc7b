"""OpenMP's wait policy and fastconv's multi-threaded calls, on a given machine.

    OMP_WAIT_POLICY=active  python benchmarks/wait_policy.py 16
    OMP_WAIT_POLICY=passive python benchmarks/wait_policy.py 16

Each parallel call ends in a join; a worker that is not running at that moment
(another process holds its core) makes the call wait for a scheduler tick.
Spinning workers (the default) wake fastest on a quiet machine; sleeping ones
(passive) degrade gracefully on a shared one.  Prints median and best GFLOP/s.
"""
import os
import sys
import time

import numpy as np

import fastconv

LAYERS = [  # (name, Cin, Cout, H, kernel, pad, groups)
    ("resnet_3x3_64", 64, 64, 56, 3, 1, 1),
    ("resnet_3x3_256", 256, 256, 14, 3, 1, 1),
    ("mobilenet_dw", 32, 32, 112, 3, 1, 32),
]


def main(threads, rounds=30):
    fastconv.set_num_threads(threads)
    policy = os.environ.get("OMP_WAIT_POLICY", "default")
    rng = np.random.default_rng(0)
    for name, ci, co, h, k, p, g in LAYERS:
        x = rng.standard_normal((1, ci, h, h), dtype=np.float32)
        w = fastconv.pack_weight(rng.standard_normal((co, ci // g, k, k), dtype=np.float32), g)
        out = np.empty((1, co, h, h), np.float32)
        fastconv.conv2d(x, w, None, 1, p, groups=g, activation="relu", out=out)
        ts = []
        for _ in range(rounds):
            t = time.perf_counter()
            fastconv.conv2d(x, w, None, 1, p, groups=g, activation="relu", out=out)
            ts.append(time.perf_counter() - t)
        flops = 2 * co * (ci // g) * k * k * h * h
        print(f"{policy:8s} threads={threads:2d} {name:15s} median {flops / np.median(ts) / 1e9:6.1f}"
              f"  best {flops / min(ts) / 1e9:6.1f} GFLOP/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else os.cpu_count())
