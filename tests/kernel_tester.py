"""The one kernel tester the kernel families' test modules share.

`check_family(rng, family, case, dtype, layout)` runs one convolution the way
a user does, with plain weights and with `fastconv.pack_weight`'s, in NCHW or
NHWC (HWIO weights), and checks that

- the call's plan picks `family` at the kernel set in use (`_core.direct_plan`:
  the row of src/conv/direct/conv_direct_impl.h's families_ that runs it), or
  the family `expect(level)` names when it depends on the level;
- both results match the float64 reference (tests/reference.py) within a
  tolerance scaled by the magnitude of each output's terms;
- plain and packed weights give the same bits.

`KERNEL_SETS` and the `kernel_set` fixture of a module that imports it run a
test under each forced set (the fixture yields the level the set runs at:
"avx512", "avx2" or "portable").  A case is (n, c_in, h, w, c_out, k, stride,
padding, dilation, groups).
"""
import numpy as np
import pytest

import fastconv
from fastconv import _core
from fastconv.activations import as_activation
from reference import conv2d_act_ref

KERNEL_SETS = ["default", "avx2+fma", "portable"]


@pytest.fixture(params=KERNEL_SETS)
def kernel_set(request):
    """The level a forced kernel set runs at ("default": what the CPU and the
    environment chose); the chosen set again afterwards."""
    if not _core._force_kernels(request.param):
        pytest.skip(f"no {request.param} kernels on this CPU/build")
    try:
        yield _core.config()["isa"]
    finally:
        _core._force_kernels("default")


def _tol(dtype):
    return 2e-5 if dtype == np.float32 else 1e-12


def check_family(rng, family, case, dtype, layout, *, activation="relu", pre_activation=None):
    n, c, h, w, o, k, s, p, dil, g = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c // g, k, k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    ho = (h + 2 * p - dil * (k - 1) - 1) // s + 1
    wo = (w + 2 * p - dil * (k - 1) - 1) // s + 1
    nhwc = layout == "NHWC"
    xu = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if nhwc else x
    wu = np.ascontiguousarray(wt.transpose(2, 3, 1, 0)) if nhwc else wt
    pre = as_activation(pre_activation)
    desc = _core.ConvDesc(n, c, h, w, o, k, k, ho, wo, s, s, dil, dil, p, p, g)
    xv = xu.transpose(0, 3, 1, 2) if nhwc else xu
    xs = tuple(st // xv.itemsize for st in xv.strides)
    got_family, _ = _core.direct_plan(desc, xs, pre._spec, xv.itemsize, nhwc)
    assert got_family == family, (case, layout, got_family)
    kw = dict(stride=s, padding=p, dilation=dil, groups=g, activation=activation,
              pre_activation=pre_activation, data_format=layout, method="fused")
    raw = fastconv.conv2d(xu, wu, b, **kw)
    packed = fastconv.conv2d(xu, fastconv.pack_weight(wu, g, data_format=layout), b, **kw)
    ref, scale = conv2d_act_ref(x, wt, b, stride=s, padding=p, dilation=dil, groups=g,
                                activation=activation, pre_activation=pre_activation)
    if nhwc:
        ref, scale = ref.transpose(0, 2, 3, 1), scale.transpose(0, 2, 3, 1)
    for name, y in (("raw", raw), ("packed", packed)):
        err = np.max(np.abs(y - ref) / (1 + scale))
        assert err < _tol(dtype), (family, case, layout, name, err)
    np.testing.assert_array_equal(raw, packed, err_msg=f"{family} {case} {layout}")
