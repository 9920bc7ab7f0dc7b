"""Timing: calibration (calls per round, rounds for a time budget) and rounds of
several callables interleaved, summarised as median, quartiles and range."""
from __future__ import annotations

import dataclasses
import math
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple


@dataclasses.dataclass
class Timing:
    """Seconds per call: median, quartiles and extremes over ``rounds`` rounds."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    rounds: int
    number: int  # calls per round

    def as_dict(self):
        return dataclasses.asdict(self)


def _quantile(sorted_vals: Sequence[float], q: float) -> float:
    if len(sorted_vals) == 1:
        return sorted_vals[0]
    pos = q * (len(sorted_vals) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def _calibrate(fn, *, rounds, max_time, min_rounds, max_rounds, min_round_time,
               warmup) -> Tuple[int, int]:
    """Warm up ``fn``; return (rounds, calls per round) for a budget of ``max_time`` s."""
    est = float("inf")
    for _ in range(max(1, warmup)):
        t0 = time.perf_counter()
        fn()
        est = min(est, time.perf_counter() - t0)
    est = max(est, 1e-7)
    number = max(1, int(math.ceil(min_round_time / est))) if est < min_round_time else 1
    if rounds is None:
        rounds = int(max_time / (est * number))
        rounds = max(min_rounds, min(max_rounds, rounds))
    return max(1, int(rounds)), number


def _timing(samples: List[float], number: int) -> Timing:
    s = sorted(samples)
    return Timing(statistics.median(s), _quantile(s, 0.25), _quantile(s, 0.75),
                  s[0], s[-1], len(s), number)


def _interleaved_samples(fns: Dict[str, Callable[[], object]], *, rounds, max_time,
                         min_rounds, max_rounds, min_round_time, warmup):
    """Per-call seconds of each round of each callable, rounds interleaved.

    Returns (samples, numbers, errors): name -> list of per-call times, name ->
    calls per round, name -> the exception that stopped it.
    """
    errors: Dict[str, Exception] = {}
    plan = {}
    for name, fn in fns.items():
        try:
            plan[name] = _calibrate(fn, rounds=rounds, max_time=max_time,
                                    min_rounds=min_rounds, max_rounds=max_rounds,
                                    min_round_time=min_round_time, warmup=warmup)
        except Exception as e:  # noqa: BLE001 - reported per case
            errors[name] = e
    samples: Dict[str, List[float]] = {name: [] for name in plan}
    perf = time.perf_counter
    for r in range(max((n for n, _ in plan.values()), default=0)):
        for name, (n_rounds, number) in list(plan.items()):
            if r >= n_rounds:
                continue
            fn = fns[name]
            try:
                t0 = perf()
                for _ in range(number):
                    fn()
                samples[name].append((perf() - t0) / number)
            except Exception as e:  # noqa: BLE001
                errors[name] = e
                del plan[name]
                del samples[name]
    return samples, {name: number for name, (_, number) in plan.items()}, errors


def time_interleaved(fns: Dict[str, Callable[[], object]], *, rounds: Optional[int] = None,
                     max_time: float = 0.5, min_rounds: int = 3, max_rounds: int = 200,
                     min_round_time: float = 2e-3, warmup: int = 1
                     ) -> Dict[str, object]:
    """Time several callables with their rounds interleaved (A B C A B C ...).

    Each is warmed up and calibrated on its own: ``number`` calls per round so
    a round lasts at least ``min_round_time`` (timer resolution for tiny
    layers), and enough rounds for about ``max_time`` seconds (within
    [min_rounds, max_rounds]), or exactly ``rounds``. Interleaving makes the
    ratios between them robust to load that comes and goes on a shared
    machine. Returns name -> Timing, or name -> the exception it raised.
    """
    samples, numbers, errors = _interleaved_samples(
        fns, rounds=rounds, max_time=max_time, min_rounds=min_rounds, max_rounds=max_rounds,
        min_round_time=min_round_time, warmup=warmup)
    out: Dict[str, object] = dict(errors)
    for name, s in samples.items():
        out[name] = _timing(s, numbers[name])
    return out


def time_fn(fn: Callable[[], object], *, rounds: Optional[int] = None,
            max_time: float = 0.5, min_rounds: int = 3, max_rounds: int = 200,
            min_round_time: float = 2e-3, warmup: int = 1) -> Timing:
    """Time ``fn``: warm up, then rounds of ``number`` calls each (see time_interleaved)."""
    t = time_interleaved({"fn": fn}, rounds=rounds, max_time=max_time, min_rounds=min_rounds,
                         max_rounds=max_rounds, min_round_time=min_round_time,
                         warmup=warmup)["fn"]
    if isinstance(t, Exception):
        raise t
    return t
