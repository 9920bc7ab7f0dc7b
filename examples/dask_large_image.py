"""fastconv on dask arrays: an image larger than you would like in memory, and
batch inference over a data set on a 2-process dask.distributed cluster.

1. Out of core: a 3 x SIZE x SIZE float32 image (16384: 3 GB) is written to a
   zarr array on disk chunk by chunk (row strips of 256 rows by default,
   ``--chunk-cols`` for tiles), filtered by a 3x3 Conv2D + relu
   (``fastconv.dask.conv2d``, padding 'same') and written back to a second
   zarr array chunk by chunk.  The process's resident memory is sampled
   during the filter, and the peak of live allocations traced
   (``tracemalloc``, which NumPy reports to): both stay a small multiple of
   one chunk.  The same read-compute-write pass without a halo
   (``x.map_blocks(relu)``) is measured too: dask's own floor.  A few windows
   of the output (the corners and across chunk boundaries) are checked
   against the in-memory ``fastconv.conv2d`` on the same pixels.
2. Throughput on an image that fits (3 x min(SIZE, 4096)^2): the in-memory
   ``fastconv.conv2d`` (all cores) against ``fastconv.dask.conv2d`` on the
   same array in chunks (threaded scheduler, one fastconv thread per dask
   thread), taking turns, median of the rounds.
3. Batch inference: a small CNN (fastconv layers) over IMAGES 32x32x3
   images: ``model.predict`` in one process (all cores), against
   ``fastconv.dask.predict`` on the threaded scheduler and on a
   ``LocalCluster(n_workers=2, processes=True, threads_per_worker=1)`` (the
   images made and persisted on the workers first), images per second.

    python examples/dask_large_image.py        # the full run: ~9 GB of disk for a while
    python examples/dask_large_image.py --size 1024 --chunk-rows 64 --images 2000 --rounds 1

The zarr files go to a temporary directory (``--workdir`` to choose it,
``--tmp`` for its parent), deleted at the end (``--keep`` keeps them).
"""
import argparse
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc

import numpy as np

try:
    import dask
    import dask.array as da
    import zarr
except ImportError:  # pragma: no cover
    sys.exit("this example needs dask[array], distributed and zarr "
             "(pip install 'fastconv[dask]' zarr)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
try:
    import fastconv
except ImportError:  # run from a source checkout built in place
    sys.path.insert(0, ROOT)
    import fastconv
import fastconv.dask as fd
from fastconv import layers as L

MB = 1024 * 1024


# ---------------------------------------------------------------------------
# memory


def rss_bytes():
    """Resident set size now (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def max_rss_bytes():
    """The process's resident high-water mark so far (ru_maxrss)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


class RSSSampler:
    """Samples the resident size every `interval` seconds in a thread: the
    peak of one phase, which ru_maxrss (a whole-process high-water) is not."""

    def __init__(self, interval=0.01):
        self.interval, self.peak = interval, rss_bytes() or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes() or 0)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes() or 0)


# ---------------------------------------------------------------------------
# 1. out of core


def make_filter(rng, c_in=3, c_out=3):
    w = (rng.standard_normal((c_out, c_in, 3, 3)) / np.sqrt(9 * c_in)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32) * 0.1
    return w, b


def write_random_image(path, size, rows, cols, rng):
    """A 3 x size x size float32 zarr array (uncompressed), one chunk at a time."""
    z = zarr.create_array(store=path, shape=(3, size, size), chunks=(3, rows, cols),
                          dtype="float32", compressors=None, overwrite=True)
    for r in range(0, size, rows):
        for c in range(0, size, cols):
            h, w = min(rows, size - r), min(cols, size - c)
            z[:, r:r + h, c:c + w] = rng.standard_normal((3, h, w), dtype=np.float32)
    return z


