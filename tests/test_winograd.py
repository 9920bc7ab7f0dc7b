"""conv2d(method="winograd"): the F(4x4, 3x3) and F(2x2, 3x3) paths against the
float64 reference.

Tolerance: |got - ref| <= WINO_EPS[tile] * eps * scale per element, scale the
largest bound of tests/reference.py (|y| + |x| * |w| + |b|, carried through the
activation) in the element's m x m output tile (tile_max): the transforms mix a
tile's values, so an output whose own bound is far below its neighbours' (a
near-cancellation, mostly-padding windows, weights of mixed magnitude) gets
rounding of their size (its own bound was exceeded by 1 in ~1500 random
1x1x3x3 cases, F(4x4) up to 2900 eps, F(2x2) 32 eps; the tile's: 5 eps).
The largest error measured in that unit (benchmarks/winograd_accuracy.py,
docs/DESIGN.md "Winograd") is, for F(4x4), ~80 eps (weights of mixed
magnitude; ~20 eps on normal data, ~2 eps on inputs with a large mean), and
WINO_RTOL allows 4x that: 300 eps, 3.6e-5 in float32 and 6.7e-14 in float64;
for F(2x2) ~7 eps (mixed magnitude; ~1 eps otherwise), and WINO_RTOL allows
30 eps, 3.6e-6 and 6.7e-15 (the direct tests allow 1e-4 and 1e-10).  The
tests run for both tile sizes (the `tile` fixture: packs of that tile and
plain-weight calls forced to it); every ISA set this CPU has runs the grid
(forced in process, see test_isa_sets), the portable one included.
"""
import pickle

import numpy as np
import pytest

import fastconv
import reference as R
from fastconv import _core
from fastconv.activations import Activation
from reference import conv2d_act_ref

DTYPES = [np.float32, np.float64]
TILES = [4, 2]
WINO_EPS = {4: 300, 2: 30}   # tolerance in eps of the bound, per tile size (see above)


def fc_act(spec):
    if spec is None or isinstance(spec, str):
        return spec
    name, params = spec
    return Activation(name, **params)


def wino_rtol(tile, dtype):
    return WINO_EPS[tile] * np.finfo(dtype).eps


@pytest.fixture(params=TILES, ids=lambda t: f"F{t}")
def tile(request):
    """The tile size under test: plain-weight calls are forced to it (the
    plan's choice otherwise, test_plan_choice), packs are made with it."""
    _core._winograd_tune(0, 0, request.param)
    yield request.param
    _core._winograd_tune(0, 0, 0)


def assert_wino_close(got, ref, scale, dtype, what="", tile=4):
    dtype = np.dtype(dtype)
    assert got.dtype == dtype and got.shape == ref.shape, (got.dtype, got.shape, ref.shape)
    if got.size == 0:
        return
    got64 = got.astype(np.float64)
    assert np.array_equal(np.isnan(got64), np.isnan(ref)), "NaN positions differ " + what
    ok = ~np.isnan(ref)
    err = np.abs(got64[ok] - ref[ok])
    tol = wino_rtol(tile, dtype) * scale[ok] + np.finfo(dtype).tiny
    bad = ~(err <= tol)
    if bad.any():
        i = int(np.argmax(np.where(bad, err / tol, 0)))
        pos = np.unravel_index(np.flatnonzero(ok)[i], ref.shape)
        raise AssertionError(f"{what}: {int(bad.sum())}/{err.size} elements off; worst at "
                             f"{pos}: got {got64[pos]!r}, expected {ref[pos]!r}, err "
                             f"{err[i]:.3g} > tol {tol[i]:.3g}")


