"""The backward benchmark (``fastconv bench --backward``): conv2d_backward's methods
and conv_transpose2d against torch, and their Markdown report."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from .peak import peak_gflops
from .runners import fastconv_threads
from .suite import Layer, make_inputs
from .timing import time_interleaved


#: fastconv.conv2d_backward methods timed by the backward benchmark.
BACKWARD_METHODS: Tuple[str, ...] = ("auto", "fused", "separate", "im2col")


def backward_needs(layer: Layer) -> Tuple[str, ...]:
    """The gradients a training step needs of the layer: not grad_input of
    the first layer (its input is the data)."""
    return ("weight", "bias") if layer.id == "resnet_conv1" else ("input", "weight", "bias")


def transposed_layer(layer: Layer):
    """conv_transpose2d arguments that undo the layer's shape (its output in,
    its input's shape out), or None where output_padding cannot reach it."""
    ho, wo = layer.out_hw
    base_h = (ho - 1) * layer.stride - 2 * layer.pad + layer.dilation * (layer.k - 1) + 1
    base_w = (wo - 1) * layer.stride - 2 * layer.pad + layer.dilation * (layer.k - 1) + 1
    oph, opw = layer.h - base_h, layer.w - base_w
    limit = max(layer.stride, layer.dilation)
    if not (0 <= oph < limit and 0 <= opw < limit):
        return None
    return dict(stride=layer.stride, padding=layer.pad, output_padding=(oph, opw),
                groups=layer.groups, dilation=layer.dilation)


def backward_runners(layer: Layer, activation: str, threads: int, seed: int = 0):
    """name -> zero-argument callable for one backward step of the layer:
    fastconv's methods (the forward's saved result passed as torch keeps it:
    y for relu, z for the others), grad_input and grad_weight alone, and
    torch (torch.autograd.grad of act(F.conv2d(x, w, b)), the forward done
    once outside).  Plus 'transpose' / 'torch_transpose': conv_transpose2d
    with the activation on the layer's transposed shape (forward)."""
    import fastconv
    x, w, b = make_inputs(layer, seed)
    kw = layer.conv_kwargs
    z = fastconv.conv2d(x, w, b, **kw)
    y = fastconv.activate(z, activation)
    g = np.random.default_rng(seed + 1).standard_normal(layer.out_shape).astype(np.float32)
    saved = dict(output=y) if activation == "relu" else dict(linear_output=z)
    needs = backward_needs(layer)
    bufs = {"grad_input": np.empty(layer.x_shape, np.float32),
            "grad_weight": np.empty(layer.w_shape, np.float32),
            "grad_bias": np.empty(layer.cout, np.float32)}
    back = fastconv.conv2d_backward

    def fc(method, which):
        args = dict(kw, activation=activation, method=method, needs=which, **saved)
        args.update({k: v for k, v in bufs.items() if k[5:] in which})
        return lambda: back(g, x, w, b, **args)

    fns = {m: fc(m, needs) for m in BACKWARD_METHODS}
    if "input" in needs:
        fns["fused_input"] = fc("fused", ("input",))
    fns["fused_weight"] = fc("fused", ("weight",))
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return fns
    torch.set_num_threads(int(threads))
    tx = torch.from_numpy(x).requires_grad_("input" in needs)
    tw = torch.from_numpy(w.copy()).requires_grad_(True)
    tb = torch.from_numpy(b.copy()).requires_grad_(True)
    act = {"relu": torch.relu, "silu": F.silu, "gelu": F.gelu}[activation]
    ty = act(F.conv2d(tx, tw, tb, **kw))
    tg = torch.from_numpy(g)
    inputs = ([tx] if "input" in needs else []) + [tw, tb]
    fns["torch"] = lambda: torch.autograd.grad(ty, inputs, tg, retain_graph=True)
    targs = transposed_layer(layer)
    if targs is not None:
        xt = np.random.default_rng(seed + 2).standard_normal(layer.out_shape).astype(np.float32)
        wt = np.ascontiguousarray(w)   # (C_in_T = layer.cout, C_out_T / groups, k, k)
        bt = np.zeros(layer.cin, np.float32)
        out = np.empty(layer.x_shape, np.float32)
        txt, twt, tbt = (torch.from_numpy(a) for a in (xt, wt, bt))

        def torch_t():
            with torch.inference_mode():
                return act(F.conv_transpose2d(txt, twt, tbt, **targs))

        fns["transpose"] = lambda: fastconv.conv_transpose2d(
            xt, wt, bt, **targs, activation=activation, method="auto", out=out)
        fns["torch_transpose"] = torch_t
    return fns


