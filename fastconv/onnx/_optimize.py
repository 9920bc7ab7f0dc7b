"""Graph rewrites done once at session creation, before compiling.

In order: constant folding (initializers, Constant nodes, and every node
whose inputs are all known, including the Shape / Gather / Concat / Reshape
chains exporters emit, Shape itself when its input's shape is static);
Identity / inference Dropout removal; BatchNormalization, and Mul / Add by
per-channel constants, folded into the Conv before it; the activation (or Clip as relu6 / relu) after a Conv fused
into it; an activation before Conv(s) fused as their pre-activation when
nothing else reads the activated tensor; the activation after Add / Sum
(the residual join) applied in place by the Add; channel Concats of Convs
marked for writing in place (plan_concat_in_place).

A rewrite needs the intermediate tensor to have no other consumer and not
to be a graph output; it keeps the graph's input and output names.
"""
import numpy as np

from ._graph import consumers, producers
from ._ops import (OPS, activation_of, batchnorm_scale_shift, check_batchnorm)

ACTIVATION_OPS = ("Relu", "LeakyRelu", "Elu", "Selu", "Sigmoid", "HardSigmoid", "HardSwish",
                  "Tanh", "Softplus", "Softsign", "Mish", "Gelu", "Clip")


def fold_constants(nodes, constants, ctx, compile_node):
    """Evaluate every node computable at creation; -> the remaining nodes."""
    out = []
    for n in nodes:
        ins = [v for v in n.inputs if v]
        foldable = all(v in constants for v in ins)
        if n.op_type in ("Shape", "Size") and not foldable:
            shape = ctx.shape(n.inputs[0])
            if shape is not None and None not in shape:
                # the value does not matter, only its static shape
                kernel = compile_node(n)
                constants[n.outputs[0]] = kernel(np.broadcast_to(np.zeros((), np.int8), shape))
                continue
        if not foldable or n.op_type not in OPS:
            out.append(n)
            continue
        kernel = compile_node(n)
        res = kernel(*[constants[v] if v else None for v in n.inputs])
        res = res if isinstance(res, tuple) else (res,)
        for name, value in zip(n.outputs, res):
            if name:
                value = np.asarray(value)   # (not ascontiguousarray: it makes 0-d 1-d)
                constants[name] = value if value.flags.c_contiguous else value.copy()
    return out


def _rename(nodes, old, new):
    for n in nodes:
        n.inputs = [new if v == old else v for v in n.inputs]


def remove_identities(nodes, ctx, graph_outputs):
    """Identity and inference Dropout (mask unused) pass their input on."""
    out = []
    for n in nodes:
        passthrough = n.op_type == "Identity" or (
            n.op_type == "Dropout" and not (len(n.outputs) > 1 and n.outputs[1]))
        if passthrough and n.outputs[0] not in graph_outputs:
            OPS[n.op_type](n, ctx)   # refuses a training-mode Dropout
            _rename(nodes, n.outputs[0], n.inputs[0])
            continue
        out.append(n)
    return out


def _sole_consumer(value, cons, graph_outputs):
    """The one node reading `value`, or None (also when it is a graph output)."""
    users = cons.get(value, [])
    if value in graph_outputs or len(users) != 1:
        return None
    return users[0]


def _conv_weights_const(conv, constants):
    return conv.inputs[1] in constants and (
        len(conv.inputs) < 3 or not conv.inputs[2] or conv.inputs[2] in constants)


def fold_batchnorm(nodes, constants, ctx, graph_outputs):
    """Conv -> BatchNormalization becomes one Conv (scale and shift folded
    into the weights and bias when the Conv is compiled, in float64)."""
    cons = consumers(nodes)
    removed = set()
    for conv in nodes:
        if conv.op_type != "Conv" or id(conv) in removed or conv.fused:
            continue
        bn = _sole_consumer(conv.outputs[0], cons, graph_outputs)
        if bn is None or bn.op_type != "BatchNormalization" or bn.inputs[0] != conv.outputs[0]:
            continue
        if not _conv_weights_const(conv, constants):
            continue
        check_batchnorm(bn)
        ss = batchnorm_scale_shift(bn, ctx)
        if ss is None or ss[0].shape[0] != constants[conv.inputs[1]].shape[0]:
            continue
        conv.fused["scale"], conv.fused["shift"] = ss
        conv.outputs = [bn.outputs[0]]
        removed.add(id(bn))
    return [n for n in nodes if id(n) not in removed]


def _per_channel(c, channels, rank):
    """c as a (channels,) float64 vector when multiplying / adding it to a
    (N, channels, ...) tensor of `rank` dims broadcasts per channel only."""
    if c.dtype.kind != "f" or c.ndim > rank:
        return None
    shape = (1,) * (rank - c.ndim) + c.shape
    if any(d != 1 for k, d in enumerate(shape) if k != 1) or shape[1] not in (1, channels):
        return None
    return np.broadcast_to(c.astype(np.float64).reshape(-1), (channels,))