def make(rng, dtype, n, c, h, w, cout, groups, bias=True, data_format="NCHW"):
    if data_format == "NCHW":
        xs, ws = (n, c, h, w), (cout, c // groups, 3, 3)
    else:
        xs, ws = (n, h, w, c), (3, 3, c // groups, cout)
    x = rng.standard_normal(xs).astype(dtype)
    wt = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    return x, wt, b


def tile_max(scale, m=4):
    """Each output's bound replaced by the largest in its m x m output tile
    (NCHW): the transforms mix a tile's values, so its rounding follows the
    tile's largest magnitude, which matters when the bounds of neighbours
    differ by orders of magnitude (weights of mixed magnitude)."""
    n, c, h, w = scale.shape
    hp, wp = -(-h // m) * m, -(-w // m) * m
    padded = np.zeros((n, c, hp, wp))
    padded[:, :, :h, :w] = scale
    t = padded.reshape(n, c, hp // m, m, wp // m, m).max(axis=(3, 5))
    return np.repeat(np.repeat(t, m, axis=2), m, axis=3)[:, :, :h, :w]


def run_and_check(x, w, b, padding=0, groups=1, activation=None, pre_activation=None,
                  data_format="NCHW", packed=False, what="", tile=4):
    """packed: a pack of this tile size; plain weights: the call's plan must be
    forced to it (the tile fixture)."""
    x0, w0 = x.copy(), w.copy()
    if packed:
        wt = fastconv.pack_weight(w, groups, data_format=data_format, method="winograd",
                                  tile=tile)
        assert wt.tile == tile
    else:
        wt = w
        assert fastconv.pack_weight(w, groups, data_format=data_format, method="winograd",
                                    input_shape=x.shape, padding=padding).tile == tile
    got = fastconv.conv2d(x, wt, b, padding=padding, groups=groups,
                          activation=fc_act(activation), pre_activation=fc_act(pre_activation),
                          method="winograd", data_format=data_format)
    ref, scale = conv2d_act_ref(x, w, b, 1, padding, 1, groups, activation=activation,
                                pre_activation=pre_activation, data_format=data_format)
    if data_format == "NHWC":
        scale = tile_max(scale.transpose(0, 3, 1, 2), tile).transpose(0, 2, 3, 1)
    else:
        scale = tile_max(scale, tile)
    assert_wino_close(got, ref, scale, x.dtype, what=f"F{tile} {what}", tile=tile)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)
    return got


# N, C, H, W, Cout, groups: odd sizes, outputs that 4x4 (2x2) tiles do not divide,
# a single partial tile, channels that are not multiples of the vector, more
# output channels than one panel (64 f32), and a batch whose tiles cross images
SHAPES = [
    (1, 1, 3, 3, 1, 1),
    (2, 3, 7, 9, 5, 1),
    (1, 16, 8, 8, 16, 1),
    (3, 17, 11, 13, 33, 1),
    (1, 64, 14, 14, 64, 1),
    (2, 20, 10, 6, 130, 1),
    (1, 6, 9, 10, 8, 2),
    (2, 32, 7, 7, 48, 4),
    (1, 160, 6, 6, 24, 1),   # > 128 input channels: GEMMs over slices of 64
]
PADDINGS = [0, 1, ((0, 2), (1, 0)), "same"]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("padding", PADDINGS, ids=["p0", "p1", "asym", "same"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_grid(rng, shape, padding, dtype, tile):
    n, c, h, w, cout, g = shape
    for data_format in ("NCHW", "NHWC"):
        for packed in (False, True):
            x, wt, b = make(rng, dtype, n, c, h, w, cout, g, bias=packed,
                            data_format=data_format)
            run_and_check(x, wt, b, padding, g, activation="relu" if packed else None,
                          data_format=data_format, packed=packed, tile=tile,
                          what=f"{shape} {padding} {data_format} packed={packed}")


ACT_CASES = [(n, {}) for n in R.CANONICAL] + R.PARAM_CASES


@pytest.mark.parametrize("where", ["post", "pre"])
@pytest.mark.parametrize("act", ACT_CASES, ids=lambda a: a[0] + "".join(
    f"-{k}={v}" for k, v in sorted(a[1].items())))
def test_activations(rng, act, where, tile):
    spec = act[0] if not act[1] else act
    for data_format in ("NCHW", "NHWC"):
        x, w, b = make(rng, np.float32, 2, 12, 9, 11, 20, 1, data_format=data_format)
        x *= np.float32(1.5)   # the activations' interesting range
        kw = {"activation": spec} if where == "post" else {"pre_activation": spec}
        run_and_check(x, w, b, 1, data_format=data_format, packed=True, what=str(act),
                      tile=tile, **kw)


def test_pre_and_post_f64(rng, tile):
    x, w, b = make(rng, np.float64, 2, 9, 10, 10, 11, 1)
    run_and_check(x, w, b, 1, activation="silu", pre_activation="relu", packed=True, tile=tile)
    run_and_check(x, w, b, 1, activation="gelu", pre_activation="tanh", tile=tile)


@pytest.mark.parametrize("n", [0, 1, 3])
def test_batch_sizes(rng, n, tile):
    for data_format in ("NCHW", "NHWC"):
        x, w, b = make(rng, np.float32, n, 8, 9, 9, 12, 1, data_format=data_format)
        y = run_and_check(x, w, b, 1, data_format=data_format, packed=True, tile=tile)
        assert y.shape[0] == n


def test_unbatched_and_out(rng):
    x, w, b = make(rng, np.float32, 1, 5, 8, 9, 7, 1)
    y4 = fastconv.conv2d(x, w, b, padding=1, method="winograd")
    y3 = fastconv.conv2d(x[0], w, b, padding=1, method="winograd")
    np.testing.assert_array_equal(y3, y4[0])
    out = np.full_like(y4, np.nan)
    r = fastconv.conv2d(x, w, b, padding=1, method="winograd", out=out)
    assert r is out
    np.testing.assert_array_equal(out, y4)


def test_badly_scaled(rng, tile):
    """Inputs with a large mean and weights of mixed magnitude, at the stated tolerance."""
    for dtype in DTYPES:
        x, w, b = make(rng, dtype, 2, 24, 12, 12, 24, 1)
        run_and_check(x + dtype(100), w, b, 1, packed=True, what="large mean", tile=tile)
        wm = (w * 10.0 ** rng.uniform(-3, 3, w.shape)).astype(dtype)
        run_and_check(x, wm, b, 1, packed=True, what="mixed weights", tile=tile)


def _isa_sets():
    sets = ["portable"]
    cfg = fastconv.config.config()
    if cfg["cpu_avx2_fma"]:
        sets.append("avx2+fma")
    if cfg["cpu_avx512"]:
        sets.append("avx512")
    return sets


@pytest.fixture
def restore_kernels():
    before = _core.config()["kernels"]
    yield
    assert _core._force_kernels(before)


@pytest.mark.parametrize("isa", _isa_sets())
def test_isa_sets(rng, isa, restore_kernels, tile):
    """The grid's shapes on every kernel set of this CPU (portable included)."""
    assert _core._force_kernels(isa)
    assert _core.winograd_kernel_name() == isa
    for dtype in DTYPES:
        for shape in SHAPES:
            n, c, h, w, cout, g = shape
            for data_format in ("NCHW", "NHWC"):
                x, wt, b = make(rng, dtype, n, c, h, w, cout, g, data_format=data_format)
                run_and_check(x, wt, b, ((1, 0), (2, 1)), g, activation="relu",
                              data_format=data_format, packed=True, tile=tile,
                              what=f"{isa} {shape} {data_format}")
        x, wt, b = make(rng, dtype, 2, 12, 9, 11, 20, 1)
        run_and_check(x, wt, b, 1, activation="silu", pre_activation="elu", what=isa, tile=tile)


def test_threads_and_blocks_same_bits(rng, tile):
    """Each tile's sums run in the same order whatever the threads, tile blocks
    and slices of the input channels per GEMM call."""
    x, w, b = make(rng, np.float32, 2, 40, 23, 19, 72, 1)
    pw = fastconv.pack_weight(w, method="winograd", tile=tile)
    before = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(1)
        y1 = fastconv.conv2d(x, pw, b, padding=1, method="winograd", activation="relu")
        fastconv.set_num_threads(2)
        y2 = fastconv.conv2d(x, pw, b, padding=1, method="winograd", activation="relu")
        for tb in (1, 5, 7, 13, 1000):
            _core._winograd_tune(tb, 0, tile)
            y3 = fastconv.conv2d(x, pw, b, padding=1, method="winograd", activation="relu")
            np.testing.assert_array_equal(y3, y1)
        _core._winograd_tune(0, 0, tile)
        for kc in (1, 7, 16, 39, -1):   # GEMMs over slices of the input channels
            _core._winograd_tune_kc(kc)
            y3 = fastconv.conv2d(x, pw, b, padding=1, method="winograd", activation="relu")
            np.testing.assert_array_equal(y3, y1)
    finally:
        _core._winograd_tune(0, 0, tile)
        _core._winograd_tune_kc(0)
        fastconv.set_num_threads(before)
    np.testing.assert_array_equal(y1, y2)


def test_packed_weight_is_a_copy_and_pickles(rng, tile):
    x, w, b = make(rng, np.float32, 1, 8, 10, 10, 8, 1)
    pw = fastconv.pack_weight(w, method="winograd", tile=tile)
    assert isinstance(pw, _core.WinogradWeight)
    assert pw.shape == w.shape and pw.dtype == w.dtype and pw.groups == 1 and pw.tile == tile
    assert pw.nbytes >= w.nbytes * (1 + (tile + 2) ** 2 / 9)
    y = fastconv.conv2d(x, pw, b, padding=1, method="winograd")
    w[...] = 0   # the pack keeps its own copy
    np.testing.assert_array_equal(fastconv.conv2d(x, pw, b, padding=1, method="winograd"), y)
    pw2 = pickle.loads(pickle.dumps(pw))
    assert pw2.tile == tile
    np.testing.assert_array_equal(fastconv.conv2d(x, pw2, b, padding=1, method="winograd"), y)


def test_a_call_uses_its_packs_tile(rng):
    """Packs of either tile size give their own tile's numbers, whatever the
    plan would choose for plain weights: F(2x2) and F(4x4) round differently,
    and a pack's result is the plain call forced to its tile, bit for bit."""
    x, w, b = make(rng, np.float32, 1, 16, 12, 12, 16, 1)
    ys = {}
    try:
        for t in TILES:
            pw = fastconv.pack_weight(w, method="winograd", tile=t)
            for forced in TILES:
                _core._winograd_tune(0, 0, forced)
                ys[t, forced] = fastconv.conv2d(x, pw, b, padding=1, method="winograd")
            _core._winograd_tune(0, 0, t)
            np.testing.assert_array_equal(
                fastconv.conv2d(x, w, b, padding=1, method="winograd"), ys[t, t])
    finally:
        _core._winograd_tune(0, 0, 0)
    np.testing.assert_array_equal(ys[2, 2], ys[2, 4])
    np.testing.assert_array_equal(ys[4, 2], ys[4, 4])
    assert not np.array_equal(ys[2, 2], ys[4, 4])


@pytest.mark.parametrize("x_shape, w_shape, groups, expected", [
    ((1, 64, 56, 56), (64, 64, 3, 3), 1, 4),       # ResNet-18's stages: 64@56, 128@28 F(4x4),
    ((1, 128, 28, 28), (128, 128, 3, 3), 1, 4),
    ((1, 256, 14, 14), (256, 256, 3, 3), 1, 2),    # 256@14, 512@7 F(2x2)
    ((1, 512, 7, 7), (512, 512, 3, 3), 1, 2),
    ((8, 256, 14, 14), (256, 256, 3, 3), 1, 2),    # the batch does not move it
    ((1, 256, 28, 28), (256, 256, 3, 3), 1, 4),    # 28 x 28: F(4x4)
    ((1, 128, 7, 7), (128, 128, 3, 3), 1, 2),      # 128 channels only at 7 x 7
    ((1, 128, 14, 14), (128, 128, 3, 3), 1, 4),
    ((1, 512, 14, 14), (512, 128, 3, 3), 4, 4),    # per group 128 x 32 channels
    ((1, 64, 224, 224), (64, 64, 3, 3), 1, 4),
])
def test_plan_choice(x_shape, w_shape, groups, expected, rng):
    """The plan's tile size (benchmarks/NOTES.md): a pack of tile="auto" with the
    input shape, the plain-weight call (its output's bits are the pack of that
    tile's) and workspace_bytes(tile="auto") agree."""
    w = rng.standard_normal(w_shape).astype(np.float32)
    assert fastconv.pack_weight(w, groups, method="winograd", input_shape=x_shape).tile == expected
    assert fastconv.pack_weight(w, groups, method="winograd", input_shape=x_shape[1:]).tile \
        == expected   # unbatched shape
    nhwc = (x_shape[0], x_shape[2], x_shape[3], x_shape[1])
    assert fastconv.pack_weight(w.transpose(2, 3, 1, 0), groups, data_format="NHWC",
                                method="winograd", input_shape=nhwc).tile == expected
    assert fastconv.workspace_bytes(x_shape, w_shape, padding=1, groups=groups,
                                    method="winograd") == \
        fastconv.workspace_bytes(x_shape, w_shape, padding=1, groups=groups,
                                 method="winograd", tile=expected)
    if np.prod(x_shape) * w_shape[0] <= 2e7:   # the plain call on the small ones
        x = rng.standard_normal(x_shape).astype(np.float32)
        pw = fastconv.pack_weight(w, groups, method="winograd", tile=expected)
        np.testing.assert_array_equal(
            fastconv.conv2d(x, w, padding=1, groups=groups, method="winograd"),
            fastconv.conv2d(x, pw, padding=1, groups=groups, method="winograd"))


def test_plan_choice_without_input_shape(rng):
    """From the weight shape alone: 256 x 256 channels per group and more F(2x2)."""
    for w_shape, groups, expected in (((64, 64, 3, 3), 1, 4), ((256, 128, 3, 3), 1, 4),
                                      ((256, 256, 3, 3), 1, 2), ((512, 512, 3, 3), 1, 2),
                                      ((512, 256, 3, 3), 2, 2), ((512, 256, 3, 3), 4, 4)):
        w = rng.standard_normal(w_shape).astype(np.float32)
        assert fastconv.pack_weight(w, groups, method="winograd").tile == expected, w_shape


def test_legacy_pickle_is_f4(rng):
    """A pack pickled before the tile size existed (weight, groups) loads as F(4x4)."""
    from fastconv.conv import _winograd_from
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    assert _winograd_from(w, 1).tile == 4


def test_direct_pack_with_winograd(rng, tile):
    """A direct-path PackedWeight given to method='winograd' is transformed per call."""
    x, w, b = make(rng, np.float32, 1, 8, 10, 10, 8, 1)
    got = fastconv.conv2d(x, fastconv.pack_weight(w), b, padding=1, method="winograd")
    ref, scale = conv2d_act_ref(x, w, b, 1, 1)
    assert_wino_close(got, ref, scale, np.float32, tile=tile)


def test_auto_keeps_direct(rng):
    """method='auto' gives the direct path's numbers, bit for bit."""
    x, w, b = make(rng, np.float32, 1, 16, 12, 12, 16, 1)
    np.testing.assert_array_equal(fastconv.conv2d(x, w, b, padding=1),
                                  fastconv.conv2d(x, w, b, padding=1, method="fused"))


def test_workspace_bytes():
    ws = fastconv.workspace_bytes((1, 64, 56, 56), (64, 64, 3, 3), padding=1, method="winograd")
    assert ws > 0
    assert fastconv.workspace_bytes((0, 64, 56, 56), (64, 64, 3, 3), padding=1,
                                    method="winograd") == 0
    with pytest.raises(ValueError, match="3x3 kernel"):
        fastconv.workspace_bytes((1, 4, 8, 8), (4, 4, 5, 5), method="winograd")
    with pytest.raises(ValueError, match="tile must be 2, 4 or 'auto', got tile=3"):
        fastconv.workspace_bytes((1, 4, 8, 8), (4, 4, 3, 3), method="winograd", tile=3)
    with pytest.raises(ValueError, match="tile=2 is for method='winograd'"):
        fastconv.workspace_bytes((1, 4, 8, 8), (4, 4, 3, 3), tile=2)


def _tile_buffers(x_shape, cin, cout, tile, item=4):
    """The bytes of a 1-thread call as docs/DESIGN.md states the plan: the padded
    bias, the gathered rows and V + M of one tile block, TB tiles: all the
    tiles if they fit the 1 MB budget, else a multiple of 6; items of 2 panels
    of output channels unless 1 panel makes fewer blocks."""
    n, _, h, w = x_shape
    E, P = 64 // item, 256 // item
    icp, ocp = -(-cin // E) * E, -(-cout // E) * E
    nxi = (tile + 2) ** 2
    nt = n * -(-h // tile) * -(-w // tile)

    def block(ocb):
        tb = min((1024 * 1024) // (nxi * item * (icp + ocb)), 120)
        return nt if tb >= nt else (tb // 6 * 6 if tb >= 12 else max(tb, 4))
    ocb = min(ocp, 2 * P)
    tb = block(ocb)
    if ocb > P and -(-nt // block(P)) < -(-nt // tb):
        ocb, tb = P, block(P)
    tb = min(tb, nt)
    seg = min(tb, -(-w // tile))
    stage = -(-((tile + 2) * (tile * seg + 2) * cin + E) // E) * E
    bias = -(-(ocp * item) // 64) * 64
    return bias + (stage + nxi * tb * (icp + ocb)) * item


@pytest.mark.parametrize("shape", [(1, 64, 56, 56), (1, 256, 14, 14), (2, 20, 9, 7),
                                   (1, 512, 7, 7), (8, 128, 28, 28)])
def test_workspace_bytes_follow_the_tile(shape):
    """workspace_bytes answers the plan of the call: tile=T for a pack of tile T,
    "auto" the plan's choice for plain weights (the pack of tile="auto" with the
    same input_shape picks the same)."""
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(1)
    try:
        c = shape[1]
        ws = {t: fastconv.workspace_bytes(shape, (c, c, 3, 3), padding=1, method="winograd",
                                          tile=t) for t in TILES}
        assert ws[2] != ws[4]
        for t in TILES:
            assert ws[t] == _tile_buffers(shape, c, c, t), t
        w = np.zeros((c, c, 3, 3), np.float32)
        auto = fastconv.pack_weight(w, method="winograd", input_shape=shape).tile
        assert fastconv.workspace_bytes(shape, w.shape, padding=1, method="winograd") == ws[auto]
    finally:
        fastconv.set_num_threads(before)


def test_errors(rng):
    x, w, b = make(rng, np.float32, 1, 4, 9, 9, 4, 1)
    w5 = rng.standard_normal((4, 4, 5, 5)).astype(np.float32)
    with pytest.raises(ValueError, match=r"3x3 kernel.*\[4, 4, 5, 5\]"):
        fastconv.conv2d(x, w5, method="winograd")
    with pytest.raises(ValueError, match="stride 1, got stride=2"):
        fastconv.conv2d(x, w, stride=2, method="winograd")
    with pytest.raises(ValueError, match=r"dilation 1, got dilation=\(1, 2\)"):
        fastconv.conv2d(x, w, dilation=(1, 2), method="winograd")
    with pytest.raises(ValueError, match="3x3 kernel"):
        fastconv.pack_weight(w5, method="winograd")
    with pytest.raises(ValueError, match="method must be"):
        fastconv.pack_weight(w, method="wino")
    pw = fastconv.pack_weight(w, method="winograd")
    with pytest.raises(ValueError, match="packed with method='winograd'"):
        fastconv.conv2d(x, pw, method="fused")
    with pytest.raises(ValueError, match="packed for groups=1"):
        fastconv.conv2d(x, pw, groups=2, method="winograd")
    with pytest.raises(ValueError, match="out= is not supported"):
        fastconv.pack_weight(w, method="winograd", out=pw)
    for bad in (3, 0, "4", True, 4.0, None):
        with pytest.raises(ValueError, match=r"tile must be 2, 4 or 'auto'"):
            fastconv.pack_weight(w, method="winograd", tile=bad)
    with pytest.raises(ValueError, match="tile= and input_shape= are for method='winograd'"):
        fastconv.pack_weight(w, tile=2)
    with pytest.raises(ValueError, match="tile= and input_shape= are for method='winograd'"):
        fastconv.pack_weight(w, input_shape=x.shape)
    with pytest.raises(ValueError, match="expected input.*to have 4 channels"):
        fastconv.pack_weight(w, method="winograd", input_shape=(1, 5, 9, 9))
    with pytest.raises(ValueError, match=r"input_shape must be \(N, C, H, W\)"):
        fastconv.pack_weight(w, method="winograd", input_shape=(9, 9))
    with pytest.raises(TypeError, match="same dtype"):
        fastconv.conv2d(x.astype(np.float64), pw, method="winograd")
    x8 = rng.standard_normal((1, 8, 9, 9)).astype(np.float32)
    with pytest.raises(ValueError, match="channels"):
        fastconv.conv2d(x8, pw, method="winograd")


def test_nan_input_spreads_to_its_tiles(rng, tile):
    """A NaN input value makes NaN every output of the m x m tiles whose
    (m+2)x(m+2) input patch holds it (the transform mixes the patch): a
    superset of the direct path's NaNs, and nothing outside those tiles."""
    x, w, b = make(rng, np.float32, 1, 3, 13, 14, 4, 1)
    r, c = 6, 9
    x[0, 1, r, c] = np.nan
    m = tile
    got = fastconv.conv2d(x, w, b, padding=1, method="winograd", activation="relu")
    ref, scale = conv2d_act_ref(x, w, b, 1, 1, activation="relu")
    assert np.isnan(got[np.isnan(ref)]).all()
    # padded row r + 1 is in tile row th's patch, rows [m * th, m * th + m + 2)
    rows = [th for th in range(-(-13 // m)) if m * th <= r + 1 <= m * th + m + 1]
    cols = [tw for tw in range(-(-14 // m)) if m * tw <= c + 1 <= m * tw + m + 1]
    tiles = np.zeros(got.shape[2:], bool)
    for th in rows:
        for tw in cols:
            tiles[m * th:m * th + m, m * tw:m * tw + m] = True
    assert not np.isnan(got[:, :, ~tiles]).any()
    assert_wino_close(got[:, :, ~tiles], ref[:, :, ~tiles], scale[:, :, ~tiles], np.float32,
                      tile=tile)


def test_conv2d_layer(rng):
    """layers.Conv2D(method="winograd") against the same layer on the direct path,
    both data formats, and a training step's gradients (from the plain kernel)."""
    from fastconv import layers as L
    for data_format in ("channels_first", "channels_last"):
        kw = dict(padding="same", activation="relu", data_format=data_format)
        wl = L.Conv2D(12, 3, method="winograd", **kw)
        dl = L.Conv2D(12, 3, method="fused", **kw)
        shape = (2, 7, 10, 9) if data_format == "channels_first" else (2, 10, 9, 7)
        x = rng.standard_normal(shape).astype(np.float32)
        dl(x)
        wl.build(x.shape)
        wl.set_weights(dl.get_weights())
        yw, yd = wl(x), dl(x)
        assert np.abs(yw - yd).max() <= 1e-4 * np.abs(yd).max()
        g = rng.standard_normal(yd.shape).astype(np.float32)
        yw, yd = wl(x, training=True), dl(x, training=True)
        # the gradients come from the direct path's backward at the relu mask of
        # each forward's output (equal but where an output is within rounding of 0)
        mask_same = (yw > 0) == (yd > 0)
        if mask_same.all():
            np.testing.assert_allclose(wl.backward(g), dl.backward(g), rtol=1e-5, atol=1e-5)
            for a, b in zip(wl.gradients, dl.gradients):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="method='winograd' needs a 3x3 kernel"):
        L.Conv2D(4, 5, method="winograd")
    with pytest.raises(ValueError, match="method='winograd' needs"):
        L.Conv2D(4, 3, strides=2, method="winograd")
    with pytest.raises(ValueError, match="`method` must be one of"):
        L.DepthwiseConv2D(3, method="winograd")
