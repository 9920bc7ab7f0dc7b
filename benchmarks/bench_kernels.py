"""Quick kernel timings: fastconv's direct kernels (pre-packed weights, relu
fused) per layer, 1 and 2 threads, vs torch conv2d+relu.  Medians of rounds.

    python benchmarks/bench_kernels.py [layer ...] [--threads 1,2] [--torch] [--f64]
"""
import argparse
import time

import numpy as np

import fastconv
from fastconv import _core
from fastconv.conv import _plan

LAYERS = {  # n, cin, cout, h, w, k, stride, pad
    "seed": (1, 3, 3, 30, 30, 3, 1, 0),
    "resnet_conv1": (1, 3, 64, 224, 224, 7, 2, 3),
    "resnet_3x3_64": (1, 64, 64, 56, 56, 3, 1, 1),
    "resnet_3x3_128": (1, 128, 128, 28, 28, 3, 1, 1),
    "resnet_3x3_256": (1, 256, 256, 14, 14, 3, 1, 1),
    "resnet_3x3_512": (1, 512, 512, 7, 7, 3, 1, 1),
    "resnet_1x1_down": (1, 256, 512, 14, 14, 1, 2, 0),
    "vgg_3x3_64_224": (1, 64, 64, 224, 224, 3, 1, 1),
    "mobilenet_pw": (1, 32, 64, 112, 112, 1, 1, 0),
    "batch8_3x3_128": (8, 128, 128, 28, 28, 3, 1, 1),
}
PEAK1 = 98.0  # GFLOP/s float32 on one core (measured), x2 for two


def timeit(fn, min_time=0.3, rounds=15):
    """Best of `rounds` (the machine is shared: the minimum is the least disturbed run)."""
    fn()
    t0 = time.perf_counter(); fn(); one = time.perf_counter() - t0
    reps = max(1, int(min_time / rounds / max(one, 1e-6)))
    ts = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        ts.append((time.perf_counter() - t0) / reps)
    return float(np.min(ts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("layers", nargs="*")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--torch", action="store_true")
    ap.add_argument("--ort", action="store_true")
    ap.add_argument("--f64", action="store_true")
    ap.add_argument("--api", action="store_true", help="time fastconv.conv2d (raw weights) too")
    a = ap.parse_args()
    dt = np.float64 if a.f64 else np.float32
    rng = np.random.default_rng(0)
    print(_core.config())
    for name in a.layers or LAYERS:
        n, ci, co, h, w, k, s, p = LAYERS[name]
        x = rng.standard_normal((n, ci, h, w)).astype(dt)
        wt = rng.standard_normal((co, ci, k, k)).astype(dt)
        b = rng.standard_normal(co).astype(dt)
        pl = _plan(x, wt, b, s, p, 1, 1, "relu", None, "NCHW")
        flops = 2.0 * np.prod(pl.shape_out) * ci * k * k
        y = np.empty(pl.shape_out, dt)
        pw = _core.PackedWeight(wt, 1)
        line = f"{name:16s} {flops / 1e6:8.1f} MFLOP"
        for th in [int(t) for t in a.threads.split(",")]:
            _core.set_num_threads(th)
            t = timeit(lambda: _core.conv2d_packed(pl.desc, x, pw, b, y, pl.post._spec,
                                                   pl.pre._spec, None))
            g = flops / t / 1e9
            line += f" | {th}t {t * 1e3:7.3f} ms {g:6.1f} GF/s {100 * g / (PEAK1 * th):5.1f}%"
            if a.api:
                t2 = timeit(lambda: fastconv.conv2d(x, wt, b, s, p, activation="relu", out=y))
                line += f" api {t2 * 1e3:7.3f}"
            from fastconv import bench as B
            if a.torch:
                run, _ = B.torch_runner(B.LAYER_BY_ID[name], "relu", x, wt, b, th)
                tt = timeit(run)
                line += f" torch {tt * 1e3:7.3f} ({tt / t:4.2f}x)"
            if a.ort and not a.f64:
                run, _ = B.onnxruntime_runner(B.LAYER_BY_ID[name], "relu", x, wt, b, th)
                tt = timeit(run)
                line += f" ort {tt * 1e3:7.3f} ({tt / t:4.2f}x)"
        print(line, flush=True)
    _core.set_num_threads(2)


if __name__ == "__main__":
    main()
