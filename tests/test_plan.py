"""The plan of a direct call (src/conv/direct/conv_direct_impl.h, families_):
which kernel family runs it and the exact workspace it needs, read by the
workspace query and by the run alike.  For a call of every family, under
every forced kernel set: the plan names the family expected, a run given
exactly the plan's bytes allocates no workspace of its own (the C counter
_core._workspace_fallbacks) and matches the float64 reference, and a run
given none allocates one exactly when the plan says it needs bytes."""
import numpy as np
import pytest

import fastconv
from fastconv import _core
from fastconv.activations import as_activation
from kernel_tester import kernel_set  # noqa: F401 (a fixture)
from reference import conv2d_act_ref

# name: (n, c_in, h, w, c_out, k, stride, pad, groups, nhwc, pre-activation)
CASES = {
    "depthwise": (2, 32, 14, 14, 32, 3, 1, 1, 32, False, None),
    "depthwise NHWC": (2, 32, 14, 14, 32, 3, 1, 1, 32, True, None),
    "small": (2, 16, 12, 12, 4, 3, 1, 1, 1, False, None),
    "small NHWC": (2, 16, 12, 12, 4, 3, 1, 1, 1, True, None),
    "first layer": (1, 3, 32, 32, 16, 7, 2, 3, 1, False, None),
    "strided 1x1": (1, 64, 14, 14, 128, 1, 2, 0, 1, False, None),
    "3x3 NCHW": (1, 32, 10, 10, 48, 3, 1, 1, 1, False, None),
    "3x3 NHWC": (1, 32, 10, 10, 48, 3, 1, 1, 1, True, None),
    "3x3 pre-activated": (1, 32, 10, 10, 48, 3, 1, 1, 1, False, "relu"),
    "3x3 NHWC pre-activated": (1, 32, 10, 10, 48, 3, 1, 1, 1, True, "relu"),
}
# the family each case's plan picks at each level (small, first layer and
# strided 1x1 have no portable variant; strided 1x1 runs at the AVX2 level
# only: docs/DESIGN.md, kernel families)
FAMILY = {
    "depthwise": "depthwise", "depthwise NHWC": "depthwise_nhwc", "small": "small",
    "small NHWC": "small_nhwc", "first layer": "first", "strided 1x1": "direct",
    "3x3 NCHW": "direct", "3x3 NHWC": "direct", "3x3 pre-activated": "direct",
    "3x3 NHWC pre-activated": "direct",
}
AT_LEVEL = {   # by the level a set runs at (_core.config()["isa"])
    "avx512": {},
    "avx2": {"strided 1x1": "strided_1x1"},
    "portable": {"small": "direct", "small NHWC": "direct", "first layer": "direct"},
}


def _call(rng, case, dtype):
    n, c, h, w, o, k, s, p, g, nhwc, pre = case
    ho = (h + 2 * p - k) // s + 1
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c // g, k, k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    desc = _core.ConvDesc(n, c, h, w, o, k, k, ho, ho, s, s, 1, 1, p, p, g)
    if nhwc:   # an NHWC array, seen through (N, C, H, W) indices
        xv = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        y = np.empty((n, ho, ho, o), dtype)
    else:
        xv, y = x, np.empty((n, o, ho, ho), dtype)
    ref, scale = conv2d_act_ref(x, wt, b, stride=s, padding=p, groups=g, activation="relu",
                                pre_activation=pre)
    return desc, x, xv, wt, b, y, ref, scale


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(CASES))
def test_plan_family_and_workspace(rng, kernel_set, name, dtype):
    case = CASES[name]
    nhwc, pre = case[9], as_activation(case[10])
    desc, x, xv, wt, b, y, ref, scale = _call(rng, case, dtype)
    post = as_activation("relu")
    xs = tuple(st // xv.itemsize for st in xv.strides)
    family, nbytes = _core.direct_plan(desc, xs, pre._spec, xv.itemsize, nhwc)
    assert family == AT_LEVEL[kernel_set].get(name, FAMILY[name]), (kernel_set, name)
    assert _core.direct_workspace_ex(desc, xs, pre._spec, xv.itemsize, nhwc) == nbytes
    pw = fastconv.pack_weight(wt, case[8])
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for given in (True, False):
        ws = np.empty(nbytes, np.uint8) if given and nbytes else None
        before = _core._workspace_fallbacks()
        _core.conv2d_ex(desc, xv, pw, b, y, nhwc, post._spec, pre._spec, ws)
        allocated = _core._workspace_fallbacks() - before
        # given the plan's bytes: none allocated; given none: one exactly when it needs bytes
        assert allocated == (0 if given else int(nbytes > 0)), (kernel_set, name, given, nbytes)
        got = y.transpose(0, 3, 1, 2) if nhwc else y
        assert np.max(np.abs(got - ref) / (1 + scale)) < tol, (kernel_set, name, given)
