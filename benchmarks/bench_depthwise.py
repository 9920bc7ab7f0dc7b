"""Depthwise layers: fastconv (packed weights, bias, relu fused, out=) vs ONNX
Runtime and torch, interleaved rounds in one process; median and min.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_depthwise.py \
        [--threads 1,2] [--rounds 25] [--f64] [layer ...]
"""
import argparse
import time

import numpy as np

import fastconv
from fastconv.bench import Layer, onnxruntime_runner, torch_runner

DW = {
    "mobilenet_dw": Layer("mobilenet_dw", 1, 32, 32, 112, 112, 3, 1, 1, groups=32),
    "dw_s2_64": Layer("dw_s2_64", 1, 64, 64, 112, 112, 3, 2, 1, groups=64),
    "dw_3x3_144_56": Layer("dw_3x3_144_56", 1, 144, 144, 56, 56, 3, 1, 1, groups=144),
    "dw_5x5_120_28": Layer("dw_5x5_120_28", 1, 120, 120, 28, 28, 5, 1, 2, groups=120),
    "dw_5x5_s2_240": Layer("dw_5x5_s2_240", 1, 240, 240, 28, 28, 5, 2, 2, groups=240),
    "dw_mult2_32_56": Layer("dw_mult2_32_56", 1, 32, 64, 56, 56, 3, 1, 1, groups=32),
    "dw_512_14": Layer("dw_512_14", 1, 512, 512, 14, 14, 3, 1, 1, groups=512),
    "dw_1024_7": Layer("dw_1024_7", 1, 1024, 1024, 7, 7, 3, 1, 1, groups=1024),
    "dw_s2_512_14": Layer("dw_s2_512_14", 1, 512, 512, 14, 14, 3, 2, 1, groups=512),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("layers", nargs="*")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--f64", action="store_true")
    ap.add_argument("--no-peers", action="store_true")
    a = ap.parse_args()
    dt = np.float64 if a.f64 else np.float32
    rng = np.random.default_rng(0)
    print(fastconv._core.config() if hasattr(fastconv._core, "config") else "")
    for name in a.layers or DW:
        L = DW[name]
        x = rng.standard_normal(L.x_shape).astype(dt)
        w = rng.standard_normal(L.w_shape).astype(dt)
        b = rng.standard_normal(L.cout).astype(dt)
        for th in [int(t) for t in a.threads.split(",")]:
            fastconv.set_num_threads(th)
            pw = fastconv.pack_weight(w, groups=L.groups)
            out = np.empty(L.out_shape, dt)
            kw = dict(stride=L.stride, padding=L.pad, groups=L.groups, activation="relu", out=out)
            fns = {"ours": lambda: fastconv.conv2d(x, pw, b, **kw)}
            if not a.no_peers:
                if dt == np.float32:
                    fns["ort"] = onnxruntime_runner(L, "relu", x, w, b, th)[0]
                fns["torch"] = torch_runner(L, "relu", x, w, b, th)[0]
            fns["ours"]()
            if "torch" in fns:
                import torch
                ref = np.maximum(torch.nn.functional.conv2d(
                    torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                    stride=L.stride, padding=L.pad, groups=L.groups).numpy(), 0)
                err = np.abs(out - ref).max() / max(1e-30, np.abs(ref).max())
                assert err < (1e-5 if dt == np.float32 else 1e-12), (name, err)
            reps = {}
            for k, f in fns.items():
                f()
                t0 = time.perf_counter(); f(); one = time.perf_counter() - t0
                reps[k] = max(1, int(2e-3 / max(one, 1e-7)))
            ts = {k: [] for k in fns}
            for _ in range(a.rounds):
                for k, f in fns.items():
                    r = reps[k]
                    t0 = time.perf_counter()
                    for _ in range(r):
                        f()
                    ts[k].append((time.perf_counter() - t0) / r)
            gf = L.flops / 1e9
            med = {k: float(np.median(v)) for k, v in ts.items()}
            mn = {k: float(np.min(v)) for k, v in ts.items()}
            line = f"{name:16s} {th}t {np.dtype(dt).name[-2:]}  ours med {gf / med['ours']:6.1f} min {gf / mn['ours']:6.1f} GF/s ({med['ours'] * 1e6:7.1f} us)"
            for k in fns:
                if k == "ours":
                    continue
                line += f" | {k} {gf / med[k]:6.1f}/{gf / mn[k]:6.1f} ratio med {med[k] / med['ours']:4.2f} min {mn[k] / mn['ours']:4.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
