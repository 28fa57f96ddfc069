"""Host overhead vs kernel time of one quantize call (graph replay), for ncu runs.
    python bench/profile_quantize.py [--once]   (--once: a single call, for `ncu`)"""
import sys
import time

import torch

import fp4gemm

x = torch.randn(16384, 4096, device="cuda", dtype=torch.bfloat16)
cases = {"mx_rtn_row": dict(), "mx_sr_rht64_rowcol": dict(rounding="sr", seed=1, prescale=True,
                                                          hadamard=fp4gemm.Hadamard(64, seed=1), columnwise=True)}
if "--once" in sys.argv:
    for kw in cases.values():
        fp4gemm.quantize(x, **kw)
    torch.cuda.synchronize()
    sys.exit()
for name, kw in cases.items():
    for _ in range(3):
        fp4gemm.quantize(x, **kw)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(50):
        fp4gemm.quantize(x, **kw)
    host = (time.perf_counter() - t0) / 50 * 1e3
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(10):
            fp4gemm.quantize(x, **kw)
    g.replay(); torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(10):
        g.replay()
    b.record(); b.synchronize()
    print(f"{name}: host-side call {host:.3f} ms, graph replay (GPU only) {a.elapsed_time(b) / 100:.3f} ms")
