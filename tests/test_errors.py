"""Every bad argument to fastconv.conv2d raises ValueError/TypeError whose
message names the argument (and the shapes where relevant); giant sizes raise
ValueError/MemoryError; nothing crashes or hangs."""
from _child import run_python
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastconv

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

F32 = np.float32


def ones(*shape, dtype=F32):
    return np.ones(shape, dtype)


def shape_re(shape):
    """Regex matching a shape printed either as [1, 5, 8, 8] or (1, 5, 8, 8)."""
    return r"[\[(]" + r",\s*".join(str(s) for s in shape) + r",?[\])]"


def raises(exc, fn, *patterns, **kwargs):
    """Call fn(**kwargs); assert it raises exc and the message matches every
    regex in patterns (case-insensitive)."""
    with pytest.raises(exc) as ei:
        fn(**kwargs)
    msg = str(ei.value)
    for p in patterns:
        assert re.search(p, msg, re.I), "message %r does not match %r" % (msg, p)
    return msg


def conv(**kw):
    x = kw.pop("x", None)
    w = kw.pop("w", None)
    if x is None:
        x = ones(1, 3, 8, 8)
    if w is None:
        w = ones(4, 3, 3, 3)
    return lambda **_: fastconv.conv2d(x, w, **kw)


X_RE = r"\binput\b|\bx\b"
VE = ValueError
VTE = (ValueError, TypeError)


# ------------------------------------------------------------------- ndim

@pytest.mark.parametrize("shape", [(8, 8), (8,), (1, 1, 3, 8, 8), ()])
def test_input_ndim(shape):
    raises(VE, conv(x=ones(*shape)), X_RE, shape_re(shape) if shape else r"\(\)|\[\]|0-d|dim")


@pytest.mark.parametrize("shape", [(4, 3, 3), (4, 27), (4, 3, 3, 3, 1)])
def test_weight_ndim(shape):
    raises(VE, conv(w=ones(*shape)), r"weight", shape_re(shape))


def test_weight_ndim_nhwc():
    raises(VE, conv(x=ones(1, 8, 8, 3), w=ones(3, 3, 3), data_format="NHWC"), r"weight")


# ------------------------------------------------------------------- channels / groups

def test_channel_mismatch():
    msg = raises(VE, conv(x=ones(1, 5, 8, 8), w=ones(4, 3, 3, 3)), r"channel",
                 shape_re((1, 5, 8, 8)))
    assert re.search(r"\b3\b", msg) and re.search(r"\b5\b", msg), msg


def test_channel_mismatch_unbatched():
    msg = raises(VE, conv(x=ones(5, 8, 8), w=ones(4, 3, 3, 3)), r"channel")
    assert re.search(r"\b3\b", msg) and re.search(r"\b5\b", msg), msg


def test_channel_mismatch_nhwc():
    msg = raises(VE, conv(x=ones(1, 8, 8, 5), w=ones(3, 3, 3, 4), data_format="NHWC"),
                 r"channel")
    assert re.search(r"\b3\b", msg) and re.search(r"\b5\b", msg), msg


def test_group_channel_mismatch():
    # groups=2 and weight in-channels 2 -> expects 4 input channels, has 6
    msg = raises(VE, conv(x=ones(1, 6, 8, 8), w=ones(4, 2, 3, 3), groups=2),
                 r"channel|groups")
    assert re.search(r"\b6\b", msg) and re.search(r"\b4\b", msg), msg


def test_input_channels_not_divisible_by_groups():
    raises(VE, conv(x=ones(1, 5, 8, 8), w=ones(4, 2, 3, 3), groups=2), r"channel|groups")


def test_out_channels_not_divisible_by_groups():
    msg = raises(VE, conv(x=ones(1, 4, 8, 8), w=ones(5, 2, 3, 3), groups=2), r"groups")
    assert re.search(r"\b5\b", msg), msg


@pytest.mark.parametrize("groups", [0, -1, -4])
def test_groups_non_positive(groups):
    raises(VE, conv(groups=groups), r"groups")


