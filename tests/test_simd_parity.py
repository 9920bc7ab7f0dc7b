"""The AVX2+FMA kernels and the portable ones agree (portable run in a
subprocess with FASTCONV_DISABLE_SIMD=1)."""
from _child import assert_simd_matches_portable

import numpy as np
import pytest

import fastconv


# (N, C, H, W, Cout, k, stride, pad, dilation, groups): every driver mode and
# tile edge: GEMM 1x1, unpadded direct, kw-folded small-C, channels-last.
CASES = [
    (1, 3, 30, 30, 3, 3, 1, 0, 1, 1),
    (1, 3, 37, 41, 64, 7, 2, 3, 1, 1),
    (1, 64, 20, 19, 64, 3, 1, 1, 1, 1),
    (2, 16, 9, 11, 40, 3, 1, 1, 1, 1),
    (1, 32, 14, 14, 48, 1, 2, 0, 1, 1),
    (1, 32, 13, 17, 70, 1, 1, 0, 1, 1),
    (1, 8, 10, 10, 12, 3, 2, 1, 2, 2),
    (3, 6, 14, 12, 9, 3, 2, 2, 2, 3),
    (1, 130, 6, 6, 17, 3, 1, 1, 1, 1),
]
ACTS = ["relu", "silu", "gelu", None]


def _compute(dtype_name):
    rng = np.random.default_rng(1234)
    outs = []
    for (n, c, h, w, o, k, s, p, d, g) in CASES:
        x = rng.standard_normal((n, c, h, w)).astype(dtype_name)
        wt = rng.standard_normal((o, c // g, k, k)).astype(dtype_name)
        b = rng.standard_normal(o).astype(dtype_name)
        for act in ACTS:
            outs.append(fastconv.conv2d(x, wt, b, s, p, d, g, activation=act, method="fused"))
            outs.append(fastconv.conv2d(x, wt, b, s, p, d, g, pre_activation="relu",
                                        method="fused"))
    return outs


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_simd_matches_portable(tmp_path, dtype):
    assert_simd_matches_portable("test_simd_parity", _compute, dtype, tmp_path)
