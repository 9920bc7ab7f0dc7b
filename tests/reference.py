"""Independent, plainly written float64 NumPy reference for fastconv tests.

Nothing here imports fastconv.  Everything is computed in float64.
"""
import math

import numpy as np
import scipy.special

# --------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

#: canonical name -> {param: default}
ACTIVATION_PARAMS = {
    "linear": {},
    "relu": {},
    "relu6": {},
    "leaky_relu": {"negative_slope": 0.01},
    "elu": {"alpha": 1.0},
    "selu": {},
    "sigmoid": {},
    "hardsigmoid": {},
    "tanh": {},
    "softplus": {"beta": 1.0, "threshold": 20.0},
    "softsign": {},
    "silu": {},
    "hardswish": {},
    "gelu": {"approximate": "none"},
    "mish": {},
}

#: alias -> canonical name (the spec says "linear/identity"; which of the two is
#: canonical is not fixed, both must be accepted)
ALIASES = {
    "identity": "linear",
    "hard_sigmoid": "hardsigmoid",
    "swish": "silu",
    "hard_swish": "hardswish",
    "hard_silu": "hardswish",
}

CANONICAL = tuple(ACTIVATION_PARAMS)
ALL_NAMES = CANONICAL + tuple(ALIASES)

#: a few non-default parameter sets, as (name, params)
PARAM_CASES = [
    ("leaky_relu", {"negative_slope": 0.2}),
    ("leaky_relu", {"negative_slope": -0.5}),
    ("elu", {"alpha": 0.5}),
    ("elu", {"alpha": 2.0}),
    ("softplus", {"beta": 2.0, "threshold": 10.0}),
    ("softplus", {"beta": 0.5}),
    ("gelu", {"approximate": "tanh"}),
    ("gelu", {"approximate": "none"}),
]


def canonical_name(name):
    return ALIASES.get(name, name)


def _softplus(x, beta=1.0, threshold=20.0):
    bx = beta * x
    # stable log(1 + exp(bx)) / beta, with torch's linear branch above threshold
    soft = np.logaddexp(0.0, bx) / beta
    return np.where(bx > threshold, x, soft)


def activation_ref(name, x, **params):
    """float64 reference of torch.nn.functional activations (NaN propagating)."""
    name = canonical_name(name)
    p = dict(ACTIVATION_PARAMS[name])
    unknown = set(params) - set(p)
    if unknown:
        raise TypeError("unknown parameter(s) %s for %s" % (sorted(unknown), name))
    p.update(params)
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        if name == "linear":
            return x.copy()
        if name == "relu":
            return np.maximum(x, 0.0)
        if name == "relu6":
            return np.minimum(np.maximum(x, 0.0), 6.0)
        if name == "leaky_relu":
            return np.where(x > 0, x, x * p["negative_slope"])
        if name == "elu":
            return np.where(x > 0, x, p["alpha"] * np.expm1(x))
        if name == "selu":
            return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x))
        if name == "sigmoid":
            return scipy.special.expit(x)
        if name == "hardsigmoid":
            return np.minimum(np.maximum(x + 3.0, 0.0), 6.0) / 6.0
        if name == "tanh":
            return np.tanh(x)
        if name == "softplus":
            return _softplus(x, p["beta"], p["threshold"])
        if name == "softsign":
            return x / (1.0 + np.abs(x))
        if name == "silu":
            return x * scipy.special.expit(x)
        if name == "hardswish":
            return x * np.minimum(np.maximum(x + 3.0, 0.0), 6.0) / 6.0
        if name == "gelu":
            if p["approximate"] == "tanh":
                # 0.5*(1+tanh(z)) == expit(2z), without the cancellation
                k = math.sqrt(2.0 / math.pi)
                return x * scipy.special.expit(2.0 * k * (x + 0.044715 * x ** 3))
            if p["approximate"] == "none":
                # 0.5*(1+erf(x/sqrt2)) == 0.5*erfc(-x/sqrt2), without the cancellation
                return 0.5 * x * scipy.special.erfc(-x / math.sqrt(2.0))
            raise ValueError(p["approximate"])
        if name == "mish":
            return x * np.tanh(np.logaddexp(0.0, x))
    raise ValueError("unknown activation %r" % name)


#: upper bound of |f'(x)| for each activation (used to propagate the conv
#: rounding error through a post-activation)
def lipschitz(name, **params):
    name = canonical_name(name)
    if name == "leaky_relu":
        return max(1.0, abs(params.get("negative_slope", 0.01)))
    if name == "elu":
        return max(1.0, abs(params.get("alpha", 1.0)))
    if name == "selu":
        return SELU_SCALE * SELU_ALPHA
    if name in ("gelu", "mish", "silu", "hardswish"):
        return 1.7  # hardswish' max is 1.5; gelu ~1.13; silu ~1.1; mish ~1.1
    return 1.0


