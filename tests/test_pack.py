"""Raw-weight calls (weights packed inside the call, into a kept buffer) against
pre-packed ones and the float64 reference: shapes around the packing blocks
(16 f32 / 8 f64 output channels, 16 / 8 columns per transpose), both dtypes,
NCHW/OIHW and NHWC/HWIO (and a strided HWIO view), groups and depthwise,
every kernel set; weights changed in place between calls; concurrent calls
from several Python threads with different weights."""
import concurrent.futures
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import _core
from _child import PKG_PARENT, child_env
from reference import conv2d_act_ref

CFG = fastconv.config.config()
KERNELS = ["portable"] + (["avx2+fma"] if CFG["cpu_avx2_fma"] else []) \
    + (["avx512"] if CFG["cpu_avx512"] else [])


@pytest.fixture
def kernels(request):
    """Force a kernel set in this process for one test, then restore it."""
    before = CFG["kernels"]
    assert _core._force_kernels(request.param)
    yield request.param
    _core._force_kernels(before)


# (N, C_in, H, W, C_out, k, stride, pad, groups): C_out around one and two
# blocks, C_in * taps around the transpose width (full chunks, tails, fewer
# columns than one chunk), 1x1 (layouts A and B), small images with many
# channels (each block packed by the work item that reads it) and bigger or
# batched ones (packed before the tiles), batches of small images with weights
# much bigger than them (weight-major: each block group packed by the run of
# work items that reads it over the whole batch; a partial last block, grouped,
# strided), grouped, depthwise and multiplier 2.
CASES = [
    (1, 16, 5, 5, 16, 3, 1, 1, 1),
    (1, 17, 6, 5, 15, 3, 1, 1, 1),
    (1, 7, 7, 7, 17, 3, 1, 1, 1),
    (1, 64, 4, 4, 40, 3, 1, 1, 1),
    (1, 9, 12, 11, 33, 3, 2, 1, 1),
    (2, 24, 9, 9, 8, 3, 1, 0, 1),
    (1, 3, 20, 20, 24, 5, 2, 2, 1),
    (1, 33, 6, 6, 9, 1, 1, 0, 1),
    (1, 32, 10, 10, 70, 1, 1, 0, 1),
    (1, 40, 10, 10, 48, 1, 2, 0, 1),
    (1, 16, 12, 10, 16, 3, 1, 1, 16),
    (1, 16, 11, 9, 32, 3, 1, 1, 16),
    (1, 24, 8, 8, 36, 3, 1, 1, 3),
    (1, 128, 3, 3, 130, 3, 1, 1, 1),
    (1, 256, 5, 5, 288, 3, 1, 1, 1),   # one band, enough blocks: packed in the work items
    (4, 256, 2, 3, 280, 3, 1, 1, 1),   # weight-major
    (3, 64, 3, 3, 96, 3, 1, 1, 2),
    (2, 128, 5, 5, 160, 3, 2, 1, 1),
    (2, 128, 10, 10, 160, 3, 1, 1, 1),   # weight-major over two bands of tiles
]


def _data(rng, case, dtype):
    n, c, h, w, o, k, s, p, g = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c // g, k, k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    return x, wt, b


def _tol(dtype):
    return 1e-4 if dtype == np.float32 else 1e-11


def _call(x, w, b, case, layout, **kw):
    n, c, h, wd, o, k, s, p, g = case
    if layout == "NCHW, HWIO weight":   # the OIHW view of an HWIO array (a layer's kernel)
        layout = "NCHW"
        if not isinstance(w, _core.PackedWeight):
            w = np.ascontiguousarray(w.transpose(2, 3, 1, 0)).transpose(3, 2, 0, 1)
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        if not isinstance(w, _core.PackedWeight):
            w = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    y = fastconv.conv2d(x, w, b, stride=s, padding=p, groups=g, data_format=layout, **kw)
    return y.transpose(0, 3, 1, 2) if layout == "NHWC" else y


