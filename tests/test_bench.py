"""Smoke tests of `python -m fastconv bench`, `python -m fastconv demo` and fastconv.bench.

Fast (seconds): the CLI runs on the seed layer with one round, without peers.
"""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import bench as B
from fastconv import demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))


def _patch(monkeypatch, name, value):
    """Set `name` to `value` in every module of the fastconv.bench package that
    holds it (the package re-exports its modules' names; the functions look
    them up in their own module)."""
    import pkgutil
    import importlib
    old = getattr(B, name)
    monkeypatch.setattr(B, name, value)
    for info in pkgutil.iter_modules(B.__path__):
        mod = importlib.import_module(f"{B.__name__}.{info.name}")
        if getattr(mod, name, None) is old:
            monkeypatch.setattr(mod, name, value)


def _run_cli(args, cwd):
    env = dict(os.environ)
    # the fastconv this test imported (in-place build or installed), whatever the cwd
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "fastconv"] + args, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_layer_suite_definition():
    assert len(B.LAYERS) == 11 and set(B.QUICK_LAYERS) <= set(B.LAYER_BY_ID)
    seed = B.LAYER_BY_ID["seed"]
    assert seed.x_shape == (1, 3, 30, 30) and seed.w_shape == (3, 3, 3, 3)
    assert seed.out_shape == (1, 3, 28, 28)
    assert seed.flops == 2 * 3 * 28 * 28 * 3 * 9
    assert B.LAYER_BY_ID["resnet_conv1"].out_shape == (1, 64, 112, 112)
    assert B.LAYER_BY_ID["resnet_1x1_down"].out_shape == (1, 512, 7, 7)
    dw = B.LAYER_BY_ID["mobilenet_dw"]
    assert dw.w_shape == (32, 1, 3, 3) and dw.flops == 2 * 32 * 112 * 112 * 9
    assert B.thread_counts(["1", "all", "1"]) == sorted({1, os.cpu_count() or 1})


def test_reference_check_catches_wrong_output():
    layer = B.LAYER_BY_ID["seed"]
    x, w, b = B.make_inputs(layer)
    ref = B.reference_output(layer, x, w, b, "relu")
    good = fastconv.conv2d(x, w, b, activation="relu")
    assert B.check_output(good, ref).ok
    bad = good.copy()
    bad[0, 1, 2, 3] += 0.5
    assert not B.check_output(bad, ref).ok
    assert not B.check_output(np.zeros_like(good), ref).ok


def test_run_case_flags_a_fast_wrong_kernel(monkeypatch):
    real = fastconv.conv2d

    def wrong(x, w, b=None, *args, out=None, **kw):
        r = real(x, w, b, *args, out=out, **kw)
        r[..., 0] = 0  # drop a column
        return r

    monkeypatch.setattr(fastconv, "conv2d", wrong)
    res = B.run_case(B.Case(B.LAYER_BY_ID["seed"], "fused", "silu", 1), rounds=1)
    assert res["status"] == "wrong"


def test_run_suite_skips_missing_peers_with_a_note(monkeypatch):
    _patch(monkeypatch, "peer_available", lambda p: (False, f"{p} not installed"))
    rep = B.run_suite([B.LAYER_BY_ID["seed"]], ("fused", "im2col"), ("relu",), (1,),
                      B.PEERS, rounds=1, progress=False)
    assert [r["impl"] for r in rep["results"]] == ["fused", "im2col"]
    assert all(r["status"] == "ok" for r in rep["results"])
    assert any("peer torch skipped" in n for n in rep["meta"]["notes"])
    im2col = rep["results"][1]
    assert im2col["workspace"]["bytes"] >= 27 * 28 * 28 * 4  # the column matrix
    table = B.format_table(rep)
    assert "seed" in table and "fused/im2col" in table
    assert "| seed |" in B.format_markdown(rep)


def test_target_summary_geomean_and_slower_layers():
    """The issue's comparisons computed from a report: geometric mean of fused
    time / peer time, and the layers where fused loses."""
    def res(layer, impl, t):
        return {"layer": layer, "impl": impl, "activation": "relu", "threads": 1,
                "status": "ok", "time": {"median": t}}
    rep = {"results": [res("a", "fused", 1.0), res("a", "onnxruntime", 2.0),
                       res("a", "separate", 0.5),
                       res("b", "fused", 2.0), res("b", "onnxruntime", 1.0),
                       res("b", "separate", 3.0)]}
    (line,) = B.target_summary(rep)
    assert "geometric mean over 2 layers: **1.00**" in line   # sqrt(0.5 * 2.0)
    assert "ONNX Runtime time" in line and "slower on: b (0.500x)" in line
    assert "fused slower than separate on: a (0.500x)" in line


