"""Run-time configuration: which kernels were chosen, and threads.

The kernels are picked once, at the first convolution, from the CPU's
features (AVX-512 F/BW/DQ/VL, else AVX2+FMA on x86-64, else portable C);
``FASTCONV_DISABLE_SIMD=1`` in the environment before that forces the portable
ones; the AVX-512 tiles are used where the CPU and OS support them, and
``FASTCONV_DISABLE_AVX512=1`` keeps them off (AVX2 then).  Threads are
OpenMP's: ``OMP_NUM_THREADS``, :func:`set_num_threads` and
``threadpoolctl.threadpool_limits(n, user_api="openmp")`` all work.
"""
import contextlib
import os
import sys
import threading

from fastconv import _core

__all__ = ["config", "show_config", "set_num_threads", "get_num_threads"]

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
    """A dict: kernels ("avx512", "avx2+fma" or "portable"), cpu_avx2_fma,
    simd_disabled_by_env, cpu_avx512, avx512_disabled_by_env, avx512_wanted,
    openmp, threads."""
    return _core.config()


def show_config(file=None):
    """Print the kernel set in use, CPU features, OpenMP and thread count."""
    c = config()
    out = file or sys.stdout
    why = ("FASTCONV_DISABLE_SIMD is set" if c["simd_disabled_by_env"]
           else "CPU and OS have AVX-512 F/BW/DQ/VL" if c["kernels"] == "avx512"
           else "FASTCONV_DISABLE_AVX512 is set" if c.get("avx512_disabled_by_env")
           and c.get("cpu_avx512")
           else "CPU has AVX2+FMA; AVX-512 present but not wanted by this build, "
                "FASTCONV_ENABLE_AVX512=1 uses it" if c.get("cpu_avx512")
           and c["kernels"] == "avx2+fma"
           else "CPU has AVX2+FMA" if c["cpu_avx2_fma"] else "no AVX2+FMA on this CPU/build")
    print(f"fastconv kernels : {c['kernels']} ({why})", file=out)
    print(f"OpenMP           : {'on' if c['openmp'] else 'off (single-threaded build)'}", file=out)
    print(f"threads          : {c['threads']}"
          + (f" (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})"
             if "OMP_NUM_THREADS" in os.environ else ""), file=out)


def set_num_threads(n):
    """Threads for the following calls from this thread (OpenMP's setting)."""
    n = int(n)
    if n <= 0:
        raise ValueError(f"set_num_threads: n must be positive, got {n}")
    _core.set_num_threads(n)


def get_num_threads():
    """Threads the next call will use at most (1 without OpenMP)."""
    return _core.get_num_threads()
