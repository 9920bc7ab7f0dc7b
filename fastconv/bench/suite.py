"""The layer suite: the layers, their FLOP count, the paths, peers and activations
benchmarked, the thread counts, and the deterministic inputs of a layer."""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class Layer:
    """One convolution layer of the suite (NCHW input, OIHW weight, torch semantics)."""

    id: str
    n: int
    cin: int
    cout: int
    h: int
    w: int
    k: int
    stride: int = 1
    pad: int = 0
    groups: int = 1
    dilation: int = 1

    @property
    def x_shape(self) -> Tuple[int, int, int, int]:
        return (self.n, self.cin, self.h, self.w)

    @property
    def w_shape(self) -> Tuple[int, int, int, int]:
        return (self.cout, self.cin // self.groups, self.k, self.k)

    @property
    def out_hw(self) -> Tuple[int, int]:
        span = self.dilation * (self.k - 1) + 1
        ho = (self.h + 2 * self.pad - span) // self.stride + 1
        wo = (self.w + 2 * self.pad - span) // self.stride + 1
        return ho, wo

    @property
    def out_shape(self) -> Tuple[int, int, int, int]:
        return (self.n, self.cout) + self.out_hw

    @property
    def flops(self) -> int:
        return conv_flops(self.n, self.cin, self.cout, self.out_hw[0], self.out_hw[1],
                          self.k, self.k, self.groups)

    @property
    def conv_kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.pad, dilation=self.dilation,
                    groups=self.groups)

    def describe(self) -> str:
        g = f" g{self.groups}" if self.groups > 1 else ""
        return (f"N{self.n} {self.cin}->{self.cout} {self.h}x{self.w} "
                f"k{self.k} s{self.stride} p{self.pad}{g}")


def conv_flops(n, cin, cout, hout, wout, kh, kw, groups=1) -> int:
    """FLOPs of a convolution: 2 * N * Cout * Hout * Wout * Cin/groups * KH * KW."""
    return 2 * n * cout * hout * wout * (cin // groups) * kh * kw


LAYERS: Tuple[Layer, ...] = (
    # The example of the founding notes: a 30x30x3 input with 3x3x3 filters.
    Layer("seed", 1, 3, 3, 30, 30, 3, 1, 0),
    Layer("resnet_conv1", 1, 3, 64, 224, 224, 7, 2, 3),
    Layer("resnet_3x3_64", 1, 64, 64, 56, 56, 3, 1, 1),
    Layer("resnet_3x3_128", 1, 128, 128, 28, 28, 3, 1, 1),
    Layer("resnet_3x3_256", 1, 256, 256, 14, 14, 3, 1, 1),
    Layer("resnet_3x3_512", 1, 512, 512, 7, 7, 3, 1, 1),
    Layer("resnet_1x1_down", 1, 256, 512, 14, 14, 1, 2, 0),
    Layer("vgg_3x3_64_224", 1, 64, 64, 224, 224, 3, 1, 1),
    Layer("mobilenet_dw", 1, 32, 32, 112, 112, 3, 1, 1, groups=32),
    Layer("mobilenet_pw", 1, 32, 64, 112, 112, 1, 1, 0),
    Layer("batch8_3x3_128", 8, 128, 128, 28, 28, 3, 1, 1),
)
LAYER_BY_ID: Dict[str, Layer] = {l.id: l for l in LAYERS}
QUICK_LAYERS: Tuple[str, ...] = ("seed", "resnet_3x3_64", "resnet_3x3_256",
                                 "mobilenet_dw", "resnet_1x1_down")

# "raw" is the fused method called with the plain weight array, as a user
# writes it (the weights packed inside every call); "fused" gets them packed
# once with fastconv.pack_weight, outside the timed call (as a layer does);
# "winograd" gets them transformed once (pack_weight(..., method="winograd")),
# on the layers it can do (3x3, stride 1, dilation 1; "n.a." on the others).
METHODS: Tuple[str, ...] = ("fused", "raw", "separate", "im2col", "winograd")
#: the conv2d method each fastconv path calls
CALL_METHOD = {"raw": "fused"}
PEERS: Tuple[str, ...] = ("torch", "onnxruntime")
IMPLS: Tuple[str, ...] = METHODS + PEERS
# relu, plus one transcendental activation (silu = x * sigmoid(x), unambiguous
# across libraries, unlike gelu's erf / tanh variants).
ACTIVATIONS: Tuple[str, ...] = ("relu", "silu")
SUPPORTED_ACTIVATIONS: Tuple[str, ...] = ("relu", "silu", "gelu")

PEER_SHORT = {"torch": "torch", "onnxruntime": "ORT"}

IMPL_LABELS = {
    "fused": "fastconv fused",
    "raw": "fastconv raw",
    "separate": "fastconv separate",
    "im2col": "fastconv im2col",
    "winograd": "fastconv winograd",
    "torch": "torch eager",
    "onnxruntime": "ONNX Runtime",
}


def all_threads() -> int:
    return os.cpu_count() or 1


def thread_counts(spec: Iterable) -> List[int]:
    """``["1", "all"]`` -> ``[1, os.cpu_count()]`` (deduplicated, order kept)."""
    out: List[int] = []
    for s in spec:
        s = str(s).strip().lower()
        if not s:
            continue
        n = all_threads() if s in ("all", "max", "0") else int(s)
        if n < 1:
            raise ValueError(f"bad thread count {s!r}")
        if n not in out:
            out.append(n)
    return out


def select_layers(ids: Optional[Iterable[str]]) -> List[Layer]:
    if ids is None:
        return list(LAYERS)
    out = []
    for i in ids:
        i = i.strip()
        if not i:
            continue
        if i not in LAYER_BY_ID:
            raise ValueError(f"unknown layer {i!r}; known: {', '.join(LAYER_BY_ID)}")
        out.append(LAYER_BY_ID[i])
    return out


def make_inputs(layer: Layer, seed: int = 0):
    """Deterministic float32 input, weight (fan-in scaled) and bias for a layer."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(layer.x_shape, dtype=np.float32)
    fan_in = (layer.cin // layer.groups) * layer.k * layer.k
    w = (rng.standard_normal(layer.w_shape, dtype=np.float32) / np.float32(math.sqrt(fan_in)))
    b = 0.1 * rng.standard_normal(layer.cout, dtype=np.float32)
    return x, w, b.astype(np.float32)


@dataclasses.dataclass
class Case:
    layer: Layer
    impl: str  # a fastconv method or a peer name
    activation: str
    threads: int

    @property
    def is_peer(self) -> bool:
        return self.impl in PEERS

    @property
    def key(self) -> str:
        return f"{self.layer.id}/{self.impl}/{self.activation}/t{self.threads}"
