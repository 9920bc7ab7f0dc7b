"""from_torch: torch.nn modules -> fastconv layers taking the same NCHW input."""
import numpy as np

from fastconv.activations import Activation as _Act

from ._base import Layer
from ._conv import Conv2D
from ._core_layers import Activation, BatchNormalization, Dense, Flatten, Identity, ZeroPadding2D
from ._model import Sequential
from ._pooling import AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D


def _np(t):
    return t.detach().cpu().numpy()


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _activation_of(m, nn):
    """torch activation module -> fastconv.Activation (torch's parameters)."""
    if isinstance(m, nn.ReLU):
        return _Act("relu")
    if isinstance(m, nn.ReLU6):
        return _Act("relu6")
    if isinstance(m, nn.LeakyReLU):
        return _Act("leaky_relu", negative_slope=m.negative_slope)
    if isinstance(m, nn.ELU):
        return _Act("elu", alpha=m.alpha)
    if isinstance(m, nn.SELU):
        return _Act("selu")
    if isinstance(m, nn.Sigmoid):
        return _Act("sigmoid")
    if isinstance(m, nn.Hardsigmoid):
        return _Act("hardsigmoid")
    if isinstance(m, nn.Tanh):
        return _Act("tanh")
    if isinstance(m, nn.Softplus):
        return _Act("softplus", beta=m.beta, threshold=m.threshold)
    if isinstance(m, nn.Softsign):
        return _Act("softsign")
    if isinstance(m, nn.SiLU):
        return _Act("silu")
    if isinstance(m, nn.Hardswish):
        return _Act("hardswish")
    if isinstance(m, nn.GELU):
        return _Act("gelu", approximate=m.approximate)
    if isinstance(m, nn.Mish):
        return _Act("mish")
    return None


def from_torch(module, dtype="float32"):
    """Convert a torch module to fastconv layers that take the same NCHW
    input and give the same output (inference: BatchNorm2d uses its running
    statistics, Dropout is the identity).

    Supported: Conv2d (any stride/padding/dilation/groups, padding_mode
    "zeros"), Linear, BatchNorm2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1),
    AdaptiveMaxPool2d(1), Flatten (start_dim=1), ZeroPad2d, Identity, Dropout,
    the activation modules (ReLU, ReLU6, LeakyReLU, ELU, SELU, Sigmoid,
    Hardsigmoid, Tanh, Softplus, Softsign, SiLU, Hardswish, GELU, Mish) and
    nn.Sequential of those (nested too), which becomes a Sequential.
    Weights are copied (OIHW -> HWIO for convolutions).
    """
    import torch.nn as nn

    m = module
    name = None
    if isinstance(m, nn.Sequential):
        return Sequential([from_torch(c, dtype=dtype) for c in m], name=name)
    if isinstance(m, nn.Conv2d):
        if m.padding_mode != "zeros":
            raise ValueError(f"from_torch: Conv2d padding_mode={m.padding_mode!r} is not "
                             "supported (only 'zeros')")
        if isinstance(m.padding, str):
            padding = m.padding             # "valid" / "same" (stride 1): same split as TF
        else:
            padding = _pair(m.padding)
        w = _np(m.weight)                   # (out, in/groups, kh, kw)
        layer = Conv2D(m.out_channels, m.kernel_size, strides=m.stride, padding=padding,
                       data_format="channels_first", dilation_rate=1,
                       groups=m.groups, use_bias=m.bias is not None, dtype=dtype,
                       kernel=w.transpose(2, 3, 1, 0),
                       bias=None if m.bias is None else _np(m.bias))
        # Keras refuses strides > 1 with dilation > 1 (a TensorFlow limit);
        # torch and the fastconv core do not.
        layer.dilation_rate = tuple(_pair(m.dilation))
        return layer
    if isinstance(m, nn.Linear):
        return Dense(m.out_features, use_bias=m.bias is not None, dtype=dtype,
                     kernel=_np(m.weight).T, bias=None if m.bias is None else _np(m.bias))
    if isinstance(m, nn.BatchNorm2d):
        if m.running_mean is None or m.running_var is None:
            raise ValueError("from_torch: BatchNorm2d without running statistics "
                             "(track_running_stats=False) cannot run at inference")
        c = m.num_features
        gamma = _np(m.weight) if m.affine else np.ones(c)
        beta = _np(m.bias) if m.affine else np.zeros(c)
        return BatchNormalization(axis=1, epsilon=m.eps, dtype=dtype, gamma=gamma, beta=beta,
                                  moving_mean=_np(m.running_mean),
                                  moving_variance=_np(m.running_var))
    if isinstance(m, nn.MaxPool2d):
        if m.return_indices:
            raise ValueError("from_torch: MaxPool2d(return_indices=True) is not supported")
        k = _pair(m.kernel_size)
        return MaxPooling2D(k, strides=_pair(m.stride if m.stride is not None else k),
                            padding=_pair(m.padding), dilation=_pair(m.dilation),
                            ceil_mode=m.ceil_mode, data_format="channels_first", dtype=dtype)
    if isinstance(m, nn.AvgPool2d):
        if m.divisor_override is not None:
            raise ValueError("from_torch: AvgPool2d(divisor_override=...) is not supported")
        k = _pair(m.kernel_size)
        return AveragePooling2D(k, strides=_pair(m.stride if m.stride is not None else k),
                                padding=_pair(m.padding), ceil_mode=m.ceil_mode,
                                count_include_pad=m.count_include_pad,
                                data_format="channels_first", dtype=dtype)
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        if _pair(m.output_size) != (1, 1):
            raise ValueError(f"from_torch: {type(m).__name__}(output_size={m.output_size}) is "
                             "not supported (only 1)")
        cls = GlobalAveragePooling2D if isinstance(m, nn.AdaptiveAvgPool2d) else \
            GlobalMaxPooling2D
        return cls(data_format="channels_first", keepdims=True, dtype=dtype)
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise ValueError("from_torch: only Flatten(start_dim=1, end_dim=-1) is supported")
        return Flatten()                   # plain reshape of NCHW, like torch
    if isinstance(m, nn.ZeroPad2d):
        left, right, top, bottom = m.padding
        return ZeroPadding2D(((top, bottom), (left, right)), data_format="channels_first",
                             dtype=dtype)
    if isinstance(m, (nn.Identity, nn.Dropout, nn.Dropout2d)):
        return Identity(dtype=dtype)
    act = _activation_of(m, nn)
    if act is not None:
        return Activation(act, dtype=dtype)
    raise TypeError(f"from_torch: unsupported module {type(m).__name__}; supported: Conv2d, "
                    "Linear, BatchNorm2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1), "
                    "AdaptiveMaxPool2d(1), Flatten, ZeroPad2d, Identity, Dropout, activation "
                    "modules and nn.Sequential of them")


__all__ = ["from_torch", "Layer"]
