"""Pre-packed fused times of two source trees (each with its own in-place
build), in alternating child processes: a before/after check of a change that
must not change speed (issue 12's restructure).

    OPENBLAS_NUM_THREADS=1 python benchmarks/ab_trees.py BEFORE_TREE AFTER_TREE \
        [--repeats 5] [--threads 1,2] [--format NCHW|NHWC] [--layers id,id]

Per child: every suite layer (or --layers), float32, relu, method="fused",
weights from pack_weight, a preallocated out=, median of 9 rounds of >= 20 ms.
Printed: per layer and thread count, the median over the repeats of each tree's
median, and the median of the per-repeat after/before ratios.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def child(threads, fmt, only):
    import numpy as np

    import fastconv
    from fastconv.bench import LAYERS
    rng = np.random.default_rng(0)
    out = {}
    for L in [l for l in LAYERS if not only or l.id in only]:
        x = rng.standard_normal(L.x_shape).astype(np.float32)
        w = rng.standard_normal(L.w_shape).astype(np.float32)
        b = rng.standard_normal(L.cout).astype(np.float32)
        if fmt == "NHWC":
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
            w = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
            y = np.empty((L.n,) + L.out_hw + (L.cout,), np.float32)
        else:
            y = np.empty(L.out_shape, np.float32)
        pw = fastconv.pack_weight(w, groups=L.groups, data_format=fmt)
        kw = dict(L.conv_kwargs, activation="relu", method="fused", out=y, data_format=fmt)
        for th in threads:
            fastconv.set_num_threads(th)
            f = lambda: fastconv.conv2d(x, pw, b, **kw)   # noqa: E731
            f()
            t0 = time.perf_counter()
            f()
            n = max(1, int(0.02 / max(time.perf_counter() - t0, 1e-7)))
            ts = []
            for _ in range(9):
                t0 = time.perf_counter()
                for _ in range(n):
                    f()
                ts.append((time.perf_counter() - t0) / n)
            out[f"{L.id}/{th}"] = statistics.median(ts)
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--format", default="NCHW", choices=["NCHW", "NHWC"])
    ap.add_argument("--layers", default="")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split(",")]
    only = [s for s in a.layers.split(",") if s]
    if a.child:
        return child(threads, a.format, only)
    res = {"before": [], "after": []}
    for _ in range(a.repeats):
        for name, tree in (("before", a.before), ("after", a.after)):
            tree = os.path.abspath(tree)
            env = dict(os.environ, PYTHONPATH=tree, OPENBLAS_NUM_THREADS="1")
            cmd = [sys.executable, os.path.abspath(__file__), a.before, a.after, "--child",
                   "--threads", a.threads, "--format", a.format, "--layers", a.layers]
            o = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True,
                               check=True).stdout
            res[name].append(json.loads(o.strip().splitlines()[-1]))
    print(f"{a.format}, {a.repeats} alternating repeats; times in us (median of repeats)")
    print(f"{'layer/threads':24s} {'before':>9s} {'after':>9s} {'after/before':>12s}")
    for k in res["before"][0]:
        b = statistics.median(d[k] for d in res["before"])
        t = statistics.median(d[k] for d in res["after"])
        r = statistics.median(x[k] / y[k] for x, y in zip(res["after"], res["before"]))
        print(f"{k:24s} {b * 1e6:9.1f} {t * 1e6:9.1f} {r:12.3f}")


if __name__ == "__main__":
    main()
