"""Host time of one fp4gemm.linear forward + backward per recipe, at a size where the GPU idles.

A small model's FP4 training step is bound by the Python and dispatch work of the linear layer, not
by its kernels (docs/training.md). This times a 256-token, 512 -> 512 layer in a loop: the GPU work
per call is a few microseconds, so the time per call is the host's. Same run: torch's own nn.Linear.

    python3 bench/host_overhead.py [--tokens 256] [--dim 512] [--iters 300] [--profile tseng-rht-sr]

--profile RECIPE: also print cProfile's top functions (own time) for that recipe's loop.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import torch

import fp4gemm

RECIPES = {"tseng-plain": lambda: fp4gemm.Tseng(False, False), "tseng-rht-sr": fp4gemm.Tseng,
           "quartet": fp4gemm.Quartet, "nvfp4": fp4gemm.NVFP4, "microsoft": fp4gemm.MicrosoftFP4}


def per_call_ms(fn, iters: int, device) -> float:
    for _ in range(10):
        fn()
    torch.cuda.synchronize(device) if device.type == "cuda" else None
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize(device) if device.type == "cuda" else None
    return (time.perf_counter() - t0) / iters * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--profile", default=None, help="a recipe name: print its host profile")
    a = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x = torch.randn(a.tokens, a.dim, device=device, dtype=torch.bfloat16, requires_grad=True)
    ref = torch.nn.Linear(a.dim, a.dim, bias=False, device=device, dtype=torch.bfloat16)

    def step(layer):
        return lambda: layer(x).sum().backward()

    base = per_call_ms(step(ref), a.iters, device)
    print(f"{'recipe':>14} {'ms / fwd+bwd':>13} {'vs nn.Linear':>13}")
    print(f"{'nn.Linear':>14} {base:13.3f} {1.0:12.1f}x")
    for name, make in RECIPES.items():
        layer = fp4gemm.nn.Linear(a.dim, a.dim, bias=False, recipe=make(), device=device, dtype=torch.bfloat16)
        ms = per_call_ms(step(layer), a.iters, device)
        print(f"{name:>14} {ms:13.3f} {ms / base:12.1f}x")
        if name == a.profile:
            prof = cProfile.Profile()
            prof.runcall(per_call_ms, step(layer), a.iters, device)
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
