"""Build the fastconv C kernels and their Cython wrappers.

Every C source is compiled for the baseline of its architecture; kernels that
need newer instructions (AVX2+FMA) are compiled into their own translation
units with their own flags and chosen at run time (see src/core/dispatch.c), never
with -march=native, so one wheel runs on any x86-64 or ARM machine.
"""
import glob
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SRC = "src"

# One entry per Cython module: the C sources it links.
EXTENSIONS = {
    "fastconv._core": [
        "core/alloc.c", "core/dispatch.c",
        "activation/activation.c", "activation/activation_portable.c",
        "activation/activation_avx2.c", "activation/activation_avx512.c",
        "activation/act_grad.c", "activation/act_grad_avx2.c",
        "conv/direct/conv_direct.c", "conv/direct/conv_direct_avx2.c",
        "conv/direct/conv_direct_avx512.c",
        "conv/depthwise/conv_depthwise.c", "conv/depthwise/conv_depthwise_avx2.c",
        "conv/depthwise/conv_depthwise_nhwc.c", "conv/depthwise/conv_depthwise_nhwc_avx2.c",
        "conv/depthwise/conv_depthwise_nhwc_avx512.c",
        "conv/small/conv_small.c", "conv/small/conv_small_avx2.c",
        "conv/first/conv_first.c", "conv/first/conv_first_avx2.c",
        "conv/first/conv_first_avx512.c",
        "conv/pointwise/conv_1x1.c", "conv/pointwise/conv_1x1_avx2.c",
        "conv/pointwise/conv_1x1_gemm.c", "conv/pointwise/conv_1x1_gemm_avx512.c",
        "conv/winograd/winograd.c", "conv/winograd/winograd_avx2.c",
        "conv/winograd/winograd_avx512.c",
        "im2col/im2col.c", "im2col/col2im.c",
        "grad/grad_weight.c", "grad/grad_weight_avx2.c", "grad/grad_weight_avx512.c",
        "train/batchnorm.c", "train/optimizer_step.c",
        "peak/peak.c", "peak/peak_avx2.c", "peak/peak_avx512.c",
    ],
    "fastconv._pool": ["pool/pool.c", "pool/pool_avx2.c"],
}

# Sources compiled with extra instruction-set flags, by file-name suffix.  They
# are compiled on every architecture (their code is inside #if guards), but the
# flags are only given on x86; src/core/dispatch.c picks them at run time.
ISA_FLAGS = {"_avx2.c": ["-mavx2", "-mfma"],
             "_avx512.c": ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mfma"]}


def _isa_flags(source):
    for suffix, flags in ISA_FLAGS.items():
        if source.endswith(suffix):
            return flags
    return None


def _is_x86():
    import platform
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


class BuildExt(build_ext):
    """Adds OpenMP where the compiler has it and per-file ISA flags."""

    def _try_flag(self, flag):
        import tempfile
        from setuptools._distutils.errors import CompileError, LinkError
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "omp_probe.c")
            with open(src, "w") as f:
                f.write("#include <omp.h>\nint main(void){return omp_get_max_threads()<1;}\n")
            try:
                objs = self.compiler.compile([src], output_dir=tmp, extra_postargs=[flag])
                self.compiler.link_executable(objs, os.path.join(tmp, "probe"),
                                              extra_postargs=[flag])
                return True
            except (CompileError, LinkError):
                return False

    def build_extensions(self):
        if self.compiler.compiler_type == "msvc":
            omp = ["/openmp"] if os.environ.get("FASTCONV_NO_OPENMP") != "1" else []
            omp_link = []
        else:
            use = os.environ.get("FASTCONV_NO_OPENMP") != "1" and self._try_flag("-fopenmp")
            omp = ["-fopenmp"] if use else []
            omp_link = ["-fopenmp"] if use else []
        self.openmp = bool(omp)
        san = os.environ.get("FASTCONV_SANITIZE")  # e.g. "address,undefined"
        if san or os.environ.get("FASTCONV_NO_OPENMP") == "1":
            # objects and modules left in build/ by a plain build look up to date
            # and would be reused as they are (with OpenMP, uninstrumented):
            # rebuild everything
            self.force = True
            self.compiler.force = True
        for ext in self.extensions:
            ext.extra_compile_args += omp
            ext.extra_link_args += omp_link
            if san:
                ext.extra_compile_args += [f"-fsanitize={san}", "-fno-omit-frame-pointer", "-g"]
                ext.extra_link_args += [f"-fsanitize={san}"]
        self._compile_sources_concurrently()
        super().build_extensions()

    def _compile_sources_concurrently(self):
        # Compile the sources of an extension concurrently (each with its own ISA
        # flags), then link as usual: the build is bound by a few large translation
        # units (the Cython module, the AVX-512 tiles), so one compiler process per
        # core roughly halves the wall time on two cores.  Installed once on the
        # compiler and never removed, so `build_ext -j` (extensions built in
        # parallel threads on this same compiler) works too.
        x86_unix = _is_x86() and self.compiler.compiler_type != "msvc"
        compile_one = self.compiler.compile

        def compile_all(sources, output_dir=None, macros=None, include_dirs=None, debug=0,
                        extra_preargs=None, extra_postargs=None, depends=None):
            def one(source):
                flags = (_isa_flags(source) or []) if x86_unix else []
                return compile_one([source], output_dir=output_dir, macros=macros,
                                   include_dirs=include_dirs, debug=debug,
                                   extra_preargs=extra_preargs,
                                   extra_postargs=list(extra_postargs or []) + flags,
                                   depends=depends)
            # largest first, so the longest compile does not start last
            order = sorted(sources, key=lambda s: -os.path.getsize(s) if os.path.exists(s) else 0)
            with ThreadPoolExecutor(max_workers=_build_jobs()) as pool:
                done = dict(zip(order, pool.map(one, order)))
            return [obj for s in sources for obj in done[s]]

        self.compiler.compile = compile_all


def _build_jobs():
    env = os.environ.get("FASTCONV_BUILD_JOBS")
    if env:
        return max(1, int(env))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


def _extensions():
    # -g0: no debug info (Python's own CFLAGS ask for -g), which costs a third of the compile time
    common_cflags = [] if sys.platform == "win32" else ["-O3", "-g0", "-std=c11", "-fno-math-errno"]
    exts = []
    for name, sources in EXTENSIONS.items():
        pyx = os.path.join(*name.split(".")) + ".pyx"
        exts.append(Extension(
            name,
            sources=[pyx] + [os.path.join(SRC, s) for s in sources],
            include_dirs=[SRC, np.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=list(common_cflags),
            depends=sorted(glob.glob(os.path.join(SRC, "**", "*.h"), recursive=True)),
        ))
    return cythonize(exts, language_level=3, compiler_directives={
        "boundscheck": False, "wraparound": False, "cdivision": True})


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
