"""ResNet-18 (v1, and the v2 pre-activation variant) in fastconv layers, with
the weights copied from the same network defined in PyTorch.

The torch networks get random weights and random batch-norm statistics
(nothing is downloaded).  The fastconv network is wired with the functional
API (``layers.Input`` / ``layers.Model``) from the torch modules converted by
``layers.from_torch``; then batch norm is folded into the convolutions
(``model.fold_batchnorm()``, which also fuses the ReLU that follows into the
convolution).  The example checks that both fastconv models match torch to
float32 tolerance and prints the time per image of each on the same number
of threads (medians of rounds in which they take turns).

``--method winograd`` runs every 3x3 stride-1 convolution of both fastconv
models on the Winograd path (``Conv2D(method="winograd")``: kernels
transformed once); the check then allows the Winograd tolerance
(WINOGRAD_RTOL, relative to the logits' scale, max |logit|).  ``--ort``
exports the same torch network (``torch.onnx.export(..., dynamo=False)``) to
a temporary file and times an ONNX Runtime session on it (the same threads,
default graph optimisations) and a fastconv.onnx session on the same file
(fast math unless ``--method auto``), taking turns with the others, and
prints ORT time / fastconv (folded) time and ORT time / fastconv.onnx time.
``--method fast_math`` runs ``method="auto"`` under ``fastconv.fast_math()``:
Winograd where ``fastconv.winograd_pays`` says so.

    python examples/resnet18.py                     # 224x224, batch 4, all threads
    python examples/resnet18.py --size 64 --batch 1 --threads 1 --repeat 1
    python examples/resnet18.py --batch 1 --threads 1 --method winograd --ort --version 1
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

try:
    import torch
    import torch.nn as nn
except ImportError:  # pragma: no cover
    sys.exit("this example needs torch (pip install torch)")

try:
    import fastconv
except ImportError:  # run from a source checkout built in place
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fastconv
from fastconv import layers as L

# ---------------------------------------------------------------------------
# the network in PyTorch


class BasicBlock(nn.Module):
    """ResNet v1 block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + identity)


class PreActBlock(nn.Module):
    """ResNet v2 block (He et al. 2016): conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        pre = torch.relu(self.bn1(x))
        identity = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + identity


class ResNet18(nn.Module):
    def __init__(self, version=1, num_classes=1000):
        super().__init__()
        self.version = version
        block = BasicBlock if version == 1 else PreActBlock
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        if version == 1:
            self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        blocks, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [block(cin, cout, stride), block(cout, cout, 1)]
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        if version == 2:
            self.bn_final = nn.BatchNorm2d(512)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.conv1(x)
        if self.version == 1:
            x = torch.relu(self.bn1(x))
        x = self.maxpool(x)
        for b in self.blocks:
            x = b(x)
        if self.version == 2:
            x = torch.relu(self.bn_final(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def random_torch_resnet18(version, seed=0):
    """Random weights and batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    net = ResNet18(version)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
    return net.eval()


# ---------------------------------------------------------------------------
# the same network in fastconv


def fastconv_resnet18(net, image_size=224):
    """A fastconv Model (NCHW input, like the torch net) with net's weights."""
    c = L.from_torch
    inp = L.Input((3, image_size, image_size))
    x = c(net.conv1)(inp)
    if net.version == 1:
        x = L.Activation("relu")(c(net.bn1)(x))
    x = c(net.maxpool)(x)
    for b in net.blocks:
        if net.version == 1:
            y = L.Activation("relu")(c(b.bn1)(c(b.conv1)(x)))
            y = c(b.bn2)(c(b.conv2)(y))
            shortcut = x if b.downsample is None else c(b.downsample)(x)
            x = L.Add(activation="relu")([y, shortcut])
        else:
            pre = L.Activation("relu")(c(b.bn1)(x))
            shortcut = x if b.shortcut is None else c(b.shortcut)(pre)
            y = L.Activation("relu")(c(b.bn2)(c(b.conv1)(pre)))
            x = L.Add()([c(b.conv2)(y), shortcut])
    if net.version == 2:
        x = L.Activation("relu")(c(net.bn_final)(x))
    x = L.Flatten()(c(net.avgpool)(x))
    return L.Model(inp, c(net.fc)(x), name=f"resnet18_v{net.version}")


# ---------------------------------------------------------------------------
# check and time


def _time_per_image(fns, x, repeat):
    """Median time per image (ms) of each function over `repeat` rounds; the
    functions take turns in every round so that a change in machine load hits
    them alike."""
    for fn in fns.values():
        fn(x)                                    # warm-up
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * statistics.median(t) / x.shape[0] for name, t in times.items()}