@pytest.mark.parametrize("groups", [1.5, "2", None, (1, 1)])
def test_groups_wrong_type(groups):
    raises(VTE, conv(groups=groups), r"groups")


# ------------------------------------------------------------------- stride / dilation / padding

@pytest.mark.parametrize("arg", ["stride", "dilation"])
@pytest.mark.parametrize("value", [0, -1, (1, 0), (0, 2), (-2, 1), [1, -1]])
def test_non_positive_stride_dilation(arg, value):
    raises(VE, conv(**{arg: value}), arg)


@pytest.mark.parametrize("arg", ["stride", "dilation"])
@pytest.mark.parametrize("value", [(1, 2, 3), (), (1,)])
def test_stride_dilation_wrong_length(arg, value):
    raises(VTE, conv(**{arg: value}), arg)


@pytest.mark.parametrize("arg", ["stride", "dilation"])
@pytest.mark.parametrize("value", [1.5, "1", None, (1.0, 2)])
def test_stride_dilation_wrong_type(arg, value):
    raises(VTE, conv(**{arg: value}), arg)


@pytest.mark.parametrize("padding", [-1, (0, -1), (-2, 0), ((0, 0), (-1, 0)), ((0, -3), (1, 1))])
def test_negative_padding(padding):
    raises(VE, conv(padding=padding), r"padding")


@pytest.mark.parametrize("padding", ["full", "SAMEISH", (1, 2, 3), ((1, 2, 3), (0, 0)),
                                     ((1,), (0, 0)), (1.5, 1), None])
def test_bad_padding(padding):
    raises(VTE, conv(padding=padding), r"padding|full|sameish")


@pytest.mark.parametrize("stride", [2, (1, 2), (3, 1)])
def test_same_padding_with_stride(stride):
    raises(VE, conv(padding="same", stride=stride), r"same", r"stride")


@pytest.mark.parametrize("x,w,kw", [
    (ones(1, 3, 4, 4), ones(2, 3, 5, 5), {}),
    (ones(1, 3, 4, 9), ones(2, 3, 5, 3), {}),
    (ones(1, 3, 9, 4), ones(2, 3, 3, 5), {}),
    (ones(1, 3, 4, 4), ones(2, 3, 3, 3), {"dilation": 2}),
    (ones(1, 3, 4, 4), ones(2, 3, 3, 3), {"dilation": (1, 3)}),
    (ones(1, 3, 2, 2), ones(2, 3, 4, 4), {"padding": ((0, 1), (1, 0))}),
    (ones(3, 2, 2), ones(2, 3, 3, 3), {}),
])
def test_kernel_larger_than_padded_input(x, w, kw):
    raises(VE, conv(x=x, w=w, **kw), r"kernel")


def test_kernel_equal_to_padded_input_is_fine():
    y = fastconv.conv2d(ones(1, 3, 2, 2), ones(2, 3, 4, 4), padding=1)
    assert y.shape == (1, 2, 1, 1)
    assert np.allclose(y, 12.0)


def test_empty_spatial_input():
    raises(VE, conv(x=ones(1, 3, 0, 8)), r"kernel|input|size|empty")


# ------------------------------------------------------------------- bias

@pytest.mark.parametrize("shape", [(5,), (3,), (4, 1), (1, 4), (), (0,)])
def test_bias_shape(shape):
    b = np.ones(shape, F32)
    raises(VE, conv(bias=b), r"bias")


def test_bias_shape_mentions_shapes():
    msg = raises(VE, conv(bias=ones(5)), r"bias")
    assert re.search(r"\b5\b", msg) and re.search(r"\b4\b", msg), msg


# ------------------------------------------------------------------- dtypes

BAD_DTYPES = [np.int32, np.int64, np.uint8, np.float16, np.complex64, np.complex128, np.bool_]
try:
    BAD_DTYPES.append(np.longdouble if np.dtype(np.longdouble) != np.float64 else np.object_)
