"""The session's own graph: ONNX nodes as small Python objects the optimiser
can rewrite (the ModelProto is read once and not kept)."""
import numpy as np


class Node:
    """One operator: ``inputs``/``outputs`` are value names ('' = absent
    optional input); ``attrs`` the decoded attributes; ``fused`` what the
    optimiser merged into it (activations, folded batch norm)."""

    __slots__ = ("op_type", "name", "inputs", "outputs", "attrs", "opset", "fused")

    def __init__(self, op_type, name, inputs, outputs, attrs, opset):
        self.op_type = op_type
        self.name = name
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.attrs = dict(attrs)
        self.opset = opset
        self.fused = {}

    def attr(self, key, default=None):
        return self.attrs.get(key, default)

    def where(self):
        """How error messages name this node."""
        return f"{self.op_type} node {self.name!r} (opset {self.opset})"

    def __repr__(self):
        return f"Node({self.op_type}, {self.name!r}, {self.inputs} -> {self.outputs})"


class Unsupported(NotImplementedError):
    pass


def unsupported(node, what):
    """NotImplementedError naming the operator type, node name and opset."""
    return Unsupported(f"fastconv.onnx: {node.where()}: {what} is not supported")


def malformed(node, what):
    return ValueError(f"fastconv.onnx: malformed model: {node.where()}: {what}")


def decode_attribute(attr):
    """An AttributeProto -> a Python value (tensors as NumPy arrays)."""
    from onnx import AttributeProto, helper, numpy_helper
    if attr.type == AttributeProto.TENSOR:
        return numpy_helper.to_array(attr.t)
    if attr.type == AttributeProto.TENSORS:
        return [numpy_helper.to_array(t) for t in attr.tensors]
    if attr.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS, AttributeProto.SPARSE_TENSOR,
                     AttributeProto.SPARSE_TENSORS, AttributeProto.TYPE_PROTO,
                     AttributeProto.TYPE_PROTOS):
        return _Opaque(attr.type)
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8") for v in value]
    return value


class _Opaque:
    """An attribute kind no supported operator takes (subgraphs, sparse tensors)."""

    def __init__(self, kind):
        self.kind = kind


def consumers(nodes):
    """value name -> list of nodes reading it."""
    out = {}
    for n in nodes:
        for v in n.inputs:
            if v:
                out.setdefault(v, []).append(n)
    return out


def producers(nodes):
    return {v: n for n in nodes for v in n.outputs if v}


def is_float(a):
    return isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64)
