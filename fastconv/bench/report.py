"""The report of a run: the terminal table, the Markdown page, the comparisons
with the performance targets, the JSON file and the chart."""
from __future__ import annotations

import json
import math
from typing import Dict, List, Optional, Tuple

import numpy as np

from .peak import STALL_FRACTION, STALL_RETRIES, peak_gflops
from .reference import CHECK_RTOL
from .suite import IMPL_LABELS, IMPLS, LAYER_BY_ID, PEER_SHORT, PEERS


def _fmt_bytes(n: Optional[int]) -> str:
    if n is None:
        return "-"
    for unit, div in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= div:
            v = n / div
            return f"{v:.1f}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return f"{n}B" if n else "0"


def _fmt_g(v: float) -> str:
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 0.1:
        return f"{v:.2f}"
    return f"{v:.2g}"


def format_peak(gflops) -> str:
    """A peak of peak_gflops as shown: ``"229 GFLOP/s"``, or ``"unmeasured"`` (0)."""
    return f"{float(gflops):.0f} GFLOP/s" if gflops and float(gflops) > 0 else "unmeasured"


def _index(results) -> Dict[Tuple[str, str, int], Dict[str, dict]]:
    rows: Dict[Tuple[str, str, int], Dict[str, dict]] = {}
    for r in results:
        rows.setdefault((r["layer"], r["activation"], r["threads"]), {})[r["impl"]] = r
    return rows


def _cell(r: Optional[dict], spread: bool) -> str:
    if r is None:
        return "-"
    st = r["status"]
    if st == "skipped":
        return "n.a." if r.get("not_applicable") else "-"
    if st == "error":
        return "error"
    g = r["gflops"]
    s = _fmt_g(g["median"])
    if spread:
        s += f" ({_fmt_g(g['q1'])}-{_fmt_g(g['q3'])})"
    if st == "wrong":
        s += " WRONG"
    return s


def _ratio(a: Optional[dict], b: Optional[dict]) -> str:
    r = _speedup(a, b)
    return "-" if r is None else f"{r:.2f}x"


def table_rows(report: dict, spread: bool = False) -> Tuple[List[str], List[List[str]]]:
    meta = report["meta"]
    methods = meta["methods"]
    impls = list(methods) + [p for p in PEERS if any(
        r["impl"] == p and r["status"] != "skipped" for r in report["results"])]
    head = ["layer", "act", "thr"] + [IMPL_LABELS.get(i, i).replace("fastconv ", "")
                                      for i in impls]
    head += ["% peak"]
    peers = [i for i in impls if i in PEERS]
    if "fused" in methods:
        head += ["fused/sep" if "separate" in methods else None,
                 "fused/im2col" if "im2col" in methods else None]
        head += [f"fused/{PEER_SHORT.get(p, p)}" for p in peers]
    if "raw" in methods:
        head += ["raw/fused" if "fused" in methods else None]
        head += [f"raw/{PEER_SHORT.get(p, p)}" for p in peers]
    if "winograd" in methods:
        head += ["wino/fused" if "fused" in methods else None]
        head += [f"wino/{PEER_SHORT.get(p, p)}" for p in peers]
    head += [f"mem {m}" for m in methods]
    head = [h for h in head if h is not None]
    rows = []
    for (layer, act, thr), by in _index(report["results"]).items():
        row = [layer, act, str(thr)] + [_cell(by.get(i), spread) for i in impls]
        best = by.get("fused") or next((by[m] for m in methods if m in by), None)
        row.append(f"{best['pct_peak']:.1f}" if best and best.get("pct_peak") is not None
                   else "-")
        if "fused" in methods:
            f = by.get("fused")
            if "separate" in methods:
                row.append(_ratio(f, by.get("separate")))
            if "im2col" in methods:
                row.append(_ratio(f, by.get("im2col")))
            for p in peers:
                row.append(_ratio(f, by.get(p)))
        for col in ("raw", "winograd"):   # against the pre-packed fused path and the peers
            if col in methods:
                r = by.get(col)
                if "fused" in methods:
                    row.append(_ratio(r, by.get("fused")))
                for p in peers:
                    row.append(_ratio(r, by.get(p)))
        for m in methods:
            r = by.get(m)
            row.append(_fmt_bytes(r["workspace"]["bytes"]) if r and "workspace" in r else "-")
        rows.append(row)
    return head, rows


def _speedup(fast: Optional[dict], other: Optional[dict]) -> Optional[float]:
    """time(other) / time(fast) from two results, or None when either has no timing:
    the median of the round-by-round ratios when the two took turns round by
    round (fused and separate: the drift of the machine's speed cancels in
    each pair), else the ratio of the median times."""
    ok = ("ok", "wrong")
    if not fast or not other or fast["status"] not in ok or other["status"] not in ok:
        return None
    paired = fast.get("paired", {}).get(other["impl"])
    if paired is not None:
        return paired
    return other["time"]["median"] / fast["time"]["median"]


