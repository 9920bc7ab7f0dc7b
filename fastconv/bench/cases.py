"""Running the benchmark: one case (check, workspace, timing), a group of cases
timed over the same stretch of time, and the whole suite with its metadata."""
from __future__ import annotations

import contextlib
import datetime
import os
import platform
import statistics
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .memory import fastconv_workspace
from .peak import (STALL_FRACTION, STALL_RETRIES, _wait_for_cores, machine_probe,
                   peak_gflops)
from .reference import check_output, reference_output
from .runners import (NotApplicable, Unavailable, can_pack, fastconv_thread_control,
                      fastconv_threads, make_runner, peer_available)
from .suite import CALL_METHOD, METHODS, PEERS, Case, Layer, all_threads, make_inputs
from .timing import Timing, _interleaved_samples, _timing, time_interleaved


def new_result(case: Case) -> dict:
    layer = case.layer
    return {
        "layer": layer.id, "impl": case.impl, "kind": "peer" if case.is_peer else "fastconv",
        "activation": case.activation, "threads": case.threads, "flops": layer.flops,
        "shape": layer.describe(), "status": "ok",
    }


def add_timing(res: dict, case: Case, t: Timing) -> dict:
    """Fill the time, GFLOP/s (median, IQR, range) and % of peak of a result
    (``pct_peak`` None where the peak is unmeasured, see peak_gflops)."""
    flops = case.layer.flops
    peak, _ = peak_gflops(case.threads)
    res["time"] = t.as_dict()
    g = lambda s: flops / s / 1e9 if s > 0 else float("inf")  # noqa: E731
    res["gflops"] = {"median": g(t.median), "q1": g(t.q3), "q3": g(t.q1),
                     "min": g(t.max), "max": g(t.min)}
    res["pct_peak"] = 100.0 * res["gflops"]["median"] / peak if peak > 0 else None
    res["peak_gflops"] = peak
    return res


def prepare_case(case: Case, *, check=True, data=None, ref=None, measure_memory=True,
                 pack=True):
    """Build a case's runner, check its output once, measure its workspace.

    Returns (result, run, threads_context); ``run`` is None when the case cannot
    be timed (result status 'skipped' or 'error'). The context has been used
    (single-use): enter a new ``fastconv_threads`` to time fastconv.
    """
    layer = case.layer
    x, w, b = data if data is not None else make_inputs(layer)
    res = new_result(case)
    try:
        run, get_out, tctx = make_runner(case, x, w, b, pack=pack)
        with tctx:
            run()
            if check:
                if ref is None:
                    ref = reference_output(layer, x, w, b, case.activation)
                chk = check_output(get_out(), ref)
                res["check"] = chk.as_dict()
                if not chk.ok:
                    res["status"] = "wrong"
            if measure_memory and not case.is_peer:
                res["workspace"] = fastconv_workspace(
                    layer, CALL_METHOD.get(case.impl, case.impl), case.activation, run)
    except Unavailable as e:
        res.update(status="skipped", error=str(e))
        if isinstance(e, NotApplicable):
            res["not_applicable"] = True
        return res, None, None
    except Exception as e:  # keep going: one broken case must not kill the report
        res.update(status="error", error=f"{type(e).__name__}: {e}")
        return res, None, None
    return res, run, tctx


def _finish(res: dict, case: Case, t) -> dict:
    if isinstance(t, Exception):
        res.update(status="error", error=f"{type(t).__name__}: {t}")
        return res
    return add_timing(res, case, t)


def run_case(case: Case, *, rounds=None, max_time=0.5, check=True,
             data=None, ref=None, measure_memory=True, pack=True) -> dict:
    """Run one case: build the runner, check its output once, time it, measure workspace.

    ``data`` = (x, w, b) and ``ref`` (float64 reference output) may be passed in
    to share them across cases. Returns a JSON-able dict; ``status`` is 'ok',
    'wrong' (reference check failed), 'skipped' (peer not installed) or 'error'.
    """
    res, run, _ = prepare_case(case, check=check, data=data, ref=ref,
                               measure_memory=measure_memory, pack=pack)
    if run is None:
        return res
    # a fresh context: the one make_runner gave was used up by the check
    with (contextlib.nullcontext() if case.is_peer else fastconv_threads(case.threads)):
        t = time_interleaved({case.impl: run}, rounds=rounds, max_time=max_time)[case.impl]
    return _finish(res, case, t)


