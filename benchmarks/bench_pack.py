"""Weight packing speed against the machine's copy bandwidth, in one process.

`fastconv.pack_weight` (what a layer does once; it keeps a private OIHW copy
too) and, with --raw, the raw-weight conv2d call against the pre-packed one
are timed in interleaved rounds with `np.copyto` of a same-size array (warmed
buffers): the copy's GB/s is the yardstick, pack GB/s = weight bytes / time.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_pack.py \
        [--threads 1,2] [--rounds 31] [--f64]
"""
import argparse
import statistics
import time

import numpy as np

import fastconv

WEIGHTS = {   # name: (OIHW shape, groups)
    "512x512x3x3": ((512, 512, 3, 3), 1),
    "512x256x1x1": ((512, 256, 1, 1), 1),
}


def interleaved(fns, rounds, number):
    """Median seconds per call of each fn, the fns taking turns every round."""
    times = {k: [] for k in fns}
    for f in fns.values():
        f()
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(number):
                f()
            times[k].append((time.perf_counter() - t0) / number)
    return {k: statistics.median(v) for k, v in times.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--f64", action="store_true")
    a = ap.parse_args()
    dt = np.float64 if a.f64 else np.float32
    rng = np.random.default_rng(0)
    print(fastconv.config.config()["kernels"], np.dtype(dt).name)
    for name, (shape, groups) in WEIGHTS.items():
        w = rng.standard_normal(shape).astype(dt)
        dst = np.empty_like(w)
        np.copyto(dst, w)
        for th in [int(t) for t in a.threads.split(",")]:
            fastconv.set_num_threads(th)
            number = 3
            med = interleaved({"copy": lambda: np.copyto(dst, w),
                               "pack_weight": lambda: fastconv.pack_weight(w, groups)},
                              a.rounds, number)
            gb = w.nbytes / 1e9
            cp, pk = gb / med["copy"], gb / med["pack_weight"]
            print(f"{name} {w.nbytes / 1e6:.1f} MB, {th} thr: copy {cp:.1f} GB/s "
                  f"({med['copy'] * 1e6:.0f} us), pack_weight {pk:.2f} GB/s "
                  f"({med['pack_weight'] * 1e6:.0f} us) = {100 * pk / cp:.0f} % of copy")


if __name__ == "__main__":
    main()
