"""Pooling layers (C kernels in src/pool/pool.c, NCHW; channels_last transposed here)."""
import numpy as np

from fastconv import _pool

from ._base import (Layer, check_ndim, explicit_padding, out_size_and_pads, shape_str,
                    standardize_data_format, standardize_padding, standardize_tuple)


def pool2d_forward(x, kernel, strides, dilation, pads, out_hw, mode, count_include_pad,
                   channels_last=False):
    """x (N, C, H, W) float32/float64 -> (N, C, oh, ow) with the C kernel; with
    channels_last, x (N, H, W, C) -> (N, oh, ow, C) by its channels-last body
    (no transposing copies; the same values)."""
    x = np.ascontiguousarray(x)
    shape = (x.shape[0],) + tuple(out_hw) + (x.shape[3],) if channels_last else \
        x.shape[:2] + tuple(out_hw)
    out = np.empty(shape, x.dtype)
    if x.size and out.size:
        _pool.pool2d(x, out, kernel, strides, dilation, pads, mode, count_include_pad,
                     channels_last)
    return out


def pool2d_backward(x, grad_output, shape, dtype, kernel, strides, dilation, pads, mode,
                    count_include_pad, channels_last):
    """The input gradient of pool2d (C kernel) in the layer's own layout: x
    (max only; None for average) and the result are (N, H, W, C) when
    channels_last, else (N, C, H, W); grad_output in the same layout."""
    gy = np.ascontiguousarray(grad_output, dtype=dtype)
    gx = np.empty(shape, dtype)
    if gx.size:
        # average pooling does not read x: gx stands in for it
        xx = gx if x is None else np.ascontiguousarray(x, dtype=dtype)
        _pool.pool2d_backward(xx, gy, gx, kernel, strides, dilation, pads, mode,
                              count_include_pad, channels_last)
    return gx


def _to_nchw(x, data_format):
    return x if data_format == "channels_first" else x.transpose(0, 3, 1, 2)


def _from_nchw(y, data_format):
    return y if data_format == "channels_first" else np.ascontiguousarray(y.transpose(0, 2, 3, 1))


