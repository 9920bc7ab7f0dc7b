"""One ISA decision for every kernel family (src/core/dispatch.c, fc_isa_variant).

Forcing a set in-process (_core._force_kernels, the fc_force_kernels hook)
switches every family: what config()/show_config report for it (read from
C), what the family itself asks the decision when it runs (_core._isa_asked:
a family that kept its own copy of the level, or read it elsewhere, would
not ask), and what pool.c sees in the other extension module.  A depthwise,
a first-layer, a 1x1 and a 3x3 convolution match the float64 reference under
each set.  The default set is restored after each test."""
import io
import math

import numpy as np
import pytest

import fastconv
import fastconv.layers as L
from fastconv import _core, _pool, grad
from reference import conv2d_act_ref

CFG = _core.config()
SETS = ["portable"] + (["avx2+fma"] if CFG["cpu_avx2_fma"] else []) \
    + (["avx512"] if CFG["cpu_avx512"] else [])
LEVEL = {"portable": "portable", "avx2+fma": "avx2", "avx512": "avx512"}

# The variant each family should run under each forced set, written out here
# independently of dispatch.c's table: (portable, avx2+fma, avx512) -> families.
BY_VARIANTS = {
    ("portable", "avx2", "avx512"): ["direct tiles", "depthwise NHWC", "activations",
                                     "weight gradient", "winograd"],
    ("portable", "avx2", "avx2"): ["depthwise NCHW", "activation gradients", "pooling"],
    ("none", "avx2", "avx512"): ["first layer", "fma peak probe"],
    ("none", "avx2", "avx2"): ["small"],
    ("none", "avx2", "none"): ["1x1 strided"],   # the AVX-512 B tiles are faster
    ("none", "none", "avx512"): ["1x1 gemm"],
}
EXPECTED = {family: v for v, fams in BY_VARIANTS.items() for family in fams}
POOL_LEVELS = {"portable": 0, "avx2": 1, "avx512": 2}


def _expected(kernel_set):
    col = ["portable", "avx2+fma", "avx512"].index(kernel_set)
    return {family: v[col] for family, v in EXPECTED.items()}


@pytest.fixture(params=SETS)
def kernel_set(request):
    """Every family forced to one set for the test, the default set after it."""
    try:
        assert _core._force_kernels(request.param)
        yield request.param
    finally:
        assert _core._force_kernels("default")
        assert not _core.config()["isa_forced"]


def _f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _run(family, rng):
    """One call that goes through `family`'s dispatch."""
    if family == "direct tiles":
        fastconv.conv2d(_f32(rng, 1, 16, 20, 20), _f32(rng, 32, 16, 3, 3), padding=1)
    elif family == "depthwise NCHW":
        fastconv.conv2d(_f32(rng, 1, 32, 17, 17), _f32(rng, 32, 1, 3, 3), padding=1, groups=32)
    elif family == "depthwise NHWC":
        fastconv.conv2d(_f32(rng, 1, 17, 17, 64), _f32(rng, 3, 3, 1, 64), padding=1,
                        groups=64, data_format="NHWC")
    elif family == "small":
        fastconv.conv2d(_f32(rng, 1, 4, 9, 9), _f32(rng, 4, 4, 3, 3), padding=1)
    elif family == "first layer":
        fastconv.conv2d(_f32(rng, 1, 3, 64, 64), _f32(rng, 16, 3, 7, 7), stride=2, padding=3)
    elif family == "1x1 strided":
        fastconv.conv2d(_f32(rng, 1, 32, 14, 14), _f32(rng, 64, 32, 1, 1), stride=2)
    elif family == "1x1 gemm":
        _core.gemm_plain(_f32(rng, 13, 7), _f32(rng, 7, 5), np.empty((13, 5), np.float32))
    elif family == "activations":
        fastconv.activations.activate(_f32(rng, 3, 5000), "silu")
    elif family in ("activation gradients", "weight gradient"):
        x, w = _f32(rng, 2, 16, 12, 12), _f32(rng, 32, 16, 3, 3)
        grad.conv2d_backward(_f32(rng, 2, 32, 12, 12), x, w, padding=1, activation="silu")
    elif family == "pooling":
        L.MaxPooling2D(pool_size=3, strides=2, data_format="channels_first")(_f32(rng, 2, 16, 15, 15))
    elif family == "winograd":
        fastconv.conv2d(_f32(rng, 1, 16, 12, 12), _f32(rng, 32, 16, 3, 3), padding=1,
                        method="winograd")
    elif family == "fma peak probe":
        _core.fma_peak_gflops(1, 1000, 1)
    else:
        raise AssertionError(f"no call for the family {family!r}")


def test_every_family_is_listed():
    assert set(CFG["families"]) == set(EXPECTED)


def test_show_config_lists_each_family_from_c(kernel_set):
    c = _core.config()
    assert c["isa"] == LEVEL[kernel_set] and c["isa_forced"]
    assert c["families"] == _expected(kernel_set)
    buf = io.StringIO()
    fastconv.show_config(file=buf)
    lines = buf.getvalue().splitlines()
    for family, variant in _expected(kernel_set).items():
        assert any(line.split() == family.split() + [variant] for line in
                   (ln.replace(":", " ") for ln in lines)), (family, variant, lines)


def test_forcing_switches_every_family(kernel_set, rng):
    """Each family asks the one decision at its call and is handed the forced
    set's variant; pool.c (fastconv._pool) sees the same."""
    want = _expected(kernel_set)
    for family in EXPECTED:
        _core._isa_asked(reset=True)
        _run(family, rng)
        asked = _core._isa_asked(reset=True)[family]
        assert asked == want[family], (family, kernel_set, asked)
    pool_now = _pool.isa_variant_now()
    assert pool_now == POOL_LEVELS.get(want["pooling"], -1)


def test_default_set_restored_after_forcing():
    chosen = _core.config()["isa"]
    for s in SETS:
        assert _core._force_kernels(s)
    assert _core._force_kernels("default")
    c = _core.config()
    assert c["isa"] == chosen and not c["isa_forced"]
    assert not _core._force_kernels("no such set")


CONVS = {   # (x shape, w shape (OIHW), stride, padding, groups)
    "depthwise": ((2, 24, 15, 13), (24, 1, 3, 3), 1, 1, 24),
    "first layer": ((2, 3, 40, 38), (16, 3, 7, 7), 2, 3, 1),
    "1x1": ((2, 32, 10, 9), (40, 32, 1, 1), 1, 0, 1),
    "3x3": ((2, 16, 14, 12), (36, 16, 3, 3), 1, 1, 1),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CONVS))
@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
def test_convs_match_reference_under_each_set(kernel_set, rng, case, dtype, data_format):
    xs, wsh, stride, padding, groups = CONVS[case]
    x = rng.standard_normal(xs).astype(dtype)
    w = (rng.standard_normal(wsh) / math.sqrt(wsh[1] * wsh[2] * wsh[3])).astype(dtype)
    b = rng.standard_normal(wsh[0]).astype(dtype)
    if data_format == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        w = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    for act in (None, "relu", "silu"):
        got = fastconv.conv2d(x, w, b, stride=stride, padding=padding, groups=groups,
                              activation=act, data_format=data_format)
        ref, scale = conv2d_act_ref(x, w, b, stride, padding, groups=groups, activation=act,
                                    data_format=data_format)
        assert got.dtype == dtype and got.shape == ref.shape
        rtol = 1e-4 if dtype == np.float32 else 1e-10   # test_conv2d's RTOL
        err = np.abs(got.astype(np.float64) - ref)
        assert (err <= rtol * scale).all(), (case, act, kernel_set, (err / scale).max())
