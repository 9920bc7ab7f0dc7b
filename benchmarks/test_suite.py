"""The layer suite x path (fused, separate, im2col, torch, onnxruntime) x activation x threads.

One pytest-benchmark group per (layer, activation, threads), so each table
compares the three fastconv paths and the peers on one layer. Each case's
output is checked once against a float64 NumPy reference before it is timed,
so a fast wrong kernel cannot pass. extra_info carries GFLOP/s, % of the FMA
peak and the workspace bytes.
"""
import time

import pytest

from fastconv import bench as B


def test_conv(benchmark, fc_case, fc_data, fc_record, fc_pack):
    case = fc_case
    layer = case.layer
    benchmark.group = f"{layer.id} {case.activation} t{case.threads}"
    if case.is_peer:
        ok, why = B.peer_available(case.impl)
        if not ok:
            pytest.skip(f"peer {case.impl}: {why}")
    inputs, reference = fc_data
    x, w, b = inputs(layer.id)
    run, get_out, threads_ctx = B.make_runner(case, x, w, b, pack=fc_pack)
    peak, peak_src = B.peak_gflops(case.threads)
    info = benchmark.extra_info
    info.update(layer=layer.id, shape=layer.describe(), impl=case.impl,
                activation=case.activation, threads=case.threads, flops=layer.flops,
                peak_gflops=peak, peak_source=peak_src)
    result = B.new_result(case)
    with threads_ctx:
        run()
        chk = B.check_output(get_out(), reference(layer.id, case.activation))
        info["max_rel_err"] = chk.rel_err
        assert chk.ok, (f"{case.key}: output differs from the reference "
                        f"(max abs err {chk.max_abs_err:.3g}, rel {chk.rel_err:.3g})")
        if not case.is_peer:
            ws = B.fastconv_workspace(layer, case.impl, case.activation, run)
            info["workspace_bytes"] = ws["bytes"]
            info["workspace_traced_bytes"] = ws["traced"]
            info["workspace_reported_bytes"] = ws["reported"]
            result["workspace"] = ws
        benchmark(run)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:  # None under --benchmark-disable
        s = stats.stats
        t = B.Timing(s.median, s.q1, s.q3, s.min, s.max, s.rounds,
                     getattr(stats, "iterations", 1))
        B.add_timing(result, case, t)
        info["gflops"] = result["gflops"]["median"]
        info["gflops_iqr"] = [result["gflops"]["q1"], result["gflops"]["q3"]]
        info["pct_peak"] = result["pct_peak"]
        fc_record(result)
    if B.foreign_pool(case) and case.threads > 1:
        # let that library's spinning workers go idle before the next case (see run_group)
        time.sleep(B.QUIESCE_SECONDS)