def _affine_base(node, constants, ctx):
    """(channels, rank, dtype, scale, shift) of a Conv or BatchNormalization
    whose per-channel affine output can absorb a Mul / Add, else None."""
    if "activation" in node.fused:
        return None
    if node.op_type == "Conv" and _conv_weights_const(node, constants):
        w = constants[node.inputs[1]]
        return (w.shape[0], w.ndim, w.dtype, node.fused.get("scale", np.ones(w.shape[0])),
                node.fused.get("shift", np.zeros(w.shape[0])))
    if node.op_type == "BatchNormalization":
        shape, dtype = ctx.shape(node.inputs[0]), ctx.dtype(node.inputs[0])
        ss = node.fused.get("scale"), node.fused.get("shift")
        if ss[0] is None:
            check_batchnorm(node)
            ss = batchnorm_scale_shift(node, ctx)
        if ss is None or shape is None or dtype is None:
            return None
        return (ss[0].shape[0], len(shape), dtype) + tuple(ss)
    return None


def fold_affine(nodes, constants, ctx, graph_outputs):
    """Conv or BatchNormalization -> Mul / Add by a per-channel (or scalar)
    constant (the scale layers of Caffe-converted nets, after their batch
    norm) folded into the first one's scale and shift."""
    changed = True
    while changed:
        changed = False
        cons = consumers(nodes)
        for conv in nodes:
            base = _affine_base(conv, constants, ctx)
            if base is None:
                continue
            nxt = _sole_consumer(conv.outputs[0], cons, graph_outputs)
            if nxt is None or nxt.op_type not in ("Mul", "Add") or len(nxt.inputs) != 2:
                continue
            other = [v for v in nxt.inputs if v != conv.outputs[0]]
            if len(other) != 1 or other[0] not in constants:
                continue
            channels, rank, dtype, scale, shift = base
            c = _per_channel(constants[other[0]], channels, rank)
            if c is None or constants[other[0]].dtype != dtype:
                continue
            if nxt.op_type == "Mul":
                scale, shift = scale * c, shift * c
            else:
                shift = shift + c
            conv.fused["scale"], conv.fused["shift"] = scale, shift
            conv.outputs = [nxt.outputs[0]]
            nodes = [n for n in nodes if n is not nxt]
            changed = True
            break
    return nodes


def _float_value(ctx, name):
    dt = ctx.dtype(name)
    return dt is None or dt in (np.float32, np.float64)


def fuse_activations(nodes, constants, ctx, graph_outputs):
    """Conv -> activation (post), activation -> Conv (pre), Add/Sum -> activation."""
    removed = set()
    cons = consumers(nodes)
    # after: the activation reading a Conv's / Add's output
    for n in nodes:
        if id(n) in removed or "activation" in n.fused:
            continue
        if n.op_type not in ("Conv", "Add", "Sum", "BatchNormalization") or \
                not _float_value(ctx, n.outputs[0]):
            continue
        if n.op_type in ("Add", "Sum") and len(n.inputs) != 2:
            continue
        act_node = _sole_consumer(n.outputs[0], cons, graph_outputs)
        if act_node is None or act_node.op_type not in ACTIVATION_OPS or \
                act_node.inputs[0] != n.outputs[0]:
            continue
        act = activation_of(act_node, ctx)
        if act is None:
            continue
        n.fused["activation"] = act
        n.outputs = [act_node.outputs[0]]
        removed.add(id(act_node))
    nodes = [n for n in nodes if id(n) not in removed]
    # before: an activation whose every reader is a Conv's input (ResNet v2)
    cons = consumers(nodes)
    removed = set()
    for a in nodes:
        if a.op_type not in ACTIVATION_OPS or a.outputs[0] in graph_outputs:
            continue
        users = cons.get(a.outputs[0], [])
        if not users or any(u.op_type != "Conv" or u.inputs[0] != a.outputs[0] or
                            u.inputs.count(a.outputs[0]) != 1 or "pre_activation" in u.fused
                            for u in users):
            continue
        act = activation_of(a, ctx)
        if act is None or not _float_value(ctx, a.inputs[0]):
            continue
        for u in users:
            u.fused["pre_activation"] = act
            u.inputs[0] = a.inputs[0]
        removed.add(id(a))
    return [n for n in nodes if id(n) not in removed]


def _is_1x1_stride_1(conv, constants):
    w = constants.get(conv.inputs[1])
    return (w is not None and w.ndim == 4 and w.shape[2:] == (1, 1)
            and all(int(v) == 1 for v in conv.attr("strides", [1, 1])))


