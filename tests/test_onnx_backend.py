"""onnx's own backend test suite (onnx.backend.test) on fastconv.onnx.Backend.

The node tests of the operators CNNs use, the pytorch-converted / -operator
tests of the same layers, and the nine "light" real models (their weights
are ConstantOfShape constants; inputs and expected outputs ship inside the
onnx package, so nothing is downloaded).  Every exclusion says why.
"""
import re

import pytest

pytest.importorskip("onnx", reason="fastconv.onnx needs the onnx package")

import onnx.backend.test  # noqa: E402

import fastconv.onnx  # noqa: E402

backend_test = onnx.backend.test.BackendTest(fastconv.onnx.Backend, __name__)

# ---- what runs -------------------------------------------------------------
_NODE_FAMILIES = [
    # convolution and pooling
    "basic_conv", "conv", "convtranspose", "maxpool", "averagepool", "globalaveragepool", "globalmaxpool",
    "batchnorm", "lrn",
    # activations
    "relu", "leakyrelu", "prelu", "elu", "selu", "sigmoid", "hardsigmoid", "hardswish",
    "tanh", "softplus", "softsign", "mish", "gelu", "clip",
    # dense and arithmetic
    "gemm", "matmul", "add", "sum", "sub", "mul", "div",
    # shapes and data movement
    "concat", "reshape", "flatten", "transpose", "squeeze", "unsqueeze", "slice", "split",
    "gather", "shape", "cast", "identity", "dropout", "constant", "constantofshape",
    "constant_pad", "edge_pad", "reflect_pad", "wrap_pad", "resize", "upsample",
    # reductions and softmax
    "reduce_mean", "softmax", "logsoftmax",
]
for family in _NODE_FAMILIES:
    backend_test.include(rf"^test_{family}(_.*)?_cpu$")
# the pytorch-converted / -operator tests of the same layers
for name in ["Conv1d", "Conv2d", "ConvTranspose2d", "AvgPool1d", "AvgPool2d", "MaxPool1d", "MaxPool2d",
             "BatchNorm1d_3d_input_eval", "BatchNorm2d", "ELU", "LeakyReLU", "PReLU",
             "ReLU", "SELU", "Sigmoid", "Softmax", "LogSoftmax", "Softplus", "Tanh", "Linear",
             "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "ZeroPad2d", "PixelShuffle",
             "operator_add", "operator_flatten", "operator_view", "operator_reshape",
             "operator_concat2", "operator_maxpool", "operator_pad", "operator_params",
             "operator_chunk", "operator_basic", "operator_mm", "operator_permute2",
             "operator_transpose", "operator_selu", "operator_clip", "operator_exp",
             "operator_non_float_params", "operator_symbolic_override",
             "operator_symbolic_override_nested"]:
    backend_test.include(rf"^test_{name}(_.*)?_cpu$")
# the nine light real models
for model in ["resnet50", "vgg19", "inception_v1", "inception_v2", "densenet121", "shufflenet",
              "squeezenet", "bvlc_alexnet", "zfnet512"]:
    backend_test.include(rf"^test_{model}_cpu$")

# ---- what does not, and why ------------------------------------------------
EXCLUDED = {
    # not CNN inference, or not what fastconv computes
    r"^test_(maxpool|averagepool|convtranspose)_3d|^test_(Conv3d|AvgPool3d|MaxPool3d)":
        "3-D convolution / pooling (fastconv is 2-D; 1-D runs as H = 1)",
    r"^test_maxpool_with_argmax": "MaxPool's Indices output (NotImplementedError)",
    r"^test_maxpool_2d_uint8": "pooling on uint8 (the pooling kernels are float32 / float64)",
    r"^test_batchnorm_.*training_mode": "BatchNormalization training_mode=1 (inference only)",
    r"^test_cast_.*(FLOAT16|BFLOAT16|FLOAT8|FLOAT4|INT4|UINT4|INT2|UINT2|e8m0)|"
    r"^test_cast_.*STRING":
        "Cast to/from float16, bfloat16, float8/4, int4/2, strings (not fastconv dtypes)",
    r"^test_resize_.*cubic": "Resize mode='cubic' (nearest and linear are supported)",
    r"^test_resize_.*antialias": "Resize antialias=1",
    r"^test_resize_tf_crop_and_resize": "Resize tf_crop_and_resize",
    r"^test_split_to_sequence": "sequence outputs (SplitToSequence)",
    r"^test_identity_sequence|^test_identity_opt": "sequence / optional types",
}
for pattern, reason in EXCLUDED.items():
    backend_test.exclude(pattern)


@pytest.fixture(autouse=True)
def _onnx_home(tmp_path_factory, monkeypatch):
    # the runner writes the light models' test data under $ONNX_HOME
    monkeypatch.setenv("ONNX_HOME", str(tmp_path_factory.getbasetemp() / "onnx_home"))


globals().update(backend_test.test_cases)


def _excluded_node_cases():
    from onnx.backend.test.loader import load_model_tests
    for case in load_model_tests(kind="node"):
        name = case.name + "_cpu"
        if not any(p.search(name) for p in backend_test._include_patterns):
            continue
        reasons = [r for p, r in EXCLUDED.items() if re.search(p, name)]
        if reasons:
            yield pytest.param(case, id=case.name)


@pytest.mark.parametrize("case", list(_excluded_node_cases()))
def test_excluded_node_tests_are_refused_at_creation(case):
    """An excluded test is one fastconv.onnx refuses, before running, with a
    NotImplementedError that names the operator and opset: never a wrong answer."""
    with pytest.raises(NotImplementedError, match=r"opset \d+|element type|graph input"):
        fastconv.onnx.Backend.prepare(case.model)