except TypeError:  # pragma: no cover
    pass


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
def test_bad_input_dtype(dtype):
    x = np.ones((1, 3, 8, 8), dtype)
    raises(VTE, conv(x=x), X_RE, r"float|dtype")


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
def test_bad_weight_dtype(dtype):
    w = np.ones((4, 3, 3, 3), dtype)
    raises(VTE, conv(w=w), r"weight", r"float|dtype")


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
def test_bad_bias_dtype(dtype):
    raises(VTE, conv(bias=np.ones(4, dtype)), r"bias", r"float|dtype")


@pytest.mark.parametrize("xd,wd", [(np.float32, np.float64), (np.float64, np.float32)])
def test_mismatched_dtypes(xd, wd):
    raises(VTE, conv(x=ones(1, 3, 8, 8, dtype=xd), w=ones(4, 3, 3, 3, dtype=wd)), r"weight",
           r"float32|float64|dtype")


@pytest.mark.parametrize("xd,bd", [(np.float32, np.float64), (np.float64, np.float32)])
def test_mismatched_bias_dtype(xd, bd):
    raises(VTE, conv(x=ones(1, 3, 8, 8, dtype=xd), w=ones(4, 3, 3, 3, dtype=xd),
                     bias=np.ones(4, bd)), r"bias", r"float32|float64|dtype")


def test_none_input():
    raises(VTE, conv(x=np.array(None)), X_RE)
    with pytest.raises(VTE):
        fastconv.conv2d(None, ones(4, 3, 3, 3))
    with pytest.raises(VTE):
        fastconv.conv2d(ones(1, 3, 8, 8), None)


# ------------------------------------------------------------------- activation / method / format

@pytest.mark.parametrize("arg", ["activation", "pre_activation"])
def test_unknown_activation(arg):
    raises(VE, conv(**{arg: "bogus_act"}), r"bogus_act")
    raises(VTE, conv(**{arg: 42}), arg)
    raises(VTE, conv(**{arg: lambda v: v}), arg)


def test_unknown_activation_param():
    with pytest.raises(VTE, match="alpha"):
        fastconv.Activation("relu", alpha=1.0)
    with pytest.raises(VTE, match="approximate|sigmoid"):
        fastconv.Activation("gelu", approximate="sigmoid")


@pytest.mark.parametrize("method", ["fast", "FUSED", "", None, 1, "Winograd"])
def test_unknown_method(method):
    raises(VTE, conv(method=method), r"method")


@pytest.mark.parametrize("fmt", ["NCWH", "channels_last", "HWC", "", None, 0])
def test_unknown_data_format(fmt):
    raises(VTE, conv(data_format=fmt), r"data_format")


# ------------------------------------------------------------------- out

def test_out_wrong_shape():
    msg = raises(VE, conv(out=ones(1, 4, 7, 6)), r"\bout\b")
    assert re.search(shape_re((1, 4, 6, 6)), msg) or re.search(shape_re((1, 4, 7, 6)), msg), msg
    raises(VE, conv(out=ones(4, 6, 6)), r"\bout\b")
    raises(VE, conv(out=ones(1, 6, 6, 4)), r"\bout\b")  # NHWC shape for an NCHW call
    raises(VE, conv(out=ones(1, 4 * 6 * 6)), r"\bout\b")


def test_out_wrong_shape_nhwc_and_unbatched():
    raises(VE, conv(x=ones(1, 8, 8, 3), w=ones(3, 3, 3, 4), data_format="NHWC",
                    out=ones(1, 4, 6, 6)), r"\bout\b")
    raises(VE, conv(x=ones(3, 8, 8), out=ones(1, 4, 6, 6)), r"\bout\b")


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32])
def test_out_wrong_dtype(dtype):
    raises(VTE, conv(out=np.ones((1, 4, 6, 6), dtype)), r"\bout\b")


def test_out_non_contiguous():
    raises(VE, conv(out=np.ones((1, 4, 6, 12), F32)[..., ::2]), r"\bout\b")
    raises(VE, conv(out=np.ones((1, 4, 6, 6), F32)[:, :, ::-1]), r"\bout\b")
    f = np.asfortranarray(np.ones((2, 4, 6, 6), F32))
    raises(VE, conv(x=ones(2, 3, 8, 8), out=f), r"\bout\b")


