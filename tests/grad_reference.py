"""Independent float64 NumPy reference of the backward passes (nothing here
imports fastconv): activation derivatives with torch's conventions at the
kinks, the gradients of conv2d and conv_transpose2d written as the adjoint of
reference.conv2d_ref's tap loop, and conv_transpose2d itself.
"""
import math

import numpy as np
import scipy.special

import reference as R


def activation_grad_ref(name, z, **params):
    """f'(z) in float64, torch.autograd's value at every kink and special value."""
    name = R.canonical_name(name)
    p = dict(R.ACTIVATION_PARAMS[name])
    p.update(params)
    z = np.asarray(z, dtype=np.float64)
    one = np.ones_like(z)
    with np.errstate(all="ignore"):
        if name == "linear":
            return one
        if name == "relu":                       # threshold_backward: z <= 0 -> 0
            return np.where(z <= 0, 0.0, 1.0)
        if name == "relu6":                      # 0 at both break points and NaN
            return np.where((z > 0) & (z < 6), 1.0, 0.0)
        if name == "leaky_relu":
            return np.where(z > 0, 1.0, p["negative_slope"])
        if name == "elu":
            return np.where(z > 0, 1.0, p["alpha"] * np.exp(z))      # NaN -> NaN
        if name == "selu":
            return np.where(z > 0, R.SELU_SCALE, R.SELU_SCALE * R.SELU_ALPHA * np.exp(z))
        if name == "sigmoid":
            s = scipy.special.expit(z)
            return s * (1 - s)
        if name == "hardsigmoid":
            return np.where((z > -3) & (z < 3), 1 / 6, 0.0)
        if name == "tanh":
            return 1 - np.tanh(z) ** 2
        if name == "softplus":
            bz = z * p["beta"]
            return np.where(bz > p["threshold"], 1.0, scipy.special.expit(bz))
        if name == "softsign":
            # autograd's chain through z / (1 + |z|): NaN at +-inf (inf / inf)
            b = 1 + np.abs(z)
            return 1 / b - z * np.sign(z) / b ** 2
        if name == "silu":
            s = scipy.special.expit(z)
            return s * (1 + z * (1 - s))
        if name == "hardswish":                  # 0 at -3, 1 at 3, NaN -> NaN
            return np.where(z <= -3, 0.0, np.where(z >= 3, 1.0, z / 3 + 0.5))
        if name == "gelu":
            if p["approximate"] == "tanh":
                k = math.sqrt(2 / math.pi)
                t = np.tanh(k * (z + 0.044715 * z ** 3))
                return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * k * (1 + 3 * 0.044715 * z * z)
            return 0.5 * scipy.special.erfc(-z / math.sqrt(2)) + \
                z * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        if name == "mish":
            tsp = np.tanh(np.logaddexp(0.0, z))
            return tsp + z * scipy.special.expit(z) * (1 - tsp * tsp)
    raise ValueError(name)


#: bound of |f''| away from the kinks (how an error in z moves f'(z))
def curvature(name, **params):
    name = R.canonical_name(name)
    p = dict(R.ACTIVATION_PARAMS[name])
    p.update(params)
    if name == "elu":
        return max(1.0, abs(p["alpha"]))
    if name == "softplus":
        return abs(p["beta"]) * 0.25
    return {"linear": 0.0, "relu": 0.0, "relu6": 0.0, "leaky_relu": 0.0, "hardsigmoid": 0.0,
            "selu": R.SELU_SCALE * R.SELU_ALPHA, "sigmoid": 0.1, "tanh": 0.8, "softsign": 2.0,
            "silu": 0.5, "hardswish": 1 / 3, "gelu": 0.8, "mish": 0.8}[name]


#: the points where f' jumps (a test keeps z away from them)
def kinks(name, **params):
    name = R.canonical_name(name)
    return {"relu": (0.0,), "relu6": (0.0, 6.0), "leaky_relu": (0.0,), "elu": (0.0,),
            "selu": (0.0,), "hardsigmoid": (-3.0, 3.0), "hardswish": (-3.0, 3.0)}.get(name, ())