def check_windows(src, dst, w, b, size, rows, cols, rng, n_random=4, win=96):
    """Output windows against fastconv.conv2d on the same input pixels (+halo)."""
    starts = [(0, 0), (0, size - win), (size - win, 0), (size - win, size - win)]
    for _ in range(n_random):   # straddling a chunk boundary (corner) where there is one
        r = int(rng.integers(1, max(2, size // rows))) * rows - win // 2
        c = int(rng.integers(1, max(2, size // cols))) * cols - win // 2
        starts.append((min(max(r, 0), size - win), min(max(c, 0), size - win)))
    worst = 0.0
    for r0, c0 in starts:
        r1, c1 = r0 + win, c0 + win
        a, bb, l, rr = max(r0 - 1, 0), min(r1 + 1, size), max(c0 - 1, 0), min(c1 + 1, size)
        pads = ((a - (r0 - 1), (r1 + 1) - bb), (l - (c0 - 1), (c1 + 1) - rr))
        expect = fastconv.conv2d(np.asarray(src[:, a:bb, l:rr]), w, b, padding=pads,
                                 activation="relu")
        got = np.asarray(dst[:, r0:r1, c0:c1])
        err = float(np.abs(got - expect).max() / max(np.abs(expect).max(), 1e-30))
        worst = max(worst, err)
        if not np.allclose(got, expect, rtol=1e-5, atol=1e-5 * np.abs(expect).max()):
            raise AssertionError(f"window at ({r0}, {c0}) differs: max rel err {err:.3g}")
    return len(starts), worst


def store_measured(y, path, chunks, workers):
    """Compute y into a new zarr array chunk by chunk; time, RSS and traced peaks."""
    out = zarr.create_array(store=path, shape=y.shape, chunks=chunks, dtype="float32",
                            compressors=None, overwrite=True)
    rss0 = rss_bytes() or 0
    tracemalloc.start()
    with RSSSampler() as sampler:
        t0 = time.perf_counter()
        da.store(y, out, lock=False, scheduler="threads", num_workers=workers)
        t = time.perf_counter() - t0
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return dict(t=t, rss0=rss0, rss_peak=sampler.peak, traced_peak=traced)


def out_of_core(args, rng):
    workdir = args.workdir or tempfile.mkdtemp(prefix="fastconv-dask-", dir=args.tmp)
    os.makedirs(workdir, exist_ok=True)
    paths = {k: os.path.join(workdir, f"{k}.zarr") for k in ("image", "filtered", "copy")}
    size, rows, cols = args.size, min(args.chunk_rows, args.size), args.chunk_cols
    chunk_bytes = 3 * rows * cols * 4
    image_bytes = 3 * size * size * 4
    print(f"[1] out of core: 3 x {size} x {size} float32 ({image_bytes / MB:,.0f} MiB) in "
          f"chunks of 3 x {rows} x {cols} ({chunk_bytes / MB:.0f} MiB), "
          f"{args.workers} dask threads, in {workdir}")
    t0 = time.perf_counter()
    write_random_image(paths["image"], size, rows, cols, rng)
    t_write = time.perf_counter() - t0
    w, b = make_filter(rng)
    try:
        x = da.from_zarr(paths["image"])
        y = fd.conv2d(x, w, b, padding="same", activation="relu")
        conv = store_measured(y, paths["filtered"], (3, rows, cols), args.workers)
        n_checked, worst = check_windows(zarr.open_array(paths["image"], mode="r"),
                                         zarr.open_array(paths["filtered"], mode="r"), w, b,
                                         size, rows, cols, rng)
        # dask's own floor: the same read-compute-write of each chunk, no halo
        copy = store_measured(x.map_blocks(np.maximum, np.float32(0)), paths["copy"],
                              (3, rows, cols), args.workers)
        disk = sum(os.path.getsize(os.path.join(d, f)) for p in paths.values()
                   for d, _, fs in os.walk(p) for f in fs)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    res = dict(size=size, rows=rows, cols=cols, chunk_mib=chunk_bytes / MB,
               image_mib=image_bytes / MB, disk_mib=disk / MB, t_write=t_write, conv=conv,
               copy=copy, max_rss_mib=max_rss_bytes() / MB, n_checked=n_checked, worst=worst,
               blocks=int(np.prod(y.numblocks)))
    print(f"    wrote the input in {t_write:.1f} s; {disk / MB:,.0f} MiB of zarr files in all")
    for label, m in (("fastconv.dask.conv2d 3x3 + relu", conv),
                     ("baseline: x.map_blocks(relu), no halo", copy)):
        print(f"    {label:<38s} {m['t']:6.1f} s {size * size / m['t'] / 1e6:7.1f} Mpixel/s; "
              f"peak RSS {m['rss_peak'] / MB:6.0f} MiB (+{(m['rss_peak'] - m['rss0']) / MB:.0f} "
              f"= {(m['rss_peak'] - m['rss0']) / chunk_bytes:.1f} chunks), traced peak "
              f"{m['traced_peak'] / MB:.0f} MiB = {m['traced_peak'] / chunk_bytes:.1f} chunks")
    print(f"    ru_maxrss of the process so far {res['max_rss_mib']:.0f} MiB "
          f"(the image: {res['image_mib']:,.0f} MiB)")
    print(f"    {n_checked} output windows match fastconv.conv2d in memory "
          f"(max rel err {worst:.2g}); files deleted: {not args.keep}")
    return res


# ---------------------------------------------------------------------------
# 2. in memory vs chunked, same image


def median_time(fn, rounds):
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), times


def in_memory_vs_dask(args, rng):
    m = min(args.size, 4096)
    rows, cols = min(args.chunk_rows, m), min(args.chunk_cols, m)
    x = rng.standard_normal((3, m, m), dtype=np.float32)
    w, b = make_filter(rng)
    xd = da.from_array(x, chunks=(3, rows, cols))
    print(f"[2] 3 x {m} x {m} in memory: fastconv.conv2d ({fastconv.get_num_threads()} threads) "
          f"vs fastconv.dask.conv2d (chunks 3 x {rows} x {cols}, {args.workers} dask threads "
          f"x 1 fastconv thread)")

    def in_memory():
        return fastconv.conv2d(x, w, b, padding="same", activation="relu")

    def chunked():
        return fd.conv2d(xd, w, b, padding="same", activation="relu").compute(
            scheduler="threads", num_workers=args.workers)

    np.testing.assert_allclose(chunked(), in_memory(), rtol=1e-5, atol=1e-5)
    t_mem, t_dask = [], []
    for _ in range(args.rounds):   # take turns
        t_mem.append(median_time(in_memory, 1)[0])
        t_dask.append(median_time(chunked, 1)[0])
    res = dict(m=m, rows=rows, cols=cols, t_mem=float(np.median(t_mem)), t_dask=float(np.median(t_dask)))
    res["ratio"] = res["t_dask"] / res["t_mem"]
    print(f"    in memory {res['t_mem'] * 1e3:.0f} ms ({m * m / res['t_mem'] / 1e6:.0f} Mpixel/s), "
          f"dask {res['t_dask'] * 1e3:.0f} ms ({m * m / res['t_dask'] / 1e6:.0f} Mpixel/s): "
          f"dask/in-memory time {res['ratio']:.2f} (median of {args.rounds})")
    return res


# ---------------------------------------------------------------------------
# 3. batch inference


def small_cnn():
    L.set_random_seed(0)
    return L.Sequential([
        L.Conv2D(16, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),
        L.Conv2D(32, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),
        L.Conv2D(64, 3, padding="same", activation="relu"),
        L.GlobalAveragePooling2D(),
        L.Dense(10, activation="softmax"),
    ], input_shape=(32, 32, 3))


def batch_inference(args, rng):
    import distributed
    n, bs = args.images, args.batch_size
    per_chunk = max(bs, n // 20)
    model = small_cnn()
    print(f"[3] batch inference: {n:,} images 32x32x3, small CNN "
          f"({model.flops() / 1e6:.1f} MFLOP/image), batch {bs}, dask chunks of {per_chunk}")
    assert n > 0
    # the workers are new interpreters: let them import this fastconv
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=None, silence_logs=40)
    client = distributed.Client(cluster, set_as_default=False)
    try:
        # the images are sent to the workers once, chunk by chunk in turn (as a
        # data set already loaded into a cluster), before any timing
        x = rng.standard_normal((n, 32, 32, 3), dtype=np.float32)
        xd = da.from_array(x, chunks=(per_chunk, 32, 32, 3))
        parts = client.scatter([x[s:s + per_chunk] for s in range(0, n, per_chunk)])
        on_cluster = da.concatenate([da.from_delayed(dask.delayed(f), f_shape, np.float32)
                                     for f, f_shape in zip(parts, [p.shape for p in
                                                                   np.array_split(x, range(per_chunk, n, per_chunk))])])
        held = sorted(len(keys) for keys in client.has_what().values())
        print(f"    the {len(parts)} chunks are held by the workers as {held}")
        xd = da.from_array(x, chunks=(per_chunk, 32, 32, 3))
        runs = {
            "single process, model.predict": lambda: model.predict(x, batch_size=bs),
            f"fastconv.dask.predict, threaded ({args.workers} x 1 thread)":
                lambda: fd.predict(model, xd, batch_size=bs).compute(
                    scheduler="threads", num_workers=args.workers),
            "fastconv.dask.predict, LocalCluster 2 processes x 1 thread":
                lambda: fd.predict(model, on_cluster, batch_size=bs).compute(scheduler=client),
        }
        expect = model.predict(x, batch_size=bs)
        for name, run in runs.items():   # warm up and check
            np.testing.assert_allclose(run(), expect, rtol=1e-5, atol=1e-6)
        times = {name: [] for name in runs}
        for _ in range(args.rounds):     # take turns
            for name, run in runs.items():
                times[name].append(median_time(run, 1)[0])
    finally:
        client.close()
        cluster.close()
    res = {}
    base = float(np.median(times["single process, model.predict"]))
    for name, ts in times.items():
        t = float(np.median(ts))
        res[name] = dict(t=t, ips=n / t, ratio=base / t)
        print(f"    {name:<62s} {t:6.2f} s  {n / t:8,.0f} images/s  x{base / t:.2f}")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=16384, help="image side (default 16384: 3 GB)")
    ap.add_argument("--chunk-rows", type=int, default=256, help="rows per chunk (default 256)")
    ap.add_argument("--chunk-cols", type=int, default=0,
                    help="columns per chunk (default 0: the full width, row strips)")
    ap.add_argument("--images", type=int, default=20000, help="images for batch inference")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds (median)")
    ap.add_argument("--workers", type=int, default=os.cpu_count(),
                    help="dask threads (default: the cores)")
    ap.add_argument("--workdir", default=None, help="where the zarr files go (default: a "
                    "temporary directory)")
    ap.add_argument("--tmp", default=None, help="parent of the temporary directory")
    ap.add_argument("--keep", action="store_true", help="keep the zarr files")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: 1,2,3")
    args = ap.parse_args()
    args.chunk_cols = args.chunk_cols or args.size
    skip = {s for s in args.skip.split(",") if s}
    rng = np.random.default_rng(0)
    print(f"fastconv {fastconv.__version__}, dask {dask.__version__}, zarr {zarr.__version__}, "
          f"{os.cpu_count()} cores; fastconv.config: {fastconv.config.config()['kernels']}")
    # part 1 first: ru_maxrss is a whole-process high-water mark
    if "1" not in skip:
        out_of_core(args, rng)
    if "2" not in skip:
        in_memory_vs_dask(args, rng)
    if "3" not in skip:
        batch_inference(args, rng)


if __name__ == "__main__":
    main()