def run_backward_suite(layers: Sequence[Layer], activations: Sequence[str] = ("relu", "silu"),
                       threads: Sequence[int] = (1,), *, max_time: float = 1.0) -> List[dict]:
    """Time backward_runners interleaved per (layer, activation, threads);
    one dict per case: median seconds per runner, the FLOP counts, the peak."""
    rows = []
    for thr in threads:
        peak = peak_gflops(thr)[0]
        with fastconv_threads(thr):
            for layer in layers:
                for act in activations:
                    fns = backward_runners(layer, act, thr)
                    t = time_interleaved(fns, max_time=max_time, min_rounds=5)
                    err = {k: repr(v) for k, v in t.items() if isinstance(v, Exception)}
                    rows.append(dict(layer=layer.id, activation=act, threads=thr, peak=peak,
                                     flops=layer.flops, needs=backward_needs(layer),
                                     seconds={k: v.median for k, v in t.items()
                                              if not isinstance(v, Exception)},
                                     errors=err))
    return rows


def format_backward_markdown(rows: List[dict]) -> str:
    """The backward results as a Markdown table, then the targets met or not."""
    head = ("| layer | act | thr | auto ms | fused ms | separate ms | im2col ms | torch ms | torch/fused "
            "| fused GFLOP/s (% peak) | grad_input % peak | grad_weight % peak "
            "| transpose (auto) ms | torch transpose ms |")
    lines = [head, "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"]
    faster = sep_ok = t_faster = True
    for r in rows:
        s = r["seconds"]
        f = r["flops"]
        total = f * (2 if "input" in r["needs"] else 1)

        def ms(k):
            return f"{s[k] * 1e3:.2f}" if k in s else "-"

        def pct(k, flops):
            return f"{flops / s[k] / 1e9 / r['peak'] * 100:.0f} %" if k in s and r["peak"] \
                else "-"

        fused = s.get("fused")
        ratio = f"{s['torch'] / fused:.2f}" if fused and "torch" in s else "-"
        best = min(s.get("auto", fused or 0), fused or 0) or None
        if best and "torch" in s and s["torch"] < best:
            faster = False
        if fused and "separate" in s and s["separate"] < fused:
            sep_ok = False
        if "transpose" in s and "torch_transpose" in s and s["torch_transpose"] < s["transpose"]:
            t_faster = False
        gf = f"{total / fused / 1e9:.1f} ({pct('fused', total)})" if fused else "-"
        lines.append(f"| {r['layer']} | {r['activation']} | {r['threads']} | {ms('auto')} | "
                     f"{ms('fused')} | "
                     f"{ms('separate')} | {ms('im2col')} | {ms('torch')} | {ratio} | {gf} | "
                     f"{pct('fused_input', f)} | {pct('fused_weight', f)} | {ms('transpose')} | "
                     f"{ms('torch_transpose')} |")
    lines.append("")
    lines.append(f"- fused (or auto) backward faster than torch on every layer: "
                 f"{'yes' if faster else 'NO'}")
    lines.append(f"- fused backward <= separate on every layer: {'yes' if sep_ok else 'NO'}")
    lines.append(f"- conv_transpose2d faster than F.conv_transpose2d on every transposed shape: "
                 f"{'yes' if t_faster else 'NO'}")
    errs = [(r["layer"], r["activation"], k, v) for r in rows for k, v in r["errors"].items()]
    for e in errs:
        lines.append(f"- error {e}")
    return "\n".join(lines) + "\n"
