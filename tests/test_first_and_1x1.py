"""The first-layer kernel (src/conv_first*: few input channels, vectorised
along the output width on a phase-split copy of x) and the strided-1x1 kernel
(src/conv_1x1*: 1x1 with stride or padding, gathered channels-last block,
16-channel x 6/5-pixel tiles), against the float64 reference.

Routing (src/conv/first/conv_first.c, src/conv/pointwise/conv_1x1.c): first-layer = groups 1, c_in < 8,
c_out >= 16, w_out >= 2 vectors, not 1x1, no pre-activation; strided 1x1 =
1x1, groups 1, c_out >= 16, stride != 1 or padding, no pre-activation.  The
cases below cover: output widths that are whole and partial vectors, every
column-tile size (3, 2, 1 vectors), c_out not a multiple of 4 or 16, strides
1-4 along the width (phases), stride along the height, dilation, padding on
either side and beyond the kernel, batch > 1, several row bands, pixel tiles
of 6 and 5 and a single short tile; bias or not; relu (inline), identity and
out-of-line activations; float32 and float64; raw and packed weights; 1 and 2
threads; and parity with the portable kernels (FASTCONV_DISABLE_SIMD=1).
"""
import numpy as np
import pytest

import fastconv
from _child import assert_simd_matches_portable
from reference import conv2d_act_ref

RTOL = {np.float32: 2e-5, np.float64: 1e-12}

FIRST = [  # n, c, h, w, o, k, stride, pad, dilation
    (1, 3, 70, 224, 64, 7, 2, 3, 1),           # ResNet conv1 rows: 14 vectors = 3+3+3+3+2
    (1, 3, 37, 41, 20, 5, 1, 2, 1),            # stride 1, c_out 20 (4-block tail), 41 = 5x8+1
    (2, 3, 23, 35, 16, 3, 2, 1, 1),            # batch, 18 columns: 3 vectors, partial last
    (1, 2, 30, 50, 17, 3, 3, 1, 2),            # stride 3 phases, dilation 2, c_out 17
    (1, 5, 19, 70, 33, (4, 3), (2, 3), (0, 2), (1, 2)),  # rectangular everything
    (1, 1, 20, 130, 16, 7, 4, 3, 1),           # one channel, stride 4
    (1, 7, 17, 40, 19, 2, 2, 0, 1),            # c_in 7, 2x2 kernel, no padding
    (1, 3, 64, 33, 24, 3, 1, 4, 1),            # padding wider than the kernel
    (1, 4, 9, 64, 32, (1, 5), 1, (0, 2), 1),   # one kernel row
    (1, 3, 70, 36, 16, (5, 1), 1, (2, 0), (2, 1)),  # one kernel column (kw 1, kh 5)
]

ONE = [  # n, c, h, w, o, stride, pad
    (1, 256, 14, 14, 512, 2, 0),     # ResNet downsampling shortcut: 49 = 4x6 + 5x5
    (2, 19, 9, 13, 40, (2, 3), 0),   # batch, rectangular stride, c_out 40 (16-block tail)
    (1, 8, 5, 5, 16, 1, 1),          # stride 1 with padding: border pixels are zero rows
    (1, 33, 7, 7, 17, 3, (1, 2)),    # stride 3 and padding
    (1, 4, 3, 3, 24, 2, 0),          # 4 pixels: one short tile
    (1, 64, 15, 15, 32, 2, 0),       # odd input size
    (1, 3, 28, 28, 64, 2, 0),        # few channels
    (1, 64, 7, 7, 48, 1, 0),         # stride 1 on a small image (instead of the GEMM tile)
    (2, 20, 14, 14, 33, 1, 0),       # stride 1, 196 pixels (the limit), batch 2
    (1, 16, 15, 15, 32, 1, 0),       # stride 1, 225 pixels: the GEMM tile again
]