def target_summary(report: dict) -> List[str]:
    """The performance issue's comparisons, computed from one run: for each
    (activation, threads), the geometric mean over the layers of fastconv fused
    time / peer time (<= 1.0: at least as fast), and the layers where fused is
    slower than a peer, the separate path or the im2col path."""
    by_key = _index(report["results"])
    groups: Dict[Tuple[str, int], List[Tuple[str, Dict[str, dict]]]] = {}
    for (layer, act, thr), by in by_key.items():
        groups.setdefault((act, thr), []).append((layer, by))
    lines = []
    for (act, thr), items in groups.items():
        parts = []
        for other in PEERS + ("separate", "im2col"):
            ratios = [(layer, _speedup(by.get("fused"), by.get(other))) for layer, by in items]
            ratios = [(layer, r) for layer, r in ratios if r is not None]
            if not ratios:
                continue
            label = IMPL_LABELS.get(other, other).replace("fastconv ", "")
            slower = [f"{layer} ({r:.3f}x)" for layer, r in ratios if r < 1.0]
            if other in PEERS:
                gm = math.exp(-sum(math.log(r) for _, r in ratios) / len(ratios))
                parts.append(f"fused time / {label} time, geometric mean over {len(ratios)} "
                             f"layers: **{gm:.2f}**; fused slower on: "
                             + (", ".join(slower) if slower else "none"))
            else:
                parts.append(f"fused slower than {label} on: "
                             + (", ".join(slower) if slower else "none"))
        for other in PEERS:
            ratios = [(layer, _speedup(by.get("raw"), by.get(other))) for layer, by in items]
            ratios = [(layer, r) for layer, r in ratios if r is not None]
            if not ratios:
                continue
            label = IMPL_LABELS.get(other, other)
            gm = math.exp(-sum(math.log(r) for _, r in ratios) / len(ratios))
            slower = [f"{layer} ({r:.3f}x)" for layer, r in ratios if r < 1.0]
            parts.append(f"raw time / {label} time, geometric mean over {len(ratios)} "
                         f"layers: **{gm:.2f}**; raw slower on: "
                         + (", ".join(slower) if slower else "none"))
        # winograd against the fused path and the peers (the Winograd issue's
        # targets: >= WINOGRAD_TARGET on the 3x3 layers it is meant for)
        for other in ("fused",) + PEERS:
            ratios = [(layer, _speedup(by.get("winograd"), by.get(other)))
                      for layer, by in items]
            ratios = [(layer, r) for layer, r in ratios if r is not None]
            if not ratios:
                continue
            label = IMPL_LABELS.get(other, other).replace("fastconv ", "")
            gm = math.exp(sum(math.log(r) for _, r in ratios) / len(ratios))
            under = [f"{layer} ({r:.2f}x)" for layer, r in ratios if r < WINOGRAD_TARGET]
            parts.append(f"{label} time / winograd time, geometric mean over {len(ratios)} "
                         f"layers: **{gm:.2f}**; under {WINOGRAD_TARGET}x on: "
                         + (", ".join(under) if under else "none"))
        # raw / pre-packed: the cost of packing inside the call (paired rounds)
        costs = [(layer, _speedup(by.get("raw"), by.get("fused"))) for layer, by in items]
        costs = [(layer, 1.0 / r) for layer, r in costs if r]
        if costs:
            worst = max(costs, key=lambda lr: lr[1])
            over = [f"{layer} ({c:.2f}x)" for layer, c in costs if c > RAW_TARGET]
            parts.append(f"raw time / pre-packed fused time: max **{worst[1]:.2f}** "
                         f"({worst[0]}), over {RAW_TARGET}x on: "
                         + (", ".join(over) if over else "none"))
        if parts:
            lines.append(f"- {act}, {thr} thread(s): " + "; ".join(parts))
    return lines


#: the raw-weight call's goal against the pre-packed one (time ratio)
RAW_TARGET = 1.25
#: the Winograd path's goal against the fused path and the peers (issue 18)
WINOGRAD_TARGET = 1.5


def machine_summary(report: dict) -> Optional[str]:
    """One line on the multi-thread groups' FMA probes (see run_group)."""
    probes = {}
    for r in report["results"]:
        m = r.get("machine")
        if m:
            probes[(r["layer"], r["activation"], r["threads"])] = m
    if not probes:
        return None
    retimed = [f"{l}/{a}/{t} thr ({m['retimed']})" for (l, a, t), m in probes.items()
               if m["retimed"]]
    low = min(probes.items(), key=lambda kv: kv[1]["probe_min"])
    return ("Multi-thread groups: an FMA probe before and after each timing block; a block "
            f"is timed again when one finds under {STALL_FRACTION:.0%} of the FMA peak (its "
            "threads did not have their cores), at most "
            f"{STALL_RETRIES} times. Blocks re-timed: "
            + (", ".join(retimed) if retimed else "none")
            + f"; lowest probe around the blocks kept: {low[1]['probe_min']:.0%} of the peak "
              f"({low[0][0]}/{low[0][1]})")


