"""Conv2D and DepthwiseConv2D with Keras semantics, run by fastconv.conv2d."""
import numpy as np

from fastconv.config import get_fast_math
from fastconv._core import WinogradWeight
from fastconv.conv import _shared_pack, conv2d, pack_weight, winograd_pays

from fastconv.activations import activate

from ._backprop import backward_activation, forward_activation, has_output_form
from ._base import (Layer, LayerActivation, check_axis, check_ndim, initialize, keras_activation,
                    out_size_and_pads, positive_int, shape_str, standardize_data_format,
                    standardize_padding, standardize_tuple)


class _ConvBase(Layer):
    """Shared by Conv2D and DepthwiseConv2D: geometry, padding, the call."""

    _weight_names = ("kernel", "bias")
    #: the conv2d methods the layer takes (Conv2D adds "winograd")
    _methods = ("auto", "fused", "separate", "im2col")

    def _init_common(self, kernel_size, strides, padding, data_format, dilation_rate,
                     activation, use_bias, pre_activation, method):
        self.kernel_size = standardize_tuple(kernel_size, 2, "kernel_size")
        self.strides = standardize_tuple(strides, 2, "strides")
        self.dilation_rate = standardize_tuple(dilation_rate, 2, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("`strides > 1` not supported in conjunction with "
                             f"`dilation_rate > 1`. Received: strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        self.padding = standardize_padding(padding)
        self.data_format = standardize_data_format(data_format)
        self._activation = keras_activation(activation, "activation", allow_numpy=True)
        self._pre_activation = keras_activation(pre_activation, "pre_activation",
                                                allow_numpy=False)
        if not isinstance(use_bias, (bool, np.bool_)):
            raise TypeError(f"`use_bias` must be a bool. Received: use_bias={use_bias!r}")
        self.use_bias = bool(use_bias)
        if method not in self._methods:
            raise ValueError("`method` must be one of "
                             + ", ".join(repr(m) for m in self._methods)
                             + f". Received: method={method!r}")
        if method == "winograd" and (self.kernel_size != (3, 3) or self.strides != (1, 1)
                                     or self.dilation_rate != (1, 1)):
            raise ValueError("method='winograd' needs a 3x3 kernel, strides 1 and dilation "
                             f"1. Received: kernel_size={self.kernel_size}, "
                             f"strides={self.strides}, dilation_rate={self.dilation_rate}")
        self.method = method
        self._cache = None
        #: (kernel, WinogradWeight): fast math's pack for method="auto"
        self._wino_cache = None
        #: fast math's choice by (input shape, pads): winograd_pays(packed=True)
        self._wino_rule = {}
        #: the conv2d method of the last call: "winograd" where fast math chose
        #: it for method="auto" (or the layer's method is "winograd"), else the
        #: layer's method ("auto": the direct kernels)
        self.last_method = None

    @property
    def activation(self):
        return self._activation.config

    @property
    def pre_activation(self):
        return self._pre_activation.config

    @property
    def weight_names(self):
        if not self.built:
            return []
        return ["kernel", "bias"] if self.use_bias else ["kernel"]

    @property
    def _channel_axis(self):
        return -1 if self.data_format == "channels_last" else 1

    def _weights_changed(self):
        if self._cache is not None:
            self._spent_pack = self._cache[0]
        self._cache = None
        self._wino_cache = None

    def _auto_winograd(self, x_shape, pads):
        """Whether this call takes the Winograd path under fast math: method
        "auto", fast math on, and winograd_pays for the input shape with the
        kernel transformed once (the layer keeps the transform)."""
        if self.method != "auto" or not get_fast_math():
            return False
        key = (x_shape, pads)
        choice = self._wino_rule.get(key)
        if choice is None:
            hwio, groups = self._hwio_groups()
            last = self.data_format == "channels_last"
            if len(self._wino_rule) >= 64:   # input sizes of a long-running server
                self._wino_rule = {}
            choice = self._wino_rule[key] = winograd_pays(
                x_shape, hwio.shape if last else hwio.transpose(3, 2, 0, 1).shape,
                self.strides, pads, self.dilation_rate, groups, packed=True, dtype=self.dtype,
                data_format="NHWC" if last else "NCHW")
        return choice

    def _winograd_pack(self):
        """The kernel transformed for the Winograd path, made once per kernel
        (fast math's "auto"; a kernel replaced by set_weights or
        fold_batchnorm's copy is packed again)."""
        if self._wino_cache is None or self._wino_cache[0] is not self.kernel:
            hwio, groups = self._hwio_groups()
            if self.data_format == "channels_last":
                w = pack_weight(hwio, groups, data_format="NHWC", method="winograd")
            else:
                w = pack_weight(hwio.transpose(3, 2, 0, 1), groups, method="winograd")
            self._wino_cache = (self.kernel, w)
        return self._wino_cache[1], self._hwio_groups()[1]

    # The kernel packed once for the direct kernels (as a framework prepares a
    # layer), and the groups it runs with.  set_weights() drops the pack; a
    # kernel changed in place is not seen until then, as in Keras.
    def _conv_weight(self):
        if self._cache is None:
            hwio, groups = self._hwio_groups()
            # new values of the same shape (an optimizer step) go into the
            # previous pack's buffers: no fresh pages touched per step (the
            # Winograd transform has no in-place repack: a fresh one)
            spent = getattr(self, "_spent_pack", None)
            self._spent_pack = None
            oihw = hwio.transpose(3, 2, 0, 1)
            if self.method == "winograd":
                w = pack_weight(oihw, groups, method="winograd")
            elif hwio.flags.c_contiguous:
                # the pack reads the kernel itself (no copy): this layer packs
                # again whenever its kernel changes (_weights_changed)
                w = _shared_pack(oihw, groups, out=spent)
            else:
                w = pack_weight(oihw, groups)
            self._cache = (w, groups)
        return self._cache

    def _build_for_channels(self, cin):
        """Build for inputs of `cin` channels, in the layer's data format."""
        self.build((None, None, None, cin) if self.data_format == "channels_last"
                   else (None, cin, None, None))

    def _spatial(self, shape):
        return (shape[1], shape[2]) if self.data_format == "channels_last" else (shape[2], shape[3])

    def _geometry(self, shape):
        """-> ((oh, ow), ((top, bottom), (left, right)))."""
        pad = self.padding
        sizes, pads = [], []
        for ax, (size, k, s, d) in enumerate(zip(self._spatial(shape), self.kernel_size,
                                                 self.strides, self.dilation_rate)):
            explicit = pad if isinstance(pad, str) else pad[2 * ax:2 * ax + 2]
            if size is None:
                sizes.append(None)
                pads.append((0, 0))
                continue
            o, lo, hi = out_size_and_pads(size, k, s, d, explicit)
            if o <= 0:
                raise ValueError("Computed output size would be zero or negative. Received "
                                 f"`inputs shape={shape_str(shape)}`, "
                                 f"`kernel shape={self.kernel_size}`, "
                                 f"`dilation_rate={self.dilation_rate}`, "
                                 f"`strides={self.strides}`, `padding={self.padding}`.")
            sizes.append(o)
            pads.append((lo, hi))
        return tuple(sizes), tuple(pads)

    def compute_output_shape(self, input_shape):
        (oh, ow), _ = self._geometry(input_shape)
        c = self._out_channels()
        if self.data_format == "channels_last":
            return (input_shape[0], oh, ow, c)
        return (input_shape[0], c, oh, ow)

    def _check_input(self, shape):
        check_ndim(self, shape, 4)
        if self.built:
            check_axis(self, shape, self._channel_axis, self._in_channels())

    def call(self, x, training=False):
        _, pads = self._geometry(x.shape)
        if self._auto_winograd(x.shape, pads):
            (w, groups), method = self._winograd_pack(), "winograd"
        elif training and self.method != "winograd":
            # the kernel as it is: it changes at every step, and the kernels
            # pack it inside the call, where the biggest ones are packed block
            # by block in the work items that read them (no pack through
            # memory: benchmarks/NOTES.md, training step, session 11)
            hwio, groups = self._hwio_groups()
            w, method = hwio if self.data_format == "channels_last" else \
                hwio.transpose(3, 2, 0, 1), self.method
        else:
            (w, groups), method = self._conv_weight(), self.method
        self.last_method = method
        fused = self._activation.fused
        # In training, an activation whose derivative needs z (gelu, silu, ...)
        # runs after the convolution so that z is kept for the backward
        # (conv2d_backward's linear_output); the relu family stays fused, its
        # derivative comes from y.
        keep_z = training and fused is not None and not has_output_form(fused)
        y = conv2d(x, w, self.bias if self.use_bias else None, stride=self.strides,
                   padding=pads, dilation=self.dilation_rate, groups=groups,
                   activation=None if keep_z else fused,
                   pre_activation=self._pre_activation.fused, method=method,
                   data_format="NHWC" if self.data_format == "channels_last" else "NCHW")
        z = None
        if keep_z:
            z, y = y, activate(y, fused)
        py_saved = None
        if self._activation.python is not None:
            y_fused = y
            y, py_saved = forward_activation(LayerActivation(None, self._activation.python,
                                                             self._activation.config),
                                             y, training)
        else:
            y_fused = y
        if training:
            # the backward needs the input and the fused output (the
            # derivative of the relu family comes from it; conv2d_backward
            # recomputes the pre-activation of the others)
            self._saved = (x, None if z is not None else y_fused, z, pads, py_saved, w)
        return y

    def _activation_state(self):
        # only the NumPy part (softmax) can be skipped: the fused one is
        # inside conv2d_backward
        return self._saved[4] if self._saved and self._activation.fused is None else None

    def _training_problem(self):
        import fastconv
        if getattr(fastconv, "conv2d_backward", None) is None:
            return (f'{type(self).__name__} "{self.name}" needs fastconv.conv2d_backward (the '
                    "convolution gradients of issue 14), which this build does not have")
        return super()._training_problem()

    def _backward(self, g, saved, need_input):
        x, y_fused, z, pads, py_saved, w_used = saved
        g = g.astype(self.dtype, copy=False)
        if py_saved is not None:
            g = backward_activation(LayerActivation(None, self._activation.python,
                                                    self._activation.config),
                                    g, py_saved, f'Layer "{self.name}"')
        import fastconv
        conv2d_backward = getattr(fastconv, "conv2d_backward", None)
        if conv2d_backward is None:
            raise NotImplementedError(
                f'{type(self).__name__} "{self.name}": training needs '
                "fastconv.conv2d_backward (the convolution gradients of issue 14), which this "
                "build of fastconv does not have")
        hwio, groups = self._hwio_groups()
        last = self.data_format == "channels_last"
        # the weight the forward read (the kernel, or its pack; a Winograd
        # pack is not one the gradients read)
        weight = (hwio if last else hwio.transpose(3, 2, 0, 1)) \
            if isinstance(w_used, WinogradWeight) else w_used
        needs = ("input", "weight", "bias") if need_input else ("weight", "bias")
        if not self.use_bias:
            needs = tuple(n for n in needs if n != "bias")
        # the kernel's gradient goes straight into one HWIO buffer kept across
        # steps (channels_first: through its OIHW view, which the C kernel
        # writes in HWIO order): no fresh pages and no transposing copy per
        # step (benchmarks/NOTES.md, training step)
        gbuf = getattr(self, "_kernel_grad_buf", None)
        if gbuf is None or gbuf.shape != hwio.shape or gbuf.dtype != hwio.dtype:
            gbuf = self._kernel_grad_buf = np.empty(hwio.shape, hwio.dtype)
        gi, gw, gb = conv2d_backward(
            np.ascontiguousarray(g), x, weight, self.bias if self.use_bias else None,
            stride=self.strides, padding=pads, dilation=self.dilation_rate, groups=groups,
            activation=self._activation.fused, pre_activation=self._pre_activation.fused,
            output=None if z is not None else y_fused, linear_output=z, needs=needs,
            data_format="NHWC" if last else "NCHW",
            grad_weight=gbuf if last else gbuf.transpose(3, 2, 0, 1))
        self._grads = {"kernel": gbuf.reshape(self.kernel.shape)}
        if self.use_bias:
            self._grads["bias"] = gb
        return gi if need_input else None

    def flops(self, input_shape):
        out = self.compute_output_shape(input_shape)
        kh, kw = self.kernel_size
        macs = int(np.prod([d for d in out[1:]])) * kh * kw * self._in_per_group()
        return 2 * macs + (int(np.prod(out[1:])) if self.use_bias else 0)

    def _set_initial_weights(self, kernel, bias):
        """Weights passed to the constructor build the layer at once."""
        if kernel is None:
            if bias is not None:
                raise ValueError("`bias` was given without `kernel`")
            return
        weights = [kernel] + ([bias] if self.use_bias else [])
        if not self.use_bias and bias is not None:
            raise ValueError("`bias` was given but use_bias=False")
        if self.use_bias and bias is None:
            weights[1] = np.zeros(self._out_channels_from_kernel(np.asarray(kernel)), self.dtype)
        self.set_weights(weights)

    def _create_weights(self, kernel_shape, n_out):
        self.kernel = initialize(self.kernel_initializer, kernel_shape, self.dtype,
                                 "kernel_initializer")
        self.bias = (initialize(self.bias_initializer, (n_out,), self.dtype, "bias_initializer")
                     if self.use_bias else None)
        self._cache = None
        self._wino_cache = None
        self._wino_rule = {}


class Conv2D(_ConvBase):
    """2-D convolution layer, Keras's ``keras.layers.Conv2D`` on NumPy arrays.

    The kernel is HWIO ``(kh, kw, in_channels // groups, filters)`` and
    ``get_weights()`` returns ``[kernel, bias]`` as Keras does, so weights copy
    both ways with ``set_weights(keras_layer.get_weights())``.

    padding: ``"valid"``, ``"same"`` (TensorFlow's rule for every stride: the
    odd padding row/column goes at the bottom/right), or explicit
    ``int`` / ``(ph, pw)`` / ``((top, bottom), (left, right))`` (a fastconv
    extension, torch-style).  activation: a Keras 3 name (``"gelu"`` is exact,
    ``"leaky_relu"`` has slope 0.2, as in Keras), a ``fastconv.Activation``
    (any parameters, torch defaults) or a callable applied afterwards.
    pre_activation: applied to the input before the convolution (fused; the
    padding zeros are not activated) — the ResNet v2 order.  ``kernel=`` and
    ``bias=`` build the layer at once, without an input.  Floating inputs are
    cast to ``dtype`` (integers too, unlike Keras, since the kernels are float).
    method: conv2d's; ``"winograd"`` (3x3 kernels, strides 1, dilation 1 only)
    packs the kernel once with ``pack_weight(..., method="winograd")``.
    ``"auto"`` (the default) under fast math (``fastconv.set_fast_math(True)``
    or ``with fastconv.fast_math():``) takes Winograd too, for the input sizes
    where ``fastconv.winograd_pays(..., packed=True)`` says so (the kernel is
    transformed once, at the first such call); ``last_method`` tells which
    path the last call took.  The backward reads the plain kernel either way.
    """

    _methods = _ConvBase._methods + ("winograd",)

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 data_format=None, dilation_rate=(1, 1), groups=1, activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 pre_activation=None, method="auto", dtype="float32", kernel=None, bias=None,
                 name=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self._init_common(kernel_size, strides, padding, data_format, dilation_rate,
                          activation, use_bias, pre_activation, method)
        self.filters = positive_int(filters, "filters")
        self.groups = positive_int(groups, "groups")
        if self.filters <= 0:
            raise ValueError("Invalid value for argument `filters`. Expected a strictly "
                             f"positive value. Received filters={self.filters}.")
        if self.groups <= 0:
            raise ValueError("The number of groups must be a positive integer. "
                             f"Received: groups={self.groups}.")
        if self.filters % self.groups != 0:
            raise ValueError("The number of filters must be evenly divisible by the "
                             f"number of groups. Received: groups={self.groups}, "
                             f"filters={self.filters}.")
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel = self.bias = None
        self._set_initial_weights(kernel, bias)

    def _in_channels(self):
        return self.kernel.shape[2] * self.groups

    def _in_per_group(self):
        return self.kernel.shape[2]

    def _out_channels(self):
        return self.filters

    def _out_channels_from_kernel(self, kernel):
        return kernel.shape[-1] if kernel.ndim == 4 else self.filters

    def _hwio_groups(self):
        return self.kernel, self.groups

    def build(self, input_shape):
        check_ndim(self, input_shape, 4)
        cin = input_shape[self._channel_axis]
        if cin is None:
            raise ValueError(f'Layer "{self.name}": the channel dimension of the input '
                             f"must be known. Received input_shape={shape_str(input_shape)}")
        if cin % self.groups != 0:
            raise ValueError("The number of input channels must be evenly divisible by "
                             f"the number of groups. Received groups={self.groups}, but the "
                             f"input has {cin} channels (full input shape is "
                             f"{shape_str(input_shape)}).")
        self._geometry(input_shape)
        kh, kw = self.kernel_size
        self._create_weights((kh, kw, cin // self.groups, self.filters), self.filters)
        super().build(input_shape)

    def _build_from_weights(self, weights):
        k = np.asarray(weights[0])
        kh, kw = self.kernel_size
        if k.ndim != 4 or k.shape[:2] != (kh, kw) or k.shape[3] != self.filters:
            raise ValueError(f'Layer "{self.name}": kernel must have shape '
                             f"({kh}, {kw}, in_channels // groups, {self.filters}) (HWIO). "
                             f"Received kernel of shape {k.shape}")
        self._build_for_channels(k.shape[2] * self.groups)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
                   padding=self.padding, data_format=self.data_format,
                   dilation_rate=self.dilation_rate, groups=self.groups,
                   activation=self.activation, use_bias=self.use_bias,
                   pre_activation=self.pre_activation, method=self.method)
        return cfg


class DepthwiseConv2D(_ConvBase):
    """Depthwise 2-D convolution, Keras's ``keras.layers.DepthwiseConv2D``.

    Kernel ``(kh, kw, in_channels, depth_multiplier)``; output channel
    ``c * depth_multiplier + m`` is input channel ``c`` convolved with
    ``kernel[:, :, c, m]``.  Same padding, activation and dtype rules as Conv2D.
    """

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 pre_activation=None, method="auto", dtype="float32", kernel=None, bias=None,
                 name=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self._init_common(kernel_size, strides, padding, data_format, dilation_rate,
                          activation, use_bias, pre_activation, method)
        self.depth_multiplier = positive_int(depth_multiplier, "depth_multiplier")
        if self.depth_multiplier <= 0:
            raise ValueError("Invalid value for argument `depth_multiplier`. Expected a "
                             "strictly positive value. Received "
                             f"depth_multiplier={self.depth_multiplier}.")
        self.kernel_initializer = depthwise_initializer
        self.bias_initializer = bias_initializer
        self.kernel = self.bias = None
        self._set_initial_weights(kernel, bias)

    def _in_channels(self):
        return self.kernel.shape[2]

    def _in_per_group(self):
        return 1

    def _out_channels(self):
        return self.kernel.shape[2] * self.depth_multiplier

    def _out_channels_from_kernel(self, kernel):
        return kernel.shape[2] * self.depth_multiplier if kernel.ndim == 4 else 0

    def _hwio_groups(self):
        kh, kw, cin, dm = self.kernel.shape
        return self.kernel.reshape(kh, kw, 1, cin * dm), cin

    def build(self, input_shape):
        check_ndim(self, input_shape, 4)
        cin = input_shape[self._channel_axis]
        if cin is None:
            raise ValueError(f'Layer "{self.name}": the channel dimension of the input '
                             f"must be known. Received input_shape={shape_str(input_shape)}")
        self._geometry(input_shape)
        kh, kw = self.kernel_size
        self._create_weights((kh, kw, cin, self.depth_multiplier), cin * self.depth_multiplier)
        super().build(input_shape)

    def _build_from_weights(self, weights):
        k = np.asarray(weights[0])
        kh, kw = self.kernel_size
        if k.ndim != 4 or k.shape[:2] != (kh, kw) or k.shape[3] != self.depth_multiplier:
            raise ValueError(f'Layer "{self.name}": kernel must have shape '
                             f"({kh}, {kw}, in_channels, {self.depth_multiplier}). "
                             f"Received kernel of shape {k.shape}")
        self._build_for_channels(k.shape[2])

    def get_config(self):
        cfg = super().get_config()
        cfg.update(kernel_size=self.kernel_size, strides=self.strides, padding=self.padding,
                   depth_multiplier=self.depth_multiplier, data_format=self.data_format,
                   dilation_rate=self.dilation_rate, activation=self.activation,
                   use_bias=self.use_bias, pre_activation=self.pre_activation,
                   method=self.method)
        return cfg


def _transpose_crops(size, k, s, d, padding, output_padding):
    """One axis of Keras's Conv2DTranspose: (crop_lo, crop_hi) of the full
    transposed convolution ((size - 1) * s + dk long); a negative crop means
    zeros appended.  Keras 3's rule (the JAX padding, as its torch backend
    applies it): 'valid' keeps the full output (plus max(dk, s) - dk zeros,
    or output_padding); 'same' gives size * s without output_padding."""
    dk = (k - 1) * d + 1
    if padding == "valid":
        op = max(dk, s) - dk if output_padding is None else output_padding
        lo, hi = dk - 1, dk - 1 + op
    else:
        pad_len = s + dk - 2 if output_padding is None else dk + dk % 2 - 2 + output_padding
        lo = min(pad_len // 2 + pad_len % 2, dk - 1)
        hi = pad_len - lo
    return dk - 1 - lo, dk - 1 - hi


class Conv2DTranspose(Layer):
    """Transposed 2-D convolution, Keras's ``keras.layers.Conv2DTranspose``
    (kernel ``(kh, kw, filters, in_channels)``, ``padding`` 'valid'/'same',
    ``output_padding``, ``dilation_rate``, output sizes exactly as Keras 3),
    on ``fastconv.conv_transpose2d``; trainable through
    ``conv_transpose2d_backward``.  The bias and activation are applied after
    the crop (as Keras does), so they are not fused into the kernel."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 output_padding=None, data_format=None, dilation_rate=(1, 1), activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 dtype="float32", name=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.filters = positive_int(filters, "filters")
        if self.filters <= 0:
            raise ValueError("Invalid value for argument `filters`. Expected a strictly "
                             f"positive value. Received filters={self.filters}.")
        self.kernel_size = standardize_tuple(kernel_size, 2, "kernel_size")
        self.strides = standardize_tuple(strides, 2, "strides")
        self.dilation_rate = standardize_tuple(dilation_rate, 2, "dilation_rate")
        self.padding = standardize_padding(padding, allow_explicit=False)
        self.output_padding = None if output_padding is None else \
            standardize_tuple(output_padding, 2, "output_padding", allow_zero=True)
        if self.output_padding is not None:
            for op, s, d in zip(self.output_padding, self.strides, self.dilation_rate):
                if op >= max(s, d):
                    raise ValueError(f"`output_padding` must be smaller than the stride or the "
                                     f"dilation. Received output_padding={self.output_padding}"
                                     f", strides={self.strides}, "
                                     f"dilation_rate={self.dilation_rate}")
        self.data_format = standardize_data_format(data_format)
        self._activation = keras_activation(activation, "activation", allow_numpy=True)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel = self.bias = None

    @property
    def activation(self):
        return self._activation.config

    @property
    def weight_names(self):
        if not self.built:
            return []
        return ["kernel", "bias"] if self.use_bias else ["kernel"]

    @property
    def _last(self):
        return self.data_format == "channels_last"

    def build(self, input_shape):
        check_ndim(self, input_shape, 4)
        cin = input_shape[-1 if self._last else 1]
        if cin is None:
            raise ValueError(f'Layer "{self.name}": the channel dimension of the input '
                             f"must be known. Received input_shape={shape_str(input_shape)}")
        kh, kw = self.kernel_size
        self.kernel = initialize(self.kernel_initializer, (kh, kw, self.filters, cin),
                                 self.dtype, "kernel_initializer")
        self.bias = initialize(self.bias_initializer, (self.filters,), self.dtype,
                               "bias_initializer") if self.use_bias else None
        super().build(input_shape)

    def _build_from_weights(self, weights):
        k = np.asarray(weights[0])
        if k.ndim != 4 or k.shape[:2] != self.kernel_size or k.shape[2] != self.filters:
            raise ValueError(f'Layer "{self.name}": kernel must have shape '
                             f"({self.kernel_size[0]}, {self.kernel_size[1]}, {self.filters}, "
                             f"in_channels). Received kernel of shape {k.shape}")
        self.build((None, None, None, k.shape[3]) if self._last else (None, k.shape[3], None, None))

    def _check_input(self, shape):
        check_ndim(self, shape, 4)
        if self.built:
            check_axis(self, shape, -1 if self._last else 1, self.kernel.shape[3])

    def _crops(self, shape):
        hw = shape[1:3] if self._last else shape[2:]
        out = []
        for ax, size in enumerate(hw):
            op = None if self.output_padding is None else self.output_padding[ax]
            out.append(None if size is None else _transpose_crops(
                size, self.kernel_size[ax], self.strides[ax], self.dilation_rate[ax],
                self.padding, op))
        return out

    def compute_output_shape(self, input_shape):
        hw = input_shape[1:3] if self._last else input_shape[2:]
        sizes = []
        for ax, (size, crop) in enumerate(zip(hw, self._crops(input_shape))):
            if size is None:
                sizes.append(None)
                continue
            dk = (self.kernel_size[ax] - 1) * self.dilation_rate[ax] + 1
            sizes.append((size - 1) * self.strides[ax] + dk - crop[0] - crop[1])
        n = input_shape[0]
        return (n, sizes[0], sizes[1], self.filters) if self._last else \
            (n, self.filters, sizes[0], sizes[1])

    def _window(self, full_shape, crops):
        """Slices of the full output kept, and of the result they fill."""
        src, dst = [slice(None)] * 4, [slice(None)] * 4
        axes = (1, 2) if self._last else (2, 3)
        for ax, (lo, hi) in zip(axes, crops):
            f = full_shape[ax]
            src[ax] = slice(max(lo, 0), f - max(hi, 0))
            dst[ax] = slice(max(-lo, 0), max(-lo, 0) + f - max(lo, 0) - max(hi, 0))
        return tuple(src), tuple(dst)

    def _weight(self):
        return self.kernel if self._last else self.kernel.transpose(3, 2, 0, 1)

    def call(self, x, training=False):
        from fastconv.grad import conv_transpose2d
        fmt = "NHWC" if self._last else "NCHW"
        full = conv_transpose2d(x, self._weight(), None, stride=self.strides, padding=0,
                                dilation=self.dilation_rate, data_format=fmt)
        crops = self._crops(x.shape)
        src, dst = self._window(full.shape, crops)
        if all(lo == 0 and hi == 0 for lo, hi in crops):
            z = full
        else:
            z = np.zeros(self.compute_output_shape(x.shape), self.dtype)
            z[dst] = full[src]
        if self.use_bias:
            z += self.bias if self._last else self.bias.reshape(-1, 1, 1)
        y, act_saved = forward_activation(self._activation, z, training)
        if training:
            self._saved = (x, full.shape, src, dst, act_saved)
        return y

    def _activation_state(self):
        return self._saved[4] if self._saved else None

    def _backward(self, g, saved, need_input):
        from fastconv.grad import conv_transpose2d_backward
        x, full_shape, src, dst, act_saved = saved
        gz = backward_activation(self._activation, g.astype(self.dtype, copy=False), act_saved,
                                 f'Layer "{self.name}"')
        self._grads = {}
        if self.use_bias:
            self._grads["bias"] = gz.sum(axis=(0, 1, 2) if self._last else (0, 2, 3))
        g_full = np.zeros(full_shape, self.dtype)
        g_full[src] = gz[dst]
        gi, gw, _ = conv_transpose2d_backward(
            g_full, x, self._weight(), None, stride=self.strides, padding=0,
            dilation=self.dilation_rate, needs=("input", "weight") if need_input else ("weight",),
            data_format="NHWC" if self._last else "NCHW")
        self._grads["kernel"] = np.ascontiguousarray(gw if self._last else gw.transpose(2, 3, 1, 0))
        return gi if need_input else None

    def flops(self, input_shape):
        kh, kw = self.kernel_size
        cin = input_shape[-1 if self._last else 1]
        return 2 * int(np.prod(input_shape[1:])) // cin * cin * kh * kw * self.filters

    def get_config(self):
        cfg = super().get_config()
        cfg.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
                   padding=self.padding, output_padding=self.output_padding,
                   data_format=self.data_format, dilation_rate=self.dilation_rate,
                   activation=self.activation, use_bias=self.use_bias)
        return cfg
