"""GEMMs of quantized operands: fp4gemm.gemm (two QuantizedTensors) and fp4gemm.matmul (torch-like)."""
from __future__ import annotations

import math
from typing import Optional

import torch

from . import ops
from .quantize import as_quantized_tensor, check_arguments
from .tensor import QuantizedTensor


def gemm(qa: QuantizedTensor, qb: QuantizedTensor, *, alpha: float = 1.0, bias: Optional[torch.Tensor] = None,
         out_dtype: torch.dtype = torch.bfloat16, accumulate: Optional[str] = None, mma: str = "auto") -> torch.Tensor:
    """D[..., N] = alpha * A^ B^T + bias, A^ = qa [..., K], B^ = qb [N, K] dequantized (SPEC.md 4).

    accumulate: None = the device's own: float64 sums on the CPU (the exact reference), fp32 tensor
    cores on the GPU (SPEC.md 5). "float64" is CPU-only; "float32" on the CPU = sequential fp32 sums.
    mma (GPU): the tensor-core operand type, which picks the kernel family (docs/kernels.md).
      "auto": by the device's compute capability: 10.0 / 12.0 (Blackwell) "fp4"; 9.0 (Hopper) "fp8"
        for mxfp4 / fp4_row, "bf16" for nvfp4; any other GPU: ValueError (CPU tensors run the CPU path).
      "fp8" (Hopper only): exact emulation on FP8 tensor cores (FP8 speed; Hopper's FP8 accumulator
        keeps fewer bits than fp32 between the promotions every 128 K, which shows on inputs with
        outlier channels: docs/numerics.md). Not for nvfp4.
      "bf16" (Hopper only): every folded value exact and fp32 accumulation, at BF16 speed.
      "fp4" (Blackwell only: sm_100a, sm_120a): block-scaled FP4 tensor cores on the codes and scales
        as quantized; mxfp4 / fp4_row x mxfp4 / fp4_row, or nvfp4 x nvfp4; K a multiple of 32.
        Compiled, never run by the developers: `python -m fp4gemm selftest` checks it on your GPU.
    A path the device cannot run is a ValueError naming `mma`. Operands with blocked scales
    (quantize(..., scale_layout="blocked")) are read as they are on every path.
    """
    _check_operands(qa, qb)
    if accumulate not in (None, "float64", "float32"):
        raise ValueError(f"accumulate: None, 'float64' or 'float32', got {accumulate!r}")
    if accumulate == "float64" and qa.qdata.device.type != "cpu":
        raise ValueError("accumulate: 'float64' sums run on the CPU only; the GPU accumulates in fp32 on tensor cores")
    return gemm_trusted(qa, qb, alpha=alpha, bias=bias, out_dtype=out_dtype,
                        fp32_accumulate=accumulate == "float32", mma=mma, native=False)


def _check_operands(qa, qb) -> None:
    for name, q in (("qa", qa), ("qb", qb)):
        if not isinstance(q, QuantizedTensor):
            raise ValueError(f"{name}: expected a QuantizedTensor, got {type(q).__name__}")
    if qb.qdata.dim() != 2:
        raise ValueError(f"qb: must be 2D [N, K], got shape {tuple(qb.shape)}")
    if qa.shape[-1] != qb.shape[-1]:
        raise ValueError(f"qb: K={qb.shape[-1]} does not match qa's K={qa.shape[-1]}")
    if qa.rht != qb.rht and qa.hadamard_signs != qb.hadamard_signs:
        raise ValueError("qb: its Hadamard transform differs from qa's; A.B^T would not be preserved")


def _scales(q: QuantizedTensor) -> torch.Tensor:
    """q's raw scale bytes in the layout they have (fp4_row: fp32 row scales)."""
    s = q.scale if q.fmt == "fp4_row" else q.scale.view(torch.uint8)
    return s.reshape(-1) if q.scale_layout == "blocked" else s.reshape(-1, s.shape[-1])


def _operand_args(q: QuantizedTensor) -> tuple:
    return (q.codes().reshape(-1, q.qdata.shape[-1]), _scales(q), q.amax, q.fmt, q.scale_rule, q.global_scale)


