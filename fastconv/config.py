"""Run-time configuration: which kernels were chosen, and threads.

One instruction-set level is picked once, at the first call, from the CPU's
features (AVX-512 F/BW/DQ/VL, the default where the CPU and OS support it;
else AVX2+FMA on x86-64; else portable C), and every kernel family runs its
variant for it (src/core/dispatch.c; :func:`show_config` lists them).
``FASTCONV_DISABLE_SIMD=1`` in the environment before that forces the portable
ones, ``FASTCONV_DISABLE_AVX512=1`` keeps AVX-512 off (AVX2 then).  Threads are
OpenMP's: ``OMP_NUM_THREADS``, :func:`set_num_threads` and
``threadpoolctl.threadpool_limits(n, user_api="openmp")`` all work.

Fast math (off by default): :func:`set_fast_math` lets ``method="auto"``
pick the Winograd path where :func:`fastconv.conv.winograd_pays` says it pays;
its rounding differs from the direct path's (docs/DESIGN.md, "Winograd").
"""
import contextlib
import contextvars
import os
import sys
import threading

import numpy as np

from fastconv import _core

__all__ = ["config", "show_config", "set_num_threads", "get_num_threads", "set_fast_math",
           "get_fast_math", "fast_math"]


class _OneBlasThread:
    """The context of blas_one_thread: reentrant and from any thread; the
    outermost entry sets each BLAS library found to one thread (a ctypes call
    each, ~2 us: threadpoolctl's own ``limit()`` took ~50 us, a tenth of a
    small training step's convolution backward), the last exit restores the
    counts it found."""

    def __init__(self, libs):
        self._libs = libs
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = []

    def __enter__(self):
        with self._lock:
            if self._depth == 0:
                self._saved = [lib.get_num_threads() for lib in self._libs]
                for lib, n in zip(self._libs, self._saved):
                    if n != 1:
                        lib.set_num_threads(1)
            self._depth += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                for lib, n in zip(self._libs, self._saved):
                    if n != 1:
                        lib.set_num_threads(n)
        return False


_BLAS = []   # [_OneBlasThread or None], made on first use


def blas_one_thread():
    """A context in which NumPy's BLAS runs on one thread, when fastconv's
    OpenMP team has more than one: fastconv's code that mixes its OpenMP
    kernels with NumPy GEMMs (the gradients, a training step, an ONNX session
    run) runs under it.  The two thread pools spin-wait on the same cores
    after each call and starve each other: a ResNet-18 training step on 2
    cores took 300 ms with both pools at 2 threads, 151 ms with BLAS at one
    (benchmarks/NOTES.md, training step).  The limit is process-wide while
    it lasts (nested and concurrent uses: until the last one ends); it needs
    threadpoolctl (in the ``train``, ``onnx`` and ``bench`` extras: NumPy
    stays the only hard dependency).  Without it, or on one thread, nothing
    changes."""
    if _core.get_num_threads() <= 1:
        return contextlib.nullcontext()
    if not _BLAS:
        try:
            from threadpoolctl import ThreadpoolController
            libs = ThreadpoolController().select(user_api="blas").lib_controllers
            _BLAS.append(_OneBlasThread(list(libs)) if libs else None)
        except Exception:   # not installed, or an unusual BLAS: leave it alone
            _BLAS.append(None)
    return _BLAS[0] if _BLAS[0] is not None else contextlib.nullcontext()


def config():
    """A dict: kernels (the direct tiles' set: "avx512", "avx2+fma" or
    "portable"), isa (the one level every family follows: "avx512", "avx2" or
    "portable"), isa_forced, cpu_avx2_fma, simd_disabled_by_env, cpu_avx512,
    avx512_disabled_by_env, avx512_wanted, families ({family: its variant
    now, "none" where the family is not used}), openmp, threads."""
    return _core.config()


