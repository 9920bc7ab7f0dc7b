"""Child Python processes that import the same fastconv as the test run.

`python -c` puts its working directory first on sys.path, so a child started
in the source tree would import the uncompiled sources instead of an
installed package.  Children therefore start in the directory that holds the
fastconv this process imported (the source tree after an in-place build,
site-packages after `pip install .`), with the tests folder importable.
"""
import os
import subprocess
import sys

import numpy as np

import fastconv

TESTS = os.path.dirname(os.path.abspath(__file__))
PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))


def child_env(**extra):
    env = dict(os.environ)
    paths = [PKG_PARENT, TESTS] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def run_python(args, env=None, **kwargs):
    """subprocess.run([python, *args]) with child_env(**env), started in PKG_PARENT."""
    kwargs.setdefault("cwd", PKG_PARENT)
    return subprocess.run([sys.executable, *args], env=child_env(**(env or {})), **kwargs)


def portable_outputs(module, func, arg, tmp_path):
    """The list of arrays `module.func(arg)` returns when run in a child with
    the portable kernels forced (FASTCONV_DISABLE_SIMD=1), to compare with
    what the SIMD kernels of this process give."""
    path = os.path.join(str(tmp_path), f"{module}_{func}_portable.npz")
    code = ("import numpy as np, fastconv, %s as t; "
            "assert fastconv.config.config()['kernels'] == 'portable'; "
            "np.savez(%r, *t.%s(%r))" % (module, path, func, arg))
    run_python(["-c", code], env={"FASTCONV_DISABLE_SIMD": "1", "PYTHONHASHSEED": "0"},
               check=True)
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def assert_simd_matches_portable(module, compute, dtype, tmp_path):
    """`compute(dtype)` in this process (the SIMD kernels) against the same call
    in a child with the portable kernels forced: every output within 1e-4
    (float32) or 1e-12 (float64) of its largest magnitude + 1.  Skips where this
    build or CPU has no SIMD kernels."""
    import pytest
    import fastconv
    if fastconv.config.config()["kernels"] not in ("avx2+fma", "avx512"):
        pytest.skip("no SIMD kernels on this machine/build")
    ref = portable_outputs(module, compute.__name__, dtype, tmp_path)
    got = compute(dtype)
    assert len(got) == len(ref)
    tol = 1e-4 if dtype == "float32" else 1e-12
    for i, (y, r) in enumerate(zip(got, ref)):
        scale = np.abs(r).max() + 1.0
        assert np.abs(y - r).max() <= tol * scale, f"output {i} differs"