def test_target_summary_raw_against_torch_and_packed():
    """The raw-weight comparisons: geometric mean of raw time / torch time,
    the layers where raw loses, and the worst raw / pre-packed time (paired
    rounds where the two took turns) with the layers over RAW_TARGET."""
    def res(layer, impl, t, paired=None):
        r = {"layer": layer, "impl": impl, "activation": "relu", "threads": 2,
             "status": "ok", "time": {"median": t}}
        if paired:
            r["paired"] = paired
        return r
    rep = {"results": [res("a", "fused", 1.0, {"raw": 1.1}), res("a", "raw", 1.2, {"fused": 1 / 1.1}),
                       res("a", "torch", 2.4),
                       res("b", "fused", 1.0, {"raw": 1.5}), res("b", "raw", 1.5, {"fused": 1 / 1.5}),
                       res("b", "torch", 0.75)]}
    (line,) = B.target_summary(rep)
    assert "raw time / torch eager time, geometric mean over 2 layers: **1.00**" in line
    assert "raw slower on: b (0.500x)" in line
    # from the paired ratios (1.1, 1.5), not the medians (1.2, 1.5)
    assert "raw time / pre-packed fused time: max **1.50** (b), over 1.25x on: b (1.50x)" in line


def test_raw_case_passes_the_plain_weight_array(monkeypatch):
    """`raw` calls conv2d(method="fused") with the ndarray; `fused` with a PackedWeight."""
    import fastconv
    seen = []
    real = fastconv.conv2d
    monkeypatch.setattr(fastconv, "conv2d",
                        lambda x, w, *a, **k: (seen.append((type(w), k["method"])), real(x, w, *a, **k))[1])
    layer = B.LAYER_BY_ID["seed"]
    for impl in ("raw", "fused"):
        run, _, ctx = B.make_runner(B.Case(layer, impl, "relu", 1), *B.make_inputs(layer))
        with ctx:
            run()
    assert seen == [(np.ndarray, "fused"), (fastconv._core.PackedWeight, "fused")]


def test_winograd_case_passes_a_winograd_pack(monkeypatch):
    """`winograd` calls conv2d(method="winograd") with pack_weight(w, method="winograd")."""
    seen = []
    real = fastconv.conv2d
    monkeypatch.setattr(fastconv, "conv2d",
                        lambda x, w, *a, **k: (seen.append((type(w), k["method"])),
                                               real(x, w, *a, **k))[1])
    layer = B.LAYER_BY_ID["seed"]
    run, _, ctx = B.make_runner(B.Case(layer, "winograd", "relu", 1), *B.make_inputs(layer))
    with ctx:
        run()
    assert seen == [(fastconv._core.WinogradWeight, "winograd")]


def test_winograd_column_checked_with_its_workspace_and_na_elsewhere(monkeypatch):
    """The winograd column: checked against the float64 reference, its
    workspace the library's figure for method="winograd"; "n.a." (not an
    error) on a layer it cannot compute; its ratios in the table and summary."""
    _patch(monkeypatch, "peer_available", lambda p: (False, f"{p} not installed"))
    layers = [B.LAYER_BY_ID["seed"], B.LAYER_BY_ID["resnet_1x1_down"]]
    rep = B.run_suite(layers, ("fused", "winograd"), ("relu",), (1,), (), rounds=1,
                      progress=False)
    by = {(r["layer"], r["impl"]): r for r in rep["results"]}
    wino = by["seed", "winograd"]
    assert wino["status"] == "ok" and wino["check"]["ok"], wino
    seed = B.LAYER_BY_ID["seed"]
    with B.fastconv_threads(1):   # the suite's thread count: the plan's blocks follow it
        expected = fastconv.workspace_bytes(seed.x_shape, seed.w_shape, method="winograd")
    assert wino["workspace"]["reported"] == expected > 0
    na = by["resnet_1x1_down", "winograd"]
    assert na["status"] == "skipped" and na["not_applicable"] and "3x3" in na["error"]
    assert not B.failures(rep)
    head, rows = B.table_rows(rep)
    assert "winograd" in head and "wino/fused" in head and "mem winograd" in head
    row = {r[0]: dict(zip(head, r)) for r in rows}
    assert row["resnet_1x1_down"]["winograd"] == "n.a."
    assert row["seed"]["wino/fused"].endswith("x") and row["seed"]["winograd"] != "n.a."
    md = B.format_markdown(rep)
    assert "| n.a. |" in md and "`winograd` is `method=\"winograd\"`" in md


