"""Shared fixtures for the fastconv test suite.

Random data: every test that uses the ``rng`` fixture gets its own
``np.random.default_rng(seed)`` where ``seed`` is derived from the session
seed and the test node id.  The session seed is printed in the pytest header
and the per-test seed is attached to every failure report.  Re-run with
``FASTCONV_TEST_SEED=<session seed>`` to reproduce.
"""
import os
import random
import sys
import zlib

# Under pytest-xdist (addopts -n auto) every core already runs a worker: each
# worker's kernels and BLAS get one thread unless the caller set a count, so
# N workers do not run 2N spinning OpenMP threads on N cores (the suite took
# 153 s instead of 218 s on 2 cores, benchmarks/NOTES.md).  Tests of the
# threaded paths set their thread counts themselves; a run with -n 0 (CI's
# torch run) keeps the default count everywhere.  Set before NumPy and the
# kernels' OpenMP runtime are loaded, which read them once.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "fastconv",
        deadline=None,
        database=None,  # don't write .hypothesis/ into the repo
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fastconv"))
except ImportError:  # pragma: no cover
    pass


def _session_seed():
    env = os.environ.get("FASTCONV_TEST_SEED")
    if env:
        return int(env)
    return random.SystemRandom().randrange(2**32)


SESSION_SEED = _session_seed()
# pytest-xdist's workers are started after this module is imported in the
# controller and inherit its environment: one session seed for all of them,
# the one the header prints.
os.environ.setdefault("FASTCONV_TEST_SEED", str(SESSION_SEED))


def pytest_report_header(config):
    return ["fastconv test seed: FASTCONV_TEST_SEED=%d" % SESSION_SEED]


def seed_for(nodeid):
    return (SESSION_SEED * 1000003 + zlib.crc32(nodeid.encode())) % 2**63


@pytest.fixture
def rng(request):
    seed = seed_for(request.node.nodeid)
    request.node._fastconv_seed = seed
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    seed = getattr(item, "_fastconv_seed", None)
    if rep.failed and seed is not None:
        rep.sections.append(
            ("fastconv rng seed",
             "rng seed %d (session FASTCONV_TEST_SEED=%d)" % (seed, SESSION_SEED)))


@pytest.fixture(scope="session")
def torch():
    return pytest.importorskip("torch")


#: the reason ONNX's backend-test runner gives every node test that no
#: ``include`` pattern of tests/test_onnx_backend.py names (~3,500 of them)
_ONNX_NOT_INCLUDED = "no matched include pattern"


def pytest_collection_modifyitems(config, items):
    """Deselect the ONNX backend tests that the runner would only skip as
    "not included" (operators fastconv.onnx does not claim): running them
    just to report a skip cost ~10 s of the suite.  The tests excluded *with a
    reason* (an operator fastconv.onnx claims but a case it refuses) still run
    and skip with that reason."""
    keep, drop = [], []
    for item in items:
        fn = getattr(item, "obj", None)
        why = getattr(fn, "__unittest_skip_why__", None)
        (drop if why == _ONNX_NOT_INCLUDED else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