def _check(y, x, wt, b, dtype, _ref=None, **kw):
    ref, scale = _ref if _ref is not None else conv2d_act_ref(x, wt, b, **kw)
    assert y.shape == ref.shape
    err = np.abs(y.astype(np.float64) - ref)
    assert np.all(err <= RTOL[dtype] * scale + 1e-30), float(np.max(err / (scale + 1e-30)))


def _kk(k):
    return (k, k) if isinstance(k, int) else k


def _run_case(x, wt, b, dtype, kwargs):
    """kwargs: conv2d's, the activation as the reference takes it (a name or a
    (name, params) pair)."""
    act = kwargs.get("activation")
    fkw = dict(kwargs)
    if isinstance(act, tuple):
        fkw["activation"] = fastconv.Activation(act[0], **act[1])
    for bias in (b, None):
        ref = conv2d_act_ref(x, wt, bias, **kwargs)
        for weight in (wt, fastconv.pack_weight(wt)):
            for _ in range(2):   # first call, then the cached one
                y = fastconv.conv2d(x, weight, bias, **fkw)
                _check(y, x, wt, bias, dtype, _ref=ref)
            out = np.full(y.shape, np.nan, dtype)
            assert fastconv.conv2d(x, weight, bias, out=out, **fkw) is out
            _check(out, x, wt, bias, dtype, _ref=ref)


def _first_data(case, dtype):
    n, c, h, w, o, k, s, p, d = case
    kh, kw = _kk(k)
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c, kh, kw)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    return x, wt, b, dict(stride=s, padding=p, dilation=d)


def _one_data(case, dtype):
    n, c, h, w, o, s, p = case
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c, 1, 1)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    return x, wt, b, dict(stride=s, padding=p)


@pytest.mark.parametrize("case", FIRST, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ["relu", None, "silu", ("leaky_relu", {"negative_slope": 0.2})])
def test_first_layer(case, dtype, act):
    x, wt, b, kw = _first_data(case, dtype)
    _run_case(x, wt, b, dtype, dict(kw, activation=act))


@pytest.mark.parametrize("case", ONE, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ["relu", None, "gelu", "hardswish"])
def test_strided_1x1(case, dtype, act):
    x, wt, b, kw = _one_data(case, dtype)
    _run_case(x, wt, b, dtype, dict(kw, activation=act))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threads(threads, dtype):
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    try:
        for case in (FIRST[0], FIRST[2], FIRST[4]):
            x, wt, b, kw = _first_data(case, dtype)
            _run_case(x, wt, b, dtype, dict(kw, activation="relu"))
        for case in (ONE[0], ONE[1]):
            x, wt, b, kw = _one_data(case, dtype)
            _run_case(x, wt, b, dtype, dict(kw, activation="relu"))
    finally:
        fastconv.set_num_threads(old)


def test_pre_activation_takes_the_general_path():
    """Pre-activated calls are declined by both kernels; results still right."""
    for data, case in ((_first_data, FIRST[1]), (_one_data, ONE[1])):
        x, wt, b, kw = data(case, np.float32)
        y = fastconv.conv2d(x, wt, b, pre_activation="relu", activation="relu", **kw)
        _check(y, x, wt, b, np.float32, pre_activation="relu", activation="relu", **kw)


def test_noncontiguous_input():
    x, wt, b, kw = _first_data(FIRST[2], np.float32)
    xs = np.asfortranarray(x)
    _check(fastconv.conv2d(xs, wt, b, **kw), x, wt, b, np.float32, **kw)
    x, wt, b, kw = _one_data(ONE[1], np.float32)
    xs = x[:, :, ::1, ::1].copy()[..., ::-1][..., ::-1]
    _check(fastconv.conv2d(xs, wt, b, **kw), x, wt, b, np.float32, **kw)


