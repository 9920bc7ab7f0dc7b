"""Training-step benchmark: fastconv (forward + backward + SGD-momentum update,
``Model.train_on_batch``) against the same network in torch (``zero_grad``,
forward, ``cross_entropy``, ``backward``, ``SGD(momentum=0.9).step()``), same
initial weights, same batch, the same thread count for both.

    python benchmarks/bench_training.py                   # threads 1,2; 7 rounds
    python benchmarks/bench_training.py --threads 1 --rounds 3 --models digits
    python benchmarks/bench_training.py --alone          # each framework in its own process

Models: ``digits`` (the CNN of ``fastconv demo --train``: 8x8x1 images,
Conv2D 8 3x3 relu x2, AveragePooling2D, Dense 10; batch 64, NHWC) and
``resnet18`` (ResNet-18 v1 of examples/resnet18.py, batch 8x3x64x64, NCHW,
1000 classes).  The two frameworks take turns step by step (so the machine's
drift hits both; but on 2 threads each one's spinning OpenMP threads slow the
other's next step), or with --alone each runs alone in a child process; each
figure is the median over the rounds.  Peak memory:
the growth of the RSS (sampled every 0.5 ms) during 3 steps over the RSS
before them, each framework alone in a child process on 1 thread (what the
steps allocate on top of the built model; the first step creates the
optimizer state).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "examples"))

try:   # the peer: not a dependency of fastconv (pip install torch==2.13.0)
    import torch  # noqa: E402
except ImportError:
    sys.exit("bench_training.py compares with torch: pip install torch==2.13.0")

import fastconv  # noqa: E402
from fastconv import layers as L  # noqa: E402
from fastconv import losses, optimizers  # noqa: E402

LR, MOMENTUM = 0.01, 0.9


def digits_models(seed=0):
    L.set_random_seed(seed)
    ours = L.Sequential([L.Conv2D(8, 3, padding="same", activation="relu"),
                         L.Conv2D(8, 3, padding="same", activation="relu"),
                         L.AveragePooling2D(2), L.Flatten(), L.Dense(10)],
                        input_shape=(8, 8, 1))
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    c1, c2, _, _, d = ours.layers
    with torch.no_grad():
        for conv, m in ((c1, net[0]), (c2, net[2])):
            m.weight.copy_(torch.from_numpy(conv.kernel.transpose(3, 2, 0, 1).copy()))
            m.bias.copy_(torch.from_numpy(conv.bias))
        # fastconv flattens NHWC (h, w, c), torch NCHW (c, h, w)
        k = d.kernel.reshape(4, 4, 8, 10).transpose(2, 0, 1, 3).reshape(128, 10)
        net[6].weight.copy_(torch.from_numpy(k.T.copy()))
        net[6].bias.copy_(torch.from_numpy(d.bias))
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (64, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    return ours, net, x, torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), y


def resnet_models(seed=0):
    import resnet18 as R
    net = R.random_torch_resnet18(1, seed).train()
    ours = R.fastconv_resnet18(net, image_size=64)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 3, 64, 64)).astype(np.float32)
    y = rng.integers(0, 1000, 8)
    return ours, net, x, torch.from_numpy(x), y


MODELS = {"digits": digits_models, "resnet18": resnet_models}


def _steppers(name):
    ours, net, x, xt, y = MODELS[name]()
    ours.compile(optimizers.SGD(LR, momentum=MOMENTUM),
                 losses.SparseCategoricalCrossentropy(from_logits=True))
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    yt = torch.from_numpy(y)
    net.train()

    def ours_step():
        return ours.train_on_batch(x, y)

    def torch_step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(xt), yt)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return ours_step, torch_step


def time_pair(name, threads, rounds):
    # the BLAS behind fastconv's GEMM paths gets the same count (threadpoolctl)
    from fastconv.bench import fastconv_threads
    with fastconv_threads(threads):
        return _time_pair(name, threads, rounds)


def _time_pair(name, threads, rounds):
    fastconv.set_num_threads(threads)
    torch.set_num_threads(threads)
    ours_step, torch_step = _steppers(name)
    l_ours, l_torch = ours_step(), torch_step()      # same weights: the same first loss
    for _ in range(2):
        ours_step()
        torch_step()
    t_ours, t_torch = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        ours_step()
        t1 = time.perf_counter()
        torch_step()
        t2 = time.perf_counter()
        t_ours.append(t1 - t0)
        t_torch.append(t2 - t1)
    return dict(model=name, threads=threads, fastconv_s=float(np.median(t_ours)),
                torch_s=float(np.median(t_torch)), first_loss=(l_ours, l_torch))


#: a child's warm-up and timed steps last at least this long (seconds), however
#: few --rounds: nine steps of the digits CNN are 20 ms, within one swing of
#: this machine's speed (benchmarks/NOTES.md, "small layers, session 10")
MIN_WARMUP_S, MIN_TIMED_S = 0.3, 1.5


def child_time(framework, name, threads, rounds):
    """One framework alone in this process: median step time (--alone), over
    at least `rounds` steps and MIN_TIMED_S seconds of them.
    fastconv's and torch's OpenMP teams spin-wait after their parallel
    regions; taking turns step by step, each framework's spinning threads
    slow the other's next step (2 threads: ResNet-18 ~15 % slower for both,
    benchmarks/NOTES.md)."""
    from fastconv.bench import fastconv_threads
    with fastconv_threads(threads):
        fastconv.set_num_threads(threads)
        torch.set_num_threads(threads)
        ours_step, torch_step = _steppers(name)
        step = ours_step if framework == "fastconv" else torch_step
        t_end = time.perf_counter() + MIN_WARMUP_S
        for i in range(10**6):
            step()
            if i >= 2 and time.perf_counter() >= t_end:
                break
        ts = []
        t_end = time.perf_counter() + MIN_TIMED_S
        while len(ts) < rounds or time.perf_counter() < t_end:
            t0 = time.perf_counter()
            step()
            ts.append(time.perf_counter() - t0)
    print(json.dumps({"seconds": float(np.median(ts)), "steps": len(ts)}))


def time_alone(name, threads, rounds, repeats=1):
    """time_pair's result with each framework alone in a child process; with
    repeats > 1 the two take turns that many times (fastconv's child, torch's,
    fastconv's, ...) and each keeps the median of its children's medians: this
    machine's speed drifts by 10-20 % within minutes (benchmarks/NOTES.md), and
    one pair of children can fall on either side of a drift."""
    res = {"fastconv": [], "torch": []}
    for _ in range(repeats):
        for fw in ("fastconv", "torch"):
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child-time", fw,
                                  name, str(threads), str(rounds)], capture_output=True,
                                 text=True, check=True)
            res[fw].append(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])
    return dict(model=name, threads=threads, fastconv_s=float(np.median(res["fastconv"])),
                torch_s=float(np.median(res["torch"])), first_loss=(float("nan"), float("nan")),
                pairs=[(a, b) for a, b in zip(res["fastconv"], res["torch"])])


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child_memory(framework, name):
    """Peak RSS during 3 steps minus the RSS before them, sampled every
    0.5 ms by a thread (ru_maxrss would include the imports' peak)."""
    import threading
    fastconv.set_num_threads(1)
    torch.set_num_threads(1)
    ours_step, torch_step = _steppers(name)
    step = ours_step if framework == "fastconv" else torch_step
    base = _rss_bytes()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.0005)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    for _ in range(3):
        step()
    done.set()
    th.join()
    print(json.dumps({"peak_growth_bytes": max(peak[0] - base, 0)}))


def memory(framework, name):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", framework,
                          name], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_growth_bytes"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--models", default="digits,resnet18")
    ap.add_argument("--alone", action="store_true",
                    help="time each framework alone in a child process instead of taking "
                         "turns step by step in one")
    ap.add_argument("--repeats", type=int, default=1,
                    help="with --alone: alternate the two frameworks' children this many "
                         "times and keep the median of each")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--child-time", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_memory(*args.child)
    if args.child_time:
        fw, name, t, r = args.child_time
        return child_time(fw, name, int(t), int(r))
    names = [m for m in args.models.split(",") if m]
    threads = [int(t) for t in args.threads.split(",")]
    rows = []
    for name in names:
        for t in threads:
            r = time_alone(name, t, args.rounds, args.repeats) if args.alone else \
                time_pair(name, t, args.rounds)
            rows.append(r)
            print(f"{name:9s} {t} thr: fastconv {r['fastconv_s'] * 1e3:8.2f} ms  torch "
                  f"{r['torch_s'] * 1e3:8.2f} ms  torch/fastconv {r['torch_s'] / r['fastconv_s']:.2f}"
                  f"  (first loss {r['first_loss'][0]:.4f} vs {r['first_loss'][1]:.4f})"
                  + ("".join(f"; pair {a * 1e3:.2f}/{b * 1e3:.2f} = {b / a:.2f}"
                             for a, b in r["pairs"]) if "pairs" in r else ""),
                  flush=True)
    mem = {name: {fw: memory(fw, name) for fw in ("fastconv", "torch")} for name in names}
    print()
    print("| model | threads | fastconv step (ms) | torch step (ms) | torch / fastconv |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['threads']} | {r['fastconv_s'] * 1e3:.2f} | "
              f"{r['torch_s'] * 1e3:.2f} | {r['torch_s'] / r['fastconv_s']:.2f} |")
    print()
    print("| model | fastconv peak growth (MiB) | torch peak growth (MiB) |")
    print("|---|---|---|")
    for name, m in mem.items():
        print(f"| {name} | {m['fastconv'] / 2**20:.1f} | {m['torch'] / 2**20:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
