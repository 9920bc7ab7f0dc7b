"""Command line: ``python -m fastconv bench`` / ``python -m fastconv demo`` (also ``fastconv ...``)."""
from __future__ import annotations

import argparse
import os
import sys
import time


def _csv(s: str):
    return [p.strip() for p in s.split(",") if p.strip()]


def _bench_parser(sub) -> argparse.ArgumentParser:
    from . import bench as B
    p = sub.add_parser(
        "bench", help="benchmark fused vs separate vs im2col (and torch / ONNX Runtime)",
        description="Benchmark fastconv's fused, separate and im2col paths (and PyTorch eager / "
                    "ONNX Runtime when installed) on the layer suite; print a table, write "
                    "results.json and chart.png.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="full", action="store_false",
                      help="(default) layers " + ",".join(B.QUICK_LAYERS)
                      + "; relu; 1 thread; ~0.5 s per case")
    mode.add_argument("--full", dest="full", action="store_true",
                      help="all layers, activations relu,silu, threads 1,all; ~1 s per case")
    p.set_defaults(full=False)
    p.add_argument("--layers", type=_csv, metavar="IDS",
                   help="comma-separated layer ids: " + ",".join(B.LAYER_BY_ID))
    p.add_argument("--methods", type=_csv, metavar="M", help="fastconv paths (default: "
                   + ",".join(B.METHODS) + ")")
    p.add_argument("--threads", type=_csv, metavar="T",
                   help="thread counts, e.g. 1,all (quick: 1; full: 1,all)")
    p.add_argument("--activation", type=_csv, metavar="A",
                   help="activations among " + ",".join(B.SUPPORTED_ACTIVATIONS)
                   + " (quick: relu; full: relu,silu)")
    p.add_argument("--peers", type=_csv, metavar="P", default=None,
                   help="peers to include: torch,onnxruntime (default: those installed), "
                        "or none")
    p.add_argument("--rounds", type=int, default=None,
                   help="fixed number of timed rounds per case (default: budget by time)")
    p.add_argument("--max-time", type=float, default=None,
                   help="seconds of timing per case (quick: 0.5, full: 1.0)")
    p.add_argument("--out", default="fastconv-bench", metavar="DIR",
                   help="output directory for results.json and chart.png")
    p.add_argument("--no-chart", action="store_true", help="do not write the PNG chart")
    p.add_argument("--markdown", metavar="FILE",
                   help="also write the report as Markdown (e.g. benchmarks/RESULTS.md)")
    p.add_argument("--no-check", action="store_true",
                   help="skip the reference check of each case (not recommended)")
    p.add_argument("--no-pack", action="store_true",
                   help="pass fastconv the weight arrays instead of pre-packing them once "
                        "with fastconv.pack_weight")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--spread", action="store_true",
                   help="show the IQR of each GFLOP/s figure in the terminal table")
    p.add_argument("--onnx", metavar="MODEL",
                   help="instead of the layer suite: time this ONNX model with fastconv.onnx "
                        "and onnxruntime at --threads (default 1)")
    p.add_argument("--backward", action="store_true",
                   help="time the backward instead (grad_input + grad_weight + grad_bias of "
                        "conv2d_backward, fused/separate/im2col, against torch.autograd; "
                        "conv_transpose2d on the transposed shapes); uses --layers, "
                        "--threads, --activation (default relu,silu), --max-time, --markdown")
    return p


def _bench_backward(args) -> int:
    from . import bench as B
    acts = args.activation or ["relu", "silu"]
    try:
        layers = B.select_layers(args.layers)
        threads = B.thread_counts(args.threads or ["1"])
    except ValueError as e:
        raise SystemExit(str(e)) from None
    rows = B.run_backward_suite(layers, acts, threads,
                                max_time=args.max_time if args.max_time is not None else 1.0)
    text = B.format_backward_markdown(rows)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    return 1 if any(r["errors"] for r in rows) else 0


def _bench(args) -> int:
    from . import bench as B
    if args.backward:
        return _bench_backward(args)

    methods = args.methods or list(B.METHODS)
    bad = [m for m in methods if m not in B.METHODS]
    if bad:
        raise SystemExit(f"unknown method(s) {bad}; choose among {list(B.METHODS)}")
    acts = args.activation or (["relu", "silu"] if args.full else ["relu"])
    bad = [a for a in acts if a not in B.SUPPORTED_ACTIVATIONS]
    if bad:
        raise SystemExit(f"unknown activation(s) {bad}; choose among "
                         f"{list(B.SUPPORTED_ACTIVATIONS)}")
    try:
        layers = B.select_layers(args.layers or (None if args.full else B.QUICK_LAYERS))
        threads = B.thread_counts(args.threads or (["1", "all"] if args.full else ["1"]))
    except ValueError as e:
        raise SystemExit(str(e)) from None
    if args.peers is None:
        peers = list(B.PEERS)
    elif args.peers in (["none"], []):
        peers = []
    else:
        peers = args.peers
        bad = [x for x in peers if x not in B.PEERS]
        if bad:
            raise SystemExit(f"unknown peer(s) {bad}; choose among {list(B.PEERS)} or none")
    max_time = args.max_time if args.max_time is not None else (1.0 if args.full else 0.5)

    t0 = time.perf_counter()
    report = B.run_suite(layers, methods, acts, threads, peers, rounds=args.rounds,
                         max_time=max_time, check=not args.no_check,
                         progress=not args.no_progress, pack=not args.no_pack)
    elapsed = time.perf_counter() - t0
    report["meta"]["elapsed_s"] = round(elapsed, 1)

    meta = report["meta"]
    peak = ", ".join(f"{B.format_peak(v)} @ {k} thr" for k, v in meta["peak_gflops"].items())
    print(f"fastconv bench - {meta['machine'].get('cpu')}, {meta['machine'].get('cores')} cores;"
          f" FMA peak {peak}")
    print("GFLOP/s (median" + (", IQR" if args.spread else "") + "); "
          "fused/x = time(x)/time(fused); mem = peak extra bytes besides the output")
    print(B.format_table(report, spread=args.spread))
    for line in B.target_summary(report):
        print(line.replace("**", ""))
    ms = B.machine_summary(report)
    if ms:
        print(ms)
    for n in meta["notes"]:
        print("note: " + n)

    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, "results.json")
    B.write_json(report, json_path)
    print(f"raw figures: {json_path}")
    chart = None
    if not args.no_chart:
        try:
            chart = B.write_chart(report, os.path.join(args.out, "chart.png"))
        except ImportError:
            print("chart skipped: matplotlib not installed (pip install 'fastconv[bench]')")
    if args.markdown:
        rel = None
        if chart:
            md_dir = os.path.dirname(os.path.abspath(args.markdown))
            rel = os.path.relpath(os.path.abspath(chart), md_dir).replace(os.sep, "/")
        with open(args.markdown, "w") as f:
            f.write(B.format_markdown(report, chart=rel))
        print(f"markdown:    {args.markdown}")
    if chart:
        print(f"chart:       {chart}")
    print(f"done in {elapsed:.1f} s")
    bad = B.failures(report)
    if bad:
        for r in bad:
            print(f"FAILED {r['layer']}/{r['impl']}/{r['activation']}/t{r['threads']}: "
                  + (r.get("error") or f"reference check {r.get('check')}"), file=sys.stderr)
        return 1
    return 0


