"""pytest-benchmark suite configuration: options, shared data, the GFLOP/s summary.

Everything measured here (layers, FLOPs, reference check, peers, thread
control, workspace) comes from ``fastconv.bench``, shared with
``python -m fastconv bench``.

    pytest benchmarks/ --benchmark-only                       # the full suite
    pytest benchmarks/ --benchmark-only --fc-layers seed,resnet_3x3_64 --fc-threads 1
    pytest benchmarks/ --benchmark-disable -k seed            # CI smoke: each case once
"""
import functools
import os
import sys

import pytest

try:
    import fastconv  # noqa: F401  (installed, or the in-place build on sys.path)
except ImportError:  # plain `pytest benchmarks/` from a source checkout built in place
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastconv import bench as B  # noqa: E402


def pytest_addoption(parser):
    g = parser.getgroup("fastconv", "fastconv benchmark suite")
    g.addoption("--fc-layers", default=None,
                help="comma-separated layer ids (default: all): " + ",".join(B.LAYER_BY_ID))
    g.addoption("--fc-impls", default=None,
                help="comma-separated paths/peers (default: " + ",".join(B.IMPLS) + ")")
    g.addoption("--fc-activations", default=None,
                help="comma-separated activations (default: " + ",".join(B.ACTIVATIONS) + ")")
    g.addoption("--fc-no-pack", action="store_true",
                help="do not pre-pack fastconv weights with fastconv.pack_weight")
    g.addoption("--fc-threads", default=None,
                help="comma-separated thread counts, 'all' = os.cpu_count() (default: 1,all)")


def _opt(config, name, default):
    v = config.getoption(name)
    return [s.strip() for s in v.split(",") if s.strip()] if v else list(default)


def pytest_generate_tests(metafunc):
    if "fc_case" not in metafunc.fixturenames:
        return
    cfg = metafunc.config
    layers = B.select_layers(_opt(cfg, "--fc-layers", B.LAYER_BY_ID))
    impls = _opt(cfg, "--fc-impls", B.IMPLS)
    acts = _opt(cfg, "--fc-activations", B.ACTIVATIONS)
    threads = B.thread_counts(_opt(cfg, "--fc-threads", ["1", "all"]))
    cases, ids = [], []
    for layer in layers:
        for act in acts:
            for t in threads:
                for impl in impls:
                    cases.append(B.Case(layer, impl, act, t))
                    ids.append(f"{layer.id}-{impl}-{act}-t{t}")
    metafunc.parametrize("fc_case", cases, ids=ids)


@functools.lru_cache(maxsize=4)
def _inputs(layer_id):
    return B.make_inputs(B.LAYER_BY_ID[layer_id])


@functools.lru_cache(maxsize=2)
def _reference(layer_id, activation):
    return B.reference_output(B.LAYER_BY_ID[layer_id], *_inputs(layer_id), activation)


@pytest.fixture
def fc_pack(request):
    return not request.config.getoption("--fc-no-pack")


@pytest.fixture
def fc_data():
    """(inputs, reference) getters, cached across the cases of a layer."""
    return _inputs, _reference


_RESULTS = []


@pytest.fixture
def fc_record():
    """Append a result (fastconv.bench record format) for the terminal summary."""
    return _RESULTS.append


def pytest_terminal_summary(terminalreporter, config):
    timed = [r for r in _RESULTS if "time" in r]
    if not timed:
        return
    layers = list(dict.fromkeys(r["layer"] for r in timed))
    meta = {"methods": [m for m in B.METHODS if any(r["impl"] == m for r in timed)],
            "layers": layers}
    tr = terminalreporter
    tr.section("fastconv: GFLOP/s (median of pytest-benchmark rounds)")
    tr.write_line(B.format_table({"meta": meta, "results": timed}))
    p1, src = B.peak_gflops(1)
    tr.write_line(f"% peak: fused path against the FMA peak ({p1:.0f} GFLOP/s per core; "
                  f"{src}); fused/x = time(x)/time(fused); mem = extra bytes besides the output")