@pytest.mark.parametrize("kernels", KERNELS, indirect=True)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC", "NCHW, HWIO weight"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_raw_equals_packed_and_reference(rng, kernels, layout, dtype):
    for case in CASES:
        x, w, b = _data(rng, case, dtype)
        n, c, h, wd, o, k, s, p, g = case
        ref, scale = conv2d_act_ref(x, w, b, stride=s, padding=p, groups=g, activation="relu")
        pw = fastconv.pack_weight(w if layout != "NHWC" else w.transpose(2, 3, 1, 0), g,
                                  data_format="NHWC" if layout == "NHWC" else "NCHW")
        for method in ("fused", "auto"):
            raw = _call(x, w, b, case, layout, activation="relu", method=method)
            again = _call(x, w, b, case, layout, activation="relu", method=method)
            packed = _call(x, pw, b, case, layout, activation="relu", method=method)
            assert np.max(np.abs(raw - ref) / (1 + scale)) < _tol(dtype), (case, method)
            # the same kernels on the same packed values: the same bits
            np.testing.assert_array_equal(raw, packed, err_msg=str((case, method)))
            np.testing.assert_array_equal(raw, again, err_msg=str((case, method)))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_repack_into_out(rng, layout, dtype):
    """pack_weight(w2, out=pw) packs w2 into pw's buffers: the same object,
    the same bits as a fresh pack of w2, w2's values against the reference,
    and an inf in the new weights seen by the padding-tap skip."""
    for case in CASES:
        x, w, b = _data(rng, case, dtype)
        n, c, h, wd, o, k, s, p, g = case
        w2 = rng.standard_normal(w.shape).astype(dtype)
        user = (lambda a: a) if layout == "NCHW" else (lambda a: a.transpose(2, 3, 1, 0))
        pw = fastconv.pack_weight(user(w), g, data_format=layout)
        keep = _call(x, pw, b, case, layout, activation="relu")
        assert fastconv.pack_weight(user(w2), g, data_format=layout, out=pw) is pw
        got = _call(x, pw, b, case, layout, activation="relu")
        fresh = _call(x, fastconv.pack_weight(user(w2), g, data_format=layout), b, case, layout,
                      activation="relu")
        ref, scale = conv2d_act_ref(x, w2, b, stride=s, padding=p, groups=g, activation="relu")
        assert np.max(np.abs(got - ref) / (1 + scale)) < _tol(dtype), case
        np.testing.assert_array_equal(got, fresh, err_msg=str(case))
        assert not np.array_equal(got, keep)
        np.testing.assert_array_equal(pw.weight, w2)
        assert not pw.weight.flags.writeable
        # an inf in a corner weight reaches the outputs whose taps read padding
        w3 = w2.copy()
        w3[0, 0, 0, 0] = np.inf
        fastconv.pack_weight(user(w3), g, data_format=layout, out=pw)
        fresh = _call(x, fastconv.pack_weight(user(w3), g, data_format=layout), b, case, layout)
        np.testing.assert_array_equal(_call(x, pw, b, case, layout), fresh, err_msg=str(case))


def test_repack_refuses_a_different_pack_and_changes_nothing(rng):
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    pw = fastconv.pack_weight(w, 2)
    x = rng.standard_normal((1, 8, 6, 6)).astype(np.float32)
    before = fastconv.conv2d(x, pw, groups=2, padding=1)
    bad = [(rng.standard_normal((8, 4, 3, 2)).astype(np.float32), 2, ValueError, "size"),
           (w.astype(np.float64), 2, ValueError, "float64"),
           (rng.standard_normal((8, 8, 3, 3)).astype(np.float32), 1, ValueError, "groups=1"),
           (w, 2, TypeError, "PackedWeight")]
    for new, groups, err, words in bad:
        out = w if err is TypeError else pw
        with pytest.raises(err, match=words):
            fastconv.pack_weight(new, groups, out=out)
    np.testing.assert_array_equal(pw.weight, w)
    np.testing.assert_array_equal(fastconv.conv2d(x, pw, groups=2, padding=1), before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_hwio_view(rng, dtype):
    """An NHWC call whose HWIO weight is a strided view (every other output
    channel of a bigger array): neither dense OIHW rows nor o-contiguous."""
    case = (1, 12, 7, 7, 20, 3, 1, 1, 1)
    x, _, b = _data(rng, case, dtype)
    big = rng.standard_normal((3, 3, 12, 40)).astype(dtype)
    w_hwio = big[..., ::2]
    y = fastconv.conv2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w_hwio, b, padding=1,
                        data_format="NHWC", activation="relu", method="fused")
    ref, scale = conv2d_act_ref(x, np.ascontiguousarray(w_hwio.transpose(3, 2, 0, 1)), b,
                                padding=1, activation="relu")
    assert np.max(np.abs(y.transpose(0, 3, 1, 2) - ref) / (1 + scale)) < _tol(dtype)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("case", [(1, 64, 5, 5, 48, 3, 1, 1, 1), (1, 16, 9, 9, 16, 3, 1, 1, 16),
                                  (1, 32, 6, 6, 24, 1, 1, 0, 1), (2, 20, 16, 16, 20, 3, 1, 1, 1)])