def _compute(dtype_name):
    outs = []
    for case in FIRST:
        x, wt, b, kw = _first_data(case, np.dtype(dtype_name).type)
        outs.append(fastconv.conv2d(x, fastconv.pack_weight(wt), b, activation="relu", **kw))
    for case in ONE:
        x, wt, b, kw = _one_data(case, np.dtype(dtype_name).type)
        outs.append(fastconv.conv2d(x, wt, b, activation="silu", **kw))
    return outs


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_simd_matches_portable(tmp_path, dtype):
    assert_simd_matches_portable("test_first_and_1x1", _compute, dtype, tmp_path)


def test_routing():
    """The two kernels take the layers they were written for (seen through the
    workspace the driver reports: none for the first-layer kernel, which
    allocates its per-thread band buffers itself, instead of the kw-unfolded
    copy; with the AVX2 set the gathered 49 x 256 block for the strided 1x1, and
    for a 7x7 stride-1 1x1; the GEMM tile, no workspace, at 28x28)."""
    if fastconv.config.config()["kernels"] not in ("avx2+fma", "avx512"):
        pytest.skip("no SIMD kernels on this machine/build")
    assert fastconv.workspace_bytes((1, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3,
                                    method="fused") == 0
    # the strided-1x1 kernel (an AVX2 tile) with the AVX2 set only; under
    # AVX-512 the driver's tiles read x in place (no workspace)
    s1x1 = fastconv.config.config()["kernels"] == "avx2+fma"
    assert fastconv.workspace_bytes((1, 256, 14, 14), (512, 256, 1, 1), stride=2,
                                    method="fused") == (49 * 256 * 4 + 64 if s1x1 else 0)
    assert fastconv.workspace_bytes((1, 512, 7, 7), (2048, 512, 1, 1),
                                    method="fused") == (49 * 512 * 4 + 64 if s1x1 else 0)
    assert fastconv.workspace_bytes((1, 128, 28, 28), (512, 128, 1, 1), method="fused") == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["relu", None])
def test_first_layer_nan_and_negative_zero(rng, dtype, activation):
    """NaN in x reaches every output whose window holds it, through the
    in-register relu too (relu(NaN) is NaN, as in the scalar code), and the
    rest matches the reference: the first-layer kernel of each SIMD set."""
    x = rng.standard_normal((1, 3, 23, 70)).astype(dtype)
    x[0, 1, 10, 33] = np.nan
    x[0, 2, 5, 7] = -np.inf
    w = rng.standard_normal((16, 3, 3, 3)).astype(dtype)
    b = np.zeros(16, dtype)
    y = fastconv.conv2d(x, w, b, padding=1, activation=activation)
    ref, scale = conv2d_act_ref(x, w, b, padding=1, activation=activation)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    ok = np.isfinite(ref)
    np.testing.assert_array_equal(np.isinf(y), np.isinf(ref))
    np.testing.assert_allclose(y[ok], ref[ok], rtol=0, atol=RTOL[dtype] * 100 * scale[ok].max())


# ---- the shared kernel tester (tests/kernel_tester.py) ----------------------
from kernel_tester import check_family, kernel_set  # noqa: E402,F401

FIRST_CASES = [(1, 3, 32, 32, 16, 7, 2, 3, 1, 1), (2, 3, 21, 19, 32, 3, 1, 1, 1, 1),
               (1, 4, 17, 40, 24, 5, 2, 2, 1, 1)]
S1X1_CASES = [(1, 64, 14, 14, 128, 1, 2, 0, 1, 1), (2, 32, 9, 11, 48, 1, 2, 0, 1, 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", FIRST_CASES, ids=str)
def test_first_family_by_the_kernel_tester(rng, kernel_set, case, dtype):
    check_family(rng, "direct" if kernel_set == "portable" else "first", case, dtype, "NCHW")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", S1X1_CASES, ids=str)
def test_strided_1x1_family_by_the_kernel_tester(rng, kernel_set, case, dtype):
    # the AVX2 level only (docs/DESIGN.md, kernel families)
    check_family(rng, "strided_1x1" if kernel_set == "avx2" else "direct", case, dtype, "NCHW")
