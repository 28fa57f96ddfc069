"""fp4gemm.linear: y = x wᵀ + b with each of its three GEMMs quantized as a Recipe says.

Under torch.compile the layer is two torch.library custom ops, fp4gemm::linear (forward; returns y
and what backward needs) and fp4gemm::linear_backward (dx, dw), tied by register_autograd:
torch.compile(fullgraph=True) traces through them; the recipe travels as its key string (Recipe.key).
In eager mode the same _forward / _backward run under a torch.autograd.Function: the custom-op path
costs ~1 ms more host time per layer forward + backward (docs/training.md), more than the GPU work
of a small layer.

Random streams. Each backward call draws one base seed from torch's default generator (so
torch.manual_seed reproduces a run) and derives its six seeds as seed_k = (base + k * 0x9E3779B97F4A7C15)
mod 2^62: k = 0 dgrad Hadamard signs, 1 / 2 dgrad SR of a / b, 3 wgrad Hadamard signs, 4 / 5 wgrad SR
of a / b. Fresh signs per backward GEMM, the same on both operands of that GEMM (Tseng et al.).
The seeds are drawn when the op runs, also in a compiled graph; a CUDA-graph replay
(mode="reduce-overhead") replays the captured seeds.
"""
from __future__ import annotations

from typing import Optional

import torch

from . import microsoft, ops
from .config import resolve_rule
from .gemm import gemm_trusted
from .hadamard import Hadamard
from .quantize import fresh_seed, quantize_trusted
from .recipes import BF16, Gemm, Operand, Recipe, by_key

_GOLDEN = 0x9E3779B97F4A7C15
Tensor = torch.Tensor


def derive_seed(base: int, k: int) -> int:
    return (base + k * _GOLDEN) % 2**62


def _hadamard(spec: Gemm, seed: int) -> Optional[Hadamard]:
    if not spec.hadamard:
        return None
    if spec.signs is not None:
        return Hadamard(spec.hadamard, signs=spec.signs)
    return Hadamard(spec.hadamard, seed=seed)


def _quantize(t: Tensor, op: Operand, h, seed: int, columnwise: bool, clip_mask: bool = False):
    """Quantize t along its last dimension, or (columnwise) t.reshape(-1, K).T along its first.
    The kernels are called directly: this runs inside the linear custom ops (fp4gemm/ops.py)."""
    return quantize_trusted(t, op.fmt, resolve_rule(op.fmt, op.scale_rule), op.rounding, prescale=op.prescale,
                            block_2d=op.block_2d, h_row=h, h_col=h, rowwise=not columnwise,
                            columnwise=columnwise, seed=seed, clip_mask=clip_mask)


def _qgemm(spec: Gemm, a: Tensor, a_cols: bool, b: Tensor, b_cols: bool, seeds, out_dtype, mma: str,
           bias: Optional[Tensor] = None) -> Tensor:
    """a_q · b_qᵀ (+ bias) with a (or aᵀ if a_cols) and b (or bᵀ) quantized along the shared reduction
    dim, in one native call (the same bytes as _quantize twice and gemm_trusted, with a third of the
    host round trips: docs/training.md). seeds: (Hadamard signs, SR of a, SR of b)."""
    h = _hadamard(spec, seeds[0])
    g, words = (h.g, h.sign_words()) if h else (0, [])

    def cfg(op: Operand, seed: int):
        return ops.quantize_config(op.fmt, resolve_rule(op.fmt, op.scale_rule), op.rounding, op.prescale,
                                   op.block_2d, g, words, seed)
    return ops.qgemm_native(a, a_cols, cfg(spec.a, seeds[1]), b, b_cols, cfg(spec.b, seeds[2]), out_dtype, mma, bias)


def _dequantize(q) -> Tensor:
    return ops.dequantize_native(q.codes(), q.scale_bytes(), q.amax, q.fmt, q.scale_rule, q.global_scale)


def _keep(bits: Tensor) -> Tensor:
    """QuEST clip mask bits [rows, K/8] -> fp32 keep-mask [rows, K] (1 where not clipped)."""
    shifts = torch.arange(8, device=bits.device, dtype=torch.uint8)
    clipped = (bits.unsqueeze(-1) >> shifts) & 1
    return (1 - clipped.reshape(bits.shape[0], -1)).float()


# What backward needs, per recipe kind: which inputs (x2, w), then the new tensors made in forward.
def _kept_inputs(r: Recipe) -> tuple[bool, bool]:
    if r.quest_forward:
        return False, False
    if r.microsoft is not None:
        return False, True
    return True, True