# --------------------------------------------------------------------------
# convolution
# --------------------------------------------------------------------------

def _pair(v):
    if isinstance(v, (tuple, list)):
        assert len(v) == 2
        return int(v[0]), int(v[1])
    return int(v), int(v)


def same_padding(kernel_size, dilation=1):
    """torch-style "same" padding: total = d*(k-1), left = total//2, extra at
    bottom/right.  Returns (top, bottom, left, right)."""
    kh, kw = _pair(kernel_size)
    dh, dw = _pair(dilation)
    th, tw = dh * (kh - 1), dw * (kw - 1)
    return th // 2, th - th // 2, tw // 2, tw - tw // 2


def normalize_padding(padding, kernel_size=None, dilation=1):
    """Any spec padding form -> (top, bottom, left, right)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            return same_padding(kernel_size, dilation)
        raise ValueError(padding)
    if isinstance(padding, (tuple, list)):
        assert len(padding) == 2
        if all(isinstance(p, (tuple, list)) for p in padding):
            (t, b), (l, r) = padding
            return int(t), int(b), int(l), int(r)
        ph, pw = int(padding[0]), int(padding[1])
        return ph, ph, pw, pw
    p = int(padding)
    return p, p, p, p


def out_size(n, k, stride, pad_lo, pad_hi, dilation):
    return (n + pad_lo + pad_hi - dilation * (k - 1) - 1) // stride + 1


def conv2d_ref(x, w, bias=None, stride=1, padding=(0, 0, 0, 0), dilation=1,
               groups=1, return_scale=False):
    """float64 reference conv2d (cross-correlation), NCHW input, OIHW weight.

    padding is (top, bottom, left, right).  If return_scale is True also return
    the "magnitude" conv |x| * |w| + |bias| (same shape), which bounds the
    rounding error of any summation order: |err| <= n * eps * scale.
    A 3-D x is treated as one unbatched image.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    N, C, H, W = x.shape
    Cout, Cg, KH, KW = w.shape
    G = groups
    assert C == Cg * G and Cout % G == 0
    Og = Cout // G
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    pt, pb, pl, pr = padding
    Ho = out_size(H, KH, sh, pt, pb, dh)
    Wo = out_size(W, KW, sw, pl, pr, dw)
    assert Ho > 0 and Wo > 0
    xp = np.zeros((N, C, H + pt + pb, W + pl + pr))
    xp[:, :, pt:pt + H, pl:pl + W] = x
    xg = xp.reshape(N, G, Cg, xp.shape[2], xp.shape[3])
    wg = w.reshape(G, Og, Cg, KH, KW)
    out = np.zeros((N, G, Og, Ho, Wo))
    scale = np.zeros((N, G, Og, Ho, Wo)) if return_scale else None
    for i in range(KH):
        r0 = i * dh
        for j in range(KW):
            c0 = j * dw
            tap = xg[:, :, :, r0:r0 + sh * (Ho - 1) + 1:sh, c0:c0 + sw * (Wo - 1) + 1:sw]
            tap = tap.reshape(N, G, Cg, Ho * Wo)
            wt = wg[:, :, :, i, j]  # (G, Og, Cg)
            # out[n, g, o] += wt[g] @ tap[n, g]: float64 GEMMs through NumPy's
            # BLAS (np.einsum without optimize= runs a plain loop, ~10x slower)
            out += np.matmul(wt, tap).reshape(out.shape)
            if return_scale:
                scale += np.matmul(np.abs(wt), np.abs(tap)).reshape(out.shape)
    out = out.reshape(N, Cout, Ho, Wo)
    if return_scale:
        scale = scale.reshape(N, Cout, Ho, Wo)
    if bias is not None:
        b = np.asarray(bias, dtype=np.float64).reshape(1, Cout, 1, 1)
        out = out + b
        if return_scale:
            scale = scale + np.abs(b)
    if unbatched:
        out = out[0]
        if return_scale:
            scale = scale[0]
    return (out, scale) if return_scale else out


#: absolute error allowed in a pre-activated input, relative to |x| and to the
#: test's rtol (1e-3 x rtol 1e-4 = 1e-7 |x| in float32, about one ulp of x)
PRE_ABS_ERR = 1e-3


