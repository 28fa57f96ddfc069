"""fp4gemm.nn.Linear forward + backward per recipe against torch.nn.Linear in BF16, same run (issue 6).

Each step: y = lin(x) (x bf16 [tokens, in], requires grad), y.backward(dy). Time = median of
back-to-back steps (CUDA events, bench/timing.py). "GPU time by kernel class" splits one step's
device time (torch profiler) into quantize, fold, FP4 GEMM, other GEMMs and the rest.
    python bench/bench_training.py [--shapes 16384x4096x4096,16384x4096x11008]   (tokens x in x out)
"""
from __future__ import annotations

import argparse
import warnings

import torch

import fp4gemm
import timing  # bench/timing.py, beside this script

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
SHAPES = "16384x4096x4096,16384x4096x11008"
CLASSES = (("quantize", ("quantize_tile", "quantize_rows", "quantize_rowblocks")), ("fold", ("fold_kernel", "finish_operand_a")),
           ("fp4 gemm", ("cutlass", "device_kernel", "special_rows")), ("torch gemm", ("gemm", "sm90_xmma", "nvjet")))


def step_fn(lin, x, dy):
    def step():
        xg = x.detach().requires_grad_()
        lin.weight.grad = None
        lin(xg).backward(dy)
    return step


def breakdown(step) -> dict:
    step()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    out = {c: 0.0 for c, _ in CLASSES} | {"other": 0.0}
    for e in prof.key_averages():
        t = e.device_time_total / 1000.0
        if t <= 0:
            continue
        for c, keys in CLASSES:
            if any(k in e.key for k in keys):
                out[c] += t
                break
        else:
            out["other"] += t
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shapes", default=SHAPES)
    p.add_argument("--recipes", default="tseng,nvfp4,quartet,microsoft")
    args = p.parse_args()
    torch.manual_seed(0)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    for shape in args.shapes.split(","):
        T, K, N = (int(v) for v in shape.split("x"))
        x = torch.randn(T, K, device="cuda", dtype=torch.bfloat16)
        dy = torch.randn(T, N, device="cuda", dtype=torch.bfloat16)
        ref = torch.nn.Linear(K, N, device="cuda", dtype=torch.bfloat16)
        base = timing.time_ms(step_fn(ref, x, dy), calls=10, reps=5, warmup=3)
        print(f"\n### {T} tokens x {K} -> {N}\n")
        print("| recipe | ms / step | vs torch BF16 | GPU ms: quantize | fold | fp4 gemm | torch gemm | other |")
        print("|---|---|---|---|---|---|---|---|")
        print(f"| torch BF16 nn.Linear | {base:.3f} | 1.00x | | | | | |")
        for name in args.recipes.split(","):
            lin = fp4gemm.nn.Linear.from_linear(ref, fp4gemm.recipes.RECIPES[name]())
            step = step_fn(lin, x, dy)
            ms = timing.time_ms(step, calls=10, reps=5, warmup=3)
            b = breakdown(step)
            cells = " | ".join(f"{b[c]:.3f}" for c in ("quantize", "fold", "fp4 gemm", "torch gemm", "other"))
            print(f"| {name} | {ms:.3f} | {base / ms:.2f}x | {cells} |")


if __name__ == "__main__":
    main()
