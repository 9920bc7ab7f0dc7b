"""GIL release, thread safety and memory leaks."""
import gc
import os
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

import fastconv

from reference import conv2d_act_ref

METHODS = ["fused", "separate", "im2col", "auto"]


# ------------------------------------------------------------------ (a) GIL released

class Counter(threading.Thread):
    """Pure-Python busy loop; progresses only while it can hold the GIL."""

    def __init__(self):
        super().__init__(daemon=True)
        self.count = 0
        self.stop = False

    def run(self):
        while not self.stop:
            self.count += 1


def _counter_rate(seconds=0.1):
    c = Counter()
    c.start()
    time.sleep(0.02)
    c0, t0 = c.count, time.perf_counter()
    time.sleep(seconds)
    c1, t1 = c.count, time.perf_counter()
    c.stop = True
    c.join()
    return (c1 - c0) / (t1 - t0)


def _progress_during(fn):
    """Counter increments per second of fn's wall time, fn's duration."""
    c = Counter()
    c.start()
    time.sleep(0.02)  # let the counter get going
    c0, t0 = c.count, time.perf_counter()
    fn()
    c1, t1 = c.count, time.perf_counter()
    c.stop = True
    c.join()
    return (c1 - c0), t1 - t0


def _check_gil_released(make_call, what, min_duration=0.15):
    """make_call(scale) -> a zero-arg callable doing one fastconv call; the
    scale is doubled until that call takes at least min_duration seconds."""
    scale = 1
    while True:
        fn = make_call(scale)
        t0 = time.perf_counter()
        fn()
        # (up to 64: on a Zen 5 at two threads the conv's scale-16 call took
        # 0.05 s once warm, under the 0.5 * min_duration the check needs)
        if time.perf_counter() - t0 >= min_duration or scale >= 64:
            break
        scale *= 2
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    try:
        best = 0.0
        for attempt in range(3):
            rate = _counter_rate()
            n, dt = _progress_during(fn)
            # If the GIL were held for the whole call the counter could only run
            # for ~one switch interval (1 ms) of it: fraction ~ 0.001 / dt <= 0.7%.
            frac = n / (rate * dt)
            best = max(best, frac)
            if dt >= 0.5 * min_duration and best > 0.05:
                return
        pytest.fail("%s: a Python thread made only %.1f%% of its normal progress during a "
                    "%.2f s call: the GIL seems held" % (what, 100 * best, dt))
    finally:
        sys.setswitchinterval(old)


@pytest.mark.parametrize("method", ["fused", "separate", "im2col"])
def test_gil_released_during_conv(method):
    rng = np.random.default_rng(0)

    def make_call(scale):
        h = int(96 * scale ** 0.5)
        x = rng.standard_normal((1, 64, h, h)).astype(np.float32)
        w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
        return lambda: fastconv.conv2d(x, w, padding=1, method=method, activation="relu")

    _check_gil_released(make_call, "conv2d method=%s" % method)


def test_gil_released_during_activate():
    def make_call(scale):
        # float64 mish: a slow per-element function, so a single call is long
        x = np.linspace(-5.0, 5.0, 2**21 * scale)
        return lambda: fastconv.activate(x, "mish", out=x)

    _check_gil_released(make_call, "activate", min_duration=0.1)


# ------------------------------------------------------------------ (b) concurrent calls

