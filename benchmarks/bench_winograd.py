"""The Winograd path against the fused direct path (and ONNX Runtime), in one process.

Both fastconv paths get their weights packed once (pack_weight(...,
method="winograd", tile=T) for each tile size T of --tiles, and
pack_weight(...)), outside the timed calls, as a layer does; the ORT session (when onnxruntime is installed) runs the same
Conv + activation graph with its output bound to a preallocated array.  The
variants take turns every round; medians of the rounds and the ratios
measured in this run are printed, with the largest error of each path
against a float64 NumPy reference of the same data (relative to max |y|).
"auto" is the tile size pack_weight(..., tile="auto", input_shape=x.shape)
picks (the plan's choice, which plain-weight calls use too).

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_winograd.py \
        [--threads 1,2] [--rounds 15] [--activation relu] [--no-ort] \
        [--tiles 4,2] [--plain] [--tb N] [--budget BYTES] [layer id ...]

--plain: the fastconv paths get the plain weight array instead (packed, or
transformed, inside every call, at the plan's tile size: one winograd column).

--tb / --budget override the tile-block choice (tuning, see src/conv/winograd/winograd.c).
"""
import argparse
import statistics
import time

import numpy as np

import fastconv
from fastconv import _core
from fastconv.bench import LAYER_BY_ID, Unavailable, onnxruntime_runner

DEFAULT_LAYERS = ("resnet_3x3_64", "resnet_3x3_128", "resnet_3x3_256", "resnet_3x3_512",
                  "vgg_3x3_64_224", "batch8_3x3_128")


def interleaved(fns, rounds, min_time=0.05):
    """Median seconds per call of each fn, the fns taking turns every round;
    each round repeats a fn enough times to last about min_time."""
    number = {}
    for k, f in fns.items():
        f()
        t0 = time.perf_counter()
        f()
        number[k] = max(1, int(min_time / max(time.perf_counter() - t0, 1e-6)))
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(number[k]):
                f()
            times[k].append((time.perf_counter() - t0) / number[k])
    return {k: statistics.median(v) for k, v in times.items()}


def reference(x, w, b, pad, activation):
    """float64 conv2d (+ relu) by shifted matrix products (independent of fastconv)."""
    x64 = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, hp, wp = x64.shape
    o, _, kh, kw = w.shape
    ho, wo = hp - kh + 1, wp - kw + 1
    y = np.zeros((n, o, ho, wo))
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("oc,nchw->nohw", w[:, :, i, j].astype(np.float64),
                           x64[:, :, i:i + ho, j:j + wo], optimize=True)
    y += b.astype(np.float64)[None, :, None, None]
    return np.maximum(y, 0) if activation == "relu" else y


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("layers", nargs="*", default=list(DEFAULT_LAYERS))
    ap.add_argument("--threads", default="1")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--activation", default="relu")
    ap.add_argument("--no-ort", action="store_true")
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--tiles", default="4,2")
    ap.add_argument("--tb", type=int, default=0)
    ap.add_argument("--budget", type=int, default=0)
    args = ap.parse_args()
    act = None if args.activation in ("none", "linear") else args.activation
    _core._winograd_tune(args.tb, args.budget)
    tiles = ["plan"] if args.plain else [int(t) for t in args.tiles.split(",")]
    wn = {t: f"wino{t}" if t != "plan" else "winograd" for t in tiles}
    print(f"kernels: {_core.winograd_kernel_name()}; activation {act}; rounds {args.rounds}; "
          f"{'plain' if args.plain else 'packed'} weights; medians in ms; winoT = "
          f"F(TxT, 3x3); ratios fused/wino")
    print(f"{'layer':16s} {'thr':>3s} {'auto':>4s} {'fused':>8s} "
          + "".join(f"{wn[t]:>9s}" for t in tiles) + f" {'ort':>8s} "
          + "".join(f"{'f/' + wn[t]:>10s}" for t in tiles)
          + f" {'ort/best':>8s} " + "".join(f"{'wsMB' + str(t):>7s}" for t in tiles)
          + f" {'err fused':>9s} " + "".join(f"{'err' + str(t):>8s}" for t in tiles))
    rng = np.random.default_rng(0)
    for threads in [int(t) for t in args.threads.split(",")]:
        fastconv.set_num_threads(threads)
        for lid in args.layers:
            L = LAYER_BY_ID[lid]
            x = rng.standard_normal(L.x_shape).astype(np.float32)
            w = (rng.standard_normal((L.cout, L.cin // L.groups, L.k, L.k))
                 / np.sqrt(9 * L.cin)).astype(np.float32)
            b = rng.standard_normal(L.cout).astype(np.float32)
            kw = L.conv_kwargs
            pf = w if args.plain else fastconv.pack_weight(w, L.groups)
            auto = fastconv.pack_weight(w, L.groups, method="winograd", input_shape=x.shape,
                                        padding=kw.get("padding", 0)).tile
            pw = {t: w if t == "plan" else
                  fastconv.pack_weight(w, L.groups, method="winograd", tile=t) for t in tiles}
            yf = np.empty(L.out_shape, np.float32)
            yw = {t: np.empty(L.out_shape, np.float32) for t in tiles}
            fns = {"fused": lambda: fastconv.conv2d(x, pf, b, **kw, activation=act, out=yf)}
            for t in tiles:
                fns[wn[t]] = (lambda t=t: fastconv.conv2d(x, pw[t], b, **kw, activation=act,
                                                          method="winograd", out=yw[t]))
            if not args.no_ort:
                try:
                    run, _ = onnxruntime_runner(L, act, x, w, b, threads)
                    fns["ort"] = run
                except Unavailable:
                    pass
            t = interleaved(fns, args.rounds)
            ref = reference(x, w, b, L.pad, act)
            scale = np.abs(ref).max()
            ef = np.abs(yf - ref).max() / scale
            ew = {t: np.abs(yw[t] - ref).max() / scale for t in tiles}
            ws = {t: fastconv.workspace_bytes(L.x_shape, w.shape, **kw, method="winograd",
                                              tile="auto" if t == "plan" else t) / 2**20
                  for t in tiles}
            ort = t.get("ort") or float("nan")
            best = min(t[wn[k]] for k in tiles)
            print(f"{lid:16s} {threads:3d} {auto:4d} {t['fused'] * 1e3:8.3f} "
                  + "".join(f"{t[wn[k]] * 1e3:9.3f}" for k in tiles) + f" {ort * 1e3:8.3f} "
                  + "".join(f"{t['fused'] / t[wn[k]]:10.2f}" for k in tiles)
                  + f" {ort / best:8.2f} " + "".join(f"{ws[k]:7.2f}" for k in tiles)
                  + f" {ef:9.1e} " + "".join(f"{ew[k]:8.1e}" for k in tiles), flush=True)


if __name__ == "__main__":
    main()
