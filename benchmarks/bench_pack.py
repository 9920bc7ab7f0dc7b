"""Weight packing speed against the machine's copy bandwidth, in one process.

`fastconv.pack_weight` (what a layer does once: fresh memory, and a private
OIHW copy too), `pack_weight(..., out=)` into an existing pack (what a loop
that updates the weights does: no fresh pages) and the pack inside a raw-weight call (into its kept buffer:
a raw call on a 1x1 image minus the pre-packed one) are timed in interleaved
rounds with `np.copyto` of a same-size array (warmed buffers): the copy's
GB/s is the yardstick, pack GB/s = weight bytes / time.  With --layers, the suite layers' raw-weight conv2d (plain weight
array, as a user writes it), the pre-packed one and torch (F.conv2d + relu,
raw tensors) take turns instead: median times and same-run ratios.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_pack.py \
        [--threads 1,2] [--rounds 31] [--f64] [--layers [--nhwc] [id ...]]
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


def interleaved(fns, rounds, number, per_round=False):
    """Median seconds per call of each fn, the fns taking turns every round
    (with per_round: also the list of each round's times)."""
    times = {k: [] for k in fns}
    for f in fns.values():
        f()
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(number):
                f()
            times[k].append((time.perf_counter() - t0) / number)
    med = {k: statistics.median(v) for k, v in times.items()}
    return (med, times) if per_round else med


def paired(times, a, b):
    """Median over rounds of time(a) / time(b) in the same round (the
    machine's drift cancels in each pair)."""
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def layers(a, dt):
    """raw vs packed vs torch + relu on the suite layers (ratios of medians)."""
    import torch

    from fastconv.bench import LAYER_BY_ID, LAYERS
    ids = a.ids or [l.id for l in LAYERS]
    rng = np.random.default_rng(0)
    print("layer thr | raw us packed us torch us (medians) | raw/packed torch/raw "
          "(medians of the per-round ratios)")
    for lid in ids:
        L = LAYER_BY_ID[lid]
        x = rng.standard_normal(L.x_shape).astype(dt)
        w = rng.standard_normal(L.w_shape).astype(dt)
        b = rng.standard_normal(L.cout).astype(dt)
        fmt = "NHWC" if a.nhwc else "NCHW"
        if a.nhwc:
            xu, wu = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), \
                np.ascontiguousarray(w.transpose(2, 3, 1, 0))
            oshape = (L.n,) + L.out_hw + (L.cout,)
        else:
            xu, wu, oshape = x, w, L.out_shape
        out = np.empty(oshape, dt)
        kw = dict(L.conv_kwargs, activation="relu", method=a.method, out=out, data_format=fmt)
        tx, tw, tb = (torch.from_numpy(v) for v in (x, w, b))
        tkw = L.conv_kwargs
        for th in [int(t) for t in a.threads.split(",")]:
            fastconv.set_num_threads(th)
            torch.set_num_threads(th)
            pw = fastconv.pack_weight(wu, groups=L.groups, data_format=fmt)

            def torch_run():
                with torch.inference_mode():
                    return torch.relu(torch.nn.functional.conv2d(tx, tw, tb, **tkw))

            fns = {"raw": lambda: fastconv.conv2d(xu, wu, b, **kw),
                   "packed": lambda: fastconv.conv2d(xu, pw, b, **kw),
                   "torch": torch_run}
            t1 = time.perf_counter()
            fns["raw"]()
            number = max(1, int(0.02 / max(time.perf_counter() - t1, 1e-6)))
            med, per = interleaved(fns, a.rounds, number, per_round=True)
            print(f"{lid} {th} | {med['raw'] * 1e6:.0f} {med['packed'] * 1e6:.0f} "
                  f"{med['torch'] * 1e6:.0f} | {paired(per, 'raw', 'packed'):.2f} "
                  f"{paired(per, 'torch', 'raw'):.2f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--f64", action="store_true")
    ap.add_argument("--layers", action="store_true")
    ap.add_argument("--nhwc", action="store_true")
    ap.add_argument("--method", default="fused")
    ap.add_argument("ids", nargs="*")
    a = ap.parse_args()
    dt = np.float64 if a.f64 else np.float32
    rng = np.random.default_rng(0)
    print(fastconv.config.config()["kernels"], np.dtype(dt).name)
    if a.layers:
        return layers(a, dt)
    for name, (shape, groups) in WEIGHTS.items():
        w = rng.standard_normal(shape).astype(dt)
        dst = np.empty_like(w)
        np.copyto(dst, w)
        for th in [int(t) for t in a.threads.split(",")]:
            fastconv.set_num_threads(th)
            number = 3
            # the raw call's own pack (into its kept buffer): a raw call on a
            # 1x1 image (padding 1 for 3x3: every block still packed) minus
            # the same call with the weights pre-packed
            k = shape[2]
            x = rng.standard_normal((1, shape[1] * groups, 1, 1)).astype(dt)
            pw = fastconv.pack_weight(w, groups)
            kw = dict(padding=k // 2, groups=groups, method="fused")
            med = interleaved({"copy": lambda: np.copyto(dst, w),
                               "pack_weight": lambda: fastconv.pack_weight(w, groups),
                               "pack_weight_out": lambda: fastconv.pack_weight(w, groups, out=pw),
                               "raw_1px": lambda: fastconv.conv2d(x, w, **kw),
                               "packed_1px": lambda: fastconv.conv2d(x, pw, **kw)},
                              a.rounds, number)
            gb = w.nbytes / 1e9
            cp, pk, po = gb / med["copy"], gb / med["pack_weight"], gb / med["pack_weight_out"]
            rp = gb / max(med["raw_1px"] - med["packed_1px"], 1e-9)
            print(f"{name} {w.nbytes / 1e6:.1f} MB, {th} thr: copy {cp:.1f} GB/s "
                  f"({med['copy'] * 1e6:.0f} us), pack_weight {pk:.2f} GB/s "
                  f"({med['pack_weight'] * 1e6:.0f} us) = {100 * pk / cp:.0f} % of copy; "
                  f"pack_weight(out=) {po:.2f} GB/s ({med['pack_weight_out'] * 1e6:.0f} us) = "
                  f"{100 * po / cp:.0f} % of copy; "
                  f"raw call's pack {rp:.2f} GB/s ({(med['raw_1px'] - med['packed_1px']) * 1e6:.0f}"
                  f" us) = {100 * rp / cp:.0f} % of copy")


if __name__ == "__main__":
    main()