#: the check's tolerance, relative to max |logit| (the logits' scale).
#: Direct: 1e-4, as before.  Winograd: the per-layer tolerance of
#: tests/test_winograd.py, 300 float32 eps (3.6e-5), taken of the logits'
#: scale; measured with every 3x3 stride-1 layer on Winograd: 0.8-1.0e-6
#: (v1 and v2, seeds 0 and 1, batch 2, 224x224; direct 0.7-0.9e-6), so a
#: 35x margin (per layer its error is a few times the direct path's,
#: docs/DESIGN.md "Winograd"; through the network, measured, about the same).
DIRECT_RTOL = 1e-4
WINOGRAD_RTOL = 300 * float(np.finfo(np.float32).eps)


def use_winograd(model):
    """Every 3x3, stride 1, dilation 1 Conv2D of `model` on the Winograd path
    (its kernel transformed once, at the next call); returns how many."""
    count = 0
    for layer in model.layers:
        if isinstance(layer, L.Conv2D) and layer.kernel_size == (3, 3) and \
                layer.strides == (1, 1) and layer.dilation_rate == (1, 1):
            layer.method = "winograd"
            layer._weights_changed()   # drop the direct pack: the next call transforms
            count += 1
    return count


def ran_winograd(model):
    """How many of model's layers took the Winograd path in the last call."""
    return sum(getattr(layer, "last_method", None) == "winograd" for layer in model.layers)


def onnx_sessions(net, x, threads, fast_math):
    """`net` exported by torch (the TorchScript exporter) and loaded by ONNX
    Runtime (intra-op threads = `threads`, default optimisations) and by
    fastconv.onnx (the same threads, `fast_math`); returns (ORT run(x) ->
    logits, fastconv.onnx run(x) -> logits, onnxruntime version)."""
    import onnxruntime as ort
    import fastconv.onnx
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "resnet18.onnx")
        with torch.no_grad():
            torch.onnx.export(net, torch.from_numpy(x), path, input_names=["x"],
                              output_names=["logits"], dynamo=False)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        fsess = fastconv.onnx.InferenceSession(path, so, fast_math=fast_math)
    run = lambda a: fsess.run(None, {"x": a})[0]   # noqa: E731
    run.winograd_nodes = lambda: sum(getattr(k, "last_method", None) == "winograd"
                                     for k, *_ in fsess._steps)
    return (lambda a: sess.run(None, {"x": a})[0]), run, ort.__version__


def run(version=1, size=224, batch=4, threads=None, repeat=3, seed=0, timing=True,
        method="auto", ort=False):
    """Build, check against torch and (optionally) time; returns a dict."""
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    set_threads = getattr(fastconv, "set_num_threads", None) or \
        getattr(fastconv._core, "set_num_threads", None)
    if set_threads is not None:
        set_threads(threads)
    net = random_torch_resnet18(version, seed)
    model = fastconv_resnet18(net, size)
    folded = model.fold_batchnorm()
    winograd_layers = 0
    if method == "winograd":
        winograd_layers = use_winograd(folded)
        if use_winograd(model) != winograd_layers:
            raise AssertionError("the folded model lost a 3x3 convolution")
    elif method not in ("auto", "fast_math"):
        raise ValueError(f"method must be 'auto', 'fast_math' or 'winograd', got {method!r}")
    with fastconv.fast_math(method == "fast_math"):
        return _check_and_time(net, model, folded, version, size, batch, threads, repeat, seed,
                               timing, method, ort, winograd_layers)


