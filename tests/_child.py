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