def _taps(xp_shape, kh, kw, stride, dilation, ho, wo):
    sh, sw = R._pair(stride)
    dh, dw = R._pair(dilation)
    for i in range(kh):
        for j in range(kw):
            yield i, j, (slice(i * dh, i * dh + sh * (ho - 1) + 1, sh),
                         slice(j * dw, j * dw + sw * (wo - 1) + 1, sw))


def conv2d_input_grad_ref(gz, w, x_shape, stride, padding, dilation, groups):
    """The adjoint of conv2d_ref in x: sum over taps of the scatter of gz."""
    N, C, H, W = x_shape
    Cout, Cg, KH, KW = w.shape
    G, Og = groups, Cout // groups
    pt, pb, pl, pr = padding
    ho, wo = gz.shape[2:]
    gxp = np.zeros((N, G, Cg, H + pt + pb, W + pl + pr))
    gzg = gz.reshape(N, G, Og, ho, wo)
    wg = w.reshape(G, Og, Cg, KH, KW)
    for i, j, (rs, cs) in _taps(gxp.shape, KH, KW, stride, dilation, ho, wo):
        # gx[n, g] += wt[g].T @ gz[n, g] (float64 GEMMs through NumPy's BLAS)
        wt = wg[:, :, :, i, j].transpose(0, 2, 1)                   # (G, Cg, Og)
        gxp[:, :, :, rs, cs] += np.matmul(wt, gzg.reshape(N, G, Og, ho * wo)).reshape(
            N, G, Cg, ho, wo)
    return gxp[:, :, :, pt:pt + H, pl:pl + W].reshape(N, C, H, W)


def conv2d_weight_grad_ref(gz, x, w_shape, stride, padding, dilation, groups):
    N, C, H, W = x.shape
    Cout, Cg, KH, KW = w_shape
    G, Og = groups, Cout // groups
    pt, pb, pl, pr = padding
    ho, wo = gz.shape[2:]
    xp = np.zeros((N, C, H + pt + pb, W + pl + pr))
    xp[:, :, pt:pt + H, pl:pl + W] = x
    xg = xp.reshape(N, G, Cg, xp.shape[2], xp.shape[3])
    gzg = gz.reshape(N, G, Og, ho, wo)
    gw = np.zeros((G, Og, Cg, KH, KW))
    gz_rows = gzg.transpose(1, 2, 0, 3, 4).reshape(G, Og, N * ho * wo)   # (G, Og, N*P)
    for i, j, (rs, cs) in _taps(xp.shape, KH, KW, stride, dilation, ho, wo):
        tap = xg[:, :, :, rs, cs].transpose(1, 2, 0, 3, 4).reshape(G, Cg, N * ho * wo)
        gw[:, :, :, i, j] = np.matmul(gz_rows, tap.transpose(0, 2, 1))
    return gw.reshape(Cout, Cg, KH, KW)


#: absolute error allowed in a derivative f'(v), relative to the test's rtol
#: (1e-2 x rtol 1e-4 = 1e-6 in float32): the formulas cancel where f
#: saturates (gelu-tanh's 1 + tanh(u) and 1 - tanh(u)^2 far left of 0), in
#: torch's float32 arithmetic as in ours
DERIV_ABS_ERR = 1e-2


def _act(spec):
    if spec is None:
        return None, {}
    return R._act_spec(spec)


