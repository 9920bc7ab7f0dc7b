"""fastconv.onnx vs onnxruntime on the nine light ONNX architectures.

The models ship inside the onnx package (onnx/backend/test/data/light/);
their weights are re-drawn at random (tests/onnx_models.py), batch 1,
224 x 224.  Each model and thread count: both sessions timed with their
rounds interleaved (fastconv.bench.bench_onnx_model), onnxruntime with its
default graph optimisations and intra_op_num_threads equal to fastconv's
set_num_threads.  Prints a Markdown table (and --json writes the rows).

    PYTHONPATH=. python benchmarks/bench_onnx_models.py --threads 1,2 [--models resnet50,vgg19]
"""
import argparse
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
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    rng = np.random.default_rng(args.seed)
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


if __name__ == "__main__":
    main()