def test_out_read_only():
    o = np.ones((1, 4, 6, 6), F32)
    o.flags.writeable = False
    raises(VE, conv(out=o), r"\bout\b")
    raises(VE, conv(out=np.broadcast_to(np.float32(0), (1, 4, 6, 6))), r"\bout\b")


def test_out_not_an_array():
    raises(VTE, conv(out=[[0.0]]), r"\bout\b")


def test_out_overlapping_input_is_rejected_or_correct():
    # out aliasing x: must be an error or still give the right answer
    buf = np.random.default_rng(0).standard_normal((1, 4, 6, 6)).astype(F32)
    w = np.random.default_rng(1).standard_normal((4, 4, 1, 1)).astype(F32)
    want = fastconv.conv2d(buf.copy(), w)
    try:
        got = fastconv.conv2d(buf, w, out=buf)
    except ValueError as e:
        assert re.search(r"\bout\b", str(e)), str(e)
        return
    assert got is buf
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_failed_call_does_not_write_out():
    o = np.full((1, 4, 6, 6), 7.0, F32)
    with pytest.raises(VE):
        fastconv.conv2d(ones(1, 3, 8, 8), ones(4, 3, 3, 3), bias=ones(5), out=o)
    assert (o == 7.0).all()


# ------------------------------------------------------------------- giant sizes (subprocess)
#
# Each case runs in a child process with a 6 GiB address-space limit (so an
# accidental huge allocation fails instead of swapping) and a wall-clock
# timeout, so a crash or a hang fails this test instead of killing the run.

_CHILD = textwrap.dedent(r"""
    import json, resource, sys, traceback
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
    import numpy as np
    import fastconv
    from numpy.lib.stride_tricks import as_strided

    def view(shape, dtype=np.float32, value=1.0):
        return as_strided(np.full(1, value, dtype), shape=shape, strides=(0,) * len(shape))

    cases = {
      # output (16 * 2^60 elements) overflows int64 byte offsets
      "output_overflow": lambda: fastconv.conv2d(view((1, 1, 2**30, 2**30)), view((16, 1, 1, 1))),
      "output_overflow_nhwc": lambda: fastconv.conv2d(view((1, 2**30, 2**30, 1)), view((1, 1, 1, 16)),
                                                       data_format="NHWC"),
      # Cout * H * W overflows even though every array given is small
      "padding_overflow": lambda: fastconv.conv2d(view((1, 1, 4, 4)), view((1, 1, 1, 1)), padding=2**62),
      "padding_overflow_one_side": lambda: fastconv.conv2d(view((1, 1, 4, 4)), view((1, 1, 1, 1)),
                                                           padding=((0, 2**61), (0, 2**61))),
      "padding_bigger_than_int64": lambda: fastconv.conv2d(view((1, 1, 4, 4)), view((1, 1, 1, 1)),
                                                           padding=2**70),
      # im2col workspace Cin*KH*KW*Ho*Wo overflows, output is small
      "workspace_overflow": lambda: fastconv.conv2d(view((1, 2**28, 2**15, 2**15)),
                                                    view((1, 2**28, 1, 1)), method="im2col"),
      "workspace_overflow_fused": lambda: fastconv.conv2d(view((1, 2**28, 2**15, 2**15)),
                                                          view((1, 2**28, 1, 1)), method="fused"),
      # cannot be allocated: 2^44 output elements
      "output_too_big": lambda: fastconv.conv2d(view((1, 1, 4, 4)), view((2**40, 1, 1, 1))),
      "batch_too_big": lambda: fastconv.conv2d(view((2**40, 1, 2, 2)), view((1, 1, 1, 1))),
      "weight_too_big": lambda: fastconv.conv2d(view((1, 2**40, 1, 1)), view((1, 2**40, 1, 1))),
      "activate_too_big": lambda: fastconv.activate(view((2**40,)), "relu"),
      "dilation_huge": lambda: fastconv.conv2d(view((1, 1, 4, 4)), view((1, 1, 3, 3)), dilation=2**62),
      "dilation_bigger_than_int64": lambda: fastconv.conv2d(view((1, 1, 4, 4)), view((1, 1, 3, 3)),
                                                             dilation=2**64),
      "stride_bigger_than_int64": lambda: fastconv.conv2d(view((1, 1, 4, 4)), view((1, 1, 3, 3)),
                                                           stride=2**64),
      "groups_bigger_than_int64": lambda: fastconv.conv2d(view((1, 1, 4, 4)), view((1, 1, 3, 3)),
                                                           groups=2**64),
    }
    only = sys.argv[1:]
    for name, fn in cases.items():
        if only and name not in only:
            continue
        try:
            r = fn()
            res = {"ok": True, "shape": list(np.shape(r))}
        except BaseException as e:
            res = {"ok": False, "type": type(e).__name__, "msg": str(e)[:300]}
        print(json.dumps({"case": name, **res}), flush=True)
""")

