"""Models for the fastconv.onnx tests and benchmark (nothing is downloaded).

- the nine "light" real models that ship inside the onnx package, with
  their constant weights replaced by random ones of a sensible scale
  (``random_light_model``) and the final Softmax cut off (the comparison is
  on the logits, as onnx's runner does for its real models);
- a ResNet-18-like and a MobileNet-like torch network with random weights
  and random batch-norm statistics, for ``torch.onnx.export``.
"""
import os

import numpy as np

LIGHT_MODELS = ("resnet50", "vgg19", "inception_v1", "inception_v2", "densenet121", "shufflenet",
                "squeezenet", "bvlc_alexnet", "zfnet512")


def light_model_path(name):
    import onnx
    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light",
                        f"light_{name}.onnx")


def _random_like(shape, role, rng):
    """Random values for a weight, by what reads it (He-style for the
    convolution and dense weights so that deep nets keep a sane scale; the
    batch norms ending a residual branch scale it down, as zero-init
    residual training does, so that the sums do not grow without bound)."""
    kind, arg = role
    if kind == "BatchNormalization/residual" and arg == 1:
        return rng.uniform(0.1, 0.3, shape)
    if kind == "BatchNormalization/residual":
        kind = "BatchNormalization"
    if kind == "Conv" and arg == 1:
        fan_in = int(np.prod(shape[1:]))
        return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    if kind == "Gemm" and arg == 1:
        fan_in = shape[0] if len(shape) == 2 and shape[0] < shape[1] else shape[-1]
        return rng.standard_normal(shape) * np.sqrt(1.0 / fan_in)
    if kind == "BatchNormalization" and arg in (1, 4):   # scale, variance
        return rng.uniform(0.5, 1.5, shape)
    if kind == "Mul":
        return rng.uniform(0.5, 1.5, shape)
    return rng.standard_normal(shape) * 0.1


def random_light_model(name, rng, logits=True):
    """The light model `name` with every float weight (its ConstantOfShape
    constants and float initializers) re-drawn at random; with `logits` the
    trailing Softmax is removed and its input is the output."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(light_model_path(name))
    g = model.graph
    readers = {}
    first_reader = {}
    for n in g.node:
        for v in n.input:
            first_reader.setdefault(v, n.op_type)
    for n in g.node:
        kind = n.op_type
        if kind == "BatchNormalization" and first_reader.get(n.output[0]) in ("Add", "Sum"):
            kind = "BatchNormalization/residual"
        for k, v in enumerate(n.input):
            readers.setdefault(v, (kind, k))
    keep, new_inits = [], []
    for n in g.node:
        if n.op_type == "ConstantOfShape":
            value = [a for a in n.attribute if a.name == "value"]
            dtype = numpy_helper.to_array(value[0].t).dtype if value else np.float32
            shape_init = [t for t in g.initializer if t.name == n.input[0]]
            if dtype == np.float32 and shape_init:
                shape = tuple(int(d) for d in numpy_helper.to_array(shape_init[0]))
                w = _random_like(shape, readers.get(n.output[0], ("", 0)), rng)
                new_inits.append(numpy_helper.from_array(w.astype(np.float32), n.output[0]))
                continue
        keep.append(n)
    for t in g.initializer:
        if t.data_type == onnx.TensorProto.FLOAT:
            a = numpy_helper.to_array(t)
            w = _random_like(a.shape, readers.get(t.name, ("", 0)), rng)
            t.CopyFrom(numpy_helper.from_array(w.astype(np.float32), t.name))
    read = {v for n in keep for v in n.input}
    unused = [t for t in g.initializer if t.name not in read]   # the replaced nodes' shapes
    for t in unused:
        g.initializer.remove(t)
    names = {t.name for t in unused}
    for vi in [vi for vi in g.input if vi.name in names]:
        g.input.remove(vi)
    del g.node[:]
    g.node.extend(keep)
    g.initializer.extend(new_inits)
    if model.ir_version < 4:   # there every initializer is also listed as a graph input
        g.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                       for t in new_inits)
    if logits and g.node[-1].op_type == "Softmax":
        sm = g.node[-1]
        out = g.output[0]
        del g.node[-1]
        out.name = sm.input[0]   # Softmax keeps the shape: the type stays
    return model


def scale_output(model, factor):
    """Multiply the weights and bias of the model's last Conv / Gemm by
    `factor` (the logits scale with them: what follows is ReLU or pooling)."""
    import onnx
    from onnx import numpy_helper
    g = model.graph
    last = [n for n in g.node if n.op_type in ("Conv", "Gemm")][-1]
    inits = {t.name: t for t in g.initializer}
    made_by = {o: n for n in g.node for o in n.output}
    for name in last.input[1:3]:
        while name not in inits:   # a weight reshaped on the way (inception v1)
            name = made_by[name].input[0]
        t = inits[name]
        a = numpy_helper.to_array(t) * np.float32(factor)
        t.CopyFrom(numpy_helper.from_array(a.astype(np.float32), name))
    onnx.checker.check_model(model)
    return model


def light_input(model, rng, batch=1):
    """A random input for the model's one true input (batch 1 by default)."""
    inits = {t.name for t in model.graph.initializer}
    (inp,) = [i for i in model.graph.input if i.name not in inits]
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    shape[0] = batch
    return inp.name, rng.standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------
