"""The small-problem kernel (src/conv_small*: few output channels or tiny
problems, vectorised along the output width) and the Cython hot path of
conv2d (fastconv/_core.pyx fast_conv2d), against the float64 reference.

Shapes are chosen to hit every code path: channel blocks of 1-4 (c_out 1..12
per group), 1-4 vectors of columns, full and partial column blocks, padding on
either side (masked lanes), rows at either end of the input buffer (masked
loads), stride along the height, dilation, groups, bias or not, relu (inline)
and other activations (out of line), float32 and float64, raw and packed
weights, first and cached calls.
"""
import numpy as np
import pytest

import fastconv
from reference import conv2d_act_ref

RTOL = {np.float32: 2e-5, np.float64: 1e-12}


def _check(y, x, w, b=None, dtype=np.float32, **kw):
    ref, scale = conv2d_act_ref(x, w, b, **kw)
    assert y.shape == ref.shape
    err = np.abs(y.astype(np.float64) - ref)
    assert np.all(err <= RTOL[dtype] * scale + 1e-30), float(np.max(err / (scale + 1e-30)))


def _data(rng, n, c, h, w, o, kh, kw, groups=1, dtype=np.float32):
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    return x, wt, b


CASES = [  # n, c, h, w, o, k, stride, pad, dilation, groups
    (1, 3, 30, 30, 3, 3, 1, 0, 1, 1),       # the seed layer
    (1, 3, 30, 30, 3, 3, 1, 1, 1, 1),
    (2, 2, 9, 9, 1, 3, 1, 0, 1, 1),         # one channel, one vector
    (1, 4, 11, 17, 2, 3, 1, (1, 2), 1, 1),  # two channels, two vectors, pad right only partly
    (1, 3, 12, 26, 4, 3, 1, 0, 1, 1),       # 4 channels x 3 vectors, full blocks
    (1, 3, 12, 34, 3, 3, 1, 0, 1, 1),       # 3 channels x 4 vectors, full block
    (1, 3, 8, 70, 5, 3, 1, 1, 1, 1),        # blocks 3+2, several column blocks
    (1, 2, 7, 40, 7, 5, 1, 2, 1, 1),        # 4+3, 5x5
    (1, 5, 10, 23, 8, 3, (2, 1), 1, 1, 1),  # stride along the height
    (1, 3, 13, 29, 6, 3, 1, 2, 2, 1),       # dilation
    (1, 3, 9, 21, 3, (1, 5), 1, (0, 2), (1, 3), 1),
    (1, 4, 9, 19, 6, 3, 1, 1, 1, 2),        # groups
    (2, 6, 8, 8, 12, 3, 1, 1, 1, 1),        # 12 channels, tiny: 4+4+4
    (1, 3, 6, 1, 2, (3, 1), 1, 0, 1, 1),    # one column
    (1, 2, 5, 5, 3, 1, 1, 0, 1, 1),         # 1x1
    (1, 3, 33, 45, 3, 7, 1, 3, 1, 1),       # 7x7, wide padding
    (1, 8, 40, 60, 4, 3, 1, 1, 1, 1),       # big enough for the threaded split
    (3, 1, 8, 8, 8, 3, 1, 1, 1, 1),         # one input channel (the digits CNN's first)
    (2, 1, 9, 13, 5, 3, (2, 1), 1, 1, 1),
]


def _ids(c):
    return "x".join(str(v) for v in c)


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ["relu", None, "silu"])
def test_small_layers(case, dtype, act):
    n, c, h, w, o, k, s, p, d, g = case
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(hash(case) % 2**32)
    x, wt, b = _data(rng, n, c, h, w, o, kh, kw, g, dtype)
    kwargs = dict(stride=s, padding=p, dilation=d, groups=g, activation=act)
    for bias in (b, None):
        for weight in (wt, fastconv.pack_weight(wt, g)):
            for _ in range(2):   # first call, then the cached one
                y = fastconv.conv2d(x, weight, bias, **kwargs)
                _check(y, x, wt, bias, dtype, **kwargs)
                out = np.full(y.shape, np.nan, dtype)
                assert fastconv.conv2d(x, weight, bias, out=out, **kwargs) is out
                _check(out, x, wt, bias, dtype, **kwargs)


