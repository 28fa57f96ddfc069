"""Where one fp4gemm.matmul call's GPU time goes: each kernel's time per call, beside torch.matmul.

    python bench/profile_matmul.py [--shapes 8192x8192x8192,16384x4096x4096] [--fmts mxfp4,nvfp4]
"""
import argparse

import torch
from torch.profiler import ProfilerActivity, profile

import fp4gemm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="8192x8192x8192,16384x4096x4096,128x8192x8192")
    p.add_argument("--fmts", default="mxfp4,nvfp4")
    p.add_argument("--calls", type=int, default=10)
    a = p.parse_args()
    torch.manual_seed(0)
    for shape in a.shapes.split(","):
        m, n, k = (int(v) for v in shape.split("x"))
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        runs = {"torch bf16": lambda: x @ w.t()}
        for fmt in a.fmts.split(","):
            runs[fmt] = lambda fmt=fmt: fp4gemm.matmul(x, w.t(), fmt=fmt)
        for name, fn in runs.items():
            for _ in range(3):
                fn()
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(a.calls):
                    fn()
                torch.cuda.synchronize()
            kernels = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
            total = sum(e.self_device_time_total for e in kernels) / a.calls
            print(f"{shape} {name}: {total / 1e3:.3f} ms of kernels per call", flush=True)
            for e in sorted(kernels, key=lambda e: -e.self_device_time_total):
                print(f"    {e.self_device_time_total / a.calls / 1e3:7.3f} ms  {e.count // a.calls:3d}x  {e.key[:100]}")


if __name__ == "__main__":
    main()