def test_weight_changed_in_place_changes_the_next_result(rng, layout, case):
    """Nothing packed outlives a call: the second call sees the new values
    (the same array object, data pointer and shape; the cached plan is used)."""
    x, w, b = _data(rng, case, np.float32)
    n, c, h, wd, o, k, s, p, g = case
    w_user = w if layout == "NCHW" else np.ascontiguousarray(w.transpose(2, 3, 1, 0))

    def call():
        xx = x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        y = fastconv.conv2d(xx, w_user, b, stride=s, padding=p, groups=g, data_format=layout,
                            activation="relu")
        return y if layout == "NCHW" else y.transpose(0, 3, 1, 2)

    y1 = call()
    w_user *= -0.5                       # in place: same object and buffer
    w_user.flat[w_user.size // 3] += 4.0  # and one weight of one block alone
    y2 = call()
    w_now = w_user if layout == "NCHW" else w_user.transpose(3, 2, 0, 1)
    ref, scale = conv2d_act_ref(x, w_now, b, stride=s, padding=p, groups=g, activation="relu")
    assert np.max(np.abs(y2 - ref) / (1 + scale)) < 1e-4
    assert not np.array_equal(y1, y2)


@pytest.mark.parametrize("threads", [1, 2])
def test_inf_weight_in_one_block_raw(rng, threads):
    """Blocks packed in their work items (one 3x16 image, 288 output channels:
    one band of tiles, a work item per pair of blocks) decide the padding-tap
    skips (top-row tiles: kernel row 0; row ends: the end pixels) on their own
    weights: an inf in one block still gives NaN at that
    block's padded outputs (as the zero-padded reference), the other blocks
    skip those taps and are exact.  Also over a batch of two (weight-major:
    a block group packed once for its run of work items, from OIHW and from
    an HWIO view) and with the weights packed up front (a batch of 40)."""
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    try:
        for n, hwio in ((1, False), (2, False), (2, True), (40, False)):
            case = (n, 256, 3, 16, 288, 3, 1, 1, 1)   # 8-pixel tiles within rows
            for dtype in (np.float32, np.float64):
                x, w, b = _data(rng, case, dtype)
                w[3, 5, 0, 0] = np.inf            # block 0, top-left tap
                wv = np.ascontiguousarray(w.transpose(2, 3, 1, 0)).transpose(3, 2, 0, 1) \
                    if hwio else w
                y = fastconv.conv2d(x, wv, b, padding=1, method="fused")
                ref, scale = conv2d_act_ref(x, w, b, padding=1)
                np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
                fin = np.isfinite(ref)
                assert np.max(np.abs(y[fin] - ref[fin]) / (1 + scale[fin])) < _tol(dtype)
                assert np.isnan(y[:, 3]).any() and np.isfinite(y[:, 32:]).all()
    finally:
        fastconv.set_num_threads(before)


def test_concurrent_raw_calls_with_different_weights(rng):
    """Calls from several Python threads at once (the GIL is released in the
    kernels), one weight array each, same shapes (the same cached plan): each
    gets its own weights' result, every time."""
    cases = [(1, 96, 7, 7, 96, 3, 1, 1, 1), (1, 32, 14, 14, 64, 1, 2, 0, 1)]
    for case in cases:
        n, c, h, wd, o, k, s, p, g = case
        x = rng.standard_normal((n, c, h, wd)).astype(np.float32)
        ws = [rng.standard_normal((o, c // g, k, k)).astype(np.float32) for _ in range(4)]
        b = rng.standard_normal(o).astype(np.float32)
        for layout in ("NCHW", "NHWC"):
            expect = [_call(x, w, b, case, layout, activation="relu") for w in ws]

            def work(i):
                for _ in range(15):
                    y = _call(x, ws[i], b, case, layout, activation="relu")
                    if not np.array_equal(y, expect[i]):
                        return False
                return True

            with concurrent.futures.ThreadPoolExecutor(4) as ex:
                assert all(ex.map(work, range(4))), (case, layout)


def test_scratch_is_kept_and_released(rng):
    """A raw call's buffer is kept for the next call (it does not grow on a
    repeat) and release_scratch frees it."""
    case = (1, 64, 6, 6, 64, 3, 1, 1, 1)
    x, w, b = _data(rng, case, np.float32)
    fastconv.conv2d(x, w, b, padding=1)
    kept = _core.scratch_bytes()
    assert kept >= w.nbytes   # at least the packed weights
    fastconv.conv2d(x, w, b, padding=1)
    assert _core.scratch_bytes() == kept
    _core.release_scratch()
    assert _core.scratch_bytes() == 0


@pytest.mark.skipif(CFG["kernels"] == "portable", reason="this process runs the portable set")
def test_module_with_portable_kernels_forced_at_startup():
    """This module in a child started with FASTCONV_DISABLE_SIMD=1 (the
    portable set chosen at start-up, not forced afterwards)."""
    env = child_env(FASTCONV_DISABLE_SIMD="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=",
                        os.path.abspath(__file__), "-k", "not portable_kernels_forced"],
                       env=env, cwd=PKG_PARENT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(37, 21, 3, 3), (20, 33, 1, 1), (18, 17, 9, 9)],
                         ids=["3x3", "1x1", "9x9"])
def test_packs_of_strided_sources(rng, dtype, shape):
    """A pack keeps a private copy of any strided source (an HWIO array's
    view keeps its order; others are copied to dense OIHW by the blocked C
    transpose, tails included), and packs, repacks and convolves exactly as
    a pack of the same weights given dense."""
    O, I, KH, KW = shape
    base = rng.standard_normal((KH, KW, 2 * I, 2 * O)).astype(dtype)
    sources = {
        "hwio view": np.ascontiguousarray(base[:, :, :I, :O]).transpose(3, 2, 0, 1),
        "strided hwio view": base[:, :, ::2, ::2].transpose(3, 2, 0, 1),
        "sliced oihw": np.ascontiguousarray(base.transpose(3, 2, 0, 1))[::2, 1::2],
        "iohw view": np.ascontiguousarray(base[:, :, :I, :O].transpose(2, 3, 0, 1))
                      .transpose(1, 0, 2, 3),
    }
    x = rng.standard_normal((2, I, 11, 12)).astype(dtype)
    for name, src in sources.items():
        assert src.shape == shape, name
        dense = np.ascontiguousarray(src)
        pk = fastconv.pack_weight(src)
        np.testing.assert_array_equal(pk.weight, dense, err_msg=name)
        np.testing.assert_array_equal(pk.dense_weight(), dense, err_msg=name)
        want = fastconv.conv2d(x, fastconv.pack_weight(dense), None, padding=1)
        np.testing.assert_array_equal(fastconv.conv2d(x, pk, None, padding=1), want,
                                      err_msg=name)
        # repack every other kind of source into this pack
        for other_name, other in sources.items():
            new = other * 2
            fastconv.pack_weight(new, out=pk)
            np.testing.assert_array_equal(pk.weight, new, err_msg=f"{other_name} into {name}")
            np.testing.assert_array_equal(pk.dense_weight(), new,
                                          err_msg=f"{other_name} into {name}")
            np.testing.assert_array_equal(
                fastconv.conv2d(x, pk, None, padding=1),
                fastconv.conv2d(x, fastconv.pack_weight(np.ascontiguousarray(new)), None,
                                padding=1), err_msg=f"{other_name} into {name}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(32, 16, 3, 3), (20, 33, 1, 1), (48, 1, 3, 3)],
                         ids=["3x3", "1x1", "depthwise"])
def test_shared_pack_reads_the_kernel_itself(rng, dtype, shape):
    """conv._shared_pack (what the layers pack with): no copy of the HWIO
    kernel (the pack's weight is a read-only view of it), the same bits as a
    copying pack of the same values, and a repack into it after the kernel
    changed in place (an optimizer step) gives the new values' bits."""
    from fastconv.conv import _shared_pack
    O, I, KH, KW = shape
    groups = 48 if I == 1 else 1
    hwio = rng.standard_normal((KH, KW, I, O)).astype(dtype)
    oihw = hwio.transpose(3, 2, 0, 1)
    x = rng.standard_normal((3, I * groups, 9, 10)).astype(dtype)
    pk = _shared_pack(oihw, groups)
    assert pk.shared and np.shares_memory(pk.weight, hwio) and not pk.weight.flags.writeable
    copying = fastconv.pack_weight(oihw, groups)
    assert pk.nbytes == copying.nbytes   # (neither holds a copy of the weights yet)
    copying.weight
    assert pk.nbytes < copying.nbytes    # the copying pack's rebuilt weights are its own
    for step in range(3):
        want = fastconv.conv2d(x, fastconv.pack_weight(oihw, groups), None, padding=1,
                               groups=groups, activation="relu")
        got = fastconv.conv2d(x, pk, None, padding=1, groups=groups, activation="relu")
        np.testing.assert_array_equal(got, want, err_msg=f"step {step}")
        ref, scale = conv2d_act_ref(x, np.ascontiguousarray(oihw), None, padding=1,
                                    groups=groups, activation="relu")
        assert np.max(np.abs(got - ref) / (1 + scale)) < _tol(dtype)
        hwio -= 0.1 * rng.standard_normal(hwio.shape).astype(dtype)   # in place
        assert _shared_pack(oihw, groups, out=pk) is pk
    # a pack of another geometry, or a copying pack, is not reused
    flip = np.float64 if dtype == np.float32 else np.float32
    other = _shared_pack(hwio.astype(flip).transpose(3, 2, 0, 1), groups)
    assert _shared_pack(oihw, groups, out=other) is not other
    assert _shared_pack(oihw, groups, out=fastconv.pack_weight(oihw, groups)).shared
    with pytest.raises(ValueError, match="view of HWIO"):
        _core.PackedWeight(np.ascontiguousarray(oihw), groups, False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape,groups", [((37, 21, 3, 3), 1), ((20, 33, 1, 1), 1),
                                          ((18, 5, 3, 3), 3), ((48, 1, 3, 3), 48),
                                          ((1, 7, 5, 5), 1)],
                         ids=["3x3", "1x1", "grouped", "depthwise", "one-out"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_weight_rebuilt_from_the_pack(rng, dtype, shape, groups, layout):
    """A pack keeps no copy of its source: `weight` is rebuilt from the packed
    layout on first use, bit for bit (signed zeros, inf, NaN, denormals
    included), in the source's order (HWIO stays HWIO), read-only, and
    independent of the source: changing the source after packing, before
    `weight` is first read, changes neither `weight` nor the results; a
    repack gives a new `weight` with the new values."""
    O, I, KH, KW = shape
    w = rng.standard_normal(shape).astype(dtype)
    flat = w.reshape(-1)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, np.finfo(dtype).tiny / 4]
    flat[rng.choice(flat.size, len(special), replace=False)] = special
    keep = w.copy()
    user = w if layout == "NCHW" else np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    pk = fastconv.pack_weight(user, groups, data_format=layout)
    x = rng.standard_normal((2, I * groups, 7, 8) if layout == "NCHW"
                            else (2, 7, 8, I * groups)).astype(dtype)
    before = fastconv.conv2d(x, pk, None, padding=1, groups=groups, data_format=layout)
    user[...] = 7   # the source changes before the pack's weights are first read
    got = pk.weight
    assert got.shape == shape and got.dtype == dtype and not got.flags.writeable
    bits = lambda a: np.ascontiguousarray(a).view(f"u{a.itemsize}")
    np.testing.assert_array_equal(bits(got), bits(keep))
    assert (got.transpose(2, 3, 1, 0).flags.c_contiguous if layout == "NHWC"
            else got.flags.c_contiguous)
    assert pk.weight is got   # rebuilt once
    np.testing.assert_array_equal(pk.dense_weight(), keep)
    np.testing.assert_array_equal(
        fastconv.conv2d(x, pk, None, padding=1, groups=groups, data_format=layout), before)
    new = rng.standard_normal(shape).astype(dtype)
    fastconv.pack_weight(new if layout == "NCHW" else new.transpose(2, 3, 1, 0), groups,
                         data_format=layout, out=pk)
    assert pk.weight is not got
    np.testing.assert_array_equal(pk.weight, new)
    np.testing.assert_array_equal(bits(got), bits(keep))