def conv2d_backward_ref(g, x, w, bias=None, stride=1, padding=0, dilation=1, groups=1,
                        activation=None, pre_activation=None, data_format="NCHW",
                        z_at=None):
    """(gi, gw, gb), each with a tolerance scale (|err| <= rtol * scale for
    a correct float result), in the caller's layout; and z (NCHW float64).
    z_at (caller's layout), when given, is where f' is evaluated instead of
    the exact z: a working-precision z on the same side of f's kinks as the
    code under test saw (the exact z of a large layer always has elements
    within rounding of a kink)."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    g = np.asarray(g, np.float64)
    unbatched = x.ndim == 3
    if unbatched:
        x, g = x[None], g[None]
    if data_format == "NHWC":
        x, g = x.transpose(0, 3, 1, 2), g.transpose(0, 3, 1, 2)
        w = w.transpose(3, 2, 0, 1)
    pads = R.normalize_padding(padding, w.shape[2:], dilation)
    pname, pp = _act(pre_activation)
    xa = x if pname is None else R.activation_ref(pname, x, **pp)
    dpre = np.ones_like(x) if pname is None else activation_grad_ref(pname, x, **pp)
    z, zscale = R.conv2d_ref(xa, w, bias, stride, pads, dilation, groups, return_scale=True)
    if pname is not None:
        zscale = zscale + R.PRE_ABS_ERR * R.conv2d_ref(np.abs(x), np.abs(w), None, stride, pads,
                                                       dilation, groups)
    aname, ap = _act(activation)
    if z_at is not None:
        za = np.asarray(z_at, np.float64)
        za = za[None] if unbatched else za
        za = za.transpose(0, 3, 1, 2) if data_format == "NHWC" else za
    else:
        za = z
    d = np.ones_like(z) if aname is None else activation_grad_ref(aname, za, **ap)
    gz = g * d
    # an error in z moves f'(z) by up to curvature * error
    gz_scale = np.abs(g) * (np.abs(d) + (0 if aname is None else DERIV_ABS_ERR +
                                         curvature(aname, **ap) * (np.abs(z) + zscale)))
    gb = gz.sum(axis=(0, 2, 3))
    gb_scale = gz_scale.sum(axis=(0, 2, 3))
    gw = conv2d_weight_grad_ref(gz, xa, w.shape, stride, pads, dilation, groups)
    gw_scale = conv2d_weight_grad_ref(gz_scale, np.abs(xa) + R.PRE_ABS_ERR * np.abs(x), w.shape,
                                      stride, pads, dilation, groups)
    gi = conv2d_input_grad_ref(gz, w, x.shape, stride, pads, dilation, groups) * dpre
    gi_scale = conv2d_input_grad_ref(gz_scale, np.abs(w), x.shape, stride, pads, dilation,
                                     groups) * (np.abs(dpre) + DERIV_ABS_ERR)
    if data_format == "NHWC":
        gi, gi_scale = gi.transpose(0, 2, 3, 1), gi_scale.transpose(0, 2, 3, 1)
        gw, gw_scale = gw.transpose(2, 3, 1, 0), gw_scale.transpose(2, 3, 1, 0)
    if unbatched:
        gi, gi_scale = gi[0], gi_scale[0]
    return (gi, gi_scale), (gw, gw_scale), (gb, gb_scale), z


# --------------------------------------------------------------------------
# conv_transpose2d: the adjoint of conv2d (torch's definition)
# --------------------------------------------------------------------------

def conv_transpose2d_ref(x, w, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                         dilation=1, return_scale=False):
    """float64 F.conv_transpose2d: x (N, C_in, H, W), w (C_in, C_out/groups, kH, kW)."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    N, Ci, H, W = x.shape
    _, Cog, KH, KW = w.shape
    G = groups
    sh, sw = R._pair(stride)
    dh, dw = R._pair(dilation)
    ph, pw = R._pair(padding)
    oph, opw = R._pair(output_padding)
    Ho = (H - 1) * sh - 2 * ph + dh * (KH - 1) + oph + 1
    Wo = (W - 1) * sw - 2 * pw + dw * (KW - 1) + opw + 1
    # the output is the input gradient of the conv2d with weight w (C_in as its
    # out_channels) from it to x (stride, dilation, padding ph
    # top, pb bottom) from it to x; where output_padding exceeds padding (pb < 0)
    # the scatter goes into an output extended by -pb rows, cropped after
    pb = (H - 1) * sh + dh * (KH - 1) + 1 - Ho - ph
    pr = (W - 1) * sw + dw * (KW - 1) + 1 - Wo - pw
    He, We = Ho + max(-pb, 0), Wo + max(-pr, 0)
    y = conv2d_input_grad_ref(x, w, (N, G * Cog, He, We), stride,
                              (ph, max(pb, 0), pw, max(pr, 0)), dilation, G)[:, :, :Ho, :Wo]
    if bias is not None:
        y = y + np.asarray(bias, np.float64).reshape(1, -1, 1, 1)
    if not return_scale:
        return y
    s = conv_transpose2d_ref(np.abs(x), np.abs(w), None if bias is None else np.abs(bias),
                             stride, padding, output_padding, groups, dilation)
    return y, np.abs(y) + s