def _check_and_time(net, model, folded, version, size, batch, threads, repeat, seed, timing,
                    method, ort, winograd_layers):
    x = np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        xt = torch.from_numpy(x)
        ref = net(xt).numpy()
    y, yf = model(x), folded(x)
    ran = (ran_winograd(model), ran_winograd(folded))
    scale = float(np.max(np.abs(ref)))
    rtol = DIRECT_RTOL if method == "auto" else WINOGRAD_RTOL
    top2 = np.sort(ref, axis=1)[:, -2:]
    res = {
        "method": method, "winograd_layers": winograd_layers, "winograd_ran": ran,
        "tolerance": rtol * scale,
        # the top-1 class is only defined to within the tolerance: images
        # whose two largest torch logits are closer than twice it are left out
        "top1_checked": int(np.sum(top2[:, 1] - top2[:, 0] > 2 * rtol * scale)),
        "top1_mismatch": int(np.sum((np.argmax(yf, 1) != np.argmax(ref, 1))
                                    & (top2[:, 1] - top2[:, 0] > 2 * rtol * scale))),
        "version": version, "size": size, "batch": batch, "threads": threads,
        "layers": len(model.layers), "folded_layers": len(folded.layers),
        "params": model.count_params(), "gflops_per_image": model.flops() / 1e9,
        "max_abs_err": float(np.max(np.abs(y - ref))),
        "max_abs_err_folded": float(np.max(np.abs(yf - ref))),
        "folding_change": float(np.max(np.abs(yf - y))),
        "scale": scale,
    }
    fns = {}
    if ort:
        ort_run, fc_onnx_run, res["onnxruntime"] = onnx_sessions(net, x, threads,
                                                                  method != "auto")
        res["max_abs_err_ort"] = float(np.max(np.abs(ort_run(x) - ref)))
        fc_onnx_run(x)   # its first run tunes each Conv's method
        res["max_abs_err_fastconv_onnx"] = float(np.max(np.abs(fc_onnx_run(x) - ref)))
        res["fastconv_onnx_winograd_nodes"] = fc_onnx_run.winograd_nodes()
        fns["ort"], fns["fastconv_onnx"] = ort_run, fc_onnx_run
    if timing:
        def torch_fn(a):
            with torch.no_grad():
                return net(torch.from_numpy(a))
        fns = {"torch": torch_fn, "fastconv": model, "fastconv_folded": folded, **fns}
        ms = _time_per_image(fns, x, repeat)
        res.update({f"{k}_ms": v for k, v in ms.items()})
        if ort:
            res["ort_over_fastconv"] = ms["ort"] / ms["fastconv_folded"]
            res["ort_over_fastconv_onnx"] = ms["ort"] / ms["fastconv_onnx"]
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=None, help="default: all cores")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--version", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    p.add_argument("--method", choices=["auto", "fast_math", "winograd"], default="auto",
                   help="winograd: every 3x3 stride-1 convolution on the Winograd path; "
                        "fast_math: method='auto' under fastconv.fast_math() (Winograd "
                        "where fastconv.winograd_pays says so)")
    p.add_argument("--ort", action="store_true",
                   help="also time ONNX Runtime on the torch network exported to ONNX")
    p.add_argument("--summary", action="store_true", help="print the model summary")
    args = p.parse_args(argv)
    ok = True
    for v in args.version:
        if args.summary:
            fastconv_resnet18(random_torch_resnet18(v), args.size).summary()
        r = run(v, args.size, args.batch, args.threads, args.repeat, method=args.method,
                ort=args.ort)
        tol = r["tolerance"]
        good = max(r["max_abs_err"], r["max_abs_err_folded"]) <= tol and not r["top1_mismatch"]
        if args.method == "winograd":   # every 3x3 stride-1 layer ran it, in both models
            good &= r["winograd_ran"] == (r["winograd_layers"],) * 2 and r["winograd_layers"] > 0
        ok &= good
        print(f"ResNet-18 v{v}: {r['batch']}x3x{r['size']}x{r['size']}, {r['threads']} thread(s), "
              f"{r['params']:,} params, {r['gflops_per_image']:.2f} GFLOP/image, "
              f"{r['layers']} layers -> {r['folded_layers']} folded; method {r['method']}"
              + (f", {r['winograd_layers']} 3x3 stride-1 layers set to Winograd"
                 if args.method == "winograd" else "")
              + (f"; layers that ran Winograd: {r['winograd_ran'][0]} ("
                 f"{r['winograd_ran'][1]} folded)" if args.method != "auto" else ""))
        top1_ok = r["top1_checked"] - r["top1_mismatch"]
        print(f"  max |fastconv - torch| = {r['max_abs_err']:.2e} "
              f"(folded {r['max_abs_err_folded']:.2e}; logits' scale {r['scale']:.2f}; "
              f"tolerance {tol:.1e} = {tol / r['scale']:.1e} x scale); top-1 equal on "
              f"{top1_ok}/{r['top1_checked']} image(s) with a clear top-1 "
              f"{'OK' if good else 'MISMATCH'}")
        if args.ort:
            print(f"  max |ORT - torch| = {r['max_abs_err_ort']:.2e} "
                  f"(onnxruntime {r['onnxruntime']}); max |fastconv.onnx - torch| = "
                  f"{r['max_abs_err_fastconv_onnx']:.2e} "
                  f"({r['fastconv_onnx_winograd_nodes']} Conv nodes ran Winograd, tuned)")
        print(f"  time per image (median of {args.repeat}): torch {r['torch_ms']:.1f} ms, "
              f"fastconv {r['fastconv_ms']:.1f} ms, "
              f"fastconv folded {r['fastconv_folded_ms']:.1f} ms"
              + (f", ORT {r['ort_ms']:.1f} ms, fastconv.onnx {r['fastconv_onnx_ms']:.1f} ms; "
                 f"ORT / fastconv folded = {r['ort_over_fastconv']:.2f}x, ORT / "
                 f"fastconv.onnx = {r['ort_over_fastconv_onnx']:.2f}x" if args.ort else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