def conv2d_act_ref(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1,
                   activation=None, pre_activation=None, data_format="NCHW"):
    """Full-semantics reference taking the same argument forms as
    fastconv.conv2d.  activation / pre_activation are None, a name, or a
    (name, params) pair.  Returns (ref, tol_scale) in the caller's layout:
    ref is the float64 expected output; tol_scale is a per-element magnitude so
    that a correct result obeys |got - ref| <= rtol * tol_scale."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if data_format == "NHWC":
        x = np.moveaxis(x, -1, -3)          # (..., H, W, C) -> (..., C, H, W)
        w = w.transpose(3, 2, 0, 1)         # HWIO -> OIHW
    pads = normalize_padding(padding, w.shape[2:], dilation)
    x_raw = x
    if pre_activation is not None:
        pname, pparams = _act_spec(pre_activation)
        x = activation_ref(pname, x, **pparams)
    y, scale = conv2d_ref(x, w, bias, stride, pads, dilation, groups, return_scale=True)
    tol_scale = np.abs(y) + scale
    if pre_activation is not None:
        # f(x) in working precision carries an absolute error of a few ulp of |x|
        # where the formula cancels (gelu's 1 + erf(x) far left of 0 is 0 in
        # float32 while the true value is ~1e-24): allow PRE_ABS_ERR * |x| per tap.
        tol_scale = tol_scale + PRE_ABS_ERR * conv2d_ref(
            np.abs(x_raw), np.abs(w), None, stride, pads, dilation, groups)
    if activation is not None:
        aname, aparams = _act_spec(activation)
        z = activation_ref(aname, y, **aparams)
        tol_scale = np.abs(z) + lipschitz(aname, **aparams) * tol_scale
        y = z
    if data_format == "NHWC":
        y = np.moveaxis(y, -3, -1)
        tol_scale = np.moveaxis(tol_scale, -3, -1)
    return y, tol_scale


def _act_spec(a):
    if isinstance(a, str):
        return a, {}
    name, params = a
    return name, dict(params)


# --------------------------------------------------------------------------
# torch equivalents (torch is passed in; this module never imports it)
# --------------------------------------------------------------------------

def torch_activation(torch, name, t, **params):
    F = torch.nn.functional
    name = canonical_name(name)
    p = dict(ACTIVATION_PARAMS[name])
    p.update(params)
    if name == "linear":
        return t.clone()
    if name == "relu":
        return F.relu(t)
    if name == "relu6":
        return F.relu6(t)
    if name == "leaky_relu":
        return F.leaky_relu(t, p["negative_slope"])
    if name == "elu":
        return F.elu(t, p["alpha"])
    if name == "selu":
        return F.selu(t)
    if name == "sigmoid":
        return torch.sigmoid(t)
    if name == "hardsigmoid":
        return F.hardsigmoid(t)
    if name == "tanh":
        return torch.tanh(t)
    if name == "softplus":
        return F.softplus(t, p["beta"], p["threshold"])
    if name == "softsign":
        return F.softsign(t)
    if name == "silu":
        return F.silu(t)
    if name == "hardswish":
        return F.hardswish(t)
    if name == "gelu":
        return F.gelu(t, approximate=p["approximate"])
    if name == "mish":
        return F.mish(t)
    raise ValueError(name)


def torch_conv2d(torch, x, w, bias=None, stride=1, padding=0, dilation=1, groups=1,
                 activation=None, pre_activation=None, data_format="NCHW"):
    """The same computation done with torch, in the dtype of x."""
    F = torch.nn.functional
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    if data_format == "NHWC":
        x = np.ascontiguousarray(np.moveaxis(x, -1, -3))
        w = np.ascontiguousarray(w.transpose(3, 2, 0, 1))
    tx = torch.from_numpy(x)
    tw = torch.from_numpy(w)
    tb = None if bias is None else torch.from_numpy(np.ascontiguousarray(bias))
    if pre_activation is not None:
        n, pp = _act_spec(pre_activation)
        tx = torch_activation(torch, n, tx, **pp)
    if isinstance(padding, str):
        tpad = padding
    else:
        t_, b_, l_, r_ = normalize_padding(padding)
        if t_ == b_ and l_ == r_:
            tpad = (t_, l_)
        else:
            tx = F.pad(tx, (l_, r_, t_, b_))
            tpad = 0
    y = F.conv2d(tx, tw, tb, stride=stride, padding=tpad, dilation=dilation, groups=groups)
    if activation is not None:
        n, pp = _act_spec(activation)
        y = torch_activation(torch, n, y, **pp)
    y = y.numpy()
    if data_format == "NHWC":
        y = np.moveaxis(y, -3, -1)
    return y
