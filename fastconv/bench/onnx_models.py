"""A whole ONNX model timed with fastconv.onnx against onnxruntime
(``fastconv bench --onnx``)."""
from __future__ import annotations

import os
import statistics
import time
from typing import Dict, List, Sequence

import numpy as np

from .runners import fastconv_threads
from .timing import time_fn


def onnx_model_inputs(model, batch: int = 1, seed: int = 0) -> Dict[str, np.ndarray]:
    """Random float inputs for a model's true inputs (symbolic dims -> `batch`)."""
    from fastconv.onnx import InferenceSession
    rng = np.random.default_rng(seed)
    feed = {}
    for arg in InferenceSession(model).get_inputs():
        if arg.type not in ("tensor(float)", "tensor(double)"):
            raise ValueError(f"input {arg.name!r} of type {arg.type}: only float inputs are "
                             f"generated")
        shape = [d if isinstance(d, int) else batch for d in arg.shape]
        dtype = np.float32 if arg.type == "tensor(float)" else np.float64
        feed[arg.name] = rng.standard_normal(shape).astype(dtype)
    return feed


ONNX_SEGMENTS = 4


def bench_onnx_model(model, threads: Sequence[int] = (1,), feed=None, *, rounds=None,
                     max_time: float = 2.0, peers: Sequence[str] = ("onnxruntime",)) -> List[dict]:
    """Latency of one ONNX model (a path or bytes) with fastconv.onnx and
    onnxruntime at each thread count, timed in alternating segments; onnxruntime
    with default graph optimisations and ``intra_op_num_threads`` = threads,
    fastconv with ``set_num_threads`` (and BLAS limited alike).  Each row:
    threads, fastconv_ms / onnxruntime_ms (medians), speedup (ORT / fastconv),
    max_abs_diff between their first outputs, fastconv's intermediate peak
    and pool bytes."""
    from fastconv.onnx import InferenceSession
    if isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as f:
            model = f.read()
    feed = onnx_model_inputs(model) if feed is None else feed
    rows = []
    for n in threads:
        fns, outs = {}, {}
        sess = InferenceSession(model)
        fns["fastconv"] = lambda s=sess: s.run(None, feed)
        if "onnxruntime" in peers:
            import onnxruntime as ort
            so = ort.SessionOptions()
            so.intra_op_num_threads = int(n)
            so.log_severity_level = 3
            osess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
            fns["onnxruntime"] = lambda s=osess: s.run(None, feed)
        samples = {name: [] for name in fns}
        with fastconv_threads(n):
            for name, fn in fns.items():
                outs[name] = fn()[0]
            # Segments of each library alone, in turns (see run_group: round by
            # round the two disturb each other's caches and thread pools); after
            # onnxruntime on several threads a pause lets its spinning workers stop.
            for _ in range(ONNX_SEGMENTS):
                for name, fn in fns.items():
                    t = time_fn(fn, rounds=None if rounds is None else
                                max(1, rounds // ONNX_SEGMENTS),
                                max_time=max_time / ONNX_SEGMENTS, min_rounds=2,
                                min_round_time=0.0)
                    samples[name] += [t.median] * t.rounds
                    if n > 1 and name != "fastconv":
                        time.sleep(0.2)
        row = {"threads": int(n)}
        for name, v in samples.items():
            row[f"{name}_ms"] = statistics.median(v) * 1e3
            row[f"{name}_rounds"] = len(v)
        mem = sess.memory_stats()
        row["fastconv_peak_bytes"], row["fastconv_pool_bytes"] = mem["peak"], mem["pool"]
        if "onnxruntime" in fns:
            row["speedup"] = row["onnxruntime_ms"] / row["fastconv_ms"]
            row["max_abs_diff"] = float(np.max(np.abs(outs["fastconv"].astype(np.float64)
                                                      - outs["onnxruntime"])))
        rows.append(row)
    return rows
