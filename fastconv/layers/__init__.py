"""Keras-style layers and models on NumPy arrays, run by fastconv's C kernels.

``Conv2D``/``DepthwiseConv2D`` follow Keras 3 (HWIO kernels,
``get_weights()``/``set_weights()`` in Keras's order, TensorFlow "same"
padding for every stride, ``channels_last`` by default); activation strings
mean what they mean in Keras 3 (``"leaky_relu"`` slope 0.2, ``"gelu"`` exact,
``"hard_sigmoid"`` = relu6(x + 3) / 6); a ``fastconv.Activation`` is taken as
given.  ``from_torch`` converts torch modules (NCHW).  Every layer has a backward
pass (``layer(x, training=True)`` then ``layer.backward(grad)``), and
``Sequential``/``Model`` train Keras-style (``compile``/``fit``).
"""
from ._base import (KERAS_ACTIVATIONS, Input, Layer, SymbolicTensor, keras_activation,
                    set_random_seed)
from ._conv import Conv2D, Conv2DTranspose, DepthwiseConv2D
from ._core_layers import (Activation, Add, BatchNormalization, Dense, Dropout, Flatten,
                           Identity, ZeroPadding2D)
from ._model import Model, Sequential, fold_batchnorm
from ._pooling import AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D
from ._torch import from_torch

__all__ = [
    "Layer", "Input", "SymbolicTensor", "Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "Dense",
    "BatchNormalization", "Add", "Flatten", "ZeroPadding2D", "Activation", "Identity",
    "Dropout", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
    "GlobalMaxPooling2D", "Sequential", "Model", "fold_batchnorm", "from_torch",
    "set_random_seed", "keras_activation", "KERAS_ACTIVATIONS",
]