def show_config(file=None):
    """Print the ISA level and each kernel family's variant in use, CPU
    features, OpenMP and thread count."""
    c = config()
    out = file or sys.stdout
    why = ("forced (_core._force_kernels)" if c["isa_forced"]
           else "FASTCONV_DISABLE_SIMD is set" if c["simd_disabled_by_env"]
           else "CPU and OS have AVX-512 F/BW/DQ/VL" if c["kernels"] == "avx512"
           else "FASTCONV_DISABLE_AVX512 is set" if c.get("avx512_disabled_by_env")
           and c.get("cpu_avx512")
           else "CPU has AVX2+FMA; AVX-512 present but not wanted by this build, "
                "FASTCONV_ENABLE_AVX512=1 uses it" if c.get("cpu_avx512")
           and c["kernels"] == "avx2+fma"
           else "CPU has AVX2+FMA" if c["cpu_avx2_fma"] else "no AVX2+FMA on this CPU/build")
    print(f"fastconv kernels : {c['kernels']} ({why})", file=out)
    for family, variant in c["families"].items():
        print(f"  {family + ':':<22} {variant}", file=out)
    print(f"OpenMP           : {'on' if c['openmp'] else 'off (single-threaded build)'}", file=out)
    print(f"threads          : {c['threads']}"
          + (f" (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})"
             if "OMP_NUM_THREADS" in os.environ else ""), file=out)
    print(f"fast math        : {'on' if get_fast_math() else 'off'} (method='auto' "
          f"{'may pick' if get_fast_math() else 'never picks'} Winograd)", file=out)


def set_num_threads(n):
    """Threads for the following calls from this thread (OpenMP's setting)."""
    n = int(n)
    if n <= 0:
        raise ValueError(f"set_num_threads: n must be positive, got {n}")
    _core.set_num_threads(n)


def get_num_threads():
    """Threads the next call will use at most (1 without OpenMP)."""
    return _core.get_num_threads()


# ---- fast math --------------------------------------------------------------
# One process-wide switch (what set_fast_math sets, seen by every thread: a
# dask worker's threads, an ONNX session's callers) and a per-context override
# (what the `fast_math()` block sets: only the thread, or asyncio task, that
# entered it sees it, so one thread's block never changes another's numerics).
_FAST_MATH = [False]
_FAST_MATH_LOCK = threading.Lock()
_FAST_MATH_SCOPE = contextvars.ContextVar("fastconv_fast_math", default=None)
#: [True] once fast math was turned on anywhere: until then conv2d's hot path
#: skips get_fast_math() (a context-variable look-up, ~0.1 us of a 5 us call)
FAST_MATH_EVER_ON = [False]


def _as_flag(flag, where):
    if isinstance(flag, (bool, np.bool_)):
        return bool(flag)
    raise TypeError(f"{where}: flag must be a bool, got {flag!r}")


def set_fast_math(flag):
    """Let ``method="auto"`` use the Winograd path (``True``), or not (``False``,
    the default: auto is the direct path, whose numerics are the reference).

    With it on, ``conv2d(..., method="auto")``, the ``Conv2D`` layers with
    ``method="auto"`` and :class:`fastconv.onnx.InferenceSession` Conv nodes
    take Winograd F(4x4, 3x3) on 3x3, stride 1, dilation 1 convolutions where
    :func:`fastconv.conv.winograd_pays` says it is faster (enough output tiles
    and channels); its error is a few times the direct path's (docs/DESIGN.md,
    "Winograd").  Process-wide: every thread sees it (a ``with fast_math():``
    block of a thread takes precedence there).  Returns the previous setting.
    """
    flag = _as_flag(flag, "set_fast_math")
    with _FAST_MATH_LOCK:
        old = _FAST_MATH[0]
        _FAST_MATH[0] = flag
        FAST_MATH_EVER_ON[0] |= flag
    return old


def get_fast_math():
    """Whether ``method="auto"`` may pick the Winograd path in this thread now:
    the innermost ``fast_math()`` block's flag, else :func:`set_fast_math`'s."""
    scoped = _FAST_MATH_SCOPE.get()
    return _FAST_MATH[0] if scoped is None else scoped


@contextlib.contextmanager
def fast_math(flag=True):
    """``with fastconv.fast_math(): ...``: fast math on (or ``flag``) for the
    calls inside the block, in this thread (or asyncio task) only; the setting
    before is back on leaving it, even by an exception."""
    flag = _as_flag(flag, "fast_math")
    if flag:
        FAST_MATH_EVER_ON[0] = True
    token = _FAST_MATH_SCOPE.set(flag)
    try:
        yield
    finally:
        _FAST_MATH_SCOPE.reset(token)
