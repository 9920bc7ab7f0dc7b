"""The FMA peak that `% peak` is against (measured by the library's probe, or
FASTCONV_PEAK_GFLOPS), and the short probe that finds threads without their cores."""
from __future__ import annotations

import os
import time
from typing import Dict, Tuple

from .suite import all_threads

#: A timing block of a multi-thread group with a machine probe below this
#: fraction of the FMA peak on either side is timed again, at most
#: STALL_RETRIES times (the count is reported per case).  On the 2-vCPU
#: development machine, 120 probes 0.1 s apart read 0.94-1.00 with the cores
#: and 0.51 without; one in between straddled the start or end of a stall,
#: so the block next to it most likely ran partly in it (a threshold of 0.75
#: kept such blocks: batch8 at 2 threads once came out 11 % slow).
STALL_FRACTION = 0.9
STALL_RETRIES = 3
#: Before timing such a block again, wait (at most this long) until the probe
#: finds the cores back: the stretches measured here last up to ~5 s.
STALL_WAIT_SECONDS = 15.0
#: FMA iterations per thread of one probe try (~3 ms at 100 GFLOP/s per core).
STALL_PROBE_ITERS = 2_000_000

#: The source of a peak that neither the probe nor the environment gives.
UNMEASURED = ("unmeasured: fastconv's FMA probe does not run with these kernels "
              "(portable C, or not x86-64 with AVX2+FMA); set FASTCONV_PEAK_GFLOPS")

_MEASURED_PEAK: Dict[int, float] = {}


def measured_peak_gflops(threads: int) -> float:
    """The FMA peak of ``threads`` threads, measured now by the library's own probe
    (12 chains of FMAs as wide as the kernel set that runs: 512-bit under AVX-512,
    256-bit under AVX2; best of 5 tries); 0.0 where there is no probe."""
    if threads not in _MEASURED_PEAK:
        from fastconv import _core
        probe = getattr(_core, "fma_peak_gflops", None)
        peak = float(probe(threads)) if probe else 0.0
        if peak > 0 and threads > 1:
            # not in one of the stretches where the threads share one core
            # (see machine_probe): until it scales from one thread, try again
            want = STALL_FRACTION * threads * measured_peak_gflops(1)
            end = time.perf_counter() + STALL_WAIT_SECONDS
            while peak < want and time.perf_counter() < end:
                time.sleep(0.2)
                peak = max(peak, float(probe(threads)))
        _MEASURED_PEAK[threads] = peak
    return _MEASURED_PEAK[threads]


def peak_gflops(threads: int = 1) -> Tuple[float, str]:
    """FP32 FMA peak in GFLOP/s for ``threads`` threads, and where it came from.

    Sources, first match wins:

    * ``FASTCONV_PEAK_GFLOPS``: per-core figure (``116``) or a per-thread-count
      list (``1:116,2:229``).
    * A measurement in this run (:func:`measured_peak_gflops`): the ceiling of
      this machine at its current clock, under the same load as the kernels.

    Where neither gives one (no probe for the kernels that run: the portable
    C kernels, no AVX2+FMA, or not x86-64) the peak is unmeasured: 0.0, with a
    source that says so; the report then shows no ``% peak``.
    """
    threads = max(1, min(int(threads), all_threads()))
    env = os.environ.get("FASTCONV_PEAK_GFLOPS", "").strip()
    if env:
        if ":" in env:
            table = {}
            for part in env.split(","):
                k, v = part.split(":")
                table[int(k)] = float(v)
            if threads in table:
                return table[threads], "FASTCONV_PEAK_GFLOPS"
            per_core = table[min(table)] / min(table)
            return per_core * threads, "FASTCONV_PEAK_GFLOPS (scaled)"
        return float(env) * threads, "FASTCONV_PEAK_GFLOPS"
    measured = measured_peak_gflops(threads)
    if measured > 0:
        return measured, "measured in this run (fastconv._core.fma_peak_gflops)"
    return 0.0, UNMEASURED


def _wait_for_cores(threads: int) -> float:
    """Poll the machine probe until it finds the cores back (at most
    STALL_WAIT_SECONDS); its last value."""
    end = time.perf_counter() + STALL_WAIT_SECONDS
    probe = machine_probe(threads)
    while probe < STALL_FRACTION and time.perf_counter() < end:
        time.sleep(0.1)
        probe = machine_probe(threads)
    return probe


def machine_probe(threads: int) -> float:
    """A short FMA probe on ``threads`` threads against this run's FMA peak.

    On this kind of shared virtual machine a stretch of seconds sometimes comes
    where the threads get about one core's worth of FMA throughput between them
    (every path and peer of a group then runs at half speed: not a
    ``threads``-thread figure).  1.0 on one thread or without a probe."""
    if threads <= 1:
        return 1.0
    from fastconv import _core
    probe = getattr(_core, "fma_peak_gflops", None)
    peak = measured_peak_gflops(threads)
    if not probe or peak <= 0:
        return 1.0
    return min(1.0, float(probe(threads, STALL_PROBE_ITERS, 3)) / peak)