def test_concurrent_calls_are_correct():
    rng = np.random.default_rng(1234)
    jobs = []
    specs = [
        dict(shape=(2, 8, 33, 31), w=(16, 8, 3, 3), kw=dict(padding=1), dtype=np.float32,
             method="fused", act="relu"),
        dict(shape=(1, 6, 40, 40), w=(12, 3, 5, 5), kw=dict(padding=2, stride=2, groups=2),
             dtype=np.float64, method="im2col", act="gelu"),
        dict(shape=(3, 4, 17, 23), w=(4, 1, 3, 3), kw=dict(padding="same", dilation=2, groups=4),
             dtype=np.float32, method="separate", act="silu"),
        dict(shape=(1, 16, 64, 64), w=(32, 16, 1, 1), kw=dict(), dtype=np.float32,
             method="auto", act="tanh"),
        dict(shape=(1, 32, 48, 48), w=(32, 32, 3, 3), kw=dict(padding=1), dtype=np.float32,
             method="im2col", act="mish"),
        dict(shape=(2, 3, 29, 37), w=(8, 3, 7, 7), kw=dict(padding=3, stride=2),
             dtype=np.float64, method="fused", act="elu"),
    ]
    for s in specs:
        x = rng.standard_normal(s["shape"]).astype(s["dtype"])
        w = rng.standard_normal(s["w"]).astype(s["dtype"])
        b = rng.standard_normal(s["w"][0]).astype(s["dtype"])
        ref, scale = conv2d_act_ref(x, w, b, activation=s["act"], pre_activation="relu",
                                    **s["kw"])
        jobs.append((x, w, b, s, ref, scale))

    n_threads = 4
    barrier = threading.Barrier(n_threads)
    errors = []

    def worker(tid):
        try:
            barrier.wait()
            for it in range(6):
                x, w, b, s, ref, scale = jobs[(tid + it) % len(jobs)]
                out = None
                if it % 2:
                    out = np.empty(ref.shape, s["dtype"])
                y = fastconv.conv2d(x, w, b, activation=s["act"], pre_activation="relu",
                                    method=s["method"], out=out, **s["kw"])
                rtol = 1e-4 if s["dtype"] == np.float32 else 1e-10
                err = np.abs(y.astype(np.float64) - ref)
                if not (err <= rtol * scale + 1e-30).all():
                    errors.append("thread %d iter %d %s: max err %.3g"
                                  % (tid, it, s["method"], err.max()))
                if it % 3 == 0:
                    a = fastconv.activate(y, "sigmoid")
                    if not np.allclose(a, 1 / (1 + np.exp(-y.astype(np.float64))), rtol=1e-5,
                                       atol=1e-6):
                        errors.append("thread %d activate mismatch" % tid)
        except Exception as e:  # pragma: no cover
            errors.append("thread %d raised %r" % (tid, e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a worker thread hung"
    assert not errors, errors


# ------------------------------------------------------------------ (c) no leaks

def _under_asan():
    """AddressSanitizer keeps freed blocks in its quarantine (256 MB by
    default), so the process's RSS grows over many calls without a leak."""
    try:
        with open("/proc/self/maps") as f:
            return "libasan" in f.read()
    except OSError:  # pragma: no cover - not Linux
        return False


def _rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - not Linux
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _many_calls(n, x, w, b, out, xbad):
    xh, wh = x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0)
    for i in range(n):
        m = METHODS[i % 4]
        v = (i // 4) % 8
        if v == 0:
            fastconv.conv2d(x, w, b, padding=1, method=m, activation="relu")
        elif v == 1:
            fastconv.conv2d(x, w, None, padding=1, method=m, pre_activation="silu")
        elif v == 2:
            fastconv.conv2d(x, w, b, padding=1, method=m, activation="gelu", out=out)
        elif v == 3:
            fastconv.conv2d(xh, wh, b, padding=1, method=m, data_format="NHWC")
        elif v == 4:
            fastconv.activate(x, "tanh")
        elif v == 5:
            try:
                fastconv.conv2d(xbad, w, b, method=m)
            except ValueError:
                pass
        elif v == 6:
            try:
                fastconv.conv2d(x, w, b, method=m, out=xbad)
            except (ValueError, TypeError):
                pass
        else:
            fastconv.conv2d(x[0], w, b, stride=2, padding="valid", method=m,
                            activation=fastconv.Activation("leaky_relu", negative_slope=0.2))


def _empty_call_cache():
    from fastconv import conv
    conv._CALL_CACHE.clear()


def test_no_memory_leak():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 8, 12, 12)).astype(np.float32)[:, :, :, ::-1]  # non-contiguous
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    out = np.empty((1, 16, 12, 12), np.float32)
    xbad = np.ones((1, 5, 12, 12), np.float32)
    # a call allocates a ~9 KiB output, a ~20 KiB im2col workspace, a copy of x:
    # leaking any of them over 3000 calls is several MB
    _many_calls(400, x, w, b, out, xbad)  # warm up caches, pools, thread teams
    # the per-call cache is bounded (cleared when full) and holds an
    # entry per new Activation object, which this loop makes: emptied at both
    # ends, so that what is measured is what lives outside them
    _empty_call_cache()
    gc.collect()
    rss0 = _rss_bytes()
    tracemalloc.start()
    try:
        snap0 = tracemalloc.take_snapshot()
        cur0, _ = tracemalloc.get_traced_memory()
        _many_calls(3000, x, w, b, out, xbad)
        _empty_call_cache()
        gc.collect()
        cur1, _ = tracemalloc.get_traced_memory()
        snap1 = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    rss1 = _rss_bytes()
    traced = cur1 - cur0
    top = snap1.compare_to(snap0, "lineno")[:5]
    assert traced < 512 << 10, "traced Python/NumPy memory grew by %d bytes:\n%s" % (
        traced, "\n".join(map(str, top)))
    if not _under_asan():
        assert rss1 - rss0 < 8 << 20, "RSS grew by %.1f MiB over 3000 calls" % (
            (rss1 - rss0) / 2**20)


def test_blas_runs_on_one_thread_while_fastconv_mixes_it_with_openmp(rng):
    """config.blas_one_thread: NumPy's BLAS on one thread inside, restored
    after; nothing changes with one fastconv thread.  conv2d_backward (whose
    GEMM paths take turns with the OpenMP kernels) runs under it."""
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="the BLAS limit needs it")
    from fastconv import grad
    from fastconv.config import blas_one_thread

    def blas_threads():
        info = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        if not info:
            pytest.skip("no BLAS library that threadpoolctl can see")
        return info[0]["num_threads"]

    before = fastconv.get_num_threads()
    try:
        with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
            fastconv.set_num_threads(2)
            assert blas_threads() == 2
            with blas_one_thread():
                assert blas_threads() == 1
            assert blas_threads() == 2
            seen = []
            real = grad._tconv_im2col

            def spy(*args, **kwargs):
                seen.append(blas_threads())
                return real(*args, **kwargs)

            grad._tconv_im2col = spy
            try:
                x = rng.standard_normal((2, 8, 5, 5)).astype(np.float32)
                w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
                g = rng.standard_normal((2, 16, 5, 5)).astype(np.float32)
                fastconv.conv2d_backward(g, x, w, padding=1, method="im2col")
            finally:
                grad._tconv_im2col = real
            assert seen == [1]
            fastconv.set_num_threads(1)
            with blas_one_thread():
                assert blas_threads() == 2
    finally:
        fastconv.set_num_threads(before)