def run_group(cases: Sequence[Case], *, rounds=None, max_time=0.5, check=True, data=None,
              ref=None, pack=True, on_case=None, segments=None) -> List[dict]:
    """Run the cases of one (layer, activation, threads) group.

    Every ratio in the report compares cases of one group, so they are timed
    over the same stretch of time (this machine's speed drifts by 10-30 % from
    one second to the next): the time is cut into ``segments``; in each, our
    direct paths (fused, separate) run with their rounds interleaved, then
    each path that runs on another library's code (im2col's BLAS, the peers)
    runs alone, and each case's rounds from all segments are pooled.

    Those do not share rounds with ours: round by round, the peers' allocators
    and caches never settle (torch and ONNX Runtime measured 30-40 % slower
    interleaved than alone), and on several threads their pools keep workers
    spinning for a while after each call (OpenBLAS for ~0.1 s): a spinning
    worker holding a core stalls the join of our next multi-threaded call, so
    on several threads each of them is followed by a pause.

    On several threads a short FMA probe runs before and after each block
    (:func:`machine_probe`); when one finds less than STALL_FRACTION of the FMA
    peak, the threads did not have their cores, and the block is timed again
    once the probe finds them back (at most STALL_RETRIES times; each result
    records the lowest probe around the blocks kept and the number of blocks
    timed again under ``machine``).

    ``on_case(case)`` is called as each case starts (its check and setup).
    """
    on_case = on_case or (lambda c: None)
    results: Dict[int, dict] = {}
    runs = {}
    threads = {c.threads for c in cases}
    assert len(threads) == 1, "one thread count per group"
    nthreads = threads.pop()
    for i, c in enumerate(cases):
        on_case(c)
        res, run, _ = prepare_case(c, check=check, data=data, ref=ref, pack=pack)
        results[i] = res
        if run is not None:
            runs[i] = run
    blocks = [[i for i in runs if not foreign_pool(cases[i])]]
    blocks += [[i] for i in runs if foreign_pool(cases[i])]
    segments = segments or (1 if rounds is not None else FOREIGN_SEGMENTS)
    samples, numbers, errors, machine, pairs = _time_segments(
        runs, cases, blocks, nthreads, segments, rounds, max_time)
    for i in runs:
        t = errors.get(i) or _timing(samples[i], numbers[i])
        _finish(results[i], cases[i], t)
        if nthreads > 1:
            results[i]["machine"] = machine
        paired = {cases[j].impl: statistics.median(v) for (a, j), v in pairs.items()
                  if a == i and v and i not in errors and j not in errors}
        if paired:
            results[i]["paired"] = paired
    return [results[i] for i in range(len(cases))]


