"""How close each way of running an MXFP4 GEMM on Hopper comes to the float64 result (a probe, not a test).

For one shape and input kind, prints the fraction of bf16 outputs correctly rounded and the median fp32
relative error of: fp4gemm.gemm; cuBLAS FP8 (torch._scaled_mm) on the same folded E4M3 operands with
and without fast accumulation; cuBLAS BF16 on the folded values (exact in bf16) with fp32 output.
    python bench/accuracy_probe.py --shape 4096x4096x4096 --kind outliers
"""
from __future__ import annotations

import argparse

import torch

import fp4gemm


def inputs(kind, m, n, k):
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(m, k, device="cuda", generator=g)
    b = torch.randn(n, k, device="cuda", generator=g)
    if kind == "outliers":
        a[:, torch.randperm(k, device="cuda", generator=g)[:8]] *= 100.0
    return a.bfloat16(), b.bfloat16()


def fold(q):
    """(E4M3 operand, 2^beta per row) with beta = largest exponent of a nonzero block - 6."""
    x = q.dequantize().double()
    e = q.scale_bytes().view(torch.uint8).int() - 127
    nonzero = x.view(x.shape[0], -1, 32).abs().amax(-1) > 0
    beta = torch.where(nonzero, e, torch.full_like(e, -1000)).amax(-1) - 6
    s = torch.ldexp(torch.ones_like(beta, dtype=torch.float64), beta)[:, None]
    f = (x / s).float().to(torch.float8_e4m3fn)
    assert torch.equal(f.double() * s, x), "a block outside the window"
    return f, s.float()


def bf16_round(x: torch.Tensor) -> torch.Tensor:
    """Correct rounding float64 -> bf16 via round-to-odd fp32 (no double rounding)."""
    t = x.float()
    over = t.double().abs() > x.abs()
    bits = t.view(torch.int32) - over.int()   # truncate toward zero
    t = bits.view(torch.float32)
    inexact = t.double() != x
    return (t.view(torch.int32) | inexact.int()).view(torch.float32).bfloat16()


def report(name, d, want):
    if d.dtype == torch.bfloat16:
        ok = (d == bf16_round(want)).double().mean().item()
        print(f"{name:44s} bf16 correctly rounded {100 * ok:.4f} %")
    else:
        rel = ((d.double() - want).abs() / want.abs()).median().item()
        print(f"{name:44s} fp32 median rel err 2^{torch.tensor(rel).log2().item():.1f}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="4096x4096x4096")
    p.add_argument("--kind", default="outliers")
    args = p.parse_args()
    m, n, k = (int(v) for v in args.shape.split("x"))
    a, b = inputs(args.kind, m, n, k)
    qa, qb = fp4gemm.quantize(a), fp4gemm.quantize(b)
    want = qa.dequantize().double() @ qb.dequantize().double().T
    print(f"{args.shape} {args.kind}")
    for mma in ("fp8", "bf16"):
        for dt in (torch.bfloat16, torch.float32):
            report(f"fp4gemm.gemm mma={mma} -> {dt}", fp4gemm.gemm(qa, qb, out_dtype=dt, mma=mma), want)
    fa, sa = fold(qa)
    fb, sb = fold(qb)
    for fast in (False, True):
        for dt in (torch.bfloat16, torch.float32):
            d = torch._scaled_mm(fa, fb.t(), scale_a=sa, scale_b=sb.t().contiguous(), out_dtype=dt,
                                 use_fast_accum=fast)
            report(f"cuBLAS FP8 rowwise fast_accum={fast} -> {dt}", d, want)
    try:  # BF16 tensor cores with an fp32 output (torch >= 2.9)
        d32 = torch.mm(fa.to(torch.bfloat16), fb.to(torch.bfloat16).t(), out_dtype=torch.float32)
        d = d32.double() * sa.double() * sb.double().t()
        report("cuBLAS BF16 on folded values, fp32 out -> bf16", bf16_round(d), want)
        report("cuBLAS BF16 on folded values, fp32 out", d.float(), want)
    except (TypeError, RuntimeError) as e:
        print("torch.mm out_dtype unavailable:", e)
    torch.backends.cuda.matmul.allow_tf32 = False
    d = (fa.float() @ fb.float().t()).double() * sa.double() * sb.double().t()
    report("cuBLAS SGEMM (no TF32) on folded values -> bf16", bf16_round(d), want)

if __name__ == "__main__":
    main()
