"""TFLOP/s of the Hopper FP4 GEMMs against torch's FP8 and BF16 GEMMs in the same run (issue 4's shapes, M x N x K).

Rows of the table:
  fp4gemm mxfp4 / nvfp4   fp4gemm.gemm on pre-quantized operands: fold A + fold B + tensor-core GEMM
                          + the (empty) fixup launch. "kernel" = the CUTLASS GEMM kernel alone (profiler).
  _scaled_mm FP8 rowwise  torch._scaled_mm, E4M3, fp32 row/column scales, use_fast_accum=False, bf16 out
  torch BF16              a @ w.t()
  matmul e2e              fp4gemm.matmul(a, w.t()) bf16 -> bf16, both operands quantized inside
    python bench/bench_gemm.py [--shapes 8192x8192x8192,...]
"""
from __future__ import annotations

import argparse

import torch

import fp4gemm
import timing  # bench/timing.py, beside this script

SHAPES = "8192x8192x8192,16384x4096x4096,16384x11008x4096,4096x4096x16384,128x8192x8192,1x8192x8192"


def time_ms(fn) -> float:
    return timing.time_ms(fn, calls=10, reps=5, warmup=2)


def kernel_ms(fn, match: str) -> float:
    """Device time per call of the kernels whose name contains `match` (torch profiler)."""
    fn()
    torch.cuda.synchronize()
    calls = 5
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    total = sum(e.device_time_total for e in prof.key_averages() if match in e.key and e.device_time_total > 0)
    return total / calls / 1000.0


def sweep(shapes: str):
    """Kernel TFLOP/s of each tile config and scheduler swizzle (the dispatch heuristic's evidence)."""
    import os
    print("| M x N x K | operands | tile | swizzle 1 | 2 | 4 | 8 |\n|---|---|---|---|---|---|---|")
    for shape in shapes.split(","):
        M, N, K = (int(v) for v in shape.split("x"))
        a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)
        for fmt, mma in (("mxfp4", "fp8"), ("nvfp4", "bf16")):
            qa, qw = fp4gemm.quantize(a, fmt), fp4gemm.quantize(w, fmt)
            for tile in ("large", "small"):
                os.environ["FP4GEMM_SM90_TILE"] = tile
                cells = []
                for sw in (1, 2, 4, 8):
                    os.environ["FP4GEMM_SM90_SWIZZLE"] = str(sw)
                    ms = kernel_ms(lambda: fp4gemm.gemm(qa, qw, mma=mma), "cutlass")
                    cells.append(f"{2.0 * M * N * K / (ms * 1e-3) / 1e12:.0f}")
                print(f"| {shape} | {mma} | {tile} | " + " | ".join(cells) + " |", flush=True)
        os.environ.pop("FP4GEMM_SM90_TILE"); os.environ.pop("FP4GEMM_SM90_SWIZZLE")
        del a, w
        torch.cuda.empty_cache()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shapes", default=SHAPES)
    p.add_argument("--sweep", action="store_true", help="tile x swizzle table instead of the baselines")
    args = p.parse_args()
    if args.sweep:
        return sweep(args.shapes)
    torch.manual_seed(0)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}\n")
    print("| M x N x K | mxfp4 call | mxfp4 kernel | nvfp4 call | nvfp4 kernel | _scaled_mm FP8 rowwise | torch BF16 "
          "| mxfp4 kernel / _scaled_mm | nvfp4 kernel / torch BF16 | matmul e2e (mxfp4) / BF16 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        M, N, K = (int(v) for v in shape.split("x"))
        tflops = lambda ms: 2.0 * M * N * K / (ms * 1e-3) / 1e12
        a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)
        row = {}
        for fmt in ("mxfp4", "nvfp4"):
            qa, qw = fp4gemm.quantize(a, fmt), fp4gemm.quantize(w, fmt)
            call = lambda: fp4gemm.gemm(qa, qw)
            row[fmt] = (tflops(time_ms(call)), tflops(kernel_ms(call, "cutlass")))
            del qa, qw
        a8, w8 = a.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn)
        sa = torch.ones(M, 1, device="cuda", dtype=torch.float32)
        sw = torch.ones(1, N, device="cuda", dtype=torch.float32)
        fp8 = tflops(time_ms(lambda: torch._scaled_mm(a8, w8.t(), scale_a=sa, scale_b=sw, out_dtype=torch.bfloat16,
                                                     use_fast_accum=False)))
        bf16_ms = time_ms(lambda: a @ w.t())
        e2e_ms = time_ms(lambda: fp4gemm.matmul(a, w.t(), fmt="mxfp4"))
        print(f"| {M}x{N}x{K} | {row['mxfp4'][0]:.0f} | {row['mxfp4'][1]:.0f} | {row['nvfp4'][0]:.0f} "
              f"| {row['nvfp4'][1]:.0f} | {fp8:.0f} | {tflops(bf16_ms):.0f} | {row['mxfp4'][1] / fp8:.2f} "
              f"| {row['nvfp4'][1] / tflops(bf16_ms):.2f} | {bf16_ms / e2e_ms:.2f} |", flush=True)
        del a, w, a8, w8
        torch.cuda.empty_cache()
    print("\nTFLOP/s = 2MNK / time. call: the whole fp4gemm.gemm (folds + GEMM + fixup launch); kernel: the "
          "CUTLASS GEMM kernel alone. _scaled_mm: rowwise fp32 scales, use_fast_accum=False.")


if __name__ == "__main__":
    main()
