"""The weight gradient alone, 1 layer suite pass: fastconv's C kernel
(conv2d_backward(..., needs=("weight",), method="fused")), the BLAS path it
replaced (method="im2col": im2col per image + np.matmul, what "fused" ran
before), and torch's convolution_backward for the weight only, interleaved in
one process; medians of CPU time (time.process_time: less disturbed by a
shared machine than wall time; 1 thread).

    PYTHONPATH=. python benchmarks/bench_grad_weight.py [THREADS] [LAYER,LAYER...]
"""
import sys
import time

import numpy as np

import fastconv

try:   # the peer: not a dependency of fastconv (pip install torch==2.13.0)
    import torch
except ImportError:
    sys.exit("bench_grad_weight.py compares with torch: pip install torch==2.13.0")
from threadpoolctl import threadpool_limits
from fastconv import bench as B
thr = int(sys.argv[1]) if len(sys.argv) > 1 else 1
torch.set_num_threads(thr); fastconv.set_num_threads(thr)
ids = sys.argv[2].split(",") if len(sys.argv) > 2 else ["resnet_conv1","resnet_3x3_64","resnet_3x3_128","resnet_3x3_256","resnet_3x3_512","resnet_1x1_down","vgg_3x3_64_224","mobilenet_dw","mobilenet_pw","batch8_3x3_128"]
peak, _ = B.peak_gflops(thr)   # 256-bit FMA peak (see RESULTS.md)
threadpool_limits(thr)
print("peak", peak)
for lid in ids:
    L = B.LAYER_BY_ID[lid]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(L.x_shape, dtype=np.float32); w = rng.standard_normal(L.w_shape, dtype=np.float32)*0.1
    kw = L.conv_kwargs
    y = fastconv.conv2d(x, w, None, **kw)
    g = rng.standard_normal(y.shape, dtype=np.float32)
    tx, tw, tg = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(g)
    fns = {
      "new": lambda: fastconv.conv2d_backward(g, x, w, None, needs=("weight",), method="fused", **kw),
      "old": lambda: fastconv.conv2d_backward(g, x, w, None, needs=("weight",), method="im2col", **kw),
      "torch": lambda: torch.ops.aten.convolution_backward(tg, tx, tw, None, [kw.get("stride",1)]*2 if isinstance(kw.get("stride",1),int) else list(kw["stride"]),
            [kw.get("padding",0)]*2 if isinstance(kw.get("padding",0),int) else list(kw["padding"]), [1,1], False, [0,0], kw.get("groups",1), [False, True, False]),
    }
    res = {k: [] for k in fns}
    for k in fns: fns[k]()
    for r in range(9):
        for k, f in fns.items():
            t = time.process_time(); f(); res[k].append(time.process_time() - t)
    med = {k: sorted(v)[len(v)//2] for k, v in res.items()}
    fl = L.flops
    print(f"{lid:18s} " + " ".join(f"{k}={med[k]*1e3:7.2f}ms({fl/med[k]/1e9/peak*100:4.0f}%)" for k in fns) + f"  new/torch={med['new']/med['torch']:.2f}")
