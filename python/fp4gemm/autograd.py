"""fp4gemm.linear: y = x wᵀ + b with each of its three GEMMs quantized as a Recipe says.

Random streams. Each backward call draws one base seed from torch's default generator (so
torch.manual_seed reproduces a run) and derives its six seeds as seed_k = (base + k * 0x9E3779B97F4A7C15)
mod 2^62: k = 0 dgrad Hadamard signs, 1 / 2 dgrad SR of a / b, 3 wgrad Hadamard signs, 4 / 5 wgrad SR
of a / b. Fresh signs per backward GEMM, the same on both operands of that GEMM (Tseng et al.).
"""
from __future__ import annotations

from typing import Optional

import torch

from .gemm import gemm
from .hadamard import Hadamard, hadamard_transform
from .quantize import fresh_seed, quantize
from .recipes import BF16, Gemm, Operand, Recipe

_GOLDEN = 0x9E3779B97F4A7C15


def derive_seed(base: int, k: int) -> int:
    return (base + k * _GOLDEN) % 2**62


def _hadamard(spec: Gemm, seed: int) -> Optional[Hadamard]:
    if not spec.hadamard:
        return None
    if spec.signs is not None:
        return Hadamard(spec.hadamard, signs=spec.signs)
    return Hadamard(spec.hadamard, seed=seed)


def _quantize(t: torch.Tensor, op: Operand, h, seed: int, columnwise: bool, clip_mask: bool = False):
    """Quantize t along its last dimension, or (columnwise) t.reshape(-1, K).T along its first."""
    kw = dict(fmt=op.fmt, scale_rule=op.scale_rule, rounding=op.rounding, prescale=op.prescale,
              block_2d=op.block_2d, hadamard=h, seed=seed, clip_mask=clip_mask)
    if columnwise:
        return quantize(t, rowwise=False, columnwise=True, **kw)
    return quantize(t, **kw)


def _qgemm(spec: Gemm, a: torch.Tensor, a_cols: bool, b: torch.Tensor, b_cols: bool, seeds: tuple,
           out_dtype: torch.dtype, mma: str) -> torch.Tensor:
    """a_q · b_qᵀ with a (or aᵀ if a_cols) and b (or bᵀ) quantized along the shared reduction dim."""
    h = _hadamard(spec, seeds[0])
    qa = _quantize(a, spec.a, h, seeds[1], a_cols)
    qb = _quantize(b, spec.b, h, seeds[2], b_cols)
    return gemm(qa, qb, out_dtype=out_dtype, mma=mma)


def _mask(q) -> torch.Tensor:
    """QuEST clip mask bits [rows, K/8] -> fp32 keep-mask [rows, K] (1 where not clipped)."""
    bits = q.clip_mask.reshape(q.clip_mask.shape[0], -1)
    shifts = torch.arange(8, device=bits.device, dtype=torch.uint8)
    clipped = (bits.unsqueeze(-1) >> shifts) & 1
    return (1 - clipped.reshape(bits.shape[0], -1)).float()


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x2, w, bias, recipe: Recipe):
        ctx.recipe, ctx.has_bias = recipe, bias is not None
        ctx.x_dtype, ctx.w_dtype = x2.dtype, w.dtype
        spec = recipe.forward
        if spec is None:
            y = torch.nn.functional.linear(x2, w.to(x2.dtype), None if bias is None else bias.to(x2.dtype))
            ctx.save_for_backward(x2, w)
            return y
        h = _hadamard(spec, fresh_seed() if spec.hadamard and spec.signs is None else 0)
        seed = lambda op: fresh_seed() if op.rounding == "sr" else 0  # RTN draws nothing
        qx = _quantize(x2, spec.a, h, seed(spec.a), False, clip_mask=recipe.quest_forward)
        qw = _quantize(w, spec.b, h, seed(spec.b), False, clip_mask=recipe.quest_forward)
        y = gemm(qx, qw, bias=bias, out_dtype=x2.dtype, mma=recipe.mma)
        if recipe.quest_forward:
            # Backward runs on the forward-quantized operands (Hadamard basis) and their clip masks.
            xq, wq = qx.dequantize(), qw.dequantize()
            ctx.save_for_backward(xq, wq, _mask(qx), _mask(qw))
            ctx.hadamard = h
        else:
            ctx.save_for_backward(x2, w)
        return y

    @staticmethod
    def backward(ctx, dy):
        recipe: Recipe = ctx.recipe
        saved = ctx.saved_tensors
        x2, w = saved[0], saved[1]
        # Quartet's gradients are masked and rotated in fp32 before the final rounding.
        x_dtype = torch.float32 if recipe.quest_forward else ctx.x_dtype
        w_dtype = torch.float32 if recipe.quest_forward else ctx.w_dtype
        dy = dy.contiguous()
        base = fresh_seed() if (recipe.dgrad or recipe.wgrad) else 0
        seeds = [derive_seed(base, k) for k in range(6)]
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            if recipe.dgrad is None:
                dx = dy @ w.to(dy.dtype)
            else:  # dx = dy · w: a = dy along N, b = wᵀ along N
                dx = _qgemm(recipe.dgrad, dy, False, w, True, seeds[0:3], x_dtype, recipe.mma)
        if ctx.needs_input_grad[1]:
            if recipe.wgrad is None:
                dw = dy.t() @ x2.to(dy.dtype)
            else:  # dw = dyᵀ · x: a = dyᵀ along T, b = xᵀ along T
                dw = _qgemm(recipe.wgrad, dy, True, x2, True, seeds[3:6], w_dtype, recipe.mma)
        if recipe.quest_forward:  # straight-through the quantizer: clip mask, then undo the Hadamard
            h = ctx.hadamard
            if dx is not None:
                dx = hadamard_transform(dx.float() * saved[2], h)
            if dw is not None:
                dw = hadamard_transform(dw.float() * saved[3], h)
        if dx is not None:
            dx = dx.to(ctx.x_dtype)
        if dw is not None:
            dw = dw.to(ctx.w_dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = dy.sum(0)
        return dx, dw, db, None


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
           recipe: Optional[Recipe] = None) -> torch.Tensor:
    """torch.nn.functional.linear with the recipe's FP4 GEMMs in forward and backward."""
    recipe = recipe or BF16()
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe: expected an fp4gemm Recipe, got {type(recipe).__name__}")
    if weight.dim() != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"weight: shape {tuple(weight.shape)} does not match x's last dimension {x.shape[-1]}")
    x2 = x.reshape(-1, x.shape[-1])
    if not x2.is_contiguous():
        x2 = x2.contiguous()
    y = _Linear.apply(x2, weight.contiguous(), bias, recipe)
    return y.reshape(*x.shape[:-1], weight.shape[0])
