"""The MicrosoftFP4 recipe's pieces (Wang et al., ICML 2025; MS-AMP's FP4 code): the Differentiable
Gradient Estimator, Outlier Clamping and Compensation, and the layer's forward / backward.

The forward GEMM is fp4gemm's per-row FP4 GEMM (exact, tensor cores on Hopper); the residual and the
backward GEMMs run in high precision, as in the paper's simulation. Choices: docs/numerics.md.
"""
from __future__ import annotations

from typing import Optional

import torch

from .config import resolve_rule
from .gemm import gemm_trusted
from .ops import dequantize_native
from .quantize import quantize_trusted

Tensor = torch.Tensor


def dge_derivative(x: Tensor, k: float = 5.0, cap: float = 3.0) -> Tensor:
    """f'(x) of the DGE on the E2M1 grid, in fp32: on a grid interval of width d (0.5 on [0, 2), 1 on
    [2, 4), 2 on [4, 6]) with t = |x| - its left end, f'(x) = |2t/d - 1|^(1/k - 1) / k, capped at
    `cap` (the midpoint gives +inf before the cap); 1/k at grid points. Even in x; |x| > 6 is taken
    as 6 (scaled weights never exceed it)."""
    a = x.float().abs().clamp(max=6.0)
    width = torch.where(a < 2.0, 0.5, torch.where(a < 4.0, 1.0, 2.0))
    left = torch.where(a < 2.0, torch.floor(a * 2.0) * 0.5, torch.where(a < 4.0, torch.floor(a), 4.0))
    u = (2.0 * (a - left) / width - 1.0).abs()
    return (u.pow(1.0 / k - 1.0) / k).clamp(max=cap)


def occ_clamp(x: Tensor, q: float) -> tuple[Tensor, Tensor]:
    """Clamp each row of x [T, K] to its [1 - q, q] quantile values, as MS-AMP: the ascending order
    statistics at indices int((1 - q) K) and int(q K), no interpolation. Returns (clamped x in x's
    dtype, fp32 residual x - clamped)."""
    K = x.shape[1]
    n_hi, n_lo = K - int(q * K), int((1.0 - q) * K) + 1
    hi = x.topk(n_hi, dim=1).values[:, -1:]
    lo = x.topk(n_lo, dim=1, largest=False).values[:, -1:]
    xc = torch.minimum(torch.maximum(x, lo), hi)
    return xc, x.float() - xc.float()


def forward(x2: Tensor, w: Tensor, bias: Optional[Tensor], r) -> tuple[Tensor, list[Tensor]]:
    m, spec = r.microsoft, r.forward
    xc, residual = occ_clamp(x2, m.quantile) if m.quantile is not None else (x2, None)
    # Called inside fp4gemm::linear: the kernels directly, no custom-op round trips (fp4gemm/ops.py).
    qx = quantize_trusted(xc, spec.a.fmt, resolve_rule(spec.a.fmt, spec.a.scale_rule), "rtn")
    qw = quantize_trusted(w, spec.b.fmt, resolve_rule(spec.b.fmt, spec.b.scale_rule), "rtn")
    y = gemm_trusted(qx, qw, out_dtype=torch.float32, mma=r.mma)
    x_eff, wq = (dequantize_native(q.codes(), q.scale, None, q.fmt, q.scale_rule, 1.0) for q in (qx, qw))
    if m.compensate:
        # The residual (~2(1 - q) dense) times the quantized weight (MS-AMP's choice), in the input
        # dtype on tensor cores: at 2 % density a dense GEMM beats sparse kernels by far (torch's CSR
        # SpMM took 40 ms where this takes 0.8 ms on an H100; docs/benchmarks.md).
        y = y + (residual.to(x2.dtype) @ wq.to(x2.dtype).t()).float()
        x_eff = x_eff + residual
    if bias is not None:
        y = y + bias.float()
    # Backward reuses the forward-quantized operands (no re-quantization), and w's row scales for DGE.
    return y.to(x2.dtype), [x_eff.to(x2.dtype), wq.to(w.dtype), qw.scale.float().reshape(-1)]


def saved_fake(x2: Tensor, w: Tensor, r) -> list[Tensor]:
    return [x2.new_empty(x2.shape), w.new_empty(w.shape), w.new_empty(w.shape[0], dtype=torch.float32)]


def backward(dy: Tensor, saved: list[Tensor], r, x_dtype, w_dtype, need_dx: bool, need_dw: bool):
    w, x_eff, wq, w_scale = saved
    m = r.microsoft
    dx = (dy @ wq.to(dy.dtype)).to(x_dtype) if need_dx else None   # straight through clamp and Q
    dw = None
    if need_dw:
        dw = dy.t() @ x_eff.to(dy.dtype)
        if m.dge_k is not None:   # DGE: dL/dw = dL/dQ(w) * f'(w / s), w / s exact (s a power of two)
            dw = dw.float() * dge_derivative(w.float() / w_scale[:, None], m.dge_k, m.dge_cap)
        dw = dw.to(w_dtype)
    return dx, dw
