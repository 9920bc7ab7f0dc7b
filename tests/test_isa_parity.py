"""Every kernel set against the float64 reference: the conv tests (test_conv2d,
test_nhwc) run in subprocesses with FASTCONV_ENABLE_AVX512=1 (AVX-512 tiles,
where the CPU has them), FASTCONV_DISABLE_AVX512=1 (AVX2) and
FASTCONV_DISABLE_SIMD=1 (portable), so each set is tested on this machine
whatever the default choice; plus an in-process bitwise comparison of the
AVX-512 and AVX2 tiles (same summation order)."""
import os
import subprocess

from _child import PKG_PARENT, child_env
import sys

import numpy as np
import pytest

import fastconv
from fastconv import _core

HERE = os.path.dirname(os.path.abspath(__file__))
CFG = fastconv.config.config()

ENVS = {
    "avx512": {"FASTCONV_ENABLE_AVX512": "1"},
    "avx2+fma": {"FASTCONV_DISABLE_AVX512": "1"},
    "portable": {"FASTCONV_DISABLE_SIMD": "1"},
}


def _expected(isa):
    if isa == "portable" or not CFG["cpu_avx2_fma"]:
        return "portable"
    if isa == "avx512" and not CFG["cpu_avx512"]:
        return "avx2+fma"
    return isa


def _env(isa):
    env = {k: v for k, v in child_env().items()
           if k not in ("FASTCONV_ENABLE_AVX512", "FASTCONV_DISABLE_AVX512",
                        "FASTCONV_DISABLE_SIMD")}
    env.update(ENVS[isa])
    return env


@pytest.fixture(scope="module")
def suite_runs():
    """The conv tests under every kernel set other than this process's (which
    the rest of the suite covers), started together (they take ~12 s each)."""
    procs = {}
    for isa in ENVS:
        if _expected(isa) == CFG["kernels"]:
            continue
        procs[isa] = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
             os.path.join(HERE, "test_conv2d.py"), os.path.join(HERE, "test_nhwc.py"),
             "-k", "not hypothesis"],
            env=_env(isa), cwd=PKG_PARENT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return {isa: (p.communicate()[0], p.returncode) for isa, p in procs.items()}


@pytest.mark.parametrize("isa", list(ENVS))
def test_conv_suite_under_each_isa(isa, suite_runs):
    got = subprocess.run([sys.executable, "-c", "import fastconv.config as c; "
                          "print(c.config()['kernels'])"], env=_env(isa), cwd=PKG_PARENT,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert got == _expected(isa)
    if isa not in suite_runs:
        pytest.skip(f"{got} is this process's kernel set: the whole suite tests it")
    out, rc = suite_runs[isa]
    assert rc == 0, f"{isa}: conv tests failed\n{out[-4000:]}"


# (N, C, H, W, Cout, k, stride, pad, dilation, groups): padded, unpadded,
# folded small-C, 1x1, grouped, partial blocks, odd pixel tails.
CASES = [
    (1, 64, 14, 14, 64, 3, 1, 1, 1, 1),
    (2, 16, 9, 11, 40, 3, 1, 1, 1, 1),
    (1, 3, 23, 19, 64, 7, 2, 3, 1, 1),
    (1, 32, 13, 17, 70, 1, 1, 0, 1, 1),
    (1, 24, 7, 7, 48, 3, 1, 0, 1, 1),
    (3, 6, 14, 12, 18, 3, 2, 2, 2, 3),
    (1, 130, 6, 6, 17, 3, 1, 1, 1, 1),
]


@pytest.mark.skipif(not CFG["cpu_avx512"], reason="no AVX-512 on this CPU/build")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_avx512_tiles_equal_avx2_tiles(rng, dtype, layout):
    before = CFG["kernels"]
    try:
        for (n, c, h, w, o, k, s, p, d, g) in CASES:
            x = rng.standard_normal((n, c, h, w)).astype(dtype)
            wt = rng.standard_normal((o, c // g, k, k)).astype(dtype)
            b = rng.standard_normal(o).astype(dtype)
            if layout == "NHWC":
                x, wt = x.transpose(0, 2, 3, 1).copy(), wt.transpose(2, 3, 1, 0).copy()
            outs = []
            for isa in ("avx512", "avx2+fma"):
                assert _core._force_kernels(isa)
                for act, pre in ((None, None), ("relu", None), ("silu", "relu")):
                    outs.append(fastconv.conv2d(x, wt, b, s, p, d, g, activation=act,
                                                pre_activation=pre, method="fused",
                                                data_format=layout))
            half = len(outs) // 2
            for a, r in zip(outs[:half], outs[half:]):
                # same FMAs in the same order per output, and activation code
                # that gives the same bits at either width: equal
                np.testing.assert_array_equal(a, r)
    finally:
        _core._force_kernels(before)