@pytest.mark.parametrize("case", [c for c in CASES if c[-1] == 1], ids=_ids)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_layers_nhwc(case, dtype):
    """The same layers channels-last, HWIO weights raw and packed: one input
    channel runs the small kernel into an NCHW buffer, transposed."""
    n, c, h, w, o, k, s, p, d, g = case
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(hash(case) % 2**32 + 1)
    x, wt, b = _data(rng, n, c, h, w, o, kh, kw, g, dtype)
    xl, wl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(wt.transpose(2, 3, 1, 0))
    kwargs = dict(stride=s, padding=p, dilation=d, groups=g)
    for act in ("relu", "silu", None):
        for weight in (wl, fastconv.pack_weight(wl, g, data_format="NHWC")):
            for bias in (b, None):
                y = fastconv.conv2d(xl, weight, bias, activation=act, data_format="NHWC",
                                    **kwargs)
                _check(y.transpose(0, 3, 1, 2), x, wt, bias, dtype, activation=act, **kwargs)


@pytest.mark.parametrize("threads", [1, 2])
def test_small_layers_threads(threads):
    rng = np.random.default_rng(7)
    x, wt, b = _data(rng, 2, 3, 64, 90, 5, 3, 3)
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    try:
        y = fastconv.conv2d(x, wt, b, padding=1, activation="relu")
    finally:
        fastconv.set_num_threads(old)
    _check(y, x, wt, b, padding=1, activation="relu")


def test_every_width():
    """Every output width 1..40: each tail and column-block layout."""
    rng = np.random.default_rng(3)
    for wo in range(1, 41):
        for pad in (0, 1):
            x, wt, b = _data(rng, 1, 2, 5, wo + 2 - 2 * pad, 3, 3, 3)
            y = fastconv.conv2d(x, wt, b, padding=pad, activation="relu")
            _check(y, x, wt, b, padding=pad, activation="relu")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_width_row_blocks(threads, dtype):
    """Partial last vectors are stored whole when the spill lands in rows the
    same work item writes later: every width 1..20 on images tall enough for
    row blocks over two threads, into an output prefilled with NaN (a lane
    left unwritten or a spill into another item's rows shows up)."""
    rng = np.random.default_rng(8)
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    try:
        for wo in range(1, 21):
            x, wt, b = _data(rng, 2, 8, 130, wo + 2, 4, 3, 3, dtype=dtype)
            out = np.full((2, 4, 128, wo), np.nan, dtype)
            fastconv.conv2d(x, wt, b, activation="relu", out=out)
            _check(out, x, wt, b, dtype, activation="relu")
    finally:
        fastconv.set_num_threads(old)


def test_input_at_buffer_edges():
    """Views whose data ends exactly at the end of a larger buffer (or starts at
    its beginning): the kernel must not read outside x."""
    rng = np.random.default_rng(4)
    for w in (5, 13, 30):
        big = rng.standard_normal(3 * 7 * w + 64).astype(np.float32)
        for x in (big[-3 * 7 * w:].reshape(1, 3, 7, w), big[:3 * 7 * w].reshape(1, 3, 7, w)):
            wt = rng.standard_normal((3, 3, 3, 3)).astype(np.float32)
            for pad in (0, 1):
                y = fastconv.conv2d(x, wt, None, padding=pad)
                _check(y, x, wt, None, padding=pad)


def test_fast_path_checks_after_caching():
    """The Cython hot path keeps conv2d's checks, with packed weights too."""
    rng = np.random.default_rng(5)
    x, wt, b = _data(rng, 1, 3, 12, 12, 4, 3, 3)
    pw = fastconv.pack_weight(wt)
    out = np.empty((1, 4, 10, 10), np.float32)
    for weight in (wt, pw):
        for _ in range(2):
            fastconv.conv2d(x, weight, b, activation="relu", out=out)
        _check(out, x, wt, b, activation="relu")
        ro = np.empty_like(out)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            fastconv.conv2d(x, weight, b, activation="relu", out=ro)
        with pytest.raises(ValueError, match="C-contiguous"):
            fastconv.conv2d(x, weight, b, activation="relu",
                            out=np.empty((1, 4, 10, 20), np.float32)[..., ::2])
        big = np.zeros(4 * 100 + 3 * 144, np.float32)
        xo = big[:3 * 144].reshape(1, 3, 12, 12)
        xo[...] = x
        for _ in range(2):
            with pytest.raises(ValueError, match="overlap"):
                fastconv.conv2d(xo, weight, b, activation="relu",
                                out=big[100:500].reshape(1, 4, 10, 10))
        bad = np.empty((1, 4, 10, 11), np.float32)
        for _ in range(2):   # a wrong out shape is never cached
            with pytest.raises(ValueError, match="shape"):
                fastconv.conv2d(x, weight, b, activation="relu", out=bad)
        with pytest.raises(ValueError, match="groups"):
            fastconv.conv2d(x, pw, b, groups=3)
        # non-contiguous input after caching: copied on the full path
        xf = np.asfortranarray(x)
        y = fastconv.conv2d(xf, weight, b, activation="relu")
        _check(y, x, wt, b, activation="relu")
        # unbatched
        for _ in range(2):
            y = fastconv.conv2d(x[0], weight, b, activation="relu")
            assert y.shape == (4, 10, 10)
            _check(y, x[0], wt, b, activation="relu")
    # new weight values in the same array are used (raw weights are not packed)
    wt[...] = rng.standard_normal(wt.shape)
    fastconv.conv2d(x, wt, b, activation="relu", out=out)
    _check(out, x, wt, b, activation="relu")


