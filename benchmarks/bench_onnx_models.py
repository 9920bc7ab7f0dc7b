"""fastconv.onnx vs onnxruntime on the nine light ONNX architectures.

The models ship inside the onnx package (onnx/backend/test/data/light/);
their weights are re-drawn at random (tests/onnx_models.py), batch 1,
224 x 224.  Each model and thread count: both sessions timed with their
rounds interleaved (fastconv.bench.bench_onnx_model), onnxruntime with its
default graph optimisations and intra_op_num_threads equal to fastconv's
set_num_threads.  Prints a Markdown table (and --json writes the rows).

    PYTHONPATH=. python benchmarks/bench_onnx_models.py --threads 1,2 [--models resnet50,vgg19]

--profile instead prints, per model, the milliseconds per run spent in each
operator type: fastconv's (InferenceSession(profile=True), the optimised
graph's nodes) and ONNX Runtime's (SessionOptions.enable_profiling, its
kernel times), one thread each, --rounds runs after a warm one.
"""
import argparse
import collections
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))   # onnx_models

import onnx_models as M  # noqa: E402

from fastconv import bench as B  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(M.LIGHT_MODELS))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--max-time", type=float, default=3.0, help="seconds of timing per case")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--profile", action="store_true",
                    help="time per operator type instead (fastconv and onnxruntime, 1 thread)")
    ap.add_argument("--rounds", type=int, default=5, help="runs profiled (--profile)")
    ap.add_argument("--alone", action="store_true",
                    help="time each framework alone in a child process (on 2 threads the "
                         "other's spinning threads slow the next run when they take turns)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    rng = np.random.default_rng(args.seed)
    if args.child:
        return child(*args.child)
    if args.alone:
        return alone(args.models.split(","), threads, args.max_time, args.seed)
    if args.profile:
        for name in args.models.split(","):
            profile(name, rng, args.rounds)
        return
    rows = []
    for name in args.models.split(","):
        model = M.random_light_model(name, rng, logits=False)
        iname, x = M.light_input(model, rng)
        for r in B.bench_onnx_model(model.SerializeToString(), threads, {iname: x},
                                    max_time=args.max_time):
            r["model"] = name
            rows.append(r)
            print(f"{name:13s} t{r['threads']}: fastconv {r['fastconv_ms']:8.2f} ms  "
                  f"onnxruntime {r['onnxruntime_ms']:8.2f} ms  speedup {r['speedup']:.2f}x  "
                  f"peak {r['fastconv_peak_bytes'] / 2**20:.1f} MiB  "
                  f"|diff| {r['max_abs_diff']:.1g}", flush=True)
    print()
    print("| model | threads | fastconv ms | onnxruntime ms | speedup (ORT / fastconv) "
          "| fastconv peak intermediates MiB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['threads']} | {r['fastconv_ms']:.2f} | "
              f"{r['onnxruntime_ms']:.2f} | {r['speedup']:.2f}x | "
              f"{r['fastconv_peak_bytes'] / 2**20:.1f} |")
    for t in threads:
        sp = [r["speedup"] for r in rows if r["threads"] == t]
        print(f"| **geometric mean** | {t} | | | **{math.exp(np.mean(np.log(sp))):.2f}x** | |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


def child(framework, name, threads, max_time):
    """One session alone in this process: the median run time (--alone)."""
    import time
    threads, max_time = int(threads), float(max_time)
    rng = np.random.default_rng(0)
    model = M.random_light_model(name, rng, logits=False)
    iname, x = M.light_input(model, rng)
    with B.fastconv_threads(threads):
        if framework == "fastconv":
            import fastconv.onnx
            sess = fastconv.onnx.InferenceSession(model.SerializeToString())
        else:
            import onnxruntime as ort
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            sess = ort.InferenceSession(model.SerializeToString(), so,
                                        providers=["CPUExecutionProvider"])
        for _ in range(2):
            sess.run(None, {iname: x})
        ts, t_end = [], time.perf_counter() + max_time
        while time.perf_counter() < t_end or len(ts) < 3:
            t0 = time.perf_counter()
            sess.run(None, {iname: x})
            ts.append(time.perf_counter() - t0)
    print(json.dumps({"ms": 1e3 * float(np.median(ts))}))


def alone(names, threads, max_time, seed):
    import subprocess
    print("| model | threads | fastconv ms (alone) | onnxruntime ms (alone) | "
          "speedup (ORT / fastconv) |")
    print("|---|---|---|---|---|")
    sp = collections.defaultdict(list)
    for name in names:
        for t in threads:
            ms = {}
            for fw in ("fastconv", "onnxruntime"):
                out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", fw,
                                      name, str(t), str(max_time)], capture_output=True,
                                     text=True, check=True)
                ms[fw] = json.loads(out.stdout.strip().splitlines()[-1])["ms"]
            r = ms["onnxruntime"] / ms["fastconv"]
            sp[t].append(r)
            print(f"| {name} | {t} | {ms['fastconv']:.2f} | {ms['onnxruntime']:.2f} | "
                  f"{r:.2f}x |", flush=True)
    for t in threads:
        print(f"| **geometric mean** | {t} | | | **{math.exp(np.mean(np.log(sp[t]))):.2f}x** |")


def profile(name, rng, rounds):
    """Per operator type: ms per run in fastconv and onnxruntime (one thread)."""
    import onnxruntime as ort
    from fastconv.onnx import InferenceSession
    model = M.random_light_model(name, rng, logits=False)
    iname, x = M.light_input(model, rng)
    data = model.SerializeToString()
    with B.fastconv_threads(1):
        sess = InferenceSession(data, profile=True)
        sess.run(None, {iname: x})   # the warm run (and the Conv methods' tuning)
        sess.profile_stats(reset=True)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        so.enable_profiling = True
        osess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        osess.run(None, {iname: x})
        for _ in range(rounds):
            sess.run(None, {iname: x})
            osess.run(None, {iname: x})
        path = osess.end_profiling()
    with open(path) as f:
        events = json.load(f)
    os.remove(path)
    ours, theirs, count = collections.Counter(), collections.Counter(), collections.Counter()
    for op, sec, _ in sess.profile_stats().values():
        ours[op] += sec * 1e3 / rounds
        count[op] += 1
    for e in events:   # the warm run is in ORT's file too: rounds + 1 runs
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            theirs[e["args"]["op_name"]] += e["dur"] / 1e3 / (rounds + 1)
    print(f"{name}: fastconv kernels {sum(ours.values()):.1f} ms, onnxruntime kernels "
          f"{sum(theirs.values()):.1f} ms per run")
    print("  fastconv:    " + ", ".join(f"{k}[{count[k]}] {v:.1f}" for k, v in ours.most_common()))
    print("  onnxruntime: " + ", ".join(f"{k} {v:.1f}" for k, v in theirs.most_common()),
          flush=True)


if __name__ == "__main__":
    main()