def _bench_onnx(args) -> int:
    """``bench --onnx model.onnx``: one model, fastconv.onnx vs onnxruntime."""
    from . import bench as B
    try:
        threads = B.thread_counts(args.threads or ["1"])
    except ValueError as e:
        raise SystemExit(str(e)) from None
    peers = ["onnxruntime"] if args.peers is None or "onnxruntime" in args.peers else []
    rows = B.bench_onnx_model(args.onnx, threads, rounds=args.rounds,
                              max_time=args.max_time if args.max_time is not None else 2.0,
                              peers=peers)
    print(f"{args.onnx}: median latency, batch as in the model (symbolic dims = 1)")
    for r in rows:
        line = f"threads {r['threads']}: fastconv {r['fastconv_ms']:.2f} ms"
        if "onnxruntime_ms" in r:
            line += (f", onnxruntime {r['onnxruntime_ms']:.2f} ms, speedup "
                     f"{r['speedup']:.2f}x, max |diff| {r['max_abs_diff']:.2g}")
        print(line + f"; fastconv intermediates peak {r['fastconv_peak_bytes'] / 2**20:.1f} MiB")
    return 0


def _run_parser(sub) -> None:
    p = sub.add_parser("run", help="run an ONNX model on a .npy input with fastconv.onnx",
                       description="Run an ONNX model with fastconv.onnx.InferenceSession on "
                                   "the array in --input (its one input); print the outputs' "
                                   "shapes and save the first to --output.")
    p.add_argument("model", help="the .onnx file")
    p.add_argument("--input", required=True, metavar="X.npy", help="the input array")
    p.add_argument("--output", metavar="Y.npy", help="where to save the first output")


def _run(args) -> int:
    import numpy as np
    from .onnx import InferenceSession
    sess = InferenceSession(args.model)
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise SystemExit(f"{args.model} has {len(inputs)} inputs "
                         f"{[i.name for i in inputs]}; `fastconv run` feeds one")
    x = np.load(args.input)
    try:
        outs = sess.run(None, {inputs[0].name: x})
    except ValueError as e:
        raise SystemExit(str(e)) from None
    for o, y in zip(sess.get_outputs(), outs):
        print(f"{o.name}: shape {list(y.shape)}, dtype {y.dtype}")
    if args.output:
        np.save(args.output, outs[0])
        print(f"saved {sess.get_outputs()[0].name} to {args.output}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="fastconv" if os.path.basename(sys.argv[0]) == "fastconv" else "python -m fastconv",
        description="fastconv: fused convolution + activation on the CPU.")
    sub = parser.add_subparsers(dest="cmd", metavar="{bench,demo,run}")
    _bench_parser(sub)
    _run_parser(sub)
    d = sub.add_parser("demo", help="linearity demo: why the activation exists",
                       description="Two stacked convolutions without activation equal one "
                                   "convolution with the composed kernel; with a ReLU between "
                                   "them they do not. Pre- vs post-activation on the same data.")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--train", action="store_true",
                   help="answer it with training: the same CNN without activations, with "
                        "ReLU and pre-activation on scikit-learn's digits and a synthetic "
                        "XOR task; the linear CNN folded into one linear map (needs "
                        "scikit-learn: pip install 'fastconv[train]')")
    d.add_argument("--epochs", type=int, default=8, help="epochs per model (--train)")
    d.add_argument("--out", default="fastconv-train-demo", metavar="DIR",
                   help="where --train writes its PNG of the learning curves")
    d.add_argument("--no-torch", action="store_true",
                   help="--train: do not time the same network in torch")
    args = parser.parse_args(argv)
    if args.cmd == "bench":
        return _bench_onnx(args) if args.onnx else _bench(args)
    if args.cmd == "run":
        return _run(args)
    if args.cmd == "demo":
        if args.train:
            from . import train_demo
            return train_demo.main(epochs=args.epochs, seed=args.seed, out=args.out,
                                   torch_timing=not args.no_torch)
        from . import demo
        return demo.main(seed=args.seed)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