def test_fast_path_last_call_tells_calls_apart():
    """The hot path's last-call shortcut (same parameter objects, arrays of
    the same type, dtype and shape) never hands one call another's plan:
    calls that alternate, each differing from the one before in one thing,
    all match the reference."""
    rng = np.random.default_rng(11)
    x, wt, b = _data(rng, 1, 3, 14, 14, 4, 3, 3)
    x64, wt64, b64 = (a.astype(np.float64) for a in (x, wt, b))
    pw = fastconv.pack_weight(wt)
    pw2 = fastconv.pack_weight(wt, groups=1)
    xw = rng.standard_normal((1, 3, 14, 18)).astype(np.float32)   # another width
    silu = fastconv.Activation("silu")   # an object: compared by identity
    calls = [
        (x, wt, b, {"activation": "relu"}),
        (x, pw, b, {"activation": "relu"}),
        (x, pw2, b, {"activation": "relu"}),
        (x, pw, None, {"activation": "relu"}),
        (xw, pw, b, {"activation": "relu"}),
        (x, pw, b, {"activation": silu}),
        (x, pw, b, {"activation": "relu", "stride": 2}),
        (x, pw, b, {"activation": "relu", "padding": 1}),
        (x, pw, b, {"activation": "relu", "padding": (1, 1)}),
        (x, pw, b, {"pre_activation": "relu"}),
        (x64, wt64, b64, {"activation": "relu"}),
        (x[0], pw, b, {"activation": "relu"}),
    ]
    for _ in range(3):
        for xi, wi, bi, kw in calls:
            y = fastconv.conv2d(xi, wi, bi, **kw)
            wref = wt64 if wi is wt64 else wt
            kw_ref = {k: ("silu" if v is silu else v) for k, v in kw.items()}
            _check(y, xi, wref, bi, dtype=xi.dtype.type, **kw_ref)
            # with out= as well, same parameter objects
            out = np.empty_like(y)
            assert fastconv.conv2d(xi, wi, bi, out=out, **kw) is out
            _check(out, xi, wref, bi, dtype=xi.dtype.type, **kw_ref)
    # the same array object given a new shape in place
    xr = rng.standard_normal((1, 3, 14, 14)).astype(np.float32)
    for _ in range(2):
        _check(fastconv.conv2d(xr, pw, b, activation="relu"), xr, wt, b, activation="relu")
    xr.shape = (1, 3, 7, 28)
    for _ in range(2):
        y = fastconv.conv2d(xr, pw, b, activation="relu")
        assert y.shape == (1, 4, 5, 26)
        _check(y, xr, wt, b, activation="relu")


# ---- the shared kernel tester (tests/kernel_tester.py) ----------------------
from kernel_tester import check_family, kernel_set  # noqa: E402,F401

SMALL_CASES = [(2, 16, 12, 12, 4, 3, 1, 1, 1, 1), (1, 3, 10, 19, 8, 3, 1, 0, 1, 1),
               (3, 9, 7, 7, 7, 5, 1, 2, 1, 1), (2, 16, 8, 8, 1, 1, 1, 0, 1, 1)]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", SMALL_CASES, ids=str)
def test_small_family_by_the_kernel_tester(rng, kernel_set, case, dtype, layout):
    # no portable variant: the direct tiles there
    family = "direct" if kernel_set == "portable" else (
        "small_nhwc" if layout == "NHWC" else "small")
    check_family(rng, family, case, dtype, layout)