# torch networks (torch is imported by the caller's importorskip)

def _randomize_bn(torch, module, rng):
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, c).astype(np.float32)))
                m.bias.copy_(torch.from_numpy((rng.standard_normal(c) * 0.1).astype(np.float32)))
                m.running_mean.copy_(torch.from_numpy(
                    (rng.standard_normal(c) * 0.1).astype(np.float32)))
                m.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, c).astype(np.float32)))


def resnet18_like(torch, rng, width=16, classes=10):
    """ResNet-18's structure (7x7/2 stem, max pool, basic blocks with 1x1
    projection shortcuts, global average pool, linear), narrower."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.short = None
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                           nn.BatchNorm2d(cout))

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return torch.relu(y + (x if self.short is None else self.short(x)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            w = width
            self.stem = nn.Sequential(nn.Conv2d(3, w, 7, 2, 3, bias=False), nn.BatchNorm2d(w),
                                      nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            self.layers = nn.Sequential(Block(w, w, 1), Block(w, w, 1), Block(w, 2 * w, 2),
                                        Block(2 * w, 2 * w, 1), Block(2 * w, 4 * w, 2),
                                        Block(4 * w, 4 * w, 1))
            self.fc = nn.Linear(4 * w, classes)

        def forward(self, x):
            x = self.layers(self.stem(x))
            x = torch.nn.functional.adaptive_avg_pool2d(x, 1)
            return self.fc(torch.flatten(x, 1))

    torch.manual_seed(int(rng.integers(2 ** 31)))
    net = Net()
    _randomize_bn(torch, net, rng)
    return net.eval()


def mobilenet_like(torch, rng, classes=10):
    """MobileNet v2/v3 pieces: ReLU6 (Clip) and Hardswish, depthwise 3x3,
    inverted residuals with linear bottlenecks, a `view(size(0), -1)`
    flatten (the Shape / Gather / Concat / Reshape chain exporters emit)."""
    nn = torch.nn

    def cbr(cin, cout, k, s, groups=1, act=nn.ReLU6):
        layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act())
        return nn.Sequential(*layers)

    class Inverted(nn.Module):
        def __init__(self, cin, cout, stride, expand, act):
            super().__init__()
            hid = cin * expand
            self.body = nn.Sequential(cbr(cin, hid, 1, 1, act=act),
                                      cbr(hid, hid, 3, stride, groups=hid, act=act),
                                      cbr(hid, cout, 1, 1, act=None))
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.residual else y

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                cbr(3, 16, 3, 2, act=nn.Hardswish),
                Inverted(16, 16, 1, 1, nn.ReLU6), Inverted(16, 24, 2, 4, nn.ReLU6),
                Inverted(24, 24, 1, 3, nn.ReLU6), Inverted(24, 40, 2, 3, nn.Hardswish),
                Inverted(40, 40, 1, 3, nn.Hardswish), cbr(40, 96, 1, 1, act=nn.Hardswish))
            self.head = nn.Sequential(nn.Linear(96, 64), nn.Hardswish(), nn.Dropout(0.2),
                                      nn.Linear(64, classes))

        def forward(self, x):
            x = self.features(x).mean((2, 3), keepdim=True)
            return self.head(x.view(x.size(0), -1))

    torch.manual_seed(int(rng.integers(2 ** 31)))
    net = Net()
    _randomize_bn(torch, net, rng)
    return net.eval()


def export(torch, net, shape, path, dynamic_batch=True, opset=17):
    """torch.onnx.export (the TorchScript exporter, dynamo=False) -> path."""
    x = torch.zeros(shape)
    kwargs = {}
    if dynamic_batch:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "logits": {0: "batch"}}
    torch.onnx.export(net, (x,), str(path), input_names=["input"], output_names=["logits"],
                      opset_version=opset, dynamo=False, **kwargs)
    return str(path)