def gemm_quantized(qa: QuantizedTensor, qb: QuantizedTensor, fmt: str = "mxfp4", *, alpha: float = 1.0,
                   bias: Optional[torch.Tensor] = None, mma: str = "auto", scale_rule: Optional[str] = None,
                   rounding: str = "rtn", prescale: bool = False, hadamard=None, seed: Optional[int] = None,
                   offset: int = 0, amax: Optional[torch.Tensor] = None, clip_mask: bool = False,
                   scale_layout: str = "canonical") -> QuantizedTensor:
    """D = alpha * A^ B^T + bias, quantized along N: exactly quantize(gemm(qa, qb, out_dtype=torch.float32),
    fmt, ...) with the same quantization arguments (quantize()'s, rowwise), without the fp32 D.

    On Hopper the GEMM's epilogue quantizes D for mxfp4, and for nvfp4 when `amax` (D's tensor amax,
    e.g. last step's) is given, with hadamard g <= 128; otherwise, and on Blackwell and the CPU, the
    fp32 D is formed and quantized in a second pass (the same bytes). mma as in gemm().
    """
    _check_operands(qa, qb)
    rule, h, _, seed = check_arguments(fmt, scale_rule, rounding, False, hadamard, None, True, False, seed, offset,
                                       amax, clip_mask, scale_layout)
    if qa.qdata.dim() != 2:
        raise ValueError(f"qa: must be 2D [M, K] for a quantized D, got shape {tuple(qa.shape)}")
    out = ops.gemm_quantized_op(*_operand_args(qa), *_operand_args(qb), float(alpha), bias, mma,
                                qa.scale_layout == "blocked", qb.scale_layout == "blocked", fmt, rule, rounding,
                                prescale, h.g if h else 0, h.sign_words() if h else [], seed, offset, amax, clip_mask,
                                scale_layout == "blocked")
    return as_quantized_tensor(*out, h, fmt=fmt, rule=rule, rounding=rounding, dtype=torch.float32,
                               prescale=prescale, clip_mask=clip_mask, scale_layout=scale_layout)


def gemm_trusted(qa: QuantizedTensor, qb: QuantizedTensor, *, alpha: float = 1.0,
                 bias: Optional[torch.Tensor] = None, out_dtype: torch.dtype = torch.bfloat16,
                 fp32_accumulate: bool = False, mma: str = "auto", native: bool = True) -> torch.Tensor:
    """gemm() past its argument checks. native: call the kernels directly rather than through the
    fp4gemm::gemm custom op (see quantize_trusted)."""
    op = ops.gemm_native if native else ops.gemm_op
    d = op(*_operand_args(qa), *_operand_args(qb), float(alpha), bias, out_dtype, fp32_accumulate, mma,
           qa.scale_layout == "blocked", qb.scale_layout == "blocked")
    return d.reshape(list(qa.shape[:-1]) + [qb.shape[0]])


def matmul(a: torch.Tensor, b: torch.Tensor, fmt: str = "mxfp4", *, scale_rule: Optional[str] = None,
           rounding: str = "rtn", hadamard=None, prescale: bool = False, seed: Optional[int] = None,
           bias: Optional[torch.Tensor] = None, out_dtype: Optional[torch.dtype] = None,
           mma: str = "auto", recipe=None) -> torch.Tensor:
    """FP4 version of torch.matmul(a, b) + bias: a [..., M, K], b [K, N]; both quantized along K.

    recipe (fp4gemm.recipes): differentiable, with the recipe's forward, dgrad and wgrad GEMMs
    (fp4gemm.linear(a, b.t(), bias, recipe)); the other quantization arguments must then be left out.

    b = W.t() of an nn.Linear weight is used without a copy. Both operands get the same Hadamard.
    With SR and an explicit seed, a uses (seed, 0) and b (seed + 1, 0). Output dtype: a's unless given.
    mma: the GPU tensor-core operand type, as in gemm().
    """
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if b.dim() != 2:
        raise ValueError(f"b: must be 2D [K, N], got shape {tuple(b.shape)}")
    if a.dim() < 1 or a.shape[-1] != b.shape[0]:
        raise ValueError(f"b: shape {tuple(b.shape)} does not match a's K={a.shape[-1] if a.dim() else None}")
    if a.device != b.device:
        raise ValueError(f"b: on {b.device}, but a is on {a.device}")
    if recipe is not None:
        from .autograd import linear
        y = linear(a, b.t(), bias, recipe)
        return y if out_dtype is None else y.to(out_dtype)
    rule, h, _, seed = check_arguments(fmt, scale_rule, rounding, False, hadamard, None, True, False, seed, 0, None,
                                       False, "canonical")
    seed_b = check_arguments(fmt, rule, rounding, False, None, None, True, False, seed + 1, 0, None, False,
                             "canonical")[3]
    bt = b.t()
    if bt.shape[-1] > 1 and bt.stride(-1) != 1:
        bt = bt.contiguous()
    # One native call: both quantizations and the GEMM (on Hopper's FP8 path A's quantizer writes
    # the GEMM's operand itself); the bytes of gemm(quantize(a), quantize(b.t())).
    d = ops.matmul_op(a.reshape(math.prod(a.shape[:-1]), a.shape[-1]), bt, fmt, rule, rounding, prescale, h.g if h else 0,
                      h.sign_words() if h else [], seed, seed_b, bias, out_dtype or a.dtype, mma)
    return d.reshape(list(a.shape[:-1]) + [bt.shape[0]])
