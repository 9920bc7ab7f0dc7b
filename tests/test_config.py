"""Kernel dispatch, threads and pre-packed weights."""
from _child import run_python
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import _core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code, **env):
    return run_python(["-c", code], env=env, capture_output=True, text=True, check=True).stdout


def test_show_config_prints_kernels_openmp_threads():
    buf = io.StringIO()
    fastconv.show_config(file=buf)
    text = buf.getvalue()
    assert "kernels" in text and "OpenMP" in text and "threads" in text
    c = fastconv.config.config()
    assert c["kernels"] in ("avx512", "avx2+fma", "portable")
    assert c["kernels"] in text
    if c["cpu_avx2_fma"] and not c["simd_disabled_by_env"]:
        want_512 = c["cpu_avx512"] and c["avx512_wanted"]
        assert c["kernels"] == ("avx512" if want_512 else "avx2+fma")


def test_disable_simd_env_forces_portable():
    out = _run("import fastconv.config as c; print(c.config()['kernels'])",
               FASTCONV_DISABLE_SIMD="1")
    assert out.strip() == "portable"
    out = _run("import fastconv.config as c; print(c.config()['simd_disabled_by_env'])",
               FASTCONV_DISABLE_SIMD="0")
    assert out.strip() == "False"


def test_set_get_num_threads():
    old = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(1)
        assert fastconv.get_num_threads() == 1
        with pytest.raises(ValueError):
            fastconv.set_num_threads(0)
    finally:
        fastconv.set_num_threads(old)


def test_omp_num_threads_honoured():
    if not _core.config()["openmp"]:
        pytest.skip("built without OpenMP")
    out = _run("import fastconv; print(fastconv.get_num_threads())", OMP_NUM_THREADS="1")
    assert out.strip() == "1"


def test_threadpoolctl_limits():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _core.config()["openmp"]:
        pytest.skip("built without OpenMP")
    old = fastconv.get_num_threads()
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert fastconv.get_num_threads() == 1
    assert fastconv.get_num_threads() == old


def test_results_independent_of_threads(rng):
    x = rng.standard_normal((2, 16, 20, 20)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    old = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(1)
        y1 = fastconv.conv2d(x, w, padding=1, activation="relu")
        fastconv.set_num_threads(max(2, old))
        y2 = fastconv.conv2d(x, w, padding=1, activation="relu")
    finally:
        fastconv.set_num_threads(old)
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,stride,pad,groups", [(3, 1, 1, 1), (1, 1, 0, 1), (1, 2, 0, 2),
                                                 (7, 2, 3, 1), (3, 2, 1, 4)])
def test_packed_weight_matches_and_never_stale(rng, dtype, k, stride, pad, groups):
    x = rng.standard_normal((2, 8, 15, 13)).astype(dtype)
    w = rng.standard_normal((20, 8 // groups, k, k)).astype(dtype)
    b = rng.standard_normal(20).astype(dtype)
    kw = dict(stride=stride, padding=pad, groups=groups, activation="relu")
    ref = fastconv.conv2d(x, w, b, **kw)
    pw = fastconv.pack_weight(w, groups=groups)
    for method in ("fused", "separate", "auto"):
        np.testing.assert_array_equal(fastconv.conv2d(x, pw, b, method=method, **kw), ref)
    w[...] = 0            # the pack holds its own copy
    np.testing.assert_array_equal(fastconv.conv2d(x, pw, b, **kw), ref)
    assert not pw.weight.flags.writeable


def test_packed_weight_nhwc(rng):
    x = rng.standard_normal((1, 9, 11, 6)).astype(np.float32)
    w = rng.standard_normal((3, 3, 6, 10)).astype(np.float32)
    ref = fastconv.conv2d(x, w, padding=1, data_format="NHWC")
    pw = fastconv.pack_weight(w, data_format="NHWC")
    np.testing.assert_array_equal(fastconv.conv2d(x, pw, padding=1, data_format="NHWC"), ref)


def test_packed_weight_errors(rng):
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    pw = fastconv.pack_weight(w, groups=2)
    x = rng.standard_normal((1, 8, 6, 6)).astype(np.float32)
    with pytest.raises(ValueError, match="groups"):
        fastconv.conv2d(x, pw, groups=1)
    with pytest.raises(TypeError):
        fastconv.conv2d(x.astype(np.float64), pw, groups=2)
    with pytest.raises(ValueError):
        fastconv.pack_weight(w, groups=3)


def test_fma_peak_probe():
    """The in-library FMA probe measures something where SIMD kernels run, and
    says 0 (unknown) where it cannot (the portable kernels, no AVX2+FMA)."""
    g = _core.fma_peak_gflops(1, 200000, 2)
    if fastconv.config.config()["kernels"] in ("avx512", "avx2+fma"):
        assert g > 1.0
    else:
        assert g == 0.0
    assert _core.fma_peak_gflops(0, 1000, 1) == 0.0


def test_fma_peak_probe_follows_the_kernel_set():
    """The probe uses the vector width of the kernels that run: 512-bit FMAs for
    the AVX-512 set, 256-bit for AVX2, none (0) for the portable kernels.  The
    512-bit figure is not below the 256-bit one (two 512-bit pipes: ~1.5x on an
    Ice Lake server; one split 512-bit unit: about equal on a Zen 4), checked
    loosely (best of several tries) since the machine may be shared."""
    code = ("import fastconv.config as c, fastconv._core as k\n"
            "best = lambda: max(k.fma_peak_gflops(1, 2000000, 3) for _ in range(3))\n"
            "print(c.config()['kernels'], best(), k._force_kernels('avx2+fma') and best())")
    for env in ({}, {"FASTCONV_DISABLE_AVX512": "1"}, {"FASTCONV_DISABLE_SIMD": "1"}):
        kernels, g, g256 = _run(code, **env).split()
        g = float(g)
        if kernels == "portable":
            assert g == 0.0, env
        else:
            assert g > 1.0, env
        if kernels == "avx512":
            assert float(g256) > 1.0
            assert g > 0.8 * float(g256), (g, g256)