class _Pooling2D(Layer):
    _mode = None

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 dilation=1, ceil_mode=False, count_include_pad=None, name=None,
                 dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.pool_size = standardize_tuple(pool_size, 2, "pool_size")
        self.strides = self.pool_size if strides is None else \
            standardize_tuple(strides, 2, "strides")
        self.dilation = standardize_tuple(dilation, 2, "dilation")
        self.padding = standardize_padding(padding)
        self.data_format = standardize_data_format(data_format)
        self.ceil_mode = bool(ceil_mode)
        if isinstance(self.padding, tuple):
            for ax, name_ in enumerate(("height", "width")):
                dk = (self.pool_size[ax] - 1) * self.dilation[ax] + 1
                if max(self.padding[2 * ax:2 * ax + 2]) > dk // 2:
                    raise ValueError(f"`padding` must be at most half of the pool size on each "
                                     f"side; received padding={self.padding} "
                                     f"(top, bottom, left, right) for "
                                     f"pool_size={self.pool_size}, dilation={self.dilation}")
        elif self.ceil_mode:
            raise ValueError("`ceil_mode=True` needs explicit (numeric) padding, as in torch. "
                             f"Received: padding={padding!r}")
        if count_include_pad is None:
            # Keras 'same' averages over the taps inside the input; torch's
            # AvgPool2d default counts its (explicit) padding.
            count_include_pad = not isinstance(self.padding, str)
        self.count_include_pad = bool(count_include_pad)

    def _geometry(self, shape):
        hw = (shape[1], shape[2]) if self.data_format == "channels_last" else (shape[2], shape[3])
        sizes, pads = [], []
        for ax, size in enumerate(hw):
            k, s, d = self.pool_size[ax], self.strides[ax], self.dilation[ax]
            if size is None:
                sizes.append(None)
                pads += [0, 0]
                continue
            explicit = self.padding if isinstance(self.padding, str) else \
                self.padding[2 * ax:2 * ax + 2]
            o, lo, hi = out_size_and_pads(size, k, s, d, explicit)
            if self.ceil_mode:
                dk = (k - 1) * d + 1
                o = -(-(size + lo + hi - dk) // s) + 1
                if (o - 1) * s >= size + lo:     # torch: last window starts inside
                    o -= 1
            if o <= 0:
                raise ValueError("Computed output size would be negative. Received: "
                                 f"`inputs.shape={shape_str(shape)}` and "
                                 f"`pool_size={self.pool_size}`, padding={self.padding!r}")
            sizes.append(o)
            pads += [lo, hi]
        return tuple(sizes), tuple(pads)

    def compute_output_shape(self, input_shape):
        (oh, ow), _ = self._geometry(input_shape)
        if self.data_format == "channels_last":
            return (input_shape[0], oh, ow, input_shape[3])
        return (input_shape[0], input_shape[1], oh, ow)

    def _check_input(self, shape):
        check_ndim(self, shape, 4)

    def call(self, x, training=False):
        out_hw, pads = self._geometry(x.shape)
        y = pool2d_forward(x, self.pool_size, self.strides, self.dilation, pads, out_hw,
                           self._mode, self.count_include_pad,
                           self.data_format == "channels_last")
        if training:   # max needs x to find the winning taps again; average its shape
            self._saved = (x if self._mode == _pool.MAX else None, x.shape, x.dtype, pads)
        return y

    def _backward(self, g, saved, need_input):
        if not need_input:
            return None
        x, shape, dtype, pads = saved
        return pool2d_backward(x, g, shape, dtype, self.pool_size, self.strides, self.dilation,
                               pads, self._mode, self.count_include_pad,
                               self.data_format == "channels_last")

    def flops(self, input_shape):
        out = self.compute_output_shape(input_shape)
        return int(np.prod(out[1:])) * self.pool_size[0] * self.pool_size[1]

    def get_config(self):
        cfg = super().get_config()
        cfg.update(pool_size=self.pool_size, strides=self.strides, padding=self.padding,
                   data_format=self.data_format, dilation=self.dilation,
                   ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)
        return cfg


class MaxPooling2D(_Pooling2D):
    """Max pooling, Keras's ``MaxPooling2D`` (``padding="valid"|"same"``, the
    TensorFlow split) and torch's ``MaxPool2d`` (numeric ``padding`` as
    int/(ph, pw)/((t, b), (l, r)), ``dilation``, ``ceil_mode``).  Padding never
    wins the max (torch's -inf padding; Keras same)."""
    _mode = _pool.MAX


class AveragePooling2D(_Pooling2D):
    """Average pooling, Keras's ``AveragePooling2D`` and torch's ``AvgPool2d``.

    ``count_include_pad`` (default ``None``): with ``padding="same"`` the
    average is over the taps inside the input (Keras/TensorFlow); with numeric
    padding the padding zeros count, like torch's default
    ``count_include_pad=True``.  Pass ``True``/``False`` to choose.
    """
    _mode = _pool.AVG


class _GlobalPooling2D(Layer):
    _mode = None

    def __init__(self, data_format=None, keepdims=False, name=None, dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.data_format = standardize_data_format(data_format)
        self.keepdims = bool(keepdims)

    def _check_input(self, shape):
        check_ndim(self, shape, 4)

    def compute_output_shape(self, input_shape):
        n = input_shape[0]
        if self.data_format == "channels_last":
            c = input_shape[3]
            return (n, 1, 1, c) if self.keepdims else (n, c)
        c = input_shape[1]
        return (n, c, 1, 1) if self.keepdims else (n, c)

    def call(self, x, training=False):
        xn = _to_nchw(x, self.data_format)
        h, w = xn.shape[2:]
        y = pool2d_forward(xn, (h, w), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), self._mode, False)
        if training:
            self._saved = (x if self._mode == _pool.MAX else None, x.shape, x.dtype)
        if not self.keepdims:
            return y.reshape(y.shape[:2])
        return _from_nchw(y, self.data_format)

    def _backward(self, g, saved, need_input):
        if not need_input:
            return None
        x, shape, dtype = saved
        last = self.data_format == "channels_last"
        hw = shape[1:3] if last else shape[2:]
        n, c = shape[0], shape[3] if last else shape[1]
        g = g.reshape((n, 1, 1, c) if last else (n, c, 1, 1))
        return pool2d_backward(x, g, shape, dtype, hw, (1, 1), (1, 1), (0, 0, 0, 0),
                               self._mode, False, last)

    def flops(self, input_shape):
        return int(np.prod([d for d in input_shape[1:]]))

    def get_config(self):
        cfg = super().get_config()
        cfg.update(data_format=self.data_format, keepdims=self.keepdims)
        return cfg


class GlobalAveragePooling2D(_GlobalPooling2D):
    """Mean over the spatial axes; ``keepdims=True`` keeps them as 1×1
    (torch's ``AdaptiveAvgPool2d(1)``)."""
    _mode = _pool.AVG


class GlobalMaxPooling2D(_GlobalPooling2D):
    """Max over the spatial axes (torch's ``AdaptiveMaxPool2d(1)`` with keepdims)."""
    _mode = _pool.MAX


__all__ = ["MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
           "explicit_padding"]
