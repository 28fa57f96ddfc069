"""Bandwidth of the GPU quantization kernels against a device-to-device copy of the same bytes.

Bytes moved = input read once + every output written (codes, scales, masks). The copy baseline moves
the same number of bytes (read + write) in the same run. Kernel time = CUDA-graph replay (the issue's
bandwidth); "eager" = back-to-back Python calls, host cost included. Prints a markdown table.
    python bench/bench_quantize.py [--shapes 16384x4096,8192x8192,65536x4096] [--modes row+col]
(--modes: only the modes whose label contains it; FP4GEMM_QUANTIZE_KERNEL=lanes for the lane / tile
kernels instead of the block kernels.)
"""
from __future__ import annotations

import argparse

import torch

import fp4gemm
import timing  # bench/timing.py, beside this script

MODES = [  # (label, fmt, kwargs); the targets: RTN+RHT<=128 rowwise >= 0.85x, SR+RHT row+col >= 0.75x
    ("mxfp4 floor RTN rowwise", "mxfp4", dict()),
    ("mxfp4 floor RTN RHT16 rowwise", "mxfp4", dict(hadamard=fp4gemm.Hadamard(16, seed=1))),
    ("mxfp4 floor RTN RHT32 rowwise", "mxfp4", dict(hadamard=fp4gemm.Hadamard(32, seed=1))),
    ("mxfp4 floor RTN RHT64 rowwise", "mxfp4", dict(hadamard=fp4gemm.Hadamard(64, seed=1))),
    ("mxfp4 floor RTN RHT128 rowwise", "mxfp4", dict(hadamard=fp4gemm.Hadamard(128, seed=1))),
    ("mxfp4 quest RHT32 rowwise+mask", "mxfp4", dict(scale_rule="quest", hadamard=32, clip_mask=True)),
    ("mxfp4 SR 3/4 RHT64 row+col (Tseng)", "mxfp4",
     dict(rounding="sr", prescale=True, hadamard=fp4gemm.Hadamard(64, seed=1), columnwise=True, seed=1)),
    ("mxfp4 SR RHT256 row+col", "mxfp4", dict(rounding="sr", hadamard=fp4gemm.Hadamard(256, seed=1), columnwise=True, seed=1)),
    ("mxfp4 RTN row+col", "mxfp4", dict(columnwise=True)),
    ("mxfp4 RTN RHT64 row+col", "mxfp4", dict(hadamard=fp4gemm.Hadamard(64, seed=1), columnwise=True)),
    ("nvfp4 TE RTN rowwise", "nvfp4", dict()),
    ("nvfp4 TE RTN rowwise, amax given", "nvfp4", dict(amax="given")),
    ("nvfp4 TE RTN RHT16 rowwise, amax given", "nvfp4", dict(amax="given", hadamard=fp4gemm.Hadamard(16, signs=fp4gemm.TE_RHT_SIGNS))),
    ("nvfp4 2D RTN row+col (weights)", "nvfp4", dict(block_2d=True, columnwise=True)),
    ("nvfp4 SR RHT16(col) row+col (TE wgrad)", "nvfp4",
     dict(rounding="sr", columnwise=True, columnwise_hadamard=fp4gemm.Hadamard(16, signs=fp4gemm.TE_RHT_SIGNS), seed=1)),
    ("nvfp4 SR RHT16(col) row+col (TE wgrad), amax given", "nvfp4",
     dict(rounding="sr", columnwise=True, columnwise_hadamard=fp4gemm.Hadamard(16, signs=fp4gemm.TE_RHT_SIGNS), seed=1,
          amax="given")),
    ("fp4_row pow2 RTN rowwise", "fp4_row", dict()),
]


def time_ms(fn) -> float:
    return timing.time_ms(fn, calls=20, reps=7, warmup=3)


def graph_ms(fn) -> float:
    return timing.graph_time_ms(fn, calls=20, reps=7, warmup=3)


def out_bytes(q) -> int:
    n = 0
    for part in (q, q.columnwise):
        if part is None:
            continue
        n += part.qdata.numel() + part.scale.numel() * part.scale.element_size()
        n += part.clip_mask.numel() if part.clip_mask is not None else 0
    return n


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shapes", default="16384x4096,8192x8192,65536x4096")
    p.add_argument("--modes", default="")
    args = p.parse_args()
    print(f"device: {torch.cuda.get_device_name()} | torch {torch.__version__}")
    print("| shape | mode | kernel ms | GB/s | copy GB/s | ratio | eager ms |\n|---|---|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        R, C = map(int, shape.split("x"))
        xs = [torch.randn(R, C, device="cuda", dtype=torch.bfloat16) for _ in range(2)]  # rotate: > L2
        for label, fmt, kw in MODES:
            if args.modes not in label:
                continue
            kw = dict(kw)
            if kw.get("amax") == "given":
                kw["amax"] = xs[0].abs().amax().float()
            i = [0]

            def run():
                i[0] ^= 1
                return fp4gemm.quantize(xs[i[0]], fmt, **kw)
            q = run()
            nbytes = xs[0].numel() * 2 + out_bytes(q)
            src = torch.empty(nbytes // 2, dtype=torch.uint8, device="cuda")
            dst = torch.empty_like(src)
            t_copy = graph_ms(lambda: dst.copy_(src))
            t = graph_ms(run)
            t_eager = time_ms(run)
            bw, bw_copy = nbytes / t / 1e6, nbytes / t_copy / 1e6
            print(f"| {shape} | {label} | {t:.3f} | {bw:.0f} | {bw_copy:.0f} | {bw / bw_copy:.2f} | {t_eager:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