# case -> (allowed exception types, regex the message must match or None)
GIANT = {
    "output_overflow": (("ValueError", "MemoryError"), None),
    "output_overflow_nhwc": (("ValueError", "MemoryError"), None),
    "padding_overflow": (("ValueError", "MemoryError"), None),
    "padding_overflow_one_side": (("ValueError", "MemoryError"), None),
    "padding_bigger_than_int64": (("ValueError", "MemoryError"), None),
    "workspace_overflow": (("ValueError", "MemoryError"), None),
    "workspace_overflow_fused": (("ValueError", "MemoryError"), None),
    "output_too_big": (("ValueError", "MemoryError"), None),
    "batch_too_big": (("ValueError", "MemoryError"), None),
    "weight_too_big": (("ValueError", "MemoryError"), None),
    "activate_too_big": (("ValueError", "MemoryError"), None),
    "dilation_huge": (("ValueError",), r"(?i)kernel|dilation"),
    "dilation_bigger_than_int64": (("ValueError",), r"(?i)kernel|dilation"),
    "stride_bigger_than_int64": (("ValueError",), r"(?i)stride"),
    "groups_bigger_than_int64": (("ValueError",), r"(?i)groups"),
}


@pytest.fixture(scope="module")
def giant_results():
    try:
        p = run_python(["-c", _CHILD], capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired as e:
        pytest.fail("giant-size cases hung (>180 s); partial output:\n%s" % (e.stdout,))
    results = {}
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            results[d["case"]] = d
    if p.returncode != 0:
        done = set(results)
        crashed = [c for c in GIANT if c not in done]
        pytest.fail("child crashed with rc=%s during case %s; stderr:\n%s"
                    % (p.returncode, crashed[:1], p.stderr[-2000:]))
    return results


@pytest.mark.parametrize("case", list(GIANT))
def test_giant_sizes(giant_results, case):
    allowed, pattern = GIANT[case]
    r = giant_results[case]
    assert not r["ok"], "%s: expected an error, got an array of shape %s" % (case, r["shape"])
    assert r["type"] in allowed, "%s: raised %s: %s (allowed: %s)" % (case, r["type"], r["msg"],
                                                                       allowed)
    if pattern and r["type"] != "MemoryError":
        assert re.search(pattern, r["msg"]), "%s: message %r does not match %r" % (
            case, r["msg"], pattern)
    if r["type"] == "ValueError" and pattern is None:
        # an overflow message should say something about size
        assert re.search(r"(?i)overflow|too (large|big)|size|memory|exceed", r["msg"]), r["msg"]


# ------------------------------------------------------------------- huge but valid parameters
#
# Huge strides / dilations / one-sided paddings whose output is tiny: the
# answer must be correct (or a clean ValueError), computed here with exact
# Python-int index arithmetic.  Run in a child process in case of a crash.

def _bigint_ref(x, w, b, stride, pads, dilation):
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    sh, sw = stride
    dh, dw = dilation
    pt, pb, pl, pr = pads
    Ho = (H + pt + pb - dh * (KH - 1) - 1) // sh + 1
    Wo = (W + pl + pr - dw * (KW - 1) - 1) // sw + 1
    y = np.zeros((N, O, Ho, Wo))
    for oh in range(Ho):
        for ow in range(Wo):
            acc = np.zeros((N, O))
            for i in range(KH):
                ih = oh * sh - pt + i * dh
                if not 0 <= ih < H:
                    continue
                for j in range(KW):
                    iw = ow * sw - pl + j * dw
                    if not 0 <= iw < W:
                        continue
                    acc += x[:, :, ih, iw] @ w[:, :, i, j].T
            y[:, :, oh, ow] = acc + b
    return y


HUGE_VALID = [
    dict(stride=(1, 2**62), pads=(0, 0, 0, 2**63)),
    dict(stride=(2**62, 1), pads=(0, 2**63, 0, 0)),
    dict(stride=(2**62, 1), pads=(2**62, 0, 0, 0)),
    dict(stride=(1, 2**62), pads=(0, 0, 2**62 + 3, 2**62)),
    dict(stride=(1, 2**62), pads=(0, 0, 2**63 - 1, 0)),
    dict(stride=(2**62, 1), pads=(2**63 - 1, 0, 0, 0)),
    dict(stride=(1, 2**62), pads=(0, 0, 2**63, 0)),
    dict(stride=(1, 2**61), pads=(0, 0, 2**62, 2**62)),
    dict(stride=(1, 1), pads=(0, 0, 2**62, 0), dilation=(1, 2**62)),
    dict(stride=(1, 1), pads=(0, 0, 0, 2**62), dilation=(1, 2**62)),
    dict(stride=(1, 1), pads=(2**62, 0, 0, 0), dilation=(2**61, 1)),
    dict(stride=(3, 2**40), pads=(1, 2, 2**40, 2**41), dilation=(2, 1)),
]


_CHILD_VALID = textwrap.dedent(r"""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
    import numpy as np
    import fastconv
    cfg = json.loads(sys.argv[1])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 7)).astype(np.float64)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float64)
    b = rng.standard_normal(4)
    t, bo, l, r = cfg["pads"]
    out = {}
    for m in ["fused", "separate", "im2col", "auto"]:
        try:
            y = fastconv.conv2d(x, w, b, tuple(cfg["stride"]), ((t, bo), (l, r)),
                                tuple(cfg.get("dilation", (1, 1))), method=m)
            out[m] = {"ok": True, "y": y.tolist()}
        except BaseException as e:
            out[m] = {"ok": False, "type": type(e).__name__, "msg": str(e)[:300]}
    print(json.dumps(out))
""")


@pytest.mark.parametrize("cfg", HUGE_VALID, ids=[str(i) for i in range(len(HUGE_VALID))])
def test_huge_but_valid_parameters(cfg):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 7)).astype(np.float64)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float64)
    b = rng.standard_normal(4)
    try:
        p = run_python(["-c", _CHILD_VALID, json.dumps(cfg)],
                       capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("hang for %s" % cfg)
    assert p.returncode == 0, "crash (rc=%s) for %s: %s" % (p.returncode, cfg, p.stderr[-1500:])
    res = json.loads(p.stdout.strip().splitlines()[-1])
    want = _bigint_ref(x, w, b, cfg["stride"], cfg["pads"], cfg.get("dilation", (1, 1)))
    for m, r in res.items():
        if not r["ok"]:
            # a clean, named error is acceptable for values beyond int64
            assert r["type"] == "ValueError", "%s %s: %s: %s" % (cfg, m, r["type"], r["msg"])
            assert re.search(r"(?i)stride|padding|dilation|overflow|large", r["msg"]), r["msg"]
            continue
        got = np.array(r["y"])
        assert got.shape == want.shape, (cfg, m, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12,
                                   err_msg="%s method=%s" % (cfg, m))