def _forward(x2: Tensor, w: Tensor, bias: Optional[Tensor], r: Recipe) -> tuple[Tensor, list[Tensor]]:
    spec = r.forward
    if r.microsoft is not None:
        return microsoft.forward(x2, w, bias, r)
    if spec is None:
        return torch.nn.functional.linear(x2, w.to(x2.dtype), None if bias is None else bias.to(x2.dtype)), []
    h_seed = fresh_seed() if spec.hadamard and spec.signs is None else 0
    seed = lambda op: fresh_seed() if op.rounding == "sr" else 0  # RTN draws nothing
    if not r.quest_forward:  # backward needs no quantized operand: one native call (same seeds, same bytes)
        return _qgemm(spec, x2, False, w, False, (h_seed, seed(spec.a), seed(spec.b)), x2.dtype, r.mma, bias), []
    # Quartet: backward runs on the forward-quantized operands (Hadamard basis) and their clip masks.
    h = _hadamard(spec, h_seed)
    qx = _quantize(x2, spec.a, h, seed(spec.a), False, clip_mask=True)
    qw = _quantize(w, spec.b, h, seed(spec.b), False, clip_mask=True)
    y = gemm_trusted(qx, qw, bias=bias, out_dtype=x2.dtype, mma=r.mma)
    return y, [_dequantize(qx), _dequantize(qw), qx.clip_mask.reshape(x2.shape[0], -1),
               qw.clip_mask.reshape(w.shape[0], -1)]