def format_table(report: dict, spread: bool = False) -> str:
    head, rows = table_rows(report, spread)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 or i == 1 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths)))
    lines = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    return "\n".join(lines)


def format_markdown(report: dict, chart: Optional[str] = None) -> str:
    """The report as Markdown; ``chart``: path of the PNG relative to the Markdown file."""
    meta = report["meta"]
    m = meta["machine"]
    head, rows = table_rows(report, spread=True)
    lines = [
        "# fastconv benchmark results",
        "",
        "Generated by `python -m fastconv bench` - do not edit by hand; regenerate with:",
        "",
        "```",
        meta["command"],
        "```",
        "",
        f"- Date: {meta['date']}",
        f"- Machine: {m.get('cpu')} ({m.get('simd')}), {m.get('cores')} logical cores, "
        f"{m.get('platform')}",
        f"- Software: Python {m.get('python')}, NumPy {m.get('numpy')}, fastconv "
        f"{m.get('fastconv', '?')}"
        + "".join(f", {k} {v}" for k, v in meta.get("peers", {}).items()),
        "- FMA peak (FP32): " + ", ".join(f"{format_peak(v)} on {k} thread(s)"
                                          for k, v in meta["peak_gflops"].items())
        + f" (source: {meta['peak_source']})",
        f"- fastconv thread control: {meta['thread_control']}; weights "
        + ("pre-packed once with `fastconv.pack_weight` (outside the timed call)"
           if meta.get("packed_weights") else "passed as arrays (not pre-packed)")
        + ("; `raw` is the fused path with the plain weight array, as a user writes "
           "`conv2d(x, w, b)` (the weights packed inside every call); `raw/fused` is "
           "time(fused) / time(raw) (< 1: what packing inside the call costs), "
           "`raw/x` time(x) / time(raw); `mem raw` leaves out the buffer the weights are "
           "packed into, kept between calls (about the packed weights' size)"
           if "raw" in meta.get("methods", ()) else "")
        + ("; `winograd` is `method=\"winograd\"` (F(4x4, 3x3)) with the weights "
           "transformed once (`pack_weight(w, method=\"winograd\")`), `n.a.` on the layers "
           "it cannot compute (not 3x3, strided, dilated); `wino/x` is time(x) / "
           "time(winograd); its error is checked against the same float64 reference"
           if "winograd" in meta.get("methods", ()) else ""),
        "- Figures: GFLOP/s (FLOPs = 2*N*Cout*Hout*Wout*Cin/groups*KH*KW, the dense count "
        "with the taps in the padding, the same for every path and peer), "
        "median over rounds with the interquartile range in parentheses; "
        "`% peak` is the fused path (median) against the FMA peak for that thread count; "
        "it can pass 100 % on small padded images, where the fused path (like oneDNN and "
        "ONNX Runtime) skips the FMAs of taps that read only padding; "
        "`fused/sep` and `fused/im2col` (> 1 means fused is faster) and the peer ratios are "
        "measured over the same stretch of the run: the time of a "
        "case group is cut into segments, in each fused and separate take turns round by "
        "round, then im2col and each peer run alone; `fused/sep` is the median of the "
        "round-by-round ratios (the machine's drift cancels in each pair), the others are "
        "ratios of median times; "
        "`mem` is the peak extra memory a path allocates besides its (preallocated) output.",
        "- Every case's output was checked against a float64 NumPy reference "
        f"(max error <= {CHECK_RTOL:g} x max |reference|).",
    ]
    la = meta.get("loadavg_1min") or {}
    if la.get("before") is not None:
        lines.append(f"- 1-minute load average before / after the run: {la['before']} / "
                     f"{la.get('after')} on {m.get('cores')} cores (figures from a loaded "
                     "machine are noisier, multi-thread ones most)")
    for n in meta.get("notes", []):
        lines.append(f"- Note: {n}")
    ms = machine_summary(report)
    if ms:
        lines.append(f"- {ms}")
    lines += ["", "| " + " | ".join(head) + " |",
              "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    summary = target_summary(report)
    if summary:
        lines += ["", "Comparisons from this run (fused against separate: median of the "
                      "round-by-round ratios; the others: ratios of median times; `fused/x` "
                      "in the table is time(x) / time(fused)):", ""] + summary
    if chart:
        lines += ["", f"![GFLOP/s per layer, path and peer]({chart})"]
    lines += ["", "Layers:", ""]
    for lid in meta["layers"]:
        l = LAYER_BY_ID[lid]
        lines.append(f"- `{lid}`: {l.describe()}, {l.flops / 1e6:.1f} MFLOP")
    return "\n".join(lines) + "\n"


def failures(report: dict) -> List[dict]:
    return [r for r in report["results"] if r["status"] in ("wrong", "error")]


def write_json(report: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(report, f, indent=1, default=float)
        f.write("\n")


def write_chart(report: dict, path: str) -> str:
    """Grouped bar chart (one group per layer, one bar per path/peer, IQR error bars).

    One panel per (activation, threads) combination plus a panel of the
    workspace memory per fastconv path. Requires matplotlib (optional).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = report["meta"]
    results = [r for r in report["results"] if r["status"] in ("ok", "wrong")]
    layers = meta["layers"]
    impls = [i for i in IMPLS if any(r["impl"] == i for r in results)]
    combos = [(a, t) for a in meta["activations"] for t in meta["threads"]]
    has_mem = any("workspace" in r for r in results)
    npanels = len(combos) + (1 if has_mem else 0)
    width = max(9.0, 1.1 * len(layers) + 5)
    fig, axes = plt.subplots(npanels, 1, figsize=(width, 3.6 * npanels), squeeze=False)
    colors = {"fused": "#1f77b4", "raw": "#17becf", "separate": "#ff7f0e", "im2col": "#2ca02c",
              "winograd": "#8c564b", "torch": "#d62728", "onnxruntime": "#9467bd"}
    bw = 0.8 / max(1, len(impls))
    xs = np.arange(len(layers))
    idx = {(r["layer"], r["impl"], r["activation"], r["threads"]): r for r in results}
    for ax, (act, thr) in zip(axes[:, 0], combos):
        for k, impl in enumerate(impls):
            med, lo, hi = [], [], []
            for lid in layers:
                r = idx.get((lid, impl, act, thr))
                if r is None:
                    med.append(np.nan), lo.append(0), hi.append(0)
                    continue
                g = r["gflops"]
                med.append(g["median"])
                lo.append(max(0.0, g["median"] - g["q1"]))
                hi.append(max(0.0, g["q3"] - g["median"]))
            ax.bar(xs + (k - (len(impls) - 1) / 2) * bw, med, bw, yerr=[lo, hi], capsize=2,
                   label=IMPL_LABELS.get(impl, impl), color=colors.get(impl))
        peak = float(meta["peak_gflops"].get(str(thr), peak_gflops(thr)[0]))
        if peak > 0:   # no line where the peak is unmeasured
            ax.axhline(peak, color="grey", ls="--", lw=1, label=f"FMA peak ({peak:.0f})")
        ax.set_yscale("log")
        ax.set_ylabel("GFLOP/s (log scale, higher is better)")
        ax.set_title(f"Conv2d + {act}, {thr} thread{'s' if thr > 1 else ''} "
                     "(median, IQR error bars)")
        ax.set_xticks(xs)
        ax.set_xticklabels(layers, rotation=20, ha="right")
        ax.set_xlabel("layer")
        ax.grid(axis="y", which="major", alpha=0.3)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if has_mem:
        ax = axes[-1, 0]
        act, thr = combos[0]
        mimpls = [m for m in meta["methods"] if m in impls]
        mbw = 0.8 / max(1, len(mimpls))
        for k, impl in enumerate(mimpls):
            vals = []
            for lid in layers:
                r = idx.get((lid, impl, act, thr))
                vals.append(r["workspace"]["bytes"] / 2**10 if r and "workspace" in r else np.nan)
            pos = xs + (k - (len(mimpls) - 1) / 2) * mbw
            ax.bar(pos, [v if v > 0 else np.nan for v in vals], mbw,
                   label=IMPL_LABELS.get(impl, impl), color=colors.get(impl))
            for xp, v in zip(pos, vals):
                if v == 0:  # nothing allocated: no bar on a log axis, say so
                    ax.annotate("0", (xp, 0), xycoords=("data", "axes fraction"),
                                xytext=(0, 2), textcoords="offset points", ha="center",
                                va="bottom", fontsize="x-small", color=colors.get(impl))
        ax.set_yscale("log")
        ax.set_ylabel("extra memory (KiB, log scale)")
        ax.set_title("Peak workspace allocated besides the output (lower is better; "
                     "0 = none)")
        ax.set_xticks(xs)
        ax.set_xticklabels(layers, rotation=20, ha="right")
        ax.set_xlabel("layer")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"fastconv vs peers - {meta['machine'].get('cpu', '')}", fontsize="medium")
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