def test_winograd_wrong_output_is_flagged(monkeypatch):
    real = fastconv.conv2d

    def wrong(x, w, b=None, *args, out=None, method="auto", **kw):
        r = real(x, w, b, *args, out=out, method=method, **kw)
        if method == "winograd":
            r[..., 5] *= 1.01   # a 1 % error in one output column
        return r

    monkeypatch.setattr(fastconv, "conv2d", wrong)
    res = B.run_case(B.Case(B.LAYER_BY_ID["seed"], "winograd", "relu", 1), rounds=1)
    assert res["status"] == "wrong"


def test_target_summary_winograd_against_fused_and_ort():
    def res(layer, impl, t):
        return {"layer": layer, "impl": impl, "activation": "relu", "threads": 1,
                "status": "ok", "time": {"median": t}}
    rep = {"results": [res("a", "fused", 2.0), res("a", "winograd", 1.0),
                       res("a", "onnxruntime", 4.0),
                       res("b", "fused", 1.0), res("b", "winograd", 1.0),
                       res("b", "onnxruntime", 1.0)]}
    (line,) = B.target_summary(rep)
    assert ("fused time / winograd time, geometric mean over 2 layers: **1.41**; under 1.5x "
            "on: b (1.00x)") in line
    assert "ONNX Runtime time / winograd time, geometric mean over 2 layers: **2.00**" in line


def test_block_retimed_when_the_machine_probe_finds_a_core_missing(monkeypatch):
    """A timing block of a multi-thread group with a probe under
    STALL_FRACTION of the peak on either side is timed again once the cores
    are back, its samples dropped, and the report says so."""
    # block 1: fine; block 2 (segment 2): a stall after it, the wait polls
    # twice more, then it is timed again with good probes around it
    probes = iter([1.0, 1.0, 0.4, 0.5, 1.0, 1.0])
    calls = []
    _patch(monkeypatch, "machine_probe",
                        lambda t: 1.0 if t == 1 else (calls.append(t), next(probes))[1])
    layer = B.LAYER_BY_ID["seed"]
    group = [B.Case(layer, impl, "relu", 2) for impl in ("fused", "separate")]
    res = B.run_group(group, rounds=4, check=False, segments=2)
    assert calls == [2] * 6
    assert all(r["status"] == "ok" for r in res)
    assert all(r["machine"] == {"probe_min": 1.0, "retimed": 1} for r in res)
    assert all(r["time"]["rounds"] == 4 for r in res)   # 2 per segment, none of the dropped
    line = B.machine_summary({"results": res})
    assert "Blocks re-timed: seed/relu/2 thr (1)" in line
    # a stall that outlasts the retries: the last timing is kept, and reported
    _patch(monkeypatch, "machine_probe", lambda t: 1.0 if t == 1 else 0.5)
    _patch(monkeypatch, "STALL_WAIT_SECONDS", 0.0)
    res = B.run_group(group, rounds=2, check=False, segments=1)
    assert all(r["machine"] == {"probe_min": 0.5, "retimed": B.STALL_RETRIES} for r in res)
    # on one thread nothing is probed or recorded
    res1 = B.run_group([B.Case(layer, "fused", "relu", 1)], rounds=1, check=False)
    assert "machine" not in res1[0] and B.machine_summary({"results": res1}) is None


def test_fused_vs_separate_is_paired_round_by_round(monkeypatch):
    """fused and separate take turns round by round, so their ratio is the
    median of the per-round ratios: a machine whose speed drifts between
    rounds (here x1, x2, x4, x8) moves both sides of each pair alike."""
    drift = [1.0, 2.0, 4.0, 8.0]

    def fake(fns, **kw):
        names = sorted(fns)
        return ({n: [d * (1.0 + 0.1 * k) for d in drift] for k, n in enumerate(names)},
                {n: 1 for n in names}, {})
    _patch(monkeypatch, "_interleaved_samples", fake)
    layer = B.LAYER_BY_ID["seed"]
    group = [B.Case(layer, impl, "relu", 1) for impl in ("fused", "separate")]
    fused, sep = B.run_group(group, rounds=4, check=False, segments=1)
    assert fused["paired"]["separate"] == pytest.approx(1.1)
    assert sep["paired"]["fused"] == pytest.approx(1 / 1.1)
    assert B._speedup(fused, sep) == pytest.approx(1.1)
    # without a pairing (a peer, timed alone) it is the ratio of the medians
    fused.pop("paired")
    fused["time"]["median"], sep["time"]["median"] = 2.0, 5.0
    assert B._speedup(fused, sep) == pytest.approx(2.5)
    assert B._ratio(fused, sep) == "2.50x"


def test_machine_probe_is_a_fraction_of_the_peak():
    assert B.machine_probe(1) == 1.0
    r = B.machine_probe(2)
    assert 0.0 <= r <= 1.0