def _saved_fake(x2: Tensor, w: Tensor, r: Recipe) -> list[Tensor]:
    """Shapes and dtypes of _forward's new saved tensors (the fake implementation)."""
    if r.microsoft is not None:
        return microsoft.saved_fake(x2, w, r)
    if not r.quest_forward:
        return []
    T, K = x2.shape
    N = w.shape[0]
    f32, u8 = torch.float32, torch.uint8   # QuantizedTensor.dequantize() gives fp32
    return [x2.new_empty(T, K, dtype=f32), w.new_empty(N, K, dtype=f32), x2.new_empty(T, K // 8, dtype=u8),
            w.new_empty(N, K // 8, dtype=u8)]


def _backward(dy: Tensor, saved: list[Tensor], r: Recipe, x_dtype, w_dtype, need_dx: bool,
              need_dw: bool) -> tuple[Optional[Tensor], Optional[Tensor]]:
    if r.microsoft is not None:
        return microsoft.backward(dy, saved, r, x_dtype, w_dtype, need_dx, need_dw)
    x2, w = saved[0], saved[1]
    # Quartet's gradients are masked and rotated in fp32 before the final rounding.
    dx_dtype = torch.float32 if r.quest_forward else x_dtype
    dw_dtype = torch.float32 if r.quest_forward else w_dtype
    base = fresh_seed() if (r.dgrad or r.wgrad) else 0
    seeds = [derive_seed(base, k) for k in range(6)]
    dx = dw = None
    if need_dx:
        if r.dgrad is None:
            dx = dy @ w.to(dy.dtype)
        else:  # dx = dy · w: a = dy along N, b = wᵀ along N
            dx = _qgemm(r.dgrad, dy, False, w, True, seeds[0:3], dx_dtype, r.mma)
    if need_dw:
        if r.wgrad is None:
            dw = dy.t() @ x2.to(dy.dtype)
        else:  # dw = dyᵀ · x: a = dyᵀ along T, b = xᵀ along T
            dw = _qgemm(r.wgrad, dy, True, x2, True, seeds[3:6], dw_dtype, r.mma)
    if r.quest_forward:  # straight-through the quantizer: clip mask, then undo the Hadamard
        h = _hadamard(r.forward, 0)
        if dx is not None:
            dx = ops.hadamard_native(dx.float() * _keep(saved[2]), h.g, h.sign_words())
        if dw is not None:
            dw = ops.hadamard_native(dw.float() * _keep(saved[3]), h.g, h.sign_words())
    return (None if dx is None else dx.to(x_dtype)), (None if dw is None else dw.to(w_dtype))


@torch.library.custom_op("fp4gemm::linear", mutates_args=())
def linear_op(x2: Tensor, w: Tensor, bias: Optional[Tensor], recipe: str) -> list[Tensor]:
    """[y, *saved]: y = x2 wᵀ + bias under the recipe, and the tensors backward needs beyond x2, w."""
    y, saved = _forward(x2, w, bias, by_key(recipe))
    return [y, *saved]


@linear_op.register_fake
def _(x2, w, bias, recipe):
    return [x2.new_empty(x2.shape[0], w.shape[0]), *_saved_fake(x2, w, by_key(recipe))]


@torch.library.custom_op("fp4gemm::linear_backward", mutates_args=())
def linear_backward_op(dy: Tensor, saved: list[Tensor], recipe: str, k: int, x_dtype: torch.dtype,
                       w_dtype: torch.dtype, need_dx: bool, need_dw: bool) -> list[Tensor]:
    """[dx, dw] of fp4gemm::linear (an empty tensor where not needed)."""
    dx, dw = _backward(dy.contiguous(), saved, by_key(recipe), x_dtype, w_dtype, need_dx, need_dw)
    return [dx if dx is not None else dy.new_empty(0), dw if dw is not None else dy.new_empty(0)]


@linear_backward_op.register_fake
def _(dy, saved, recipe, k, x_dtype, w_dtype, need_dx, need_dw):
    T, N = dy.shape
    return [dy.new_empty((T, k) if need_dx else (0,), dtype=x_dtype if need_dx else dy.dtype),
            dy.new_empty((N, k) if need_dw else (0,), dtype=w_dtype if need_dw else dy.dtype)]


def _save(ctx, x2: Tensor, w: Tensor, bias: Optional[Tensor], recipe: str, saved: list[Tensor]) -> None:
    """What both autograd paths keep for backward: the inputs the recipe needs, then _forward's tensors."""
    keep_x, keep_w = _kept_inputs(by_key(recipe))
    ctx.save_for_backward(*[x2] * keep_x, *[w] * keep_w, *saved)
    ctx.recipe, ctx.k, ctx.x_dtype, ctx.w_dtype = recipe, x2.shape[1], x2.dtype, w.dtype
    ctx.has_bias = bias is not None


def _grads(ctx, dy: Tensor, backward) -> tuple:
    """(dx, dw, db, None) of both autograd paths; backward(dy, saved, need_dx, need_dw) -> (dx, dw)."""
    need_dx, need_dw, need_db = ctx.needs_input_grad[:3]
    dx = dw = None
    if need_dx or need_dw:
        dx, dw = backward(dy, list(ctx.saved_tensors), need_dx, need_dw)
    db = dy.sum(0) if ctx.has_bias and need_db else None
    return (dx if need_dx else None), (dw if need_dw else None), db, None


def _setup_context(ctx, inputs, output):
    x2, w, bias, recipe = inputs
    _save(ctx, x2, w, bias, recipe, output[1:])


def _linear_backward(ctx, grads):
    return _grads(ctx, grads[0], lambda dy, saved, need_dx, need_dw: linear_backward_op(
        dy, saved, ctx.recipe, ctx.k, ctx.x_dtype, ctx.w_dtype, need_dx, need_dw))


torch.library.register_autograd("fp4gemm::linear", _linear_backward, setup_context=_setup_context)


class _Linear(torch.autograd.Function):
    """The eager twin of the custom ops above: same _forward / _backward, same saved tensors."""

    @staticmethod
    def forward(ctx, x2: Tensor, w: Tensor, bias: Optional[Tensor], recipe: Recipe) -> Tensor:
        y, saved = _forward(x2, w, bias, recipe)
        _save(ctx, x2, w, bias, recipe.key, saved)
        return y

    @staticmethod
    def backward(ctx, dy: Tensor):
        return _grads(ctx, dy, lambda dy, saved, need_dx, need_dw: _backward(
            dy.contiguous(), saved, by_key(ctx.recipe), ctx.x_dtype, ctx.w_dtype, need_dx, need_dw))


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, recipe: Optional[Recipe] = None) -> Tensor:
    """torch.nn.functional.linear with the recipe's FP4 GEMMs in forward and backward."""
    recipe = recipe or BF16()
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe: expected an fp4gemm Recipe, got {type(recipe).__name__}")
    if weight.dim() != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"weight: shape {tuple(weight.shape)} does not match x's last dimension {x.shape[-1]}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias: expected shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    if torch.is_autocast_enabled(x.device.type):  # as torch.nn.functional.linear: every operand in the autocast dtype
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    x2 = x.reshape(-1, x.shape[-1]).contiguous()
    if torch.compiler.is_compiling():
        y = linear_op(x2, weight.contiguous(), bias, recipe.key)[0]
    else:
        y = _Linear.apply(x2, weight.contiguous(), bias, recipe)
    return y.reshape(*x.shape[:-1], weight.shape[0])