def fuse_residual_add(nodes, constants, ctx, graph_outputs):
    """Conv -> Add / Sum(conv output, other) [-> activation, fused already]
    becomes one Conv whose fourth input is `other`, added before the
    activation (ResNet's residual joins; the 1x1 GEMM adds it in its
    epilogue, other methods in place after the conv).  Taken when the Conv's
    output is read by the Add only, the Conv has no activation of its own
    and is 2-D with constant weights, and `other` has the Add's static shape
    (no broadcasting).  Of two eligible Convs the one a 1x1 stride-1 layer
    (the GEMM's case) is chosen, else the later.  The fused Conv takes the
    Add's place in the order (every input of both is ready there)."""
    cons = consumers(nodes)
    prod = producers(nodes)
    order = {id(n): k for k, n in enumerate(nodes)}
    replaced = {}   # id(Add) -> the fused Conv
    removed = set()
    for add in nodes:
        if add.op_type not in ("Add", "Sum") or len(add.inputs) != 2 or \
                add.inputs[0] == add.inputs[1]:
            continue
        out_shape = ctx.shape(add.outputs[0])
        if out_shape is None or len(out_shape) != 4 or None in out_shape[1:]:
            continue
        candidates = []
        for k in (0, 1):
            conv = prod.get(add.inputs[k])
            other = add.inputs[1 - k]
            if (conv is None or conv.op_type != "Conv" or id(conv) in removed
                    or "activation" in conv.fused or "concat_into" in conv.fused
                    or conv.inputs[1] not in constants or constants[conv.inputs[1]].ndim != 4
                    or not _conv_weights_const(conv, constants)
                    or _sole_consumer(conv.outputs[0], cons, graph_outputs) is not add
                    or ctx.shape(conv.outputs[0]) != out_shape
                    or ctx.shape(other) != out_shape
                    or not _float_value(ctx, other)):
                continue
            candidates.append((_is_1x1_stride_1(conv, constants), order[id(conv)], conv, other))
        if not candidates:
            continue
        _, _, conv, other = max(candidates, key=lambda c: (c[0], c[1]))
        conv.inputs = (conv.inputs + ["", ""])[:3] + [other]
        conv.fused["residual"] = True
        if "activation" in add.fused:
            conv.fused["activation"] = add.fused["activation"]
        conv.outputs = list(add.outputs)
        removed.add(id(conv))
        replaced[id(add)] = conv
    return [replaced.get(id(n), n) for n in nodes if id(n) not in removed]


def plan_concat_in_place(nodes, constants, ctx, graph_outputs):
    """Mark each channel Concat (axis 1 of 4-D tensors) whose inputs are
    distinct 2-D Convs with constant weights, each read by this Concat only,
    so that the session lets the Convs write into the Concat's buffer
    (SqueezeNet's fire modules, the Inception blocks): Concat.fused
    ["in_place"] = the inputs' channel counts, Conv.fused["concat_into"] =
    (the Concat's name, input index).  The graph itself is unchanged."""
    cons = consumers(nodes)
    prod = producers(nodes)
    for cat in nodes:
        if cat.op_type != "Concat" or len(cat.inputs) < 2 or \
                len(set(cat.inputs)) != len(cat.inputs):
            continue
        shape = ctx.shape(cat.outputs[0])
        axis = cat.attr("axis", 1 if cat.opset < 4 else None)
        if shape is None or len(shape) != 4 or axis is None or int(axis) not in (1, -3):
            continue
        convs = [prod.get(v) for v in cat.inputs]
        if any(c is None or c.op_type != "Conv" or "concat_into" in c.fused or
               c.inputs[1] not in constants or constants[c.inputs[1]].ndim != 4 or
               _sole_consumer(v, cons, graph_outputs) is not cat
               for c, v in zip(convs, cat.inputs)):
            continue
        cat.fused["in_place"] = [constants[c.inputs[1]].shape[0] for c in convs]
        for k, c in enumerate(convs):
            c.fused["concat_into"] = (cat.name, k)
    return nodes


def optimize(nodes, constants, ctx, graph_outputs, compile_node, level=1):
    """All rewrites (level 0: constant folding only, as onnxruntime's
    ORT_DISABLE_ALL still needs the weights)."""
    nodes = fold_constants(nodes, constants, ctx, compile_node)
    if level:
        nodes = remove_identities(nodes, ctx, graph_outputs)
        nodes = fold_batchnorm(nodes, constants, ctx, graph_outputs)
        nodes = fold_affine(nodes, constants, ctx, graph_outputs)
        nodes = fuse_activations(nodes, constants, ctx, graph_outputs)
        nodes = fuse_residual_add(nodes, constants, ctx, graph_outputs)
        nodes = plan_concat_in_place(nodes, constants, ctx, graph_outputs)
    return nodes


def check_dag(nodes, known):
    """Every input is produced before it is read (ONNX requires the order)."""
    seen = set(known)
    prod = producers(nodes)
    for n in nodes:
        for v in n.inputs:
            if v and v not in seen:
                from ._graph import malformed
                why = "is produced later" if v in prod else "is never produced"
                raise malformed(n, f"input {v!r} {why}")
        seen.update(o for o in n.outputs if o)
