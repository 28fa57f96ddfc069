"""The numerics report of `python -m fp4gemm`: quantization SQNR and GEMM error of every mode."""
from __future__ import annotations

import math
import platform
import time

import torch

from . import _C
from .hadamard import Hadamard
from .gemm import gemm
from .quantize import quantize

# (label, fmt, quantize kwargs) — the modes the recipes use, plus each scale rule on its own.
MODES = [
    ("mxfp4 floor rtn", "mxfp4", dict()),
    ("mxfp4 rceil rtn", "mxfp4", dict(scale_rule="rceil")),
    ("mxfp4 even rtn", "mxfp4", dict(scale_rule="even")),
    ("mxfp4 quest rtn + RHT32 (Quartet fwd)", "mxfp4", dict(scale_rule="quest", hadamard=32)),
    ("mxfp4 floor sr", "mxfp4", dict(rounding="sr")),
    ("mxfp4 floor sr 3/4 (Tseng, no RHT)", "mxfp4", dict(rounding="sr", prescale=True)),
    ("mxfp4 floor rtn + RHT64", "mxfp4", dict(hadamard=64)),
    ("mxfp4 floor sr 3/4 + RHT64 (Tseng)", "mxfp4", dict(rounding="sr", prescale=True, hadamard=64)),
    ("nvfp4 te rtn", "nvfp4", dict()),
    ("nvfp4 te sr", "nvfp4", dict(rounding="sr")),
    ("nvfp4 torchao rtn", "nvfp4", dict(scale_rule="torchao")),
    ("nvfp4 te rtn + RHT16", "nvfp4", dict(hadamard=16)),
    ("fp4_row pow2 rtn (Microsoft)", "fp4_row", dict()),
    ("fp4_row amax rtn", "fp4_row", dict(scale_rule="amax")),
    ("fp4_row pow2 sr", "fp4_row", dict(rounding="sr")),
]


def sample(m: int, n: int, k: int, seed: int, device: str):
    """Heavy-tailed activations (Student-t, df=3, a few 20x outlier channels) and Gaussian weights."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(m, k, generator=g, dtype=torch.float64)
    chi = torch.randn(m, k, 3, generator=g, dtype=torch.float64).pow(2).mean(-1)
    x = z / chi.sqrt()                                   # Student-t with 3 degrees of freedom
    outliers = torch.randperm(k, generator=g)[: max(1, k // 256)]
    x[:, outliers] *= 20.0
    w = torch.randn(n, k, generator=g, dtype=torch.float64) * 0.02
    return x.to(torch.bfloat16).to(device), w.to(torch.bfloat16).to(device)


def rotate(x: torch.Tensor, h: Hadamard | None) -> torch.Tensor:
    """x (float64) in the basis the quantizer saw: blockwise (x . s) H_g / sqrt(g)."""
    if h is None:
        return x
    H = torch.ones(1, 1, dtype=torch.float64)
    while H.shape[0] < h.g:
        H = torch.cat([torch.cat([H, H], 1), torch.cat([H, -H], 1)], 0)
    s = torch.tensor(h.sign_list(), dtype=torch.float64)
    xb = x.reshape(*x.shape[:-1], -1, h.g) * s
    return (xb @ H / math.sqrt(h.g)).reshape(x.shape)


def sqnr_db(ref: torch.Tensor, approx: torch.Tensor) -> float:
    err = (ref - approx).pow(2).sum()
    return float("inf") if err == 0 else 10 * math.log10(float(ref.pow(2).sum() / err))


def run(m: int = 256, n: int = 256, k: int = 1024, seed: int = 0, device: str = "cpu") -> list[dict]:
    x, w = sample(m, n, k, seed, device)
    ref = x.double().cpu() @ w.double().cpu().t()
    rows = []
    for label, fmt, kw in MODES:
        h = Hadamard(kw["hadamard"], seed=seed + 1) if kw.get("hadamard") else None
        kw = dict(kw, hadamard=h)
        if kw.get("rounding") == "sr":
            kw["seed"] = seed + 2
        t0 = time.perf_counter()
        qx = quantize(x, fmt, **kw)
        qw = quantize(w, fmt, **dict(kw, seed=kw.get("seed", 0) + 1))
        y = gemm(qx, qw, out_dtype=torch.float32)
        dt = time.perf_counter() - t0
        y = y.double().cpu()
        rows.append(dict(mode=label, sqnr_x=sqnr_db(rotate(x.double().cpu(), h), qx.dequantize().double().cpu()),
                         sqnr_w=sqnr_db(rotate(w.double().cpu(), h), qw.dequantize().double().cpu()),
                         gemm_rel_err=float((y - ref).norm() / ref.norm()), seconds=dt))
    return rows


def environment(device: str) -> str:
    lines = [f"fp4gemm {__import__('fp4gemm').__version__} | torch {torch.__version__} | python {platform.python_version()}"]
    lines.append(f"CUDA kernels usable: {'yes' if _C.cuda_available() else 'no'}"
                 f" | GPU: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'} | running on: {device}")
    return "\n".join(lines)


def main(m: int, n: int, k: int, seed: int, device: str) -> None:
    print(environment(device))
    print(f"sample: X [{m}x{k}] Student-t(3) with {max(1, k // 256)} outlier channels x20 (bf16), "
          f"W [{n}x{k}] N(0, 0.02^2) (bf16); reference: float64 X W^T")
    rows = run(m, n, k, seed, device)
    w = max(len(r["mode"]) for r in rows)
    print(f"\n{'mode':<{w}}  {'SQNR X dB':>9}  {'SQNR W dB':>9}  {'GEMM rel err':>12}  {'time s':>7}")
    print("-" * (w + 45))
    for r in rows:
        print(f"{r['mode']:<{w}}  {r['sqnr_x']:9.2f}  {r['sqnr_w']:9.2f}  {r['gemm_rel_err']:12.4e}  {r['seconds']:7.3f}")
    print("\nSQNR is measured in the basis the quantizer saw (after the RHT, if any); GEMM error is the "
          "product of the two quantized operands against float64.")