def test_peak_is_measured_or_reported_unmeasured(monkeypatch):
    """The peak comes from the library's probe (or FASTCONV_PEAK_GFLOPS), never
    from a figure of some other machine: without a probe it is unmeasured (0.0,
    said so), and the report shows no % peak instead of dividing by it."""
    monkeypatch.delenv("FASTCONV_PEAK_GFLOPS", raising=False)
    peak, src = B.peak_gflops(1)
    if fastconv.config.config()["kernels"] in ("avx512", "avx2+fma"):
        assert peak == B.measured_peak_gflops(1) > 1.0 and src.startswith("measured")
    monkeypatch.setenv("FASTCONV_PEAK_GFLOPS", "1:50,2:90")
    assert B.peak_gflops(2) == (90.0, "FASTCONV_PEAK_GFLOPS")
    monkeypatch.delenv("FASTCONV_PEAK_GFLOPS")
    _patch(monkeypatch, "measured_peak_gflops", lambda t: 0.0)   # no probe here
    assert B.peak_gflops(1) == (0.0, B.UNMEASURED) and "unmeasured" in B.UNMEASURED
    case = B.Case(B.LAYER_BY_ID["seed"], "fused", "relu", 1)
    res = B.add_timing(B.new_result(case), case, B.Timing(1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1, 1))
    assert res["pct_peak"] is None and res["gflops"]["median"] > 0
    rep = {"meta": {"methods": ["fused"], "layers": ["seed"]}, "results": [res]}
    head, (row,) = B.table_rows(rep)
    assert row[head.index("% peak")] == "-"
    assert B.format_peak(0.0) == "unmeasured" and B.format_peak(229.4) == "229 GFLOP/s"


def test_cli_bench_tiny(tmp_path):
    r = _run_cli(["bench", "--layers", "seed", "--rounds", "1", "--no-chart", "--peers", "none",
                  "--out", str(tmp_path / "o"), "--markdown", str(tmp_path / "R.md")],
                 cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "seed" in r.stdout and "fused/sep" in r.stdout and "separate" in r.stdout
    data = json.loads((tmp_path / "o" / "results.json").read_text())
    assert {x["impl"] for x in data["results"]} == {"fused", "raw", "separate", "im2col",
                                                     "winograd"}
    assert "wino/fused" in r.stdout and "mem winograd" in r.stdout
    assert "raw/fused" in r.stdout
    assert all(x["status"] == "ok" and x["gflops"]["median"] > 0 for x in data["results"])
    assert "python -m fastconv bench" in (tmp_path / "R.md").read_text()


def test_cli_bench_chart(tmp_path):
    pytest.importorskip("matplotlib")
    r = _run_cli(["bench", "--layers", "seed", "--methods", "fused,im2col", "--rounds", "1",
                  "--peers", "none", "--out", str(tmp_path)], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    png = tmp_path / "chart.png"
    assert str(png) in r.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_rejects_unknown_layer(tmp_path):
    r = _run_cli(["bench", "--layers", "nope", "--peers", "none"], cwd=tmp_path)
    assert r.returncode != 0 and "unknown layer" in r.stderr


def test_demo_in_process():
    buf = io.StringIO()
    assert demo.main(file=buf) == 0
    text = buf.getvalue()
    assert "EQUAL" in text and "DIFFERENT" in text and "pre_activation" in text


def test_demo_cli(tmp_path):
    r = _run_cli(["demo"], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "behaved as expected" in r.stdout


def test_compose_kernels_matches_stacked_convolutions():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 12, 11))
    w1, w2 = rng.standard_normal((4, 2, 3, 2)), rng.standard_normal((3, 4, 2, 3))
    b1, b2 = rng.standard_normal(4), rng.standard_normal(3)
    wc, bc = demo.compose_kernels(w1, b1, w2, b2)
    stacked = B.reference_conv2d(B.reference_conv2d(x, w1, b1), w2, b2)
    np.testing.assert_allclose(B.reference_conv2d(x, wc, bc), stacked, rtol=1e-4, atol=1e-4)


def test_time_interleaved_reports_each_and_keeps_errors():
    calls = []

    def boom():
        raise RuntimeError("kernel exploded")

    res = B.time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b"),
                              "bad": boom}, rounds=4)
    assert isinstance(res["bad"], RuntimeError)
    assert res["a"].rounds == 4 and res["b"].rounds == 4 and res["a"].median > 0
    timed = calls[2:]  # after one warm-up call each
    last_a = len(timed) - 1 - timed[::-1].index("a")
    assert timed.index("b") < last_a  # rounds alternate: a.. b.. a.. b..