def _time_segments(runs, cases, blocks, nthreads, segments, rounds, max_time):
    """The timing of a group (see run_group): (samples, numbers, errors, machine,
    pairs); pairs[i, j]: time of j / time of i in each round where both ran
    (cases of one interleaved block).

    On several threads each block is framed by FMA probes (the one after a
    block is the one before the next); a block with a probe under
    STALL_FRACTION of the peak on either side is timed again, its samples
    dropped, once the probe finds the cores back (at most STALL_RETRIES times).
    ``machine``: the lowest probe around the blocks kept and the number of
    blocks timed again."""
    samples: Dict[int, List[float]] = {i: [] for i in runs}
    numbers: Dict[int, int] = {}
    errors: Dict[int, Exception] = {}
    pairs: Dict[Tuple[int, int], List[float]] = {}
    seg_rounds = None if rounds is None else max(1, rounds // segments)
    before = machine_probe(nthreads)
    kept_min, retimed = 1.0, 0
    for _ in range(segments):
        for block in blocks:
            live = [i for i in block if i not in errors]
            if not live:
                continue
            for attempt in range(1 + STALL_RETRIES):
                if before < STALL_FRACTION:
                    before = _wait_for_cores(nthreads)
                with fastconv_threads(nthreads):
                    s, n, e = _interleaved_samples(
                        {str(i): runs[i] for i in live}, rounds=seg_rounds,
                        max_time=max_time / segments, min_rounds=max(1, 3 // segments),
                        max_rounds=200, min_round_time=2e-3, warmup=1)
                if nthreads > 1 and any(foreign_pool(cases[i]) for i in block):
                    time.sleep(QUIESCE_SECONDS)
                after = machine_probe(nthreads)
                low, before = min(before, after), after
                if low >= STALL_FRACTION or attempt == STALL_RETRIES:
                    break
                retimed += 1
            kept_min = min(kept_min, low)
            for k, v in s.items():
                samples[int(k)] += v
                numbers[int(k)] = n[k]
                for k2, v2 in s.items():   # round r of one next to round r of the other
                    if k2 != k:
                        pairs.setdefault((int(k), int(k2)), []).extend(
                            b / a for a, b in zip(v, v2))
            errors.update({int(k): v for k, v in e.items()})
    machine = {"probe_min": round(kept_min, 3), "retimed": retimed}
    return samples, numbers, errors, machine, pairs


#: Time segments of a multi-thread group (see run_group).
FOREIGN_SEGMENTS = 5

#: Pause after a case that ran on another library's thread pool (see run_group).
QUIESCE_SECONDS = 0.3


def foreign_pool(case: "Case") -> bool:
    return case.is_peer or case.impl == "im2col"


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu in ("", platform.machine(), "x86_64"):
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    fl = line.split(":", 1)[1].split()
                    flags = " ".join(x for x in ("avx2", "fma", "avx512f") if x in fl)
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "simd": flags, "cores": all_threads(), "platform": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__}
    try:
        import fastconv
        info["fastconv"] = getattr(fastconv, "__version__", "?")
    except Exception:
        pass
    return info


def _loadavg() -> Optional[float]:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _peer_versions(peers) -> dict:
    v = {}
    if "torch" in peers:
        with contextlib.suppress(Exception):
            import torch
            v["torch"] = torch.__version__
    if "onnxruntime" in peers:
        with contextlib.suppress(Exception):
            import onnxruntime
            v["onnxruntime"] = onnxruntime.__version__
    return v


class _Progress:
    """tqdm bar when available, else a one-line stderr counter; silent when not a TTY."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.n = total, 0
        self.enabled = enabled and sys.stderr.isatty()
        self.bar = None
        if self.enabled:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=total, unit="case", leave=False, dynamic_ncols=True)
            except ImportError:
                self.bar = None

    def start(self, label: str):
        """Show the case about to run."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(label)
        else:
            sys.stderr.write(f"\r[{self.n + 1}/{self.total}] {label:<50.50}")
            sys.stderr.flush()

    def update(self):
        """One case done."""
        self.n += 1
        if self.bar is not None and self.enabled:
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\r" + " " * 70 + "\r")
            sys.stderr.flush()


def run_suite(layers: Sequence[Layer], methods: Sequence[str] = METHODS,
              activations: Sequence[str] = ("relu",), threads: Sequence[int] = (1,),
              peers: Sequence[str] = PEERS, *, rounds=None, max_time=0.5, check=True,
              progress=True, pack=True) -> dict:
    """Run the cartesian product of cases; returns {"meta": ..., "results": [...]}."""
    notes = []
    active_peers = []
    for p in peers:
        ok, why = peer_available(p)
        if ok:
            active_peers.append(p)
        else:
            notes.append(f"peer {p} skipped: {why}")
    control = fastconv_thread_control()
    if "set_num_threads" not in control and any(t != 1 for t in threads):
        if "threadpoolctl" in control:
            notes.append("fastconv has no set_num_threads: its threads (OpenMP) and the "
                         "im2col path's BLAS threads are set with threadpoolctl")
        else:
            notes.append("fastconv has no set_num_threads and threadpoolctl is not installed: "
                         "fastconv runs with its default threads; the threads axis applies to "
                         "the peers only")
    elif "threadpoolctl" not in control:
        notes.append("threadpoolctl not installed: " + (
            "BLAS threads of the im2col path not limited" if "set_num_threads" in control
            else "fastconv's OpenMP and BLAS threads cannot be limited, its 1-thread "
                 "figures may use all cores (pip install threadpoolctl)"))
    load_before = _loadavg()
    impls = list(methods) + active_peers
    cases = [Case(l, impl, a, t) for l in layers for a in activations for t in threads
             for impl in impls]
    bar = _Progress(len(cases), progress)
    results = []
    try:
        for layer in layers:
            data = make_inputs(layer)
            for a in activations:
                ref = reference_output(layer, *data, a) if check else None
                for t in threads:
                    group = [Case(layer, impl, a, t) for impl in impls]
                    done = []

                    def on_case(c, done=done):
                        if done:
                            bar.update()
                        done.append(c)
                        bar.start(c.key)

                    results += run_group(group, rounds=rounds, max_time=max_time,
                                         check=check, data=data, ref=ref, pack=pack,
                                         on_case=on_case)
                    if done:
                        bar.update()
                ref = None
    finally:
        bar.close()
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python -m fastconv"] + sys.argv[1:]) if sys.argv else "",
        "machine": machine_info(),
        "peers": _peer_versions(active_peers),
        "peak_gflops": {str(t): peak_gflops(t)[0] for t in threads},
        "peak_source": peak_gflops(1)[1],
        "thread_control": control,
        "packed_weights": bool(pack and can_pack()),
        "layers": [l.id for l in layers], "methods": list(methods),
        "activations": list(activations), "threads": list(threads),
        "requested_peers": list(peers), "notes": notes,
        "loadavg_1min": {"before": load_before, "after": _loadavg()},
        "timing": {"rounds": rounds, "max_time_per_case_s": max_time,
                   "statistic": "median; spread = IQR (q1-q3) over rounds",
                   "order": "%d segments per (layer, activation, threads) group, each: "
                            "fastconv's own paths (fused, raw, separate, winograd) with their "
                            "rounds interleaved, "
                            "then im2col and each peer alone (on several threads followed by "
                            "a %.1f s pause); on several threads an FMA probe before and after "
                            "each block, the block timed again (at most %d times) when one "
                            "finds under %.0f%% of the FMA peak"
                            % (FOREIGN_SEGMENTS, QUIESCE_SECONDS, STALL_RETRIES,
                               100 * STALL_FRACTION)},
    }
    return {"meta": meta, "results": results}
