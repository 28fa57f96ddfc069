"""fp4gemm.quantize: x -> QuantizedTensor (rowwise and/or columnwise) on the CPU or the GPU."""
from __future__ import annotations

from typing import Optional

import torch

from . import ops
from .config import ROUNDINGS, check_name, resolve_rule
from .hadamard import Hadamard, as_hadamard
from .tensor import QuantizedTensor

_SAME = object()
_SCALE_DTYPE = {"mxfp4": torch.float8_e8m0fnu, "nvfp4": torch.float8_e4m3fn, "fp4_row": torch.float32}


def fresh_seed() -> int:
    """A seed from torch's default CPU generator (so torch.manual_seed makes runs reproducible)."""
    return int(torch.randint(0, 2**62, (), dtype=torch.int64))


def quantize(x: torch.Tensor, fmt: str = "mxfp4", *, scale_rule: Optional[str] = None, rounding: str = "rtn",
             block_2d: bool = False, prescale: bool = False, hadamard=None, columnwise_hadamard=_SAME,
             rowwise: bool = True, columnwise: bool = False, seed: Optional[int] = None, offset: int = 0,
             amax: Optional[torch.Tensor] = None, clip_mask: bool = False,
             scale_layout: str = "canonical") -> QuantizedTensor:
    """Quantize x[..., K] to FP4 with blocks along K (SPEC.md 1-3).

    fmt: "mxfp4" (block 32, E8M0 scales), "nvfp4" (block 16, E4M3 scales + tensor amax), "fp4_row"
    (one fp32 scale per row). scale_rule: mxfp4 "floor" (default) | "rceil" | "even" | "quest";
    nvfp4 "te" (default) | "torchao"; fp4_row "pow2" (default) | "amax". rounding: "rtn" | "sr".
    hadamard: None, a block size g, or fp4gemm.Hadamard(g, seed=..., signs=...), applied before
    quantizing; columnwise_hadamard (default: the same) for the columnwise output.
    columnwise=True also quantizes x.reshape(-1, K).T (blocks along the rows) into `.columnwise`;
    rowwise=False returns that columnwise quantization itself.
    seed/offset: the SR random stream (a fresh seed is drawn from torch's generator if None).
    amax (nvfp4): the tensor amax to use instead of computing it. clip_mask (quest): also return it.
    scale_layout: "canonical" ([..., K/block]) or "blocked" (flat 128x4 layout of cuBLAS / CUTLASS
    sm100, zero padded; mxfp4 / nvfp4 only).
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    rule, h_row, h_col, seed = check_arguments(fmt, scale_rule, rounding, block_2d, hadamard, columnwise_hadamard,
                                               rowwise, columnwise, seed, offset, amax, clip_mask, scale_layout)
    return quantize_trusted(x, fmt, rule, rounding, prescale=prescale, block_2d=block_2d, h_row=h_row,
                            h_col=h_col, rowwise=rowwise, columnwise=columnwise, seed=seed, offset=offset,
                            amax=amax, clip_mask=clip_mask, scale_layout=scale_layout, native=False)


def check_arguments(fmt, scale_rule, rounding, block_2d, hadamard, columnwise_hadamard, rowwise, columnwise, seed,
                    offset, amax, clip_mask, scale_layout):
    """quantize()'s argument checks (also gemm_quantized's): (rule, row Hadamard, column Hadamard, seed)."""
    rule = resolve_rule(fmt, scale_rule)
    check_name(rounding, ROUNDINGS, "rounding")
    if block_2d and fmt != "nvfp4":
        raise ValueError("block_2d: 16x16 blocks exist for fmt='nvfp4' only")
    if clip_mask and rule != "quest":
        raise ValueError("clip_mask: only scale_rule='quest' produces a clip mask")
    if not (rowwise or columnwise):
        raise ValueError("rowwise/columnwise: at least one must be True")
    if scale_layout not in ("canonical", "blocked"):
        raise ValueError(f"scale_layout: 'canonical' or 'blocked', got {scale_layout!r}")
    if scale_layout == "blocked" and fmt == "fp4_row":
        raise ValueError("scale_layout: per-row scales have no blocked layout")
    if amax is not None and fmt != "nvfp4":
        raise ValueError("amax: only fmt='nvfp4' takes a tensor amax")
    h_row = as_hadamard(hadamard, "hadamard")
    h_col = h_row if columnwise_hadamard is _SAME else as_hadamard(columnwise_hadamard, "columnwise_hadamard")
    if block_2d and (h_row or h_col):
        raise ValueError("block_2d: 16x16 blocks do not combine with the Hadamard transform")
    if seed is None:
        seed = fresh_seed() if rounding == "sr" else 0
    for name, v in (("seed", seed), ("offset", offset)):
        if not isinstance(v, int) or not 0 <= v < 2**63:
            raise ValueError(f"{name}: must be an int in [0, 2^63), got {v!r}")
    return rule, h_row, h_col, seed


def as_quantized_tensor(data, scale, amax_t, mask, h: Optional[Hadamard], *, fmt: str, rule: str, rounding: str,
                        dtype: torch.dtype, prescale: bool, clip_mask: bool, scale_layout: str) -> QuantizedTensor:
    """The QuantizedTensor of one output of the native quantizers (raw bytes as they return them)."""
    return QuantizedTensor(
        qdata=data.view(torch.float4_e2m1fn_x2), scale=scale.view(_SCALE_DTYPE[fmt]), fmt=fmt, scale_rule=rule,
        rounding=rounding, dtype=dtype, global_scale=4.0 / 3.0 if prescale else 1.0,
        amax=amax_t if fmt == "nvfp4" else None, clip_mask=mask if clip_mask else None,
        rht=h, scale_layout=scale_layout)


def quantize_trusted(x: torch.Tensor, fmt: str, rule: str, rounding: str, *, prescale: bool = False,
                     block_2d: bool = False, h_row: Optional[Hadamard] = None, h_col: Optional[Hadamard] = None,
                     rowwise: bool = True, columnwise: bool = False, seed: int = 0, offset: int = 0,
                     amax: Optional[torch.Tensor] = None, clip_mask: bool = False, scale_layout: str = "canonical",
                     native: bool = True) -> QuantizedTensor:
    """quantize() past its argument checks (the rule resolved, the Hadamards built). native: call the
    kernels directly rather than through the fp4gemm::quantize custom op, for code that already runs
    inside a custom op (fp4gemm/autograd.py); the native layer still checks the tensors."""
    op = ops.quantize_native if native else ops.quantize_op
    row_words = h_row.sign_words() if h_row else []
    col_words = row_words if h_col is h_row else h_col.sign_words() if h_col else []
    out = op(x, fmt, rule, rounding, prescale, block_2d, h_row.g if h_row else 0, row_words,
             h_col.g if h_col else 0, col_words, seed, offset, rowwise, columnwise, amax, clip_mask,
             scale_layout == "blocked")

    def build(data, scale, amax_t, mask, h) -> QuantizedTensor:
        return as_quantized_tensor(data, scale, amax_t, mask, h, fmt=fmt, rule=rule, rounding=rounding, dtype=x.dtype,
                                   prescale=prescale, clip_mask=clip_mask, scale_layout=scale_layout)

    col = build(*out[4:], h_col) if columnwise else None
    if not rowwise:
        return col
    q = build(*out[:4], h_row)
    q.columnwise = col
    return q
