"""A GEMM whose D is quantized (fp4gemm.gemm_quantized) against the same GEMM writing bf16 D and
against its two-step form (fp32 D, then fp4gemm.quantize), in one run. Operands are quantized once,
outside the timing; GPU time from CUDA-graph replay (bench/timing.py). Prints a markdown table.
    python bench/bench_gemm_quantized.py [--shapes 8192x8192x8192,16384x4096x4096]
"""
from __future__ import annotations

import argparse

import torch

import fp4gemm
import timing  # bench/timing.py, beside this script

MODES = [  # (label, fmt, quantization arguments of D)
    ("mxfp4 RTN", "mxfp4", dict()),
    ("mxfp4 SR RHT64", "mxfp4", dict(rounding="sr", hadamard=64, seed=1)),
    ("nvfp4 RTN, amax given", "nvfp4", dict(amax=True)),
]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shapes", default="8192x8192x8192,16384x4096x4096,16384x11008x4096")
    args = p.parse_args()
    ms = lambda fn: timing.graph_time_ms(fn, calls=10, reps=7, warmup=3)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print("| M x N x K | D | ops | gemm bf16 ms | fp32 + quantize ms | quantized D ms | vs bf16 | vs two-step |")
    print("|---|---|---|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        m, n, k = (int(v) for v in shape.split("x"))
        g = torch.Generator(device="cuda").manual_seed(0)
        a = torch.randn(m, k, device="cuda", generator=g, dtype=torch.bfloat16)
        b = torch.randn(n, k, device="cuda", generator=g, dtype=torch.bfloat16)
        for label, fmt, kw in MODES:
            op_fmt = "nvfp4" if fmt == "nvfp4" else "mxfp4"
            qa, qb = fp4gemm.quantize(a, op_fmt), fp4gemm.quantize(b, op_fmt)
            kw = dict(kw)
            if kw.get("amax"):
                kw["amax"] = fp4gemm.gemm(qa, qb, out_dtype=torch.float32).abs().max().reshape(())
            two_kw = {k2: v for k2, v in kw.items()}
            t_bf16 = ms(lambda: fp4gemm.gemm(qa, qb, out_dtype=torch.bfloat16))
            t_two = ms(lambda: fp4gemm.quantize(fp4gemm.gemm(qa, qb, out_dtype=torch.float32), fmt, **two_kw))
            t_q = ms(lambda: fp4gemm.gemm_quantized(qa, qb, fmt, **kw))
            print(f"| {shape} | {label} | {op_fmt} | {t_bf16:.3f} | {t_two:.3f} | {t_q:.3f} | "
                  f"{t_bf16 / t_q:.2f}x | {t_two / t_q:.2f}x |")


if __name__ == "__main__":
    main()
